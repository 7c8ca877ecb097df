//===- FuseCombineResidual.cpp - Residual add into combine ------*- C++ -*-===//
//
// `--moec-fuse-combine-residual`: the add that follows a `moe.combine` (the
// residual stream, or the shared experts' output) becomes the combine's
// `residual` operand, so the weighted un-permute writes the sum directly.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::moec {
#define GEN_PASS_DEF_FUSECOMBINERESIDUALPASS
#include "passes/Passes.h.inc"
} // namespace mlir::moec

using namespace mlir;
using namespace mlir::moec;

namespace {

//===----------------------------------------------------------------------===//
// add(combine, r)
//===----------------------------------------------------------------------===//

/// `add(combine(rows, pos, w), r)` (either operand order) →
/// `combine(rows, pos, w) residual r`. Addition commutes exactly, so the
/// result is bit-identical.
struct FuseCombineResidual : OpRewritePattern<moe::AddOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(moe::AddOp add,
                                PatternRewriter &rewriter) const override {
    // The importers write `add(residual, branch)`: try the right side first.
    for (auto [combineSide, residual] :
         {std::make_pair(add.getRhs(), add.getLhs()),
          std::make_pair(add.getLhs(), add.getRhs())}) {
      auto combine = combineSide.getDefiningOp<moe::CombineOp>();
      if (!combine || combine.getResidual() || !combine->hasOneUse() ||
          combine.getType() != add.getType())
        continue;
      rewriter.replaceOpWithNewOp<moe::CombineOp>(
          add, add.getType(), combine.getRows(), combine.getPositions(),
          combine.getWeights(), residual);
      return success();
    }
    return rewriter.notifyMatchFailure(
        add, "no operand is a `moe.combine` without residual used only here");
  }
};

//===----------------------------------------------------------------------===//
// --moec-fuse-combine-residual
//===----------------------------------------------------------------------===//

struct FuseCombineResidualPass
    : moec::impl::FuseCombineResidualPassBase<FuseCombineResidualPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    populateFuseCombineResidualPatterns(patterns);
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace

void mlir::moec::populateFuseCombineResidualPatterns(
    RewritePatternSet &patterns) {
  patterns.add<FuseCombineResidual>(patterns.getContext());
}
