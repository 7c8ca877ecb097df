//===- Passes.td - moec passes -----------------------------*- tablegen -*-===//
//
// Every moec pass, declared once: the decomposition of `moe.moe`, the
// fusions of the `fused` phase and the FP8 lowering of the `fp8` phase
// (docs/passes.md). Each is implemented in the file named after its flag.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_PASSES_TD
#define MOEC_PASSES_TD

include "mlir/Pass/PassBase.td"

//===----------------------------------------------------------------------===//
// fused phase
//===----------------------------------------------------------------------===//

def DecomposeMoEPass : Pass<"moec-decompose-moe", "func::FuncOp"> {
  let summary = "Expand each `moe.moe` into routing, grouped GEMMs and combine";
  let description = [{
    Rewrites `moe.moe` into `moe.router` → `moe.dispatch` → two
    `moe.grouped_matmul`s (gate, up) → `moe.silu_mul` → `moe.grouped_matmul`
    (down) → `moe.combine`. Shared experts become `moe.matmul`s and a
    `moe.silu_mul` whose output (scaled by `moe.sigmoid_gate` for Qwen2-MoE's
    shared expert gate) is added to the combine's.
  }];
  let dependentDialects = ["moe::MoEDialect"];
}

def FoldSharedExpertsPass : Pass<"moec-fold-shared-experts", "func::FuncOp"> {
  let summary = "Fold shared experts into the routed grouped GEMMs";
  let description = [{
    A shared expert as wide as a routed one becomes expert `E` of the routed
    grouped GEMMs: its weights are stacked after the routed experts' and the
    router appends it to every token's selection with weight 1
    (`shared_experts = 1`), so the separate shared GEMMs and the add vanish.
    Runs on the output of `--moec-decompose-moe`, before
    `--moec-fuse-gate-up`. Off by default in the pipeline.
  }];
  let dependentDialects = ["moe::MoEDialect"];
}

def FuseGateUpPass : Pass<"moec-fuse-gate-up", "func::FuncOp"> {
  let summary = "Fuse gate and up projections into one GEMM with a SwiGLU "
                "epilogue";
  let description = [{
    `silu_mul(gemm(x, W_gate), gemm(x, W_up))` becomes
    `gemm(x, concat(W_gate, W_up)) {epilogue = silu_mul}` for routed experts
    (`moe.grouped_matmul`), dense MLPs and shared experts (`moe.matmul`).
    The weights are concatenated along `N`; FP8 checkpoint weights only when
    the split point is a multiple of their scale block.
  }];
  let dependentDialects = ["moe::MoEDialect"];
}

def FuseCombineResidualPass
    : Pass<"moec-fuse-combine-residual", "func::FuncOp"> {
  let summary = "Fuse the add that follows a `moe.combine` into it";
  let description = [{
    `add(combine(rows, positions, weights), r)` becomes
    `combine(rows, positions, weights) residual r`.
  }];
  let dependentDialects = ["moe::MoEDialect"];
}

def FuseQKVPass : Pass<"moec-fuse-qkv", "func::FuncOp"> {
  let summary = "Concatenate attention input projections that share an input";
  let description = [{
    The `moe.matmul`s of one layer that read the same activation with q, k,
    v (or MLA's q_a and kv_a) weights become one GEMM over the concatenated
    weights (and biases) followed by a `moe.slice` per projection.
  }];
  let dependentDialects = ["moe::MoEDialect"];
}

def FuseAddRmsNormPass : Pass<"moec-fuse-add-rms-norm", "func::FuncOp"> {
  let summary = "Fuse RMSNorm with the residual add before it";
  let description = [{
    `rms_norm(add(a, b), w)` becomes `moe.add_rms_norm a, b, w`, which
    returns both the sum (the residual stream) and the normalised value.
  }];
  let dependentDialects = ["moe::MoEDialect"];
}

//===----------------------------------------------------------------------===//
// fp8 phase
//===----------------------------------------------------------------------===//

def LowerToFp8Pass : Pass<"moec-lower-to-fp8", "func::FuncOp"> {
  let summary = "Lower GEMMs to block-scaled FP8 (DeepSeek-V3 scheme)";
  let description = [{
    Weights of the GEMMs that the policy allows go to `f8E4M3FN` with one
    scale per 128x128 block (a `#moe.quantize` transform on their
    `moe.weight`; FP8 checkpoint weights stay as stored), activations are
    quantized per token per 128 channels by one `moe.quantize` per
    activation, and the GEMMs become `moe.fp8_matmul` /
    `moe.fp8_grouped_matmul`. Router gates, norms, embeddings and the
    attention softmax have no FP8 form and always stay in high precision;
    the lm_head does by default. Roles and layers come from each weight's
    `#moe.role`, which the importers set (passes/Roles.h); a weight without
    one is `unknown`, has no layer, and goes to FP8.
  }];
  let dependentDialects = ["moe::MoEDialect"];
  let options = [
    Option<"keepLmHead", "keep-lm-head", "bool", /*default=*/"true",
           "Keep the lm_head GEMM in high precision">,
    Option<"keepAttention", "keep-attention", "bool", /*default=*/"false",
           "Keep the attention projections in high precision">,
    Option<"keepFirstLayers", "keep-first-layers", "unsigned",
           /*default=*/"0",
           "Keep the GEMMs of the first N decoder layers in high precision">,
    Option<"keepLastLayers", "keep-last-layers", "unsigned", /*default=*/"0",
           "Keep the GEMMs of the last N decoder layers in high precision">,
    Option<"pow2Scales", "pow2-scales", "bool", /*default=*/"false",
           "Round activation and compile-time weight scales up to powers of "
           "two">,
  ];
}

def FuseQuantizePass : Pass<"moec-fuse-quantize", "func::FuncOp"> {
  let summary = "Fuse per-token activation quantization into its producer";
  let description = [{
    `q, s = moe.quantize(p.result)` with blocks of one row becomes two more
    results of `p` (`quantize = <scheme>`) when `p` is a `moe.rms_norm`,
    `moe.add_rms_norm` (its normalised result), `moe.silu_mul` or a GEMM
    (`moe.matmul`, `moe.grouped_matmul`, `moe.fp8_matmul`,
    `moe.fp8_grouped_matmul`, typically the gate/up GEMM with the `silu_mul`
    epilogue that feeds the down projection). The high-precision result
    stays for its other users. Runs after `--moec-lower-to-fp8`.
  }];
  let dependentDialects = ["moe::MoEDialect"];
}

//===----------------------------------------------------------------------===//
// planned phase
//===----------------------------------------------------------------------===//

def UseKvCachePass : Pass<"moec-use-kv-cache", "func::FuncOp"> {
  let summary = "Turn causal attention into paged attention over a KV cache";
  let description = [{
    Makes the function one generation step (docs/generation.md): every
    causal `moe.attention` becomes a `moe.paged_attention` that writes its
    rows' K/V into the layer's cache and attends over the row's sequence.
    The function gets, after its arguments, `slots` (`tensor<?xi32>`, each
    row's sequence slot), `page_table` (`tensor<S x M x i32>`: for
    `S = max-sequences` slots, `M = ceil(max-context / page-tokens)` page
    ids) and, per attention layer `i` in program order, the KV cache state
    `kv_cache.<i>.k` and `kv_cache.<i>.v` (`tensor<? x P x Hkv x D>` of
    `dtype`, marked `moe.kv_cache`). The rows' positions are the argument
    named `positions`. `max-context` 0 takes the model's
    `moe.max_positions` (the importer's `max_position_embeddings`).
    Non-causal attention cannot be cached and is an error.

    DeepSeek's multi-head latent attention in the importer's expanded form
    (`q = concat(q_nope, q_rope)`, keys and values sliced from the `attn_kv_b`
    GEMM of the latent, the rotary key expanded to all heads) becomes a
    `moe.paged_mla_attention` instead, with one cache `kv_cache.<i>.latent`
    (`tensor<? x P x 1 x (R + Dr)>`) holding the latent and the rotary key;
    an FP8 `kv_b` GEMM's weight enters it dequantized. The ops that computed
    the expanded keys and values are erased.

    When the first result is computed by a GEMM (the lm_head), last comes
    `logits_rows` (`tensor<?xi32>`): the GEMM reads its per-row operands
    through `moe.select_rows` of it, so the logits are computed only for the
    rows that sample.
  }];
  let dependentDialects = ["moe::MoEDialect"];
  let options = [
    Option<"pageTokens", "page-tokens", "int64_t", /*default=*/"16",
           "Positions per cache page">,
    Option<"maxSequences", "max-sequences", "int64_t", /*default=*/"64",
           "Sequences (slots) one step may hold">,
    Option<"maxContext", "max-context", "int64_t", /*default=*/"0",
           "Longest sequence; 0 takes the model's `moe.max_positions`">,
    Option<"cacheType", "dtype", "std::string", /*default=*/"\"bf16\"",
           "Cache element type: bf16 or f32">,
  ];
}

def PlanBuffersPass : Pass<"moec-plan-buffers", "func::FuncOp"> {
  let summary = "Order the kernels and place every activation in one arena";
  let description = [{
    Decides what runs and where its data lives (docs/planning.md). Weight
    expressions (`moe.weight` and every op whose operands are all weights)
    get `moe.constant`: the artifact writer folds them into the weights
    section. `moe.reshape` results alias their operand's buffer. Every
    other op is a step, numbered in program order by `#moe.step`. Each
    activation (arguments included) gets a 128-byte aligned offset in one
    arena sized for `max-tokens` tokens (`#moe.buffers`, one offset per
    result, with rows per token where a result holds `k` rows per token);
    values whose lifetimes are disjoint share memory (linear scan in step
    order, best fit). The function gets `#moe.plan` (arena bytes, max
    tokens). The dialect verifies the plan (`dialects/MoEPlan.td`).
  }];
  let dependentDialects = ["moe::MoEDialect"];
  let options = [
    Option<"maxTokens", "max-tokens", "int64_t", /*default=*/"128",
           "Largest token count a run accepts; the arena is sized for it">,
  ];
}

#endif // MOEC_PASSES_TD
