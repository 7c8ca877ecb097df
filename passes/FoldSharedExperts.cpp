//===- FoldSharedExperts.cpp - Shared experts as routed ones ----*- C++ -*-===//
//
// `--moec-fold-shared-experts`: a shared expert as wide as the routed ones is
// appended to the routed experts' stacked weights as expert `E`, and the
// router selects it for every token with weight 1, so one grouped GEMM per
// projection serves both and the separate shared GEMMs and add disappear.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::moec {
#define GEN_PASS_DEF_FOLDSHAREDEXPERTSPASS
#include "passes/Passes.h.inc"
} // namespace mlir::moec

using namespace mlir;
using namespace mlir::moec;

namespace {

/// `type` with its leading dimension replaced by `size`.
RankedTensorType withLeadingDim(Type type, int64_t size) {
  auto ranked = cast<RankedTensorType>(type);
  SmallVector<int64_t> shape(ranked.getShape());
  shape[0] = size;
  return RankedTensorType::get(shape, ranked.getElementType());
}

/// The `moe.weight` behind an expert weight operand `w`: `w` itself or the
/// data of the `moe.dequantize` that `w` is.
moe::WeightOp getStoredWeight(Value w) {
  if (auto dequant = w.getDefiningOp<moe::DequantizeOp>())
    w = dequant.getX();
  return w.getDefiningOp<moe::WeightOp>();
}

/// Checks that the single-source weight `shared` can be appended to the
/// stacked weight `routed` as one more expert: both are `moe.weight` results
/// or `moe.dequantize`s of FP8 `moe.weight`s, with the same stored type,
/// scheme and (but for the stack) transforms.
LogicalResult checkAppendable(Value routed, Value shared, std::string &reason) {
  auto routedDequant = routed.getDefiningOp<moe::DequantizeOp>();
  auto sharedDequant = shared.getDefiningOp<moe::DequantizeOp>();
  if (static_cast<bool>(routedDequant) != static_cast<bool>(sharedDequant) ||
      (routedDequant &&
       routedDequant.getScheme() != sharedDequant.getScheme())) {
    reason = "the shared and routed expert weights are quantized differently";
    return failure();
  }
  moe::WeightOp routedWeight = getStoredWeight(routed);
  moe::WeightOp sharedWeight = getStoredWeight(shared);
  if (!routedWeight || !sharedWeight) {
    reason = "an expert weight is not a `moe.weight`";
    return failure();
  }
  ArrayRef<Attribute> transforms = routedWeight.getTransforms().getValue();
  if (transforms.empty() || !isa<moe::StackTransformAttr>(transforms[0]) ||
      sharedWeight.getSources().size() != 1 ||
      transforms.drop_front() != sharedWeight.getTransforms().getValue() ||
      routedWeight.getStoredType() != sharedWeight.getStoredType() ||
      routedWeight.getStoredSchemeAttr() !=
          sharedWeight.getStoredSchemeAttr()) {
    reason = "the shared expert's weight is not stored like one routed "
             "expert's";
    return failure();
  }
  return success();
}

/// Builds `routed` with `shared` appended as expert `E` (see
/// `checkAppendable`): one `moe.weight` with both sources, stacked.
Value appendExpertWeight(PatternRewriter &rewriter, Location loc, Value routed,
                         Value shared) {
  moe::WeightOp routedWeight = getStoredWeight(routed);
  moe::WeightOp sharedWeight = getStoredWeight(shared);
  auto concatArrays = [&](ArrayAttr a, ArrayAttr b) -> ArrayAttr {
    if (!a)
      return {};
    SmallVector<Attribute> all(a.getValue());
    llvm::append_range(all, b.getValue());
    return rewriter.getArrayAttr(all);
  };
  int64_t experts = routedWeight.getSources().size() + 1;
  Type scaleType;
  if (Value scale = routedWeight.getScale())
    scaleType = withLeadingDim(scale.getType(), experts);
  auto merged = moe::WeightOp::create(
      rewriter, loc,
      withLeadingDim(routedWeight.getResult().getType(), experts), scaleType,
      concatArrays(routedWeight.getSources(), sharedWeight.getSources()),
      routedWeight.getStoredTypeAttr(), routedWeight.getTransforms(),
      concatArrays(routedWeight.getScaleSourcesAttr(),
                   sharedWeight.getScaleSourcesAttr()),
      routedWeight.getStoredSchemeAttr(),
      // The routed weight's role and layer carry over.
      routedWeight.getRoleAttr());
  for (NamedAttribute attr : routedWeight->getDiscardableAttrs())
    merged->setAttr(attr.getName(), attr.getValue());
  auto dequant = routed.getDefiningOp<moe::DequantizeOp>();
  if (!dequant)
    return merged.getResult();
  return moe::DequantizeOp::create(
      rewriter, loc, withLeadingDim(routed.getType(), experts),
      merged.getResult(), merged.getScale(), dequant.getScheme());
}

//===----------------------------------------------------------------------===//
// add(combine(routed experts), shared expert)
//===----------------------------------------------------------------------===//

/// Matches the decomposed MoE layer
///   %w, %i = router %x ...; %rows, %off, %pos = dispatch %x, %i
///   %d = grouped_matmul(silu_mul(grouped_matmul(%rows, W1),
///                                grouped_matmul(%rows, W3)), W2)
///   add(combine(%d, %pos, %w), matmul(silu_mul(matmul(%x, S1),
///                                              matmul(%x, S3)), S2))
/// and appends the shared expert to the routed ones.
struct FoldSharedExpert : OpRewritePattern<moe::AddOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(moe::AddOp add,
                                PatternRewriter &rewriter) const override {
    auto combine = add.getLhs().getDefiningOp<moe::CombineOp>();
    Value sharedOut = add.getRhs();
    if (!combine) {
      combine = add.getRhs().getDefiningOp<moe::CombineOp>();
      sharedOut = add.getLhs();
    }
    if (!combine || combine.getResidual() || !combine->hasOneUse())
      return rewriter.notifyMatchFailure(add, "not an add of a `moe.combine`");
    if (sharedOut.getDefiningOp<moe::SigmoidGateOp>())
      return rewriter.notifyMatchFailure(
          add, "the shared expert is scaled by a per-token sigmoid gate "
               "(Qwen2-MoE); it stays a separate GEMM");

    // The routed experts.
    auto router = combine.getWeights().getDefiningOp<moe::RouterOp>();
    auto down = combine.getRows().getDefiningOp<moe::GroupedMatmulOp>();
    if (!router || !down || router.getSharedExperts() != 0 ||
        !down->hasOneUse() || down.getEpilogue() != moe::Epilogue::none)
      return rewriter.notifyMatchFailure(add, "routed experts not matched");
    auto act = down.getRows().getDefiningOp<moe::SiluMulOp>();
    if (!act || !act->hasOneUse())
      return rewriter.notifyMatchFailure(add, "routed SwiGLU not matched");
    auto gate = act.getGate().getDefiningOp<moe::GroupedMatmulOp>();
    auto up = act.getUp().getDefiningOp<moe::GroupedMatmulOp>();
    auto dispatch = down.getOffsets().getDefiningOp<moe::DispatchOp>();
    if (!gate || !up || !dispatch || !gate->hasOneUse() || !up->hasOneUse() ||
        gate.getEpilogue() != moe::Epilogue::none ||
        up.getEpilogue() != moe::Epilogue::none ||
        gate.getRows() != dispatch.getRows() ||
        up.getRows() != dispatch.getRows() ||
        gate.getOffsets() != dispatch.getOffsets() ||
        up.getOffsets() != dispatch.getOffsets() ||
        combine.getPositions() != dispatch.getPositions() ||
        dispatch.getIndices() != router.getIndices() ||
        dispatch.getX() != router.getX())
      return rewriter.notifyMatchFailure(add, "routed GEMMs not matched");
    if (!router.getWeights().hasOneUse() || !router.getIndices().hasOneUse())
      return rewriter.notifyMatchFailure(
          add, "the routing results have other users");

    // The shared expert.
    auto sharedDown = sharedOut.getDefiningOp<moe::MatmulOp>();
    if (!sharedDown || !sharedDown->hasOneUse() || sharedDown.getBias() ||
        sharedDown.getEpilogue() != moe::Epilogue::none)
      return rewriter.notifyMatchFailure(add, "shared down GEMM not matched");
    auto sharedAct = sharedDown.getX().getDefiningOp<moe::SiluMulOp>();
    auto sharedGate = sharedAct
                          ? sharedAct.getGate().getDefiningOp<moe::MatmulOp>()
                          : moe::MatmulOp();
    auto sharedUp = sharedAct ? sharedAct.getUp().getDefiningOp<moe::MatmulOp>()
                              : moe::MatmulOp();
    if (!sharedAct || !sharedGate || !sharedUp || !sharedAct->hasOneUse() ||
        !sharedGate->hasOneUse() || !sharedUp->hasOneUse() ||
        sharedGate.getBias() || sharedUp.getBias() ||
        sharedGate.getEpilogue() != moe::Epilogue::none ||
        sharedUp.getEpilogue() != moe::Epilogue::none ||
        sharedGate.getX() != router.getX() || sharedUp.getX() != router.getX())
      return rewriter.notifyMatchFailure(add, "shared SwiGLU not matched");

    auto gateType = cast<RankedTensorType>(gate.getW().getType());
    auto sharedGateType = cast<RankedTensorType>(sharedGate.getW().getType());
    if (gateType.getShape().drop_front() != sharedGateType.getShape())
      return rewriter.notifyMatchFailure(add, [&](Diagnostic &diag) {
        diag << "the shared expert is " << sharedGateType.getDimSize(0)
             << " wide and the routed experts " << gateType.getDimSize(1)
             << "; only equal widths fold";
      });

    std::string reason;
    if (failed(checkAppendable(gate.getW(), sharedGate.getW(), reason)) ||
        failed(checkAppendable(up.getW(), sharedUp.getW(), reason)) ||
        failed(checkAppendable(down.getW(), sharedDown.getW(), reason)))
      return rewriter.notifyMatchFailure(add, reason);

    Location loc = add.getLoc();
    Value w1 =
        appendExpertWeight(rewriter, loc, gate.getW(), sharedGate.getW());
    Value w3 = appendExpertWeight(rewriter, loc, up.getW(), sharedUp.getW());
    Value w2 =
        appendExpertWeight(rewriter, loc, down.getW(), sharedDown.getW());
    int64_t experts = gateType.getDimSize(0) + 1;
    // One more column per token: the shared expert, always selected.
    auto widen = [&](Value routing) {
      auto type = cast<RankedTensorType>(routing.getType());
      return RankedTensorType::get({type.getDimSize(0), type.getDimSize(1) + 1},
                                   type.getElementType());
    };
    auto newRouter = moe::RouterOp::create(
        rewriter, loc, widen(router.getWeights()), widen(router.getIndices()),
        router.getX(), router.getGate(), router.getBias(), router.getRouting(),
        /*shared_experts=*/1);
    auto newDispatch = moe::DispatchOp::create(
        rewriter, loc, dispatch.getRows().getType(),
        RankedTensorType::get({experts + 1}, rewriter.getI32Type()),
        dispatch.getPositions().getType(), dispatch.getX(),
        newRouter.getIndices());
    Value rows = newDispatch.getRows(), offsets = newDispatch.getOffsets();
    Value g = moe::GroupedMatmulOp::create(rewriter, loc, gate.getType(), rows,
                                           offsets, w1);
    Value u = moe::GroupedMatmulOp::create(rewriter, loc, up.getType(), rows,
                                           offsets, w3);
    Value h = moe::SiluMulOp::create(rewriter, loc, act.getType(), g, u);
    Value d = moe::GroupedMatmulOp::create(rewriter, loc, down.getType(), h,
                                           offsets, w2);
    rewriter.replaceOpWithNewOp<moe::CombineOp>(
        add, add.getType(), d, newDispatch.getPositions(),
        newRouter.getWeights(), Value());
    return success();
  }
};

//===----------------------------------------------------------------------===//
// --moec-fold-shared-experts
//===----------------------------------------------------------------------===//

struct FoldSharedExpertsPass
    : moec::impl::FoldSharedExpertsPassBase<FoldSharedExpertsPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    populateFoldSharedExpertsPatterns(patterns);
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace

void mlir::moec::populateFoldSharedExpertsPatterns(
    RewritePatternSet &patterns) {
  patterns.add<FoldSharedExpert>(patterns.getContext());
}
