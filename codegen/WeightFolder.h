//===- WeightFolder.h - Host evaluation of planned constants ----*- C++ -*-===//
//
// Computes the bytes of the `moe.constant` values of a planned function on
// the host: `moe.weight` read through a `WeightSource` with its transforms
// (stack, transpose, FP8 quantization; dialects/WeightTransforms.h) and the
// ops the passes build from weights (concat, quantize,
// dequantize, reshape, slice). Stacked expert weights are produced one expert
// at a time, so the artifact writer never holds more than one expert's data
// per weight in memory.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_CODEGEN_WEIGHTFOLDER_H
#define MOEC_CODEGEN_WEIGHTFOLDER_H

#include "dialects/MoEDialect.h"
#include "dialects/WeightTransforms.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Operation.h"
#include "mlir/IR/Value.h"
#include "mlir/Support/LLVM.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <map>
#include <memory>
#include <utility>
#include <vector>

namespace mlir::moec {

/// Evaluates constant values of one function, slice by slice. Errors are
/// emitted as diagnostics on the op at fault (a missing checkpoint tensor on
/// its `moe.weight`), and the call fails.
class WeightFolder {
public:
  /// Reads weights from `source`, which must outlive the folder.
  explicit WeightFolder(WeightSource &source) : source(source) {}

  /// The number of slices `value` is produced in: its leading dimension
  /// when it is a stacked expert weight, or an op that works expert by
  /// expert on such weights (concat along a later dimension, quantize,
  /// dequantize, a reshape keeping the leading dimension, a slice);
  /// otherwise 1.
  int64_t getNumSlices(Value value);

  /// Slice `index` of `value` along its leading dimension (without that
  /// dimension), or the whole value when `getNumSlices(value)` is 1.
  FailureOr<HostTensor> getSlice(Value value, int64_t index);

  /// The whole of `value` (its slices, concatenated).
  FailureOr<HostTensor> getWhole(Value value);

  /// Passes the bytes of `value` to `sink`, one slice at a time, in
  /// row-major order. Fails when the evaluation or `sink` fails.
  LogicalResult stream(Value value,
                       function_ref<LogicalResult(ArrayRef<uint8_t>)> sink);

private:
  using Results = FailureOr<SmallVector<HostTensor, 2>>;

  bool isSliced(Value value);
  Results evaluate(Operation *op, std::optional<int64_t> slice);
  Results evalWeight(Operation *op, std::optional<int64_t> slice);
  Results evalConcat(Operation *op, std::optional<int64_t> slice);
  Results evalQuantize(Operation *op, std::optional<int64_t> slice);
  Results evalDequantize(Operation *op, std::optional<int64_t> slice);
  Results evalReshape(Operation *op, std::optional<int64_t> slice);
  Results evalSlice(Operation *op, std::optional<int64_t> slice);
  FailureOr<HostTensor> getOperand(Value value, std::optional<int64_t> slice);

  WeightSource &source;
  llvm::DenseMap<Value, bool> sliced;
  /// Block scales computed alongside FP8 data (they are small), so that
  /// emitting the scale after its data does not quantize again.
  std::map<std::pair<void *, int64_t>, HostTensor> scaleCache;
};

} // namespace mlir::moec

#endif // MOEC_CODEGEN_WEIGHTFOLDER_H
