//===- Pipelines.h - moec phase pipeline ------------------------*- C++ -*-===//
//
// The compiler as a function over phases (DESIGN.md §1): `import` → `moe` →
// `fused` → `fp8` → `planned` → `codegen`. Tools build their pass managers
// here so that `moec --compile-to=<phase>` and `moec-opt --moec-pipeline`
// run the same passes.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_PASSES_PIPELINES_H
#define MOEC_PASSES_PIPELINES_H

#include "passes/OptionsBinder.h"
#include "passes/Passes.h"

#include "mlir/Pass/PassManager.h"
#include "mlir/Support/LLVM.h"
#include "llvm/ADT/StringRef.h"

#include <optional>

namespace mlir::moec {

/// The phases of compilation, in order.
enum class Phase { Import, MoE, Fused, Fp8, Planned, Codegen };

/// The flag spelling of `phase` (`import`, `moe`, ...).
llvm::StringRef stringifyPhase(Phase phase);

/// Parses a phase name; `std::nullopt` for an unknown one.
std::optional<Phase> parsePhase(llvm::StringRef name);

/// Every phase name, comma-separated, for help texts and errors.
std::string listPhases();

/// The options of the phases between `import` and `planned`: fusion (`fused`),
/// the precision policy (`fp8`) and planning (`planned`). `moec` and
/// `moec-opt --moec-pipeline` bind this one struct (`bindOptions`).
struct PipelineOptions {
  /// Fold shared experts as wide as the routed ones into the routed grouped
  /// GEMMs (`--moec-fold-shared-experts`) in the `fused` phase.
  bool foldSharedExperts = false;
  /// Run the FP8 lowering in the `fp8` phase (`precision=fp8`); when false
  /// (`precision=f32`) that phase keeps the `fused` graph in its original
  /// precision.
  bool lowerToFp8 = true;
  /// The precision policy of the `fp8` phase (`--moec-lower-to-fp8`).
  LowerToFp8PassOptions fp8;
  /// The token count the `planned` phase sizes the arena for.
  int64_t maxTokens = 128;
  /// The KV cache the `planned` phase gives the model (`--moec-use-kv-cache`):
  /// its element type ("bf16", "f32"), or "none" for a stateless forward.
  std::string kvCache = "none";
  /// Positions per cache page and sequences per step, with a KV cache.
  int64_t kvPageTokens = 16;
  int64_t maxSequences = 64;

  /// Declares the options above (`--fold-shared-experts`, `--precision`,
  /// `--fp8-*`, `--max-tokens`, `--kv-cache`, `--kv-page-tokens`,
  /// `--max-sequences`) with `binder`.
  void bindOptions(OptionsBinder &binder);
};

/// Adds to `pm` the passes that take a module in phase `from` to phase `to`.
/// Fails, with a message naming the phase, when `to` precedes `from` or a
/// phase on the way is not available yet.
LogicalResult buildMoecPipeline(OpPassManager &pm,
                                const PipelineOptions &options, Phase from,
                                Phase to, std::string &error);

/// Registers `--moec-pipeline="from=<phase> to=<phase>"` (plus the options of
/// `PipelineOptions`) with the pass registry so that `moec-opt` can run it in
/// lit tests.
void registerMoecPipelines();

} // namespace mlir::moec

#endif // MOEC_PASSES_PIPELINES_H
