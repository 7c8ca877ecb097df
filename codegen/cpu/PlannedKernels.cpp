//===- PlannedKernels.cpp - Planned moe steps to CPU kernels ----*- C++ -*-===//
//
// One kernel per planned step, written in scf/arith/math/memref on byte
// buffers: every argument arrives as `memref<?xBxi8>` (B = bytes per token)
// or `memref<Nxi8>` and is viewed with `memref.view` as the typed, possibly
// row-offset memrefs the op needs. GEMM-shaped work calls the tiled GEMM of
// `Kernels.h`; everything else mirrors `reference/Interpreter.cpp` loop by
// loop. Each op reaches its builder through one conversion pattern, added by
// family (`populate<Family>ToCpuPatterns`), run by `buildPlannedKernels` as a
// partial conversion of the planned function (docs/cpu-codegen.md).
//
//===----------------------------------------------------------------------===//

#include "codegen/cpu/PlannedKernels.h"

#include "codegen/cpu/Kernels.h"
#include "codegen/cpu/ObjectEmitter.h"
#include "codegen/cpu/Passes.h"
#include "dialects/MoEDialect.h"
#include "passes/Plan.h"
#include "runtime/cpu/KernelAbi.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/Transforms/DialectConversion.h"
#include "llvm/ADT/StringMap.h"

#include <cmath>
#include <functional>
#include <limits>

namespace mlir::moec::cpu {
#define GEN_PASS_DECL_CONVERTPLANNEDTOCPUPASS
#define GEN_PASS_DEF_CONVERTPLANNEDTOCPUPASS
#include "codegen/cpu/Passes.h.inc"
} // namespace mlir::moec::cpu

using namespace mlir;
using namespace mlir::moec;
using namespace mlir::moec::cpu;
using mlir::moe::BlockScaleAttr;
using mlir::moe::Epilogue;

namespace {

/// Bytes of the scratch buffer a kernel may use for GEMM outputs that an
/// epilogue narrows (the rows are processed in chunks that fit).
constexpr int64_t kScratchBytes = 256 * 1024;

/// Multiply-adds below which a GEMM step runs on the calling thread only
/// (about 10-20 us of work on one core).
constexpr int64_t kParallelMinMacs = int64_t(1) << 19;

/// One kernel argument: the byte buffer of a tensor value.
struct Buffer {
  /// The whole buffer as `memref<?xi8>`.
  Value bytes;
  /// The tensor type it holds.
  RankedTensorType type;
  /// Rows of the leading `?` per token.
  int64_t rowsPerToken = 1;
};

/// Reports that step `step`, the op `op`, cannot be compiled: `why`.
LogicalResult stepError(Operation *op, int64_t step, const Twine &why) {
  return op->emitOpError("cannot be compiled for the cpu target (step ")
         << step << "): " << why;
}

/// Builds the body of one step kernel.
class StepEmitter {
public:
  StepEmitter(ModuleOp kernels, Operation *op, int64_t step,
              const CpuKernelOptions &kernelOptions,
              llvm::StringMap<func::FuncOp> &gemms)
      : kernels(kernels), op(op), step(step), kernelOptions(kernelOptions),
        gemms(gemms), b(op->getContext()), loc(op->getLoc()) {}

  /// Creates the kernel `moec_step_<step>` with the step's buffers as
  /// arguments and builds its body with `body`, one of the `emit<Op>`
  /// builders below; erases the kernel again when `body` fails.
  LogicalResult emit(llvm::function_ref<LogicalResult(StepEmitter &)> body);

private:
  //===--------------------------------------------------------------------===//
  // Small builders
  //===--------------------------------------------------------------------===//

  Value idx(int64_t v) { return arith::ConstantIndexOp::create(b, loc, v); }
  Value f32(double v) {
    return arith::ConstantOp::create(b, loc, b.getF32FloatAttr(float(v)));
  }
  Value i32(int64_t v) {
    return arith::ConstantOp::create(b, loc, b.getI32IntegerAttr(int32_t(v)));
  }
  Value add(Value a, Value c) { return arith::AddIOp::create(b, loc, a, c); }
  Value sub(Value a, Value c) { return arith::SubIOp::create(b, loc, a, c); }
  Value mul(Value a, Value c) { return arith::MulIOp::create(b, loc, a, c); }
  Value divu(Value a, Value c) { return arith::DivUIOp::create(b, loc, a, c); }
  Value minu(Value a, Value c) { return arith::MinUIOp::create(b, loc, a, c); }
  Value maxu(Value a, Value c) { return arith::MaxUIOp::create(b, loc, a, c); }
  Value remu(Value a, Value c) { return arith::RemUIOp::create(b, loc, a, c); }
  Value addf(Value a, Value c) { return arith::AddFOp::create(b, loc, a, c); }
  Value subf(Value a, Value c) { return arith::SubFOp::create(b, loc, a, c); }
  Value mulf(Value a, Value c) { return arith::MulFOp::create(b, loc, a, c); }
  Value divf(Value a, Value c) { return arith::DivFOp::create(b, loc, a, c); }
  Value select(Value c, Value t, Value f) {
    return arith::SelectOp::create(b, loc, c, t, f);
  }
  Value cmpi(arith::CmpIPredicate p, Value a, Value c) {
    return arith::CmpIOp::create(b, loc, p, a, c);
  }
  Value cmpf(arith::CmpFPredicate p, Value a, Value c) {
    return arith::CmpFOp::create(b, loc, p, a, c);
  }
  Value toIndex(Value v) {
    if (v.getType().isIndex())
      return v;
    return arith::IndexCastOp::create(b, loc, b.getIndexType(), v);
  }
  Value toI32(Value v) {
    return arith::IndexCastOp::create(b, loc, b.getI32Type(), v);
  }
  Value isNaN(Value v) { return cmpf(arith::CmpFPredicate::UNO, v, v); }
  Value exp(Value v) { return math::ExpOp::create(b, loc, v); }
  /// `x / (1 + exp(-x))`, the interpreter's SiLU.
  Value silu(Value x) {
    return divf(x, addf(f32(1.0), exp(arith::NegFOp::create(b, loc, x))));
  }
  Value sigmoid(Value x) {
    return divf(f32(1.0),
                addf(f32(1.0), exp(arith::NegFOp::create(b, loc, x))));
  }

  /// `for iv in [lb, ub) step s { body(iv) }`.
  void loop(Value lb, Value ub, Value s, llvm::function_ref<void(Value)> body) {
    auto forOp = scf::ForOp::create(b, loc, lb, ub, s);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPoint(forOp.getBody()->getTerminator());
    body(forOp.getInductionVar());
  }
  void loop(Value lb, Value ub, llvm::function_ref<void(Value)> body) {
    loop(lb, ub, idx(1), body);
  }
  /// A loop carrying `init`; `body(iv, carried)` returns the next values.
  SmallVector<Value>
  loopCarry(Value lb, Value ub, ValueRange init,
            llvm::function_ref<SmallVector<Value>(Value, ValueRange)> body) {
    auto forOp = scf::ForOp::create(b, loc, lb, ub, idx(1), init);
    {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToEnd(forOp.getBody());
      SmallVector<Value> next =
          body(forOp.getInductionVar(), forOp.getRegionIterArgs());
      scf::YieldOp::create(b, loc, next);
    }
    return SmallVector<Value>(forOp.getResults());
  }

  //===--------------------------------------------------------------------===//
  // Buffers and element access
  //===--------------------------------------------------------------------===//

  /// Rows of the leading dimension of `buf`.
  Value leadingRows(const Buffer &buf) {
    if (buf.type.getRank() == 0)
      return idx(1);
    if (!buf.type.isDynamicDim(0))
      return idx(buf.type.getDimSize(0));
    return mul(tokens, idx(buf.rowsPerToken));
  }
  /// Elements per leading row (product of the other dimensions).
  int64_t rowElements(const Buffer &buf) {
    int64_t n = 1;
    for (int64_t d : buf.type.getShape().drop_front(
             std::min<int64_t>(1, buf.type.getRank())))
      n *= d;
    return n;
  }
  Value numElements(const Buffer &buf) {
    return mul(leadingRows(buf), idx(rowElements(buf)));
  }
  int64_t elementBytes(Type type) {
    return (type.getIntOrFloatBitWidth() + 7) / 8;
  }
  /// `buf` from element `offset` on, as `memref<shape x elt>` (`?` entries of
  /// `shape` take `dynSizes`).
  Value view(const Buffer &buf, Value offset, ArrayRef<int64_t> shape,
             ValueRange dynSizes, Type elt = {}) {
    if (!elt)
      elt = buf.type.getElementType();
    Value shift = mul(offset, idx(elementBytes(elt)));
    return memref::ViewOp::create(b, loc, MemRefType::get(shape, elt),
                                  buf.bytes, shift, dynSizes);
  }
  /// The whole of `buf` as a flat `memref<?xelt>`.
  Value flat(const Buffer &buf) {
    return view(buf, idx(0), {ShapedType::kDynamic}, {numElements(buf)});
  }

  /// Loads element `i` of the flat `memref` as f32 (f32, bf16, FP8 E4M3FN
  /// and integers widen exactly; integer code only).
  Value loadF(Value memref, Value i) {
    Value raw = memref::LoadOp::create(b, loc, memref, ValueRange{i});
    return widen(raw);
  }
  Value widen(Value raw) {
    Type type = raw.getType();
    if (type.isF32())
      return raw;
    if (type.isBF16()) {
      Value bits = arith::BitcastOp::create(b, loc, b.getI16Type(), raw);
      Value wide = arith::ExtUIOp::create(b, loc, b.getI32Type(), bits);
      Value shifted = arith::ShLIOp::create(b, loc, wide, i32(16));
      return arith::BitcastOp::create(b, loc, b.getF32Type(), shifted);
    }
    if (isa<Float8E4M3FNType>(type))
      return decodeE4M3FN(raw);
    // The only other float types the emitter lets through are f16 (extf).
    return arith::ExtFOp::create(b, loc, b.getF32Type(), raw);
  }
  /// E4M3FN to f32, exactly (normals rebias, subnormals are `m · 2⁻⁹`).
  Value decodeE4M3FN(Value raw) {
    Value byte = arith::BitcastOp::create(b, loc, b.getI8Type(), raw);
    Value bits = arith::ExtUIOp::create(b, loc, b.getI32Type(), byte);
    Value magnitude = arith::AndIOp::create(b, loc, bits, i32(0x7f));
    Value normal = arith::BitcastOp::create(
        b, loc, b.getF32Type(),
        add(arith::ShLIOp::create(b, loc, magnitude, i32(20)), i32(120 << 23)));
    Value subnormal =
        mulf(arith::SIToFPOp::create(b, loc, b.getF32Type(), magnitude),
             f32(1.0 / 512.0));
    Value value = select(cmpi(arith::CmpIPredicate::ult, magnitude, i32(8)),
                         subnormal, normal);
    value = select(cmpi(arith::CmpIPredicate::eq, magnitude, i32(0x7f)),
                   f32(std::numeric_limits<double>::quiet_NaN()), value);
    Value sign = arith::ShLIOp::create(
        b, loc, arith::AndIOp::create(b, loc, bits, i32(0x80)), i32(24));
    return arith::BitcastOp::create(
        b, loc, b.getF32Type(),
        arith::OrIOp::create(
            b, loc, arith::BitcastOp::create(b, loc, b.getI32Type(), value),
            sign));
  }
  /// f32 to the E4M3FN code (`runtime/fp8` `floatToE4M3FN`: round to
  /// nearest even, saturate to ±448, NaN stays NaN), as an i32.
  Value encodeE4M3FN(Value x) {
    Value bits = arith::BitcastOp::create(b, loc, b.getI32Type(), x);
    Value sign = arith::AndIOp::create(
        b, loc, arith::ShRUIOp::create(b, loc, bits, i32(24)), i32(0x80));
    Value abs = arith::AndIOp::create(b, loc, bits, i32(0x7fffffff));
    Value exponent = arith::ShRUIOp::create(b, loc, abs, i32(23));
    // Normal targets: drop 20 mantissa bits after rebiasing (127 → 7).
    Value normal = shiftRightRNE(sub(abs, i32(120 << 23)), i32(20));
    // Subnormal targets: quanta of 2⁻⁹ of the full significand.
    Value isF32Normal = cmpi(arith::CmpIPredicate::ne, exponent, i32(0));
    Value m =
        select(isF32Normal,
               arith::OrIOp::create(
                   b, loc, arith::AndIOp::create(b, loc, abs, i32(0x7fffff)),
                   i32(0x800000)),
               abs);
    Value e = select(isF32Normal, exponent, i32(1));
    Value shift = sub(i32(141), e);
    Value clamped = arith::MinSIOp::create(
        b, loc, arith::MaxSIOp::create(b, loc, shift, i32(1)), i32(25));
    Value subnormal = select(cmpi(arith::CmpIPredicate::sgt, shift, i32(25)),
                             i32(0), shiftRightRNE(m, clamped));
    Value code = select(cmpi(arith::CmpIPredicate::uge, exponent, i32(121)),
                        normal, subnormal);
    code = select(cmpi(arith::CmpIPredicate::uge, abs, i32(0x43E00000)),
                  i32(0x7e), code);
    code = select(cmpi(arith::CmpIPredicate::ugt, abs, i32(0x7f800000)),
                  i32(0x7f), code);
    return arith::OrIOp::create(b, loc, code, sign);
  }
  Value shiftRightRNE(Value v, Value shift) {
    Value kept = arith::ShRUIOp::create(b, loc, v, shift);
    Value one = i32(1);
    Value mask = sub(arith::ShLIOp::create(b, loc, one, shift), one);
    Value rest = arith::AndIOp::create(b, loc, v, mask);
    Value half = arith::ShLIOp::create(b, loc, one, sub(shift, one));
    Value keptOdd = cmpi(arith::CmpIPredicate::ne,
                         arith::AndIOp::create(b, loc, kept, one), i32(0));
    Value up = arith::OrIOp::create(
        b, loc, cmpi(arith::CmpIPredicate::ugt, rest, half),
        arith::AndIOp::create(
            b, loc, cmpi(arith::CmpIPredicate::eq, rest, half), keptOdd));
    return add(kept, arith::ExtUIOp::create(b, loc, b.getI32Type(), up));
  }

  /// Stores the f32 `value` as element `i` of the flat `memref`, rounded
  /// to its element type.
  void storeF(Value value, Value memref, Value i) {
    Type elt = cast<MemRefType>(memref.getType()).getElementType();
    if (isa<Float8E4M3FNType>(elt)) {
      Value code =
          arith::TruncIOp::create(b, loc, b.getI8Type(), encodeE4M3FN(value));
      value = arith::BitcastOp::create(b, loc, elt, code);
    } else if (!elt.isF32()) {
      value = arith::TruncFOp::create(b, loc, elt, value);
    }
    memref::StoreOp::create(b, loc, value, memref, ValueRange{i});
  }
  /// Loads element `i` of an integer `memref` as an index.
  Value loadIndex(Value memref, Value i) {
    return toIndex(memref::LoadOp::create(b, loc, memref, ValueRange{i}));
  }

  //===--------------------------------------------------------------------===//
  // Shared pieces
  //===--------------------------------------------------------------------===//

  LogicalResult fail(const Twine &why) { return stepError(op, step, why); }

  /// Checks that `type` is one the loads and stores handle.
  LogicalResult checkFloat(Value value, StringRef what) {
    Type elt = getElementTypeOrSelf(value.getType());
    if (elt.isF32() || elt.isBF16() || isa<Float8E4M3FNType>(elt))
      return success();
    return fail(Twine("unsupported element type of `") + what + "`");
  }

  /// `moe.quantize` semantics (`runtime/fp8` `quantizeBlocks`): `src`
  /// (`batches` matrices of `rows` x `cols`, flat) into the FP8 codes `dst`
  /// and the row-major block scales `scales`.
  LogicalResult quantize(Value src, Value dst, Value scales, Value batches,
                         Value rows, int64_t cols, BlockScaleAttr scheme) {
    if (scheme.getFormat() != moe::Fp8Format::e4m3fn)
      return fail("only e4m3fn quantization is supported");
    if (scheme.getPlacement() != moe::ScalePlacement::row_major)
      return fail("only row-major block scales are supported");
    ArrayRef<int64_t> block = scheme.getBlock();
    int64_t br = block[0], bc = block[1];
    int64_t blockCols = (cols + bc - 1) / bc;
    Value blockRows = divu(add(rows, idx(br - 1)), idx(br));
    bool pow2 = scheme.getPow2();
    loop(idx(0), batches, [&](Value bIdx) {
      Value base = mul(bIdx, mul(rows, idx(cols)));
      Value scaleBase = mul(bIdx, mul(blockRows, idx(blockCols)));
      loop(idx(0), blockRows, [&](Value rb) {
        Value r0 = mul(rb, idx(br));
        Value r1 = minu(rows, add(r0, idx(br)));
        for (int64_t cb = 0; cb < blockCols; ++cb) {
          int64_t c0 = cb * bc, c1 = std::min(cols, c0 + bc);
          // The amax of the finite magnitudes is an integer max of bits.
          Value amaxBits = loopCarry(
              r0, r1, ValueRange{i32(0)},
              [&](Value r, ValueRange acc) -> SmallVector<Value> {
                Value rowBase = add(base, mul(r, idx(cols)));
                return loopCarry(
                    idx(c0), idx(c1), acc,
                    [&](Value c, ValueRange inner) -> SmallVector<Value> {
                      Value x = loadF(src, add(rowBase, c));
                      Value abs = arith::AndIOp::create(
                          b, loc,
                          arith::BitcastOp::create(b, loc, b.getI32Type(), x),
                          i32(0x7fffffff));
                      Value finite = select(
                          cmpi(arith::CmpIPredicate::ult, abs, i32(0x7f800000)),
                          abs, i32(0));
                      return {arith::MaxUIOp::create(b, loc, inner[0], finite)};
                    });
              })[0];
          Value amax =
              arith::BitcastOp::create(b, loc, b.getF32Type(), amaxBits);
          amax = select(cmpf(arith::CmpFPredicate::OLT, amax, f32(1e-4)),
                        f32(1e-4), amax);
          Value scale = divf(amax, f32(448.0));
          if (pow2) {
            // scale = 1.m · 2^E: 2^(E+1) unless m == 0 (frexp/ldexp).
            Value bits =
                arith::BitcastOp::create(b, loc, b.getI32Type(), scale);
            Value mantissa = arith::AndIOp::create(b, loc, bits, i32(0x7fffff));
            Value up = arith::ShLIOp::create(
                b, loc,
                add(arith::ShRUIOp::create(b, loc, bits, i32(23)), i32(1)),
                i32(23));
            bits = select(cmpi(arith::CmpIPredicate::eq, mantissa, i32(0)),
                          bits, up);
            scale = arith::BitcastOp::create(b, loc, b.getF32Type(), bits);
          }
          memref::StoreOp::create(
              b, loc, scale, scales,
              ValueRange{
                  add(scaleBase, add(mul(rb, idx(blockCols)), idx(cb)))});
          loop(r0, r1, [&](Value r) {
            Value rowBase = add(base, mul(r, idx(cols)));
            loop(idx(c0), idx(c1), [&](Value c) {
              Value i = add(rowBase, c);
              storeF(divf(loadF(src, i), scale), dst, i);
            });
          });
        }
      });
    });
    return success();
  }

  /// The fused quantization of `result` into the op's extra results, when
  /// the op carries a `quantize` scheme.
  LogicalResult fusedQuantize(const Buffer &result) {
    auto fused = dyn_cast<moe::FusedQuantizeOpInterface>(op);
    if (!fused || !fused.getQuantizeScheme())
      return success();
    const Buffer &q = bufferOf(fused.getQuantizedResult());
    const Buffer &s = bufferOf(fused.getQuantizedScaleResult());
    return quantizeBuffer(result, q, s, fused.getQuantizeScheme());
  }
  LogicalResult quantizeBuffer(const Buffer &x, const Buffer &q,
                               const Buffer &s, BlockScaleAttr scheme) {
    auto [batches, rows, cols] = matrixOf(x);
    return quantize(flat(x), flat(q), flat(s), batches, rows, cols, scheme);
  }
  /// The `[batches, rows, cols]` matrices block scaling works on.
  std::tuple<Value, Value, int64_t> matrixOf(const Buffer &x) {
    int64_t rank = x.type.getRank();
    if (rank == 0)
      return {idx(1), idx(1), 1};
    if (rank == 1)
      return {idx(1), idx(1),
              x.type.getDimSize(0) == ShapedType::kDynamic
                  ? int64_t(-1)
                  : x.type.getDimSize(0)};
    int64_t cols = x.type.getShape().back();
    Value rows = rank == 2 ? leadingRows(x) : idx(x.type.getShape()[rank - 2]);
    Value batches = idx(1);
    if (rank > 2) {
      batches = leadingRows(x);
      for (int64_t d : x.type.getShape().slice(1, rank - 3))
        batches = mul(batches, idx(d));
    }
    return {batches, rows, cols};
  }

  /// The GEMM helper for `spec` (built once per module).
  FailureOr<func::FuncOp> gemm(GemmElementType weight, GemmElementType act,
                               int64_t n, int64_t k, int64_t block) {
    std::string name = "moec_gemm_w" + std::to_string(int(weight)) + "_a" +
                       std::to_string(int(act)) + "_" + std::to_string(n) +
                       "x" + std::to_string(k) + "_b" + std::to_string(block) +
                       "_cols";
    if (auto it = gemms.find(name); it != gemms.end())
      return it->second;
    GemmKernelSpec spec;
    spec.name = name;
    spec.n = n;
    spec.k = k;
    spec.weightType = weight;
    spec.activationType = act;
    spec.scaleBlock = block;
    spec.columnRange = true;
    FailureOr<func::FuncOp> fn = buildGemmKernel(kernels, spec, kernelOptions);
    if (failed(fn))
      return fail("the GEMM kernel builder rejected N = " + Twine(n) +
                  ", K = " + Twine(k));
    fn->setPrivate();
    gemms[name] = *fn;
    return *fn;
  }

  /// What a GEMM-shaped op multiplies.
  struct GemmOperands {
    const Buffer *x, *xScale = nullptr, *w, *wScale = nullptr;
    const Buffer *bias = nullptr;
    int64_t n, k, block = 128;
    GemmElementType weightType, actType = GemmElementType::F32;
    Epilogue epilogue;
    /// Elements (and scale elements) of one expert's weights.
    int64_t expertWeights = 0, expertScales = 0;
  };

  LogicalResult weightType(const Buffer &w, GemmElementType &type) {
    Type elt = w.type.getElementType();
    if (elt.isF32())
      type = GemmElementType::F32;
    else if (elt.isBF16())
      type = GemmElementType::BF16;
    else if (isa<Float8E4M3FNType>(elt))
      type = GemmElementType::F8E4M3FN;
    else
      return fail("unsupported weight element type");
    return success();
  }

  /// Rows `[rowStart, rowStart + rowCount)` of `x` times expert `expert`'s
  /// weights into the same rows of `out`, with bias and epilogue, for the
  /// output columns `[col0, col1)` (`col0` a multiple of the micro-tile's
  /// columns, `col1` one too or the output's width). Every element is
  /// computed by the same micro-tile panel, in the same order, whatever the
  /// column range, so column-split threads give bit-identical results.
  LogicalResult gemmRows(const GemmOperands &g, Value rowStart, Value rowCount,
                         Value expert, const Buffer &out, Value col0,
                         Value col1) {
    FailureOr<func::FuncOp> fn =
        gemm(g.weightType, g.actType, g.n, g.k, g.block);
    if (failed(fn))
      return failure();
    int64_t kb = (g.k + g.block - 1) / g.block;
    Value wView = view(*g.w, mul(expert, idx(g.expertWeights)), {g.n, g.k}, {});
    Value wsView;
    if (g.wScale)
      wsView = view(*g.wScale, mul(expert, idx(g.expertScales)),
                    {(g.n + g.block - 1) / g.block, kb}, {});
    // Columns [p0, p1) of the product (whole panels) for `count` rows.
    auto call = [&](Value start, Value count, Value y, Value p0, Value p1) {
      SmallVector<Value> args;
      args.push_back(view(*g.x, mul(start, idx(g.k)),
                          {ShapedType::kDynamic, g.k}, {count}));
      if (g.xScale)
        args.push_back(view(*g.xScale, mul(start, idx(kb)),
                            {ShapedType::kDynamic, kb}, {count}));
      args.push_back(wView);
      if (wsView)
        args.push_back(wsView);
      args.push_back(y);
      args.push_back(p0);
      args.push_back(p1);
      func::CallOp::create(b, loc, *fn, args);
    };
    if (g.epilogue == Epilogue::none) {
      Value y = view(out, mul(rowStart, idx(g.n)), {ShapedType::kDynamic, g.n},
                     {rowCount}, b.getF32Type());
      call(rowStart, rowCount, y, col0, col1);
      if (g.bias) {
        Value bias = flat(*g.bias);
        Value yFlat = memref::CollapseShapeOp::create(
            b, loc, y, SmallVector<ReassociationIndices>{{0, 1}});
        loop(idx(0), rowCount, [&](Value r) {
          loop(col0, col1, [&](Value j) {
            Value i = add(mul(r, idx(g.n)), j);
            storeF(addf(loadF(yFlat, i), loadF(bias, j)), yFlat, i);
          });
        });
      }
      return success();
    }
    // silu_mul: the product goes through the scratch buffer in chunks of
    // rows, then `silu(gate + bias) * (up + bias)` narrows it into `out`.
    // Output column j needs product columns j and j + N/2: the panels that
    // hold [col0, col1) and [col0 + N/2, col1 + N/2) are computed.
    int64_t chunk = std::max<int64_t>(1, kScratchBytes / (4 * g.n));
    int64_t half = g.n / 2;
    int64_t nr = kernelOptions.tileCols;
    auto alignDown = [&](Value v) { return sub(v, remu(v, idx(nr))); };
    auto alignUp = [&](Value v) {
      return minu(idx(g.n), mul(divu(add(v, idx(nr - 1)), idx(nr)), idx(nr)));
    };
    Value outFlat = flat(out);
    Value bias = g.bias ? flat(*g.bias) : Value();
    Value end = add(rowStart, rowCount);
    loop(rowStart, end, idx(chunk), [&](Value r0) {
      Value count = minu(idx(chunk), sub(end, r0));
      Value y = memref::ViewOp::create(
          b, loc, MemRefType::get({ShapedType::kDynamic, g.n}, b.getF32Type()),
          scratch(), idx(0), ValueRange{count});
      call(r0, count, y, col0, alignUp(col1));
      call(r0, count, y, alignDown(add(col0, idx(half))),
           alignUp(add(col1, idx(half))));
      loop(idx(0), count, [&](Value r) {
        loop(col0, col1, [&](Value j) {
          Value upColumn = add(j, idx(half));
          Value gate = memref::LoadOp::create(b, loc, y, ValueRange{r, j});
          Value up = memref::LoadOp::create(b, loc, y, ValueRange{r, upColumn});
          if (bias) {
            gate = addf(gate, loadF(bias, j));
            up = addf(up, loadF(bias, upColumn));
          }
          storeF(mulf(silu(gate), up), outFlat,
                 add(mul(add(r0, r), idx(half)), j));
        });
      });
    });
    return success();
  }

  /// A dense (`offsets` null) or grouped GEMM into `out`. Grouped: per
  /// expert `e`, rows `[offsets[e], offsets[e+1])`; the other rows are zero.
  /// The work items are (expert, output column chunk) pairs, run on the
  /// runtime's threads when it offers them (`parallelItems`).
  LogicalResult parallelGemm(const GemmOperands &g, const Buffer *offsets,
                             const Buffer &out) {
    int64_t nr = kernelOptions.tileCols;
    int64_t outCols = g.epilogue == Epilogue::none ? g.n : g.n / 2;
    int64_t experts = offsets ? offsets->type.getDimSize(0) - 1 : 1;
    if (offsets) {
      // Rows outside every expert's range stay zero, as in the interpreter.
      Value outFlat = flat(out);
      loop(idx(0), numElements(out),
           [&](Value i) { storeF(f32(0.0), outFlat, i); });
    }
    auto [usable, threads] = runtimeThreads();
    // Small products stay on the calling thread: waking others costs more.
    Value macs = mul(leadingRows(*g.x), idx(g.n * g.k));
    usable = arith::AndIOp::create(
        b, loc, usable,
        cmpi(arith::CmpIPredicate::uge, macs, idx(kParallelMinMacs)));
    threads = select(usable, threads, idx(1));
    // Column chunks per expert: one per thread for grouped GEMMs (the
    // experts add items), two per thread for dense ones (balance), a single
    // one without threads. At least 4 panels each.
    Value many = cmpi(arith::CmpIPredicate::ugt, threads, idx(1));
    Value wanted =
        offsets ? threads : select(many, mul(threads, idx(2)), idx(1));
    Value perChunk = divu(add(idx(outCols), sub(wanted, idx(1))), wanted);
    perChunk = mul(divu(add(perChunk, idx(nr - 1)), idx(nr)), idx(nr));
    perChunk = maxu(perChunk, idx(4 * nr));
    Value chunks = divu(add(idx(outCols), sub(perChunk, idx(1))), perChunk);
    Value count = mul(idx(experts), chunks);
    return parallelItems(
        usable, count, {perChunk, chunks},
        [&](Value item, ArrayRef<Value> extra) -> LogicalResult {
          Value perChunk = extra[0], chunks = extra[1];
          Value e = divu(item, chunks);
          Value col0 = mul(remu(item, chunks), perChunk);
          Value col1 = minu(add(col0, perChunk), idx(outCols));
          if (!offsets)
            return gemmRows(g, idx(0), leadingRows(*g.x), e, out, col0, col1);
          Value offs = flat(*offsets);
          Value rows = leadingRows(*g.x);
          Value begin = minu(loadIndex(offs, e), rows);
          Value end = minu(loadIndex(offs, add(e, idx(1))), rows);
          Value rowCount = select(cmpi(arith::CmpIPredicate::ugt, end, begin),
                                  sub(end, begin), idx(0));
          return gemmRows(g, begin, rowCount, e, out, col0, col1);
        });
  }

  //===--------------------------------------------------------------------===//
  // Threads (docs/artifact.md, "CPU runtime services")
  //===--------------------------------------------------------------------===//

  Type ptrType() { return LLVM::LLVMPointerType::get(b.getContext()); }
  Value i64Const(int64_t v) {
    return LLVM::ConstantOp::create(b, loc, b.getI64Type(),
                                    b.getI64IntegerAttr(v));
  }
  /// `*(T *)(base + offset)`.
  Value loadAt(Type type, Value base, int64_t offset) {
    Value at = base;
    if (offset)
      at = LLVM::GEPOp::create(b, loc, ptrType(), b.getI8Type(), base,
                               ArrayRef<LLVM::GEPArg>{int32_t(offset)});
    return LLVM::LoadOp::create(b, loc, type, at);
  }

  /// The runtime's `const MoecCpuRuntime *`, read from the shared object's
  /// exported pointer `moec_cpu_runtime` (null until a runtime sets it).
  Value runtimeTable() {
    if (!kernels.lookupSymbol(MOEC_CPU_RUNTIME_SYMBOL)) {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(kernels.getBody());
      auto global = LLVM::GlobalOp::create(
          b, loc, ptrType(), /*isConstant=*/false, LLVM::Linkage::External,
          MOEC_CPU_RUNTIME_SYMBOL, Attribute());
      b.setInsertionPointToStart(b.createBlock(&global.getInitializerRegion()));
      LLVM::ReturnOp::create(
          b, loc, LLVM::ZeroOp::create(b, loc, ptrType()).getResult());
    }
    Value address =
        LLVM::AddressOfOp::create(b, loc, ptrType(), MOEC_CPU_RUNTIME_SYMBOL);
    return LLVM::LoadOp::create(b, loc, ptrType(), address);
  }

  /// Whether the runtime offers threads (a table of version >= 1 with at
  /// least one thread), and how many (1 when it does not).
  std::pair<Value, Value> runtimeThreads() {
    Value table = runtimeTable();
    Value null = LLVM::ZeroOp::create(b, loc, ptrType());
    Value present =
        LLVM::ICmpOp::create(b, loc, LLVM::ICmpPredicate::ne, table, null);
    auto branch = scf::IfOp::create(
        b, loc, TypeRange{b.getI1Type(), b.getIndexType()}, present,
        /*withElseRegion=*/true);
    {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToEnd(branch.thenBlock());
      Value version =
          loadAt(b.getI32Type(), table, offsetof(MoecCpuRuntime, version));
      Value threads =
          loadAt(b.getI32Type(), table, offsetof(MoecCpuRuntime, num_threads));
      Value ok = arith::AndIOp::create(
          b, loc, cmpi(arith::CmpIPredicate::sge, version, i32(1)),
          cmpi(arith::CmpIPredicate::sge, threads, i32(1)));
      Value count = select(ok, toIndex(threads), idx(1));
      scf::YieldOp::create(b, loc, ValueRange{ok, count});
      b.setInsertionPointToEnd(branch.elseBlock());
      Value no = arith::ConstantOp::create(b, loc, b.getBoolAttr(false));
      scf::YieldOp::create(b, loc, ValueRange{no, idx(1)});
    }
    return {branch.getResult(0), branch.getResult(1)};
  }

  /// This kernel's arguments as `memref<?xi8>` byte buffers.
  Value argBytes(Value arg) {
    auto type = cast<MemRefType>(arg.getType());
    if (type.isDynamicDim(0))
      return memref::CollapseShapeOp::create(
          b, loc, arg, SmallVector<ReassociationIndices>{{0, 1}});
    return memref::CastOp::create(
        b, loc, MemRefType::get({ShapedType::kDynamic}, b.getI8Type()), arg);
  }

  /// Emits `work(item, extras)` for every item in `[0, count)` into a private
  /// function `moec_step_<i>.body<j>(ctx, begin, end)` of the C type
  /// `MoecParallelBody`, and calls it: through the runtime's `parallel_for`
  /// when `usable`, else directly for the whole range. `ctx` points to a
  /// stack array of i64: this kernel's argument base pointers, `tokens`,
  /// then `extras` (index values), from which the body rebuilds the buffers.
  /// `work` sees the rebound buffers and `tokens`, and a scratch buffer of
  /// its own (on its thread's stack).
  LogicalResult parallelItems(
      Value usable, Value count, ArrayRef<Value> extras,
      llvm::function_ref<LogicalResult(Value, ArrayRef<Value>)> work) {
    Type i64 = b.getI64Type();
    int64_t numArgs = int64_t(stepValues.size());
    int64_t slots = numArgs + 1 + int64_t(extras.size());
    auto slotAt = [&](Value array, int64_t i) -> Value {
      return LLVM::GEPOp::create(b, loc, ptrType(), i64, array,
                                 ArrayRef<LLVM::GEPArg>{int32_t(i)});
    };
    Value ctx;
    {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(entry);
      ctx = LLVM::AllocaOp::create(b, loc, ptrType(), i64, i64Const(slots),
                                   /*alignment=*/8);
    }
    auto store = [&](Value v, int64_t i) {
      LLVM::StoreOp::create(b, loc, arith::IndexCastOp::create(b, loc, i64, v),
                            slotAt(ctx, i));
    };
    for (int64_t i = 0; i < numArgs; ++i)
      store(memref::ExtractAlignedPointerAsIndexOp::create(
                b, loc, entry->getArgument(unsigned(i))),
            i);
    store(tokens, numArgs);
    for (auto [i, v] : llvm::enumerate(extras))
      store(v, numArgs + 1 + int64_t(i));

    // The body, at the end of the module.
    auto bodyType =
        FunctionType::get(b.getContext(), {ptrType(), i64, i64}, TypeRange{});
    std::string bodyName =
        (kStepKernelPrefix + Twine(step) + ".body" + Twine(bodies++)).str();
    func::FuncOp body;
    {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToEnd(kernels.getBody());
      body = func::FuncOp::create(b, loc, bodyName, bodyType);
      body.setPrivate();
    }
    LogicalResult result = success();
    {
      OpBuilder::InsertionGuard guard(b);
      Block *savedEntry = entry;
      Value savedTokens = tokens, savedScratch = scratchBuffer;
      llvm::DenseMap<Value, Buffer> savedBuffers = buffers;
      entry = body.addEntryBlock();
      b.setInsertionPointToStart(entry);
      scratchBuffer = Value();
      Value bodyCtx = entry->getArgument(0);
      auto loadSlot = [&](int64_t i) -> Value {
        return LLVM::LoadOp::create(b, loc, i64, slotAt(bodyCtx, i));
      };
      Value tokens64 = loadSlot(numArgs);
      tokens = toIndex(tokens64);
      for (int64_t i = 0; i < numArgs; ++i) {
        Value base = LLVM::IntToPtrOp::create(b, loc, ptrType(), loadSlot(i));
        Value arg = buildAbiMemRef(b, loc, cast<MemRefType>(stepArgTypes[i]),
                                   base, tokens64);
        buffers.find(stepValues[i])->second.bytes = argBytes(arg);
      }
      SmallVector<Value> bodyExtras;
      for (int64_t i = 0; i < int64_t(extras.size()); ++i)
        bodyExtras.push_back(toIndex(loadSlot(numArgs + 1 + i)));
      loop(toIndex(entry->getArgument(1)), toIndex(entry->getArgument(2)),
           [&](Value item) {
             if (failed(work(item, bodyExtras)))
               result = failure();
           });
      func::ReturnOp::create(b, loc);
      for (auto &[key, value] : savedBuffers)
        buffers.find(key)->second = value;
      entry = savedEntry;
      tokens = savedTokens;
      scratchBuffer = savedScratch;
    }
    if (failed(result))
      return failure();

    Value count64 = arith::IndexCastOp::create(b, loc, i64, count);
    auto branch = scf::IfOp::create(b, loc, usable, /*withElseRegion=*/true);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPoint(branch.thenBlock()->getTerminator());
    Value table = runtimeTable();
    Value parallelFor =
        loadAt(ptrType(), table, offsetof(MoecCpuRuntime, parallel_for));
    Value bodyRef =
        func::ConstantOp::create(b, loc, bodyType, SymbolRefAttr::get(body));
    Value bodyPtr =
        UnrealizedConversionCastOp::create(b, loc, ptrType(), bodyRef)
            .getResult(0);
    auto parallelForType = LLVM::LLVMFunctionType::get(
        LLVM::LLVMVoidType::get(b.getContext()),
        {ptrType(), ptrType(), ptrType(), i64, i64});
    LLVM::CallOp::create(
        b, loc, parallelForType,
        ValueRange{parallelFor, table, bodyPtr, ctx, count64, i64Const(1)});
    b.setInsertionPoint(branch.elseBlock()->getTerminator());
    func::CallOp::create(b, loc, body, ValueRange{ctx, i64Const(0), count64});
    return success();
  }

  /// The scratch buffer at the kernel's entry.
  Value scratch() {
    if (!scratchBuffer) {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(entry);
      scratchBuffer = memref::AllocaOp::create(
          b, loc, MemRefType::get({kScratchBytes}, b.getI8Type()),
          b.getI64IntegerAttr(64));
      scratchBuffer = memref::CastOp::create(
          b, loc, MemRefType::get({ShapedType::kDynamic}, b.getI8Type()),
          scratchBuffer);
    }
    return scratchBuffer;
  }

  const Buffer &bufferOf(Value v) { return buffers.find(v)->second; }

  //===--------------------------------------------------------------------===//
  // Ops
  //===--------------------------------------------------------------------===//

public:
  // One builder per op the cpu target compiles, called by its conversion
  // pattern through `emit` (the patterns at the end of this file).
  LogicalResult emitEmbed(moe::EmbedOp op);
  LogicalResult emitAdd(moe::AddOp op);
  LogicalResult emitMul(moe::MulOp op);
  LogicalResult emitSiluMul(moe::SiluMulOp op);
  LogicalResult emitRmsNorm(moe::RmsNormOp op);
  LogicalResult emitAddRmsNorm(moe::AddRmsNormOp op);
  LogicalResult emitQuantize(moe::QuantizeOp op);
  LogicalResult emitMatmul(moe::MatmulOp op);
  LogicalResult emitFp8Matmul(moe::Fp8MatmulOp op);
  LogicalResult emitGroupedMatmul(moe::GroupedMatmulOp op);
  LogicalResult emitFp8GroupedMatmul(moe::Fp8GroupedMatmulOp op);
  LogicalResult emitRope(moe::RopeOp op);
  LogicalResult emitAttention(moe::AttentionOp op);
  LogicalResult emitPagedAttention(moe::PagedAttentionOp op);
  LogicalResult emitPagedMlaAttention(moe::PagedMlaAttentionOp op);
  Value pagedOffset(Value table, int64_t maxPages, int64_t pageTokens,
                    Value slot, Value pos, int64_t width);
  void attendRow(Value qf, Value qBase, Value keys,
                 llvm::function_ref<Value(Value)> keyAt, Value kf,
                 llvm::function_ref<Value(Value)> valueAt, Value vf, Value of,
                 Value oBase, int64_t dqk, int64_t dv, Value scale,
                 Value scores);
  Value entryAlloca(llvm::function_ref<Value()> size);
  LogicalResult emitSlice(moe::SliceOp op);
  LogicalResult emitSelectRows(moe::SelectRowsOp op);
  LogicalResult emitConcat(moe::ConcatOp op);
  LogicalResult emitExpand(moe::ExpandOp op);
  LogicalResult emitRouter(moe::RouterOp op);
  LogicalResult emitDispatch(moe::DispatchOp op);
  LogicalResult emitCombine(moe::CombineOp op);
  LogicalResult emitSigmoidGate(moe::SigmoidGateOp op);
  LogicalResult emitDequantize(moe::DequantizeOp op);
  LogicalResult emitUnary(moe::UnaryOp op);
  LogicalResult emitBinary(moe::BinaryOp op);
  LogicalResult emitCompare(moe::CompareOp op);
  LogicalResult emitSelect(moe::SelectOp op);
  LogicalResult emitCast(moe::CastOp op);
  LogicalResult emitSoftmax(moe::SoftmaxOp op);
  LogicalResult emitReduce(moe::ReduceOp op);
  LogicalResult emitTopK(moe::TopKOp op);
  LogicalResult emitTranspose(moe::TransposeOp op);
  LogicalResult emitBatchMatmul(moe::BatchMatmulOp op);
  LogicalResult emitGatherElements(moe::GatherElementsOp op);
  LogicalResult emitScatterElements(moe::ScatterElementsOp op);
  LogicalResult emitOneHot(moe::OneHotOp op);

private:
  /// Fills the FP8 operands of `g` (e4m3fn data with their block scales)
  /// shared by the dense and the grouped FP8 GEMM.
  LogicalResult setFp8Operands(GemmOperands &g, Value x, Value xScale, Value w,
                               Value wScale, BlockScaleAttr act,
                               BlockScaleAttr weight);
  LogicalResult emitElementwise(Value lhs, Value rhs, Value result,
                                llvm::function_ref<Value(Value, Value)> fn);
  LogicalResult emitRmsNormRows(Value x, Value weight, Value result,
                                double eps);
  //===--------------------------------------------------------------------===//
  // Helpers of the generic ops
  //===--------------------------------------------------------------------===//

  /// The size of dimension `d` of `buf`.
  Value dimSize(const Buffer &buf, int64_t d) {
    return d == 0 ? leadingRows(buf) : idx(buf.type.getDimSize(d));
  }
  /// The row-major stride of dimension `d` of `buf` (all static: only the
  /// leading dimension may be dynamic).
  int64_t stride(const Buffer &buf, int64_t d) {
    int64_t n = 1;
    for (int64_t s : buf.type.getShape().drop_front(d + 1))
      n *= s;
    return n;
  }
  /// The whole of `buf` as a flat memref of its element type, `i1` as the
  /// bytes (0 or 1) that hold it.
  Value flatAny(const Buffer &buf) {
    Type elt = buf.type.getElementType();
    if (elt.isInteger(1))
      elt = b.getI8Type();
    return view(buf, idx(0), {ShapedType::kDynamic}, {numElements(buf)}, elt);
  }
  bool isIntBuffer(const Buffer &buf) {
    return isa<IntegerType>(buf.type.getElementType());
  }
  /// Element `i` of an integer buffer (viewed by flatAny) as i64; `i1`
  /// bytes read as 0 or 1.
  Value loadI64(const Buffer &buf, Value memref, Value i) {
    Value raw = memref::LoadOp::create(b, loc, memref, ValueRange{i});
    if (buf.type.getElementType().isInteger(1))
      return arith::ExtUIOp::create(b, loc, b.getI64Type(), raw);
    if (raw.getType().isInteger(64))
      return raw;
    return arith::ExtSIOp::create(b, loc, b.getI64Type(), raw);
  }
  /// Element `i` of any numeric buffer as f32.
  Value loadAsF32(const Buffer &buf, Value memref, Value i) {
    if (!isIntBuffer(buf))
      return loadF(memref, i);
    return arith::SIToFPOp::create(b, loc, b.getF32Type(),
                                   loadI64(buf, memref, i));
  }
  /// Stores the i64 `v` into an integer buffer viewed by flatAny (`i1` as
  /// `v != 0`).
  void storeI64(const Buffer &buf, Value v, Value memref, Value i) {
    Type elt = buf.type.getElementType();
    if (elt.isInteger(1))
      v = arith::ExtUIOp::create(
          b, loc, b.getI8Type(),
          cmpi(arith::CmpIPredicate::ne, v,
               arith::ConstantOp::create(b, loc, b.getI64IntegerAttr(0))));
    else if (!elt.isInteger(64))
      v = arith::TruncIOp::create(b, loc, elt, v);
    memref::StoreOp::create(b, loc, v, memref, ValueRange{i});
  }
  /// A loop nest over every element of `out` in row-major order. `body`
  /// gets the flat position in `out` and, for each of `ins`, the flat
  /// position numpy broadcasting reads (shapes aligned on the last
  /// dimension, size-1 dimensions read index 0).
  void broadcastNest(const Buffer &out, ArrayRef<const Buffer *> ins,
                     llvm::function_ref<void(Value, ArrayRef<Value>)> body) {
    int64_t rank = out.type.getRank();
    std::function<void(int64_t, Value, SmallVector<Value>)> nest =
        [&](int64_t d, Value dst, SmallVector<Value> srcs) {
          if (d == rank) {
            body(dst, srcs);
            return;
          }
          Value size = dimSize(out, d);
          loop(idx(0), size, [&](Value i) {
            SmallVector<Value> next;
            for (auto [k, in] : llvm::enumerate(ins)) {
              int64_t j = d - (rank - in->type.getRank());
              if (j < 0) {
                next.push_back(srcs[k]);
                continue;
              }
              bool one = in->type.getDimSize(j) == 1;
              next.push_back(
                  add(mul(srcs[k], dimSize(*in, j)), one ? idx(0) : i));
            }
            nest(d + 1, add(mul(dst, size), i), next);
          });
        };
    nest(0, idx(0), SmallVector<Value>(ins.size(), idx(0)));
  }
  /// `pow(a, b)` as onnxruntime computes it for real results: exact for
  /// the exponents 0, 1, 2 and 0.5, `exp(b · log|a|)` otherwise with the
  /// sign of an odd integer power of a negative base (NaN for a
  /// non-integer one).
  Value powF(Value a, Value e) {
    Value absA = math::AbsFOp::create(b, loc, a);
    Value general = exp(mulf(e, math::LogOp::create(b, loc, absA)));
    Value isInt =
        cmpf(arith::CmpFPredicate::OEQ, math::FloorOp::create(b, loc, e), e);
    Value half = mulf(e, f32(0.5));
    Value odd =
        arith::AndIOp::create(b, loc, isInt,
                              cmpf(arith::CmpFPredicate::ONE,
                                   math::FloorOp::create(b, loc, half), half));
    Value negative = cmpf(arith::CmpFPredicate::OLT, a, f32(0.0));
    Value signedPow =
        select(odd, arith::NegFOp::create(b, loc, general), general);
    Value result = select(
        negative,
        select(isInt, signedPow, f32(std::numeric_limits<double>::quiet_NaN())),
        general);
    auto is = [&](double v) {
      return cmpf(arith::CmpFPredicate::OEQ, e, f32(v));
    };
    result = select(is(0.5), math::SqrtOp::create(b, loc, a), result);
    result = select(is(2.0), mulf(a, a), result);
    result = select(is(1.0), a, result);
    return select(is(0.0), f32(1.0), result);
  }
  /// Whether `(a, ia)` ranks before `(b, ib)`: higher first, NaN below
  /// everything, ties to the lower index (the interpreter's `ranksBefore`).
  Value ranksBefore(Value a, Value ia, Value bv, Value ib) {
    Value nanA = isNaN(a), nanB = isNaN(bv);
    Value lower = cmpi(arith::CmpIPredicate::ult, ia, ib);
    Value byValue = select(cmpf(arith::CmpFPredicate::OEQ, a, bv), lower,
                           cmpf(arith::CmpFPredicate::OGT, a, bv));
    Value oneNaN = arith::OrIOp::create(b, loc, nanA, nanB);
    return select(arith::AndIOp::create(b, loc, nanA, nanB), lower,
                  select(oneNaN, nanB, byValue));
  }
  /// The position of `x` that index `at` of dimension `dim` addresses from
  /// `base` (negative indices count from the end; out-of-range ones are
  /// clamped so that a bad index cannot reach outside the buffer).
  Value elementAt(const Buffer &x, int64_t dim, Value base, Value at) {
    int64_t size = x.type.getDimSize(dim);
    Value i64Size =
        arith::ConstantOp::create(b, loc, b.getI64IntegerAttr(size));
    Value zero = arith::ConstantOp::create(b, loc, b.getI64IntegerAttr(0));
    at = select(cmpi(arith::CmpIPredicate::slt, at, zero), addI64(at, i64Size),
                at);
    at = arith::MaxSIOp::create(
        b, loc,
        arith::MinSIOp::create(
            b, loc, at,
            arith::ConstantOp::create(b, loc, b.getI64IntegerAttr(size - 1))),
        zero);
    return add(base, mul(toIndex(at), idx(stride(x, dim))));
  }
  Value addI64(Value a, Value c) { return arith::AddIOp::create(b, loc, a, c); }
  /// Loops over every element of `indices` of `x` (same rank), giving the
  /// flat position in `indices` and the position in `x` of its row, with
  /// dimension `dim` left at 0.
  void elementNest(const Buffer &indices, const Buffer &x, int64_t dim,
                   llvm::function_ref<void(Value, Value)> body) {
    int64_t rank = indices.type.getRank();
    std::function<void(int64_t, Value, Value)> nest = [&](int64_t d, Value i,
                                                          Value base) {
      if (d == rank) {
        body(i, base);
        return;
      }
      loop(idx(0), dimSize(indices, d), [&](Value j) {
        nest(d + 1, add(mul(i, dimSize(indices, d)), j),
             d == dim ? base : add(base, mul(j, idx(stride(x, d)))));
      });
    };
    nest(0, idx(0), idx(0));
  }

  LogicalResult checkScheme(BlockScaleAttr act, BlockScaleAttr weight,
                            int64_t &block);

  ModuleOp kernels;
  Operation *op;
  int64_t step;
  const CpuKernelOptions &kernelOptions;
  llvm::StringMap<func::FuncOp> &gemms;
  OpBuilder b;
  Location loc;
  Block *entry = nullptr;
  Value tokens;
  Value scratchBuffer;
  llvm::DenseMap<Value, Buffer> buffers;
  // The kernel's operands-then-results and their argument types.
  SmallVector<Value> stepValues;
  SmallVector<Type> stepArgTypes;
  // Outlined parallel bodies emitted so far.
  int64_t bodies = 0;
};

LogicalResult
StepEmitter::emit(llvm::function_ref<LogicalResult(StepEmitter &)> body) {
  // Arguments: operands then results, each as bytes.
  SmallVector<Value> values(op->getOperands());
  values.append(op->result_begin(), op->result_end());
  SmallVector<Type> argTypes;
  for (Value v : values) {
    auto type = dyn_cast<RankedTensorType>(v.getType());
    if (!type)
      return fail("expected ranked tensor operands and results");
    if (!type.getElementType().isIntOrFloat())
      return fail("expected integer or float elements");
    for (int64_t i = 1; i < type.getRank(); ++i)
      if (type.isDynamicDim(i))
        return fail("only the leading dimension may be dynamic");
    int64_t bytes = (type.getElementTypeBitWidth() + 7) / 8;
    for (int64_t i = type.getRank() > 0 && type.isDynamicDim(0) ? 1 : 0;
         i < type.getRank(); ++i)
      bytes *= type.getDimSize(i);
    if (type.getRank() > 0 && type.isDynamicDim(0))
      argTypes.push_back(MemRefType::get(
          {ShapedType::kDynamic, bytes * getRowsPerToken(v)}, b.getI8Type()));
    else
      argTypes.push_back(MemRefType::get({bytes}, b.getI8Type()));
  }
  b.setInsertionPointToEnd(kernels.getBody());
  std::string name = (kStepKernelPrefix + Twine(step)).str();
  auto fn = func::FuncOp::create(b, loc, name,
                                 b.getFunctionType(argTypes, TypeRange{}));
  entry = fn.addEntryBlock();
  b.setInsertionPointToStart(entry);
  stepValues = values;
  stepArgTypes = argTypes;
  for (auto [i, v] : llvm::enumerate(values)) {
    Value arg = entry->getArgument(i);
    if (!tokens && cast<MemRefType>(arg.getType()).isDynamicDim(0))
      tokens = memref::DimOp::create(b, loc, arg, 0);
    Value bytes = argBytes(arg);
    buffers[v] =
        Buffer{bytes, cast<RankedTensorType>(v.getType()), getRowsPerToken(v)};
  }
  if (!tokens)
    tokens = idx(0);
  if (failed(body(*this))) {
    fn.erase();
    return failure();
  }
  func::ReturnOp::create(b, loc);
  return success();
}

//===----------------------------------------------------------------------===//
// Elementwise, norm and quantize steps
//===----------------------------------------------------------------------===//

LogicalResult StepEmitter::emitAdd(moe::AddOp o) {
  return emitElementwise(o.getLhs(), o.getRhs(), o.getResult(),
                         [&](Value x, Value y) { return addf(x, y); });
}

LogicalResult StepEmitter::emitMul(moe::MulOp o) {
  return emitElementwise(o.getLhs(), o.getRhs(), o.getResult(),
                         [&](Value x, Value y) { return mulf(x, y); });
}

LogicalResult StepEmitter::emitSiluMul(moe::SiluMulOp o) {
  if (failed(
          emitElementwise(o.getGate(), o.getUp(), o.getResult(),
                          [&](Value g, Value u) { return mulf(silu(g), u); })))
    return failure();
  return fusedQuantize(bufferOf(o.getResult()));
}

LogicalResult StepEmitter::emitRmsNorm(moe::RmsNormOp o) {
  if (failed(emitRmsNormRows(o.getX(), o.getWeight(), o.getResult(),
                             o.getEpsilon().convertToDouble())))
    return failure();
  return fusedQuantize(bufferOf(o.getResult()));
}

LogicalResult StepEmitter::emitAddRmsNorm(moe::AddRmsNormOp o) {
  if (failed(emitElementwise(o.getLhs(), o.getRhs(), o.getSum(),
                             [&](Value x, Value y) { return addf(x, y); })))
    return failure();
  // The norm reads the sum back, rounded to its element type.
  if (failed(emitRmsNormRows(o.getSum(), o.getWeight(), o.getResult(),
                             o.getEpsilon().convertToDouble())))
    return failure();
  return fusedQuantize(bufferOf(o.getResult()));
}

LogicalResult StepEmitter::emitQuantize(moe::QuantizeOp o) {
  return quantizeBuffer(bufferOf(o.getX()), bufferOf(o.getResult()),
                        bufferOf(o.getScale()), o.getScheme());
}

//===----------------------------------------------------------------------===//
// moe.embed
//===----------------------------------------------------------------------===//

LogicalResult StepEmitter::emitEmbed(moe::EmbedOp o) {
  if (failed(checkFloat(o.getTable(), "table")) ||
      failed(checkFloat(o.getResult(), "result")))
    return failure();
  const Buffer &table = bufferOf(o.getTable());
  const Buffer &ids = bufferOf(o.getIds());
  const Buffer &out = bufferOf(o.getResult());
  int64_t vocab = table.type.getDimSize(0), hidden = table.type.getDimSize(1);
  Value tableFlat = flat(table), idsFlat = flat(ids), outFlat = flat(out);
  loop(idx(0), leadingRows(out), [&](Value t) {
    // Ids outside the table give a zero row instead of reading out of bounds.
    Value id = loadIndex(idsFlat, t);
    Value valid = cmpi(arith::CmpIPredicate::ult, id, idx(vocab));
    Value row = select(valid, id, idx(0));
    loop(idx(0), idx(hidden), [&](Value h) {
      Value v = loadF(tableFlat, add(mul(row, idx(hidden)), h));
      storeF(select(valid, v, f32(0.0)), outFlat, add(mul(t, idx(hidden)), h));
    });
  });
  return success();
}

//===----------------------------------------------------------------------===//
// GEMMs
//===----------------------------------------------------------------------===//

LogicalResult StepEmitter::checkScheme(BlockScaleAttr act,
                                       BlockScaleAttr weight, int64_t &block) {
  for (BlockScaleAttr s : {act, weight})
    if (s.getFormat() != moe::Fp8Format::e4m3fn ||
        s.getPlacement() != moe::ScalePlacement::row_major)
      return fail("only e4m3fn with row-major scales is supported");
  block = weight.getBlock()[1];
  if (act.getBlock()[0] != 1 || act.getBlock()[1] != block ||
      weight.getBlock()[0] != block || block % kernelOptions.lanes != 0)
    return fail("expected activation blocks [1, B] and weight blocks [B, B] "
                "with B a multiple of the vector width");
  return success();
}

LogicalResult StepEmitter::emitMatmul(moe::MatmulOp o) {
  if (!getElementTypeOrSelf(o.getX().getType()).isF32() ||
      !o.getType().getElementType().isF32())
    return fail("expected f32 activations");
  GemmOperands g{};
  g.x = &bufferOf(o.getX());
  g.w = &bufferOf(o.getW());
  if (o.getBias()) {
    if (failed(checkFloat(o.getBias(), "bias")))
      return failure();
    g.bias = &bufferOf(o.getBias());
  }
  if (failed(weightType(*g.w, g.weightType)) ||
      g.weightType == GemmElementType::F8E4M3FN)
    return fail("expected f32 or bf16 weights");
  g.n = g.w->type.getDimSize(0);
  g.k = g.w->type.getDimSize(1);
  g.epilogue = o.getEpilogue();
  const Buffer &out = bufferOf(o.getResult());
  if (failed(parallelGemm(g, nullptr, out)))
    return failure();
  return fusedQuantize(out);
}

LogicalResult StepEmitter::setFp8Operands(GemmOperands &g, Value x,
                                          Value xScale, Value w, Value wScale,
                                          BlockScaleAttr act,
                                          BlockScaleAttr weight) {
  if (failed(checkScheme(act, weight, g.block)))
    return failure();
  g.x = &bufferOf(x);
  g.xScale = &bufferOf(xScale);
  g.w = &bufferOf(w);
  g.wScale = &bufferOf(wScale);
  if (!isa<Float8E4M3FNType>(g.x->type.getElementType()) ||
      !isa<Float8E4M3FNType>(g.w->type.getElementType()))
    return fail("expected e4m3fn operands");
  g.weightType = g.actType = GemmElementType::F8E4M3FN;
  return success();
}

LogicalResult StepEmitter::emitFp8Matmul(moe::Fp8MatmulOp o) {
  if (!o.getType().getElementType().isF32())
    return fail("expected an f32 result");
  GemmOperands g{};
  if (failed(setFp8Operands(g, o.getX(), o.getXScale(), o.getW(), o.getWScale(),
                            o.getActScheme(), o.getWeightScheme())))
    return failure();
  if (o.getBias()) {
    if (failed(checkFloat(o.getBias(), "bias")))
      return failure();
    g.bias = &bufferOf(o.getBias());
  }
  g.n = g.w->type.getDimSize(0);
  g.k = g.w->type.getDimSize(1);
  g.epilogue = o.getEpilogue();
  const Buffer &out = bufferOf(o.getResult());
  if (failed(parallelGemm(g, nullptr, out)))
    return failure();
  return fusedQuantize(out);
}

LogicalResult StepEmitter::emitGroupedMatmul(moe::GroupedMatmulOp o) {
  if (!getElementTypeOrSelf(o.getRows().getType()).isF32() ||
      !o.getType().getElementType().isF32())
    return fail("expected f32 activations");
  GemmOperands g{};
  g.x = &bufferOf(o.getRows());
  g.w = &bufferOf(o.getW());
  if (failed(weightType(*g.w, g.weightType)) ||
      g.weightType == GemmElementType::F8E4M3FN)
    return fail("expected f32 or bf16 weights");
  g.n = g.w->type.getDimSize(1);
  g.k = g.w->type.getDimSize(2);
  g.expertWeights = g.n * g.k;
  g.epilogue = o.getEpilogue();
  const Buffer &out = bufferOf(o.getResult());
  if (failed(parallelGemm(g, &bufferOf(o.getOffsets()), out)))
    return failure();
  return fusedQuantize(out);
}

LogicalResult StepEmitter::emitFp8GroupedMatmul(moe::Fp8GroupedMatmulOp o) {
  if (!o.getType().getElementType().isF32())
    return fail("expected an f32 result");
  GemmOperands g{};
  if (failed(setFp8Operands(g, o.getRows(), o.getRowsScale(), o.getW(),
                            o.getWScale(), o.getActScheme(),
                            o.getWeightScheme())))
    return failure();
  g.n = g.w->type.getDimSize(1);
  g.k = g.w->type.getDimSize(2);
  g.expertWeights = g.n * g.k;
  g.expertScales =
      ((g.n + g.block - 1) / g.block) * ((g.k + g.block - 1) / g.block);
  if (g.wScale->type.getNumElements() !=
      g.expertScales * g.w->type.getDimSize(0))
    return fail("unexpected weight scale shape");
  g.epilogue = o.getEpilogue();
  const Buffer &out = bufferOf(o.getResult());
  if (failed(parallelGemm(g, &bufferOf(o.getOffsets()), out)))
    return failure();
  return fusedQuantize(out);
}

//===----------------------------------------------------------------------===//
// Elementwise, norms
//===----------------------------------------------------------------------===//

LogicalResult
StepEmitter::emitElementwise(Value lhs, Value rhs, Value result,
                             llvm::function_ref<Value(Value, Value)> fn) {
  if (failed(checkFloat(lhs, "lhs")) || failed(checkFloat(rhs, "rhs")) ||
      failed(checkFloat(result, "result")))
    return failure();
  Value a = flat(bufferOf(lhs)), c = flat(bufferOf(rhs));
  const Buffer &out = bufferOf(result);
  Value o = flat(out);
  loop(idx(0), numElements(out),
       [&](Value i) { storeF(fn(loadF(a, i), loadF(c, i)), o, i); });
  return success();
}

LogicalResult StepEmitter::emitRmsNormRows(Value xValue, Value weight,
                                           Value result, double eps) {
  if (failed(checkFloat(xValue, "x")) || failed(checkFloat(weight, "weight")) ||
      failed(checkFloat(result, "result")))
    return failure();
  const Buffer &x = bufferOf(xValue), &out = bufferOf(result);
  int64_t dim = x.type.getShape().back();
  Value xf = flat(x), wf = flat(bufferOf(weight)), of = flat(out);
  Value rows = divu(numElements(x), idx(dim));
  loop(idx(0), rows, [&](Value r) {
    Value base = mul(r, idx(dim));
    Value sum = loopCarry(idx(0), idx(dim), ValueRange{f32(0.0)},
                          [&](Value i, ValueRange acc) -> SmallVector<Value> {
                            Value v = loadF(xf, add(base, i));
                            return {addf(acc[0], mulf(v, v))};
                          })[0];
    Value inv =
        divf(f32(1.0),
             math::SqrtOp::create(
                 b, loc, addf(divf(sum, f32(double(dim))), f32(float(eps)))));
    loop(idx(0), idx(dim), [&](Value i) {
      Value v = loadF(xf, add(base, i));
      storeF(mulf(loadF(wf, i), mulf(v, inv)), of, add(base, i));
    });
  });
  return success();
}

LogicalResult StepEmitter::emitSigmoidGate(moe::SigmoidGateOp o) {
  const Buffer &x = bufferOf(o.getX()), &y = bufferOf(o.getY());
  const Buffer &out = bufferOf(o.getResult());
  int64_t hidden = x.type.getDimSize(1), width = y.type.getDimSize(1);
  Value xf = flat(x), gf = flat(bufferOf(o.getGate())), yf = flat(y),
        of = flat(out);
  loop(idx(0), leadingRows(out), [&](Value t) {
    Value base = mul(t, idx(hidden));
    Value logit = loopCarry(
        idx(0), idx(hidden), ValueRange{f32(0.0)},
        [&](Value i, ValueRange acc) -> SmallVector<Value> {
          return {addf(acc[0], mulf(loadF(xf, add(base, i)), loadF(gf, i)))};
        })[0];
    Value g = sigmoid(logit);
    loop(idx(0), idx(width), [&](Value j) {
      Value i = add(mul(t, idx(width)), j);
      storeF(mulf(g, loadF(yf, i)), of, i);
    });
  });
  return success();
}

//===----------------------------------------------------------------------===//
// moe.rope
//===----------------------------------------------------------------------===//

LogicalResult StepEmitter::emitRope(moe::RopeOp o) {
  const Buffer &x = bufferOf(o.getX()), &out = bufferOf(o.getResult());
  if (x.type.getRank() != 3)
    return fail("expected `x` of rank 3");
  int64_t heads = x.type.getDimSize(1), dim = x.type.getDimSize(2);
  int64_t half = dim / 2;
  std::vector<float> invFreq = moe::getRopeInverseFrequencies(
      dim, o.getTheta().convertToDouble(), o.getScalingAttr());
  float attention = float(moe::getRopeCosSinScale(o.getScalingAttr()));
  // The frequency table is a constant of the shared object.
  auto tableType =
      MemRefType::get({std::max<int64_t>(half, 1)}, b.getF32Type());
  std::string global = (kStepKernelPrefix + Twine(step) + ".inv_freq").str();
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(kernels.getBody());
    invFreq.resize(std::max<int64_t>(half, 1));
    auto init = DenseElementsAttr::get(
        RankedTensorType::get(tableType.getShape(), b.getF32Type()),
        ArrayRef<float>(invFreq));
    memref::GlobalOp::create(b, loc, global, b.getStringAttr("private"),
                             tableType, init, /*constant=*/true,
                             /*alignment=*/IntegerAttr());
  }
  Value table = memref::GetGlobalOp::create(b, loc, tableType, global);
  Value xf = flat(x), of = flat(out), pf = flat(bufferOf(o.getPositions()));
  bool interleaved = o.getInterleaved();
  loop(idx(0), leadingRows(x), [&](Value t) {
    Value p = arith::SIToFPOp::create(
        b, loc, b.getF32Type(),
        memref::LoadOp::create(b, loc, pf, ValueRange{t}));
    loop(idx(0), idx(half), [&](Value i) {
      Value angle =
          mulf(memref::LoadOp::create(b, loc, table, ValueRange{i}), p);
      Value cosv = mulf(math::CosOp::create(b, loc, angle), f32(attention));
      Value sinv = mulf(math::SinOp::create(b, loc, angle), f32(attention));
      Value ia = interleaved ? mul(i, idx(2)) : i;
      Value ib = interleaved ? add(mul(i, idx(2)), idx(1)) : add(i, idx(half));
      loop(idx(0), idx(heads), [&](Value h) {
        Value base = mul(add(mul(t, idx(heads)), h), idx(dim));
        Value x1 = loadF(xf, add(base, ia)), x2 = loadF(xf, add(base, ib));
        storeF(subf(mulf(x1, cosv), mulf(x2, sinv)), of, add(base, ia));
        storeF(addf(mulf(x2, cosv), mulf(x1, sinv)), of, add(base, ib));
      });
    });
    // An odd last channel is left as is.
    if (dim % 2) {
      loop(idx(0), idx(heads), [&](Value h) {
        Value i = add(mul(add(mul(t, idx(heads)), h), idx(dim)), idx(dim - 1));
        storeF(loadF(xf, i), of, i);
      });
    }
  });
  return success();
}

//===----------------------------------------------------------------------===//
// moe.attention
//===----------------------------------------------------------------------===//

/// One query row of one head against `keys` keys: the scores `scale * q·k`
/// in f32 into `scores`, their softmax, and the weighted sum of the values
/// into `out`. `keyAt(s)` and `valueAt(s)` give the element offset of key
/// (value) `s` of this head in `kf` (`vf`). Each row is reduced in key order
/// alone, whatever else the step holds (batch invariance).
void StepEmitter::attendRow(Value qf, Value qBase, Value keys,
                            llvm::function_ref<Value(Value)> keyAt, Value kf,
                            llvm::function_ref<Value(Value)> valueAt, Value vf,
                            Value of, Value oBase, int64_t dqk, int64_t dv,
                            Value scale, Value scores) {
  Value max = loopCarry(
      idx(0), keys, ValueRange{f32(-std::numeric_limits<double>::infinity())},
      [&](Value s, ValueRange acc) -> SmallVector<Value> {
        Value kBase = keyAt(s);
        Value dot =
            loopCarry(idx(0), idx(dqk), ValueRange{f32(0.0)},
                      [&](Value d, ValueRange a) -> SmallVector<Value> {
                        return {addf(a[0], mulf(loadF(qf, add(qBase, d)),
                                                loadF(kf, add(kBase, d))))};
                      })[0];
        Value sc = mulf(dot, scale);
        memref::StoreOp::create(b, loc, sc, scores, ValueRange{s});
        // std::max(max, sc): keeps `max` unless it is less than `sc`.
        return {
            select(cmpf(arith::CmpFPredicate::OLT, acc[0], sc), sc, acc[0])};
      })[0];
  Value sum = loopCarry(
      idx(0), keys, ValueRange{f32(0.0)},
      [&](Value s, ValueRange acc) -> SmallVector<Value> {
        Value e = exp(
            subf(memref::LoadOp::create(b, loc, scores, ValueRange{s}), max));
        memref::StoreOp::create(b, loc, e, scores, ValueRange{s});
        return {addf(acc[0], e)};
      })[0];
  // The weighted values, key by key into an f32 accumulator per output
  // element: each element still sums its terms in key order, exactly as a
  // per-element loop over the keys would, but each key's value row (and its
  // page lookup) is read once, not once per element.
  Value acc = entryAlloca([&] { return idx(dv); });
  loop(idx(0), idx(dv), [&](Value d) {
    memref::StoreOp::create(b, loc, f32(0.0), acc, ValueRange{d});
  });
  loop(idx(0), keys, [&](Value s) {
    Value p = divf(memref::LoadOp::create(b, loc, scores, ValueRange{s}), sum);
    Value vBase = valueAt(s);
    loop(idx(0), idx(dv), [&](Value d) {
      Value a = memref::LoadOp::create(b, loc, acc, ValueRange{d});
      memref::StoreOp::create(b, loc,
                              addf(a, mulf(p, loadF(vf, add(vBase, d)))), acc,
                              ValueRange{d});
    });
  });
  loop(idx(0), idx(dv), [&](Value d) {
    storeF(memref::LoadOp::create(b, loc, acc, ValueRange{d}), of,
           add(oBase, d));
  });
}

/// A kernel-local f32 array, allocated once at the entry: `size` builds
/// its element count there.
Value StepEmitter::entryAlloca(llvm::function_ref<Value()> size) {
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointAfterValue(tokens);
  return memref::AllocaOp::create(
      b, loc, MemRefType::get({ShapedType::kDynamic}, b.getF32Type()),
      ValueRange{size()});
}

LogicalResult StepEmitter::emitAttention(moe::AttentionOp o) {
  const Buffer &q = bufferOf(o.getQ()), &k = bufferOf(o.getK()),
               &v = bufferOf(o.getV()), &out = bufferOf(o.getResult());
  int64_t heads = q.type.getDimSize(1), dqk = q.type.getDimSize(2);
  int64_t kvHeads = k.type.getDimSize(1), dv = v.type.getDimSize(2);
  if (kvHeads <= 0 || heads % kvHeads)
    return fail("expected query heads to be a multiple of key/value heads");
  int64_t group = heads / kvHeads;
  Value qf = flat(q), kf = flat(k), vf = flat(v), of = flat(out);
  Value n = leadingRows(q);
  Value scores = entryAlloca([&] { return add(tokens, idx(1)); });
  Value scale = f32(o.getScale().convertToDouble());
  bool causal = o.getCausal();
  loop(idx(0), n, [&](Value t) {
    Value keys = causal ? add(t, idx(1)) : n;
    loop(idx(0), idx(heads), [&](Value h) {
      Value kvh = divu(h, idx(group));
      attendRow(
          qf, mul(add(mul(t, idx(heads)), h), idx(dqk)), keys,
          [&](Value s) {
            return mul(add(mul(s, idx(kvHeads)), kvh), idx(dqk));
          },
          kf,
          [&](Value s) { return mul(add(mul(s, idx(kvHeads)), kvh), idx(dv)); },
          vf, of, mul(add(mul(t, idx(heads)), h), idx(dv)), dqk, dv, scale,
          scores);
    });
  });
  return success();
}

//===----------------------------------------------------------------------===//
// moe.paged_attention
//===----------------------------------------------------------------------===//

/// Element offset of position `pos` of slot `slot` in a paged cache of
/// `width` elements per position, through the page table `table` (flat,
/// `maxPages` entries per slot).
Value StepEmitter::pagedOffset(Value table, int64_t maxPages,
                               int64_t pageTokens, Value slot, Value pos,
                               int64_t width) {
  Value page = loadIndex(
      table, add(mul(slot, idx(maxPages)), divu(pos, idx(pageTokens))));
  return mul(add(mul(page, idx(pageTokens)), remu(pos, idx(pageTokens))),
             idx(width));
}

LogicalResult StepEmitter::emitPagedAttention(moe::PagedAttentionOp o) {
  const Buffer &q = bufferOf(o.getQ()), &k = bufferOf(o.getK()),
               &v = bufferOf(o.getV()), &out = bufferOf(o.getResult());
  const Buffer &kc = bufferOf(o.getKCache()), &vc = bufferOf(o.getVCache());
  if (failed(checkFloat(o.getKCache(), "k_cache")) ||
      failed(checkFloat(o.getVCache(), "v_cache")))
    return failure();
  int64_t heads = q.type.getDimSize(1), dqk = q.type.getDimSize(2);
  int64_t kvHeads = k.type.getDimSize(1), dv = v.type.getDimSize(2);
  int64_t group = heads / kvHeads;
  int64_t pageTokens = kc.type.getDimSize(1);
  int64_t maxPages = bufferOf(o.getPageTable()).type.getDimSize(1);
  Value kf = flat(k), vf = flat(v);
  Value pf = flat(bufferOf(o.getPositions())),
        sf = flat(bufferOf(o.getSlots()));
  Value tf = flat(bufferOf(o.getPageTable()));
  // The caches are the runtime's pools, `[pages, P, Hkv, D]`: their
  // descriptors' sizes mean nothing (the runtime sized the pools), only the
  // page ids of the table index them.
  Value kcf = flat(kc), vcf = flat(vc);
  Value n = leadingRows(q);
  auto cacheOffset = [&](Value slot, Value pos, int64_t width) {
    return pagedOffset(tf, maxPages, pageTokens, slot, pos, width);
  };
  // First every row's K and V into its slot's pages, so that the rows of a
  // prefill chunk see each other.
  loop(idx(0), n, [&](Value t) {
    Value pos = loadIndex(pf, t), slot = loadIndex(sf, t);
    Value kBase = cacheOffset(slot, pos, kvHeads * dqk);
    loop(idx(0), idx(kvHeads * dqk), [&](Value i) {
      storeF(loadF(kf, add(mul(t, idx(kvHeads * dqk)), i)), kcf, add(kBase, i));
    });
    Value vBase = cacheOffset(slot, pos, kvHeads * dv);
    loop(idx(0), idx(kvHeads * dv), [&](Value i) {
      storeF(loadF(vf, add(mul(t, idx(kvHeads * dv)), i)), vcf, add(vBase, i));
    });
  });
  // Then each (row, head) attends over its row's slot positions
  // 0 .. positions[t], spread over the runtime's threads: each item writes
  // its own output and reduces in key order alone, so the threads change no
  // bit. The scores array (one per thread, on its stack) is sized for the
  // longest sequence the page table holds.
  auto [usable, threads] = runtimeThreads();
  (void)threads;
  const Buffer &positions = bufferOf(o.getPositions());
  const Buffer &slots = bufferOf(o.getSlots());
  const Buffer &table = bufferOf(o.getPageTable());
  return parallelItems(
      usable, mul(n, idx(heads)), {},
      [&](Value item, ArrayRef<Value>) -> LogicalResult {
        // Inside the body the buffers are rebound: view them again.
        Value qf = flat(q), of = flat(out), kcf = flat(kc), vcf = flat(vc);
        Value pf = flat(positions), sf = flat(slots), tf = flat(table);
        Value scores =
            entryAlloca([&] { return idx(maxPages * pageTokens + 1); });
        Value scale = f32(o.getScale().convertToDouble());
        Value t = divu(item, idx(heads)), h = remu(item, idx(heads));
        Value pos = loadIndex(pf, t), slot = loadIndex(sf, t);
        Value kvh = divu(h, idx(group));
        attendRow(
            qf, mul(item, idx(dqk)), add(pos, idx(1)),
            [&](Value s) {
              return add(
                  pagedOffset(tf, maxPages, pageTokens, slot, s, kvHeads * dqk),
                  mul(kvh, idx(dqk)));
            },
            kcf,
            [&](Value s) {
              return add(
                  pagedOffset(tf, maxPages, pageTokens, slot, s, kvHeads * dv),
                  mul(kvh, idx(dv)));
            },
            vcf, of, mul(item, idx(dv)), dqk, dv, scale, scores);
        return success();
      });
}

//===----------------------------------------------------------------------===//
// moe.paged_mla_attention
//===----------------------------------------------------------------------===//

/// Absorbed MLA over the latent cache, every row alone (prefill rows as
/// decode rows): per head, `q_lat = W_UK^T q_nope` next to `q_rope` makes a
/// query of `R + Dr` values against the cached `(c, k_rope)` rows,
/// `attendRow` sums the latents `c` weighted by the softmax, and `W_UV`
/// brings that back to `Dv` values. Each row is reduced in a fixed order
/// whatever else the step holds (batch invariance).
LogicalResult StepEmitter::emitPagedMlaAttention(moe::PagedMlaAttentionOp o) {
  if (failed(checkFloat(o.getCache(), "cache")) ||
      failed(checkFloat(o.getKvB(), "kv_b")))
    return failure();
  const Buffer &qNope = bufferOf(o.getQNope()), &qRope = bufferOf(o.getQRope());
  const Buffer &latent = bufferOf(o.getLatent()),
               &out = bufferOf(o.getResult());
  const Buffer &cache = bufferOf(o.getCache());
  int64_t heads = qNope.type.getDimSize(1), nope = qNope.type.getDimSize(2);
  int64_t rope = qRope.type.getDimSize(2), rank = latent.type.getDimSize(1);
  int64_t dv = out.type.getDimSize(2), width = rank + rope;
  // kv_b's rows: head h's `nope` key rows, then its `dv` value rows.
  int64_t headRows = nope + dv;
  int64_t pageTokens = cache.type.getDimSize(1);
  int64_t maxPages = bufferOf(o.getPageTable()).type.getDimSize(1);
  Value qnf = flat(qNope), qrf = flat(qRope), lf = flat(latent);
  Value krf = flat(bufferOf(o.getKRope())), wf = flat(bufferOf(o.getKvB()));
  Value of = flat(out), cf = flat(cache);
  Value pf = flat(bufferOf(o.getPositions())),
        sf = flat(bufferOf(o.getSlots()));
  Value tf = flat(bufferOf(o.getPageTable()));
  Value n = leadingRows(qNope);
  auto cacheOffset = [&](Value slot, Value pos) {
    return pagedOffset(tf, maxPages, pageTokens, slot, pos, width);
  };
  // First every row's latent and rotary key into its slot's pages.
  loop(idx(0), n, [&](Value t) {
    Value base = cacheOffset(loadIndex(sf, t), loadIndex(pf, t));
    loop(idx(0), idx(rank), [&](Value i) {
      storeF(loadF(lf, add(mul(t, idx(rank)), i)), cf, add(base, i));
    });
    loop(idx(0), idx(rope), [&](Value i) {
      storeF(loadF(krf, add(mul(t, idx(rope)), i)), cf,
             add(base, add(idx(rank), i)));
    });
  });
  Value scores = entryAlloca([&] { return idx(maxPages * pageTokens + 1); });
  Value query = entryAlloca([&] { return idx(width); });
  Value context = entryAlloca([&] { return idx(rank); });
  Value scale = f32(o.getScale().convertToDouble());
  // sum_i x[xBase + i] * kv_b[start + i], i < count, in order.
  auto dotRow = [&](Value xf, Value xBase, Value start, int64_t count) {
    return loopCarry(idx(0), idx(count), ValueRange{f32(0.0)},
                     [&](Value i, ValueRange a) -> SmallVector<Value> {
                       return {addf(a[0], mulf(loadF(xf, add(xBase, i)),
                                               loadF(wf, add(start, i))))};
                     })[0];
  };
  loop(idx(0), n, [&](Value t) {
    Value pos = loadIndex(pf, t), slot = loadIndex(sf, t);
    loop(idx(0), idx(heads), [&](Value h) {
      Value row = mul(add(mul(t, idx(heads)), h), idx(nope));
      Value keyRows = mul(h, idx(headRows));
      // q_lat[r] = sum_i q_nope[i] * W_UK[i, r], i in key-row order.
      loop(idx(0), idx(rank), [&](Value r) {
        Value acc =
            loopCarry(idx(0), idx(nope), ValueRange{f32(0.0)},
                      [&](Value i, ValueRange a) -> SmallVector<Value> {
                        Value w =
                            loadF(wf, add(mul(add(keyRows, i), idx(rank)), r));
                        return {addf(a[0], mulf(loadF(qnf, add(row, i)), w))};
                      })[0];
        storeF(acc, query, r);
      });
      loop(idx(0), idx(rope), [&](Value j) {
        storeF(loadF(qrf, add(mul(add(mul(t, idx(heads)), h), idx(rope)), j)),
               query, add(idx(rank), j));
      });
      attendRow(
          query, idx(0), add(pos, idx(1)),
          [&](Value s) { return cacheOffset(slot, s); }, cf,
          [&](Value s) { return cacheOffset(slot, s); }, cf, context, idx(0),
          width, rank, scale, scores);
      // result[d] = W_UV[d] · o_lat.
      Value valueRows = add(keyRows, idx(nope));
      loop(idx(0), idx(dv), [&](Value d) {
        storeF(dotRow(context, idx(0), mul(add(valueRows, d), idx(rank)), rank),
               of, add(mul(add(mul(t, idx(heads)), h), idx(dv)), d));
      });
    });
  });
  return success();
}

//===----------------------------------------------------------------------===//
// Shape ops
//===----------------------------------------------------------------------===//

LogicalResult StepEmitter::emitSelectRows(moe::SelectRowsOp o) {
  // Runs on the selected rows: `tokens` is their count R, and `x` (whose
  // descriptor says R rows too) is read only at the rows `rows` names, which
  // the executor checked are below the step's T.
  const Buffer &x = bufferOf(o.getX()), &out = bufferOf(o.getResult());
  int64_t width = rowElements(x);
  Value xf = flat(x), of = flat(out), rf = flat(bufferOf(o.getRows()));
  loop(idx(0), leadingRows(out), [&](Value r) {
    Value from = mul(loadIndex(rf, r), idx(width));
    loop(idx(0), idx(width), [&](Value c) {
      Value v = memref::LoadOp::create(b, loc, xf, ValueRange{add(from, c)});
      memref::StoreOp::create(b, loc, v, of,
                              ValueRange{add(mul(r, idx(width)), c)});
    });
  });
  return success();
}

LogicalResult StepEmitter::emitSlice(moe::SliceOp o) {
  const Buffer &x = bufferOf(o.getX()), &out = bufferOf(o.getResult());
  int64_t inner = x.type.getShape().back(), size = out.type.getShape().back();
  int64_t offset = int64_t(o.getOffset());
  Value xf = flat(x), of = flat(out);
  Value rows = divu(numElements(x), idx(inner));
  loop(idx(0), rows, [&](Value r) {
    loop(idx(0), idx(size), [&](Value c) {
      storeF(loadF(xf, add(mul(r, idx(inner)), add(c, idx(offset)))), of,
             add(mul(r, idx(size)), c));
    });
  });
  return success();
}

LogicalResult StepEmitter::emitConcat(moe::ConcatOp o) {
  const Buffer &out = bufferOf(o.getResult());
  int64_t axis = o.getConcatDim();
  if (axis == 0 && out.type.isDynamicDim(0))
    return fail("cannot concatenate along the token dimension");
  ArrayRef<int64_t> shape = out.type.getShape();
  // Each input contributes `size[axis] * inner` contiguous elements per index
  // of the dimensions before `axis`.
  Value outer = idx(1);
  for (int64_t i = 0; i < axis; ++i)
    outer = mul(outer, i == 0 ? leadingRows(out) : idx(shape[i]));
  int64_t inner = 1;
  for (int64_t d : shape.drop_front(axis + 1))
    inner *= d;
  int64_t outChunk = shape[axis] * inner, offset = 0;
  Value of = flat(out);
  for (Value input : o.getInputs()) {
    const Buffer &in = bufferOf(input);
    int64_t chunk = in.type.getShape()[axis] * inner;
    Value inf = flat(in);
    loop(idx(0), outer, [&](Value r) {
      loop(idx(0), idx(chunk), [&](Value c) {
        storeF(loadF(inf, add(mul(r, idx(chunk)), c)), of,
               add(mul(r, idx(outChunk)), add(c, idx(offset))));
      });
    });
    offset += chunk;
  }
  return success();
}

LogicalResult StepEmitter::emitExpand(moe::ExpandOp o) {
  const Buffer &x = bufferOf(o.getX()), &out = bufferOf(o.getResult());
  int64_t rank = out.type.getRank();
  Value xf = flat(x), of = flat(out);
  // A loop nest over the result; size-1 dimensions of `x` read index 0.
  std::function<void(int64_t, Value, Value)> nest = [&](int64_t d, Value src,
                                                        Value dst) {
    if (d == rank) {
      storeF(loadF(xf, src), of, dst);
      return;
    }
    Value size = d == 0 ? leadingRows(out) : idx(out.type.getDimSize(d));
    bool broadcast = d > 0 && x.type.getDimSize(d) == 1;
    Value xSize = d == 0 ? leadingRows(x) : idx(x.type.getDimSize(d));
    loop(idx(0), size, [&](Value i) {
      nest(d + 1, add(mul(src, xSize), broadcast ? idx(0) : i),
           add(mul(dst, size), i));
    });
  };
  if (!out.type.isDynamicDim(0) && x.type.getDimSize(0) == 1 &&
      out.type.getDimSize(0) != 1)
    return fail("cannot broadcast the leading dimension");
  nest(0, idx(0), idx(0));
  return success();
}

//===----------------------------------------------------------------------===//
// Generic token-wise ops (scalar loops, as the interpreter computes them)
//===----------------------------------------------------------------------===//

LogicalResult StepEmitter::emitUnary(moe::UnaryOp o) {
  const Buffer &x = bufferOf(o.getX()), &out = bufferOf(o.getResult());
  if (failed(checkFloat(o.getX(), "x")))
    return failure();
  Value xf = flat(x), of = flat(out);
  moe::UnaryKind kind = o.getKind();
  loop(idx(0), numElements(x), [&](Value i) {
    Value v = loadF(xf, i), r;
    switch (kind) {
    case moe::UnaryKind::neg:
      r = arith::NegFOp::create(b, loc, v);
      break;
    case moe::UnaryKind::abs:
      r = math::AbsFOp::create(b, loc, v);
      break;
    case moe::UnaryKind::sqrt:
      r = math::SqrtOp::create(b, loc, v);
      break;
    case moe::UnaryKind::reciprocal:
      r = divf(f32(1.0), v);
      break;
    case moe::UnaryKind::exp:
      r = exp(v);
      break;
    case moe::UnaryKind::log:
      r = math::LogOp::create(b, loc, v);
      break;
    case moe::UnaryKind::tanh:
      r = math::TanhOp::create(b, loc, v);
      break;
    case moe::UnaryKind::sigmoid:
      r = sigmoid(v);
      break;
    case moe::UnaryKind::relu:
      // NaN stays NaN, as in the interpreter.
      r = select(cmpf(arith::CmpFPredicate::UGT, v, f32(0.0)), v, f32(0.0));
      break;
    }
    storeF(r, of, i);
  });
  return success();
}

LogicalResult StepEmitter::emitBinary(moe::BinaryOp o) {
  const Buffer &l = bufferOf(o.getLhs()), &r = bufferOf(o.getRhs()),
               &out = bufferOf(o.getResult());
  if (failed(checkFloat(o.getLhs(), "lhs")) ||
      failed(checkFloat(o.getRhs(), "rhs")))
    return failure();
  Value lf = flat(l), rf = flat(r), of = flat(out);
  moe::BinaryKind kind = o.getKind();
  broadcastNest(out, {&l, &r}, [&](Value dst, ArrayRef<Value> srcs) {
    Value a = loadF(lf, srcs[0]), c = loadF(rf, srcs[1]), v;
    switch (kind) {
    case moe::BinaryKind::add:
      v = addf(a, c);
      break;
    case moe::BinaryKind::sub:
      v = subf(a, c);
      break;
    case moe::BinaryKind::mul:
      v = mulf(a, c);
      break;
    case moe::BinaryKind::div:
      v = divf(a, c);
      break;
    case moe::BinaryKind::pow:
      v = powF(a, c);
      break;
    case moe::BinaryKind::max:
      v = arith::MaximumFOp::create(b, loc, a, c);
      break;
    case moe::BinaryKind::min:
      v = arith::MinimumFOp::create(b, loc, a, c);
      break;
    }
    storeF(v, of, dst);
  });
  return success();
}

LogicalResult StepEmitter::emitCompare(moe::CompareOp o) {
  const Buffer &l = bufferOf(o.getLhs()), &r = bufferOf(o.getRhs()),
               &out = bufferOf(o.getResult());
  bool integer = isIntBuffer(l);
  if (!integer && (failed(checkFloat(o.getLhs(), "lhs")) ||
                   failed(checkFloat(o.getRhs(), "rhs"))))
    return failure();
  Value lf = integer ? flatAny(l) : flat(l),
        rf = integer ? flatAny(r) : flat(r);
  Value of = flatAny(out);
  moe::ComparePredicate p = o.getPredicate();
  broadcastNest(out, {&l, &r}, [&](Value dst, ArrayRef<Value> srcs) {
    Value v;
    if (integer) {
      arith::CmpIPredicate pred = arith::CmpIPredicate::eq;
      switch (p) {
      case moe::ComparePredicate::eq:
        pred = arith::CmpIPredicate::eq;
        break;
      case moe::ComparePredicate::ne:
        pred = arith::CmpIPredicate::ne;
        break;
      case moe::ComparePredicate::lt:
        pred = arith::CmpIPredicate::slt;
        break;
      case moe::ComparePredicate::le:
        pred = arith::CmpIPredicate::sle;
        break;
      case moe::ComparePredicate::gt:
        pred = arith::CmpIPredicate::sgt;
        break;
      case moe::ComparePredicate::ge:
        pred = arith::CmpIPredicate::sge;
        break;
      }
      v = cmpi(pred, loadI64(l, lf, srcs[0]), loadI64(r, rf, srcs[1]));
    } else {
      arith::CmpFPredicate pred = arith::CmpFPredicate::OEQ;
      switch (p) {
      case moe::ComparePredicate::eq:
        pred = arith::CmpFPredicate::OEQ;
        break;
      case moe::ComparePredicate::ne:
        pred = arith::CmpFPredicate::UNE;
        break;
      case moe::ComparePredicate::lt:
        pred = arith::CmpFPredicate::OLT;
        break;
      case moe::ComparePredicate::le:
        pred = arith::CmpFPredicate::OLE;
        break;
      case moe::ComparePredicate::gt:
        pred = arith::CmpFPredicate::OGT;
        break;
      case moe::ComparePredicate::ge:
        pred = arith::CmpFPredicate::OGE;
        break;
      }
      v = cmpf(pred, loadF(lf, srcs[0]), loadF(rf, srcs[1]));
    }
    memref::StoreOp::create(b, loc,
                            arith::ExtUIOp::create(b, loc, b.getI8Type(), v),
                            of, ValueRange{dst});
  });
  return success();
}

LogicalResult StepEmitter::emitSelect(moe::SelectOp o) {
  const Buffer &c = bufferOf(o.getCondition()), &t = bufferOf(o.getOnTrue()),
               &f = bufferOf(o.getOnFalse()), &out = bufferOf(o.getResult());
  if (failed(checkFloat(o.getOnTrue(), "on_true")) ||
      failed(checkFloat(o.getOnFalse(), "on_false")))
    return failure();
  Value cf = flatAny(c), tf = flat(t), ff = flat(f), of = flat(out);
  broadcastNest(out, {&c, &t, &f}, [&](Value dst, ArrayRef<Value> srcs) {
    Value cond =
        cmpi(arith::CmpIPredicate::ne, loadI64(c, cf, srcs[0]),
             arith::ConstantOp::create(b, loc, b.getI64IntegerAttr(0)));
    storeF(select(cond, loadF(tf, srcs[1]), loadF(ff, srcs[2])), of, dst);
  });
  return success();
}

LogicalResult StepEmitter::emitCast(moe::CastOp o) {
  const Buffer &x = bufferOf(o.getX()), &out = bufferOf(o.getResult());
  bool fromInt = isIntBuffer(x), toInt = isIntBuffer(out);
  if ((!fromInt && failed(checkFloat(o.getX(), "x"))) ||
      (!toInt && failed(checkFloat(o.getResult(), "result"))))
    return failure();
  Value xf = fromInt ? flatAny(x) : flat(x);
  Value of = toInt ? flatAny(out) : flat(out);
  loop(idx(0), numElements(x), [&](Value i) {
    if (!toInt) {
      storeF(loadAsF32(x, xf, i), of, i);
      return;
    }
    Value v;
    if (fromInt) {
      v = loadI64(x, xf, i);
    } else {
      Value f = loadF(xf, i);
      // fptosi of NaN is poison: NaN casts to 0, as in the interpreter.
      Value safe = select(isNaN(f), f32(0.0), f);
      v = out.type.getElementType().isInteger(1)
              ? arith::ExtUIOp::create(
                    b, loc, b.getI64Type(),
                    cmpf(arith::CmpFPredicate::UNE, f, f32(0.0)))
              : arith::FPToSIOp::create(b, loc, b.getI64Type(), safe)
                    .getResult();
    }
    storeI64(out, v, of, i);
  });
  return success();
}

LogicalResult StepEmitter::emitSoftmax(moe::SoftmaxOp o) {
  const Buffer &x = bufferOf(o.getX()), &out = bufferOf(o.getResult());
  if (failed(checkFloat(o.getX(), "x")))
    return failure();
  int64_t dim = x.type.getShape().back();
  Value xf = flat(x), of = flat(out);
  Value ninf = f32(-std::numeric_limits<double>::infinity());
  loop(idx(0), divu(numElements(x), idx(dim)), [&](Value r) {
    Value base = mul(r, idx(dim));
    Value max = loopCarry(
        idx(0), idx(dim), ValueRange{ninf},
        [&](Value i, ValueRange a) -> SmallVector<Value> {
          Value v = loadF(xf, add(base, i));
          return {select(cmpf(arith::CmpFPredicate::OLT, a[0], v), v, a[0])};
        })[0];
    Value sum = loopCarry(
        idx(0), idx(dim), ValueRange{f32(0.0)},
        [&](Value i, ValueRange a) -> SmallVector<Value> {
          return {addf(a[0], exp(subf(loadF(xf, add(base, i)), max)))};
        })[0];
    loop(idx(0), idx(dim), [&](Value i) {
      Value at = add(base, i);
      storeF(divf(exp(subf(loadF(xf, at), max)), sum), of, at);
    });
  });
  return success();
}

LogicalResult StepEmitter::emitReduce(moe::ReduceOp o) {
  const Buffer &x = bufferOf(o.getX()), &out = bufferOf(o.getResult());
  if (failed(checkFloat(o.getX(), "x")))
    return failure();
  ArrayRef<int64_t> dims = o.getDims();
  moe::ReduceKind kind = o.getKind();
  int64_t rank = x.type.getRank(), count = 1;
  SmallVector<int64_t> kept;
  for (int64_t d = 0; d < rank; ++d) {
    if (llvm::is_contained(dims, d))
      count *= x.type.getDimSize(d);
    else
      kept.push_back(d);
  }
  Value xf = flat(x), of = flat(out);
  double init = kind == moe::ReduceKind::max
                    ? -std::numeric_limits<double>::infinity()
                    : (kind == moe::ReduceKind::min
                           ? std::numeric_limits<double>::infinity()
                           : 0.0);
  // The reduced dimensions, innermost loops carrying the accumulator, in
  // index order as the interpreter sums.
  std::function<Value(size_t, Value, Value)> reduce = [&](size_t k, Value base,
                                                          Value acc) -> Value {
    if (k == dims.size()) {
      Value v = loadF(xf, base);
      switch (kind) {
      case moe::ReduceKind::sum:
      case moe::ReduceKind::mean:
        return addf(acc, v);
      case moe::ReduceKind::max:
        return arith::MaximumFOp::create(b, loc, acc, v);
      case moe::ReduceKind::min:
        return arith::MinimumFOp::create(b, loc, acc, v);
      }
      llvm_unreachable("unknown reduce kind");
    }
    int64_t d = dims[k];
    return loopCarry(
        idx(0), idx(x.type.getDimSize(d)), ValueRange{acc},
        [&](Value i, ValueRange a) -> SmallVector<Value> {
          return {reduce(k + 1, add(base, mul(i, idx(stride(x, d)))), a[0])};
        })[0];
  };
  std::function<void(size_t, Value, Value)> outer = [&](size_t k, Value dst,
                                                        Value base) {
    if (k == kept.size()) {
      Value acc = reduce(0, base, f32(init));
      if (kind == moe::ReduceKind::mean)
        acc = divf(acc, f32(double(count)));
      storeF(acc, of, dst);
      return;
    }
    int64_t d = kept[k];
    Value size = dimSize(x, d);
    loop(idx(0), size, [&](Value i) {
      outer(k + 1, add(mul(dst, size), i),
            add(base, mul(i, idx(stride(x, d)))));
    });
  };
  outer(0, idx(0), idx(0));
  return success();
}

LogicalResult StepEmitter::emitTopK(moe::TopKOp o) {
  const Buffer &x = bufferOf(o.getX()), &values = bufferOf(o.getValues()),
               &indices = bufferOf(o.getIndices());
  if (failed(checkFloat(o.getX(), "x")))
    return failure();
  int64_t dim = x.type.getShape().back(), k = o.getK();
  Value xf = flat(x), vf = flat(values), inf = flatAny(indices);
  loop(idx(0), divu(numElements(x), idx(dim)), [&](Value r) {
    Value base = mul(r, idx(dim));
    // Pick j is the best element that ranks after pick j - 1 (the order is
    // total: value, then index), so no element is picked twice.
    loopCarry(
        idx(0), idx(k), ValueRange{f32(0.0), idx(dim)},
        [&](Value j, ValueRange prev) -> SmallVector<Value> {
          Value first = cmpi(arith::CmpIPredicate::eq, j, idx(0));
          SmallVector<Value> best = loopCarry(
              idx(0), idx(dim), ValueRange{f32(0.0), idx(dim)},
              [&](Value i, ValueRange acc) -> SmallVector<Value> {
                Value v = loadF(xf, add(base, i));
                Value after = arith::OrIOp::create(
                    b, loc, first, ranksBefore(prev[0], prev[1], v, i));
                Value none = cmpi(arith::CmpIPredicate::eq, acc[1], idx(dim));
                Value better = arith::AndIOp::create(
                    b, loc, after,
                    arith::OrIOp::create(b, loc, none,
                                         ranksBefore(v, i, acc[0], acc[1])));
                return {select(better, v, acc[0]), select(better, i, acc[1])};
              });
          Value at = add(mul(r, idx(k)), j);
          storeF(best[0], vf, at);
          storeI64(indices,
                   arith::IndexCastOp::create(b, loc, b.getI64Type(), best[1]),
                   inf, at);
          return best;
        });
  });
  return success();
}

LogicalResult StepEmitter::emitTranspose(moe::TransposeOp o) {
  const Buffer &x = bufferOf(o.getX()), &out = bufferOf(o.getResult());
  ArrayRef<int64_t> perm = o.getPermutation();
  Value xf = flat(x), of = flat(out);
  int64_t rank = out.type.getRank();
  std::function<void(int64_t, Value, Value)> nest = [&](int64_t d, Value dst,
                                                        Value src) {
    if (d == rank) {
      storeF(loadF(xf, src), of, dst);
      return;
    }
    Value size = dimSize(out, d);
    loop(idx(0), size, [&](Value i) {
      nest(d + 1, add(mul(dst, size), i),
           add(src, mul(i, idx(stride(x, perm[d])))));
    });
  };
  nest(0, idx(0), idx(0));
  return success();
}

LogicalResult StepEmitter::emitBatchMatmul(moe::BatchMatmulOp o) {
  const Buffer &l = bufferOf(o.getLhs()), &r = bufferOf(o.getRhs()),
               &out = bufferOf(o.getResult());
  if (failed(checkFloat(o.getLhs(), "lhs")) ||
      failed(checkFloat(o.getRhs(), "rhs")))
    return failure();
  int64_t rank = l.type.getRank();
  int64_t m = l.type.getDimSize(rank - 2), k = l.type.getDimSize(rank - 1);
  int64_t n = r.type.getDimSize(rank - 1);
  Value lf = flat(l), rf = flat(r), of = flat(out);
  Value batches = divu(numElements(l), idx(m * k));
  loop(idx(0), batches, [&](Value bi) {
    loop(idx(0), idx(m), [&](Value i) {
      Value lRow = mul(add(mul(bi, idx(m)), i), idx(k));
      loop(idx(0), idx(n), [&](Value j) {
        Value acc = loopCarry(
            idx(0), idx(k), ValueRange{f32(0.0)},
            [&](Value p, ValueRange a) -> SmallVector<Value> {
              Value rAt = add(mul(add(mul(bi, idx(k)), p), idx(n)), j);
              return {
                  addf(a[0], mulf(loadF(lf, add(lRow, p)), loadF(rf, rAt)))};
            })[0];
        storeF(acc, of, add(mul(add(mul(bi, idx(m)), i), idx(n)), j));
      });
    });
  });
  return success();
}

LogicalResult StepEmitter::emitGatherElements(moe::GatherElementsOp o) {
  const Buffer &x = bufferOf(o.getX()), &indices = bufferOf(o.getIndices()),
               &out = bufferOf(o.getResult());
  int64_t dim = o.getDim();
  Value xf = flat(x), inf = flatAny(indices), of = flat(out);
  elementNest(indices, x, dim, [&](Value i, Value base) {
    Value at = elementAt(x, dim, base, loadI64(indices, inf, i));
    storeF(loadF(xf, at), of, i);
  });
  return success();
}

LogicalResult StepEmitter::emitScatterElements(moe::ScatterElementsOp o) {
  const Buffer &x = bufferOf(o.getX()), &indices = bufferOf(o.getIndices()),
               &updates = bufferOf(o.getUpdates()),
               &out = bufferOf(o.getResult());
  int64_t dim = o.getDim();
  Value xf = flat(x), inf = flatAny(indices), uf = flat(updates),
        of = flat(out);
  loop(idx(0), numElements(x), [&](Value i) { storeF(loadF(xf, i), of, i); });
  // In index order, so the last update of an element wins.
  elementNest(indices, x, dim, [&](Value i, Value base) {
    Value at = elementAt(x, dim, base, loadI64(indices, inf, i));
    storeF(loadF(uf, i), of, at);
  });
  return success();
}

LogicalResult StepEmitter::emitOneHot(moe::OneHotOp o) {
  const Buffer &indices = bufferOf(o.getIndices()),
               &out = bufferOf(o.getResult());
  int64_t depth = out.type.getShape().back();
  Value inf = flatAny(indices), of = flat(out);
  Value on = f32(o.getOnValue().convertToDouble());
  Value off = f32(o.getOffValue().convertToDouble());
  Value d64 = arith::ConstantOp::create(b, loc, b.getI64IntegerAttr(depth));
  Value zero = arith::ConstantOp::create(b, loc, b.getI64IntegerAttr(0));
  loop(idx(0), numElements(indices), [&](Value i) {
    Value at = loadI64(indices, inf, i);
    at = select(cmpi(arith::CmpIPredicate::slt, at, zero), addI64(at, d64), at);
    loop(idx(0), idx(depth), [&](Value c) {
      Value hit = cmpi(arith::CmpIPredicate::eq, at,
                       arith::IndexCastOp::create(b, loc, b.getI64Type(), c));
      storeF(select(hit, on, off), of, add(mul(i, idx(depth)), c));
    });
  });
  return success();
}

//===----------------------------------------------------------------------===//
// Routing and experts
//===----------------------------------------------------------------------===//

LogicalResult StepEmitter::emitRouter(moe::RouterOp o) {
  const Buffer &x = bufferOf(o.getX()), &gate = bufferOf(o.getGate());
  moe::RoutingAttr routing = o.getRouting();
  int64_t hidden = x.type.getDimSize(1), experts = gate.type.getDimSize(0);
  int64_t k = routing.getK(), shared = int64_t(o.getSharedExperts());
  int64_t slots = k + shared;
  int64_t groups = routing.getNGroup(), keepGroups = routing.getTopkGroup();
  if (k > experts || groups <= 0 || experts % groups ||
      (groups > 1 && experts / groups < 2) || keepGroups > groups)
    return fail("unsupported routing shape");
  int64_t perGroup = experts / groups;
  bool softmax = routing.getScoring() == moe::ScoringFunc::softmax;
  bool top2 = routing.getGroupScore() == moe::GroupScore::top2_sum;
  float scaling = float(routing.getRoutedScalingFactor().convertToDouble());
  Value xf = flat(x), gf = flat(gate);
  Value biasF = o.getBias() ? flat(bufferOf(o.getBias())) : Value();
  Value wf = flat(bufferOf(o.getWeights())),
        indf = flat(bufferOf(o.getIndices()));
  auto f32Buf = [&](int64_t n) {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(entry);
    return memref::AllocaOp::create(b, loc,
                                    MemRefType::get({n}, b.getF32Type()));
  };
  Value scores = f32Buf(experts), selection = f32Buf(experts);
  Value groupScores = f32Buf(std::max<int64_t>(groups, 1));
  Value chosen;
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(entry);
    chosen = memref::AllocaOp::create(
        b, loc, MemRefType::get({std::max(experts, k)}, b.getIndexType()));
  }
  Value ninf = f32(-std::numeric_limits<double>::infinity());
  auto ld = [&](Value m, Value i) {
    return memref::LoadOp::create(b, loc, m, ValueRange{i}).getResult();
  };
  auto st = [&](Value v, Value m, Value i) {
    memref::StoreOp::create(b, loc, v, m, ValueRange{i});
  };
  // Rank order: higher first, NaN last, ties to the lower index. Scanning
  // ascending, a candidate replaces the best only if it ranks strictly
  // before it.
  auto beats = [&](Value cand, Value best) {
    Value candOk = arith::XOrIOp::create(
        b, loc, isNaN(cand),
        arith::ConstantOp::create(b, loc, b.getBoolAttr(true)));
    return arith::AndIOp::create(
        b, loc, candOk,
        arith::OrIOp::create(b, loc, isNaN(best),
                             cmpf(arith::CmpFPredicate::OGT, cand, best)));
  };
  // The best entry of `values[begin, end)` not yet marked in `taken`
  // (1.0 marks), as (index, value).
  auto argBest = [&](Value values, Value begin, Value end,
                     Value taken) -> SmallVector<Value> {
    return loopCarry(
        begin, end, ValueRange{idx(-1), f32(0.0)},
        [&](Value e, ValueRange acc) -> SmallVector<Value> {
          Value v = ld(values, e);
          Value free = cmpf(arith::CmpFPredicate::OEQ, ld(taken, e), f32(0.0));
          Value none = cmpi(arith::CmpIPredicate::eq, acc[0], idx(-1));
          Value better = arith::AndIOp::create(
              b, loc, free,
              arith::OrIOp::create(b, loc, none, beats(v, acc[1])));
          return {select(better, e, acc[0]), select(better, v, acc[1])};
        });
  };
  Value taken = f32Buf(experts);
  Value groupTaken = f32Buf(std::max<int64_t>(groups, 1));
  loop(idx(0), leadingRows(x), [&](Value t) {
    Value base = mul(t, idx(hidden));
    // §3.1-2: f32 logits in k order, then scores.
    loop(idx(0), idx(experts), [&](Value e) {
      Value gBase = mul(e, idx(hidden));
      Value logit =
          loopCarry(idx(0), idx(hidden), ValueRange{f32(0.0)},
                    [&](Value i, ValueRange a) -> SmallVector<Value> {
                      return {addf(a[0], mulf(loadF(xf, add(base, i)),
                                              loadF(gf, add(gBase, i))))};
                    })[0];
      st(logit, scores, e);
    });
    if (softmax) {
      Value max = loopCarry(
          idx(0), idx(experts), ValueRange{ninf},
          [&](Value e, ValueRange a) -> SmallVector<Value> {
            Value l = ld(scores, e);
            return {select(cmpf(arith::CmpFPredicate::OLT, a[0], l), l, a[0])};
          })[0];
      Value sum = loopCarry(idx(0), idx(experts), ValueRange{f32(0.0)},
                            [&](Value e, ValueRange a) -> SmallVector<Value> {
                              Value s = exp(subf(ld(scores, e), max));
                              st(s, scores, e);
                              return {addf(a[0], s)};
                            })[0];
      loop(idx(0), idx(experts),
           [&](Value e) { st(divf(ld(scores, e), sum), scores, e); });
    } else {
      loop(idx(0), idx(experts),
           [&](Value e) { st(sigmoid(ld(scores, e)), scores, e); });
    }
    // §3.3: the bias only steers selection.
    loop(idx(0), idx(experts), [&](Value e) {
      Value s = ld(scores, e);
      if (biasF)
        s = addf(s, loadF(biasF, e));
      st(s, selection, e);
      st(f32(0.0), taken, e);
    });
    // §3.4: keep the best `topk_group` groups, mask the rest with -inf.
    if (groups > 1) {
      loop(idx(0), idx(groups), [&](Value g) {
        Value begin = mul(g, idx(perGroup)), end = add(begin, idx(perGroup));
        SmallVector<Value> first = argBest(selection, begin, end, taken);
        st(f32(1.0), taken, first[0]);
        SmallVector<Value> second = argBest(selection, begin, end, taken);
        st(f32(0.0), taken, first[0]);
        st(top2 ? addf(first[1], second[1]) : first[1], groupScores, g);
        st(f32(0.0), groupTaken, g);
      });
      loop(idx(0), idx(keepGroups), [&](Value) {
        SmallVector<Value> best =
            argBest(groupScores, idx(0), idx(groups), groupTaken);
        st(f32(1.0), groupTaken, best[0]);
      });
      loop(idx(0), idx(groups), [&](Value g) {
        Value masked =
            cmpf(arith::CmpFPredicate::OEQ, ld(groupTaken, g), f32(0.0));
        loop(mul(g, idx(perGroup)), mul(add(g, idx(1)), idx(perGroup)),
             [&](Value e) {
               st(select(masked, ninf, ld(selection, e)), selection, e);
             });
      });
    }
    // §3.5-6: top-k, then the unbiased scores, renormalised and scaled.
    loop(idx(0), idx(k), [&](Value j) {
      SmallVector<Value> best = argBest(selection, idx(0), idx(experts), taken);
      st(f32(1.0), taken, best[0]);
      st(best[0], chosen, j);
    });
    Value sum = loopCarry(idx(0), idx(k), ValueRange{f32(0.0)},
                          [&](Value j, ValueRange a) -> SmallVector<Value> {
                            return {addf(a[0], ld(scores, ld(chosen, j)))};
                          })[0];
    Value outBase = mul(t, idx(slots));
    loop(idx(0), idx(k), [&](Value j) {
      Value e = ld(chosen, j);
      Value w = ld(scores, e);
      if (routing.getNormTopkProb())
        w = divf(w, addf(sum, f32(1e-20)));
      st(mulf(w, f32(scaling)), wf, add(outBase, j));
      st(toI32(e), indf, add(outBase, j));
    });
    // Folded shared experts: indices E..E+m-1 with weight 1.
    for (int64_t j = k; j < slots; ++j) {
      st(f32(1.0), wf, add(outBase, idx(j)));
      st(i32(experts + (j - k)), indf, add(outBase, idx(j)));
    }
  });
  return success();
}

LogicalResult StepEmitter::emitDispatch(moe::DispatchOp o) {
  const Buffer &x = bufferOf(o.getX()), &indices = bufferOf(o.getIndices());
  const Buffer &rows = bufferOf(o.getRows()),
               &offsets = bufferOf(o.getOffsets()),
               &positions = bufferOf(o.getPositions());
  int64_t hidden = x.type.getDimSize(1), k = indices.type.getDimSize(1);
  int64_t experts = offsets.type.getDimSize(0) - 1;
  Value xf = flat(x), idxf = flat(indices), rf = flat(rows), of = flat(offsets),
        pf = flat(positions);
  Value next;
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(entry);
    next = memref::AllocaOp::create(
        b, loc,
        MemRefType::get({std::max<int64_t>(experts, 1)}, b.getIndexType()));
  }
  Value pairs = mul(leadingRows(x), idx(k));
  // Out-of-range experts are clamped, so that nothing is written out of
  // bounds (the router never produces them).
  auto expertOf = [&](Value i) {
    Value e = memref::LoadOp::create(b, loc, idxf, ValueRange{i});
    Value ei = arith::IndexCastOp::create(b, loc, b.getIndexType(), e);
    Value inRange = cmpi(arith::CmpIPredicate::ult, ei, idx(experts));
    return select(inRange, ei, idx(experts - 1));
  };
  loop(idx(0), idx(experts), [&](Value e) {
    memref::StoreOp::create(b, loc, idx(0), next, ValueRange{e});
  });
  loop(idx(0), pairs, [&](Value i) {
    Value e = expertOf(i);
    Value c = memref::LoadOp::create(b, loc, next, ValueRange{e});
    memref::StoreOp::create(b, loc, add(c, idx(1)), next, ValueRange{e});
  });
  // Offsets are the prefix sums; `next` becomes each expert's next row.
  Value total = loopCarry(
      idx(0), idx(experts), ValueRange{idx(0)},
      [&](Value e, ValueRange a) -> SmallVector<Value> {
        Value c = memref::LoadOp::create(b, loc, next, ValueRange{e});
        memref::StoreOp::create(b, loc, toI32(a[0]), of, ValueRange{e});
        memref::StoreOp::create(b, loc, a[0], next, ValueRange{e});
        return {add(a[0], c)};
      })[0];
  memref::StoreOp::create(b, loc, toI32(total), of, ValueRange{idx(experts)});
  // Stable in token order: (token, slot) pairs token-major.
  loop(idx(0), pairs, [&](Value i) {
    Value e = expertOf(i);
    Value row = memref::LoadOp::create(b, loc, next, ValueRange{e});
    memref::StoreOp::create(b, loc, add(row, idx(1)), next, ValueRange{e});
    memref::StoreOp::create(b, loc, toI32(row), pf, ValueRange{i});
    Value src = mul(divu(i, idx(k)), idx(hidden));
    Value dst = mul(row, idx(hidden));
    loop(idx(0), idx(hidden),
         [&](Value h) { storeF(loadF(xf, add(src, h)), rf, add(dst, h)); });
  });
  return success();
}

LogicalResult StepEmitter::emitCombine(moe::CombineOp o) {
  const Buffer &rows = bufferOf(o.getRows()),
               &positions = bufferOf(o.getPositions()),
               &weights = bufferOf(o.getWeights()),
               &out = bufferOf(o.getResult());
  int64_t k = weights.type.getDimSize(1), hidden = rows.type.getDimSize(1);
  Value rf = flat(rows), pf = flat(positions), wf = flat(weights),
        of = flat(out);
  Value residual = o.getResidual() ? flat(bufferOf(o.getResidual())) : Value();
  Value rowCount = leadingRows(rows);
  loop(idx(0), leadingRows(out), [&](Value t) {
    loop(idx(0), idx(hidden), [&](Value h) {
      // Slot order from zero, then the residual, as the interpreter sums.
      Value acc = loopCarry(
          idx(0), idx(k), ValueRange{f32(0.0)},
          [&](Value j, ValueRange a) -> SmallVector<Value> {
            Value slot = add(mul(t, idx(k)), j);
            Value row = loadIndex(pf, slot);
            Value valid = cmpi(arith::CmpIPredicate::ult, row, rowCount);
            row = select(valid, row, idx(0));
            Value v =
                mulf(loadF(wf, slot), loadF(rf, add(mul(row, idx(hidden)), h)));
            return {addf(a[0], select(valid, v, f32(0.0)))};
          })[0];
      Value i = add(mul(t, idx(hidden)), h);
      if (residual)
        acc = addf(acc, loadF(residual, i));
      storeF(acc, of, i);
    });
  });
  return success();
}

//===----------------------------------------------------------------------===//
// moe.dequantize
//===----------------------------------------------------------------------===//

LogicalResult StepEmitter::emitDequantize(moe::DequantizeOp o) {
  const Buffer &x = bufferOf(o.getX()), &out = bufferOf(o.getResult());
  BlockScaleAttr scheme = o.getScheme();
  if (scheme.getPlacement() != moe::ScalePlacement::row_major)
    return fail("only row-major block scales are supported");
  if (scheme.isInteger())
    return fail("integer codes (u8, u4) are dequantized when the artifact "
                "is written (weights only), not by a kernel");
  auto [batches, rows, cols] = matrixOf(x);
  if (cols < 0)
    return fail("cannot dequantize a 1-d dynamic tensor");
  int64_t br = scheme.getBlock()[0], bc = scheme.getBlock()[1];
  int64_t blockCols = (cols + bc - 1) / bc;
  Value blockRows = divu(add(rows, idx(br - 1)), idx(br));
  Value xf = flat(x), sf = flat(bufferOf(o.getScale())), of = flat(out);
  loop(idx(0), batches, [&](Value bi) {
    loop(idx(0), rows, [&](Value r) {
      Value scaleRow =
          mul(add(mul(bi, blockRows), divu(r, idx(br))), idx(blockCols));
      loop(idx(0), idx(cols), [&](Value c) {
        Value i = add(mul(add(mul(bi, rows), r), idx(cols)), c);
        Value s = loadF(sf, add(scaleRow, divu(c, idx(bc))));
        storeF(mulf(loadF(xf, i), s), of, i);
      });
    });
  });
  return success();
}

//===----------------------------------------------------------------------===//
// Conversion patterns
//===----------------------------------------------------------------------===//

/// What the step patterns share while one planned function is converted:
/// the module the kernels go to, its GEMM helpers (built once per shape),
/// and the steps whose kernel exists, which makes their op legal.
struct CpuKernelState {
  ModuleOp kernels;
  llvm::StringMap<func::FuncOp> gemms;
  llvm::DenseSet<int64_t> lowered;
  /// The step ops whose builder failed, with a diagnostic already emitted.
  llvm::DenseSet<Operation *> reported;
};

/// Lowers a step op `OpT` to its kernel `moec_step_<i>` with the builder
/// `Emit`. The planned function stays as it is (the artifact emitter reads
/// it after the conversion): the pattern records the kernel in the state,
/// which makes the op legal, and reports the op as updated in place.
template <typename OpT, LogicalResult (StepEmitter::*Emit)(OpT)>
struct StepToCpuPattern : OpConversionPattern<OpT> {
  StepToCpuPattern(MLIRContext *ctx, const CpuTargetInfo &target,
                   CpuKernelState &state)
      : OpConversionPattern<OpT>(ctx),
        kernelOptions(CpuKernelOptions::forTarget(target)), state(state) {}

  LogicalResult
  matchAndRewrite(OpT op, typename OpConversionPattern<OpT>::OpAdaptor,
                  ConversionPatternRewriter &rewriter) const override {
    std::optional<int64_t> step = getStepIndex(op);
    if (!step)
      return rewriter.notifyMatchFailure(op, "not a planned step");
    StepEmitter emitter(state.kernels, op, *step, kernelOptions, state.gemms);
    if (failed(emitter.emit([&](StepEmitter &e) { return (e.*Emit)(op); }))) {
      state.reported.insert(op);
      return failure();
    }
    state.lowered.insert(*step);
    rewriter.modifyOpInPlace(op, [] {});
    return success();
  }

  CpuKernelOptions kernelOptions;
  CpuKernelState &state;
};

/// The op that the builder type `LogicalResult (StepEmitter::*)(OpT)` lowers.
template <typename Builder> struct BuiltOp;
template <typename OpT> struct BuiltOp<LogicalResult (StepEmitter::*)(OpT)> {
  using type = OpT;
};

/// Adds one `StepToCpuPattern` per builder in `Emits`.
template <auto... Emits>
void addStepPatterns(RewritePatternSet &patterns, const CpuTargetInfo &target,
                     CpuKernelState &state) {
  (patterns
       .add<StepToCpuPattern<typename BuiltOp<decltype(Emits)>::type, Emits>>(
           patterns.getContext(), target, state),
   ...);
}

/// `moe.embed`.
void populateEmbeddingToCpuPatterns(RewritePatternSet &patterns,
                                    const CpuTargetInfo &target,
                                    CpuKernelState &state) {
  addStepPatterns<&StepEmitter::emitEmbed>(patterns, target, state);
}

/// The dense GEMMs: `moe.matmul`, `moe.fp8_matmul`, `moe.batch_matmul`.
void populateGemmToCpuPatterns(RewritePatternSet &patterns,
                               const CpuTargetInfo &target,
                               CpuKernelState &state) {
  addStepPatterns<&StepEmitter::emitMatmul, &StepEmitter::emitFp8Matmul,
                  &StepEmitter::emitBatchMatmul>(patterns, target, state);
}

/// The per-expert GEMMs: `moe.grouped_matmul`, `moe.fp8_grouped_matmul`.
void populateGroupedGemmToCpuPatterns(RewritePatternSet &patterns,
                                      const CpuTargetInfo &target,
                                      CpuKernelState &state) {
  addStepPatterns<&StepEmitter::emitGroupedMatmul,
                  &StepEmitter::emitFp8GroupedMatmul>(patterns, target, state);
}

/// Routing: `moe.router`, `moe.sigmoid_gate`, `moe.topk`.
void populateRoutingToCpuPatterns(RewritePatternSet &patterns,
                                  const CpuTargetInfo &target,
                                  CpuKernelState &state) {
  addStepPatterns<&StepEmitter::emitRouter, &StepEmitter::emitSigmoidGate,
                  &StepEmitter::emitTopK>(patterns, target, state);
}

/// `moe.dispatch` and `moe.combine`.
void populateDispatchCombineToCpuPatterns(RewritePatternSet &patterns,
                                          const CpuTargetInfo &target,
                                          CpuKernelState &state) {
  addStepPatterns<&StepEmitter::emitDispatch, &StepEmitter::emitCombine>(
      patterns, target, state);
}

/// `moe.rms_norm` and `moe.add_rms_norm` (with their fused quantization).
void populateNormToCpuPatterns(RewritePatternSet &patterns,
                               const CpuTargetInfo &target,
                               CpuKernelState &state) {
  addStepPatterns<&StepEmitter::emitRmsNorm, &StepEmitter::emitAddRmsNorm>(
      patterns, target, state);
}

/// Elementwise ops: `moe.add`, `moe.mul`, `moe.silu_mul`, `moe.unary`,
/// `moe.binary`, `moe.compare`, `moe.select`, `moe.cast`.
void populateElementwiseToCpuPatterns(RewritePatternSet &patterns,
                                      const CpuTargetInfo &target,
                                      CpuKernelState &state) {
  addStepPatterns<&StepEmitter::emitAdd, &StepEmitter::emitMul,
                  &StepEmitter::emitSiluMul, &StepEmitter::emitUnary,
                  &StepEmitter::emitBinary, &StepEmitter::emitCompare,
                  &StepEmitter::emitSelect, &StepEmitter::emitCast>(
      patterns, target, state);
}

/// Reductions: `moe.softmax`, `moe.reduce`.
void populateReductionToCpuPatterns(RewritePatternSet &patterns,
                                    const CpuTargetInfo &target,
                                    CpuKernelState &state) {
  addStepPatterns<&StepEmitter::emitSoftmax, &StepEmitter::emitReduce>(
      patterns, target, state);
}

/// Data movement: `moe.slice`, `moe.concat`, `moe.expand`, `moe.transpose`,
/// `moe.gather_elements`, `moe.scatter_elements`, `moe.one_hot`,
/// `moe.select_rows`.
void populateMovementToCpuPatterns(RewritePatternSet &patterns,
                                   const CpuTargetInfo &target,
                                   CpuKernelState &state) {
  addStepPatterns<&StepEmitter::emitSelectRows, &StepEmitter::emitSlice,
                  &StepEmitter::emitConcat, &StepEmitter::emitExpand,
                  &StepEmitter::emitTranspose, &StepEmitter::emitGatherElements,
                  &StepEmitter::emitScatterElements, &StepEmitter::emitOneHot>(
      patterns, target, state);
}

/// `moe.rope`.
void populateRopeToCpuPatterns(RewritePatternSet &patterns,
                               const CpuTargetInfo &target,
                               CpuKernelState &state) {
  addStepPatterns<&StepEmitter::emitRope>(patterns, target, state);
}

/// `moe.attention`, `moe.paged_attention` and `moe.paged_mla_attention`.
void populateAttentionToCpuPatterns(RewritePatternSet &patterns,
                                    const CpuTargetInfo &target,
                                    CpuKernelState &state) {
  addStepPatterns<&StepEmitter::emitAttention>(patterns, target, state);
  addStepPatterns<&StepEmitter::emitPagedAttention>(patterns, target, state);
  addStepPatterns<&StepEmitter::emitPagedMlaAttention>(patterns, target, state);
}

/// `moe.quantize` and `moe.dequantize`.
void populateQuantizeToCpuPatterns(RewritePatternSet &patterns,
                                   const CpuTargetInfo &target,
                                   CpuKernelState &state) {
  addStepPatterns<&StepEmitter::emitQuantize, &StepEmitter::emitDequantize>(
      patterns, target, state);
}

/// Every step pattern of the cpu target.
void populatePlannedToCpuPatterns(RewritePatternSet &patterns,
                                  const CpuTargetInfo &target,
                                  CpuKernelState &state) {
  populateEmbeddingToCpuPatterns(patterns, target, state);
  populateGemmToCpuPatterns(patterns, target, state);
  populateGroupedGemmToCpuPatterns(patterns, target, state);
  populateRoutingToCpuPatterns(patterns, target, state);
  populateDispatchCombineToCpuPatterns(patterns, target, state);
  populateNormToCpuPatterns(patterns, target, state);
  populateElementwiseToCpuPatterns(patterns, target, state);
  populateReductionToCpuPatterns(patterns, target, state);
  populateMovementToCpuPatterns(patterns, target, state);
  populateRopeToCpuPatterns(patterns, target, state);
  populateAttentionToCpuPatterns(patterns, target, state);
  populateQuantizeToCpuPatterns(patterns, target, state);
}

/// The planned function of `module`: `@forward`, else its only function.
func::FuncOp plannedFunction(ModuleOp module) {
  if (auto forward = module.lookupSymbol<func::FuncOp>("forward"))
    return forward;
  auto funcs = module.getOps<func::FuncOp>();
  if (std::distance(funcs.begin(), funcs.end()) == 1)
    return *funcs.begin();
  return {};
}

} // namespace

FailureOr<OwningOpRef<ModuleOp>>
mlir::moec::cpu::buildPlannedKernels(ModuleOp planned,
                                     const CpuTargetOptions &options) {
  MLIRContext *ctx = planned.getContext();
  loadCpuKernelDialects(*ctx);
  // The runtime services (threads) are reached through LLVM pointers.
  ctx->loadDialect<LLVM::LLVMDialect>();
  func::FuncOp func = plannedFunction(planned);
  if (!func)
    return planned.emitError("expected a `forward` function to compile");
  llvm::Expected<CpuTargetInfo> target = getCpuTargetInfo(options);
  if (!target)
    return planned.emitError("cannot target the CPU: ")
           << llvm::toString(target.takeError());
  llvm::DenseSet<int64_t> seen;
  for (Operation &op : func.getBody().front())
    if (std::optional<int64_t> step = getStepIndex(&op))
      if (!seen.insert(*step).second)
        return op.emitOpError("repeats step ") << *step;

  OwningOpRef<ModuleOp> kernels = ModuleOp::create(planned.getLoc());
  CpuKernelState state;
  state.kernels = *kernels;
  RewritePatternSet patterns(ctx);
  populatePlannedToCpuPatterns(patterns, *target, state);
  // A step op is legal once its kernel exists; everything else (the
  // function, its return, ops without a step) is legal as it is.
  ConversionTarget legality(*ctx);
  legality.markUnknownOpDynamicallyLegal([&](Operation *op) -> bool {
    std::optional<int64_t> step = getStepIndex(op);
    return !step || state.lowered.contains(*step);
  });
  // The conversion stops at the first step op it cannot legalize and says
  // only that it failed; the step's own diagnostic (from its builder, or
  // below when no pattern lowers the op) says why, so that one is kept.
  LogicalResult converted = failure();
  {
    ScopedDiagnosticHandler quiet(ctx, [](Diagnostic &diag) {
      return success(
          StringRef(diag.str()).starts_with("failed to legalize operation"));
    });
    converted = applyPartialConversion(func, legality, std::move(patterns));
  }
  if (succeeded(converted))
    return kernels;
  for (Operation &op : func.getBody().front()) {
    std::optional<int64_t> step = getStepIndex(&op);
    if (!step || state.lowered.contains(*step))
      continue;
    if (!state.reported.contains(&op))
      (void)stepError(&op, *step, "the op has no cpu kernel (yet)");
    break;
  }
  return failure();
}

LogicalResult
mlir::moec::cpu::buildCpuSharedObject(ModuleOp planned, std::string &soBytes,
                                      const CpuTargetOptions &options) {
  FailureOr<OwningOpRef<ModuleOp>> kernels =
      buildPlannedKernels(planned, options);
  if (failed(kernels))
    return failure();
  FailureOr<std::string> bytes = emitSharedObject(**kernels, options);
  if (failed(bytes))
    return failure();
  soBytes = std::move(*bytes);
  return success();
}

namespace {

/// `--moec-convert-planned-to-cpu`: `buildPlannedKernels`, its module
/// appended to the input as `module @cpu_kernels`.
struct ConvertPlannedToCpuPass
    : mlir::moec::cpu::impl::ConvertPlannedToCpuPassBase<
          ConvertPlannedToCpuPass> {
  using ConvertPlannedToCpuPassBase::ConvertPlannedToCpuPassBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    CpuTargetOptions options;
    options.cpu = cpu;
    FailureOr<OwningOpRef<ModuleOp>> kernels =
        buildPlannedKernels(module, options);
    if (failed(kernels))
      return signalPassFailure();
    ModuleOp nested = kernels->release();
    nested.setSymName("cpu_kernels");
    module.getBody()->push_back(nested);
  }
};

} // namespace
