//===- MoEAttrs.td - moe dialect enums and attributes ------*- tablegen -*-===//
//
// Enums and attributes that carry model configuration in the IR: routing
// parameters, RoPE scaling, FP8 block-scale schemes and the layout transforms
// a `moe.weight` applies while the artifact writer streams it.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_ATTRS_TD
#define MOE_ATTRS_TD

include "dialects/MoEDialect.td"
include "mlir/IR/EnumAttr.td"

//===----------------------------------------------------------------------===//
// Enums
//===----------------------------------------------------------------------===//

def MoE_ScoringFunc : I32EnumAttr<"ScoringFunc",
    "how router logits become expert scores", [
      I32EnumAttrCase<"softmax", 0>,
      I32EnumAttrCase<"sigmoid", 1>
    ]> {
  let cppNamespace = "::mlir::moe";
  let genSpecializedAttr = 0;
}

def MoE_GroupScore : I32EnumAttr<"GroupScore",
    "how a group of experts is scored for group-limited routing", [
      I32EnumAttrCase<"none", 0>,
      I32EnumAttrCase<"top2_sum", 1>,
      I32EnumAttrCase<"max", 2>
    ]> {
  let cppNamespace = "::mlir::moe";
  let genSpecializedAttr = 0;
}

def MoE_RopeScalingKind : I32EnumAttr<"RopeScalingKind",
    "the RoPE frequency scaling variant", [
      I32EnumAttrCase<"linear", 0>,
      I32EnumAttrCase<"yarn", 1>
    ]> {
  let cppNamespace = "::mlir::moe";
  let genSpecializedAttr = 0;
}

def MoE_Fp8Format : I32EnumAttr<"Fp8Format",
    "a quantized element format (FP8, or 8- or 4-bit integer codes)", [
      I32EnumAttrCase<"e4m3fn", 0>,
      I32EnumAttrCase<"e5m2", 1>,
      I32EnumAttrCase<"u8", 2>,
      I32EnumAttrCase<"u4", 3>
    ]> {
  let cppNamespace = "::mlir::moe";
  let genSpecializedAttr = 0;
}

def MoE_ScalePlacement : I32EnumAttr<"ScalePlacement",
    "memory order of a block-scale tensor", [
      I32EnumAttrCase<"row_major", 0>,
      I32EnumAttrCase<"col_major", 1>
    ]> {
  let cppNamespace = "::mlir::moe";
  let genSpecializedAttr = 0;
}

def MoE_Epilogue : I32EnumAttr<"Epilogue",
    "an elementwise epilogue fused into a GEMM", [
      I32EnumAttrCase<"none", 0>,
      I32EnumAttrCase<"silu_mul", 1>
    ]> {
  let cppNamespace = "::mlir::moe";
  let genSpecializedAttr = 0;
}
def MoE_EpilogueAttr : EnumAttr<MoE_Dialect, MoE_Epilogue, "epilogue"> {
  let assemblyFormat = "`<` $value `>`";
}

def MoE_UnaryKind : I32EnumAttr<"UnaryKind",
    "the elementwise function of `moe.unary`", [
      I32EnumAttrCase<"neg", 0>,
      I32EnumAttrCase<"abs", 1>,
      I32EnumAttrCase<"sqrt", 2>,
      I32EnumAttrCase<"reciprocal", 3>,
      I32EnumAttrCase<"exp", 4>,
      I32EnumAttrCase<"log", 5>,
      I32EnumAttrCase<"tanh", 6>,
      I32EnumAttrCase<"sigmoid", 7>,
      I32EnumAttrCase<"relu", 8>
    ]> {
  let cppNamespace = "::mlir::moe";
  let genSpecializedAttr = 0;
}
def MoE_UnaryKindAttr : EnumAttr<MoE_Dialect, MoE_UnaryKind, "unary_kind"> {
  let assemblyFormat = "`<` $value `>`";
}

def MoE_BinaryKind : I32EnumAttr<"BinaryKind",
    "the elementwise function of `moe.binary`", [
      I32EnumAttrCase<"add", 0>,
      I32EnumAttrCase<"sub", 1>,
      I32EnumAttrCase<"mul", 2>,
      I32EnumAttrCase<"div", 3>,
      I32EnumAttrCase<"pow", 4>,
      I32EnumAttrCase<"max", 5>,
      I32EnumAttrCase<"min", 6>
    ]> {
  let cppNamespace = "::mlir::moe";
  let genSpecializedAttr = 0;
}
def MoE_BinaryKindAttr : EnumAttr<MoE_Dialect, MoE_BinaryKind, "binary_kind"> {
  let assemblyFormat = "`<` $value `>`";
}

def MoE_ComparePredicate : I32EnumAttr<"ComparePredicate",
    "the comparison of `moe.compare`", [
      I32EnumAttrCase<"eq", 0>,
      I32EnumAttrCase<"ne", 1>,
      I32EnumAttrCase<"lt", 2>,
      I32EnumAttrCase<"le", 3>,
      I32EnumAttrCase<"gt", 4>,
      I32EnumAttrCase<"ge", 5>
    ]> {
  let cppNamespace = "::mlir::moe";
  let genSpecializedAttr = 0;
}
def MoE_ComparePredicateAttr
    : EnumAttr<MoE_Dialect, MoE_ComparePredicate, "compare_predicate"> {
  let assemblyFormat = "`<` $value `>`";
}

def MoE_ReduceKind : I32EnumAttr<"ReduceKind",
    "the reduction of `moe.reduce`", [
      I32EnumAttrCase<"sum", 0>,
      I32EnumAttrCase<"mean", 1>,
      I32EnumAttrCase<"max", 2>,
      I32EnumAttrCase<"min", 3>
    ]> {
  let cppNamespace = "::mlir::moe";
  let genSpecializedAttr = 0;
}
def MoE_ReduceKindAttr : EnumAttr<MoE_Dialect, MoE_ReduceKind, "reduce_kind"> {
  let assemblyFormat = "`<` $value `>`";
}

//===----------------------------------------------------------------------===//
// Parameters
//===----------------------------------------------------------------------===//

/// An f64 attribute parameter (an APFloat of IEEE double semantics), printed
/// so that it round-trips exactly.
class MoE_F64Parameter<string desc, string default>
    : AttrOrTypeParameter<"::llvm::APFloat", desc> {
  let parser = [{ [&]() -> ::mlir::FailureOr<::llvm::APFloat> {
    double value;
    if ($_parser.parseFloat(value))
      return ::mlir::failure();
    return ::llvm::APFloat(value);
  }() }];
  let printer = [{ $_printer << $_self }];
  let comparator = "$_lhs.bitwiseIsEqual($_rhs)";
  let defaultValue = "::llvm::APFloat(" # default # ")";
}

/// A list of block sizes printed and parsed as `[128, 128]`.
def MoE_BlockShapeParameter : ArrayRefParameter<"int64_t", "block shape"> {
  let parser = [{ [&]() -> ::mlir::FailureOr<::llvm::SmallVector<int64_t>> {
    ::llvm::SmallVector<int64_t> sizes;
    if ($_parser.parseCommaSeparatedList(
            ::mlir::AsmParser::Delimiter::Square, [&]() {
              return $_parser.parseInteger(sizes.emplace_back());
            }))
      return ::mlir::failure();
    return sizes;
  }() }];
  let printer = [{ $_printer << "[";
    ::llvm::interleaveComma($_self, $_printer);
    $_printer << "]" }];
}

//===----------------------------------------------------------------------===//
// #moe.routing
//===----------------------------------------------------------------------===//

def MoE_RoutingAttr : MoE_Attr<"Routing", "routing"> {
  let summary = "the routing parameters of an MoE layer";
  let description = [{
    Every parameter of DESIGN.md §3: the scoring function, top-`k`,
    group-limited selection (`n_group` contiguous groups of experts, the best
    `topk_group` kept, each group scored by `group_score`), whether the
    selected weights are renormalised (`norm_topk_prob`) and the factor they
    are multiplied by (`routed_scaling_factor`). The correction bias of
    DeepSeek-V3 is an operand of the op, not part of this attribute.

    ```mlir
    #moe.routing<scoring = sigmoid, k = 8, n_group = 8, topk_group = 4,
                 group_score = top2_sum, norm_topk_prob = true,
                 routed_scaling_factor = 2.5>
    ```
  }];
  let parameters = (ins
    EnumParameter<MoE_ScoringFunc>:$scoring,
    "int64_t":$k,
    DefaultValuedParameter<"int64_t", "1">:$n_group,
    DefaultValuedParameter<"int64_t", "1">:$topk_group,
    DefaultValuedParameter<"::mlir::moe::GroupScore",
                           "::mlir::moe::GroupScore::none">:$group_score,
    DefaultValuedParameter<"bool", "false">:$norm_topk_prob,
    MoE_F64Parameter<"multiplies the final weights", "1.0">:
        $routed_scaling_factor
  );
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
}

//===----------------------------------------------------------------------===//
// #moe.rope_scaling
//===----------------------------------------------------------------------===//

def MoE_RopeScalingAttr : MoE_Attr<"RopeScaling", "rope_scaling"> {
  let summary = "RoPE frequency scaling (linear or YaRN)";
  let description = [{
    The `rope_scaling` block of a Hugging Face config. `linear` divides
    positions by `factor`. `yarn` (DeepSeek-V3) blends interpolated and
    extrapolated frequencies between `beta_fast` and `beta_slow` rotations
    over `original_max_position_embeddings` and scales cos/sin by
    `mscale(factor, mscale) / mscale(factor, mscale_all_dim)`.

    ```mlir
    #moe.rope_scaling<kind = yarn, factor = 40.0,
                      original_max_position_embeddings = 4096,
                      beta_fast = 32.0, beta_slow = 1.0, mscale = 1.0,
                      mscale_all_dim = 1.0>
    ```
  }];
  let parameters = (ins
    EnumParameter<MoE_RopeScalingKind>:$kind,
    MoE_F64Parameter<"the context extension factor", "1.0">:$factor,
    DefaultValuedParameter<"int64_t", "0">:$original_max_position_embeddings,
    MoE_F64Parameter<"YaRN fast boundary (rotations)", "32.0">:$beta_fast,
    MoE_F64Parameter<"YaRN slow boundary (rotations)", "1.0">:$beta_slow,
    MoE_F64Parameter<"YaRN mscale", "1.0">:$mscale,
    MoE_F64Parameter<"YaRN mscale_all_dim", "0.0">:$mscale_all_dim
  );
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
}

//===----------------------------------------------------------------------===//
// #moe.block_scale
//===----------------------------------------------------------------------===//

def MoE_BlockScaleAttr : MoE_Attr<"BlockScale", "block_scale"> {
  let summary = "an 8-bit format with one f32 scale per block";
  let description = [{
    DeepSeek-V3's fine-grained scaling: the data is `format` and each
    `block[0] x block[1]` tile of the last two dimensions has one f32 scale,
    `dequant = (q - zero_point) * scale` (edge blocks are partial). Weights
    use 128x128 blocks; activations use 1x128 (per token per 128 channels).
    `placement` is the memory order of the scale tensor; `pow2` restricts
    scales to powers of two.

    The FP8 formats (`e4m3fn`, `e5m2`) have `zero_point` 0. `u8` is the
    integer variant: unsigned 8-bit codes held in a signless `i8` tensor with
    a `zero_point` in [0, 255], as onnxruntime's 8-bit `QMoE` weights (zero
    point 128, one scale per row: `block = [1, K]`). `u4` packs two unsigned
    4-bit codes per byte of a signless `i8` tensor along its last dimension,
    low nibble first (element `2j` in bits 0-3 of byte `j`, element `2j+1` in
    bits 4-7), with a `zero_point` in [0, 15]: onnxruntime's 4-bit `QMoE`
    weights (`[E, N, K/2]` bytes, zero point 8). The data of a `u4` tensor
    of `K` columns is `K/2` bytes wide; blocks and scales count unpacked
    elements. Only `moe.weight` and `moe.dequantize` take `u8` and `u4`; the
    FP8 GEMMs and `moe.quantize` do not.

    ```mlir
    #moe.block_scale<format = e4m3fn, block = [128, 128]>
    #moe.block_scale<format = e4m3fn, block = [1, 128], placement = col_major>
    #moe.block_scale<format = u8, block = [1, 4096], zero_point = 128>
    #moe.block_scale<format = u4, block = [1, 128], zero_point = 8>
    ```
  }];
  let parameters = (ins
    EnumParameter<MoE_Fp8Format>:$format,
    MoE_BlockShapeParameter:$block,
    DefaultValuedParameter<"::mlir::moe::ScalePlacement",
                           "::mlir::moe::ScalePlacement::row_major">:$placement,
    DefaultValuedParameter<"bool", "false">:$pow2,
    DefaultValuedParameter<"int64_t", "0">:$zero_point
  );
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
  let builders = [
    AttrBuilder<(ins "::mlir::moe::Fp8Format":$format,
                     "::llvm::ArrayRef<int64_t>":$block,
                     "::mlir::moe::ScalePlacement":$placement,
                     "bool":$pow2), [{
      return $_get($_ctxt, format, block, placement, pow2, 0);
    }]>
  ];
  let extraClassDeclaration = [{
    /// Whether the data is integer codes (`u8`, `u4`) rather than FP8.
    bool isInteger() const {
      return getFormat() == ::mlir::moe::Fp8Format::u8 || isPacked();
    }
    /// Whether two codes share a byte (`u4`).
    bool isPacked() const { return getFormat() == ::mlir::moe::Fp8Format::u4; }
    /// The MLIR element type of the quantized data (`i8` bytes for `u4`).
    ::mlir::Type getElementType() const;
    /// The shape of the values that data of shape `shape` holds: `shape`,
    /// with the last dimension doubled for `u4`.
    ::llvm::SmallVector<int64_t> getUnpackedShape(::llvm::ArrayRef<int64_t> shape) const;
    /// The shape of the scale tensor for data of shape `shape`: the leading
    /// dimensions are kept and the last two (of the unpacked values) are
    /// divided by the block, rounded up. Dynamic dimensions stay dynamic.
    ::llvm::SmallVector<int64_t> getScaleShape(::llvm::ArrayRef<int64_t> shape) const;
  }];
}

//===----------------------------------------------------------------------===//
// Weight sources and layout transforms
//===----------------------------------------------------------------------===//

def MoE_TensorRefAttr : MoE_Attr<"TensorRef", "tensor_ref"> {
  let summary = "a tensor stored in a checkpoint file";
  let description = [{
    ```mlir
    #moe.tensor_ref<"model-00001-of-00002.safetensors", "model.norm.weight">
    ```
  }];
  let parameters = (ins StringRefParameter<"file">:$file,
                        StringRefParameter<"tensor name">:$name);
  let assemblyFormat = "`<` $file `,` $name `>`";
}

def MoE_StackTransformAttr : MoE_Attr<"StackTransform", "stack"> {
  let summary = "stack the sources along a new leading (expert) dimension";
}

def MoE_TransposeTransformAttr : MoE_Attr<"TransposeTransform", "transpose"> {
  let summary = "swap the last two dimensions";
}

def MoE_QuantizeTransformAttr : MoE_Attr<"QuantizeTransform", "quantize"> {
  let summary = "quantize to FP8 with block scales while streaming";
  let parameters = (ins MoE_BlockScaleAttr:$scheme);
  let assemblyFormat = "`<` qualified($scheme) `>`";
}

#endif // MOE_ATTRS_TD
