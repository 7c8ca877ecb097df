//===- OnnxWeights.cpp - moe.weight data from ONNX initializers -*- C++ -*-===//
//
// Loads the models `moe.weight` references name and copies initializers.
//
//===----------------------------------------------------------------------===//

#include "importers/onnx/OnnxWeights.h"

#include "dialects/WeightTransforms.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/Support/Path.h"

using namespace mlir;
using namespace mlir::moec;
using mlir::moe::formatShape;

llvm::Error OnnxWeightSource::addModel(llvm::StringRef dir,
                                       llvm::StringRef file) {
  if (models.count(file))
    return llvm::Error::success();
  llvm::SmallString<256> path(dir);
  llvm::sys::path::append(path, file);
  llvm::Expected<std::unique_ptr<OnnxModel>> model = OnnxModel::load(path);
  if (!model)
    return model.takeError();
  models[file] = std::move(*model);
  return llvm::Error::success();
}

llvm::Error OnnxWeightSource::read(moe::TensorRefAttr ref, Type element,
                                   ArrayRef<int64_t> shape,
                                   std::vector<uint8_t> &into) {
  auto error = [&](const llvm::Twine &message) {
    return makeWeightError(ref, message);
  };
  auto it = models.find(ref.getFile());
  if (it == models.end())
    return error("no such ONNX model was opened");
  llvm::Expected<std::vector<char>> data =
      it->second->readTensorData(ref.getName());
  if (!data)
    return error(llvm::toString(data.takeError()));
  uint64_t bytes = uint64_t(elementBytes(element));
  for (int64_t d : shape)
    bytes *= uint64_t(d);
  if (data->size() != bytes) {
    std::string typeName;
    llvm::raw_string_ostream(typeName) << element;
    return error("holds " + llvm::Twine(data->size()) +
                 " bytes, but the IR expects " + formatShape(shape) + " of " +
                 typeName);
  }
  into.insert(into.end(), data->begin(), data->end());
  return llvm::Error::success();
}
