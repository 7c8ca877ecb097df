//===- OnnxWeights.h - moe.weight data from ONNX initializers ---*- C++ -*-===//
//
// The `WeightSource` (dialects/WeightSource.h) of ONNX models: a reference to
// a `.onnx` file reads that model's initializer, from the model or its
// external data file.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_IMPORTERS_ONNX_ONNXWEIGHTS_H
#define MOEC_IMPORTERS_ONNX_ONNXWEIGHTS_H

#include "dialects/WeightSource.h"
#include "importers/onnx/OnnxReader.h"

#include "llvm/ADT/StringMap.h"

#include <memory>

namespace mlir::moec {

/// Reads `moe.weight` sources from the initializers of ONNX models, by the
/// file name a reference records.
class OnnxWeightSource : public WeightSource {
public:
  /// Loads `file` (relative to the folder `dir`) unless it is loaded
  /// already.
  llvm::Error addModel(llvm::StringRef dir, llvm::StringRef file);

  /// True when `file` is a model this source reads.
  bool holds(llvm::StringRef file) const { return models.count(file); }

  /// Appends the initializer's bytes after checking their size against
  /// `element` and `shape` (the importer checked its type).
  llvm::Error read(moe::TensorRefAttr ref, Type element,
                   ArrayRef<int64_t> shape,
                   std::vector<uint8_t> &into) override;

private:
  llvm::StringMap<std::unique_ptr<OnnxModel>> models;
};

} // namespace mlir::moec

#endif // MOEC_IMPORTERS_ONNX_ONNXWEIGHTS_H
