//===- HFImporter.cpp - Hugging Face checkpoint → moe dialect ---*- C++ -*-===//
//
// Two steps: first every tensor the config implies is checked against the
// checkpoint (presence, dtype, shape, FP8 scale siblings), so that no IR is
// built from an inconsistent model; then the forward pass is emitted layer by
// layer with the attention (GQA or expanded MLA) and MLP/MoE of each
// architecture, following transformers' modeling code.
//
//===----------------------------------------------------------------------===//

#include "importers/hf/HFImporter.h"
#include "dialects/MoEDialect.h"
#include "importers/hf/ModelConfig.h"
#include "importers/hf/Safetensors.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/Verifier.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

#include <cmath>

using namespace mlir;
using namespace mlir::moec;
using namespace mlir::moec::hf;
using moe::BlockScaleAttr;
using moe::Epilogue;
using moe::Fp8Format;
using moe::RopeScalingAttr;
using moe::RopeScalingKind;
using moe::RoutingAttr;
using moe::ScalePlacement;
using moe::StackTransformAttr;
using moe::TensorRefAttr;
using moe::WeightRoleAttr;
using moe::WeightRoleKind;

namespace {

//===----------------------------------------------------------------------===//
// Checking the checkpoint against the config
//===----------------------------------------------------------------------===//

bool isFloatDType(DType dtype) {
  return dtype == DType::F32 || dtype == DType::BF16 || dtype == DType::F16 ||
         dtype == DType::F8_E4M3;
}

std::string formatDims(llvm::ArrayRef<int64_t> dims) {
  return "[" +
         llvm::join(
             llvm::map_range(dims, [](int64_t d) { return std::to_string(d); }),
             ", ") +
         "]";
}

llvm::Error tensorError(const TensorRef &ref, const llvm::Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                 ref.file->path() + ": tensor '" +
                                     ref.info->name + "': " + message);
}

/// Checks every tensor the config implies: present (unless optional), a
/// float dtype, the expected shape; an F8_E4M3 weight has its
/// `_scale_inv` sibling of the block-scale shape, and only those do.
llvm::Error checkTensors(const ModelConfig &config,
                         const Checkpoint &checkpoint) {
  std::vector<ExpectedTensor> expected = expectedTensors(config);
  llvm::StringMap<const ExpectedTensor *> byName;
  for (const ExpectedTensor &tensor : expected)
    byName[tensor.name] = &tensor;
  for (const ExpectedTensor &tensor : expected) {
    TensorRef ref = checkpoint.lookup(tensor.name);
    if (!tensor.scaleFor.empty()) {
      // Scales are checked with their weight below.
      continue;
    }
    if (!ref) {
      if (tensor.optional)
        continue;
      return llvm::createStringError(
          llvm::inconvertibleErrorCode(),
          checkpoint.dir() + ": tensor '" + tensor.name +
              "' required by config.json (model_type " +
              getModelType(config.arch) + ") is missing from the checkpoint");
    }
    if (!isFloatDType(ref.info->dtype))
      return tensorError(ref, "expected a floating-point dtype (F32, BF16, "
                              "F16 or F8_E4M3), but got " +
                                  dtypeName(ref.info->dtype));
    if (llvm::ArrayRef<int64_t>(ref.info->shape) !=
        llvm::ArrayRef<int64_t>(tensor.shape))
      return tensorError(ref, "expected shape " + formatDims(tensor.shape) +
                                  " from config.json, but got " +
                                  formatDims(ref.info->shape));
    std::string scaleName = getBlockScaleName(tensor.name);
    TensorRef scale = checkpoint.lookup(scaleName);
    bool fp8 = ref.info->dtype == DType::F8_E4M3;
    if (!fp8) {
      if (scale)
        return tensorError(scale, "a block scale for '" + tensor.name +
                                      "', which is not F8_E4M3");
      continue;
    }
    if (!config.quantization)
      return tensorError(ref, "F8_E4M3 weight in a checkpoint whose "
                              "config.json has no quantization_config");
    if (!tensor.quantizable || tensor.shape.size() != 2)
      return tensorError(ref, "F8_E4M3 is only supported for the linear "
                              "weights of attention and MLP layers");
    if (!scale)
      return tensorError(ref, "F8_E4M3 weight without its block scale '" +
                                  scaleName + "'");
    const Quantization &q = *config.quantization;
    llvm::SmallVector<int64_t, 2> scaleShape = {
        (tensor.shape[0] + q.blockOut - 1) / q.blockOut,
        (tensor.shape[1] + q.blockIn - 1) / q.blockIn};
    if (scale.info->dtype != DType::F32)
      return tensorError(scale, "expected block scales of dtype F32, but got " +
                                    dtypeName(scale.info->dtype));
    if (llvm::ArrayRef<int64_t>(scale.info->shape) !=
        llvm::ArrayRef<int64_t>(scaleShape))
      return tensorError(
          scale, "expected block-scale shape " + formatDims(scaleShape) +
                     " for " + formatDims(tensor.shape) + " in " +
                     std::to_string(q.blockOut) + "x" +
                     std::to_string(q.blockIn) + " blocks, but got " +
                     formatDims(scale.info->shape));
  }
  return llvm::Error::success();
}

//===----------------------------------------------------------------------===//
// Building the graph
//===----------------------------------------------------------------------===//

class GraphBuilder {
public:
  GraphBuilder(MLIRContext *context, const ModelConfig &config,
               const Checkpoint &checkpoint)
      : b(context), config(config), checkpoint(checkpoint), f32(b.getF32Type()),
        loc(b.getUnknownLoc()) {}

  /// Builds `@forward` into `module`.
  LogicalResult build(ModuleOp module);

private:
  int64_t dyn() const { return ShapedType::kDynamic; }
  /// An activation type `[?, dims...]` in f32.
  RankedTensorType act(llvm::ArrayRef<int64_t> dims) {
    llvm::SmallVector<int64_t> shape = {dyn()};
    shape.append(dims.begin(), dims.end());
    return RankedTensorType::get(shape, f32);
  }
  int64_t lastDim(Value v) {
    return cast<RankedTensorType>(v.getType()).getShape().back();
  }
  Location named(const llvm::Twine &name) {
    return NameLoc::get(b.getStringAttr(name), fileLoc);
  }

  Type elementType(DType dtype) {
    switch (dtype) {
    case DType::BF16:
      return b.getBF16Type();
    case DType::F16:
      return b.getF16Type();
    case DType::F8_E4M3:
      return b.getType<Float8E4M3FNType>();
    default:
      return f32;
    }
  }

  TensorRefAttr refAttr(const TensorRef &ref) {
    return TensorRefAttr::get(b.getContext(),
                              llvm::sys::path::filename(ref.file->path()),
                              ref.info->name);
  }

  /// The weights named `names`, stacked along a new leading dimension when
  /// there are several, with `role` and the decoder layer being built (none
  /// outside the layers). FP8 weights are dequantized with their block
  /// scales, so that the graph computes exactly what the checkpoint holds.
  Value weight(llvm::ArrayRef<std::string> names, WeightRoleKind role) {
    llvm::SmallVector<Attribute> sources, scaleSources;
    TensorRef first = checkpoint.lookup(names.front());
    for (const std::string &name : names) {
      sources.push_back(refAttr(checkpoint.lookup(name)));
      if (first.info->dtype == DType::F8_E4M3)
        scaleSources.push_back(
            refAttr(checkpoint.lookup(getBlockScaleName(name))));
    }
    auto stored = RankedTensorType::get(first.info->shape,
                                        elementType(first.info->dtype));
    llvm::SmallVector<int64_t> shape(stored.getShape());
    llvm::SmallVector<Attribute> transforms;
    if (names.size() > 1) {
      shape.insert(shape.begin(), names.size());
      transforms.push_back(StackTransformAttr::get(b.getContext()));
    }
    auto resultType = RankedTensorType::get(shape, stored.getElementType());
    Location at = named(names.front());
    auto roleAttr = WeightRoleAttr::get(b.getContext(), role, layer);
    if (scaleSources.empty())
      return moe::WeightOp::create(
                 b, at, resultType, Type(), b.getArrayAttr(sources),
                 TypeAttr::get(stored), b.getArrayAttr(transforms), ArrayAttr(),
                 BlockScaleAttr(), roleAttr)
          .getResult();
    const Quantization &q = *config.quantization;
    auto scheme = BlockScaleAttr::get(
        b.getContext(), Fp8Format::e4m3fn, {q.blockOut, q.blockIn},
        ScalePlacement::row_major, /*pow2=*/false);
    auto scaleType = RankedTensorType::get(scheme.getScaleShape(shape), f32);
    auto w = moe::WeightOp::create(
        b, at, resultType, scaleType, b.getArrayAttr(sources),
        TypeAttr::get(stored), b.getArrayAttr(transforms),
        b.getArrayAttr(scaleSources), scheme, roleAttr);
    return moe::DequantizeOp::create(b, at, RankedTensorType::get(shape, f32),
                                     w.getResult(), w.getScale(), scheme)
        .getResult();
  }
  Value weight(const std::string &name, WeightRoleKind role) {
    return weight(llvm::ArrayRef<std::string>(name), role);
  }
  bool has(const std::string &name) {
    return static_cast<bool>(checkpoint.lookup(name));
  }
  int64_t rows(Value w) {
    return cast<RankedTensorType>(w.getType()).getDimSize(0);
  }

  Value matmul(Value x, Value w, Value bias = {}) {
    return moe::MatmulOp::create(b, loc, act({rows(w)}), x, w, bias,
                                 Epilogue::none)
        .getResult();
  }
  Value rmsNorm(Value x, Value w, double eps) {
    return moe::RmsNormOp::create(b, loc, x.getType(), x, w,
                                  b.getF64FloatAttr(eps))
        .getResult();
  }
  Value add(Value lhs, Value rhs) {
    return moe::AddOp::create(b, loc, lhs.getType(), lhs, rhs).getResult();
  }
  Value reshape(Value x, llvm::ArrayRef<int64_t> dims) {
    return moe::ReshapeOp::create(b, loc, act(dims), x).getResult();
  }
  /// `size` channels of the last dimension starting at `offset`.
  Value slice(Value x, int64_t offset, int64_t size) {
    auto type = cast<RankedTensorType>(x.getType());
    llvm::SmallVector<int64_t> shape(type.getShape());
    shape.back() = size;
    return moe::SliceOp::create(b, loc, RankedTensorType::get(shape, f32), x,
                                b.getI64IntegerAttr(offset))
        .getResult();
  }
  Value concat(Value lhs, Value rhs) {
    auto type = cast<RankedTensorType>(lhs.getType());
    llvm::SmallVector<int64_t> shape(type.getShape());
    shape.back() += lastDim(rhs);
    return moe::ConcatOp::create(b, loc, RankedTensorType::get(shape, f32),
                                 ValueRange{lhs, rhs})
        .getResult();
  }
  Value rope(Value x, bool interleaved) {
    auto op = moe::RopeOp::create(
        b, loc, x.getType(), x, positions, b.getF64FloatAttr(config.ropeTheta),
        interleaved ? b.getUnitAttr() : UnitAttr(), ropeScaling);
    return op.getResult();
  }

  LogicalResult buildRopeScaling();
  Value attention(const std::string &prefix, Value x);
  Value mlaAttention(const std::string &prefix, Value x);
  Value denseMlp(const std::string &prefix, Value x);
  Value moeLayer(const std::string &prefix, Value x);

  OpBuilder b;
  const ModelConfig &config;
  const Checkpoint &checkpoint;
  Type f32;
  Location loc;
  Location fileLoc = UnknownLoc::get(b.getContext());
  Value positions;
  RopeScalingAttr ropeScaling;
  /// The decoder layer being built; none outside the layers.
  std::optional<int64_t> layer;
};

LogicalResult GraphBuilder::buildRopeScaling() {
  const RopeScaling &s = config.ropeScaling;
  if (s.kind == RopeScaling::None)
    return success();
  if (s.kind == RopeScaling::Linear) {
    ropeScaling = RopeScalingAttr::get(b.getContext(), RopeScalingKind::linear,
                                       llvm::APFloat(s.factor), 0,
                                       llvm::APFloat(32.0), llvm::APFloat(1.0),
                                       llvm::APFloat(1.0), llvm::APFloat(0.0));
    return success();
  }
  if (s.attentionFactor || !s.truncate)
    return emitError(fileLoc, "rope_scaling: YaRN with an explicit "
                              "`attention_factor` or `truncate: false` is "
                              "not supported");
  // transformers scales cos/sin by mscale(factor, mscale) /
  // mscale(factor, mscale_all_dim) when both are set, else by
  // mscale(factor, 1); the attribute's ratio reproduces either case.
  double mscale = s.mscale, mscaleAllDim = s.mscaleAllDim;
  if (mscale == 0.0 || mscaleAllDim == 0.0) {
    mscale = 1.0;
    mscaleAllDim = 0.0;
  }
  ropeScaling = RopeScalingAttr::get(
      b.getContext(), RopeScalingKind::yarn, llvm::APFloat(s.factor),
      s.originalMaxPositionEmbeddings, llvm::APFloat(s.betaFast),
      llvm::APFloat(s.betaSlow), llvm::APFloat(mscale),
      llvm::APFloat(mscaleAllDim));
  return success();
}

/// Multi-head or grouped-query attention with rotate-half RoPE (Mixtral,
/// Qwen2-MoE with q/k/v biases, Qwen3-MoE with per-head q/k RMSNorm).
Value GraphBuilder::attention(const std::string &prefix, Value x) {
  int64_t heads = config.numHeads, kvHeads = config.numKVHeads;
  int64_t headDim = config.headDim;
  // A projection and its bias, if the checkpoint has one, share a role.
  auto project = [&](Value in, const std::string &proj, WeightRoleKind role) {
    std::string bias = prefix + proj + ".bias";
    return matmul(in, weight(prefix + proj + ".weight", role),
                  has(bias) ? weight(bias, role) : Value());
  };
  Value q = project(x, "q_proj", WeightRoleKind::attn_q);
  Value k = project(x, "k_proj", WeightRoleKind::attn_k);
  Value v = project(x, "v_proj", WeightRoleKind::attn_v);
  q = reshape(q, {heads, headDim});
  k = reshape(k, {kvHeads, headDim});
  v = reshape(v, {kvHeads, headDim});
  if (config.qkNorm) {
    q = rmsNorm(q, weight(prefix + "q_norm.weight", WeightRoleKind::norm),
                config.rmsNormEps);
    k = rmsNorm(k, weight(prefix + "k_norm.weight", WeightRoleKind::norm),
                config.rmsNormEps);
  }
  q = rope(q, /*interleaved=*/false);
  k = rope(k, /*interleaved=*/false);
  Value o =
      moe::AttentionOp::create(
          b, loc, act({heads, headDim}), q, k, v,
          b.getF64FloatAttr(1.0 / std::sqrt(double(headDim))), b.getUnitAttr())
          .getResult();
  return project(reshape(o, {heads * headDim}), "o_proj",
                 WeightRoleKind::attn_o);
}

/// DeepSeek's multi-head latent attention in expanded form: low-rank q and
/// kv projections, a rotary part shared by all heads, and a softmax scale
/// corrected by YaRN's mscale.
Value GraphBuilder::mlaAttention(const std::string &prefix, Value x) {
  int64_t heads = config.numHeads, nope = config.qkNopeHeadDim;
  int64_t ropeDim = config.qkRopeHeadDim, vDim = config.vHeadDim;
  int64_t kvRank = config.kvLoraRank;
  // DeepSeek's q_a/kv_a layernorms use their own, fixed epsilon.
  constexpr double kLoraNormEps = 1e-6;
  Value q;
  if (config.qLoraRank) {
    Value qa =
        matmul(x, weight(prefix + "q_a_proj.weight", WeightRoleKind::attn_q_a));
    qa = rmsNorm(qa,
                 weight(prefix + "q_a_layernorm.weight", WeightRoleKind::norm),
                 kLoraNormEps);
    q = matmul(qa,
               weight(prefix + "q_b_proj.weight", WeightRoleKind::attn_q_b));
  } else {
    q = matmul(x, weight(prefix + "q_proj.weight", WeightRoleKind::attn_q));
  }
  q = reshape(q, {heads, nope + ropeDim});
  Value qNope = slice(q, 0, nope);
  Value qRope = rope(slice(q, nope, ropeDim), config.ropeInterleave);

  Value kv = matmul(x, weight(prefix + "kv_a_proj_with_mqa.weight",
                              WeightRoleKind::attn_kv_a));
  Value latent =
      rmsNorm(slice(kv, 0, kvRank),
              weight(prefix + "kv_a_layernorm.weight", WeightRoleKind::norm),
              kLoraNormEps);
  Value kRope = rope(reshape(slice(kv, kvRank, ropeDim), {1, ropeDim}),
                     config.ropeInterleave);
  kRope =
      moe::ExpandOp::create(b, loc, act({heads, ropeDim}), kRope).getResult();
  Value kvb = reshape(matmul(latent, weight(prefix + "kv_b_proj.weight",
                                            WeightRoleKind::attn_kv_b)),
                      {heads, nope + vDim});
  Value k = concat(slice(kvb, 0, nope), kRope);
  Value v = slice(kvb, nope, vDim);
  q = concat(qNope, qRope);

  double scale = 1.0 / std::sqrt(double(nope + ropeDim));
  if (config.ropeScaling.kind == RopeScaling::Yarn) {
    double m = moe::getYarnMscale(config.ropeScaling.factor,
                                  config.ropeScaling.mscaleAllDim);
    scale *= m * m;
  }
  Value o = moe::AttentionOp::create(b, loc, act({heads, vDim}), q, k, v,
                                     b.getF64FloatAttr(scale), b.getUnitAttr())
                .getResult();
  return matmul(reshape(o, {heads * vDim}),
                weight(prefix + "o_proj.weight", WeightRoleKind::attn_o));
}

/// `down(silu(gate(x)) * up(x))`.
Value GraphBuilder::denseMlp(const std::string &prefix, Value x) {
  Value gate =
      matmul(x, weight(prefix + "gate_proj.weight", WeightRoleKind::mlp_gate));
  Value up =
      matmul(x, weight(prefix + "up_proj.weight", WeightRoleKind::mlp_up));
  Value h = moe::SiluMulOp::create(b, loc, gate.getType(), gate, up);
  return matmul(h,
                weight(prefix + "down_proj.weight", WeightRoleKind::mlp_down));
}

/// One `moe.moe` with the architecture's routing and shared experts.
Value GraphBuilder::moeLayer(const std::string &prefix, Value x) {
  bool mixtral = config.arch == Architecture::Mixtral;
  std::string moePrefix = prefix + (mixtral ? "block_sparse_moe." : "mlp.");
  const char *gateName = mixtral ? "w1" : "gate_proj";
  const char *upName = mixtral ? "w3" : "up_proj";
  const char *downName = mixtral ? "w2" : "down_proj";
  auto experts = [&](const char *proj, WeightRoleKind role) {
    std::vector<std::string> names;
    for (int64_t e = 0; e < config.numExperts; ++e)
      names.push_back(moePrefix + "experts." + std::to_string(e) + "." + proj +
                      ".weight");
    return weight(names, role);
  };
  Value gate = weight(moePrefix + "gate.weight", WeightRoleKind::router);
  Value bias;
  if (config.hasCorrectionBias)
    bias = weight(moePrefix + "gate.e_score_correction_bias",
                  WeightRoleKind::router);
  Value w1 = experts(gateName, WeightRoleKind::expert_gate);
  Value w3 = experts(upName, WeightRoleKind::expert_up);
  Value w2 = experts(downName, WeightRoleKind::expert_down);

  Value s1, s3, s2, sharedGate;
  if (config.numSharedExperts > 0 || config.sharedExpertIntermediateSize > 0) {
    std::string shared = moePrefix + (config.arch == Architecture::DeepseekV3
                                          ? "shared_experts."
                                          : "shared_expert.");
    s1 = weight(shared + "gate_proj.weight", WeightRoleKind::shared_gate);
    s3 = weight(shared + "up_proj.weight", WeightRoleKind::shared_up);
    s2 = weight(shared + "down_proj.weight", WeightRoleKind::shared_down);
    if (config.sharedExpertGate)
      sharedGate = weight(moePrefix + "shared_expert_gate.weight",
                          WeightRoleKind::shared_expert_gate);
  }

  moe::GroupScore groupScore = moe::GroupScore::none;
  if (config.groupScore == hf::GroupScore::SumTop2)
    groupScore = moe::GroupScore::top2_sum;
  else if (config.groupScore == hf::GroupScore::Max)
    groupScore = moe::GroupScore::max;
  int64_t nGroup = groupScore == moe::GroupScore::none ? 1 : config.nGroup;
  auto routing = RoutingAttr::get(
      b.getContext(),
      config.scoring == hf::ScoringFunc::Sigmoid ? moe::ScoringFunc::sigmoid
                                                 : moe::ScoringFunc::softmax,
      config.topK, nGroup,
      groupScore == moe::GroupScore::none ? int64_t(1) : config.topkGroup,
      groupScore, config.normTopkProb,
      llvm::APFloat(config.routedScalingFactor));
  return moe::MoEOp::create(b, loc, x.getType(), x, gate, bias, w1, w3, w2, s1,
                            s3, s2, sharedGate, routing)
      .getResult();
}

LogicalResult GraphBuilder::build(ModuleOp module) {
  fileLoc = FileLineColLoc::get(
      b.getContext(), (llvm::Twine(checkpoint.dir()) + "/config.json").str(), 0,
      0);
  loc = fileLoc;
  if (failed(buildRopeScaling()))
    return failure();
  b.setInsertionPointToEnd(module.getBody());
  auto ids = RankedTensorType::get({dyn()}, b.getI32Type());
  auto logitsType = act({config.vocabSize});
  auto func = func::FuncOp::create(b, fileLoc, "forward",
                                   b.getFunctionType({ids, ids}, logitsType));
  func.setArgAttr(0, "moe.name", b.getStringAttr("tokens"));
  func.setArgAttr(1, "moe.name", b.getStringAttr("positions"));
  b.setInsertionPointToEnd(func.addEntryBlock());
  Value tokens = func.getArgument(0);
  positions = func.getArgument(1);

  Value embedTable =
      weight("model.embed_tokens.weight", WeightRoleKind::embedding);
  loc = named("model.embed_tokens");
  Value h =
      moe::EmbedOp::create(b, loc, act({config.hiddenSize}), embedTable, tokens)
          .getResult();
  for (int64_t index = 0; index < config.numLayers; ++index) {
    layer = index;
    std::string prefix = "model.layers." + std::to_string(index) + ".";
    loc = named(prefix + "self_attn");
    Value x = rmsNorm(
        h, weight(prefix + "input_layernorm.weight", WeightRoleKind::norm),
        config.rmsNormEps);
    Value a = config.isMLA ? mlaAttention(prefix + "self_attn.", x)
                           : attention(prefix + "self_attn.", x);
    h = add(h, a);
    loc = named(prefix + "mlp");
    x = rmsNorm(h,
                weight(prefix + "post_attention_layernorm.weight",
                       WeightRoleKind::norm),
                config.rmsNormEps);
    Value m = config.isMoELayer(index) ? moeLayer(prefix, x)
                                       : denseMlp(prefix + "mlp.", x);
    h = add(h, m);
  }
  layer = std::nullopt;
  loc = named("lm_head");
  h = rmsNorm(h, weight("model.norm.weight", WeightRoleKind::norm),
              config.rmsNormEps);
  Value head = config.tieWordEmbeddings
                   ? embedTable
                   : weight("lm_head.weight", WeightRoleKind::lm_head);
  Value logits = matmul(h, head);
  func::ReturnOp::create(b, loc, logits);
  return success();
}

} // namespace

FailureOr<OwningOpRef<ModuleOp>>
mlir::moec::hf::importHFCheckpoint(llvm::StringRef dir, MLIRContext *context) {
  context->loadDialect<moe::MoEDialect, func::FuncDialect>();
  Location dirLoc = FileLineColLoc::get(context, dir, 0, 0);
  auto fail = [&](llvm::Error error) -> FailureOr<OwningOpRef<ModuleOp>> {
    emitError(dirLoc) << llvm::toString(std::move(error));
    return failure();
  };
  llvm::Expected<ModelConfig> config = loadModelConfig(dir);
  if (!config)
    return fail(config.takeError());
  llvm::Expected<std::unique_ptr<Checkpoint>> checkpoint =
      Checkpoint::open(dir);
  if (!checkpoint)
    return fail(checkpoint.takeError());
  if (llvm::Error error = checkTensors(*config, **checkpoint))
    return fail(std::move(error));

  OwningOpRef<ModuleOp> module = ModuleOp::create(dirLoc);
  OpBuilder b(context);
  llvm::SmallString<256> absoluteDir(dir);
  llvm::sys::fs::make_absolute(absoluteDir);
  llvm::sys::path::remove_dots(absoluteDir, /*remove_dot_dot=*/true);
  (*module)->setAttr("moe.checkpoint", b.getStringAttr(absoluteDir));
  (*module)->setAttr("moe.max_positions",
                     b.getI64IntegerAttr(config->maxPositionEmbeddings));
  (*module)->setAttr("moe.model_type",
                     b.getStringAttr(getModelType(config->arch)));
  GraphBuilder builder(context, *config, **checkpoint);
  if (failed(builder.build(*module)) || failed(verify(*module)))
    return failure();
  return module;
}
