//===- SafetensorsWeights.h - moe.weight data from safetensors --*- C++ -*-===//
//
// The `WeightSource` (dialects/WeightSource.h) of a Hugging Face checkpoint
// folder: tensors are looked up by name in its safetensors files and checked
// against the file, dtype and shape the IR records.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_IMPORTERS_HF_SAFETENSORSWEIGHTS_H
#define MOEC_IMPORTERS_HF_SAFETENSORSWEIGHTS_H

#include "dialects/WeightSource.h"
#include "importers/hf/Safetensors.h"

#include <memory>

namespace mlir::moec::hf {

/// Reads `moe.weight` sources from the safetensors files of one checkpoint.
class SafetensorsWeightSource : public WeightSource {
public:
  /// Reads from `checkpoint`.
  explicit SafetensorsWeightSource(std::unique_ptr<Checkpoint> checkpoint)
      : checkpoint(std::move(checkpoint)) {}

  /// Opens the checkpoint folder `dir` (`Checkpoint::open`).
  static llvm::Expected<std::unique_ptr<SafetensorsWeightSource>>
  open(llvm::StringRef dir);

  /// Checks that the tensor is stored in `ref`'s file, with the dtype of
  /// `element` (a signless `i8` accepts `U8` codes) and `shape` up to
  /// size-1 dimensions (onnxruntime's per-row scales are `[E, N]` where the
  /// moe scales are `[E, N, 1]`); then appends its bytes.
  llvm::Error read(moe::TensorRefAttr ref, Type element,
                   ArrayRef<int64_t> shape,
                   std::vector<uint8_t> &into) override;

private:
  std::unique_ptr<Checkpoint> checkpoint;
};

} // namespace mlir::moec::hf

#endif // MOEC_IMPORTERS_HF_SAFETENSORSWEIGHTS_H
