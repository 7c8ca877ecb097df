//===- ElementwiseEmitter.cpp - CUDA kernels of the elementwise ops -------===//
//
// CUDA C++ for the memory-bound ops without reductions over long axes:
// `moe.embed`, `moe.add`, `moe.mul`, `moe.silu_mul`, `moe.slice`,
// `moe.concat`, `moe.expand`, `moe.quantize`, `moe.dequantize` and
// `moe.sigmoid_gate`. Each follows its CPU kernel in
// `codegen/cpu/PlannedKernels.cpp` element for element; values are computed
// in f32 and rounded to the result's element type on the store.
//
//===----------------------------------------------------------------------===//

#include "codegen/cuda/CudaStep.h"

#include "dialects/MoEDialect.h"

#include "llvm/ADT/TypeSwitch.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MathExtras.h"

#include <algorithm>

using namespace mlir;
using namespace mlir::moec::cuda;

//===----------------------------------------------------------------------===//
// Kernel text
//===----------------------------------------------------------------------===//

// The flat mapping every elementwise kernel shares, and the per-element
// bodies of the ops that have one.
static const char kElementwise[] = R"cuda(
// Flat kernels: block b covers elements [b * 1024, (b + 1) * 1024) of the
// result; thread t handles b * 1024 + t + 256 * j for j < 4, so a warp's
// accesses are contiguous for every j.
enum { kMoecFlatThreads = 256, kMoecFlatItems = 4 };
__device__ __forceinline__ long long moec_flat_index(int j) {
  return (long long)blockIdx.x * (kMoecFlatThreads * kMoecFlatItems) +
         threadIdx.x + (long long)j * kMoecFlatThreads;
}

// moe.add (OP 0), moe.mul (OP 1), moe.silu_mul (OP 2: silu(x) * y with
// silu(x) = x / (1 + exp(-x)), the interpreter's formula).
template <int OP>
__device__ __forceinline__ float moec_binary(float x, float y) {
  if (OP == 0)
    return x + y;
  if (OP == 1)
    return x * y;
  return x / (1.0f + expf(-x)) * y;
}

// moe.slice: out[r, c] = x[r, OFFSET + c] over the last dimension.
template <int INNER, int SIZE, int OFFSET, typename T>
__device__ __forceinline__ void moec_slice_element(const T *__restrict__ x,
                                                   T *__restrict__ out,
                                                   long long i) {
  const long long r = i / SIZE;
  const int c = (int)(i - r * SIZE);
  out[i] = x[r * INNER + OFFSET + c];
}

// moe.dequantize of element i of [batches, ROWS, COLS] data in blocks of
// [BR, BC] (ROWS = 0: a 2-d tensor with a dynamic row count, one batch).
// CODES: u8 codes, (code - ZP) * scale; otherwise e4m3fn, value * scale.
template <int ROWS, int COLS, int BR, int BC, bool CODES, int ZP,
          typename TQ, typename TO>
__device__ __forceinline__ void
moec_dequantize_element(const TQ *__restrict__ x,
                        const float *__restrict__ scale, TO *__restrict__ out,
                        long long i) {
  constexpr long long kBlockRows = ROWS > 0 ? (ROWS + BR - 1) / BR : 0;
  constexpr long long kBlockCols = (COLS + BC - 1) / BC;
  const long long row = i / COLS;
  const int c = (int)(i - row * COLS);
  const long long b = ROWS > 0 ? row / ROWS : 0;
  const long long r = ROWS > 0 ? row - b * ROWS : row;
  const float s = scale[(b * kBlockRows + r / BR) * kBlockCols + c / BC];
  const float q = CODES ? (float)(unsigned char)x[i] - (float)ZP
                        : moec_load(x, i);
  moec_store(out, i, q * s);
}

// moe.embed: one block per token; the block's threads stride over the
// HIDDEN channels of its row. An id outside [0, VOCAB) gives a zero row.
template <int VOCAB, int HIDDEN, typename TT, typename TI, typename TO>
__device__ __forceinline__ void moec_embed_row(const TT *__restrict__ table,
                                               const TI *__restrict__ ids,
                                               TO *__restrict__ out,
                                               long long rows) {
  const long long t = blockIdx.x;
  if (t >= rows)
    return;
  const long long id = (long long)ids[t];
  const bool valid = (unsigned long long)id < (unsigned long long)VOCAB;
  const TT *src = table + (valid ? id : 0LL) * HIDDEN;
  for (int h = threadIdx.x; h < HIDDEN; h += blockDim.x)
    moec_store(out, t * HIDDEN + h, valid ? moec_load(src, h) : 0.0f);
}

// moe.sigmoid_gate: one block per token. The block reduces
// x[t, :] . gate[0, :] in f32, then every thread scales its columns of
// y[t, :] by sigmoid of that sum.
template <int HIDDEN, int WIDTH, typename TX, typename TG, typename TY>
__device__ __forceinline__ void
moec_sigmoid_gate_row(const TX *__restrict__ x, const TG *__restrict__ gate,
                      const TY *__restrict__ y, TY *__restrict__ out,
                      long long rows) {
  const long long t = blockIdx.x;
  if (t >= rows) // uniform over the block: no thread skips the reduction
    return;
  float dot = 0.0f;
  for (int k = threadIdx.x; k < HIDDEN; k += blockDim.x)
    dot += moec_load(x, t * HIDDEN + k) * moec_load(gate, k);
  dot = moec_block_sum(dot);
  const float g = 1.0f / (1.0f + expf(-dot));
  for (int c = threadIdx.x; c < WIDTH; c += blockDim.x)
    moec_store(out, t * WIDTH + c, g * moec_load(y, t * WIDTH + c));
}
)cuda";

//===----------------------------------------------------------------------===//
// Helpers
//===----------------------------------------------------------------------===//

namespace {

/// Threads and elements of one flat kernel's block (`kMoecFlatThreads` and
/// `kMoecFlatThreads * kMoecFlatItems` in the kernel text).
constexpr int64_t kFlatThreads = 256;
constexpr int64_t kFlatPerBlock = kFlatThreads * 4;

/// Whether `moec_load` reads elements of `type`.
bool isLoadable(Type type) {
  return type.isF32() || type.isBF16() || isa<Float8E4M3FNType>(type);
}
/// Whether `moec_store` writes elements of `type`.
bool isStorable(Type type) { return type.isF32() || type.isBF16(); }

Type elementOf(const StepArg &a) { return a.type.getElementType(); }

/// Fails unless `a` (named `what` in the op) can be read as floats.
LogicalResult checkLoadable(const StepContext &ctx, const StepArg &a,
                            StringRef what) {
  if (isLoadable(elementOf(a)))
    return success();
  return ctx.fail(Twine("unsupported element type of `") + what +
                  "` (expected f32, bf16 or f8E4M3FN)");
}
/// Fails unless floats can be stored into `a`.
LogicalResult checkStorable(const StepContext &ctx, const StepArg &a,
                            StringRef what) {
  if (isStorable(elementOf(a)))
    return success();
  return ctx.fail(Twine("unsupported element type of `") + what +
                  "` (expected f32 or bf16)");
}

/// Elements of `a` per token (per-token values) or in all (static ones).
int64_t elementsPerUnit(const StepArg &a) {
  return a.isPerToken() ? a.rowsPerToken * a.rowElements()
                        : a.type.getNumElements();
}

/// The number of `unit`-element pieces of `a` at `tokens` tokens, as a C
/// expression.
std::string countExpr(const StepArg &a, int64_t unit = 1) {
  int64_t n = elementsPerUnit(a) / unit;
  if (a.isPerToken())
    return llvm::formatv("tokens * {0}LL", n).str();
  return llvm::formatv("{0}LL", n).str();
}

/// A grid extent of one block per `perBlock` pieces of `unit` elements of
/// `a`.
GridExtent blocksFor(const StepArg &a, int64_t unit, int64_t perBlock) {
  int64_t n = elementsPerUnit(a) / unit;
  if (a.isPerToken())
    return GridExtent::tokens(n, perBlock);
  return GridExtent::fixed(std::max<int64_t>(llvm::divideCeil(n, perBlock), 1));
}

/// Threads of a block that strides over `n` elements of one row: a multiple
/// of 32 giving each thread about four elements, at most 256.
unsigned rowThreads(int64_t n) {
  int64_t threads =
      llvm::alignTo(llvm::divideCeil(std::max<int64_t>(n, 1), 4), 32);
  return unsigned(std::clamp<int64_t>(threads, 32, 256));
}

/// Appends a flat kernel over the elements of the result `out`: `body`
/// (CUDA statements) runs once per element index `i`.
void appendFlat(const StepContext &ctx, CudaStep &step, const StepArg &out,
                StringRef body, StringRef what) {
  step.libraries.push_back({"elementwise", kElementwise});
  std::string name = ctx.kernel();
  step.source += llvm::formatv(R"cuda(
// {0}: one thread per element of `{1}` (moec_flat_index).
extern "C" __global__ void __launch_bounds__(256) {2}({3}) {{
  const long long n = {4};
#pragma unroll
  for (int j = 0; j < kMoecFlatItems; ++j) {{
    const long long i = moec_flat_index(j);
    if (i < n) {{
{5}
    }
  }
}
)cuda",
                               what, out.name, name, ctx.parameterList(),
                               countExpr(out), body)
                     .str();
  CudaLaunch launch;
  launch.kernel = name;
  launch.grid[0] = blocksFor(out, 1, kFlatPerBlock);
  launch.block = {unsigned(kFlatThreads), 1, 1};
  step.launches.push_back(std::move(launch));
}

/// Appends a kernel with one block per row of `rowLength` elements of
/// `rows`: the body calls `call` (a library function taking `rows` as its
/// last argument).
void appendPerRow(const StepContext &ctx, CudaStep &step, const StepArg &rows,
                  int64_t rowLength, unsigned threads, StringRef call,
                  StringRef what) {
  std::string name = ctx.kernel();
  step.source +=
      llvm::formatv(R"cuda(
// {0}: one block of {1} threads per row of {2} elements of `{3}`.
extern "C" __global__ void __launch_bounds__({1}) {4}({5}) {{
  {6}, {7});
}
)cuda",
                    what, threads, rowLength, rows.name, name,
                    ctx.parameterList(), call, countExpr(rows, rowLength))
          .str();
  CudaLaunch launch;
  launch.kernel = name;
  launch.grid[0] = blocksFor(rows, rowLength, 1);
  launch.block = {threads, 1, 1};
  step.launches.push_back(std::move(launch));
}

//===----------------------------------------------------------------------===//
// moe.embed
//===----------------------------------------------------------------------===//

FailureOr<CudaStep> emitEmbed(const StepContext &ctx, moe::EmbedOp op) {
  const StepArg &table = ctx.arg(op.getTable()), &ids = ctx.arg(op.getIds());
  const StepArg &out = ctx.arg(op.getResult());
  if (failed(checkLoadable(ctx, table, "table")) ||
      failed(checkStorable(ctx, out, "result")))
    return failure();
  int64_t vocab = table.type.getDimSize(0), hidden = table.type.getDimSize(1);
  CudaStep step;
  step.libraries.push_back({"elementwise", kElementwise});
  appendPerRow(ctx, step, out, hidden, rowThreads(hidden),
               llvm::formatv("moec_embed_row<{0}, {1}>({2}, {3}, {4}", vocab,
                             hidden, table.name, ids.name, out.name)
                   .str(),
               "moe.embed");
  return step;
}

//===----------------------------------------------------------------------===//
// moe.add, moe.mul, moe.silu_mul
//===----------------------------------------------------------------------===//

FailureOr<CudaStep> emitBinary(const StepContext &ctx, Value lhs, Value rhs,
                               Value result, int opCode, StringRef what) {
  const StepArg &a = ctx.arg(lhs), &b = ctx.arg(rhs), &out = ctx.arg(result);
  // The operands have the result's type (SameOperandsAndResultType), so one
  // flat index addresses all three.
  if (failed(checkLoadable(ctx, a, "lhs")) ||
      failed(checkLoadable(ctx, b, "rhs")) ||
      failed(checkStorable(ctx, out, "result")))
    return failure();
  if (a.type.getShape() != out.type.getShape() ||
      b.type.getShape() != out.type.getShape() ||
      a.rowsPerToken != out.rowsPerToken || b.rowsPerToken != out.rowsPerToken)
    return ctx.fail("expected operands shaped like the result"), failure();
  CudaStep step;
  appendFlat(
      ctx, step, out,
      llvm::formatv("      moec_store({0}, i, moec_binary<{1}>(moec_load("
                    "{2}, i), moec_load({3}, i)));",
                    out.name, opCode, a.name, b.name)
          .str(),
      what);
  if (failed(appendFusedQuantize(ctx, step)))
    return failure();
  return step;
}

//===----------------------------------------------------------------------===//
// moe.slice, moe.concat, moe.expand
//===----------------------------------------------------------------------===//

// The shape ops copy elements bit for bit (the element types agree), so they
// work for every element type.

FailureOr<CudaStep> emitSlice(const StepContext &ctx, moe::SliceOp op) {
  const StepArg &x = ctx.arg(op.getX()), &out = ctx.arg(op.getResult());
  int64_t inner = x.type.getShape().back(), size = out.type.getShape().back();
  if (x.rowsPerToken != out.rowsPerToken)
    return ctx.fail("expected `x` and the result to have the same rows"),
           failure();
  CudaStep step;
  appendFlat(ctx, step, out,
             llvm::formatv("      moec_slice_element<{0}, {1}, {2}>({3}, {4}, "
                           "i);",
                           inner, size, int64_t(op.getOffset()), x.name,
                           out.name)
                 .str(),
             "moe.slice");
  return step;
}

FailureOr<CudaStep> emitConcat(const StepContext &ctx, moe::ConcatOp op) {
  const StepArg &out = ctx.arg(op.getResult());
  int64_t axis = op.getConcatDim();
  if (axis == 0 && out.isPerToken())
    return ctx.fail("cannot concatenate along the token dimension"), failure();
  // Each input contributes `size[axis] * inner` contiguous elements per
  // index of the dimensions before `axis`: a chain of range tests on the
  // position within the result's chunk picks the input.
  ArrayRef<int64_t> shape = out.type.getShape();
  int64_t inner = 1;
  for (int64_t d : shape.drop_front(axis + 1))
    inner *= d;
  int64_t outChunk = shape[axis] * inner, offset = 0;
  std::string body = llvm::formatv("      const long long r = i / {0};\n"
                                   "      const long long c = i - r * {0};\n",
                                   outChunk)
                         .str();
  OperandRange inputs = op.getInputs();
  for (auto [j, input] : llvm::enumerate(inputs)) {
    const StepArg &in = ctx.arg(input);
    if (in.isPerToken() && in.rowsPerToken != out.rowsPerToken)
      return ctx.fail("expected every input to have the result's rows"),
             failure();
    int64_t chunk = in.type.getShape()[axis] * inner;
    std::string copy = llvm::formatv("{0}[i] = {1}[r * {2} + (c - {3})];",
                                     out.name, in.name, chunk, offset)
                           .str();
    if (j + 1 == inputs.size())
      body += llvm::formatv("      {0}{1}", j ? "else\n        " : "", copy);
    else
      body += llvm::formatv("      {0}if (c < {1})\n        {2}\n",
                            j ? "else " : "", offset + chunk, copy);
    offset += chunk;
  }
  CudaStep step;
  appendFlat(ctx, step, out, body,
             llvm::formatv("moe.concat along dimension {0}", axis).str());
  return step;
}

FailureOr<CudaStep> emitExpand(const StepContext &ctx, moe::ExpandOp op) {
  const StepArg &x = ctx.arg(op.getX()), &out = ctx.arg(op.getResult());
  ArrayRef<int64_t> xShape = x.type.getShape(), shape = out.type.getShape();
  int64_t rank = out.type.getRank();
  if (rank == 0 || (out.isPerToken() && !x.isPerToken()) ||
      (out.isPerToken() && x.rowsPerToken != out.rowsPerToken))
    return ctx.fail("cannot broadcast the leading dimension"), failure();
  // Split the result index into coordinates, innermost first, and add up
  // the source offset; dimensions where `x` has size 1 contribute nothing.
  std::string body = "      long long rest = i, src = 0;\n";
  int64_t xStride = 1;
  for (int64_t d = rank - 1; d >= 0; --d) {
    bool broadcast = xShape[d] == 1 && shape[d] != 1;
    if (d == 0) {
      body += broadcast ? "      // dimension 0: broadcast\n"
                        : llvm::formatv("      src += rest * {0}; // dimension "
                                        "0\n",
                                        xStride)
                              .str();
      break;
    }
    if (broadcast)
      body += llvm::formatv("      rest /= {0}; // dimension {1}: broadcast\n",
                            shape[d], d)
                  .str();
    else
      body += llvm::formatv("      src += rest % {0} * {1}; // dimension {2}\n"
                            "      rest /= {0};\n",
                            shape[d], xStride, d)
                  .str();
    xStride *= xShape[d];
  }
  body += llvm::formatv("      {0}[i] = {1}[src];", out.name, x.name).str();
  CudaStep step;
  appendFlat(ctx, step, out, body, "moe.expand");
  return step;
}

//===----------------------------------------------------------------------===//
// moe.quantize, moe.dequantize
//===----------------------------------------------------------------------===//

/// The `[rows, cols]` matrices of `x` (rank >= 1): `rows` is 0 for a 2-d
/// per-token tensor (one batch, rows from the token count).
LogicalResult matrixOf(const StepContext &ctx, const StepArg &x, int64_t &rows,
                       int64_t &cols) {
  int64_t rank = x.type.getRank();
  if (rank == 0) {
    rows = cols = 1;
    return success();
  }
  if (rank == 1 && x.isPerToken())
    return ctx.fail("cannot block-scale a 1-d tensor with a dynamic size");
  cols = x.type.getShape().back();
  rows = rank == 1 ? 1 : x.type.getShape()[rank - 2];
  if (rank == 2 && x.isPerToken())
    rows = 0;
  return success();
}

FailureOr<CudaStep> emitQuantize(const StepContext &ctx, moe::QuantizeOp op) {
  moe::BlockScaleAttr scheme = op.getScheme();
  ArrayRef<int64_t> block = scheme.getBlock();
  if (scheme.getFormat() != moe::Fp8Format::e4m3fn || block.size() != 2 ||
      block[0] != 1 || scheme.getZeroPoint() != 0)
    return ctx.fail("quantization must be e4m3fn in [1, B] blocks"), failure();
  if (scheme.getPlacement() != moe::ScalePlacement::row_major)
    return ctx.fail("only row-major block scales are supported"), failure();
  const StepArg &x = ctx.arg(op.getX());
  if (!elementOf(x).isF32())
    return ctx.fail("quantization reads f32 `x`"), failure();
  int64_t rows, cols;
  if (failed(matrixOf(ctx, x, rows, cols)))
    return failure();
  CudaStep step;
  step.source += llvm::formatv("\n// moe.quantize: e4m3fn in [1, {0}] blocks, "
                               "one warp per block (moec_quantize_rows).",
                               block[1])
                     .str();
  appendQuantizeRows(ctx, step, x, ctx.arg(op.getResult()),
                     ctx.arg(op.getScale()), block[1], scheme.getPow2(), "");
  return step;
}

FailureOr<CudaStep> emitDequantize(const StepContext &ctx,
                                   moe::DequantizeOp op) {
  const StepArg &x = ctx.arg(op.getX()), &scale = ctx.arg(op.getScale());
  const StepArg &out = ctx.arg(op.getResult());
  moe::BlockScaleAttr scheme = op.getScheme();
  if (scheme.getPlacement() != moe::ScalePlacement::row_major)
    return ctx.fail("only row-major block scales are supported"), failure();
  bool codes = scheme.isInteger();
  if (!codes && !isa<Float8E4M3FNType>(elementOf(x)))
    return ctx.fail("expected e4m3fn or u8 codes"), failure();
  if (failed(checkStorable(ctx, out, "result")))
    return failure();
  int64_t rows, cols;
  if (failed(matrixOf(ctx, x, rows, cols)))
    return failure();
  ArrayRef<int64_t> block = scheme.getBlock();
  CudaStep step;
  appendFlat(
      ctx, step, out,
      llvm::formatv("      moec_dequantize_element<{0}, {1}, {2}, {3}, {4}, "
                    "{5}>({6}, {7}, {8}, i);",
                    rows, cols, block[0], block[1], codes ? "true" : "false",
                    scheme.getZeroPoint(), x.name, scale.name, out.name)
          .str(),
      llvm::formatv("moe.dequantize in [{0}, {1}] blocks", block[0], block[1])
          .str());
  return step;
}

//===----------------------------------------------------------------------===//
// moe.sigmoid_gate
//===----------------------------------------------------------------------===//

FailureOr<CudaStep> emitSigmoidGate(const StepContext &ctx,
                                    moe::SigmoidGateOp op) {
  const StepArg &x = ctx.arg(op.getX()), &gate = ctx.arg(op.getGate());
  const StepArg &y = ctx.arg(op.getY()), &out = ctx.arg(op.getResult());
  if (failed(checkLoadable(ctx, x, "x")) ||
      failed(checkLoadable(ctx, gate, "gate")) ||
      failed(checkLoadable(ctx, y, "y")) ||
      failed(checkStorable(ctx, out, "result")))
    return failure();
  if (x.rowsPerToken != y.rowsPerToken || y.rowsPerToken != out.rowsPerToken)
    return ctx.fail("expected `x`, `y` and the result to have the same rows"),
           failure();
  int64_t hidden = x.type.getDimSize(1), width = y.type.getDimSize(1);
  CudaStep step;
  step.libraries.push_back({"elementwise", kElementwise});
  appendPerRow(ctx, step, x, hidden, rowThreads(std::max(hidden, width)),
               llvm::formatv("moec_sigmoid_gate_row<{0}, {1}>({2}, {3}, {4}, "
                             "{5}",
                             hidden, width, x.name, gate.name, y.name, out.name)
                   .str(),
               "moe.sigmoid_gate");
  return step;
}

} // namespace

//===----------------------------------------------------------------------===//
// Dispatch
//===----------------------------------------------------------------------===//

FailureOr<CudaStep>
mlir::moec::cuda::emitElementwiseStep(const StepContext &ctx) {
  return llvm::TypeSwitch<Operation *, FailureOr<CudaStep>>(ctx.op)
      .Case([&](moe::EmbedOp op) { return emitEmbed(ctx, op); })
      .Case([&](moe::AddOp op) {
        return emitBinary(ctx, op.getLhs(), op.getRhs(), op.getResult(), 0,
                          "moe.add");
      })
      .Case([&](moe::MulOp op) {
        return emitBinary(ctx, op.getLhs(), op.getRhs(), op.getResult(), 1,
                          "moe.mul");
      })
      .Case([&](moe::SiluMulOp op) {
        return emitBinary(ctx, op.getGate(), op.getUp(), op.getResult(), 2,
                          "moe.silu_mul");
      })
      .Case([&](moe::SliceOp op) { return emitSlice(ctx, op); })
      .Case([&](moe::ConcatOp op) { return emitConcat(ctx, op); })
      .Case([&](moe::ExpandOp op) { return emitExpand(ctx, op); })
      .Case([&](moe::QuantizeOp op) { return emitQuantize(ctx, op); })
      .Case([&](moe::DequantizeOp op) { return emitDequantize(ctx, op); })
      .Case([&](moe::SigmoidGateOp op) { return emitSigmoidGate(ctx, op); })
      .Default([&](Operation *) -> FailureOr<CudaStep> {
        return ctx.fail("not an elementwise op"), failure();
      });
}
