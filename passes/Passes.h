//===- Passes.h - moec passes -----------------------------------*- C++ -*-===//
//
// Declares the moec passes generated from Passes.td, their registration, and
// the `populate…Patterns` functions through which each pass's rewrites can be
// reused (docs/passes.md describes every pass).
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_PASSES_PASSES_H
#define MOEC_PASSES_PASSES_H

#include "dialects/MoEDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Pass/Pass.h"

#include <cstdint>

namespace mlir::moec {

#define GEN_PASS_DECL
#include "passes/Passes.h.inc"

/// Adds the rewrite of `moe.moe` into router, dispatch, grouped GEMMs,
/// combine and shared-expert GEMMs to `patterns`.
void populateDecomposeMoEPatterns(RewritePatternSet &patterns);

/// Adds the folding of equally wide shared experts into the routed grouped
/// GEMMs to `patterns`.
void populateFoldSharedExpertsPatterns(RewritePatternSet &patterns);

/// Adds the gate/up fusions (grouped and dense) to `patterns`.
void populateFuseGateUpPatterns(RewritePatternSet &patterns);

/// Adds the fusion of a residual add into `moe.combine` to `patterns`.
void populateFuseCombineResidualPatterns(RewritePatternSet &patterns);

/// Adds the fusion of attention input projections sharing an input to
/// `patterns`.
void populateFuseQKVPatterns(RewritePatternSet &patterns);

/// Adds the fusion of a residual add into the RMSNorm after it to
/// `patterns`.
void populateFuseAddRmsNormPatterns(RewritePatternSet &patterns);

/// Which GEMMs `--moec-lower-to-fp8` leaves in high precision, and how it
/// scales (the pass options, plus the layer count it infers).
struct Fp8Policy {
  /// Keep the lm_head (and a GEMM over a tied embedding table).
  bool keepLmHead = true;
  /// Keep every attention projection.
  bool keepAttention = false;
  /// Keep the GEMMs of layers `[0, keepFirstLayers)`.
  unsigned keepFirstLayers = 0;
  /// Keep the GEMMs of layers `[numLayers - keepLastLayers, numLayers)`.
  unsigned keepLastLayers = 0;
  /// The number of decoder layers: one more than the largest layer index of
  /// any weight in the function.
  int64_t numLayers = 0;
  /// Power-of-two scales for activations and compile-time quantized weights.
  bool pow2Scales = false;
};

/// Adds the FP8 lowering under `policy` to `patterns`: quantizing weights,
/// hoisting dequantization above weight concatenation, and rewriting GEMMs
/// to their FP8 forms.
void populateLowerToFp8Patterns(RewritePatternSet &patterns,
                                const Fp8Policy &policy);

/// Adds the fusion of per-token `moe.quantize` into the op producing its
/// input to `patterns`.
void populateFuseQuantizePatterns(RewritePatternSet &patterns);

#define GEN_PASS_REGISTRATION
#include "passes/Passes.h.inc"

} // namespace mlir::moec

#endif // MOEC_PASSES_PASSES_H
