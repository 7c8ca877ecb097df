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
      if (options.kvCache != "none") {
        UseKvCachePassOptions cache;
        cache.cacheType = options.kvCache;
        cache.pageTokens = options.kvPageTokens;
        cache.maxSequences = options.maxSequences;
        pm.addNestedPass<func::FuncOp>(createUseKvCachePass(cache));
      }
      PlanBuffersPassOptions plan;
      plan.maxTokens = options.maxTokens;
      pm.addNestedPass<func::FuncOp>(createPlanBuffersPass(plan));
      break;
    }
    case Phase::Codegen:
      // Code generation is no pass: the driver reads the planned IR and
      // emits each target backend's code (compiler/Compile.cpp).
      break;
    }
  }
  return success();
}

void PipelineOptions::bindOptions(OptionsBinder &binder) {
  namespace cl = llvm::cl;
  binder.opt("fold-shared-experts", foldSharedExperts,
             cl::desc("Fold shared experts as wide as the routed ones into "
                      "the routed grouped GEMMs"));
  binder.choice<bool>(
      "precision", lowerToFp8, {{"fp8", true}, {"f32", false}},
      cl::value_desc("fp8|f32"),
      cl::desc("fp8 (default): GEMMs in block-scaled FP8 under the --fp8-* "
               "policy; f32: skip the FP8 lowering and keep the checkpoint's "
               "weights (bf16/f32) with f32 activations"));
  binder.opt("fp8-keep-lm-head", fp8.keepLmHead,
             cl::desc("Keep the lm_head GEMM in high precision (default: on; "
                      "--fp8-keep-lm-head=false lowers it)"));
  binder.opt("fp8-keep-attention", fp8.keepAttention,
             cl::desc("Keep the attention projections in high precision"));
  binder.opt("fp8-keep-first-layers", fp8.keepFirstLayers, cl::value_desc("N"),
             cl::desc("Keep the GEMMs of the first N decoder layers in high "
                      "precision"));
  binder.opt("fp8-keep-last-layers", fp8.keepLastLayers, cl::value_desc("N"),
             cl::desc("Keep the GEMMs of the last N decoder layers in high "
                      "precision"));
  binder.opt("fp8-pow2-scales", fp8.pow2Scales,
             cl::desc("Round FP8 activation and compile-time weight scales up "
                      "to powers of two"));
  binder.opt("max-tokens", maxTokens, cl::value_desc("N"),
             cl::desc("The most tokens one run (one generation step) of the "
                      "artifact takes; the activation arena is sized for it "
                      "(default: 128)"));
  binder.choice<std::string>(
      "kv-cache", kvCache, {{"none", "none"}, {"bf16", "bf16"}, {"f32", "f32"}},
      cl::value_desc("none|bf16|f32"),
      cl::desc("Give the artifact a paged KV cache of this element "
               "type so that it can generate (docs/generation.md); "
               "none (default) compiles a stateless forward"));
  binder.opt("kv-page-tokens", kvPageTokens, cl::value_desc("N"),
             cl::desc("Positions per KV cache page (default: 16)"));
  binder.opt("max-sequences", maxSequences, cl::value_desc("N"),
             cl::desc("Sequences one generation step may hold; sizes the "
                      "page table (default: 64)"));
}

namespace {
/// The options of `--moec-pipeline`: the phases to go from and to, and the
/// `PipelineOptions` struct bound to the pipeline's `key=value` text.
struct MoecPipelineCLOptions
    : public PassPipelineOptions<MoecPipelineCLOptions> {
  std::string from = "import";
  std::string to = "moe";
  PipelineOptions pipeline;
  OptionsBinder binder = OptionsBinder::local(*this);

  MoecPipelineCLOptions() {
    binder.opt("from", from, llvm::cl::desc("phase the input is in"));
    binder.opt("to", to, llvm::cl::desc("phase to stop after"));
    pipeline.bindOptions(binder);
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
        if (llvm::Error error = options.binder.store())
          return errorHandler(llvm::toString(std::move(error)));
        std::optional<Phase> from = parsePhase(options.from);
        std::optional<Phase> to = parsePhase(options.to);
        if (!from || !to)
          return errorHandler("unknown phase '" +
                              (from ? options.to : options.from) +
                              "'; expected one of: " + listPhases());
        std::string error;
        if (failed(buildMoecPipeline(pm, options.pipeline, *from, *to, error)))
          return errorHandler(error);
        return success();
      },
      [](function_ref<void(const detail::PassOptions &)> optHandler) {
        optHandler(MoecPipelineCLOptions());
      });
}
