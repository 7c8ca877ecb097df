//===- FuseQuantize.cpp - Quantization into its producer --------*- C++ -*-===//
//
// `--moec-fuse-quantize`: a per-token `moe.quantize` of an activation becomes
// two more results of the op that computes the activation (RMSNorm, add +
// RMSNorm, SwiGLU, a GEMM), so that the value is quantized while it is still
// in registers instead of being written in high precision and read back.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::moec {
#define GEN_PASS_DEF_FUSEQUANTIZEPASS
#include "passes/Passes.h.inc"
} // namespace mlir::moec

using namespace mlir;
using namespace mlir::moec;

namespace {

/// Creates `producer` again with `quantize = scheme` and two more results of
/// types `dataType` and `scaleType`, in its place. Every op implementing
/// `FusedQuantizeOpInterface` has one result per ODS result before the two
/// optional ones, which the result segment sizes state.
Operation *createWithQuantize(PatternRewriter &rewriter,
                              moe::FusedQuantizeOpInterface producer,
                              moe::BlockScaleAttr scheme, Type dataType,
                              Type scaleType) {
  Operation *op = producer.getOperation();
  OperationState state(op->getLoc(), op->getName());
  state.addOperands(op->getOperands());
  state.addTypes(op->getResultTypes());
  state.addTypes({dataType, scaleType});
  state.addAttributes(op->getAttrs());
  state.attributes.set("quantize", scheme);
  SmallVector<int32_t> segments(op->getNumResults() + 2, 1);
  state.attributes.set("resultSegmentSizes",
                       rewriter.getDenseI32ArrayAttr(segments));
  rewriter.setInsertionPoint(op);
  return rewriter.create(state);
}

//===----------------------------------------------------------------------===//
// moe.quantize of a producer's result
//===----------------------------------------------------------------------===//

/// `q, s = moe.quantize(p.result)` → `p.result, q, s = p {quantize = ...}`
/// when `p` can emit its result quantized. The high-precision result stays
/// for its other users (the residual stream of `moe.add_rms_norm`, a GEMM the
/// policy keeps in high precision).
struct FuseQuantizeIntoProducer : OpRewritePattern<moe::QuantizeOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(moe::QuantizeOp op,
                                PatternRewriter &rewriter) const override {
    Value x = op.getX();
    Operation *def = x.getDefiningOp();
    if (!def)
      return rewriter.notifyMatchFailure(
          op, "the input is a block argument, with no producer to fuse into");
    auto producer = dyn_cast<moe::FusedQuantizeOpInterface>(def);
    if (!producer)
      return rewriter.notifyMatchFailure(op, [&](Diagnostic &diag) {
        diag << "`" << def->getName() << "` cannot emit its result quantized";
      });
    if (producer.getQuantizeSource() != x)
      return rewriter.notifyMatchFailure(op, [&](Diagnostic &diag) {
        diag << "the input is result #" << cast<OpResult>(x).getResultNumber()
             << " of `" << def->getName()
             << "`, which it cannot emit quantized";
      });
    moe::BlockScaleAttr scheme = op.getScheme();
    // A producer quantizes each row as it finishes it; a block of several
    // rows (a weight's 128x128) would need rows computed elsewhere.
    if (scheme.getBlock()[0] != 1)
      return rewriter.notifyMatchFailure(op, [&](Diagnostic &diag) {
        diag << "blocks of " << scheme.getBlock()[0]
             << " rows span tokens; only per-token quantization fuses";
      });
    if (moe::BlockScaleAttr fused = producer.getQuantizeScheme()) {
      if (fused != scheme)
        return rewriter.notifyMatchFailure(op, [&](Diagnostic &diag) {
          diag << "the producer already emits its result quantized with "
               << fused;
        });
      // The same quantization twice: the producer already has it.
      rewriter.replaceOp(op, {producer.getQuantizedResult(),
                              producer.getQuantizedScaleResult()});
      return success();
    }

    Operation *fusedOp =
        createWithQuantize(rewriter, producer, scheme, op.getResult().getType(),
                           op.getScale().getType());
    unsigned numOwn = def->getNumResults();
    rewriter.replaceOp(def, fusedOp->getResults().take_front(numOwn));
    rewriter.replaceOp(op, fusedOp->getResults().drop_front(numOwn));
    return success();
  }
};

//===----------------------------------------------------------------------===//
// --moec-fuse-quantize
//===----------------------------------------------------------------------===//

struct FuseQuantizePass : moec::impl::FuseQuantizePassBase<FuseQuantizePass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    populateFuseQuantizePatterns(patterns);
    // In program order, so that when two schemes compete for one producer
    // the first quantization fuses, whatever the worklist would pick.
    GreedyRewriteConfig config;
    config.setUseTopDownTraversal();
    if (failed(
            applyPatternsGreedily(getOperation(), std::move(patterns), config)))
      signalPassFailure();
  }
};

} // namespace

void mlir::moec::populateFuseQuantizePatterns(RewritePatternSet &patterns) {
  patterns.add<FuseQuantizeIntoProducer>(patterns.getContext());
}
