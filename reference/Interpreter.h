//===- Interpreter.h - Reference interpreter of moe-dialect IR --*- C++ -*-===//
//
// A naive evaluator of `func.func`s made of `moe` ops: plain C++ loops in
// f32, weights read through a `WeightSource` (dialects/WeightSource.h) that
// the caller opens. It is a test oracle for the importers and the passes
// (docs/interpreter.md), not the CPU path of the product, which is MLIR ->
// LLVM code generation.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_REFERENCE_INTERPRETER_H
#define MOEC_REFERENCE_INTERPRETER_H

#include "dialects/MoEDialect.h"
#include "dialects/WeightSource.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <string>
#include <vector>

namespace mlir::moec {

/// A dense row-major tensor value of the interpreter. Float element types
/// (bf16, f16, FP8 included) hold their values, exactly, as f32 in `floats`;
/// integer element types hold theirs in `ints`.
struct InterpTensor {
  /// The concrete shape (no dynamic dimensions).
  llvm::SmallVector<int64_t, 4> shape;
  /// The MLIR element type the values stand for.
  Type elementType;
  /// The elements of a float tensor.
  std::vector<float> floats;
  /// The elements of an integer tensor.
  std::vector<int64_t> ints;

  /// The number of elements, the product of `shape`.
  int64_t numElements() const;
  /// True when the element type is an integer type.
  bool isInteger() const {
    return elementType && isa<IntegerType>(elementType);
  }
};

/// How the interpreter finds the data `moe.weight` names.
struct InterpreterOptions {
  /// The checkpoint folder; when empty, the module's `moe.checkpoint`
  /// attribute names it.
  std::string checkpointDir;
  /// Opens the weights of the checkpoint folder when the first `moe.weight`
  /// is evaluated (the importers' `openCheckpointWeights`).
  WeightSourceOpener openWeights;
  /// When not empty, the N-th routing decision evaluated (`moe.router` or
  /// `moe.moe`, N = 0, 1, ... in evaluation order) writes the tokens it
  /// ranked, its selection scores (after the bias, before group masking) and
  /// the k experts it chose to `<dir>/route<N>.x.npy`, `.scores.npy` and
  /// `.indices.npy`.
  std::string dumpRoutingDir;
  /// When not empty, the N-th routing decision ranks the experts for the rows
  /// of `<dir>/route<N>.x.npy` (f32, the shape of its `x`) instead of its `x`
  /// operand. Only the routing reads them: the experts of `moe.moe` still see
  /// `x`. Pins the routing of one pipeline to another's (test/e2e
  /// check_fp8_routing.py).
  std::string pinRoutingDir;
};

/// Evaluates `func` on `args`, one tensor per argument, and returns one tensor
/// per result. Ops the interpreter does not know, and inputs that do not fit
/// (shapes, indices out of range, missing checkpoint tensors), are reported
/// as diagnostics on the op at fault.
FailureOr<llvm::SmallVector<InterpTensor>>
interpretFunction(func::FuncOp func, llvm::ArrayRef<InterpTensor> args,
                  const InterpreterOptions &options);

/// Runs `function` of `module` as a forward pass: arguments named `tokens`
/// and `positions` by their `moe.name` attribute (else the first and second
/// argument) get `tokens` and `positions`; returns its first result.
FailureOr<InterpTensor> runForward(ModuleOp module, llvm::StringRef function,
                                   llvm::ArrayRef<int64_t> tokens,
                                   llvm::ArrayRef<int64_t> positions,
                                   const InterpreterOptions &options);

} // namespace mlir::moec

#endif // MOEC_REFERENCE_INTERPRETER_H
