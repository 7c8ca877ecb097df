//===- Driver.cpp - The moec compiler driver --------------------*- C++ -*-===//
//
// Option parsing, input loading and output writing for `moec`: IR of one
// phase with `--compile-to`, otherwise the deployable artifact (the `planned`
// phase, CPU kernels, weights) and a compile summary on stderr. Output is
// written through a temporary file and only kept when compilation succeeds,
// so a failed run never leaves a partial file behind.
//
//===----------------------------------------------------------------------===//

#include "tools/Driver.h"
#include "codegen/ArtifactEmitter.h"
#include "codegen/cpu/PlannedKernels.h"
#include "codegen/cuda/CudaProgram.h"
#include "codegen/cuda/Nvrtc.h"
#include "importers/CheckpointWeights.h"
#include "importers/hf/HFImporter.h"
#include "importers/onnx/OnnxImporter.h"
#include "runtime/artifact/ArtifactWriter.h"
#include "runtime/nvrtc/Nvrtc.h"
#include "runtime/support/Ed25519.h"
#include "tools/InitAll.h"

#include "mlir/IR/AsmState.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Config/llvm-config.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/FormatVariadic.h"
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
             "option moec writes a deployable artifact (-o model.moea)"));

cl::opt<std::string> fromPhase(
    "from", cl::cat(moecCategory), cl::value_desc("phase"), cl::init("import"),
    cl::desc("The phase a `.mlir` input is already in (default: import)"));

cl::opt<std::string> outputPath(
    "o", cl::cat(moecCategory), cl::value_desc("file"), cl::init("-"),
    cl::desc("Where to write the result ('-' is standard output, the "
             "default for IR; an artifact needs a file). Written through a "
             "temporary file: nothing is left behind when compilation fails"));

cl::opt<bool>
    verifyEach("verify-each", cl::cat(moecCategory), cl::init(true),
               cl::desc("Verify the IR after every pass (default: on)"));

cl::opt<int64_t> maxTokens(
    "max-tokens", cl::cat(moecCategory), cl::value_desc("N"), cl::init(128),
    cl::desc("The most tokens one run of the artifact takes; the activation "
             "arena is sized for it (default: 128)"));

cl::opt<std::string> targetList(
    "target", cl::cat(moecCategory), cl::value_desc("list"), cl::init("cpu"),
    cl::desc("Comma-separated targets to generate code for: cpu (the CPU "
             "code twice: for the portable x86-64-v2 and for the most "
             "capable x86-64 level this machine has, once if they are the "
             "same; the runtime runs the best one the CPU it finds has the "
             "features for), cpu:<variant> (CPU code for that variant only, "
             "several allowed: x86-64-v2, x86-64-v3, x86-64-v4, host = this "
             "machine's level, portable = x86-64-v2), sm_80 (Ampere: bf16 "
             "tensor cores, FP8 weights decoded in-kernel), sm_89 (Ada: FP8 "
             "mma.sync), sm_90 (Hopper: compiled as sm_90a). CUDA targets "
             "need libnvrtc at compile time (default: cpu)"));

cl::opt<bool> cudaTma(
    "cuda-tma", cl::cat(moecCategory), cl::init(true),
    cl::desc("On sm_90 (sm_90a), load the FP8 GEMM's operand tiles with TMA "
             "(cp.async.bulk.tensor through tensor maps the runtime encodes "
             "at load) instead of cp.async; the kernels for other targets "
             "ignore the maps (default: on; --cuda-tma=false for the "
             "cp.async path everywhere)"));

cl::opt<bool> emitPtx(
    "emit-ptx", cl::cat(moecCategory), cl::init(false),
    cl::desc("With --compile-to=codegen: print the PTX NVRTC makes for each "
             "CUDA target instead of the CUDA C++ source"));

cl::opt<std::string> precision(
    "precision", cl::cat(moecCategory), cl::value_desc("fp8|f32"),
    cl::init("fp8"),
    cl::desc("fp8 (default): GEMMs in block-scaled FP8 under the --fp8-* "
             "policy; f32: skip the FP8 lowering and keep the checkpoint's "
             "weights (bf16/f32) with f32 activations"));

cl::opt<bool> fp8KeepLmHead(
    "fp8-keep-lm-head", cl::cat(moecCategory), cl::init(true),
    cl::desc("Keep the lm_head GEMM in high precision (default: on; "
             "--fp8-keep-lm-head=false lowers it)"));

cl::opt<bool> fp8KeepAttention(
    "fp8-keep-attention", cl::cat(moecCategory), cl::init(false),
    cl::desc("Keep the attention projections in high precision"));

cl::opt<unsigned> fp8KeepFirstLayers(
    "fp8-keep-first-layers", cl::cat(moecCategory), cl::value_desc("N"),
    cl::init(0),
    cl::desc("Keep the GEMMs of the first N decoder layers in high "
             "precision"));

cl::opt<unsigned> fp8KeepLastLayers(
    "fp8-keep-last-layers", cl::cat(moecCategory), cl::value_desc("N"),
    cl::init(0),
    cl::desc("Keep the GEMMs of the last N decoder layers in high "
             "precision"));

cl::opt<bool> fp8Pow2Scales(
    "fp8-pow2-scales", cl::cat(moecCategory), cl::init(false),
    cl::desc("Round FP8 activation and compile-time weight scales up to "
             "powers of two"));

cl::opt<bool> foldSharedExperts(
    "fold-shared-experts", cl::cat(moecCategory), cl::init(false),
    cl::desc("Fold shared experts as wide as the routed ones into the routed "
             "grouped GEMMs"));

cl::opt<uint64_t> benchDeviceWeights(
    "bench-device-weights", cl::cat(moecCategory), cl::value_desc("seed"),
    cl::desc("Benchmark artifacts only: store no weight data; the runtime "
             "fills every weight on the GPU from this seed (random FP8 codes "
             "and scales). The checkpoint's tensors are never read, so the "
             "artifact computes nothing meaningful; it times a model whose "
             "weights are too large to ship"));

cl::opt<std::string> signingKeyFile(
    "sign", cl::cat(moecCategory), cl::value_desc("key.pem"),
    cl::desc("Sign the artifact with this Ed25519 private key (PEM from "
             "`openssl genpkey -algorithm ed25519`); needs libsodium "
             "(libsodium.so.23) at run time"));

cl::opt<std::string> testCpuSharedObject(
    "test-cpu-so", cl::cat(moecCategory), cl::Hidden, cl::value_desc("file"),
    cl::desc("Tests only: embed this file as the artifact's cpu.so instead "
             "of building the kernels (the artifact will not run correctly)"));

void printVersion(llvm::raw_ostream &os) {
  os << "moec 0.1.0\n  built with LLVM/MLIR " << LLVM_VERSION_STRING << "\n";
}

/// Prints `message` as an error of the `moec` tool and returns exit code 1.
int fail(const llvm::Twine &message) {
  llvm::WithColor::error(llvm::errs(), "moec") << message << "\n";
  return 1;
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

/// What `--target` asks for.
struct Targets {
  /// "cpu" (when any CPU variant is asked for) and the CUDA targets, in the
  /// order given.
  std::vector<std::string> names;
  /// The CPU variants to compile, least capable first
  /// (`cpu::getCpuVariantNames()` order).
  std::vector<std::string> cpuVariants;
};

/// The CPU variant `name` of `cpu:<name>` stands for, or failure with
/// `error` listing the valid names.
FailureOr<std::string> resolveCpuVariant(llvm::StringRef name,
                                         std::string &error) {
  if (name == "host")
    return cpu::getHostCpuVariant();
  if (name == "portable")
    return cpu::getPortableCpuVariant();
  std::vector<std::string> names = cpu::getCpuVariantNames();
  if (llvm::is_contained(names, name.str()))
    return name.str();
  error = ("unknown CPU variant '" + name + "' in --target=cpu:" + name +
           "; expected one of host, portable, " + llvm::join(names, ", "))
              .str();
  return failure();
}

/// Parses `--target`: the available targets, or an error message.
FailureOr<Targets> parseTargets(llvm::StringRef list, std::string &error) {
  Targets targets;
  std::vector<std::string> variants;
  llvm::SmallVector<llvm::StringRef> names;
  list.split(names, ',', /*MaxSplit=*/-1, /*KeepEmpty=*/false);
  for (llvm::StringRef name : names) {
    name = name.trim();
    if (name == "sm_90a")
      name = "sm_90";
    if (name == "cpu") {
      // The default pair: runs anywhere, and runs best here.
      variants.push_back(cpu::getPortableCpuVariant());
      variants.push_back(cpu::getHostCpuVariant());
      name = "cpu";
    } else if (name.consume_front("cpu:")) {
      FailureOr<std::string> variant = resolveCpuVariant(name.trim(), error);
      if (failed(variant))
        return failure();
      variants.push_back(*variant);
      name = "cpu";
    } else {
      llvm::Expected<const cuda::TargetInfo &> target =
          cuda::lookupCudaTarget(name);
      if (!target) {
        error = ("unknown target '" + name +
                 "'; expected a comma-separated "
                 "list of cpu, cpu:<variant>, sm_80, sm_89, sm_90")
                    .str();
        llvm::consumeError(target.takeError());
        return failure();
      }
    }
    if (!llvm::is_contained(targets.names, name.str()))
      targets.names.push_back(name.str());
  }
  if (targets.names.empty()) {
    error = "--target names no target; expected e.g. --target=cpu";
    return failure();
  }
  for (const std::string &variant : cpu::getCpuVariantNames())
    if (llvm::is_contained(variants, variant))
      targets.cpuVariants.push_back(variant);
  return targets;
}

/// The CPU code of variant `variant`: the kernels built from the planned
/// module for it, or the file `testSharedObject` (`--test-cpu-so`) when it
/// is not empty; with the features the variant needs.
FailureOr<CpuSharedObject>
buildSharedObject(ModuleOp module, llvm::StringRef variant,
                  const std::string &testSharedObject) {
  cpu::CpuTargetOptions options;
  options.cpu = variant.str();
  llvm::Expected<cpu::CpuTargetInfo> info = cpu::getCpuTargetInfo(options);
  if (!info)
    return fail(llvm::toString(info.takeError())), failure();
  CpuSharedObject object;
  object.cpu = info->cpu;
  object.features = info->requiredFeatures;
  if (testSharedObject.empty()) {
    if (failed(cpu::buildCpuSharedObject(module, object.bytes, options)))
      return failure();
    return object;
  }
  llvm::ErrorOr<std::unique_ptr<llvm::MemoryBuffer>> file =
      llvm::MemoryBuffer::getFile(testSharedObject, /*IsText=*/false,
                                  /*RequiresNullTerminator=*/false);
  if (!file)
    return fail("cannot read '" + testSharedObject +
                "': " + file.getError().message()),
           failure();
  object.bytes = (*file)->getBuffer().str();
  return object;
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

/// The pipeline the command line asks for.
PipelineOptions getPipelineOptions() {
  PipelineOptions options;
  options.verifyEach = verifyEach;
  options.foldSharedExperts = foldSharedExperts;
  options.lowerToFp8 = precision == "fp8";
  options.fp8.keepLmHead = fp8KeepLmHead;
  options.fp8.keepAttention = fp8KeepAttention;
  options.fp8.keepFirstLayers = fp8KeepFirstLayers;
  options.fp8.keepLastLayers = fp8KeepLastLayers;
  options.fp8.pow2Scales = fp8Pow2Scales;
  options.maxTokens = maxTokens;
  return options;
}

/// The CUDA targets among `targets`, in registry order.
std::vector<const cuda::TargetInfo *>
cudaTargetsOf(llvm::ArrayRef<std::string> targets) {
  std::vector<const cuda::TargetInfo *> cudaTargets;
  for (const cuda::TargetInfo &target : cuda::getCudaTargets())
    if (llvm::is_contained(targets, target.name.str()))
      cudaTargets.push_back(&target);
  return cudaTargets;
}

/// Builds the code of `targets` for the planned `module` (the cpu.so, or
/// `testSharedObject`; the CUDA program and a cubin per CUDA target), writes
/// the artifact to `path` with its weights (none with `fillSeed`) and prints
/// the summary; the exit code.
int writeArtifactFile(ModuleOp module, const std::string &path,
                      const std::string &testSharedObject,
                      llvm::StringRef precisionName, const Targets &requested,
                      const cuda::CudaCodegenOptions &cudaOptions,
                      std::optional<uint64_t> fillSeed,
                      std::optional<::moec::runtime::Ed25519Seed> signingSeed) {
  llvm::ArrayRef<std::string> targets = requested.names;
  ArtifactOptions options;
  options.signingSeed = signingSeed;
  options.openWeights = openCheckpointWeights;
  std::vector<CpuSharedObject> cpuObjects;
  for (const std::string &variant : requested.cpuVariants) {
    FailureOr<CpuSharedObject> object =
        buildSharedObject(module, variant, testSharedObject);
    if (failed(object))
      return 1;
    cpuObjects.push_back(std::move(*object));
  }
  options.targets.clear();
  if (!cpuObjects.empty())
    options.targets.push_back("cpu");
  std::vector<const cuda::TargetInfo *> cudaTargets = cudaTargetsOf(targets);
  FailureOr<cuda::CudaProgram> program = failure();
  if (!cudaTargets.empty()) {
    program = cuda::buildCudaProgram(module, cudaOptions);
    if (failed(program))
      return 1;
    llvm::Expected<std::vector<std::pair<std::string, std::string>>> cubins =
        cuda::compileCudaProgram(*program, cudaTargets);
    if (!cubins)
      return fail(llvm::toString(cubins.takeError()));
    options.cubins = std::move(*cubins);
    options.cudaProgram = &*program;
    if (auto nvrtc = ::moec::runtime::Nvrtc::get(); nvrtc.isOk())
      options.nvrtcVersion = (*nvrtc)->version();
    for (const cuda::TargetInfo *target : cudaTargets)
      options.targets.push_back(target->gpuArchitecture.str());
  }
  options.deviceFillSeed = fillSeed;
  FailureOr<ArtifactSummary> summary =
      emitArtifact(module, cpuObjects, path, options);
  if (failed(summary))
    return 1;
  // Targets as --target spells them: each CPU variant, then the CUDA ones.
  std::vector<std::string> printed;
  for (const std::string &target : options.targets) {
    if (target != "cpu") {
      printed.push_back(target);
      continue;
    }
    for (const CpuSharedObject &object : cpuObjects)
      printed.push_back("cpu:" + object.cpu);
  }
  printSummary(*summary, module, path, precisionName, printed);
  return 0;
}

/// Reads `path`: a Hugging Face checkpoint folder or a `.mlir` file.
FailureOr<OwningOpRef<ModuleOp>> importModel(llvm::StringRef path,
                                             llvm::SourceMgr &sourceMgr,
                                             MLIRContext *context) {
  if (llvm::sys::fs::is_directory(path))
    return hf::importHFCheckpoint(path, context);
  if (path.ends_with(".onnx"))
    return importOnnxFile(path, context);
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

/// `--compile-to=codegen`: prints each target's code for the planned
/// `module`: for each CPU variant the kernel module before its lowering to
/// LLVM, and the CUDA translation unit with its launches (or, with
/// `--emit-ptx`, the PTX of each CUDA target).
LogicalResult printCodegen(ModuleOp module, const Targets &requested, bool ptx,
                           const cuda::CudaCodegenOptions &cudaOptions,
                           llvm::raw_ostream &os) {
  llvm::ArrayRef<std::string> targets = requested.names;
  for (const std::string &variant :
       ptx ? std::vector<std::string>() : requested.cpuVariants) {
    cpu::CpuTargetOptions options;
    options.cpu = variant;
    FailureOr<OwningOpRef<ModuleOp>> kernels =
        cpu::buildPlannedKernels(module, options);
    if (failed(kernels))
      return failure();
    os << "// ---- target cpu:" << variant << " ----\n";
    (*kernels)->print(os);
    os << "\n";
  }
  std::vector<const cuda::TargetInfo *> cudaTargets = cudaTargetsOf(targets);
  if (cudaTargets.empty()) {
    if (ptx)
      return fail("--emit-ptx needs a CUDA target (e.g. --target=sm_89)"),
             failure();
    return success();
  }
  FailureOr<cuda::CudaProgram> program =
      cuda::buildCudaProgram(module, cudaOptions);
  if (failed(program))
    return failure();
  if (!ptx) {
    os << "// ---- target cuda (";
    llvm::interleave(
        cudaTargets, os,
        [&](const cuda::TargetInfo *t) { os << t->gpuArchitecture; }, ", ");
    os << ") ----\n" << cuda::describeLaunches(*program) << program->source;
    return success();
  }
  for (const cuda::TargetInfo *target : cudaTargets) {
    llvm::Expected<std::string> text =
        cuda::compileToPtx(program->source, "kernels.cu", *target);
    if (!text)
      return fail(llvm::toString(text.takeError())), failure();
    os << "// ---- ptx " << target->gpuArchitecture << " ----\n" << *text;
  }
  return success();
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
      "qwen3_moe, qwen2_moe), an ONNX model, or a\n`.mlir` file in the form "
      "of any phase (see --from).\n\n"
      "  moec path/to/checkpoint -o model.moea       compile to an artifact "
      "(run it with moec-run)\n"
      "  moec path/to/checkpoint --compile-to=import   print the imported "
      "graph\n"
      "  moec model.mlir --compile-to=moe      print the canonical graph\n");

  // lld, which builds the kernels' shared object, resets every command-line
  // option to its default when it parses its own: nothing reads an option
  // after the pipeline has run.
  const std::string outputFile = outputPath;
  const std::string testSharedObject = testCpuSharedObject;
  const std::string precisionName = precision;
  cuda::CudaCodegenOptions cudaOptions;
  cudaOptions.tma = cudaTma;

  std::optional<Phase> from = parsePhase(fromPhase);
  if (!from)
    return fail("unknown phase '" + fromPhase +
                "' for --from; expected one of: " + listPhases());
  // Without --compile-to, compile through `planned` and write an artifact.
  bool writeArtifact = compileTo.empty();
  std::optional<Phase> to = writeArtifact ? std::optional<Phase>(Phase::Planned)
                                          : parsePhase(compileTo);
  if (!to)
    return fail("unknown phase '" + compileTo +
                "' for --compile-to; expected one of: " + listPhases());
  if (writeArtifact && outputFile == "-")
    return fail("an artifact is written to a file: add -o model.moea (or "
                "print IR with --compile-to=<phase>)");
  // A bad -o (a device, a folder, a dangling link) fails before the work.
  if (writeArtifact) {
    ::moec::runtime::StatusOr<std::string> target =
        ::moec::runtime::ArtifactWriter::resolveTarget(outputFile);
    if (!target.isOk())
      return fail("cannot write the artifact: " + target.status().message());
  }
  // A bad --sign key, or no libsodium to sign with, fails before the work.
  std::optional<::moec::runtime::Ed25519Seed> signingSeed;
  if (signingKeyFile.getNumOccurrences()) {
    namespace rt = ::moec::runtime;
    if (!writeArtifact)
      return fail("--sign signs an artifact: drop --compile-to");
    rt::StatusOr<rt::Ed25519Seed> seed =
        [&]() -> rt::StatusOr<rt::Ed25519Seed> {
      MOEC_ASSIGN_OR_RETURN(std::string text, rt::readKeyFile(signingKeyFile));
      MOEC_ASSIGN_OR_RETURN(rt::Ed25519Seed parsed,
                            rt::parseEd25519PrivateKey(text, signingKeyFile));
      MOEC_RETURN_IF_ERROR(rt::ed25519PublicKeyOf(parsed).status());
      return parsed;
    }();
    if (!seed.isOk())
      return fail("cannot sign with --sign " + signingKeyFile + ": " +
                  seed.status().message());
    signingSeed = *seed;
  }
  std::string error;
  FailureOr<Targets> targets = parseTargets(targetList, error);
  if (failed(targets))
    return fail(error);
  if (benchDeviceWeights.getNumOccurrences() &&
      (llvm::is_contained(targets->names, "cpu") ||
       cudaTargetsOf(targets->names).empty()))
    return fail("--bench-device-weights makes artifacts whose weights only "
                "exist on the GPU: use CUDA targets only (e.g. "
                "--target=sm_90)");
  if (precisionName != "fp8" && precisionName != "f32")
    return fail("unknown precision '" + precisionName +
                "' for --precision; expected fp8 or f32");
  if (maxTokens < 1 || maxTokens > (int64_t(1) << 31) - 1)
    return fail("--max-tokens must be in [1, 2147483647], but got " +
                llvm::Twine(maxTokens));

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

  PassManager pm(&context);
  pm.enableVerifier(verifyEach);
  if (failed(buildMoecPipeline(pm, getPipelineOptions(), *from, *to, error)))
    return fail(error);
  if (failed(pm.run(**module)))
    return 1;

  if (writeArtifact)
    return writeArtifactFile(**module, outputFile, testSharedObject,
                             precisionName, *targets, cudaOptions,
                             benchDeviceWeights.getNumOccurrences()
                                 ? std::optional<uint64_t>(benchDeviceWeights)
                                 : std::nullopt,
                             signingSeed);

  std::unique_ptr<llvm::ToolOutputFile> output =
      openOutputFile(outputFile, &error);
  if (!output)
    return fail(error);
  if (*to == Phase::Codegen) {
    if (failed(printCodegen(**module, *targets, emitPtx, cudaOptions,
                            output->os())))
      return 1;
  } else {
    (*module)->print(output->os());
    output->os() << "\n";
  }
  if (output->os().has_error())
    return fail("cannot write '" + outputFile + "'");
  output->keep();
  return 0;
}
