//===- Kernels.cpp - CPU kernel builders ------------------------*- C++ -*-===//
//
// Emits the `cpu` target's hot kernels as `func.func`s on memrefs. GEMMs are
// written directly in scf + vector: weight panels (and FP8 activation
// blocks) are dequantized once into f32 stack buffers, then a register-
// blocked micro-kernel accumulates `tileRows × tileCols` dot products in
// vector registers along K. The non-GEMM examples use linalg or vector.
//
//===----------------------------------------------------------------------===//

#include "codegen/cpu/Kernels.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/SymbolTable.h"

#include <algorithm>
#include <limits>

using namespace mlir;
using namespace mlir::moec::cpu;

CpuKernelOptions CpuKernelOptions::forTarget(const CpuTargetInfo &target) {
  CpuKernelOptions options;
  options.lanes = std::max<int64_t>(target.f32Lanes(), 4);
  // 6×4 accumulators plus the operands fit 32 registers (measured best of
  // 4×4, 5×4, 6×4, 4×6, 8×3 on Zen 4); 3×3 fit 16.
  bool large = target.vectorRegisters >= 32;
  options.tileRows = large ? 6 : 3;
  options.tileCols = large ? 4 : 3;
  options.f16Decode = target.hasF16Convert;
  return options;
}

void mlir::moec::cpu::loadCpuKernelDialects(MLIRContext &ctx) {
  ctx.loadDialect<arith::ArithDialect, func::FuncDialect, linalg::LinalgDialect,
                  math::MathDialect, memref::MemRefDialect, scf::SCFDialect,
                  vector::VectorDialect>();
}

namespace {

//===----------------------------------------------------------------------===//
// Shared helpers
//===----------------------------------------------------------------------===//

/// Builds loops and constants at one builder position.
class EmitterBase {
public:
  EmitterBase(OpBuilder &b, Location loc) : b(b), loc(loc) {}

  Value index(int64_t value) {
    return arith::ConstantIndexOp::create(b, loc, value);
  }
  Value add(Value lhs, Value rhs) {
    return arith::AddIOp::create(b, loc, lhs, rhs);
  }
  Value add(Value lhs, int64_t rhs) {
    return rhs == 0 ? lhs : add(lhs, index(rhs));
  }

  /// A constant of `type` (scalar, or a splat vector) with value `value`.
  Value constant(Type type, double value) {
    Type element = getElementTypeOrSelf(type);
    TypedAttr attr;
    if (auto floatType = dyn_cast<FloatType>(element))
      attr = b.getFloatAttr(floatType, value);
    else
      attr = b.getIntegerAttr(element, static_cast<int64_t>(value));
    if (auto vector = dyn_cast<VectorType>(type))
      attr = SplatElementsAttr::get(vector, attr);
    return arith::ConstantOp::create(b, loc, attr);
  }

  /// Emits `scf.for iv = lb to ub step step` and builds its body with
  /// `body(iv)` at `b`.
  void forLoop(Value lb, Value ub, Value step, function_ref<void(Value)> body) {
    auto loop = scf::ForOp::create(b, loc, lb, ub, step);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPoint(loop.getBody()->getTerminator());
    body(loop.getInductionVar());
  }

  /// Emits `scf.for` carrying `init`; `body(iv, carried)` returns the values
  /// yielded. Returns the loop's results.
  SmallVector<Value>
  forLoop(Value lb, Value ub, Value step, ValueRange init,
          function_ref<SmallVector<Value>(Value, ValueRange)> body) {
    auto loop = scf::ForOp::create(b, loc, lb, ub, step, init);
    OpBuilder::InsertionGuard guard(b);
    Block *block = loop.getBody();
    if (!block->empty() && block->back().hasTrait<OpTrait::IsTerminator>())
      block->back().erase();
    b.setInsertionPointToEnd(block);
    SmallVector<Value> results =
        body(loop.getInductionVar(), loop.getRegionIterArgs());
    scf::YieldOp::create(b, loc, results);
    return loop.getResults();
  }

protected:
  OpBuilder &b;
  Location loc;
};

/// Creates `name(argTypes) -> ()` at the end of `module` and positions `b`
/// at the start of its body. Fails on an empty or taken name.
FailureOr<func::FuncOp> createKernelFunc(ModuleOp module, OpBuilder &b,
                                         StringRef name,
                                         ArrayRef<Type> argTypes) {
  if (name.empty())
    return module.emitError("expected a non-empty CPU kernel name");
  if (SymbolTable::lookupSymbolIn(module, name))
    return module.emitError("CPU kernel name `")
           << name << "` is already a symbol of the module";
  b.setInsertionPointToEnd(module.getBody());
  auto func = func::FuncOp::create(b, module.getLoc(), name,
                                   b.getFunctionType(argTypes, {}));
  Block *entry = func.addEntryBlock();
  b.setInsertionPointToStart(entry);
  func::ReturnOp::create(b, module.getLoc());
  b.setInsertionPointToStart(entry);
  return func;
}

//===----------------------------------------------------------------------===//
// GEMM: y = x · wᵀ
//===----------------------------------------------------------------------===//

/// Emits the body of one GEMM kernel. Loop nest (`L` lanes, `MR × NR`
/// micro-tile):
///
///   for each block of token rows (all rows unless x is FP8):
///     [FP8 x: dequantize the block's rows into xPack]
///     for n0 in 0..N step NR (then the N % NR tail panel):
///       if fewer rows than MR: micro-tiles 1×NR reading w directly
///       else: dequantize (or copy) rows n0..n0+NR of w into wPack,
///             for t in rows step MR (then single rows): micro-tile
///
/// The micro-tile keeps `MR × NR` vectors of partial dot products along K
/// in registers (the last `K % L` columns through masked loads, or as
/// scalars where it decodes weights itself) and reduces each horizontally
/// into one element of `y`. The stack holds `NR × K` f32 for the weight
/// panel plus, for FP8 activations, about `packedActivationBytes`.
class GemmEmitter : public EmitterBase {
public:
  GemmEmitter(OpBuilder &b, Location loc, const GemmKernelSpec &spec,
              const CpuKernelOptions &options)
      : EmitterBase(b, loc), spec(spec), f16Decode(options.f16Decode),
        lanes(options.lanes), tileRows(options.tileRows),
        tileCols(options.tileCols), n(spec.n), k(spec.k),
        block(spec.scaleBlock) {
    f32 = b.getF32Type();
    f32Vector = VectorType::get({lanes}, f32);
    // Enough whole micro-tiles of FP8 activation rows to fill the budget.
    int64_t rows = options.packedActivationBytes / (4 * k);
    activationBlock = std::max(tileRows, rows / tileRows * tileRows);
  }

  /// The kernel's argument types, in ABI order.
  SmallVector<Type> argumentTypes() {
    SmallVector<Type> types;
    int64_t blocksK = ceilDiv(k, block);
    int64_t dyn = ShapedType::kDynamic;
    types.push_back(
        MemRefType::get({dyn, k}, storageType(spec.activationType)));
    if (quantizedActivations())
      types.push_back(MemRefType::get({dyn, blocksK}, f32));
    types.push_back(MemRefType::get({n, k}, storageType(spec.weightType)));
    if (quantizedWeights())
      types.push_back(MemRefType::get({ceilDiv(n, block), blocksK}, f32));
    types.push_back(MemRefType::get({dyn, n}, f32));
    if (spec.columnRange) {
      types.push_back(b.getIndexType());
      types.push_back(b.getIndexType());
    }
    return types;
  }

  /// Emits the body at `b`, which is at the start of `func`'s entry block.
  void emitBody(func::FuncOp func) {
    unsigned arg = 0;
    x = func.getArgument(arg++);
    if (quantizedActivations())
      xScale = func.getArgument(arg++);
    w = func.getArgument(arg++);
    if (quantizedWeights())
      wScale = func.getArgument(arg++);
    y = func.getArgument(arg++);
    if (spec.columnRange) {
      columnBegin = func.getArgument(arg++);
      columnEnd = func.getArgument(arg++);
    }

    // Stack buffers live in the entry block, allocated once per call. f32
    // weights are packed too: a contiguous, aligned panel that stays in
    // cache is faster to stream than rows a whole matrix row apart.
    IntegerAttr alignment = b.getI64IntegerAttr(64);
    wPack = memref::AllocaOp::create(
        b, loc, MemRefType::get({tileCols, k}, f32), alignment);
    if (quantizedActivations())
      xPack = memref::AllocaOp::create(
          b, loc, MemRefType::get({activationBlock, k}, f32), alignment);

    Value tokens = memref::DimOp::create(b, loc, x, 0);
    if (!quantizedActivations()) {
      emitPanels(x, tokens, index(0));
      return;
    }
    forLoop(index(0), tokens, index(activationBlock), [&](Value t0) {
      Value remaining = arith::SubIOp::create(b, loc, tokens, t0);
      Value rows =
          arith::MinSIOp::create(b, loc, remaining, index(activationBlock));
      forLoop(index(0), rows, index(1), [&](Value r) {
        Value token = add(t0, r);
        packRow(xPack, r, x, token, spec.activationType, xScale, token);
      });
      emitPanels(xPack, rows, t0);
    });
  }

private:
  static int64_t ceilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
  bool quantizedActivations() const {
    return spec.activationType == GemmElementType::F8E4M3FN;
  }
  bool quantizedWeights() const {
    return spec.weightType == GemmElementType::F8E4M3FN;
  }
  Type storageType(GemmElementType type) {
    switch (type) {
    case GemmElementType::F32:
      return f32;
    case GemmElementType::BF16:
      return b.getBF16Type();
    case GemmElementType::F8E4M3FN:
      return b.getType<Float8E4M3FNType>();
    }
    llvm_unreachable("unknown GEMM element type");
  }
  /// `type` with the shape of `like` (a vector) or scalar.
  Type withShapeOf(Type like, Type element) {
    if (auto vector = dyn_cast<VectorType>(like))
      return VectorType::get(vector.getShape(), element);
    return element;
  }

  //===--------------------------------------------------------------------===//
  // Dequantization
  //===--------------------------------------------------------------------===//

  /// Widens `raw` (scalar or vector of the storage type `type`) to f32.
  /// Integer code only, identical on every target (no bf16/FP8 hardware).
  Value decode(Value raw, GemmElementType type) {
    Type like = raw.getType();
    Type i32 = withShapeOf(like, b.getI32Type());
    Type f32Like = withShapeOf(like, f32);
    switch (type) {
    case GemmElementType::F32:
      return raw;
    case GemmElementType::BF16: {
      // bf16 is the upper half of an f32.
      Value bits = arith::BitcastOp::create(
          b, loc, withShapeOf(like, b.getI16Type()), raw);
      Value wide = arith::ExtUIOp::create(b, loc, i32, bits);
      Value shifted = arith::ShLIOp::create(b, loc, wide, constant(i32, 16));
      return arith::BitcastOp::create(b, loc, f32Like, shifted);
    }
    case GemmElementType::F8E4M3FN:
      return decodeE4M3FN(raw, i32, f32Like);
    }
    llvm_unreachable("unknown GEMM element type");
  }

  /// E4M3FN (bias 7, no infinities, S.1111.111 is NaN) to f32, exactly and
  /// without a branch per case: the 7 magnitude bits placed at f32 bits
  /// 20..26 read as 2^(e-127)·(1 + m/8) (e > 0) or as the f32 subnormal
  /// m·2^-129 (e = 0); one exact multiplication by 2^120 turns both into
  /// E4M3FN's 2^(e-7)·(1 + m/8) and m·2^-9. The sign goes to bit 31 and
  /// S.1111.111 becomes NaN. (The GPU's sm_80 decode is the same.) This is
  /// the GEMMs' inner loop when decoding one token: 10 vector operations
  /// per element instead of the 15 of rebiasing normals and converting
  /// subnormals separately, with the same bits.
  Value decodeE4M3FN(Value raw, Type i32, Type f32Like) {
    if (f16Decode && isa<VectorType>(raw.getType()))
      return decodeE4M3FNThroughF16(raw, f32Like);
    Type i8 = withShapeOf(raw.getType(), b.getI8Type());
    Value byte = arith::BitcastOp::create(b, loc, i8, raw);
    Value bits = arith::ExtUIOp::create(b, loc, i32, byte);
    Value magnitude = arith::AndIOp::create(b, loc, bits, constant(i32, 0x7f));
    Value sign = arith::ShLIOp::create(
        b, loc, arith::AndIOp::create(b, loc, bits, constant(i32, 0x80)),
        constant(i32, 24));
    Value placed = arith::OrIOp::create(
        b, loc, arith::ShLIOp::create(b, loc, magnitude, constant(i32, 20)),
        sign);
    Value value = arith::MulFOp::create(
        b, loc, arith::BitcastOp::create(b, loc, f32Like, placed),
        constant(f32Like, 0x1p120));
    // NaN keeps its sign, as runtime/fp8's decode does.
    Value isNaN = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq,
                                        magnitude, constant(i32, 0x7f));
    Value nanBits =
        arith::OrIOp::create(b, loc, sign, constant(i32, 0x7fc00000));
    Value result = arith::SelectOp::create(
        b, loc, isNaN, nanBits, arith::BitcastOp::create(b, loc, i32, value));
    return arith::BitcastOp::create(b, loc, f32Like, result);
  }

  /// The same through f16, whose bits S.EEEEE.MMMMMMMMMM hold E4M3FN's
  /// S.EEEE.MMM as S.0EEEE.MMM0000000: read as f16 that is the E4M3FN value
  /// times 2^-8 (bias 15 instead of 7; subnormals m·2^-17 included), which
  /// one exact multiplication by 256 undoes after the hardware widening.
  /// The bit work is on 16-bit lanes; S.1111.111 becomes the f16 NaN of
  /// that sign, which the widening and the product keep.
  Value decodeE4M3FNThroughF16(Value raw, Type f32Like) {
    Type i8 = withShapeOf(raw.getType(), b.getI8Type());
    Type i16 = withShapeOf(raw.getType(), b.getI16Type());
    Type f16Like = withShapeOf(raw.getType(), b.getF16Type());
    Value byte = arith::BitcastOp::create(b, loc, i8, raw);
    Value bits = arith::ExtUIOp::create(b, loc, i16, byte);
    Value magnitude = arith::AndIOp::create(b, loc, bits, constant(i16, 0x7f));
    Value sign = arith::ShLIOp::create(
        b, loc, arith::AndIOp::create(b, loc, bits, constant(i16, 0x80)),
        constant(i16, 8));
    Value placed = arith::OrIOp::create(
        b, loc, arith::ShLIOp::create(b, loc, magnitude, constant(i16, 7)),
        sign);
    Value isNaN = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq,
                                        magnitude, constant(i16, 0x7f));
    Value nan = arith::OrIOp::create(b, loc, sign, constant(i16, 0x7e00));
    Value half = arith::BitcastOp::create(
        b, loc, f16Like, arith::SelectOp::create(b, loc, isNaN, nan, placed));
    Value wide = arith::ExtFOp::create(b, loc, f32Like, half);
    return arith::MulFOp::create(b, loc, wide, constant(f32Like, 256.0));
  }

  /// Multiplies `value` by `scales[scaleRow, column / block]` when `scales`
  /// is set.
  Value applyScale(Value value, Value scales, Value scaleRow, Value column) {
    if (!scales)
      return value;
    Value blockIndex = arith::DivUIOp::create(b, loc, column, index(block));
    Value scale = memref::LoadOp::create(b, loc, scales,
                                         ValueRange{scaleRow, blockIndex});
    if (isa<VectorType>(value.getType()))
      scale = vector::BroadcastOp::create(b, loc, value.getType(), scale);
    return arith::MulFOp::create(b, loc, value, scale);
  }

  /// Dequantizes row `srcRow` of `src` (storage `type`, scale row
  /// `scaleRow` of `scales` if set) into row `dstRow` of the f32 `dst`.
  void packRow(Value dst, Value dstRow, Value src, Value srcRow,
               GemmElementType type, Value scales, Value scaleRow) {
    int64_t fullK = k - k % lanes;
    VectorType rawVector = VectorType::get({lanes}, storageType(type));
    if (fullK > 0)
      forLoop(index(0), index(fullK), index(lanes), [&](Value col) {
        Value raw = vector::LoadOp::create(b, loc, rawVector, src,
                                           ValueRange{srcRow, col});
        Value value = applyScale(decode(raw, type), scales, scaleRow, col);
        vector::StoreOp::create(b, loc, value, dst, ValueRange{dstRow, col});
      });
    // The last K % L columns one by one: a masked load of FP8 would need an
    // FP8 pass-through constant, which LLVM cannot represent.
    if (fullK < k)
      forLoop(index(fullK), index(k), index(1), [&](Value col) {
        Value raw =
            memref::LoadOp::create(b, loc, src, ValueRange{srcRow, col});
        Value value = applyScale(decode(raw, type), scales, scaleRow, col);
        memref::StoreOp::create(b, loc, value, dst, ValueRange{dstRow, col});
      });
  }

  //===--------------------------------------------------------------------===//
  // Loop nest
  //===--------------------------------------------------------------------===//

  /// All output panels for `rows` token rows, read from rows `0..rows` of
  /// `xRows` and written to rows `yRow0..yRow0+rows` of `y`.
  void emitPanels(Value xRows, Value rows, Value yRow0) {
    int64_t mainN = n - n % tileCols;
    if (spec.columnRange) {
      // The panels of the whole kernel that start in [begin, end).
      if (mainN > 0)
        forLoop(columnBegin,
                arith::MinUIOp::create(b, loc, columnEnd, index(mainN)),
                index(tileCols),
                [&](Value n0) { emitPanel(xRows, rows, yRow0, n0, tileCols); });
      if (mainN < n) {
        Value hasTail = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ugt,
                                              columnEnd, index(mainN));
        auto branch = scf::IfOp::create(b, loc, hasTail);
        OpBuilder::InsertionGuard guard(b);
        b.setInsertionPoint(branch.thenBlock()->getTerminator());
        emitPanel(xRows, rows, yRow0, index(mainN), n - mainN);
      }
      return;
    }
    if (mainN > 0)
      forLoop(index(0), index(mainN), index(tileCols),
              [&](Value n0) { emitPanel(xRows, rows, yRow0, n0, tileCols); });
    if (mainN < n)
      emitPanel(xRows, rows, yRow0, index(mainN), n - mainN);
  }

  /// Where a micro-tile reads weight rows `row0..row0+cols` from: the f32
  /// panel, or `w` itself, dequantized on the fly.
  struct WeightRows {
    Value base, row0;
    GemmElementType type;
    Value scales;
  };

  /// Output columns `n0..n0+cols` for all `rows`. With fewer rows than a
  /// micro-tile (decoding one token), packing would cost more than it
  /// saves: the weights are streamed and dequantized in the micro-tile.
  void emitPanel(Value xRows, Value rows, Value yRow0, Value n0, int64_t cols) {
    Value few = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, rows,
                                      index(tileRows));
    auto branch = scf::IfOp::create(b, loc, few, /*withElseRegion=*/true);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPoint(branch.thenBlock()->getTerminator());
    WeightRows direct{w, n0, spec.weightType, wScale};
    forLoop(index(0), rows, index(1), [&](Value t) {
      emitMicroTile(1, cols, xRows, t, direct, add(yRow0, t), n0);
    });

    b.setInsertionPoint(branch.elseBlock()->getTerminator());
    forLoop(index(0), index(cols), index(1), [&](Value j) {
      Value row = add(n0, j);
      Value scaleRow;
      if (wScale)
        scaleRow = arith::DivUIOp::create(b, loc, row, index(block));
      packRow(wPack, j, w, row, spec.weightType, wScale, scaleRow);
    });
    WeightRows packed{wPack, index(0), GemmElementType::F32, Value()};
    Value tail = arith::RemUIOp::create(b, loc, rows, index(tileRows));
    Value mainRows = arith::SubIOp::create(b, loc, rows, tail);
    forLoop(index(0), mainRows, index(tileRows), [&](Value t) {
      emitMicroTile(tileRows, cols, xRows, t, packed, add(yRow0, t), n0);
    });
    forLoop(mainRows, rows, index(1), [&](Value t) {
      emitMicroTile(1, cols, xRows, t, packed, add(yRow0, t), n0);
    });
  }

  /// `y[yRow+i, yCol+j] = Σ_k xRows[xRow+i, k] · W[j, k]` for `i < rows`,
  /// `j < cols`, with `W` the (dequantized) rows of `weights`.
  void emitMicroTile(int64_t rows, int64_t cols, Value xRows, Value xRow,
                     const WeightRows &weights, Value yRow, Value yCol) {
    Value zero = constant(f32Vector, 0.0);
    int64_t fullK = k - k % lanes;
    bool decoded = weights.type != GemmElementType::F32 || weights.scales;
    VectorType rawVector = VectorType::get({lanes}, storageType(weights.type));
    auto weightRow = [&](int64_t j) { return add(weights.row0, j); };
    auto scaleRow = [&](int64_t j) -> Value {
      if (!weights.scales)
        return Value();
      return arith::DivUIOp::create(b, loc, weightRow(j), index(block));
    };

    auto step = [&](Value col, ValueRange acc, Value mask) {
      auto load = [&](Value base, Value row) -> Value {
        if (mask)
          return vector::MaskedLoadOp::create(b, loc, f32Vector, base,
                                              ValueRange{row, col}, mask, zero);
        return vector::LoadOp::create(b, loc, f32Vector, base,
                                      ValueRange{row, col});
      };
      SmallVector<Value> xs, ws, next;
      for (int64_t i = 0; i < rows; ++i)
        xs.push_back(load(xRows, add(xRow, i)));
      for (int64_t j = 0; j < cols; ++j) {
        if (!decoded) {
          ws.push_back(load(weights.base, weightRow(j)));
          continue;
        }
        Value raw = vector::LoadOp::create(b, loc, rawVector, weights.base,
                                           ValueRange{weightRow(j), col});
        ws.push_back(applyScale(decode(raw, weights.type), weights.scales,
                                scaleRow(j), col));
      }
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t j = 0; j < cols; ++j)
          next.push_back(
              vector::FMAOp::create(b, loc, xs[i], ws[j], acc[i * cols + j]));
      return next;
    };

    SmallVector<Value> acc(rows * cols, zero);
    if (fullK > 0)
      acc = forLoop(index(0), index(fullK), index(lanes), acc,
                    [&](Value col, ValueRange carried) {
                      return step(col, carried, Value());
                    });
    // The last K % L columns: masked vectors of f32, or scalars when the
    // weights are decoded here (no FP8 pass-through vector in LLVM).
    SmallVector<Value> tailSums;
    if (fullK < k && !decoded) {
      Value mask = vector::CreateMaskOp::create(
          b, loc, VectorType::get({lanes}, b.getI1Type()),
          ValueRange{index(k - fullK)});
      acc = step(index(fullK), acc, mask);
    } else if (fullK < k) {
      SmallVector<Value> init(rows * cols, constant(f32, 0.0));
      tailSums = forLoop(
          index(fullK), index(k), index(1), init,
          [&](Value col, ValueRange carried) {
            SmallVector<Value> ws, next;
            for (int64_t j = 0; j < cols; ++j) {
              Value raw = memref::LoadOp::create(b, loc, weights.base,
                                                 ValueRange{weightRow(j), col});
              ws.push_back(applyScale(decode(raw, weights.type), weights.scales,
                                      scaleRow(j), col));
            }
            for (int64_t i = 0; i < rows; ++i) {
              Value xv = memref::LoadOp::create(b, loc, xRows,
                                                ValueRange{add(xRow, i), col});
              for (int64_t j = 0; j < cols; ++j)
                next.push_back(math::FmaOp::create(b, loc, xv, ws[j],
                                                   carried[i * cols + j]));
            }
            return next;
          });
    }
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j) {
        Value sum = vector::ReductionOp::create(
            b, loc, vector::CombiningKind::ADD, acc[i * cols + j], Value(),
            arith::FastMathFlags::reassoc);
        if (!tailSums.empty())
          sum = arith::AddFOp::create(b, loc, sum, tailSums[i * cols + j]);
        memref::StoreOp::create(b, loc, sum, y,
                                ValueRange{add(yRow, i), add(yCol, j)});
      }
  }

  const GemmKernelSpec &spec;
  bool f16Decode;
  int64_t lanes, tileRows, tileCols, n, k, block, activationBlock;
  Type f32;
  VectorType f32Vector;
  Value x, xScale, w, wScale, y, wPack, xPack;
  // The output column range (only with `spec.columnRange`).
  Value columnBegin, columnEnd;
};

} // namespace

FailureOr<func::FuncOp>
mlir::moec::cpu::buildGemmKernel(ModuleOp module, const GemmKernelSpec &spec,
                                 const CpuKernelOptions &options) {
  if (spec.n <= 0 || spec.k <= 0)
    return module.emitError("expected GEMM kernel `")
           << spec.name << "` to have positive N and K, but got N = " << spec.n
           << ", K = " << spec.k;
  if (spec.activationType == GemmElementType::BF16)
    return module.emitError("GEMM kernel `")
           << spec.name << "`: bf16 activations are not supported";
  if (options.lanes <= 0 || options.tileRows <= 0 || options.tileCols <= 0)
    return module.emitError("expected positive CPU kernel lanes and tile "
                            "sizes, but got lanes = ")
           << options.lanes << ", tile = " << options.tileRows << "x"
           << options.tileCols;
  bool fp8 = spec.weightType == GemmElementType::F8E4M3FN ||
             spec.activationType == GemmElementType::F8E4M3FN;
  if (fp8 && (spec.scaleBlock <= 0 || spec.scaleBlock % options.lanes != 0))
    return module.emitError("expected the FP8 scale block of GEMM kernel `")
           << spec.name << "` to be a positive multiple of " << options.lanes
           << " lanes, but got " << spec.scaleBlock;

  OpBuilder b(module.getContext());
  GemmEmitter emitter(b, module.getLoc(), spec, options);
  FailureOr<func::FuncOp> func =
      createKernelFunc(module, b, spec.name, emitter.argumentTypes());
  if (failed(func))
    return failure();
  emitter.emitBody(*func);
  return func;
}

//===----------------------------------------------------------------------===//
// Elementwise kernels (linalg.generic)
//===----------------------------------------------------------------------===//

/// Appends `name(a, b, y: memref<?xWIDTHxf32>)` computing
/// `y = body(a, b)` with a two-input `linalg.generic`.
static FailureOr<func::FuncOp> buildBinaryElementwiseKernel(
    ModuleOp module, StringRef name, int64_t width,
    function_ref<Value(OpBuilder &, Location, Value, Value)> body) {
  if (width <= 0)
    return module.emitError("expected elementwise kernel `")
           << name << "` to have a positive width, but got " << width;
  OpBuilder b(module.getContext());
  Type type = MemRefType::get({ShapedType::kDynamic, width}, b.getF32Type());
  FailureOr<func::FuncOp> func =
      createKernelFunc(module, b, name, {type, type, type});
  if (failed(func))
    return failure();
  Location loc = module.getLoc();
  AffineMap identity = b.getMultiDimIdentityMap(2);
  SmallVector<utils::IteratorType> iterators(2, utils::IteratorType::parallel);
  linalg::GenericOp::create(
      b, loc, ValueRange{func->getArgument(0), func->getArgument(1)},
      ValueRange{func->getArgument(2)},
      ArrayRef<AffineMap>{identity, identity, identity}, iterators,
      [&](OpBuilder &nested, Location nestedLoc, ValueRange args) {
        linalg::YieldOp::create(nested, nestedLoc,
                                body(nested, nestedLoc, args[0], args[1]));
      });
  return func;
}

FailureOr<func::FuncOp> mlir::moec::cpu::buildAddKernel(ModuleOp module,
                                                        StringRef name,
                                                        int64_t width) {
  return buildBinaryElementwiseKernel(
      module, name, width,
      [](OpBuilder &b, Location loc, Value lhs, Value rhs) -> Value {
        return arith::AddFOp::create(b, loc, lhs, rhs);
      });
}

FailureOr<func::FuncOp> mlir::moec::cpu::buildSiluMulKernel(ModuleOp module,
                                                            StringRef name,
                                                            int64_t width) {
  return buildBinaryElementwiseKernel(
      module, name, width,
      [](OpBuilder &b, Location loc, Value gate, Value up) -> Value {
        // silu(g) = g / (1 + exp(-g)); exp gets a polynomial, not libm.
        Value one = arith::ConstantOp::create(b, loc, b.getF32FloatAttr(1.0f));
        Value negated = arith::NegFOp::create(b, loc, gate);
        Value denominator = arith::AddFOp::create(
            b, loc, one, math::ExpOp::create(b, loc, negated));
        Value silu = arith::DivFOp::create(b, loc, gate, denominator);
        return arith::MulFOp::create(b, loc, silu, up);
      });
}

//===----------------------------------------------------------------------===//
// RMSNorm (scf + vector)
//===----------------------------------------------------------------------===//

FailureOr<func::FuncOp>
mlir::moec::cpu::buildRmsNormKernel(ModuleOp module, StringRef name,
                                    int64_t hidden, double eps,
                                    const CpuKernelOptions &options) {
  if (hidden <= 0)
    return module.emitError("expected RMSNorm kernel `")
           << name << "` to have a positive hidden size, but got " << hidden;
  if (options.lanes <= 0)
    return module.emitError("expected positive CPU kernel lanes, but got ")
           << options.lanes;
  OpBuilder b(module.getContext());
  Type f32 = b.getF32Type();
  Type rowsType = MemRefType::get({ShapedType::kDynamic, hidden}, f32);
  Type weightType = MemRefType::get({hidden}, f32);
  FailureOr<func::FuncOp> func =
      createKernelFunc(module, b, name, {rowsType, weightType, rowsType});
  if (failed(func))
    return failure();
  Value x = func->getArgument(0), weight = func->getArgument(1),
        y = func->getArgument(2);

  EmitterBase e(b, module.getLoc());
  Location loc = module.getLoc();
  int64_t lanes = options.lanes;
  int64_t fullH = hidden - hidden % lanes;
  auto vectorType = VectorType::get({lanes}, f32);
  Value zero = e.constant(vectorType, 0.0);
  Value tailMask;
  if (fullH < hidden)
    tailMask = vector::CreateMaskOp::create(
        b, loc, VectorType::get({lanes}, b.getI1Type()),
        ValueRange{e.index(hidden - fullH)});

  Value tokens = memref::DimOp::create(b, loc, x, 0);
  e.forLoop(e.index(0), tokens, e.index(1), [&](Value t) {
    auto loadX = [&](Value col, bool masked) -> Value {
      if (masked)
        return vector::MaskedLoadOp::create(b, loc, vectorType, x,
                                            ValueRange{t, col}, tailMask, zero);
      return vector::LoadOp::create(b, loc, vectorType, x, ValueRange{t, col});
    };
    // Sum of squares in one vector accumulator, reduced once.
    Value acc = zero;
    if (fullH > 0)
      acc = e.forLoop(e.index(0), e.index(fullH), e.index(lanes), {acc},
                      [&](Value col, ValueRange carried) {
                        Value v = loadX(col, false);
                        return SmallVector<Value>{
                            vector::FMAOp::create(b, loc, v, v, carried[0])};
                      })[0];
    if (tailMask) {
      Value v = loadX(e.index(fullH), true);
      acc = vector::FMAOp::create(b, loc, v, v, acc);
    }
    Value sum =
        vector::ReductionOp::create(b, loc, vector::CombiningKind::ADD, acc,
                                    Value(), arith::FastMathFlags::reassoc);
    Value mean = arith::DivFOp::create(
        b, loc, sum,
        arith::ConstantOp::create(b, loc, b.getF32FloatAttr(hidden)));
    Value shifted = arith::AddFOp::create(
        b, loc, mean,
        arith::ConstantOp::create(b, loc, b.getF32FloatAttr(eps)));
    Value inverse = vector::BroadcastOp::create(
        b, loc, vectorType, math::RsqrtOp::create(b, loc, shifted));

    auto scaleChunk = [&](Value col, bool masked) {
      Value v = loadX(col, masked);
      Value g = masked ? Value(vector::MaskedLoadOp::create(
                             b, loc, vectorType, weight, ValueRange{col},
                             tailMask, zero))
                       : Value(vector::LoadOp::create(b, loc, vectorType,
                                                      weight, ValueRange{col}));
      Value out = arith::MulFOp::create(
          b, loc, arith::MulFOp::create(b, loc, v, inverse), g);
      if (masked)
        vector::MaskedStoreOp::create(b, loc, y, ValueRange{t, col}, tailMask,
                                      out);
      else
        vector::StoreOp::create(b, loc, out, y, ValueRange{t, col});
    };
    if (fullH > 0)
      e.forLoop(e.index(0), e.index(fullH), e.index(lanes),
                [&](Value col) { scaleChunk(col, false); });
    if (tailMask)
      scaleChunk(e.index(fullH), true);
  });
  return func;
}
