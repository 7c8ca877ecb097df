//===- Driver.cpp - The moec compiler driver --------------------*- C++ -*-===//
//
// Option parsing, input loading and output writing for `moec`. Output is
// written through a temporary file and only kept when compilation succeeds,
// so a failed run never leaves a partial file behind.
//
//===----------------------------------------------------------------------===//

#include "tools/Driver.h"
#include "importers/hf/HFImporter.h"
#include "tools/InitAll.h"

#include "mlir/IR/AsmState.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/Config/llvm-config.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/WithColor.h"

using namespace mlir;
using namespace mlir::moec;
namespace cl = llvm::cl;

namespace {

cl::OptionCategory moecCategory("moec options");

cl::opt<std::string> inputPath(cl::Positional, cl::Required,
                               cl::cat(moecCategory),
                               cl::desc("<checkpoint folder | model.mlir>"));

cl::opt<std::string> compileTo(
    "compile-to", cl::cat(moecCategory), cl::value_desc("phase"),
    cl::desc("Stop after this phase and print its IR. Phases, in order: "
             "import (the model as read), moe (canonical graph: one moe.moe "
             "per MoE layer), fused, fp8 (FP8 with block scales), planned "
             "(kernels, buffers, launch order), codegen. Without this "
             "option moec writes a deployable artifact"));

cl::opt<std::string> fromPhase(
    "from", cl::cat(moecCategory), cl::value_desc("phase"), cl::init("import"),
    cl::desc("The phase a `.mlir` input is already in (default: import)"));

cl::opt<std::string> outputPath(
    "o", cl::cat(moecCategory), cl::value_desc("file"), cl::init("-"),
    cl::desc("Where to write the result ('-' is standard output, the "
             "default for IR). Written through a temporary file: nothing is "
             "left behind when compilation fails"));

cl::opt<bool>
    verifyEach("verify-each", cl::cat(moecCategory), cl::init(true),
               cl::desc("Verify the IR after every pass (default: on)"));

void printVersion(llvm::raw_ostream &os) {
  os << "moec 0.1.0\n  built with LLVM/MLIR " << LLVM_VERSION_STRING << "\n";
}

/// Prints `message` as an error of the `moec` tool and returns exit code 1.
int fail(const llvm::Twine &message) {
  llvm::WithColor::error(llvm::errs(), "moec") << message << "\n";
  return 1;
}

/// Reads `path`: a Hugging Face checkpoint folder or a `.mlir` file.
FailureOr<OwningOpRef<ModuleOp>> importModel(llvm::StringRef path,
                                             llvm::SourceMgr &sourceMgr,
                                             MLIRContext *context) {
  if (llvm::sys::fs::is_directory(path))
    return hf::importHFCheckpoint(path, context);
  std::string error;
  std::unique_ptr<llvm::MemoryBuffer> input = openInputFile(path, &error);
  if (!input) {
    fail(error);
    return failure();
  }
  sourceMgr.AddNewSourceBuffer(std::move(input), llvm::SMLoc());
  OwningOpRef<ModuleOp> module = parseSourceFile<ModuleOp>(sourceMgr, context);
  if (!module)
    return failure();
  return module;
}

} // namespace

int mlir::moec::moecMain(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  cl::SetVersionPrinter(printVersion);
  cl::HideUnrelatedOptions(moecCategory);
  cl::ParseCommandLineOptions(
      argc, argv,
      "moec: compiles Mixture-of-Experts language models into one deployable "
      "artifact\n\n"
      "The input is a Hugging Face checkpoint folder (config.json + "
      "*.safetensors, sharded\nor not; model types deepseek_v3, mixtral, "
      "qwen3_moe, qwen2_moe) or a `.mlir` file in\nthe form of any phase "
      "(see --from).\n\n"
      "  moec path/to/checkpoint --compile-to=import   print the imported "
      "graph\n"
      "  moec model.mlir --compile-to=moe      print the canonical graph\n");

  std::optional<Phase> from = parsePhase(fromPhase);
  if (!from)
    return fail("unknown phase '" + fromPhase +
                "' for --from; expected one of: " + listPhases());
  if (compileTo.empty())
    return fail("writing an artifact is not available in this build yet; "
                "use --compile-to=<phase> (phases: " +
                listPhases() + ")");
  std::optional<Phase> to = parsePhase(compileTo);
  if (!to)
    return fail("unknown phase '" + compileTo +
                "' for --compile-to; expected one of: " + listPhases());

  DialectRegistry registry;
  registerAllMoecDialects(registry);
  MLIRContext context(registry);
  context.loadAllAvailableDialects();

  llvm::SourceMgr sourceMgr;
  SourceMgrDiagnosticHandler diagnostics(sourceMgr, &context);
  FailureOr<OwningOpRef<ModuleOp>> module =
      importModel(inputPath, sourceMgr, &context);
  if (failed(module))
    return 1;

  std::string error;
  PassManager pm(&context);
  pm.enableVerifier(verifyEach);
  PipelineOptions options;
  options.verifyEach = verifyEach;
  if (failed(buildMoecPipeline(pm, options, *from, *to, error)))
    return fail(error);
  if (failed(pm.run(**module)))
    return 1;

  std::unique_ptr<llvm::ToolOutputFile> output =
      openOutputFile(outputPath, &error);
  if (!output)
    return fail(error);
  (*module)->print(output->os());
  output->os() << "\n";
  if (output->os().has_error())
    return fail("cannot write '" + outputPath + "'");
  output->keep();
  return 0;
}
