//===- InterpreterCommand.h - The moec-interp command -----------*- C++ -*-===//
//
// The command line of `moec-interp` over the reference interpreter. The
// reference does not depend on the importers, so the tool's main passes in
// what needs them: the checkpoint importer and the weight reader.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_REFERENCE_INTERPRETERCOMMAND_H
#define MOEC_REFERENCE_INTERPRETERCOMMAND_H

#include "reference/Interpreter.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/OwningOpRef.h"
#include "llvm/Support/SourceMgr.h"

#include <functional>
#include <string>
#include <vector>

namespace mlir::moec {

/// What the command needs from outside the reference.
struct InterpreterHooks {
  /// Adds the dialects a `.mlir` input may contain.
  std::function<void(DialectRegistry &)> registerDialects;
  /// Imports a checkpoint folder into a module.
  std::function<FailureOr<OwningOpRef<ModuleOp>>(llvm::StringRef dir,
                                                 MLIRContext *context)>
      importCheckpoint;
  /// Opens the weights of a checkpoint folder.
  WeightSourceOpener openWeights;
};

/// Loads `path`: a checkpoint folder (imported with `importCheckpoint`) or a
/// `.mlir` file in any phase, whose buffer is added to `sourceMgr`. Errors
/// are emitted on `context`.
FailureOr<OwningOpRef<ModuleOp>> loadModel(llvm::StringRef path,
                                           llvm::SourceMgr &sourceMgr,
                                           MLIRContext *context,
                                           const InterpreterHooks &hooks);

/// Parses a comma-separated list of integers such as `1,17,42`.
llvm::Expected<std::vector<int64_t>> parseIntegerList(llvm::StringRef text);

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
int runInterpreterCommand(const InterpreterCommand &command,
                          const InterpreterHooks &hooks);

/// The `moec-interp` tool: parses the command line and runs it.
int interpreterMain(int argc, char **argv, const InterpreterHooks &hooks);

} // namespace mlir::moec

#endif // MOEC_REFERENCE_INTERPRETERCOMMAND_H
