//===- Compile.cpp - moec as a library call ---------------------*- C++ -*-===//
//
// `compileToArtifact`: checks the options, imports the model, runs the phase
// pipeline and hands the planned module to the selected target backends and
// the artifact writer (or prints one phase). Output is written through a
// temporary file and only kept when compilation succeeds, so a failed run
// never leaves a partial file behind.
//
//===----------------------------------------------------------------------===//

#include "compiler/Compile.h"
#include "codegen/ArtifactEmitter.h"
#include "codegen/cpu/Passes.h"
#include "compiler/CheckpointFiles.h"
#include "dialects/MoEDialect.h"
#include "importers/CheckpointWeights.h"
#include "importers/hf/HFImporter.h"
#include "importers/onnx/OnnxImporter.h"
#include "runtime/artifact/ArtifactWriter.h"
#include "runtime/support/Ed25519.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/AsmState.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/ToolOutputFile.h"

using namespace mlir;
using namespace mlir::moec;
namespace cl = llvm::cl;
namespace rt = ::moec::runtime;

//===----------------------------------------------------------------------===//
// Options
//===----------------------------------------------------------------------===//

void InputOptions::bindOptions(OptionsBinder &binder) {
  binder.opt("", path, cl::Positional, cl::Required,
             cl::desc("<checkpoint folder | model.mlir>"));
  binder.opt("from", fromPhase, cl::value_desc("phase"),
             cl::desc("The phase a `.mlir` input is already in (default: "
                      "import)"));
  binder.opt("verify-each", verifyEach,
             cl::desc("Verify the IR after every pass (default: on)"));
}

void OutputOptions::bindOptions(OptionsBinder &binder) {
  binder.opt(
      "compile-to", compileTo, cl::value_desc("phase"),
      cl::desc("Stop after this phase and print its IR. Phases, in order: "
               "import (the model as read), moe (canonical graph: one "
               "moe.moe per MoE layer), fused, fp8 (FP8 with block scales), "
               "planned (kernels, buffers, launch order), codegen. Without "
               "this option moec writes a deployable artifact (-o "
               "model.moea)"));
  binder.opt("o", path, cl::value_desc("file"),
             cl::desc("Where to write the result ('-' is standard output, the "
                      "default for IR; an artifact needs a file). Written "
                      "through a temporary file: nothing is left behind when "
                      "compilation fails"));
  binder.opt("sign", signingKeyFile, cl::value_desc("key.pem"),
             cl::desc("Sign the artifact with this Ed25519 private key (PEM "
                      "from `openssl genpkey -algorithm ed25519`); needs "
                      "libsodium (libsodium.so.23) at run time"));
  binder.opt("bench-device-weights", benchDeviceWeights, cl::value_desc("seed"),
             cl::desc("Benchmark artifacts only: store no weight data; the "
                      "runtime fills every weight on the GPU from this seed "
                      "(random FP8 codes and scales). The checkpoint's "
                      "tensors are never read, so the artifact computes "
                      "nothing meaningful; it times a model whose weights "
                      "are too large to ship"));
}

//===----------------------------------------------------------------------===//
// Compilation
//===----------------------------------------------------------------------===//

namespace {

/// An error carrying `message`.
llvm::Error fail(const llvm::Twine &message) {
  return llvm::createStringError(message);
}

/// `bytes` with a binary unit ("1.5 MiB").
std::string formatBytes(uint64_t bytes) {
  const char *units[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
  double value = double(bytes);
  int unit = 0;
  while (value >= 1024 && unit < 4) {
    value /= 1024;
    ++unit;
  }
  if (unit == 0)
    return std::to_string(bytes) + " bytes";
  return llvm::formatv("{0:F1} {1}", value, units[unit]).str();
}

/// Prints the compile summary of the artifact written to `path` to stderr.
void printSummary(const ArtifactSummary &s, ModuleOp module,
                  llvm::StringRef path, llvm::StringRef precisionName,
                  llvm::ArrayRef<std::string> targets) {
  llvm::raw_ostream &os = llvm::errs();
  std::string model = "model";
  if (auto type = module->getAttrOfType<StringAttr>("moe.model_type"))
    model = type.str();
  os << "moec: wrote " << path << " (" << formatBytes(s.fileBytes) << ")\n";
  os << "  model:     " << model << ", " << precisionName << ", targets "
     << llvm::join(targets, ",") << ", at most " << s.maxTokens
     << " tokens per run\n";
  os << "  kernels:   " << s.steps << " (one per step)\n";
  os << "  weights:   " << s.weights << " tensors, "
     << formatBytes(s.weightBytes) << " in the artifact";
  if (s.checkpointBytes)
    os << ", " << formatBytes(s.checkpointBytes) << " in the checkpoint ("
       << llvm::format("%.2f",
                       double(s.weightBytes) / double(s.checkpointBytes))
       << "x)";
  os << "\n";
  os << "  arena:     " << formatBytes(s.arenaBytes) << "\n";
  os << "  precision:";
  for (const std::string &entry : s.precision)
    os << " " << entry;
  os << "\n";
}

/// The seed of the `--sign` key in `keyFile`; an error when it cannot be
/// read, parsed or used (no libsodium).
llvm::Expected<rt::Ed25519Seed> readSigningSeed(const std::string &keyFile) {
  rt::StatusOr<rt::Ed25519Seed> seed = [&]() -> rt::StatusOr<rt::Ed25519Seed> {
    MOEC_ASSIGN_OR_RETURN(std::string text, rt::readKeyFile(keyFile));
    MOEC_ASSIGN_OR_RETURN(rt::Ed25519Seed parsed,
                          rt::parseEd25519PrivateKey(text, keyFile));
    MOEC_RETURN_IF_ERROR(rt::ed25519PublicKeyOf(parsed).status());
    return parsed;
  }();
  if (!seed.isOk())
    return fail("cannot sign with --sign " + keyFile + ": " +
                seed.status().message());
  return *seed;
}

/// Builds the code of the selected backends for the planned `module`, writes
/// the artifact with its weights and `checkpointFiles` to
/// `options.output.path` and prints the summary.
llvm::Error writeArtifactFile(ModuleOp module, const CompileOptions &options,
                              llvm::ArrayRef<TargetSelection> targets,
                              std::optional<rt::Ed25519Seed> signingSeed,
                              CheckpointFiles checkpointFiles) {
  TargetCode code;
  for (const TargetSelection &target : targets)
    if (llvm::Error error = target.backend->serialize(module, target.variants,
                                                      options.targets, code))
      return error;
  ArtifactOptions artifact;
  artifact.embeddedFiles = std::move(checkpointFiles.files);
  artifact.generation = std::move(checkpointFiles.generation);
  artifact.signingSeed = signingSeed;
  artifact.openWeights = openCheckpointWeights;
  artifact.deviceFillSeed = options.output.benchDeviceWeights;
  code.addTo(artifact);
  // The weights are folded here, from the checkpoint the module names.
  FailureOr<ArtifactSummary> summary =
      emitArtifact(module, code.cpuObjects, options.output.path, artifact);
  if (failed(summary))
    return makeDiagnosedError();
  printSummary(*summary, module, options.output.path,
               options.pipeline.lowerToFp8 ? "fp8" : "f32",
               code.spelledTargets);
  return llvm::Error::success();
}

/// Reads `path`: a Hugging Face checkpoint folder, an ONNX model or a
/// `.mlir` file.
llvm::Expected<OwningOpRef<ModuleOp>> importModel(llvm::StringRef path,
                                                  llvm::SourceMgr &sourceMgr,
                                                  MLIRContext *context) {
  FailureOr<OwningOpRef<ModuleOp>> imported = failure();
  if (llvm::sys::fs::is_directory(path)) {
    imported = hf::importHFCheckpoint(path, context);
  } else if (path.ends_with(".onnx")) {
    imported = importOnnxFile(path, context);
  } else {
    std::string error;
    std::unique_ptr<llvm::MemoryBuffer> input = openInputFile(path, &error);
    if (!input)
      return fail(error);
    sourceMgr.AddNewSourceBuffer(std::move(input), llvm::SMLoc());
    if (OwningOpRef<ModuleOp> module =
            parseSourceFile<ModuleOp>(sourceMgr, context))
      imported = std::move(module);
  }
  if (failed(imported))
    return makeDiagnosedError();
  return std::move(*imported);
}

/// `--compile-to=codegen`: prints each selected backend's code for the
/// planned `module`.
llvm::Error printCodegen(ModuleOp module, llvm::ArrayRef<TargetSelection> all,
                         const TargetOptions &options, llvm::raw_ostream &os) {
  TargetCode code;
  for (const TargetSelection &target : all)
    if (llvm::Error error = target.backend->printCode(module, target.variants,
                                                      all, options, code, os))
      return error;
  if (options.emitPtx && llvm::none_of(all, [](const TargetSelection &target) {
        return target.backend->isGpu();
      }))
    return fail("--emit-ptx needs a CUDA target (e.g. --target=sm_89)");
  return llvm::Error::success();
}

} // namespace

llvm::Error mlir::moec::compileToArtifact(const CompileOptions &options) {
  const InputOptions &input = options.input;
  const OutputOptions &output = options.output;
  std::optional<Phase> from = parsePhase(input.fromPhase);
  if (!from)
    return fail("unknown phase '" + input.fromPhase +
                "' for --from; expected one of: " + listPhases());
  // Without --compile-to, compile through `planned` and write an artifact.
  bool writeArtifact = output.compileTo.empty();
  std::optional<Phase> to = writeArtifact ? std::optional<Phase>(Phase::Planned)
                                          : parsePhase(output.compileTo);
  if (!to)
    return fail("unknown phase '" + output.compileTo +
                "' for --compile-to; expected one of: " + listPhases());
  if (writeArtifact && output.path == "-")
    return fail("an artifact is written to a file: add -o model.moea (or "
                "print IR with --compile-to=<phase>)");
  // A bad -o (a device, a folder, a dangling link) fails before the work.
  if (writeArtifact) {
    rt::StatusOr<std::string> target =
        rt::ArtifactWriter::resolveTarget(output.path);
    if (!target.isOk())
      return fail("cannot write the artifact: " + target.status().message());
  }
  // A bad --sign key, or no libsodium to sign with, fails before the work.
  std::optional<rt::Ed25519Seed> signingSeed;
  if (output.signingKeyFile) {
    if (!writeArtifact)
      return fail("--sign signs an artifact: drop --compile-to");
    llvm::Expected<rt::Ed25519Seed> seed =
        readSigningSeed(*output.signingKeyFile);
    if (!seed)
      return seed.takeError();
    signingSeed = *seed;
  }
  llvm::Expected<std::vector<TargetSelection>> targets =
      TargetRegistry::get().parseTargets(options.targets.targets);
  if (!targets)
    return targets.takeError();
  if (output.benchDeviceWeights &&
      llvm::any_of(*targets, [](const TargetSelection &target) {
        return !target.backend->isGpu();
      }))
    return fail("--bench-device-weights makes artifacts whose weights only "
                "exist on the GPU: use CUDA targets only (e.g. "
                "--target=sm_90)");
  int64_t maxTokens = options.pipeline.maxTokens;
  if (maxTokens < 1 || maxTokens > (int64_t(1) << 31) - 1)
    return fail("--max-tokens must be in [1, 2147483647], but got " +
                llvm::Twine(maxTokens));
  // A checkpoint folder's generation config, tokenizer and chat template
  // travel with the model (DESIGN.md section 6); a bad one fails before the
  // work.
  CheckpointFiles checkpointFiles;
  if (writeArtifact && llvm::sys::fs::is_directory(input.path)) {
    llvm::Expected<CheckpointFiles> files = readCheckpointFiles(input.path);
    if (!files)
      return files.takeError();
    checkpointFiles = std::move(*files);
  }

  DialectRegistry registry;
  // The moe dialect and what the CPU backend lowers it to, loaded up front:
  // the backends run no pass that could load them later.
  registry.insert<moe::MoEDialect, func::FuncDialect>();
  cpu::registerCpuCodegenDialects(registry);
  MLIRContext context(registry);
  context.loadAllAvailableDialects();

  llvm::SourceMgr sourceMgr;
  SourceMgrDiagnosticHandler diagnostics(sourceMgr, &context);
  llvm::Expected<OwningOpRef<ModuleOp>> module =
      importModel(input.path, sourceMgr, &context);
  if (!module)
    return module.takeError();

  PassManager pm(&context);
  pm.enableVerifier(input.verifyEach);
  std::string error;
  if (failed(buildMoecPipeline(pm, options.pipeline, *from, *to, error)))
    return fail(error);
  if (failed(pm.run(**module)))
    return makeDiagnosedError();

  if (writeArtifact)
    return writeArtifactFile(**module, options, *targets, signingSeed,
                             std::move(checkpointFiles));

  std::unique_ptr<llvm::ToolOutputFile> file =
      openOutputFile(output.path, &error);
  if (!file)
    return fail(error);
  if (*to == Phase::Codegen) {
    if (llvm::Error error =
            printCodegen(**module, *targets, options.targets, file->os()))
      return error;
  } else {
    (*module)->print(file->os());
    file->os() << "\n";
  }
  if (file->os().has_error())
    return fail("cannot write '" + output.path + "'");
  file->keep();
  return llvm::Error::success();
}
