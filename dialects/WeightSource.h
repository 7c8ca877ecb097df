//===- WeightSource.h - Where moe.weight data comes from --------*- C++ -*-===//
//
// The interface through which the reference interpreter and the artifact
// writer read the checkpoint tensors a `moe.weight` names (its `sources` and
// `scale_sources`, `#moe.tensor_ref<"file", "name">`). It lives beside the
// dialect so that both may use it without depending on the importers, which
// implement it (importers/CheckpointWeights.h); whoever builds the pipeline
// opens an implementation and passes it in.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_DIALECTS_WEIGHTSOURCE_H
#define MOEC_DIALECTS_WEIGHTSOURCE_H

#include "dialects/MoEDialect.h"

#include "mlir/IR/Operation.h"
#include "mlir/Support/LLVM.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

namespace mlir::moec {

/// Reads the stored bytes of the checkpoint tensors `moe.weight` ops name.
class WeightSource {
public:
  virtual ~WeightSource();
  /// Appends the stored little-endian bytes of tensor `ref` to `into`, after
  /// checking them against what the IR says is stored: elements of type
  /// `element` (one byte per `i1`) in `shape`. Errors name the tensor and its
  /// file.
  virtual llvm::Error read(moe::TensorRefAttr ref, Type element,
                           ArrayRef<int64_t> shape,
                           std::vector<uint8_t> &into) = 0;
};

/// An error about tensor `ref` that names it and its file:
/// `tensor 'NAME' of 'FILE': MESSAGE`.
llvm::Error makeWeightError(moe::TensorRefAttr ref, const llvm::Twine &message);

/// Opens the weights the `moe.weight` ops under `root` name in the
/// checkpoint folder `dir`, checking every file they name before anything is
/// read.
using WeightSourceOpener =
    std::function<llvm::Expected<std::unique_ptr<WeightSource>>(
        llvm::StringRef dir, Operation *root)>;

} // namespace mlir::moec

#endif // MOEC_DIALECTS_WEIGHTSOURCE_H
