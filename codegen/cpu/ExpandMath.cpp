//===- ExpandMath.cpp - --moec-cpu-expand-math ------------------*- C++ -*-===//
//
// Rewrites the math functions that LLVM would lower to libm calls into
// arithmetic, so that the CPU shared object has no external dependencies:
// upstream expansions and polynomial approximations, plus the few
// functions upstream has no approximation for (`exp2`, `log10`) and `fma`,
// and f32 `sin`/`cos` reduced and evaluated in f64 (accurate at RoPE's long
// positions, where upstream's f32 reduction is not).
//
//===----------------------------------------------------------------------===//

#include "codegen/cpu/Passes.h"

#include "mlir/Dialect/Math/Transforms/Passes.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

#include "llvm/ADT/STLExtras.h"

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
// math.sin, math.cos on f32
//===----------------------------------------------------------------------===//

/// π/2 in three parts: `kPiOver2Hi` and `kPiOver2Mid` have at most 26
/// significant bits, so their products with a quadrant count `k < 2^27` are
/// exact in f64; `kPiOver2Lo` is the f64 nearest to the rest.
constexpr double kPiOver2Hi = 0x1.921fb5p+0;
constexpr double kPiOver2Mid = 0x1.110b46p-26;
constexpr double kPiOver2Lo = 0x1.1a62633145c07p-54;

/// Taylor coefficients of sin (r³/3!, r⁵/5!, ... r¹³/13!) and cos (r²/2!,
/// ... r¹⁴/14!): on |r| <= π/4 the first omitted terms are below 2^-44
/// relative, far below the 2^-24 of the f32 result.
constexpr double kSinTaylor[] = {-1.0 / 6,        1.0 / 120,
                                 -1.0 / 5040,     1.0 / 362880,
                                 -1.0 / 39916800, 1.0 / 6227020800};
constexpr double kCosTaylor[] = {
    -1.0 / 2,       1.0 / 24,        -1.0 / 720,        1.0 / 40320,
    -1.0 / 3628800, 1.0 / 479001600, -1.0 / 87178291200};

/// f32 `sin(x)` and `cos(x)` (scalar or vector), computed in f64 and rounded
/// once: `k = roundeven(x · 2/π)`, `r = x − k·π/2` with the three-part π/2
/// (exact for |x| < 2^27 · π/2 ≈ 2·10⁸, the f32 angles of RoPE at any
/// context length), Taylor polynomials of sin and cos on `r` picked and
/// signed by the quadrant `k mod 4`. The f64 value is within 2^-40 relative
/// of sin/cos of the f32 argument, so the f32 result is within 0.5 ulp plus
/// 2^-16 (CpuCodegenTest measures at most 0.49999 ulp on RoPE's angles up to
/// position 131072). Upstream's reduction with one f32 π/2 is off by
/// `k · 4.4·10⁻⁸` absolute, 3·10⁻³ at angle 10⁵. Beyond 2·10⁸ the reduction
/// loses bits, but `r` is clamped so results stay in [-1, 1]; ±∞ and NaN
/// give NaN. The f64 arithmetic vectorizes like the f32 one at half the
/// width, about 2.5× the time of upstream's f32 polynomial (6.5 ns against
/// 2.5 ns per value on one core); RoPE computes one sin/cos pair per
/// frequency and position, shared by every head.
template <typename OpTy, bool isCosine>
struct SinCosInDouble : OpRewritePattern<OpTy> {
  using OpRewritePattern<OpTy>::OpRewritePattern;
  LogicalResult matchAndRewrite(OpTy op,
                                PatternRewriter &rewriter) const override {
    Type type = op.getType();
    if (!getElementTypeOrSelf(type).isF32())
      return rewriter.notifyMatchFailure(op, "not f32 (f16/bf16 are extended "
                                             "to f32 first)");
    Location loc = op.getLoc();
    Type f64 = rewriter.getF64Type();
    Type wide = f64;
    if (auto vector = dyn_cast<VectorType>(type))
      wide = VectorType::get(vector.getShape(), f64, vector.getScalableDims());
    else if (isa<ShapedType>(type))
      return rewriter.notifyMatchFailure(op, "not a scalar or a vector");
    auto constant = [&](double value) {
      return floatConstant(rewriter, loc, wide, value);
    };
    auto mul = [&](Value a, Value b) {
      return arith::MulFOp::create(rewriter, loc, a, b).getResult();
    };
    auto add = [&](Value a, Value b) {
      return arith::AddFOp::create(rewriter, loc, a, b).getResult();
    };
    auto sub = [&](Value a, Value b) {
      return arith::SubFOp::create(rewriter, loc, a, b).getResult();
    };
    auto compare = [&](arith::CmpFPredicate predicate, Value a, double b) {
      return arith::CmpFOp::create(rewriter, loc, predicate, a, constant(b))
          .getResult();
    };
    auto equal = [&](Value a, double b) {
      return compare(arith::CmpFPredicate::OEQ, a, b);
    };
    auto select = [&](Value c, Value a, Value b) {
      return arith::SelectOp::create(rewriter, loc, c, a, b).getResult();
    };
    auto horner = [&](Value r2, ArrayRef<double> coefficients) {
      Value p = constant(coefficients.back());
      for (double c : llvm::reverse(coefficients.drop_back()))
        p = add(mul(p, r2), constant(c));
      return p;
    };

    Value x = arith::ExtFOp::create(rewriter, loc, wide, op.getOperand());
    Value k =
        math::RoundEvenOp::create(rewriter, loc, mul(x, constant(M_2_PI)));
    // Exact for |k| < 2^27 (Sterbenz, exact products), then two
    // corrections each rounded to 2^-53 of a value at most 2^-25.
    Value r = sub(sub(sub(x, mul(k, constant(kPiOver2Hi))),
                      mul(k, constant(kPiOver2Mid))),
                  mul(k, constant(kPiOver2Lo)));
    // Only for |x| beyond the exact range; ordered compares keep NaN.
    double bound = M_PI_4 * (1 + 0x1p-20);
    r = select(compare(arith::CmpFPredicate::OGT, r, bound), constant(bound),
               r);
    r = select(compare(arith::CmpFPredicate::OLT, r, -bound), constant(-bound),
               r);
    Value r2 = mul(r, r);
    Value sinR = add(r, mul(mul(r, r2), horner(r2, kSinTaylor)));
    Value cosR = add(constant(1.0), mul(r2, horner(r2, kCosTaylor)));
    // sin(r + q·π/2) for q = 0..3 is sin r, cos r, −sin r, −cos r; cos(x) is
    // sin(x + π/2), one quadrant on. q is exact in f64 (and NaN for ±∞).
    Value quadrant = sub(
        k, mul(constant(4.0),
               math::FloorOp::create(rewriter, loc, mul(k, constant(0.25)))));
    if (isCosine)
      quadrant = add(quadrant, constant(1.0));
    Value third = equal(quadrant, 3.0);
    Value odd =
        arith::OrIOp::create(rewriter, loc, equal(quadrant, 1.0), third);
    Value negative =
        arith::OrIOp::create(rewriter, loc, equal(quadrant, 2.0), third);
    Value result = select(odd, cosR, sinR);
    result =
        select(negative, arith::NegFOp::create(rewriter, loc, result), result);
    // sin(−0) is −0 (the reduction gives +0).
    if (!isCosine)
      result = select(equal(x, 0.0), x, result);
    rewriter.replaceOpWithNewOp<arith::TruncFOp>(op, type, result);
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
  // Ahead of upstream's f32 sin/cos (higher benefit).
  patterns.add<SinCosInDouble<math::SinOp, /*isCosine=*/false>,
               SinCosInDouble<math::CosOp, /*isCosine=*/true>>(
      patterns.getContext(), /*benefit=*/2);
  // Polynomials for exp, expm1, log, log2, log1p, tanh, erf, erfc, atan,
  // atan2, cbrt on f32, with f16/bf16 computed in f32 (sin and cos too,
  // whose f32 forms then take the pattern above).
  populateMathPolynomialApproximationPatterns(patterns);
}
