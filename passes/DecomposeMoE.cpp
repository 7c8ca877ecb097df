//===- DecomposeMoE.cpp - Expand moe.moe into its parts ---------*- C++ -*-===//
//
// `--moec-decompose-moe`: rewrites each `moe.moe` into the ops the kernels
// implement: router, dispatch, the routed experts as grouped GEMMs, combine,
// and the shared experts as dense GEMMs added to the combined output.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::moec {
#define GEN_PASS_DEF_DECOMPOSEMOEPASS
#include "passes/Passes.h.inc"
} // namespace mlir::moec

using namespace mlir;
using namespace mlir::moec;

namespace {

//===----------------------------------------------------------------------===//
// moe.moe
//===----------------------------------------------------------------------===//

/// `moe.moe` → router, dispatch, gate/up/down grouped GEMMs, combine, plus
/// the shared expert FFN (and its sigmoid gate) added to the result.
struct DecomposeMoELayer : OpRewritePattern<moe::MoEOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(moe::MoEOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    auto resultType = cast<RankedTensorType>(op.getType());
    Type elementType = resultType.getElementType();
    auto xType = cast<RankedTensorType>(op.getX().getType());
    auto gateProjType = cast<RankedTensorType>(op.getGateProj().getType());
    int64_t dyn = ShapedType::kDynamic;
    int64_t hidden = xType.getDimSize(1);
    int64_t experts = gateProjType.getDimSize(0);
    int64_t inter = gateProjType.getDimSize(1);
    int64_t k = op.getRouting().getK();
    // Intermediate activations take the layer's result element type.
    auto act = [&](int64_t width) {
      return RankedTensorType::get({dyn, width}, elementType);
    };

    auto router = moe::RouterOp::create(
        rewriter, loc, RankedTensorType::get({dyn, k}, rewriter.getF32Type()),
        RankedTensorType::get({dyn, k}, rewriter.getI32Type()), op.getX(),
        op.getGate(), op.getBias(), op.getRouting());
    auto dispatch = moe::DispatchOp::create(
        rewriter, loc,
        RankedTensorType::get({dyn, hidden}, xType.getElementType()),
        RankedTensorType::get({experts + 1}, rewriter.getI32Type()),
        RankedTensorType::get({dyn}, rewriter.getI32Type()), op.getX(),
        router.getIndices());
    Value rows = dispatch.getRows(), offsets = dispatch.getOffsets();
    Value gate = moe::GroupedMatmulOp::create(rewriter, loc, act(inter), rows,
                                              offsets, op.getGateProj());
    Value up = moe::GroupedMatmulOp::create(rewriter, loc, act(inter), rows,
                                            offsets, op.getUpProj());
    Value hiddenRows =
        moe::SiluMulOp::create(rewriter, loc, act(inter), gate, up);
    Value down = moe::GroupedMatmulOp::create(
        rewriter, loc, act(hidden), hiddenRows, offsets, op.getDownProj());
    Value result = moe::CombineOp::create(rewriter, loc, resultType, down,
                                          dispatch.getPositions(),
                                          router.getWeights(), Value());

    if (op.getSharedGateProj()) {
      int64_t sharedInter =
          cast<RankedTensorType>(op.getSharedGateProj().getType())
              .getDimSize(0);
      Value sharedGate =
          moe::MatmulOp::create(rewriter, loc, act(sharedInter), op.getX(),
                                op.getSharedGateProj(), Value());
      Value sharedUp =
          moe::MatmulOp::create(rewriter, loc, act(sharedInter), op.getX(),
                                op.getSharedUpProj(), Value());
      Value sharedHidden = moe::SiluMulOp::create(
          rewriter, loc, act(sharedInter), sharedGate, sharedUp);
      Value shared =
          moe::MatmulOp::create(rewriter, loc, resultType, sharedHidden,
                                op.getSharedDownProj(), Value());
      // Qwen2-MoE scales the shared expert by sigmoid(x · w_sgᵀ) per token.
      if (Value expertGate = op.getSharedExpertGate())
        shared = moe::SigmoidGateOp::create(rewriter, loc, op.getX(),
                                            expertGate, shared);
      result = moe::AddOp::create(rewriter, loc, resultType, result, shared);
    }
    rewriter.replaceOp(op, result);
    return success();
  }
};

//===----------------------------------------------------------------------===//
// --moec-decompose-moe
//===----------------------------------------------------------------------===//

struct DecomposeMoEPass : moec::impl::DecomposeMoEPassBase<DecomposeMoEPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    populateDecomposeMoEPatterns(patterns);
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace

void mlir::moec::populateDecomposeMoEPatterns(RewritePatternSet &patterns) {
  patterns.add<DecomposeMoELayer>(patterns.getContext());
}
