//===- OnnxPasses.td - ONNX importer passes ----------------*- tablegen -*-===//
//
// The second layer of the ONNX importer: passes that give `onnx.node` ops
// their meaning in the `moe` dialect, with patterns keyed by (domain, op
// type, opset). They run inside importOnnxFile and, on text IR, in
// moec-onnx-opt.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_IMPORTERS_ONNX_ONNXPASSES_TD
#define MOEC_IMPORTERS_ONNX_ONNXPASSES_TD

include "mlir/Pass/PassBase.td"

def FoldOnnxBatchPass : Pass<"moec-fold-onnx-batch", "ModuleOp"> {
  let summary = "fold the batch of [batch, seq, ...] inputs into the tokens";
  let description = [{
    When every input of `@forward` is `[1 or ?, ?, ...]`, drops the leading
    batch dimension from the inputs and from every value computed from them,
    and rewrites the nodes' axis attributes (axes, perm, Reshape targets) for
    the rank one lower, so that the graph computes one sequence in the
    token-major layout of the `moe` dialect. A node it cannot fold fails the
    pass; one error lists every such node with the reason.
  }];
}

def RaiseOnnxSubgraphsPass : Pass<"moec-raise-onnx-subgraphs", "ModuleOp"> {
  let summary = "raise ONNX subgraphs to moe.moe, moe.attention, "
                "moe.rms_norm, moe.rope and moe.silu_mul";
  let description = [{
    Recognises, on `onnx.node` graphs, the subgraphs that have one `moe` op
    as their meaning: the RMSNorm of Pow/ReduceMean/Add/Sqrt/Div/Mul, the
    rotate-half RoPE, causal scaled-dot-product attention (MHA and GQA), the
    standard-op MoE block (softmax or sigmoid router, optional correction
    bias and group limit, TopK, renormalisation, dense routing weights,
    every expert, weighted sum), `com.microsoft.MoE` and `QMoE` with the
    router that feeds them, a routed scaling factor and a shared expert
    added to an MoE layer, and SwiGLU. Everything it does not recognise is
    left as it is.
  }];
  let dependentDialects = ["::mlir::moe::MoEDialect"];
}

def LegalizeOnnxPass : Pass<"moec-legalize-onnx", "ModuleOp"> {
  let summary = "legalise an imported ONNX graph into the moe dialect";
  let description = [{
    Folds a batch dimension (as --moec-fold-onnx-batch), raises subgraphs
    (as --moec-raise-onnx-subgraphs), then rewrites the
    remaining nodes one by one where `moe` has an op (MatMul, Gemm, Einsum
    matmul forms, Add, Mul, Gather of an embedding table, Reshape,
    Unsqueeze, Squeeze, Flatten, Slice, Concat, Expand, Identity, Cast to
    the same type, SimplifiedLayerNormalization, SkipSimplified-
    LayerNormalization, RMSNormalization) and turns initializers into
    `moe.weight`. If any `onnx.node` is left, it fails with one error that
    lists every one of them as (domain, op type, opset, name) with the
    reason it was not legalised.
  }];
  let dependentDialects = ["::mlir::moe::MoEDialect"];
}

#endif // MOEC_IMPORTERS_ONNX_ONNXPASSES_TD
