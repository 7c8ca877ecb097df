//===- WeightFolder.h - Host evaluation of planned constants ----*- C++ -*-===//
//
// Computes the bytes of the `moe.constant` values of a planned function on
// the host: `moe.weight` read from the checkpoint (safetensors, or the ONNX
// model the importer read) with its transforms (stack, transpose, FP8
// quantization) and the ops the passes build from weights (concat, quantize,
// dequantize, reshape, slice). Stacked expert weights are produced one expert
// at a time, so the artifact writer never holds more than one expert's data
// per weight in memory.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_CODEGEN_WEIGHTFOLDER_H
#define MOEC_CODEGEN_WEIGHTFOLDER_H

#include "dialects/MoEDialect.h"

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

/// A dense row-major host tensor, stored as the little-endian bytes of its
/// element type (bf16 stays bf16, FP8 stays one byte per element).
struct HostTensor {
  /// The concrete shape.
  llvm::SmallVector<int64_t, 4> shape;
  /// The element type the bytes encode.
  Type elementType;
  /// `product(shape) * element size` bytes.
  std::vector<uint8_t> bytes;
};

/// Where the stored bytes of `moe.weight` sources come from.
class WeightSource {
public:
  virtual ~WeightSource();
  /// Appends the stored bytes of tensor `ref` to `into`, after checking them
  /// against what the IR says is stored: `element` and `shape`.
  virtual llvm::Error read(moe::TensorRefAttr ref, Type element,
                           ArrayRef<int64_t> shape,
                           std::vector<uint8_t> &into) = 0;
};

/// The tensors `func`'s weights name in the checkpoint folder `dir`: a
/// reference to a `.onnx` file reads that model's initializers
/// (`OnnxModel::readTensorData`), any other reference the folder's
/// safetensors files (`hf::Checkpoint`). Every file is opened and validated
/// here, so that a missing or broken checkpoint fails before any output.
llvm::Expected<std::unique_ptr<WeightSource>>
openWeightSource(llvm::StringRef dir, func::FuncOp func);

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
