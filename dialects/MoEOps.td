//===- MoEOps.td - moe dialect operations ------------------*- tablegen -*-===//
//
// The ops of the `moe` dialect (DESIGN.md §3): checkpoint weights, the dense
// transformer, routing and expert computation, and FP8 with block scales.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_OPS_TD
#define MOE_OPS_TD

include "dialects/MoEAttrs.td"
include "dialects/MoEPlan.td"
include "dialects/MoERoles.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/IR/CommonTypeConstraints.td"
include "mlir/IR/OpAsmInterface.td"
include "mlir/Interfaces/InferTypeOpInterface.td"

def MoE_FloatTensor : RankedTensorOf<[AnyFloat]>;
def MoE_IndexTensor : RankedTensorOf<[I32, I64]>;
def MoE_I32Tensor : RankedTensorOf<[I32]>;
def MoE_F32Tensor : RankedTensorOf<[F32]>;
def MoE_Fp8Tensor : RankedTensorOf<[F8E4M3FN, F8E5M2]>;
def MoE_BoolTensor : RankedTensorOf<[I1]>;
def MoE_NumericTensor : RankedTensorOf<[AnyFloat, AnySignlessInteger]>;
/// FP8 or `u8` codes in signless `i8` (`#moe.block_scale<format = u8>`).
def MoE_QuantizedTensor : RankedTensorOf<[F8E4M3FN, F8E5M2, I8]>;

//===----------------------------------------------------------------------===//
// Fused activation quantization
//===----------------------------------------------------------------------===//

def MoE_FusedQuantizeOpInterface : OpInterface<"FusedQuantizeOpInterface"> {
  let cppNamespace = "::mlir::moe";
  let description = [{
    An op that can emit its high-precision result also quantized to FP8,
    per token per block of channels, as `moe.quantize` would compute it
    (`--moec-fuse-quantize`). With the `quantize` scheme set, the op has two
    more results: the FP8 data and its f32 scales. The high-precision result
    is kept for its other users.
  }];
  let methods = [
    InterfaceMethod<"The result the fused quantization reads.",
      "::mlir::Value", "getQuantizeSource", (ins), [{}],
      [{ return $_op.getResult(); }]>,
    InterfaceMethod<"The fused scheme, null when nothing is fused.",
      "::mlir::moe::BlockScaleAttr", "getQuantizeScheme", (ins), [{}],
      [{ return $_op.getQuantizeAttr(); }]>,
    InterfaceMethod<"The FP8 data result, null when nothing is fused.",
      "::mlir::Value", "getQuantizedResult", (ins), [{}],
      [{ return $_op.getQuantized(); }]>,
    InterfaceMethod<"The f32 scale result, null when nothing is fused.",
      "::mlir::Value", "getQuantizedScaleResult", (ins), [{}],
      [{ return $_op.getQuantizedScale(); }]>,
  ];
  let verify = [{ return ::mlir::moe::detail::verifyFusedQuantize($_op); }];
}

/// The optional `quantize` scheme of an op with fused quantization.
defvar MoE_FusedQuantizeArg =
    (ins OptionalAttr<MoE_BlockScaleAttr>:$quantize);

/// The two optional results of an op with fused quantization, after its own.
defvar MoE_FusedQuantizeResults =
    (outs Optional<MoE_Fp8Tensor>:$quantized,
          Optional<MoE_F32Tensor>:$quantized_scale);

/// The assembly of those results: `, type(quantized), type(quantized_scale)`
/// after the op's own result types, absent when nothing is fused.
defvar MoE_FusedQuantizeTypes =
    "(`,` type($quantized)^ `,` type($quantized_scale))?";

/// Keeps the single-result conveniences (`getType()`, conversion to a value)
/// of ops whose only result was `result` before quantization could be fused
/// into them, and their printed form: `%0 = ...`, or
/// `%0, %quantized, %quantized_scale = ...` when fused (with the
/// `OpAsmOpInterface` trait, which stops ODS from naming every result).
defvar MoE_FusedQuantizeClassDecl = [{
    /// The type of the high-precision `result`.
    ::mlir::RankedTensorType getType() { return getResult().getType(); }
    /// The high-precision `result`.
    operator ::mlir::TypedValue<::mlir::RankedTensorType>() {
      return getResult();
    }
    /// Names the fused FP8 results in printed IR.
    void getAsmResultNames(::mlir::OpAsmSetValueNameFn setNameFn) {
      if (::mlir::Value quantized = getQuantized())
        setNameFn(quantized, "quantized");
      if (::mlir::Value scale = getQuantizedScale())
        setNameFn(scale, "quantized_scale");
    }
}];

//===----------------------------------------------------------------------===//
// moe.weight
//===----------------------------------------------------------------------===//

def MoE_WeightOp : MoE_Op<"weight"> {
  let summary = "a named tensor from the checkpoint";
  let description = [{
    References one checkpoint tensor, or one per expert, without copying its
    data. `stored_type` is the type of each source as stored. `transforms`
    is the ordered list of layout transforms the artifact writer applies while
    streaming: `#moe.stack` (sources along a new leading dimension),
    `#moe.transpose` (swap the last two dimensions) and `#moe.quantize`
    (FP8 with block scales). An already-FP8 checkpoint tensor lists its
    `weight_scale_inv` tensors in `scale_sources`. A quantized weight has a
    second result: its f32 block scales. `role` (a `#moe.role`) says what
    the weight is for and in which decoder layer; importers set it, passes
    such as --moec-lower-to-fp8 read it, and a weight without one is
    `unknown`.

    ```mlir
    %w = moe.weight [#moe.tensor_ref<"model.safetensors", "model.norm.weight">]
        stored tensor<64xbf16> role <norm> : tensor<64xbf16>
    %q = moe.weight [#moe.tensor_ref<"model.safetensors",
                                     "model.layers.3.self_attn.q_proj.weight">]
        stored tensor<64x64xbf16> role <attn_q, layer = 3> : tensor<64x64xbf16>
    %q, %s = moe.weight [#moe.tensor_ref<"model.safetensors", "q.weight">]
        stored tensor<256x128xbf16>
        {transforms = [#moe.quantize<#moe.block_scale<format = e4m3fn,
                                                      block = [128, 128]>>]}
        : tensor<256x128xf8E4M3FN>, tensor<2x1xf32>
    ```
  }];
  let arguments = (ins
    TypedArrayAttrBase<MoE_TensorRefAttr, "tensor references">:$sources,
    TypeAttrOf<AnyRankedTensor>:$stored_type,
    DefaultValuedAttr<ArrayAttr, "{}">:$transforms,
    OptionalAttr<TypedArrayAttrBase<MoE_TensorRefAttr, "scale references">>:
        $scale_sources,
    OptionalAttr<MoE_BlockScaleAttr>:$stored_scheme,
    OptionalAttr<MoE_WeightRoleAttr>:$role
  );
  let results = (outs AnyRankedTensor:$result,
                      Optional<MoE_F32Tensor>:$scale);
  let assemblyFormat = [{
    $sources `stored` $stored_type (`scales` $scale_sources^)? (`role` $role^)?
    attr-dict
    `:` type($result) (`,` type($scale)^)?
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    /// The block-scale scheme of the result, if it is quantized: from a
    /// `#moe.quantize` transform or `stored_scheme`.
    ::mlir::moe::BlockScaleAttr getScheme();
  }];
}

//===----------------------------------------------------------------------===//
// Dense transformer
//===----------------------------------------------------------------------===//

def MoE_EmbedOp : MoE_Op<"embed"> {
  let summary = "gather embedding rows for token ids";
  let description = [{
    `result[t] = table[ids[t]]`, converted to the result element type.

    ```mlir
    %h = moe.embed %table, %ids : tensor<256x64xbf16>, tensor<?xi32> -> tensor<?x64xf32>
    ```
  }];
  let arguments = (ins MoE_FloatTensor:$table, MoE_IndexTensor:$ids);
  let results = (outs MoE_FloatTensor:$result);
  let assemblyFormat = [{
    $table `,` $ids attr-dict `:` type($table) `,` type($ids) `->` type($result)
  }];
  let hasVerifier = 1;
}

def MoE_MatmulOp : MoE_Op<"matmul", [AttrSizedResultSegments,
                                     MoE_FusedQuantizeOpInterface,
                                     OpAsmOpInterface]> {
  let summary = "x times the transpose of a checkpoint-layout weight";
  let description = [{
    `result[t, n] = sum_k x[t, k] * w[n, k] (+ bias[n])`, accumulated in f32.
    `w` keeps the checkpoint layout `[out, in]`. With `epilogue = silu_mul`
    the product's first half is the gate and the second half the up
    projection, and the result is `silu(gate) * up` (half the columns).
    With `quantize` set, the op also returns `result` quantized as
    `moe.quantize` with that scheme would (`--moec-fuse-quantize`).

    ```mlir
    %y = moe.matmul %x, %w : tensor<?x64xf32>, tensor<128x64xbf16> -> tensor<?x128xf32>
    %h, %hq, %hs = moe.matmul %x, %wgu
        {epilogue = #moe.epilogue<silu_mul>,
         quantize = #moe.block_scale<format = e4m3fn, block = [1, 128]>}
        : tensor<?x64xf32>, tensor<512x64xbf16>
        -> tensor<?x256xf32>, tensor<?x256xf8E4M3FN>, tensor<?x2xf32>
    ```
  }];
  let arguments = !con((ins MoE_FloatTensor:$x, MoE_FloatTensor:$w,
                            Optional<MoE_FloatTensor>:$bias,
                            DefaultValuedAttr<MoE_EpilogueAttr,
                                "::mlir::moe::Epilogue::none">:$epilogue),
                       MoE_FusedQuantizeArg);
  let results = !con((outs MoE_FloatTensor:$result), MoE_FusedQuantizeResults);
  let assemblyFormat = !strconcat([{
    $x `,` $w (`bias` $bias^)? attr-dict `:` type($x) `,` type($w)
    (`,` type($bias)^)? `->` type($result)
  }],
      MoE_FusedQuantizeTypes);
  let builders = [
    OpBuilder<(ins "::mlir::Type":$result, "::mlir::Value":$x,
                   "::mlir::Value":$w, "::mlir::Value":$bias,
                   CArg<"::mlir::moe::Epilogue",
                        "::mlir::moe::Epilogue::none">:$epilogue), [{
      build($_builder, $_state, result, ::mlir::Type(), ::mlir::Type(), x, w,
            bias, epilogue, ::mlir::moe::BlockScaleAttr());
    }]>
  ];
  let hasVerifier = 1;
  let extraClassDeclaration = MoE_FusedQuantizeClassDecl;
}

def MoE_AddOp : MoE_Op<"add", [SameOperandsAndResultType]> {
  let summary = "elementwise sum";
  let description = [{
    ```mlir
    %r = moe.add %a, %b : tensor<?x64xf32>
    ```
  }];
  let arguments = (ins MoE_FloatTensor:$lhs, MoE_FloatTensor:$rhs);
  let results = (outs MoE_FloatTensor:$result);
  let assemblyFormat = "$lhs `,` $rhs attr-dict `:` type($result)";
}

def MoE_MulOp : MoE_Op<"mul", [SameOperandsAndResultType]> {
  let summary = "elementwise product";
  let description = [{
    ```mlir
    %r = moe.mul %a, %b : tensor<?x64xf32>
    ```
  }];
  let arguments = (ins MoE_FloatTensor:$lhs, MoE_FloatTensor:$rhs);
  let results = (outs MoE_FloatTensor:$result);
  let assemblyFormat = "$lhs `,` $rhs attr-dict `:` type($result)";
}

def MoE_RmsNormOp : MoE_Op<"rms_norm", [AttrSizedResultSegments,
                                        MoE_FusedQuantizeOpInterface,
                                        OpAsmOpInterface]> {
  let summary = "RMSNorm over the last dimension";
  let description = [{
    `result = x / sqrt(mean(x^2) + epsilon) * weight`, computed in f32.
    With `quantize` set, the op also returns `result` quantized as
    `moe.quantize` with that scheme would (`--moec-fuse-quantize`).

    ```mlir
    %n = moe.rms_norm %x, %w {epsilon = 1.0e-06 : f64}
        : tensor<?x64xf32>, tensor<64xbf16> -> tensor<?x64xf32>
    %m, %mq, %ms = moe.rms_norm %x, %w
        {epsilon = 1.0e-06 : f64,
         quantize = #moe.block_scale<format = e4m3fn, block = [1, 128]>}
        : tensor<?x64xf32>, tensor<64xbf16>
        -> tensor<?x64xf32>, tensor<?x64xf8E4M3FN>, tensor<?x1xf32>
    ```
  }];
  let arguments = !con((ins MoE_FloatTensor:$x, MoE_FloatTensor:$weight,
                            F64Attr:$epsilon),
                       MoE_FusedQuantizeArg);
  let results = !con((outs MoE_FloatTensor:$result), MoE_FusedQuantizeResults);
  let assemblyFormat = !strconcat([{
    $x `,` $weight attr-dict `:` type($x) `,` type($weight) `->` type($result)
  }],
      MoE_FusedQuantizeTypes);
  let builders = [
    OpBuilder<(ins "::mlir::Type":$result, "::mlir::Value":$x,
                   "::mlir::Value":$weight, "::mlir::FloatAttr":$epsilon), [{
      build($_builder, $_state, result, ::mlir::Type(), ::mlir::Type(), x,
            weight, epsilon, ::mlir::moe::BlockScaleAttr());
    }]>
  ];
  let hasVerifier = 1;
  let extraClassDeclaration = MoE_FusedQuantizeClassDecl;
}

def MoE_AddRmsNormOp : MoE_Op<"add_rms_norm",
                               [AllTypesMatch<["lhs", "rhs", "sum"]>,
                                AttrSizedResultSegments,
                                MoE_FusedQuantizeOpInterface]> {
  let summary = "residual add fused with the RMSNorm that follows it";
  let description = [{
    `sum = lhs + rhs` and `result = rms_norm(sum) * weight` (as
    `moe.rms_norm`, in f32) in one pass over the rows. `sum` is the new
    residual stream; `result` feeds the next block. With `quantize` set, the
    op also returns `result` (not `sum`) quantized as `moe.quantize` with
    that scheme would (`--moec-fuse-quantize`).

    ```mlir
    %h, %n = moe.add_rms_norm %r, %a, %w {epsilon = 1.0e-06 : f64}
        : tensor<?x64xf32>, tensor<64xbf16> -> tensor<?x64xf32>
    %h2, %m, %mq, %ms = moe.add_rms_norm %r, %a, %w
        {epsilon = 1.0e-06 : f64,
         quantize = #moe.block_scale<format = e4m3fn, block = [1, 128]>}
        : tensor<?x64xf32>, tensor<64xbf16>
        -> tensor<?x64xf32>, tensor<?x64xf8E4M3FN>, tensor<?x1xf32>
    ```
  }];
  let arguments = !con((ins MoE_FloatTensor:$lhs, MoE_FloatTensor:$rhs,
                            MoE_FloatTensor:$weight, F64Attr:$epsilon),
                       MoE_FusedQuantizeArg);
  let results = !con((outs MoE_FloatTensor:$sum, MoE_FloatTensor:$result),
                     MoE_FusedQuantizeResults);
  let assemblyFormat = !strconcat([{
    $lhs `,` $rhs `,` $weight attr-dict `:` type($lhs) `,` type($weight)
    `->` type($result)
  }],
      MoE_FusedQuantizeTypes);
  let builders = [
    OpBuilder<(ins "::mlir::Type":$sum, "::mlir::Type":$result,
                   "::mlir::Value":$lhs, "::mlir::Value":$rhs,
                   "::mlir::Value":$weight, "::mlir::FloatAttr":$epsilon), [{
      build($_builder, $_state, sum, result, ::mlir::Type(), ::mlir::Type(),
            lhs, rhs, weight, epsilon, ::mlir::moe::BlockScaleAttr());
    }]>
  ];
  let hasVerifier = 1;
}

def MoE_SiluMulOp : MoE_Op<"silu_mul",
                           [AllTypesMatch<["gate", "up", "result"]>,
                            AttrSizedResultSegments,
                            MoE_FusedQuantizeOpInterface, OpAsmOpInterface]> {
  let summary = "SwiGLU: silu(gate) * up";
  let description = [{
    With `quantize` set, the op also returns `result` quantized as
    `moe.quantize` with that scheme would (`--moec-fuse-quantize`).

    ```mlir
    %h = moe.silu_mul %gate, %up : tensor<?x32xf32>
    %h2, %hq, %hs = moe.silu_mul %gate, %up
        {quantize = #moe.block_scale<format = e4m3fn, block = [1, 128]>}
        : tensor<?x32xf32>, tensor<?x32xf8E4M3FN>, tensor<?x1xf32>
    ```
  }];
  let arguments = !con((ins MoE_FloatTensor:$gate, MoE_FloatTensor:$up),
                       MoE_FusedQuantizeArg);
  let results = !con((outs MoE_FloatTensor:$result), MoE_FusedQuantizeResults);
  let assemblyFormat = !strconcat("$gate `,` $up attr-dict `:` type($result) ",
                                  MoE_FusedQuantizeTypes);
  let builders = [
    OpBuilder<(ins "::mlir::Type":$result, "::mlir::Value":$gate,
                   "::mlir::Value":$up), [{
      build($_builder, $_state, result, ::mlir::Type(), ::mlir::Type(), gate,
            up, ::mlir::moe::BlockScaleAttr());
    }]>
  ];
  let extraClassDeclaration = MoE_FusedQuantizeClassDecl;
}

def MoE_RopeOp : MoE_Op<"rope", [AllTypesMatch<["x", "result"]>]> {
  let summary = "rotary position embedding over the last dimension";
  let description = [{
    Rotates each `[T, heads, D]` row by its position with frequencies
    `theta^(-2i/D)`, scaled by `scaling` when present. `interleaved` pairs
    elements `(2i, 2i+1)`; otherwise `(i, i + D/2)` (rotate-half).

    ```mlir
    %r = moe.rope %q, %pos {theta = 10000.0 : f64}
        : tensor<?x4x16xf32>, tensor<?xi32>
    ```
  }];
  let arguments = (ins MoE_FloatTensor:$x, MoE_IndexTensor:$positions,
                       F64Attr:$theta,
                       UnitAttr:$interleaved,
                       OptionalAttr<MoE_RopeScalingAttr>:$scaling);
  let results = (outs MoE_FloatTensor:$result);
  let assemblyFormat = [{
    $x `,` $positions attr-dict `:` type($x) `,` type($positions)
  }];
  let hasVerifier = 1;
}

def MoE_AttentionOp : MoE_Op<"attention"> {
  let summary = "scaled dot-product attention (MHA, GQA, expanded MLA)";
  let description = [{
    `q: [T, Hq, Dqk]`, `k: [T, Hkv, Dqk]`, `v: [T, Hkv, Dv]` → `[T, Hq, Dv]`.
    Query head `h` attends to key/value head `h / (Hq / Hkv)`. The softmax
    is computed in f32 over `scale * q·k`, masked causally when `causal`.
    MLA in its expanded form has `Dqk != Dv`.

    ```mlir
    %o = moe.attention %q, %k, %v {scale = 0.25 : f64, causal}
        : tensor<?x4x16xf32>, tensor<?x2x16xf32>, tensor<?x2x16xf32>
        -> tensor<?x4x16xf32>
    ```
  }];
  let arguments = (ins MoE_FloatTensor:$q, MoE_FloatTensor:$k,
                       MoE_FloatTensor:$v, F64Attr:$scale, UnitAttr:$causal);
  let results = (outs MoE_FloatTensor:$result);
  let assemblyFormat = [{
    $q `,` $k `,` $v attr-dict `:` type($q) `,` type($k) `,` type($v)
    `->` type($result)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Shape ops
//===----------------------------------------------------------------------===//

/// An op that writes the model's state (the KV cache) in place: it has a
/// memory write effect, so it is neither folded away nor merged.
class MoE_StatefulOp<string mnemonic, list<Trait> traits = []>
    : Op<MoE_Dialect, mnemonic,
         !listconcat(traits, [MemoryEffects<[MemWrite]>,
                              MoE_StaticFeatureDims])>;

def MoE_PagedAttentionOp : MoE_StatefulOp<"paged_attention"> {
  let summary = "causal attention over a paged KV cache (one generation step)";
  let description = [{
    One step of generation for one attention layer. Each of the step's `T`
    rows has a position (`positions[t]`) and a sequence slot (`slots[t]`);
    slot `s` owns the pages `page_table[s, 0..]`, page `j` holding positions
    `j * P .. j * P + P - 1` (`P` = page tokens, dimension 1 of the caches).

    The op first writes every row's `k[t]` and `v[t]` into the caches at its
    slot's page for `positions[t]` (converted to the cache element type),
    then gives each row causal attention over its slot's cached positions
    `0 .. positions[t]` (those written by earlier steps and by this one):
    query head `h` attends to key/value head `h / (Hq / Hkv)`, the softmax
    in f32 over `scale * q·k`, as `moe.attention` computes it.

    `k_cache` and `v_cache` are the model's state, not values: function
    arguments marked `moe.kv_cache`, `[pages, P, Hkv, D]`, written in place.
    The pages are the runtime's (sized at load time); the page table holds
    up to `max_sequences x max_pages` entries. `layer` names the decoder
    layer, for diagnostics and the manifest.

    ```mlir
    %o = moe.paged_attention %q, %k, %v, %positions, %slots, %table,
        %kc, %vc {scale = 0.25 : f64, layer = 0 : i64}
        : tensor<?x4x16xf32>, tensor<?x2x16xf32>, tensor<?x2x16xf32>,
          tensor<?xi32>, tensor<?xi32>, tensor<8x64xi32>,
          tensor<?x16x2x16xbf16>, tensor<?x16x2x16xbf16>
        -> tensor<?x4x16xf32>
    ```
  }];
  let arguments = (ins MoE_FloatTensor:$q, MoE_FloatTensor:$k,
                       MoE_FloatTensor:$v, MoE_IndexTensor:$positions,
                       MoE_I32Tensor:$slots, MoE_I32Tensor:$page_table,
                       MoE_FloatTensor:$k_cache, MoE_FloatTensor:$v_cache,
                       F64Attr:$scale, I64Attr:$layer);
  let results = (outs MoE_FloatTensor:$result);
  let assemblyFormat = [{
    $q `,` $k `,` $v `,` $positions `,` $slots `,` $page_table `,` $k_cache
    `,` $v_cache attr-dict `:` type($q) `,` type($k) `,` type($v) `,`
    type($positions) `,` type($slots) `,` type($page_table) `,`
    type($k_cache) `,` type($v_cache) `->` type($result)
  }];
  let hasVerifier = 1;
}

def MoE_SelectRowsOp : MoE_Op<"select_rows"> {
  let summary = "the rows of a generation step that need logits";
  let description = [{
    Row `i` of the result is row `rows[i]` of `x`. The result has as many
    rows as `rows` has entries (R), which may be fewer than `x`'s T: in a
    generation step only the rows that sample need the lm_head (the last
    row of a prompt chunk, every decode row), so the ops after it run on R
    rows (docs/generation.md). Every entry must be in `[0, T)`.

    ```mlir
    %h = moe.select_rows %x, %rows : tensor<?x64xf32>, tensor<?xi32>
        -> tensor<?x64xf32>
    ```
  }];
  let arguments = (ins MoE_FloatTensor:$x, MoE_I32Tensor:$rows);
  let results = (outs MoE_FloatTensor:$result);
  let assemblyFormat = [{
    $x `,` $rows attr-dict `:` type($x) `,` type($rows) `->` type($result)
  }];
  let hasVerifier = 1;
}

def MoE_PagedMlaAttentionOp : MoE_StatefulOp<"paged_mla_attention"> {
  let summary = "DeepSeek multi-head latent attention over a paged latent "
                "cache, with the up-projections absorbed";
  let description = [{
    One step of generation for one MLA layer (DeepSeek-V2/V3), with rows,
    positions, slots and pages as in `moe.paged_attention`. Instead of each
    head's keys and values, the cache keeps per position the compressed
    latent `c` (`R` = kv_lora_rank values, after the kv_a layernorm) and the
    shared rotary key `k_rope` (`Dr` values, after RoPE): `cache` is one
    function argument marked `moe.kv_cache`, `[pages, P, 1, R + Dr]`.

    The op first writes every row's `concat(latent[t], k_rope[t, 0])` at its
    slot's page for `positions[t]`, then computes for each row and head `h`
    the attention in latent space, the up-projection `kv_b` (`[H * (Dn +
    Dv), R]`, the checkpoint layout: head `h`'s `Dn` key rows then its `Dv`
    value rows) absorbed:

    - `q_lat = W_UK[h]^T q_nope[t, h]` (`W_UK[h]` = head `h`'s key rows),
    - `score_s = scale * (q_lat · c_s + q_rope[t, h] · k_rope_s)` over the
      slot's positions `s = 0 .. positions[t]`, softmax in f32,
    - `o_lat = sum_s p_s c_s`, `result[t, h] = W_UV[h] o_lat` (`W_UV[h]` =
      head `h`'s value rows).

    This equals `moe.attention` over the expanded keys `concat(c_s W_UK[h]^T,
    k_rope_s)` and values `c_s W_UV[h]^T` up to f32 rounding. `kv_b` is a
    weight expression (an FP8 weight enters dequantized), folded at compile
    time like any other.

    ```mlir
    %o = moe.paged_mla_attention %q_nope, %q_rope, %latent, %k_rope, %kv_b,
        %positions, %slots, %table, %cache {scale = 0.25 : f64, layer = 0 : i64}
        : tensor<?x4x32xf32>, tensor<?x4x16xf32>, tensor<?x32xf32>,
          tensor<?x1x16xf32>, tensor<224x32xbf16>, tensor<?xi32>,
          tensor<?xi32>, tensor<8x64xi32>, tensor<?x16x1x48xf32>
        -> tensor<?x4x24xf32>
    ```
  }];
  let arguments = (ins MoE_FloatTensor:$q_nope, MoE_FloatTensor:$q_rope,
                       MoE_FloatTensor:$latent, MoE_FloatTensor:$k_rope,
                       MoE_FloatTensor:$kv_b, MoE_IndexTensor:$positions,
                       MoE_I32Tensor:$slots, MoE_I32Tensor:$page_table,
                       MoE_FloatTensor:$cache, F64Attr:$scale, I64Attr:$layer);
  let results = (outs MoE_FloatTensor:$result);
  let assemblyFormat = [{
    $q_nope `,` $q_rope `,` $latent `,` $k_rope `,` $kv_b `,` $positions `,`
    $slots `,` $page_table `,` $cache attr-dict `:` type($q_nope) `,`
    type($q_rope) `,` type($latent) `,` type($k_rope) `,` type($kv_b) `,`
    type($positions) `,` type($slots) `,` type($page_table) `,`
    type($cache) `->` type($result)
  }];
  let hasVerifier = 1;
}

def MoE_ReshapeOp : MoE_Op<"reshape"> {
  let summary = "reshape, keeping the leading token dimension";
  let description = [{
    ```mlir
    %r = moe.reshape %x : tensor<?x64xf32> -> tensor<?x4x16xf32>
    ```
  }];
  let arguments = (ins MoE_FloatTensor:$x);
  let results = (outs MoE_FloatTensor:$result);
  let assemblyFormat = "$x attr-dict `:` type($x) `->` type($result)";
  let hasVerifier = 1;
}

def MoE_SliceOp : MoE_Op<"slice"> {
  let summary = "a contiguous range of the last dimension";
  let description = [{
    ```mlir
    %r = moe.slice %x {offset = 16 : i64} : tensor<?x4x24xf32> -> tensor<?x4x8xf32>
    ```
  }];
  let arguments = (ins MoE_FloatTensor:$x, I64Attr:$offset);
  let results = (outs MoE_FloatTensor:$result);
  let assemblyFormat = "$x attr-dict `:` type($x) `->` type($result)";
  let hasVerifier = 1;
}

def MoE_ConcatOp : MoE_Op<"concat"> {
  let summary = "concatenation along one dimension (the last by default)";
  let description = [{
    Concatenates `inputs` along dimension `dim`, or along the last dimension
    when `dim` is absent. Passes that fuse GEMMs concatenate weights along
    their `N` dimension (`dim = 0` for `[N, K]`, `dim = 1` for stacked
    `[E, N, K]`); the artifact writer folds a concat whose inputs are all
    weights.

    ```mlir
    %r = moe.concat %a, %b : tensor<?x4x16xf32>, tensor<?x4x8xf32> -> tensor<?x4x24xf32>
    %w = moe.concat %g, %u {dim = 1 : i64}
        : tensor<8x32x64xbf16>, tensor<8x32x64xbf16> -> tensor<8x64x64xbf16>
    ```
  }];
  let arguments = (ins Variadic<MoE_FloatTensor>:$inputs,
                       OptionalAttr<I64Attr>:$dim);
  let results = (outs MoE_FloatTensor:$result);
  let assemblyFormat = "$inputs attr-dict `:` type($inputs) `->` type($result)";
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    /// The dimension the inputs are concatenated along: `dim`, or the last
    /// dimension of the result when `dim` is absent.
    int64_t getConcatDim();
  }];
}

def MoE_ExpandOp : MoE_Op<"expand"> {
  let summary = "broadcast dimensions of size 1";
  let description = [{
    Repeats every size-1 dimension of `x` to the result's size (MLA's shared
    rotary key across heads).

    ```mlir
    %r = moe.expand %x : tensor<?x1x8xf32> -> tensor<?x4x8xf32>
    ```
  }];
  let arguments = (ins MoE_FloatTensor:$x);
  let results = (outs MoE_FloatTensor:$result);
  let assemblyFormat = "$x attr-dict `:` type($x) `->` type($result)";
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Generic token-wise ops
//
// What an ONNX graph computes with standard ops that no pattern raised: each
// op works on the rows of one token (or broadcasts a constant across them),
// so the leading dimension stays the token count.
//===----------------------------------------------------------------------===//

def MoE_UnaryOp : MoE_Op<"unary", [SameOperandsAndResultType]> {
  let summary = "an elementwise function of one operand";
  let description = [{
    Applies `kind` to every element, in f32: `neg`, `abs`, `sqrt`,
    `reciprocal` (`1 / x`), `exp`, `log`, `tanh`, `sigmoid`
    (`1 / (1 + exp(-x))`) or `relu` (`max(x, 0)`).

    ```mlir
    %r = moe.unary <sqrt> %x : tensor<?x64xf32>
    ```
  }];
  let arguments = (ins MoE_UnaryKindAttr:$kind, MoE_FloatTensor:$x);
  let results = (outs MoE_FloatTensor:$result);
  let assemblyFormat = "$kind $x attr-dict `:` type($result)";
}

def MoE_BinaryOp : MoE_Op<"binary"> {
  let summary = "an elementwise function of two broadcast operands";
  let description = [{
    `result = kind(lhs, rhs)` in f32 for `add`, `sub`, `mul`, `div`, `pow`,
    `max` and `min`, with numpy broadcasting: the shapes are aligned on their
    last dimensions and each dimension of an operand is 1 or the result's.
    An operand of lower rank (a weight, a scalar) is thus the same for every
    token. `moe.add` and `moe.mul` remain the ops for equal types.

    ```mlir
    %r = moe.binary <div> %x, %n : tensor<?x4x16xf32>, tensor<?x4x1xf32> -> tensor<?x4x16xf32>
    %s = moe.binary <pow> %x, %two : tensor<?x64xf32>, tensor<f32> -> tensor<?x64xf32>
    ```
  }];
  let arguments = (ins MoE_BinaryKindAttr:$kind, MoE_FloatTensor:$lhs,
                       MoE_FloatTensor:$rhs);
  let results = (outs MoE_FloatTensor:$result);
  let assemblyFormat = [{
    $kind $lhs `,` $rhs attr-dict `:` type($lhs) `,` type($rhs) `->`
    type($result)
  }];
  let hasVerifier = 1;
}

def MoE_CompareOp : MoE_Op<"compare"> {
  let summary = "an elementwise comparison of two broadcast operands";
  let description = [{
    `result = lhs <predicate> rhs` as `i1`, broadcast as `moe.binary`. The
    operands have the same element type, float or integer (integers compare
    as signed). A comparison with NaN is false except for `ne`.

    ```mlir
    %m = moe.compare <eq> %idx, %e : tensor<?x2xi64>, tensor<1xi64> -> tensor<?x2xi1>
    ```
  }];
  let arguments = (ins MoE_ComparePredicateAttr:$predicate,
                       MoE_NumericTensor:$lhs, MoE_NumericTensor:$rhs);
  let results = (outs MoE_BoolTensor:$result);
  let assemblyFormat = [{
    $predicate $lhs `,` $rhs attr-dict `:` type($lhs) `,` type($rhs) `->`
    type($result)
  }];
  let hasVerifier = 1;
}

def MoE_SelectOp : MoE_Op<"select"> {
  let summary = "elementwise choice between two broadcast operands";
  let description = [{
    `result = condition ? on_true : on_false`, the three operands broadcast
    as in `moe.binary` (ONNX `Where`).

    ```mlir
    %r = moe.select %m, %x, %ninf
        : tensor<?x8xi1>, tensor<?x8xf32>, tensor<f32> -> tensor<?x8xf32>
    ```
  }];
  let arguments = (ins MoE_BoolTensor:$condition, MoE_FloatTensor:$on_true,
                       MoE_FloatTensor:$on_false);
  let results = (outs MoE_FloatTensor:$result);
  let assemblyFormat = [{
    $condition `,` $on_true `,` $on_false attr-dict `:` type($condition) `,`
    type($on_true) `,` type($on_false) `->` type($result)
  }];
  let hasVerifier = 1;
}

def MoE_CastOp : MoE_Op<"cast"> {
  let summary = "elementwise conversion to another element type";
  let description = [{
    Floats round to nearest even (FP8 saturates, DESIGN.md §4); floats to
    integers truncate toward zero; `i1` reads as 0 or 1 and anything nonzero
    casts to true.

    ```mlir
    %f = moe.cast %m : tensor<?x8xi1> -> tensor<?x8xf32>
    ```
  }];
  let arguments = (ins MoE_NumericTensor:$x);
  let results = (outs MoE_NumericTensor:$result);
  let assemblyFormat = "$x attr-dict `:` type($x) `->` type($result)";
  let hasVerifier = 1;
}

def MoE_SoftmaxOp : MoE_Op<"softmax", [SameOperandsAndResultType]> {
  let summary = "softmax over the last dimension";
  let description = [{
    `exp(x - max) / sum(exp(x - max))` over the last dimension, in f32.

    ```mlir
    %p = moe.softmax %logits : tensor<?x8xf32>
    ```
  }];
  let arguments = (ins MoE_FloatTensor:$x);
  let results = (outs MoE_FloatTensor:$result);
  let assemblyFormat = "$x attr-dict `:` type($result)";
}

def MoE_ReduceOp : MoE_Op<"reduce"> {
  let summary = "sum, mean, max or min over non-token dimensions";
  let description = [{
    Reduces the dimensions `dims` (strictly increasing, never 0, the token
    dimension) with `kind`, accumulating in f32 in index order. The result
    keeps them with size 1 or drops them, as its type says.

    ```mlir
    %s = moe.reduce <sum> %w {dims = array<i64: 1>} : tensor<?x2x8xf32> -> tensor<?x8xf32>
    %m = moe.reduce <mean> %x2 {dims = array<i64: 1>} : tensor<?x64xf32> -> tensor<?x1xf32>
    ```
  }];
  let arguments = (ins MoE_ReduceKindAttr:$kind, MoE_FloatTensor:$x,
                       DenseI64ArrayAttr:$dims);
  let results = (outs MoE_FloatTensor:$result);
  let assemblyFormat = "$kind $x attr-dict `:` type($x) `->` type($result)";
  let hasVerifier = 1;
}

def MoE_TopKOp : MoE_Op<"topk"> {
  let summary = "the k largest elements of the last dimension";
  let description = [{
    `values` are the `k` largest elements of each row of the last dimension
    in descending order, `indices` their positions. Ties go to the lower
    index and NaN ranks below everything, as in `moe.router`.

    ```mlir
    %v, %i = moe.topk %p {k = 2 : i64} : tensor<?x8xf32> -> tensor<?x2xf32>, tensor<?x2xi64>
    ```
  }];
  let arguments = (ins MoE_FloatTensor:$x,
                       ConfinedAttr<I64Attr, [IntMinValue<1>]>:$k);
  let results = (outs MoE_FloatTensor:$values, MoE_IndexTensor:$indices);
  let assemblyFormat = [{
    $x attr-dict `:` type($x) `->` type($values) `,` type($indices)
  }];
  let hasVerifier = 1;
}

def MoE_TransposeOp : MoE_Op<"transpose"> {
  let summary = "permute the non-token dimensions";
  let description = [{
    `result` dimension `i` is `x` dimension `permutation[i]`; the token
    dimension stays first (`permutation[0] = 0`).

    ```mlir
    %t = moe.transpose %x {permutation = array<i64: 0, 2, 1>}
        : tensor<?x4x16xf32> -> tensor<?x16x4xf32>
    ```
  }];
  let arguments = (ins MoE_FloatTensor:$x, DenseI64ArrayAttr:$permutation);
  let results = (outs MoE_FloatTensor:$result);
  let assemblyFormat = "$x attr-dict `:` type($x) `->` type($result)";
  let hasVerifier = 1;
}

def MoE_BatchMatmulOp : MoE_Op<"batch_matmul"> {
  let summary = "a matrix product of two activations per token";
  let description = [{
    `result[t, ..., m, n] = sum_k lhs[t, ..., m, k] * rhs[t, ..., k, n]`,
    accumulated in f32 in index order. Both operands have the same leading
    dimensions (at least the token dimension), so each token multiplies its
    own matrices; products across tokens (attention scores) are
    `moe.attention`.

    ```mlir
    %y = moe.batch_matmul %a, %b
        : tensor<?x4x2x8xf32>, tensor<?x4x8x3xf32> -> tensor<?x4x2x3xf32>
    ```
  }];
  let arguments = (ins MoE_FloatTensor:$lhs, MoE_FloatTensor:$rhs);
  let results = (outs MoE_FloatTensor:$result);
  let assemblyFormat = [{
    $lhs `,` $rhs attr-dict `:` type($lhs) `,` type($rhs) `->` type($result)
  }];
  let hasVerifier = 1;
}

def MoE_GatherElementsOp : MoE_Op<"gather_elements"> {
  let summary = "elements of `x` picked along one dimension by indices";
  let description = [{
    `result[..., j, ...] = x[..., indices[..., j, ...], ...]` along `dim`
    (not 0), with the shape of `indices`; negative indices count from the
    end (ONNX `GatherElements`).

    ```mlir
    %w = moe.gather_elements %p, %i {dim = 1 : i64}
        : tensor<?x8xf32>, tensor<?x2xi64> -> tensor<?x2xf32>
    ```
  }];
  let arguments = (ins MoE_FloatTensor:$x, MoE_IndexTensor:$indices,
                       I64Attr:$dim);
  let results = (outs MoE_FloatTensor:$result);
  let assemblyFormat = [{
    $x `,` $indices attr-dict `:` type($x) `,` type($indices) `->`
    type($result)
  }];
  let hasVerifier = 1;
}

def MoE_ScatterElementsOp : MoE_Op<"scatter_elements"> {
  let summary = "`x` with elements replaced along one dimension by indices";
  let description = [{
    A copy of `x` with `result[..., indices[..., j, ...], ...] =
    updates[..., j, ...]` along `dim` (not 0); `updates` has the shape of
    `indices`. Updates are applied in index order, so the last write to an
    element wins (ONNX `ScatterElements` with no reduction).

    ```mlir
    %m = moe.scatter_elements %zeros, %i, %w {dim = 1 : i64}
        : tensor<?x8xf32>, tensor<?x2xi64>, tensor<?x2xf32> -> tensor<?x8xf32>
    ```
  }];
  let arguments = (ins MoE_FloatTensor:$x, MoE_IndexTensor:$indices,
                       MoE_FloatTensor:$updates, I64Attr:$dim);
  let results = (outs MoE_FloatTensor:$result);
  let assemblyFormat = [{
    $x `,` $indices `,` $updates attr-dict `:` type($x) `,` type($indices)
    `,` type($updates) `->` type($result)
  }];
  let hasVerifier = 1;
}

def MoE_OneHotOp : MoE_Op<"one_hot"> {
  let summary = "one-hot rows of the indices, in a new last dimension";
  let description = [{
    `result[..., i] = indices[...] == i ? on_value : off_value` for `i` in
    `[0, depth)`, `depth` being the result's last dimension. Negative indices
    count from `depth`; an index outside `[-depth, depth)` gives a row of
    `off_value` (ONNX `OneHot` with `axis = -1`).

    ```mlir
    %h = moe.one_hot %i {on_value = 1.0 : f64, off_value = 0.0 : f64}
        : tensor<?x2xi64> -> tensor<?x2x8xf32>
    ```
  }];
  let arguments = (ins MoE_IndexTensor:$indices, F64Attr:$on_value,
                       F64Attr:$off_value);
  let results = (outs MoE_FloatTensor:$result);
  let assemblyFormat = "$indices attr-dict `:` type($indices) `->` type($result)";
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Routing and experts
//===----------------------------------------------------------------------===//

def MoE_RouterOp : MoE_Op<"router"> {
  let summary = "gate GEMM, scoring, group-limited top-k and weighting";
  let description = [{
    Computes `logits = x · gateᵀ` in f32, scores them, adds `bias` (the
    correction bias, selection only), limits selection to the best groups,
    takes the top `k` (ties to the lower index) and returns the weights
    (unbiased scores, renormalised and scaled as `routing` says) and the
    expert indices, per DESIGN.md §3.

    `shared_experts = m` (set when shared experts are folded into the routed
    grouped GEMMs) appends `m` always-selected experts after the top `k`:
    indices `E, ..., E+m-1` (`E` = rows of `gate`) with weight 1.0, so both
    results are `[T, k+m]`. Only the `E` routed experts are scored.

    ```mlir
    %w, %i = moe.router %x, %gate bias %b
        {routing = #moe.routing<scoring = sigmoid, k = 2, n_group = 2,
                                topk_group = 1, group_score = top2_sum,
                                norm_topk_prob = true>}
        : tensor<?x64xf32>, tensor<8x64xbf16>, tensor<8xf32>
        -> tensor<?x2xf32>, tensor<?x2xi32>
    ```
  }];
  let arguments = (ins MoE_FloatTensor:$x, MoE_FloatTensor:$gate,
                       Optional<MoE_FloatTensor>:$bias,
                       MoE_RoutingAttr:$routing,
                       DefaultValuedAttr<
                           ConfinedAttr<I64Attr, [IntNonNegative]>, "0">:
                           $shared_experts);
  let results = (outs MoE_F32Tensor:$weights, MoE_I32Tensor:$indices);
  let assemblyFormat = [{
    $x `,` $gate (`bias` $bias^)? attr-dict
    `:` type($x) `,` type($gate) (`,` type($bias)^)?
    `->` type($weights) `,` type($indices)
  }];
  let hasVerifier = 1;
}

def MoE_DispatchOp : MoE_Op<"dispatch"> {
  let summary = "permute token rows into expert-contiguous order";
  let description = [{
    For `indices: [T, k]`, produces `rows: [T*k, H]` where the rows routed to
    expert `e` occupy `[offsets[e], offsets[e+1])` (stable in token order),
    `offsets: [E+1]`, and `positions: [T*k]` with the row of each
    `(token, slot)` pair in token-major order.

    ```mlir
    %rows, %offsets, %pos = moe.dispatch %x, %idx
        : tensor<?x64xf32>, tensor<?x2xi32>
        -> tensor<?x64xf32>, tensor<9xi32>, tensor<?xi32>
    ```
  }];
  let arguments = (ins MoE_FloatTensor:$x, MoE_IndexTensor:$indices);
  let results = (outs MoE_FloatTensor:$rows, MoE_I32Tensor:$offsets,
                      MoE_I32Tensor:$positions);
  let assemblyFormat = [{
    $x `,` $indices attr-dict `:` type($x) `,` type($indices)
    `->` type($rows) `,` type($offsets) `,` type($positions)
  }];
  let hasVerifier = 1;
}

def MoE_GroupedMatmulOp : MoE_Op<"grouped_matmul",
                                  [AttrSizedResultSegments,
                                   MoE_FusedQuantizeOpInterface,
                                   OpAsmOpInterface]> {
  let summary = "one GEMM per expert over its contiguous rows";
  let description = [{
    Rows `[offsets[e], offsets[e+1])` are multiplied by `w[e]ᵀ`
    (`w: [E, N, K]`, checkpoint layout per expert). `offsets` must be
    non-decreasing, as `moe.dispatch` makes them (the CUDA kernels schedule
    row tiles per expert from them); rows outside `[offsets[0], offsets[E])`
    are zero. `epilogue = silu_mul`
    treats the first half of `N` as the gate and the second as up. With
    `quantize` set, the op also returns `result` quantized as `moe.quantize`
    with that scheme would (`--moec-fuse-quantize`).

    ```mlir
    %y = moe.grouped_matmul %rows, %offsets, %w
        : tensor<?x64xf32>, tensor<9xi32>, tensor<8x32x64xbf16> -> tensor<?x32xf32>
    ```
  }];
  let arguments = !con((ins MoE_FloatTensor:$rows, MoE_I32Tensor:$offsets,
                            MoE_FloatTensor:$w,
                            DefaultValuedAttr<MoE_EpilogueAttr,
                                "::mlir::moe::Epilogue::none">:$epilogue),
                       MoE_FusedQuantizeArg);
  let results = !con((outs MoE_FloatTensor:$result), MoE_FusedQuantizeResults);
  let assemblyFormat = !strconcat([{
    $rows `,` $offsets `,` $w attr-dict `:` type($rows) `,` type($offsets)
    `,` type($w) `->` type($result)
  }],
      MoE_FusedQuantizeTypes);
  let builders = [
    OpBuilder<(ins "::mlir::Type":$result, "::mlir::Value":$rows,
                   "::mlir::Value":$offsets, "::mlir::Value":$w,
                   CArg<"::mlir::moe::Epilogue",
                        "::mlir::moe::Epilogue::none">:$epilogue), [{
      build($_builder, $_state, result, ::mlir::Type(), ::mlir::Type(), rows,
            offsets, w, epilogue, ::mlir::moe::BlockScaleAttr());
    }]>
  ];
  let hasVerifier = 1;
  let extraClassDeclaration = MoE_FusedQuantizeClassDecl;
}

def MoE_CombineOp : MoE_Op<"combine"> {
  let summary = "weighted un-permute of expert outputs";
  let description = [{
    `result[t] = sum_j weights[t, j] * rows[positions[t*k + j]]
    (+ residual[t])`.

    ```mlir
    %y = moe.combine %rows, %pos, %w
        : tensor<?x64xf32>, tensor<?xi32>, tensor<?x2xf32> -> tensor<?x64xf32>
    ```
  }];
  let arguments = (ins MoE_FloatTensor:$rows, MoE_I32Tensor:$positions,
                       MoE_F32Tensor:$weights,
                       Optional<MoE_FloatTensor>:$residual);
  let results = (outs MoE_FloatTensor:$result);
  let assemblyFormat = [{
    $rows `,` $positions `,` $weights (`residual` $residual^)? attr-dict
    `:` type($rows) `,` type($positions) `,` type($weights)
    (`,` type($residual)^)? `->` type($result)
  }];
  let hasVerifier = 1;
}

def MoE_SigmoidGateOp : MoE_Op<"sigmoid_gate",
                                [AllTypesMatch<["y", "result"]>]> {
  let summary = "scale rows by a per-token sigmoid gate";
  let description = [{
    `result[t] = y[t] * sigmoid(sum_k x[t, k] * gate[0, k])`, the one-column
    GEMV accumulated in f32 (Qwen2-MoE's `shared_expert_gate` applied to the
    shared expert's output). Like the router's gate, it stays in high
    precision.

    ```mlir
    %r = moe.sigmoid_gate %x, %g, %y
        : tensor<?x64xf32>, tensor<1x64xbf16>, tensor<?x64xf32>
    ```
  }];
  let arguments = (ins MoE_FloatTensor:$x, MoE_FloatTensor:$gate,
                       MoE_FloatTensor:$y);
  let results = (outs MoE_FloatTensor:$result);
  let assemblyFormat = [{
    $x `,` $gate `,` $y attr-dict `:` type($x) `,` type($gate) `,` type($y)
  }];
  let hasVerifier = 1;
}

def MoE_MoEOp : MoE_Op<"moe", [AttrSizedOperandSegments]> {
  let summary = "a whole MoE layer: router, routed experts, shared experts";
  let description = [{
    `result = sum_j w_j * expert_{e_j}(x) + shared(x)` with the routing of
    `routing`, expert FFN `down · (silu(gate · x) ⊙ (up · x))` (weights
    `[E, I, H]`, `[E, I, H]`, `[E, H, I]` in checkpoint layout), and an
    optional shared expert (`[Is, H]`, `[Is, H]`, `[H, Is]`) whose output is
    multiplied by `sigmoid(x · shared_gateᵀ)` when that gate is present
    (Qwen2-MoE).

    ```mlir
    %y = moe.moe %x router %gate experts %w1, %w3, %w2
        {routing = #moe.routing<scoring = softmax, k = 2, norm_topk_prob = true>}
        : (tensor<?x64xf32>, tensor<8x64xbf16>, tensor<8x32x64xbf16>,
           tensor<8x32x64xbf16>, tensor<8x64x32xbf16>) -> tensor<?x64xf32>
    ```
  }];
  let arguments = (ins MoE_FloatTensor:$x, MoE_FloatTensor:$gate,
                       Optional<MoE_FloatTensor>:$bias,
                       MoE_FloatTensor:$gate_proj, MoE_FloatTensor:$up_proj,
                       MoE_FloatTensor:$down_proj,
                       Optional<MoE_FloatTensor>:$shared_gate_proj,
                       Optional<MoE_FloatTensor>:$shared_up_proj,
                       Optional<MoE_FloatTensor>:$shared_down_proj,
                       Optional<MoE_FloatTensor>:$shared_expert_gate,
                       MoE_RoutingAttr:$routing);
  let results = (outs MoE_FloatTensor:$result);
  let assemblyFormat = [{
    $x `router` $gate (`bias` $bias^)?
    `experts` $gate_proj `,` $up_proj `,` $down_proj
    (`shared` $shared_gate_proj^ `,` $shared_up_proj `,` $shared_down_proj)?
    (`shared_gate` $shared_expert_gate^)?
    attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// FP8
//===----------------------------------------------------------------------===//

def MoE_QuantizeOp : MoE_Op<"quantize"> {
  let summary = "dynamic FP8 quantization with block scales";
  let description = [{
    Per block of `scheme`: `scale = amax / max(format)`, `q = cast(x / scale)`
    (saturating). Activations use `[1, 128]` blocks.

    ```mlir
    %q, %s = moe.quantize %x {scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>}
        : tensor<?x256xf32> -> tensor<?x256xf8E4M3FN>, tensor<?x2xf32>
    ```
  }];
  let arguments = (ins MoE_FloatTensor:$x, MoE_BlockScaleAttr:$scheme);
  let results = (outs MoE_Fp8Tensor:$result, MoE_F32Tensor:$scale);
  let assemblyFormat = [{
    $x attr-dict `:` type($x) `->` type($result) `,` type($scale)
  }];
  let hasVerifier = 1;
}

def MoE_DequantizeOp : MoE_Op<"dequantize"> {
  let summary = "FP8 or 8-/4-bit integer codes with block scales back to a wider float";
  let description = [{
    `result = (x - zero_point) * scale` per block of `scheme`; `u8` codes are
    read as unsigned bytes of the signless `i8` data, and `u4` codes as their
    low then high nibbles, so the result's last dimension is twice `x`'s.

    ```mlir
    %x = moe.dequantize %q, %s {scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>}
        : tensor<256x128xf8E4M3FN>, tensor<2x1xf32> -> tensor<256x128xf32>
    %y = moe.dequantize %c, %r {scheme = #moe.block_scale<format = u8, block = [1, 128], zero_point = 128>}
        : tensor<256x128xi8>, tensor<256x1xf32> -> tensor<256x128xf32>
    %z = moe.dequantize %p, %r {scheme = #moe.block_scale<format = u4, block = [1, 128], zero_point = 8>}
        : tensor<256x64xi8>, tensor<256x1xf32> -> tensor<256x128xf32>
    ```
  }];
  let arguments = (ins MoE_QuantizedTensor:$x,
                       MoE_F32Tensor:$scale,
                       MoE_BlockScaleAttr:$scheme);
  let results = (outs MoE_FloatTensor:$result);
  let assemblyFormat = [{
    $x `,` $scale attr-dict `:` type($x) `,` type($scale) `->` type($result)
  }];
  let hasVerifier = 1;
}

def MoE_Fp8MatmulOp : MoE_Op<"fp8_matmul", [AttrSizedResultSegments,
                                             MoE_FusedQuantizeOpInterface,
                                             OpAsmOpInterface]> {
  let summary = "block-scaled FP8 GEMM";
  let description = [{
    `result[t, n] = sum_k (xq[t,k] * xs[t, k/ga]) * (wq[n,k] * ws[n/bn, k/bk])`
    with FP8 products and f32 accumulation promoted at least every block of K,
    plus the high-precision `bias[n]` when present. `epilogue` is that of
    `moe.matmul`. With `quantize` set, the op also returns `result`
    quantized as `moe.quantize` with that scheme would, so that the GEMM
    after it reads FP8 directly (`--moec-fuse-quantize`).

    ```mlir
    %y = moe.fp8_matmul %xq, %xs, %wq, %ws
        {act_scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>,
         weight_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>}
        : tensor<?x256xf8E4M3FN>, tensor<?x2xf32>, tensor<512x256xf8E4M3FN>,
          tensor<4x2xf32> -> tensor<?x512xf32>
    ```
  }];
  let arguments = !con((ins MoE_Fp8Tensor:$x, MoE_F32Tensor:$x_scale,
                            MoE_Fp8Tensor:$w, MoE_F32Tensor:$w_scale,
                            Optional<MoE_FloatTensor>:$bias,
                            MoE_BlockScaleAttr:$act_scheme,
                            MoE_BlockScaleAttr:$weight_scheme,
                            DefaultValuedAttr<MoE_EpilogueAttr,
                                "::mlir::moe::Epilogue::none">:$epilogue),
                       MoE_FusedQuantizeArg);
  let results = !con((outs MoE_FloatTensor:$result), MoE_FusedQuantizeResults);
  let assemblyFormat = !strconcat([{
    $x `,` $x_scale `,` $w `,` $w_scale (`bias` $bias^)? attr-dict `:`
    type($x) `,` type($x_scale) `,` type($w) `,` type($w_scale)
    (`,` type($bias)^)? `->` type($result)
  }],
      MoE_FusedQuantizeTypes);
  let builders = [
    OpBuilder<(ins "::mlir::Type":$result, "::mlir::Value":$x,
                   "::mlir::Value":$x_scale, "::mlir::Value":$w,
                   "::mlir::Value":$w_scale, "::mlir::Value":$bias,
                   "::mlir::moe::BlockScaleAttr":$act_scheme,
                   "::mlir::moe::BlockScaleAttr":$weight_scheme,
                   CArg<"::mlir::moe::Epilogue",
                        "::mlir::moe::Epilogue::none">:$epilogue), [{
      build($_builder, $_state, result, ::mlir::Type(), ::mlir::Type(), x,
            x_scale, w, w_scale, bias, act_scheme, weight_scheme, epilogue,
            ::mlir::moe::BlockScaleAttr());
    }]>
  ];
  let hasVerifier = 1;
  let extraClassDeclaration = MoE_FusedQuantizeClassDecl;
}

def MoE_Fp8GroupedMatmulOp : MoE_Op<"fp8_grouped_matmul",
                                     [AttrSizedResultSegments,
                                      MoE_FusedQuantizeOpInterface,
                                      OpAsmOpInterface]> {
  let summary = "block-scaled FP8 grouped GEMM (one per expert)";
  let description = [{
    `moe.grouped_matmul` with FP8 rows and weights and their block scales.
    With `quantize` set, the op also returns `result` quantized as
    `moe.quantize` with that scheme would: the gate/up GEMM with the
    `silu_mul` epilogue hands the down projection its FP8 rows
    (`--moec-fuse-quantize`).

    ```mlir
    %y = moe.fp8_grouped_matmul %rq, %rs, %offsets, %wq, %ws
        {act_scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>,
         weight_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>}
        : tensor<?x128xf8E4M3FN>, tensor<?x1xf32>, tensor<9xi32>,
          tensor<8x256x128xf8E4M3FN>, tensor<8x2x1xf32> -> tensor<?x256xf32>
    ```
  }];
  let arguments = !con((ins MoE_Fp8Tensor:$rows, MoE_F32Tensor:$rows_scale,
                            MoE_I32Tensor:$offsets,
                            MoE_Fp8Tensor:$w, MoE_F32Tensor:$w_scale,
                            MoE_BlockScaleAttr:$act_scheme,
                            MoE_BlockScaleAttr:$weight_scheme,
                            DefaultValuedAttr<MoE_EpilogueAttr,
                                "::mlir::moe::Epilogue::none">:$epilogue),
                       MoE_FusedQuantizeArg);
  let results = !con((outs MoE_FloatTensor:$result), MoE_FusedQuantizeResults);
  let assemblyFormat = !strconcat([{
    $rows `,` $rows_scale `,` $offsets `,` $w `,` $w_scale attr-dict `:`
    type($rows) `,` type($rows_scale) `,` type($offsets) `,` type($w) `,`
    type($w_scale) `->` type($result)
  }],
      MoE_FusedQuantizeTypes);
  let builders = [
    OpBuilder<(ins "::mlir::Type":$result, "::mlir::Value":$rows,
                   "::mlir::Value":$rows_scale, "::mlir::Value":$offsets,
                   "::mlir::Value":$w, "::mlir::Value":$w_scale,
                   "::mlir::moe::BlockScaleAttr":$act_scheme,
                   "::mlir::moe::BlockScaleAttr":$weight_scheme,
                   CArg<"::mlir::moe::Epilogue",
                        "::mlir::moe::Epilogue::none">:$epilogue), [{
      build($_builder, $_state, result, ::mlir::Type(), ::mlir::Type(), rows,
            rows_scale, offsets, w, w_scale, act_scheme, weight_scheme,
            epilogue, ::mlir::moe::BlockScaleAttr());
    }]>
  ];
  let hasVerifier = 1;
  let extraClassDeclaration = MoE_FusedQuantizeClassDecl;
}

#endif // MOE_OPS_TD
