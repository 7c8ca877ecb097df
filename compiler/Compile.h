//===- Compile.h - moec as a library call -----------------------*- C++ -*-===//
//
// The top of the compiler: read a model, run the phase pipeline, and write the
// artifact through the selected target backends (or print one phase's IR).
// `moec` only parses its command line into `CompileOptions` and calls
// `compileToArtifact`.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_COMPILER_COMPILE_H
#define MOEC_COMPILER_COMPILE_H

#include "compiler/CompileOptions.h"

#include "llvm/Support/Error.h"

namespace mlir::moec {

/// Compiles `options.input.path`: without `options.output.compileTo`, through
/// `planned` to the artifact `options.output.path` (the compile summary goes
/// to stderr); with it, to that phase, whose IR (or, for `codegen`, each
/// target's code) is written to `options.output.path`. Diagnostics about the
/// IR go to stderr as they happen and come back as a `DiagnosedError`; any
/// other failure is an error with its message. Nothing is left at the output
/// path on failure.
llvm::Error compileToArtifact(const CompileOptions &options);

} // namespace mlir::moec

#endif // MOEC_COMPILER_COMPILE_H
