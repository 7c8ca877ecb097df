//===- FuseQKV.cpp - Attention input projections as one GEMM ----*- C++ -*-===//
//
// `--moec-fuse-qkv`: the q, k and v projections of a layer (MLA: q_a and
// kv_a, or q and kv_a without q LoRA) read the same normalised activation;
// they become one GEMM over their weights (and biases) concatenated along N,
// and each projection a `moe.slice` of its result.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"
#include "passes/Roles.h"
#include "passes/WeightExprs.h"

#include "mlir/Transforms/GreedyPatternRewriteDriver.h"
#include "llvm/ADT/STLExtras.h"

namespace mlir::moec {
#define GEN_PASS_DEF_FUSEQKVPASS
#include "passes/Passes.h.inc"
} // namespace mlir::moec

using namespace mlir;
using namespace mlir::moec;

namespace {

/// The layer of an attention input projection `op`, or failure when its
/// weight is not made only of attention input projection weights (q, k, v,
/// q_a, kv_a) of one layer. A layer-less projection gives `std::nullopt`.
FailureOr<std::optional<int64_t>> getAttentionInputLayer(moe::MatmulOp op) {
  SmallVector<moe::WeightOp> sources = getWeightSources(op.getW());
  if (sources.empty())
    return failure();
  std::optional<int64_t> layer = getWeightLayer(sources.front());
  for (moe::WeightOp source : sources)
    if (!isAttentionInputRole(getWeightRole(source)) ||
        getWeightLayer(source) != layer)
      return failure();
  return layer;
}

//===----------------------------------------------------------------------===//
// matmul(x, Wq), matmul(x, Wk), matmul(x, Wv)
//===----------------------------------------------------------------------===//

/// Fuses every plain attention input projection of `x` in one layer into
/// `matmul(x, concat(W...))` followed by one `moe.slice` per projection.
struct FuseAttentionInputs : OpRewritePattern<moe::MatmulOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(moe::MatmulOp op,
                                PatternRewriter &rewriter) const override {
    FailureOr<std::optional<int64_t>> layer = getAttentionInputLayer(op);
    if (failed(layer))
      return rewriter.notifyMatchFailure(
          op, "the weight is not an attention input projection");
    auto elementType = [](Value value) {
      return cast<RankedTensorType>(value.getType()).getElementType();
    };

    // The projections of the same layer over the same input, in IR order.
    SmallVector<moe::MatmulOp> group;
    for (Operation *user : op.getX().getUsers()) {
      auto other = dyn_cast<moe::MatmulOp>(user);
      if (!other || other.getX() != op.getX() ||
          other->getBlock() != op->getBlock() ||
          other.getEpilogue() != moe::Epilogue::none ||
          static_cast<bool>(other.getBias()) !=
              static_cast<bool>(op.getBias()) ||
          elementType(other.getW()) != elementType(op.getW()) ||
          elementType(other.getResult()) != elementType(op.getResult()) ||
          llvm::is_contained(group, other))
        continue;
      FailureOr<std::optional<int64_t>> otherLayer =
          getAttentionInputLayer(other);
      if (succeeded(otherLayer) && *otherLayer == *layer)
        group.push_back(other);
    }
    if (group.size() < 2)
      return rewriter.notifyMatchFailure(
          op, "no other projection of this layer reads the same input");
    llvm::sort(group, [](moe::MatmulOp a, moe::MatmulOp b) {
      return a->isBeforeInBlock(b);
    });

    SmallVector<Value> weights, biases;
    for (moe::MatmulOp gemm : group) {
      weights.push_back(gemm.getW());
      if (gemm.getBias())
        biases.push_back(gemm.getBias());
    }
    std::string reason;
    if (failed(canConcatWeights(weights, 0, reason)) ||
        (!biases.empty() && failed(canConcatWeights(biases, 0, reason))))
      return rewriter.notifyMatchFailure(op, reason);
    // The fused GEMM goes where the first projection was; weights defined
    // later (importers create each right before its GEMM) move up.
    Operation *first = group.front();
    if (!llvm::all_of(weights,
                      [&](Value w) { return canHoistBefore(w, first); }) ||
        !llvm::all_of(biases,
                      [&](Value b) { return canHoistBefore(b, first); }))
      return rewriter.notifyMatchFailure(
          op, "a weight or bias is not available at the first projection");
    for (Value value : llvm::concat<Value>(weights, biases))
      hoistBefore(rewriter, value, first);

    rewriter.setInsertionPoint(first);
    Location loc = rewriter.getFusedLoc(llvm::to_vector(llvm::map_range(
        group, [](moe::MatmulOp gemm) { return gemm.getLoc(); })));
    Value w = concatWeights(rewriter, loc, weights, 0);
    Value bias =
        biases.empty() ? Value() : concatWeights(rewriter, loc, biases, 0);
    auto firstType = cast<RankedTensorType>(op.getType());
    int64_t width = cast<RankedTensorType>(w.getType()).getDimSize(0);
    auto fused = moe::MatmulOp::create(
        rewriter, loc,
        RankedTensorType::get({firstType.getDimSize(0), width},
                              firstType.getElementType()),
        op.getX(), w, bias);
    int64_t offset = 0;
    for (moe::MatmulOp gemm : group) {
      Value slice = moe::SliceOp::create(rewriter, gemm.getLoc(),
                                         gemm.getType(), fused.getResult(),
                                         rewriter.getI64IntegerAttr(offset));
      offset += gemm.getType().getDimSize(1);
      rewriter.replaceOp(gemm, slice);
    }
    return success();
  }
};

//===----------------------------------------------------------------------===//
// --moec-fuse-qkv
//===----------------------------------------------------------------------===//

struct FuseQKVPass : moec::impl::FuseQKVPassBase<FuseQKVPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    populateFuseQKVPatterns(patterns);
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace

void mlir::moec::populateFuseQKVPatterns(RewritePatternSet &patterns) {
  patterns.add<FuseAttentionInputs>(patterns.getContext());
}
