//===- Pipelines.cpp - moec phase pipeline ----------------------*- C++ -*-===//
//
// Builds the pass pipeline between two phases: `fused` decomposes and fuses
// (docs/passes.md), `fp8` lowers GEMMs to FP8, `planned` orders the steps and
// places the activations (docs/planning.md). Each rewriting phase ends with
// canonicalization and CSE; verification runs after every pass by default.
//
//===----------------------------------------------------------------------===//

#include "passes/Pipelines.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"
#include "llvm/ADT/StringSwitch.h"

using namespace mlir;
using namespace mlir::moec;

namespace {
constexpr Phase kAllPhases[] = {Phase::Import, Phase::MoE,     Phase::Fused,
                                Phase::Fp8,    Phase::Planned, Phase::Codegen};
} // namespace

llvm::StringRef mlir::moec::stringifyPhase(Phase phase) {
  switch (phase) {
  case Phase::Import:
    return "import";
  case Phase::MoE:
    return "moe";
  case Phase::Fused:
    return "fused";
  case Phase::Fp8:
    return "fp8";
  case Phase::Planned:
    return "planned";
  case Phase::Codegen:
    return "codegen";
  }
  return "unknown";
}

std::optional<Phase> mlir::moec::parsePhase(llvm::StringRef name) {
  for (Phase phase : kAllPhases)
    if (stringifyPhase(phase) == name)
      return phase;
  return std::nullopt;
}

std::string mlir::moec::listPhases() {
  std::string text;
  for (Phase phase : kAllPhases) {
    if (!text.empty())
      text += ", ";
    text += stringifyPhase(phase).str();
  }
  return text;
}

LogicalResult mlir::moec::buildMoecPipeline(OpPassManager &pm,
                                            const PipelineOptions &options,
                                            Phase from, Phase to,
                                            std::string &error) {
  if (to < from) {
    error = ("cannot go back from phase '" + stringifyPhase(from) +
             "' to phase '" + stringifyPhase(to) + "'")
                .str();
    return failure();
  }
  for (Phase phase : kAllPhases) {
    if (phase <= from || phase > to)
      continue;
    switch (phase) {
    case Phase::Import:
      break;
    case Phase::MoE:
      // The importers already emit one `moe.moe` per MoE layer; this phase
      // cleans up what they left (dead weights, duplicate shape ops).
      pm.addPass(createCanonicalizerPass());
      pm.addPass(createCSEPass());
      break;
    case Phase::Fused: {
      // Shared experts fold into the routed GEMMs before gate/up fusion,
      // which would otherwise concatenate their weights separately.
      OpPassManager &fpm = pm.nest<func::FuncOp>();
      fpm.addPass(createDecomposeMoEPass());
      if (options.foldSharedExperts)
        fpm.addPass(createFoldSharedExpertsPass());
      fpm.addPass(createFuseGateUpPass());
      fpm.addPass(createFuseCombineResidualPass());
      fpm.addPass(createFuseQKVPass());
      fpm.addPass(createFuseAddRmsNormPass());
      pm.addPass(createCanonicalizerPass());
      pm.addPass(createCSEPass());
      break;
    }
    case Phase::Fp8:
      // `--precision=f32` builds keep the fused graph as it is.
      if (!options.lowerToFp8)
        break;
      pm.addNestedPass<func::FuncOp>(createLowerToFp8Pass(options.fp8));
      pm.addNestedPass<func::FuncOp>(createFuseQuantizePass());
      pm.addPass(createCanonicalizerPass());
      pm.addPass(createCSEPass());
      break;
    case Phase::Planned: {
      // Nothing may rewrite the IR after planning: the plan names ops and
      // offsets, and the artifact writer reads it as it is.
      PlanBuffersPassOptions plan;
      plan.maxTokens = options.maxTokens;
      pm.addNestedPass<func::FuncOp>(createPlanBuffersPass(plan));
      break;
    }
    case Phase::Codegen:
      // Code generation is no pass: the driver reads the planned IR and
      // emits each target's code (tools/Driver.cpp).
      break;
    }
  }
  return success();
}

namespace {
/// The options of `--moec-pipeline`: the phases to go from and to.
struct MoecPipelineCLOptions
    : public PassPipelineOptions<MoecPipelineCLOptions> {
  Option<std::string> from{*this, "from",
                           llvm::cl::desc("phase the input is in"),
                           llvm::cl::init("import")};
  Option<std::string> to{*this, "to", llvm::cl::desc("phase to stop after"),
                         llvm::cl::init("moe")};
  Option<bool> foldSharedExperts{
      *this, "fold-shared-experts",
      llvm::cl::desc("fold shared experts into the routed grouped GEMMs"),
      llvm::cl::init(false)};
  Option<bool> fp8KeepLmHead{
      *this, "fp8-keep-lm-head",
      llvm::cl::desc("keep the lm_head GEMM in high precision"),
      llvm::cl::init(true)};
  Option<bool> fp8KeepAttention{
      *this, "fp8-keep-attention",
      llvm::cl::desc("keep the attention projections in high precision"),
      llvm::cl::init(false)};
  Option<unsigned> fp8KeepFirstLayers{
      *this, "fp8-keep-first-layers",
      llvm::cl::desc("keep the first N decoder layers in high precision"),
      llvm::cl::init(0)};
  Option<unsigned> fp8KeepLastLayers{
      *this, "fp8-keep-last-layers",
      llvm::cl::desc("keep the last N decoder layers in high precision"),
      llvm::cl::init(0)};
  Option<bool> fp8Pow2Scales{*this, "fp8-pow2-scales",
                             llvm::cl::desc("power-of-two FP8 scales"),
                             llvm::cl::init(false)};
  Option<std::string> precision{
      *this, "precision",
      llvm::cl::desc("fp8 (lower GEMMs to FP8 in the fp8 phase) or f32 (keep "
                     "the fused graph's precision)"),
      llvm::cl::init("fp8")};
  Option<int64_t> maxTokens{
      *this, "max-tokens",
      llvm::cl::desc("token count the planned phase sizes the arena for"),
      llvm::cl::init(128)};

  /// The `PipelineOptions` these command-line options describe.
  PipelineOptions toPipelineOptions() const {
    PipelineOptions options;
    options.foldSharedExperts = foldSharedExperts;
    options.fp8.keepLmHead = fp8KeepLmHead;
    options.fp8.keepAttention = fp8KeepAttention;
    options.fp8.keepFirstLayers = fp8KeepFirstLayers;
    options.fp8.keepLastLayers = fp8KeepLastLayers;
    options.fp8.pow2Scales = fp8Pow2Scales;
    options.lowerToFp8 = precision != "f32";
    options.maxTokens = maxTokens;
    return options;
  }
};
} // namespace

void mlir::moec::registerMoecPipelines() {
  registerPassPipeline(
      "moec-pipeline",
      "Run the moec phases between `from` and `to` (phases: import, moe, "
      "fused, fp8, planned, codegen)",
      [](OpPassManager &pm, StringRef text,
         function_ref<LogicalResult(const Twine &)> errorHandler) {
        MoecPipelineCLOptions options;
        if (failed(options.parseFromString(text)))
          return failure();
        if (options.precision != "fp8" && options.precision != "f32")
          return errorHandler("unknown precision '" + options.precision +
                              "'; expected fp8 or f32");
        std::optional<Phase> from = parsePhase(options.from);
        std::optional<Phase> to = parsePhase(options.to);
        if (!from || !to)
          return errorHandler("unknown phase '" +
                              (from ? options.to : options.from) +
                              "'; expected one of: " + listPhases());
        std::string error;
        if (failed(buildMoecPipeline(pm, options.toPipelineOptions(), *from,
                                     *to, error)))
          return errorHandler(error);
        return success();
      },
      [](function_ref<void(const detail::PassOptions &)> optHandler) {
        optHandler(MoecPipelineCLOptions());
      });
}
