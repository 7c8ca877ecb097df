//===- moec.cpp - The moec compiler -----------------------------*- C++ -*-===//
//
// `moec`: parses the command line into `CompileOptions` (every phase binds
// its own flags) and calls `compileToArtifact` (compiler/Compile.h).
//
//===----------------------------------------------------------------------===//

#include "compiler/Compile.h"

#include "llvm/Config/llvm-config.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/WithColor.h"

using namespace mlir::moec;

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  llvm::cl::OptionCategory category("moec options");
  CompileOptions bound;
  OptionsBinder binder = OptionsBinder::global(category);
  bound.bindOptions(binder);
  llvm::cl::SetVersionPrinter([](llvm::raw_ostream &os) {
    os << "moec 0.1.0\n  built with LLVM/MLIR " << LLVM_VERSION_STRING << "\n";
  });
  llvm::cl::HideUnrelatedOptions(category);
  llvm::cl::ParseCommandLineOptions(argc, argv, kMoecOverview);
  // The fields are filled now, once: lld, which builds the CPU kernels,
  // resets the command line when it parses its own.
  llvm::Error error = binder.store();
  if (!error)
    error = compileToArtifact(bound);
  int exitCode = error ? 1 : 0;
  llvm::handleAllErrors(
      std::move(error), [](const DiagnosedError &) {},
      [](const llvm::ErrorInfoBase &e) {
        llvm::WithColor::error(llvm::errs(), "moec") << e.message() << "\n";
      });
  return exitCode;
}
