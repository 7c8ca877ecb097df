//===- CheckpointWeights.cpp - The importers' weight source -----*- C++ -*-===//
//
// Dispatches each tensor reference to the ONNX or the safetensors source.
//
//===----------------------------------------------------------------------===//

#include "importers/CheckpointWeights.h"

#include "importers/hf/SafetensorsWeights.h"
#include "importers/onnx/OnnxWeights.h"

#include <optional>

using namespace mlir;
using namespace mlir::moec;

namespace {

/// ONNX models by the file a reference names, safetensors otherwise.
class CheckpointWeightSource : public WeightSource {
public:
  llvm::Error read(moe::TensorRefAttr ref, Type element,
                   ArrayRef<int64_t> shape,
                   std::vector<uint8_t> &into) override {
    if (onnx.holds(ref.getFile()) || !safetensors)
      return onnx.read(ref, element, shape, into);
    return safetensors->read(ref, element, shape, into);
  }

  OnnxWeightSource onnx;
  std::unique_ptr<hf::SafetensorsWeightSource> safetensors;
};

} // namespace

llvm::Expected<std::unique_ptr<WeightSource>>
mlir::moec::openCheckpointWeights(llvm::StringRef dir, Operation *root) {
  auto source = std::make_unique<CheckpointWeightSource>();
  bool needsSafetensors = false;
  std::optional<llvm::Error> failure;
  auto note = [&](Attribute attr) {
    StringRef file = cast<moe::TensorRefAttr>(attr).getFile();
    if (!file.ends_with(".onnx")) {
      needsSafetensors = true;
      return;
    }
    if (failure)
      return;
    if (llvm::Error error = source->onnx.addModel(dir, file))
      failure = std::move(error);
  };
  root->walk([&](moe::WeightOp w) {
    llvm::for_each(w.getSources(), note);
    if (std::optional<ArrayAttr> scales = w.getScaleSources())
      llvm::for_each(*scales, note);
  });
  if (failure)
    return std::move(*failure);
  if (needsSafetensors) {
    llvm::Expected<std::unique_ptr<hf::SafetensorsWeightSource>> safetensors =
        hf::SafetensorsWeightSource::open(dir);
    if (!safetensors)
      return safetensors.takeError();
    source->safetensors = std::move(*safetensors);
  }
  return std::unique_ptr<WeightSource>(std::move(source));
}
