//===- Interpreter.h - Reference interpreter of moe-dialect IR --*- C++ -*-===//
//
// A naive evaluator of `func.func`s made of `moe` ops: plain C++ loops in
// f32, weights read from the checkpoint through the safetensors reader. It is
// a test oracle for the importers and the passes (docs/interpreter.md), not
// the CPU path of the product, which is MLIR -> LLVM code generation.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_TOOLS_INTERPRETER_H
#define MOEC_TOOLS_INTERPRETER_H

#include "dialects/MoEDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/SourceMgr.h"

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

/// Loads `path`: a checkpoint folder (imported with the Hugging Face
/// importer) or a `.mlir` file in any phase, whose buffer is added to
/// `sourceMgr`. Errors are emitted on `context`.
FailureOr<OwningOpRef<ModuleOp>> loadModel(llvm::StringRef path,
                                           llvm::SourceMgr &sourceMgr,
                                           MLIRContext *context);

/// Parses a comma-separated list of integers such as `1,17,42`.
llvm::Expected<std::vector<int64_t>> parseIntegerList(llvm::StringRef text);

/// Writes `tensor` to `path` as a NumPy `.npy` file (format 1.0, C order):
/// float tensors as little-endian f32, integer ones as i32 (i64 when wider
/// than 32 bits).
llvm::Error writeNpy(llvm::StringRef path, const InterpTensor &tensor);

/// Reads a little-endian f32 `.npy` file (format 1.0 or 2.0, C order) into a
/// float tensor; its element type is left null.
llvm::Expected<InterpTensor> readNpy(llvm::StringRef path);

/// What the `moec-interp` command line asks for.
struct InterpreterCommand {
  /// A checkpoint folder or a `.mlir` file.
  std::string input;
  /// The function to run.
  std::string function = "forward";
  /// Comma-separated token ids.
  std::string tokens;
  /// Comma-separated positions; empty means 0..T-1.
  std::string positions;
  /// Overrides the module's `moe.checkpoint` when not empty.
  std::string checkpoint;
  /// Where to write the logits as `.npy`; empty prints a summary instead.
  std::string dumpLogits;
  /// InterpreterOptions::dumpRoutingDir.
  std::string dumpRouting;
  /// InterpreterOptions::pinRoutingDir.
  std::string pinRouting;
  /// Prints the inverse frequencies and cos/sin scale of the first `moe.rope`
  /// as JSON instead of running the model.
  bool printRope = false;
};

/// Runs `command` and returns the process exit code; diagnostics go to
/// stderr.
int runInterpreterCommand(const InterpreterCommand &command);

/// The `moec-interp` tool: parses the command line and runs it.
int interpreterMain(int argc, char **argv);

} // namespace mlir::moec

#endif // MOEC_TOOLS_INTERPRETER_H
