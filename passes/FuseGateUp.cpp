//===- FuseGateUp.cpp - Gate and up projections as one GEMM -----*- C++ -*-===//
//
// `--moec-fuse-gate-up`: the SwiGLU of two GEMMs over the same input becomes
// one GEMM over the gate and up weights concatenated along N, with the
// `silu_mul` epilogue (first half gate, second half up). Covers the routed
// experts (grouped GEMMs), dense MLPs and shared experts (plain GEMMs).
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"
#include "passes/WeightExprs.h"

#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::moec {
#define GEN_PASS_DEF_FUSEGATEUPPASS
#include "passes/Passes.h.inc"
} // namespace mlir::moec

using namespace mlir;
using namespace mlir::moec;

namespace {

/// The gate and up GEMMs of `op` when both are `GemmOp`s without epilogue,
/// used only by `op`, with weights that are checkpoint weights.
template <typename GemmOp>
FailureOr<std::pair<GemmOp, GemmOp>> matchGateUp(moe::SiluMulOp op,
                                                 PatternRewriter &rewriter) {
  auto gate = op.getGate().getDefiningOp<GemmOp>();
  auto up = op.getUp().getDefiningOp<GemmOp>();
  if (!gate || !up)
    return rewriter.notifyMatchFailure(op, "operands are not both GEMMs");
  if (gate.getEpilogue() != moe::Epilogue::none ||
      up.getEpilogue() != moe::Epilogue::none)
    return rewriter.notifyMatchFailure(op, "a GEMM already has an epilogue");
  if (!gate->hasOneUse() || !up->hasOneUse() || gate == up)
    return rewriter.notifyMatchFailure(op, "a GEMM result has other users");
  if (!isWeightExpr(gate.getW()) || !isWeightExpr(up.getW()))
    return rewriter.notifyMatchFailure(
        op, "a weight is not a checkpoint weight, so it cannot be "
            "concatenated at compile time");
  return std::make_pair(gate, up);
}

//===----------------------------------------------------------------------===//
// silu_mul(grouped_matmul, grouped_matmul)
//===----------------------------------------------------------------------===//

/// Routed experts: `silu_mul(gmm(rows, W1), gmm(rows, W3))` →
/// `gmm(rows, concat(W1, W3)) {epilogue = silu_mul}`.
struct FuseGroupedGateUp : OpRewritePattern<moe::SiluMulOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(moe::SiluMulOp op,
                                PatternRewriter &rewriter) const override {
    auto gemms = matchGateUp<moe::GroupedMatmulOp>(op, rewriter);
    if (failed(gemms))
      return failure();
    auto [gate, up] = *gemms;
    if (gate.getRows() != up.getRows() || gate.getOffsets() != up.getOffsets())
      return rewriter.notifyMatchFailure(op, "the GEMMs read different rows");
    // Stacked expert weights are `[E, N, K]`: N is dimension 1.
    SmallVector<Value> weights = {gate.getW(), up.getW()};
    std::string reason;
    if (failed(canConcatWeights(weights, 1, reason)))
      return rewriter.notifyMatchFailure(op, reason);
    Value w = concatWeights(rewriter, op.getLoc(), weights, 1);
    rewriter.replaceOpWithNewOp<moe::GroupedMatmulOp>(
        op, op.getType(), gate.getRows(), gate.getOffsets(), w,
        moe::Epilogue::silu_mul);
    return success();
  }
};

//===----------------------------------------------------------------------===//
// silu_mul(matmul, matmul)
//===----------------------------------------------------------------------===//

/// Dense MLPs and shared experts: `silu_mul(mm(x, Wg), mm(x, Wu))` →
/// `mm(x, concat(Wg, Wu)) {epilogue = silu_mul}`, biases concatenated too.
struct FuseDenseGateUp : OpRewritePattern<moe::SiluMulOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(moe::SiluMulOp op,
                                PatternRewriter &rewriter) const override {
    auto gemms = matchGateUp<moe::MatmulOp>(op, rewriter);
    if (failed(gemms))
      return failure();
    auto [gate, up] = *gemms;
    if (gate.getX() != up.getX())
      return rewriter.notifyMatchFailure(op, "the GEMMs read different inputs");
    if (static_cast<bool>(gate.getBias()) != static_cast<bool>(up.getBias()))
      return rewriter.notifyMatchFailure(op, "only one GEMM has a bias");
    if (gate.getBias() &&
        (!isWeightExpr(gate.getBias()) || !isWeightExpr(up.getBias())))
      return rewriter.notifyMatchFailure(op, "a bias is not a checkpoint "
                                             "weight");
    SmallVector<Value> weights = {gate.getW(), up.getW()};
    std::string reason;
    if (failed(canConcatWeights(weights, 0, reason)))
      return rewriter.notifyMatchFailure(op, reason);
    SmallVector<Value> biases;
    if (gate.getBias()) {
      biases = {gate.getBias(), up.getBias()};
      if (failed(canConcatWeights(biases, 0, reason)))
        return rewriter.notifyMatchFailure(op, reason);
    }
    Value w = concatWeights(rewriter, op.getLoc(), weights, 0);
    Value bias = biases.empty()
                     ? Value()
                     : concatWeights(rewriter, op.getLoc(), biases, 0);
    rewriter.replaceOpWithNewOp<moe::MatmulOp>(op, op.getType(), gate.getX(), w,
                                               bias, moe::Epilogue::silu_mul);
    return success();
  }
};

//===----------------------------------------------------------------------===//
// --moec-fuse-gate-up
//===----------------------------------------------------------------------===//

struct FuseGateUpPass : moec::impl::FuseGateUpPassBase<FuseGateUpPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    populateFuseGateUpPatterns(patterns);
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace

void mlir::moec::populateFuseGateUpPatterns(RewritePatternSet &patterns) {
  patterns.add<FuseGroupedGateUp, FuseDenseGateUp>(patterns.getContext());
}
