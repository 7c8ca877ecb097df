//===- FuseAddRmsNorm.cpp - Residual add into RMSNorm -----------*- C++ -*-===//
//
// `--moec-fuse-add-rms-norm`: an RMSNorm of a residual add becomes one
// `moe.add_rms_norm`, which returns both the sum (the residual stream the
// next add reads) and the normalised value, in one pass over the rows.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"
#include "passes/WeightExprs.h"

#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::moec {
#define GEN_PASS_DEF_FUSEADDRMSNORMPASS
#include "passes/Passes.h.inc"
} // namespace mlir::moec

using namespace mlir;
using namespace mlir::moec;

namespace {

//===----------------------------------------------------------------------===//
// rms_norm(add(a, b), w)
//===----------------------------------------------------------------------===//

/// `rms_norm(add(a, b), w)` → `add_rms_norm(a, b, w)`; every other user of
/// the add reads the fused op's `sum`.
struct FuseAddRmsNorm : OpRewritePattern<moe::RmsNormOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(moe::RmsNormOp norm,
                                PatternRewriter &rewriter) const override {
    auto add = norm.getX().getDefiningOp<moe::AddOp>();
    if (!add)
      return rewriter.notifyMatchFailure(norm, "input is not a `moe.add`");
    // The fused op takes the add's place, so that the add's other users
    // still follow it; the norm weight has to be available there.
    if (!canHoistBefore(norm.getWeight(), add))
      return rewriter.notifyMatchFailure(
          norm, "the norm weight is computed after the add");
    hoistBefore(rewriter, norm.getWeight(), add);
    rewriter.setInsertionPoint(add);
    auto fused = moe::AddRmsNormOp::create(
        rewriter, norm.getLoc(), add.getType(), norm.getType(), add.getLhs(),
        add.getRhs(), norm.getWeight(), norm.getEpsilonAttr());
    rewriter.replaceOp(norm, fused.getResult());
    rewriter.replaceOp(add, fused.getSum());
    return success();
  }
};

//===----------------------------------------------------------------------===//
// --moec-fuse-add-rms-norm
//===----------------------------------------------------------------------===//

struct FuseAddRmsNormPass
    : moec::impl::FuseAddRmsNormPassBase<FuseAddRmsNormPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    populateFuseAddRmsNormPatterns(patterns);
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace

void mlir::moec::populateFuseAddRmsNormPatterns(RewritePatternSet &patterns) {
  patterns.add<FuseAddRmsNorm>(patterns.getContext());
}
