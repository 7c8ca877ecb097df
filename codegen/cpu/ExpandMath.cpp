//===- ExpandMath.cpp - --moec-cpu-expand-math ------------------*- C++ -*-===//
//
// Rewrites the math functions that LLVM would lower to libm calls into
// arithmetic, so that the CPU shared object has no external dependencies:
// upstream expansions and polynomial approximations, plus the few
// functions upstream has no approximation for (`exp2`, `log10`) and `fma`.
//
//===----------------------------------------------------------------------===//

#include "codegen/cpu/Passes.h"

#include "mlir/Dialect/Math/Transforms/Passes.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

#include <cmath>

namespace mlir::moec::cpu {
#define GEN_PASS_DEF_CPUEXPANDMATHPASS
#include "codegen/cpu/Passes.h.inc"
} // namespace mlir::moec::cpu

using namespace mlir;
using namespace mlir::moec::cpu;

namespace {

/// A float constant of `type`'s element type, splat if `type` is a vector.
Value floatConstant(OpBuilder &b, Location loc, Type type, double value) {
  auto elementType = cast<FloatType>(getElementTypeOrSelf(type));
  TypedAttr attr = b.getFloatAttr(elementType, value);
  if (auto shaped = dyn_cast<ShapedType>(type))
    attr = SplatElementsAttr::get(shaped, attr);
  return arith::ConstantOp::create(b, loc, attr);
}

//===----------------------------------------------------------------------===//
// math.exp2, math.log10
//===----------------------------------------------------------------------===//

/// `exp2(x)` = `exp(x · ln 2)`; `exp` then gets its polynomial.
struct Exp2ToExp : OpRewritePattern<math::Exp2Op> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(math::Exp2Op op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value ln2 = floatConstant(rewriter, loc, op.getType(), M_LN2);
    Value scaled = arith::MulFOp::create(rewriter, loc, op.getOperand(), ln2);
    rewriter.replaceOpWithNewOp<math::ExpOp>(op, scaled, op.getFastmath());
    return success();
  }
};

/// `log10(x)` = `log(x) · (1 / ln 10)`; `log` then gets its polynomial.
struct Log10ToLog : OpRewritePattern<math::Log10Op> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(math::Log10Op op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value log =
        math::LogOp::create(rewriter, loc, op.getOperand(), op.getFastmath());
    Value invLn10 = floatConstant(rewriter, loc, op.getType(), 1.0 / M_LN10);
    rewriter.replaceOpWithNewOp<arith::MulFOp>(op, log, invLn10);
    return success();
  }
};

//===----------------------------------------------------------------------===//
// math.fma
//===----------------------------------------------------------------------===//

/// `fma(a, b, c)` becomes `a · b + c` with the `contract` flag: LLVM fuses it
/// where the target has FMA and, unlike `llvm.fma`, never calls `fmaf`
/// where it has not. The polynomial approximations emit `math.fma`.
struct FmaToContractedMulAdd : OpRewritePattern<math::FmaOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(math::FmaOp op,
                                PatternRewriter &rewriter) const override {
    auto contract = arith::FastMathFlagsAttr::get(
        op.getContext(), op.getFastmath() | arith::FastMathFlags::contract);
    Value product = arith::MulFOp::create(rewriter, op.getLoc(), op.getA(),
                                          op.getB(), contract);
    rewriter.replaceOpWithNewOp<arith::AddFOp>(op, product, op.getC(),
                                               contract);
    return success();
  }
};

//===----------------------------------------------------------------------===//
// --moec-cpu-expand-math
//===----------------------------------------------------------------------===//

struct CpuExpandMathPass
    : mlir::moec::cpu::impl::CpuExpandMathPassBase<CpuExpandMathPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    populateCpuExpandMathPatterns(patterns);
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      return signalPassFailure();
  }
};

} // namespace

void mlir::moec::cpu::populateCpuExpandMathPatterns(
    RewritePatternSet &patterns) {
  // Functions upstream rewrites into others (hyperbolic ones into `exp`,
  // `powf` into `exp`/`log`, `tan` into `sin`/`cos`).
  math::populateExpansionPatterns(
      patterns,
      {"tan", "sinh", "cosh", "asinh", "acosh", "atanh", "powf", "fpowi"});
  patterns.add<Exp2ToExp, Log10ToLog, FmaToContractedMulAdd>(
      patterns.getContext());
  // Polynomials for exp, expm1, log, log2, log1p, tanh, erf, erfc, sin, cos,
  // atan, atan2, cbrt on f32, with f16/bf16 computed in f32.
  populateMathPolynomialApproximationPatterns(patterns);
}
