//===- OnnxPatterns.h - ONNX legalisation patterns --------------*- C++ -*-===//
//
// The pattern sets of the ONNX importer's second layer and the functions
// that run them. Raising happens in two greedy stages (whole blocks first,
// then folds into the raised ops), then nodes are legalised one by one.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_IMPORTERS_ONNX_ONNXPATTERNS_H
#define MOEC_IMPORTERS_ONNX_ONNXPATTERNS_H

#include "importers/onnx/OnnxMatchers.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"

#include <memory>

namespace mlir::moec {

/// Stage 1 of raising, subgraphs other than MoE: RMSNorm, RoPE,
/// `com.microsoft.RotaryEmbedding`. `reader`
/// (may be null) reads initializer values that are not inline.
void populateOnnxRaiseNormRopePatterns(RewritePatternSet &patterns,
                                       OnnxFailureReasons *reasons,
                                       const OnnxValueReader *reader);

/// Stage 1 of raising, MoE layers: the standard-op block (rooted at its
/// TopK), `com.microsoft.MoE` and `com.microsoft.QMoE`.
void populateOnnxRaiseMoEPatterns(RewritePatternSet &patterns,
                                  OnnxFailureReasons *reasons);

/// Stage 1 of raising: causal scaled-dot-product attention (rooted at its
/// Softmax).
void populateOnnxRaiseAttentionPatterns(RewritePatternSet &patterns,
                                        OnnxFailureReasons *reasons);

/// Stage 2 of raising: a scalar Mul after `moe.moe` (routed scaling), a
/// shared expert added to `moe.moe`, and SwiGLU to `moe.silu_mul`.
void populateOnnxRaiseFoldPatterns(RewritePatternSet &patterns,
                                   OnnxFailureReasons *reasons);

/// Op-by-op legalisation of the nodes `moe` has an op for.
void populateOnnxToMoEPatterns(RewritePatternSet &patterns,
                               OnnxFailureReasons *reasons);

/// Folds the batch dimension of `[batch, seq, ...]` inputs into the token
/// dimension (--moec-fold-onnx-batch). Graphs whose inputs are not all
/// batched are left alone; a node that cannot be folded fails, with one
/// error listing every such node.
LogicalResult foldOnnxBatch(ModuleOp module);

/// Folds integer shape computations whose inputs are known (Shape of static
/// dimensions, Gather, Slice, Concat, reshapes, integer casts and
/// arithmetic, Range) into inline `onnx.initializer {constant}` values.
void foldOnnxConstants(ModuleOp module);

/// Runs both raising stages on `module`.
LogicalResult raiseOnnxSubgraphs(ModuleOp module, OnnxFailureReasons *reasons,
                                 const OnnxValueReader *reader);

/// Gives every `moe.weight` of the legalised `module` its `#moe.role` from
/// the graph's structure (the attention blocks, MoE and MLP blocks, norms,
/// embedding and lm_head), with layers numbered by the order of the blocks.
/// Initializer names play no part. Weights it cannot place stay without one.
void assignOnnxWeightRoles(ModuleOp module);

/// Folds a batch dimension and shape computations, raises, legalises op by
/// op, turns the remaining initializers into `moe.weight`, gives them their
/// roles (assignOnnxWeightRoles) and fails with one error listing every node
/// left.
LogicalResult legalizeOnnxToMoE(ModuleOp module, const OnnxValueReader *reader);

/// Registers --moec-fold-onnx-batch, --moec-raise-onnx-subgraphs and
/// --moec-legalize-onnx.
void registerOnnxPasses();

namespace onnx_match {

/// The gate and up projections of a SwiGLU activation `value`:
/// `Mul(Mul(g, Sigmoid(g)), u)` in any operand order, or `moe.silu_mul`.
std::optional<std::pair<Value, Value>> matchSwiGLU(Value value);

/// The three weights of a dense SwiGLU MLP `out = W2 · swiglu(W1 · x,
/// W3 · x)` on input `x`, in the moe layout.
struct DenseMLP {
  WeightSource gate, up, down;
};
std::optional<DenseMLP> matchDenseMLP(Value out, Value x);

} // namespace onnx_match
} // namespace mlir::moec

#endif // MOEC_IMPORTERS_ONNX_ONNXPATTERNS_H
