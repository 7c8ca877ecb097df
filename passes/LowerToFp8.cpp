//===- LowerToFp8.cpp - Block-scaled FP8 GEMMs ------------------*- C++ -*-===//
//
// `--moec-lower-to-fp8`: the DeepSeek-V3 scheme (DESIGN.md §4). Weights of
// the GEMMs the policy allows become FP8 with 128x128 block scales, their
// activations are quantized per token per 128 channels, and the GEMMs become
// `moe.fp8_matmul` / `moe.fp8_grouped_matmul`.
//
// The rewrite goes through `moe.dequantize`, the form in which importers
// already present FP8 checkpoint weights: a high-precision weight first gets
// a quantized twin (`#moe.quantize` transform) behind a `moe.dequantize`,
// dequantization is hoisted above weight concatenation (weights that cannot
// be quantized piece by piece, and reshapes and slices of weights, get a
// `moe.quantize` instead), and a GEMM whose weight is a `moe.dequantize`
// takes its FP8 data and scales directly.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"
#include "passes/Roles.h"
#include "passes/WeightExprs.h"

#include "mlir/Transforms/GreedyPatternRewriteDriver.h"
#include "llvm/ADT/STLExtras.h"

namespace mlir::moec {
#define GEN_PASS_DEF_LOWERTOFP8PASS
#include "passes/Passes.h.inc"
} // namespace mlir::moec

using namespace mlir;
using namespace mlir::moec;

namespace {

/// The weight block size of the DeepSeek-V3 scheme (both dimensions).
/// Activation blocks are one row by the weight's K block.
constexpr int64_t kWeightBlock = 128;

/// The policy of a `--moec-lower-to-fp8` run and the decisions derived from
/// it, shared by its patterns.
class Fp8Lowering {
public:
  explicit Fp8Lowering(MLIRContext *context, const Fp8Policy &policy)
      : policy(policy),
        weightScheme(moe::BlockScaleAttr::get(
            context, moe::Fp8Format::e4m3fn, {kWeightBlock, kWeightBlock},
            moe::ScalePlacement::row_major, policy.pow2Scales)) {}

  /// The scheme of weights quantized at compile time.
  moe::BlockScaleAttr getWeightScheme() const { return weightScheme; }

  /// The activation scheme that pairs with `weight`: one row by the weight's
  /// K block.
  moe::BlockScaleAttr getActScheme(moe::BlockScaleAttr weight) const {
    return moe::BlockScaleAttr::get(
        weight.getContext(), moe::Fp8Format::e4m3fn, {1, weight.getBlock()[1]},
        moe::ScalePlacement::row_major, policy.pow2Scales);
  }

  /// True when the policy keeps GEMMs over `weight` in high precision.
  bool keeps(moe::WeightOp weight) const {
    switch (getWeightRole(weight)) {
    case Role::lm_head:
    case Role::embedding: // A GEMM over the embedding table is a tied lm_head.
      return policy.keepLmHead;
    case Role::router:
    case Role::shared_expert_gate:
    case Role::norm:
      return true;
    default:
      break;
    }
    if (policy.keepAttention && isAttentionRole(getWeightRole(weight)))
      return true;
    std::optional<int64_t> layer = getWeightLayer(weight);
    if (!layer)
      return false;
    if (*layer < static_cast<int64_t>(policy.keepFirstLayers))
      return true;
    // Without a layer count (nothing set it) there is no "last" layer.
    return policy.numLayers > 0 &&
           *layer >=
               policy.numLayers - static_cast<int64_t>(policy.keepLastLayers);
  }

  /// True when a GEMM with weight operand `w` goes to FP8: `w` is made of
  /// checkpoint weights only, none of which the policy keeps.
  bool lowers(Value w) const {
    SmallVector<moe::WeightOp> sources = getWeightSources(w);
    return !sources.empty() &&
           llvm::none_of(sources, [&](moe::WeightOp s) { return keeps(s); });
  }

  /// True when `use` is the weight operand of a GEMM that goes to FP8.
  bool isLoweredGemmWeight(OpOperand &use) const {
    Operation *owner = use.getOwner();
    if (auto gemm = dyn_cast<moe::MatmulOp>(owner))
      return &use == &gemm.getWMutable() && lowers(use.get());
    if (auto gemm = dyn_cast<moe::GroupedMatmulOp>(owner))
      return &use == &gemm.getWMutable() && lowers(use.get());
    return false;
  }

  /// True when the weights concatenated by `concat` can each be quantized on
  /// their own: `concat` feeds only lowered GEMMs, its inputs are
  /// unquantized `moe.weight`s (or already their quantized twins), and no
  /// scale block straddles a split point.
  bool quantizesPiecewise(moe::ConcatOp concat) const {
    Value result = concat.getResult();
    if (result.use_empty() ||
        !llvm::all_of(result.getUses(),
                      [&](OpOperand &use) { return isLoweredGemmWeight(use); }))
      return false;
    for (Value input : concat.getInputs()) {
      auto weight = input.getDefiningOp<moe::WeightOp>();
      auto dequant = input.getDefiningOp<moe::DequantizeOp>();
      if (!(weight && !weight.getScheme()) &&
          !(dequant && dequant.getScheme() == weightScheme))
        return false;
    }
    int64_t rank = cast<RankedTensorType>(result.getType()).getRank();
    int64_t dim = concat.getConcatDim();
    return splitsAligned(concat.getInputs(), dim,
                         blockAlong(weightScheme, dim, rank));
  }

private:
  Fp8Policy policy;
  moe::BlockScaleAttr weightScheme;
};

/// A pattern that consults the FP8 policy.
template <typename OpTy> struct Fp8Pattern : OpRewritePattern<OpTy> {
  Fp8Pattern(MLIRContext *context, std::shared_ptr<Fp8Lowering> lowering)
      : OpRewritePattern<OpTy>(context), lowering(std::move(lowering)) {}

protected:
  std::shared_ptr<Fp8Lowering> lowering;
};

/// Replaces `uses` (of one value) with `value`, through the rewriter.
void replaceUses(PatternRewriter &rewriter, ArrayRef<OpOperand *> uses,
                 Value value) {
  for (OpOperand *use : uses)
    rewriter.modifyOpInPlace(use->getOwner(), [&] { use->set(value); });
}

/// Wraps the FP8 data `q` and scales `s` of `scheme` in a `moe.dequantize` of
/// type `type`.
Value dequantize(PatternRewriter &rewriter, Location loc, Type type, Value q,
                 Value s, moe::BlockScaleAttr scheme) {
  return moe::DequantizeOp::create(rewriter, loc, type, q, s, scheme);
}

//===----------------------------------------------------------------------===//
// moe.weight
//===----------------------------------------------------------------------===//

/// A high-precision `moe.weight` read by lowered GEMMs (directly or through a
/// piecewise-quantizable concat) gets a quantized twin with a `#moe.quantize`
/// transform; those reads go through `moe.dequantize` of the twin.
struct QuantizeWeight : Fp8Pattern<moe::WeightOp> {
  using Fp8Pattern::Fp8Pattern;

  LogicalResult matchAndRewrite(moe::WeightOp op,
                                PatternRewriter &rewriter) const override {
    if (op.getScheme())
      return rewriter.notifyMatchFailure(op, "already FP8");
    auto type = cast<RankedTensorType>(op.getResult().getType());
    auto elementType = dyn_cast<FloatType>(type.getElementType());
    if (type.getRank() < 2 || !elementType || elementType.getWidth() <= 8)
      return rewriter.notifyMatchFailure(op, "not a high-precision matrix");
    SmallVector<OpOperand *> uses;
    for (OpOperand &use : op.getResult().getUses()) {
      auto concat = dyn_cast<moe::ConcatOp>(use.getOwner());
      if (lowering->isLoweredGemmWeight(use) ||
          (concat && lowering->quantizesPiecewise(concat)))
        uses.push_back(&use);
    }
    if (uses.empty())
      return rewriter.notifyMatchFailure(op, "no lowered GEMM reads it");

    moe::BlockScaleAttr scheme = lowering->getWeightScheme();
    SmallVector<Attribute> transforms(op.getTransforms().getValue());
    transforms.push_back(
        moe::QuantizeTransformAttr::get(rewriter.getContext(), scheme));
    rewriter.setInsertionPointAfter(op);
    auto twin = moe::WeightOp::create(
        rewriter, op.getLoc(),
        RankedTensorType::get(type.getShape(), scheme.getElementType()),
        RankedTensorType::get(scheme.getScaleShape(type.getShape()),
                              rewriter.getF32Type()),
        op.getSources(), op.getStoredTypeAttr(),
        rewriter.getArrayAttr(transforms), ArrayAttr(), moe::BlockScaleAttr(),
        op.getRoleAttr()); // The role stays for the policy and later phases.
    for (NamedAttribute attr : op->getDiscardableAttrs())
      twin->setAttr(attr.getName(), attr.getValue());
    replaceUses(rewriter, uses,
                dequantize(rewriter, op.getLoc(), type, twin.getResult(),
                           twin.getScale(), scheme));
    return success();
  }
};

//===----------------------------------------------------------------------===//
// moe.concat
//===----------------------------------------------------------------------===//

/// `concat(dequantize(q_i, s_i))` → `dequantize(concat(q_i), concat(s_i))`
/// when the scale blocks allow it.
struct HoistDequantizeAboveConcat : OpRewritePattern<moe::ConcatOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(moe::ConcatOp op,
                                PatternRewriter &rewriter) const override {
    if (!llvm::all_of(op.getInputs(), [](Value input) {
          return static_cast<bool>(input.getDefiningOp<moe::DequantizeOp>());
        }))
      return rewriter.notifyMatchFailure(op, "an input is not dequantized");
    std::string reason;
    int64_t dim = op.getConcatDim();
    if (failed(canConcatWeights(op.getInputs(), dim, reason)))
      return rewriter.notifyMatchFailure(op, reason);
    rewriter.replaceOp(
        op, concatWeights(rewriter, op.getLoc(), op.getInputs(), dim));
    return success();
  }
};

/// Quantizes the high-precision weight expression `op` computes as a whole
/// for the lowered GEMMs that read it: a `moe.quantize` behind a
/// `moe.dequantize`, which the artifact writer folds since its operand is all
/// weights.
LogicalResult quantizeWholeWeight(PatternRewriter &rewriter, Operation *op,
                                  const Fp8Lowering &lowering) {
  Value result = op->getResult(0);
  SmallVector<OpOperand *> uses;
  for (OpOperand &use : result.getUses())
    if (lowering.isLoweredGemmWeight(use))
      uses.push_back(&use);
  if (uses.empty())
    return rewriter.notifyMatchFailure(op, "no lowered GEMM reads it");

  moe::BlockScaleAttr scheme = lowering.getWeightScheme();
  auto type = cast<RankedTensorType>(result.getType());
  rewriter.setInsertionPointAfter(op);
  auto quantized = moe::QuantizeOp::create(
      rewriter, op->getLoc(),
      RankedTensorType::get(type.getShape(), scheme.getElementType()),
      RankedTensorType::get(scheme.getScaleShape(type.getShape()),
                            rewriter.getF32Type()),
      result, scheme);
  replaceUses(rewriter, uses,
              dequantize(rewriter, op->getLoc(), type, quantized.getResult(),
                         quantized.getScale(), scheme));
  return success();
}

/// A concatenation of high-precision weights that cannot be quantized piece
/// by piece (a split point inside a 128-row block, or pieces that are not
/// plain `moe.weight`s) is quantized as a whole.
struct QuantizeConcatenatedWeight : Fp8Pattern<moe::ConcatOp> {
  using Fp8Pattern::Fp8Pattern;

  LogicalResult matchAndRewrite(moe::ConcatOp op,
                                PatternRewriter &rewriter) const override {
    if (lowering->quantizesPiecewise(op))
      return rewriter.notifyMatchFailure(op, "quantized piece by piece");
    if (!isWeightExpr(op.getResult()) ||
        llvm::any_of(op.getInputs(), [](Value input) {
          return static_cast<bool>(input.getDefiningOp<moe::DequantizeOp>());
        }))
      return rewriter.notifyMatchFailure(op, "not high-precision weights");
    return quantizeWholeWeight(rewriter, op, *lowering);
  }
};

//===----------------------------------------------------------------------===//
// moe.reshape, moe.slice
//===----------------------------------------------------------------------===//

/// A reshape or slice of high-precision weights read by a lowered GEMM (the
/// ONNX importer's de-interleaved SwiGLU gate and up) is quantized as a
/// whole: its block scales follow the new layout, not the stored one.
template <typename OpTy> struct QuantizeWeightView : Fp8Pattern<OpTy> {
  using Fp8Pattern<OpTy>::Fp8Pattern;

  LogicalResult matchAndRewrite(OpTy op,
                                PatternRewriter &rewriter) const override {
    auto type = cast<RankedTensorType>(op.getType());
    auto elementType = dyn_cast<FloatType>(type.getElementType());
    if (type.getRank() < 2 || !elementType || elementType.getWidth() <= 8 ||
        !isWeightExpr(op.getResult()))
      return rewriter.notifyMatchFailure(op, "not high-precision weights");
    return quantizeWholeWeight(rewriter, op, *this->lowering);
  }
};

//===----------------------------------------------------------------------===//
// GEMMs
//===----------------------------------------------------------------------===//

/// The per-token quantization of activation `x` under `scheme`: an existing
/// `moe.quantize` of `x` before `user`, else a new one right after `x` is
/// defined, so that every GEMM reading `x` shares it.
moe::QuantizeOp getOrCreateActQuantize(PatternRewriter &rewriter, Value x,
                                       moe::BlockScaleAttr scheme,
                                       Operation *user) {
  for (Operation *other : x.getUsers()) {
    auto quantize = dyn_cast<moe::QuantizeOp>(other);
    if (quantize && quantize.getScheme() == scheme &&
        quantize->getBlock() == user->getBlock() &&
        quantize->isBeforeInBlock(user))
      return quantize;
  }
  OpBuilder::InsertionGuard guard(rewriter);
  rewriter.setInsertionPointAfterValue(x);
  auto type = cast<RankedTensorType>(x.getType());
  return moe::QuantizeOp::create(
      rewriter, x.getLoc(),
      RankedTensorType::get(type.getShape(), scheme.getElementType()),
      RankedTensorType::get(scheme.getScaleShape(type.getShape()),
                            rewriter.getF32Type()),
      x, scheme);
}

/// The FP8 weight of a GEMM to lower: its `w` operand's `moe.dequantize`.
template <typename GemmOp>
FailureOr<moe::DequantizeOp> matchFp8Weight(GemmOp op,
                                            PatternRewriter &rewriter,
                                            const Fp8Lowering &lowering) {
  auto dequant = op.getW().template getDefiningOp<moe::DequantizeOp>();
  if (!dequant)
    return rewriter.notifyMatchFailure(op, "the weight is not FP8 yet");
  if (dequant.getScheme().isInteger())
    return rewriter.notifyMatchFailure(
        op, "the weight is 8-bit integer codes, which no FP8 GEMM reads");
  if (!lowering.lowers(op.getW()))
    return rewriter.notifyMatchFailure(
        op, "the policy keeps this GEMM in high precision, or its weight is "
            "not a checkpoint weight");
  return dequant;
}

/// `matmul(x, dequantize(wq, ws))` → `fp8_matmul(quantize(x), wq, ws)`.
struct LowerMatmul : Fp8Pattern<moe::MatmulOp> {
  using Fp8Pattern::Fp8Pattern;

  LogicalResult matchAndRewrite(moe::MatmulOp op,
                                PatternRewriter &rewriter) const override {
    FailureOr<moe::DequantizeOp> w = matchFp8Weight(op, rewriter, *lowering);
    if (failed(w))
      return failure();
    moe::BlockScaleAttr weightScheme = w->getScheme();
    moe::BlockScaleAttr actScheme = lowering->getActScheme(weightScheme);
    moe::QuantizeOp x =
        getOrCreateActQuantize(rewriter, op.getX(), actScheme, op);
    rewriter.replaceOpWithNewOp<moe::Fp8MatmulOp>(
        op, op.getType(), x.getResult(), x.getScale(), w->getX(), w->getScale(),
        op.getBias(), actScheme, weightScheme, op.getEpilogue());
    return success();
  }
};

/// `grouped_matmul(rows, offsets, dequantize(wq, ws))` →
/// `fp8_grouped_matmul(quantize(rows), offsets, wq, ws)`.
struct LowerGroupedMatmul : Fp8Pattern<moe::GroupedMatmulOp> {
  using Fp8Pattern::Fp8Pattern;

  LogicalResult matchAndRewrite(moe::GroupedMatmulOp op,
                                PatternRewriter &rewriter) const override {
    FailureOr<moe::DequantizeOp> w = matchFp8Weight(op, rewriter, *lowering);
    if (failed(w))
      return failure();
    moe::BlockScaleAttr weightScheme = w->getScheme();
    moe::BlockScaleAttr actScheme = lowering->getActScheme(weightScheme);
    moe::QuantizeOp rows =
        getOrCreateActQuantize(rewriter, op.getRows(), actScheme, op);
    rewriter.replaceOpWithNewOp<moe::Fp8GroupedMatmulOp>(
        op, op.getType(), rows.getResult(), rows.getScale(), op.getOffsets(),
        w->getX(), w->getScale(), actScheme, weightScheme, op.getEpilogue());
    return success();
  }
};

//===----------------------------------------------------------------------===//
// --moec-lower-to-fp8
//===----------------------------------------------------------------------===//

struct LowerToFp8Pass : moec::impl::LowerToFp8PassBase<LowerToFp8Pass> {
  using LowerToFp8PassBase::LowerToFp8PassBase;

  void runOnOperation() override {
    Fp8Policy policy;
    policy.keepLmHead = keepLmHead;
    policy.keepAttention = keepAttention;
    policy.keepFirstLayers = keepFirstLayers;
    policy.keepLastLayers = keepLastLayers;
    policy.pow2Scales = pow2Scales;
    // The layer count is one more than the largest layer of any weight.
    getOperation().walk([&](moe::WeightOp weight) {
      if (std::optional<int64_t> layer = getWeightLayer(weight))
        policy.numLayers = std::max(policy.numLayers, *layer + 1);
    });

    RewritePatternSet patterns(&getContext());
    populateLowerToFp8Patterns(patterns, policy);
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace

void mlir::moec::populateLowerToFp8Patterns(RewritePatternSet &patterns,
                                            const Fp8Policy &policy) {
  MLIRContext *context = patterns.getContext();
  auto lowering = std::make_shared<Fp8Lowering>(context, policy);
  patterns.add<HoistDequantizeAboveConcat>(context);
  patterns
      .add<QuantizeWeight, QuantizeConcatenatedWeight,
           QuantizeWeightView<moe::ReshapeOp>, QuantizeWeightView<moe::SliceOp>,
           LowerMatmul, LowerGroupedMatmul>(context, lowering);
}
