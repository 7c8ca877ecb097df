//===- GenericEmitter.cpp - CUDA kernels of the generic token-wise ops ----===//
//
// CUDA C++ for what an ONNX graph computes with standard ops: `moe.unary`,
// `moe.binary`, `moe.compare`, `moe.select`, `moe.cast`, `moe.softmax`,
// `moe.reduce`, `moe.topk`, `moe.transpose`, `moe.batch_matmul`,
// `moe.gather_elements`, `moe.scatter_elements` and `moe.one_hot`. These are
// small tensors of a token, so the kernels are simple rather than fast: one
// thread per result element, one block per row for reductions. Each follows
// its CPU kernel in `codegen/cpu/PlannedKernels.cpp` element for element.
//
//===----------------------------------------------------------------------===//

#include "codegen/cuda/CudaStep.h"

#include "dialects/MoEDialect.h"

#include "llvm/ADT/TypeSwitch.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MathExtras.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

using namespace mlir;
using namespace mlir::moec::cuda;

//===----------------------------------------------------------------------===//
// Kernel text
//===----------------------------------------------------------------------===//

// Element access by type and the per-element functions of the generic ops.
// Kind template arguments are the values of the dialect's enums
// (`moe::UnaryKind`, `moe::BinaryKind`, `moe::ComparePredicate`,
// `moe::ReduceKind`).
static const char kGeneric[] = R"cuda(
// Flat kernels: thread t of block b handles element 256 * b + t.
__device__ __forceinline__ long long moec_generic_index() {
  return (long long)blockIdx.x * 256 + threadIdx.x;
}

// Float stores (beside moec_store_int below): the prelude's moec_store,
// rounded as runtime/fp8 does (e4m3fn saturates).
template <typename T>
__device__ __forceinline__ void moec_store_float(T *p, long long i, float v) {
  moec_store(p, i, v);
}

// Integers read as signed 64-bit: i1 is a byte holding 0 or 1, i8 (an
// `unsigned char` parameter) sign-extends.
__device__ __forceinline__ long long moec_load_int(const bool *p,
                                                   long long i) {
  return ((const unsigned char *)p)[i];
}
__device__ __forceinline__ long long moec_load_int(const unsigned char *p,
                                                   long long i) {
  return (signed char)p[i];
}
__device__ __forceinline__ long long moec_load_int(const int *p, long long i) {
  return p[i];
}
__device__ __forceinline__ long long moec_load_int(const long long *p,
                                                   long long i) {
  return p[i];
}
// Integer stores truncate; i1 stores v != 0.
__device__ __forceinline__ void moec_store_int(bool *p, long long i,
                                               long long v) {
  p[i] = v != 0;
}
__device__ __forceinline__ void moec_store_int(unsigned char *p, long long i,
                                               long long v) {
  p[i] = (unsigned char)v;
}
__device__ __forceinline__ void moec_store_int(int *p, long long i,
                                               long long v) {
  p[i] = (int)v;
}
__device__ __forceinline__ void moec_store_int(long long *p, long long i,
                                               long long v) {
  p[i] = v;
}

// moe.cast of a float to an integer: NaN gives 0, otherwise truncation
// toward zero.
__device__ __forceinline__ long long moec_float_to_int(float v) {
  return v != v ? 0LL : (long long)v;
}

// arith.maximumf / minimumf: NaN propagates, -0 < +0.
__device__ __forceinline__ float moec_generic_maximum(float a, float b) {
  if (a != a || b != b)
    return a + b;
  if (a == b)
    return (__float_as_uint(a) & 0x80000000u) ? b : a;
  return a > b ? a : b;
}
__device__ __forceinline__ float moec_generic_minimum(float a, float b) {
  if (a != a || b != b)
    return a + b;
  if (a == b)
    return (__float_as_uint(a) & 0x80000000u) ? a : b;
  return a < b ? a : b;
}

// pow as onnxruntime computes it for real results (the CPU kernel's powF):
// exact for the exponents 0, 1, 2 and 0.5, exp(e * log|a|) otherwise, with
// the sign of an odd integer power of a negative base and NaN for a
// non-integer one.
__device__ __forceinline__ float moec_generic_pow(float a, float e) {
  if (e == 0.0f)
    return 1.0f;
  if (e == 1.0f)
    return a;
  if (e == 2.0f)
    return a * a;
  if (e == 0.5f)
    return sqrtf(a);
  const float general = expf(e * logf(fabsf(a)));
  if (!(a < 0.0f))
    return general;
  const bool integer = floorf(e) == e;
  const float half = e * 0.5f;
  if (!integer)
    return __int_as_float(0x7FC00000);
  return floorf(half) != half ? -general : general;
}

// moe.unary: neg 0, abs 1, sqrt 2, reciprocal 3, exp 4, log 5, tanh 6,
// sigmoid 7, relu 8 (NaN stays NaN).
template <int KIND> __device__ __forceinline__ float moec_generic_unary(float x) {
  switch (KIND) {
  case 0: return -x;
  case 1: return fabsf(x);
  case 2: return sqrtf(x);
  case 3: return 1.0f / x;
  case 4: return expf(x);
  case 5: return logf(x);
  case 6: return tanhf(x);
  case 7: return 1.0f / (1.0f + expf(-x));
  default: return !(x <= 0.0f) ? x : 0.0f;
  }
}

// moe.binary: add 0, sub 1, mul 2, div 3, pow 4, max 5, min 6.
template <int KIND>
__device__ __forceinline__ float moec_generic_binary(float a, float b) {
  switch (KIND) {
  case 0: return a + b;
  case 1: return a - b;
  case 2: return a * b;
  case 3: return a / b;
  case 4: return moec_generic_pow(a, b);
  case 5: return moec_generic_maximum(a, b);
  default: return moec_generic_minimum(a, b);
  }
}

// moe.compare: eq 0, ne 1, lt 2, le 3, gt 4, ge 5 (floats: false with NaN
// except ne; integers: signed).
template <int PRED, typename T>
__device__ __forceinline__ bool moec_generic_compare(T a, T b) {
  switch (PRED) {
  case 0: return a == b;
  case 1: return a != b;
  case 2: return a < b;
  case 3: return a <= b;
  case 4: return a > b;
  default: return a >= b;
  }
}

// moe.reduce: sum 0, mean 1, max 2, min 3 (max and min propagate NaN).
template <int KIND> __device__ __forceinline__ float moec_reduce_init() {
  return KIND == 2 ? -__int_as_float(0x7F800000)
                   : (KIND == 3 ? __int_as_float(0x7F800000) : 0.0f);
}
template <int KIND>
__device__ __forceinline__ float moec_reduce_combine(float acc, float v) {
  if (KIND == 2)
    return moec_generic_maximum(acc, v);
  if (KIND == 3)
    return moec_generic_minimum(acc, v);
  return acc + v;
}
// Every thread of the block gets the reduction of `v` over the block
// (blockDim.x a multiple of 32, at most 1024).
template <int KIND> __device__ __forceinline__ float moec_block_reduce(float v) {
  __shared__ float partial[32];
  for (int o = 16; o > 0; o >>= 1)
    v = moec_reduce_combine<KIND>(v, __shfl_xor_sync(0xFFFFFFFFu, v, o));
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  __syncthreads();
  if (lane == 0)
    partial[warp] = v;
  __syncthreads();
  v = lane < (int)(blockDim.x >> 5) ? partial[lane] : moec_reduce_init<KIND>();
  for (int o = 16; o > 0; o >>= 1)
    v = moec_reduce_combine<KIND>(v, __shfl_xor_sync(0xFFFFFFFFu, v, o));
  return v;
}

// moe.softmax: one block per row of COLS elements, the threads striding
// over it: max (skipping NaN, as the CPU's `max < v` scan), the sum of
// exp(x - max), then exp(x - max) / sum.
template <int COLS, typename TX, typename TO>
__device__ __forceinline__ void moec_softmax_row(const TX *__restrict__ x,
                                                 TO *__restrict__ out,
                                                 long long rows) {
  const long long row = blockIdx.x;
  if (row >= rows) // uniform over the block: no thread skips a reduction
    return;
  const long long base = row * COLS;
  float m = -__int_as_float(0x7F800000);
  for (int c = threadIdx.x; c < COLS; c += blockDim.x) {
    const float v = moec_load(x, base + c);
    m = m < v ? v : m;
  }
  m = moec_block_max(m);
  float sum = 0.0f;
  for (int c = threadIdx.x; c < COLS; c += blockDim.x)
    sum += expf(moec_load(x, base + c) - m);
  sum = moec_block_sum(sum);
  for (int c = threadIdx.x; c < COLS; c += blockDim.x)
    moec_store_float(out, base + c, expf(moec_load(x, base + c) - m) / sum);
}

// Whether (a, ia) ranks before (b, ib): higher first, NaN below everything,
// ties to the lower index (the CPU kernel's ranksBefore).
__device__ __forceinline__ bool moec_ranks_before(float a, int ia, float b,
                                                  int ib) {
  const bool nanA = a != a, nanB = b != b;
  if (nanA && nanB)
    return ia < ib;
  if (nanA || nanB)
    return nanB;
  return a == b ? ia < ib : a > b;
}
// Folds candidate (v2, i2) into (v, i); index COLS means "none yet".
template <int COLS>
__device__ __forceinline__ void moec_topk_fold(float &v, int &i, float v2,
                                               int i2) {
  if (i2 != COLS && (i == COLS || moec_ranks_before(v2, i2, v, i))) {
    v = v2;
    i = i2;
  }
}

// moe.topk: one block per row of COLS elements. Pick j is the best element
// that ranks after pick j - 1 (the order is total, so nothing is picked
// twice): each thread scans its strided elements, then a warp and a block
// arg-max; every thread ends with the same pick.
template <int COLS, int K, typename TX, typename TV, typename TI>
__device__ __forceinline__ void moec_topk_row(const TX *__restrict__ x,
                                              TV *__restrict__ values,
                                              TI *__restrict__ indices,
                                              long long rows) {
  __shared__ float bestValue[32];
  __shared__ int bestIndex[32];
  const long long row = blockIdx.x;
  if (row >= rows) // uniform over the block
    return;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  float prev = 0.0f;
  int prevIndex = COLS;
  for (int j = 0; j < K; ++j) {
    float v = 0.0f;
    int vi = COLS;
    for (int c = threadIdx.x; c < COLS; c += blockDim.x) {
      const float e = moec_load(x, row * COLS + c);
      if (j == 0 || moec_ranks_before(prev, prevIndex, e, c))
        moec_topk_fold<COLS>(v, vi, e, c);
    }
    for (int o = 16; o > 0; o >>= 1)
      moec_topk_fold<COLS>(v, vi, __shfl_xor_sync(0xFFFFFFFFu, v, o),
                           __shfl_xor_sync(0xFFFFFFFFu, vi, o));
    __syncthreads(); // the previous pick's reads of bestValue are done
    if (lane == 0) {
      bestValue[warp] = v;
      bestIndex[warp] = vi;
    }
    __syncthreads();
    const bool valid = lane < (int)(blockDim.x >> 5);
    v = valid ? bestValue[lane] : 0.0f;
    vi = valid ? bestIndex[lane] : COLS;
    for (int o = 16; o > 0; o >>= 1)
      moec_topk_fold<COLS>(v, vi, __shfl_xor_sync(0xFFFFFFFFu, v, o),
                           __shfl_xor_sync(0xFFFFFFFFu, vi, o));
    if (threadIdx.x == 0) {
      moec_store_float(values, row * K + j, vi == COLS ? 0.0f : v);
      indices[row * K + j] = (TI)vi;
    }
    prev = v;
    prevIndex = vi;
  }
}

// moe.batch_matmul: out[b, m, n] = sum_k a[b, m, k] * b[b, k, n] for
// `batches` matrices. One block of 16 x 16 threads per 16 x 16 tile of one
// batch's result (blocks numbered batch-major, then tile rows, then tile
// columns); thread (ty, tx) owns out[b, m0 + ty, n0 + tx]. K goes through
// shared memory in steps of 16 and each thread adds its products in k order
// without FMA contraction, as the CPU kernel does.
template <int M, int N, int K, typename TA, typename TB, typename TO>
__device__ __forceinline__ void
moec_batch_matmul_tile(const TA *__restrict__ a, const TB *__restrict__ b,
                       TO *__restrict__ out, long long batches) {
  constexpr int kTilesM = (M + 15) / 16, kTilesN = (N + 15) / 16;
  __shared__ float as[16][17], bs[16][17];
  const long long tile = blockIdx.x;
  const long long batch = tile / (kTilesM * kTilesN);
  if (batch >= batches) // uniform over the block
    return;
  const int t = (int)(tile - batch * (kTilesM * kTilesN));
  const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
  const int m = (t / kTilesN) * 16 + ty, n = (t % kTilesN) * 16 + tx;
  float acc = 0.0f;
  for (int k0 = 0; k0 < K; k0 += 16) {
    // as[ty][kk] = a[batch, m, k0 + kk], bs[kk][tx] = b[batch, k0 + kk, n].
    as[ty][tx] = m < M && k0 + tx < K
                     ? moec_load(a, (batch * M + m) * K + k0 + tx)
                     : 0.0f;
    bs[ty][tx] = k0 + ty < K && n < N
                     ? moec_load(b, (batch * K + k0 + ty) * N + n)
                     : 0.0f;
    __syncthreads();
    const int steps = min(16, K - k0);
    for (int kk = 0; kk < steps; ++kk)
      acc = __fadd_rn(acc, __fmul_rn(as[ty][kk], bs[kk][tx]));
    __syncthreads();
  }
  if (m < M && n < N)
    moec_store_float(out, (batch * M + m) * N + n, acc);
}
)cuda";

//===----------------------------------------------------------------------===//
// Helpers
//===----------------------------------------------------------------------===//

namespace {

/// Threads of a flat kernel's block (`moec_generic_index`).
constexpr int64_t kFlatThreads = 256;

Type elementOf(const StepArg &a) { return a.type.getElementType(); }

/// Whether `moec_load` / `moec_store_float` handle elements of `type`.
bool isFloat(Type type) {
  return type.isF32() || type.isBF16() || isa<Float8E4M3FNType>(type);
}

/// Fails unless `a` (named `what` in the op) holds f32, bf16 or e4m3fn.
LogicalResult checkFloat(const StepContext &ctx, const StepArg &a,
                         StringRef what) {
  if (isFloat(elementOf(a)))
    return success();
  return ctx.fail(Twine("unsupported element type of `") + what +
                  "` (expected f32, bf16 or f8E4M3FN)");
}

/// Fails unless every per-token operand and result has the same rows per
/// token: positions are computed from one row count.
LogicalResult checkRows(const StepContext &ctx) {
  const StepArg *first = nullptr;
  for (const StepArg &a : ctx.args) {
    if (!a.isPerToken())
      continue;
    if (first && a.rowsPerToken != first->rowsPerToken)
      return ctx.fail(llvm::formatv("expected the same rows per token for "
                                    "every operand and result, but got {0} "
                                    "and {1}",
                                    first->rowsPerToken, a.rowsPerToken)
                          .str());
    if (!first)
      first = &a;
  }
  return success();
}

/// A count of things as a function of the token count: `n` per token, or
/// `n` in all.
struct Count {
  int64_t n = 1;
  bool perToken = false;

  /// The count at `tokens` tokens, as a C expression.
  std::string expr() const {
    return perToken ? llvm::formatv("tokens * {0}LL", n).str()
                    : llvm::formatv("{0}LL", n).str();
  }
  /// A grid extent of one block per `perBlock` things.
  GridExtent blocks(int64_t perBlock) const {
    if (perToken)
      return GridExtent::tokens(n, perBlock);
    return GridExtent::fixed(
        std::max<int64_t>(llvm::divideCeil(n, perBlock), 1));
  }
};

/// The number of `unit`-element pieces of `a`.
Count countOf(const StepArg &a, int64_t unit = 1) {
  if (a.isPerToken())
    return {a.rowsPerToken * a.rowElements() / unit, true};
  return {a.type.getNumElements() / unit, false};
}

/// Threads of a block that strides over `n` elements of one row: a multiple
/// of 32 giving each thread about four elements, at most 256.
unsigned rowThreads(int64_t n) {
  int64_t threads =
      llvm::alignTo(llvm::divideCeil(std::max<int64_t>(n, 1), 4), 32);
  return unsigned(std::clamp<int64_t>(threads, 32, 256));
}

/// Row-major strides of `a` (dimension 0 may be dynamic; its stride is
/// static).
SmallVector<int64_t> stridesOf(const StepArg &a) {
  ArrayRef<int64_t> shape = a.type.getShape();
  SmallVector<int64_t> strides(shape.size(), 1);
  for (int64_t d = int64_t(shape.size()) - 2; d >= 0; --d)
    strides[d] = strides[d + 1] * shape[d + 1];
  return strides;
}

/// A position being accumulated while splitting a flat index: `name +=
/// coordinate[d] * strides[d]` (a stride of 0: dimension `d` does not
/// move it).
struct Target {
  std::string name;
  SmallVector<int64_t> strides;
};

/// CUDA statements that declare `long long <target> = 0` for each target
/// and add to it the coordinates of the flat index `index` of a row-major
/// tensor of `shape` (dimension 0 may be dynamic) times the target's
/// strides. Dimensions of size 1 have coordinate 0 and are skipped.
std::string splitIndex(StringRef index, ArrayRef<int64_t> shape,
                       ArrayRef<Target> targets) {
  std::string text = "  long long ";
  for (auto [k, t] : llvm::enumerate(targets))
    text += (k ? ", " : "") + t.name + " = 0";
  text += ";\n";
  int64_t rank = shape.size();
  // The outermost dimension that moves a target; outer ones need no split.
  int64_t outer = rank;
  for (int64_t d = 0; d < rank && outer == rank; ++d)
    for (const Target &t : targets)
      if (t.strides[d] != 0 && shape[d] != 1)
        outer = d;
  if (outer == rank)
    return text;
  text += llvm::formatv("  {{\n    long long rest = {0};\n", index).str();
  for (int64_t d = rank - 1; d >= outer; --d) {
    if (shape[d] == 1)
      continue;
    std::string terms;
    for (const Target &t : targets)
      if (t.strides[d] != 0)
        terms += llvm::formatv("    {0} += {1} * {2};\n", t.name,
                               d == 0 ? "rest" : "c" + std::to_string(d),
                               t.strides[d])
                     .str();
    if (d == 0) {
      // The outermost coordinate is what is left of the index.
      text += "    // dimension 0\n" + terms;
      break;
    }
    if (terms.empty()) {
      text += llvm::formatv("    rest /= {0}; // dimension {1}\n", shape[d], d)
                  .str();
      continue;
    }
    text += llvm::formatv("    const long long c{0} = rest % {1}; // "
                          "dimension {0}\n",
                          d, shape[d])
                .str();
    if (d > outer)
      text += llvm::formatv("    rest /= {0};\n", shape[d]).str();
    text += terms;
  }
  return text + "  }\n";
}

/// Appends a kernel (`ctx.kernel(suffix)`) with one thread per `unit` of a
/// range of `count`, 256 threads per block: `body` (CUDA statements,
/// indented by two) runs for index `i`.
void appendFlat(const StepContext &ctx, CudaStep &step, const Count &count,
                StringRef body, StringRef what, StringRef suffix = "",
                StringRef unit = "element") {
  step.libraries.push_back({"generic", kGeneric});
  std::string name = ctx.kernel(suffix);
  step.source +=
      llvm::formatv(R"cuda(
// {0}: one thread per {5}, 256 per block.
extern "C" __global__ void __launch_bounds__(256) {1}({2}) {{
  const long long n = {3};
  const long long i = moec_generic_index();
  if (i >= n)
    return;
{4}}
)cuda",
                    what, name, ctx.parameterList(), count.expr(), body, unit)
          .str();
  CudaLaunch launch;
  launch.kernel = name;
  launch.grid[0] = count.blocks(kFlatThreads);
  launch.block = {unsigned(kFlatThreads), 1, 1};
  step.launches.push_back(std::move(launch));
}

/// Appends a kernel with one block of `threads` threads per row of
/// `rowLength` elements of `rows`, calling the library function `call`
/// with the row count as its last argument.
void appendPerRow(const StepContext &ctx, CudaStep &step, const StepArg &rows,
                  int64_t rowLength, unsigned threads, StringRef call,
                  StringRef what) {
  step.libraries.push_back({"generic", kGeneric});
  std::string name = ctx.kernel();
  Count count = countOf(rows, rowLength);
  step.source += llvm::formatv(R"cuda(
// {0}: one block of {1} threads per row of {2} elements of `{3}`.
extern "C" __global__ void __launch_bounds__({1}) {4}({5}) {{
  {6}, {7});
}
)cuda",
                               what, threads, rowLength, rows.name, name,
                               ctx.parameterList(), call, count.expr())
                     .str();
  CudaLaunch launch;
  launch.kernel = name;
  launch.grid[0] = count.blocks(1);
  launch.block = {threads, 1, 1};
  step.launches.push_back(std::move(launch));
}

/// The statements setting `s<k>` to the position numpy broadcasting reads
/// in `ins[k]` for element `i` of `out` (shapes aligned on the last
/// dimension, size-1 dimensions read index 0).
std::string broadcastPositions(const StepArg &out,
                               ArrayRef<const StepArg *> ins) {
  ArrayRef<int64_t> shape = out.type.getShape();
  int64_t rank = shape.size();
  std::string text;
  SmallVector<Target> targets;
  for (auto [k, in] : llvm::enumerate(ins)) {
    std::string name = "s" + std::to_string(k);
    if (in->type.getShape() == shape) {
      text += llvm::formatv("  const long long {0} = i;\n", name).str();
      continue;
    }
    SmallVector<int64_t> inStrides = stridesOf(*in);
    Target t{name, SmallVector<int64_t>(rank, 0)};
    int64_t shift = rank - in->type.getRank();
    for (int64_t d = shift; d < rank; ++d)
      if (in->type.getDimSize(d - shift) != 1)
        t.strides[d] = inStrides[d - shift];
    targets.push_back(std::move(t));
  }
  if (!targets.empty())
    text += splitIndex("i", shape, targets);
  return text;
}

/// `v` (rounded to f32) as a CUDA expression of exactly that value.
std::string floatLiteral(double v) {
  float f = float(v);
  if (!std::isfinite(f)) {
    uint32_t bits;
    std::memcpy(&bits, &f, sizeof(bits));
    return llvm::formatv("__int_as_float(0x{0:X-8})", bits).str();
  }
  char text[48];
  std::snprintf(text, sizeof(text), "%af", double(f));
  return text;
}

//===----------------------------------------------------------------------===//
// moe.unary, moe.binary, moe.compare, moe.select, moe.cast
//===----------------------------------------------------------------------===//

FailureOr<CudaStep> emitUnary(const StepContext &ctx, moe::UnaryOp op) {
  const StepArg &x = ctx.arg(op.getX()), &out = ctx.arg(op.getResult());
  if (failed(checkFloat(ctx, x, "x")))
    return failure();
  CudaStep step;
  appendFlat(
      ctx, step, countOf(out),
      llvm::formatv("  moec_store_float({0}, i, moec_generic_unary<{1}>"
                    "(moec_load({2}, i)));\n",
                    out.name, int(op.getKind()), x.name)
          .str(),
      ("moe.unary <" + moe::stringifyUnaryKind(op.getKind()) + ">").str());
  return step;
}

FailureOr<CudaStep> emitBinary(const StepContext &ctx, moe::BinaryOp op) {
  const StepArg &l = ctx.arg(op.getLhs()), &r = ctx.arg(op.getRhs());
  const StepArg &out = ctx.arg(op.getResult());
  if (failed(checkFloat(ctx, l, "lhs")) || failed(checkFloat(ctx, r, "rhs")) ||
      failed(checkFloat(ctx, out, "result")))
    return failure();
  std::string body = broadcastPositions(out, {&l, &r});
  body += llvm::formatv("  moec_store_float({0}, i, moec_generic_binary<{1}>("
                        "moec_load({2}, s0), moec_load({3}, s1)));\n",
                        out.name, int(op.getKind()), l.name, r.name)
              .str();
  CudaStep step;
  appendFlat(
      ctx, step, countOf(out), body,
      ("moe.binary <" + moe::stringifyBinaryKind(op.getKind()) + ">").str());
  return step;
}

FailureOr<CudaStep> emitCompare(const StepContext &ctx, moe::CompareOp op) {
  const StepArg &l = ctx.arg(op.getLhs()), &r = ctx.arg(op.getRhs());
  const StepArg &out = ctx.arg(op.getResult());
  // The operands share their element type (the verifier).
  bool integer = isa<IntegerType>(elementOf(l));
  if (!integer &&
      (failed(checkFloat(ctx, l, "lhs")) || failed(checkFloat(ctx, r, "rhs"))))
    return failure();
  StringRef load = integer ? "moec_load_int" : "moec_load";
  std::string body = broadcastPositions(out, {&l, &r});
  body += llvm::formatv("  {0}[i] = moec_generic_compare<{1}>({2}({3}, s0), "
                        "{2}({4}, s1));\n",
                        out.name, int(op.getPredicate()), load, l.name, r.name)
              .str();
  CudaStep step;
  appendFlat(ctx, step, countOf(out), body,
             ("moe.compare <" +
              moe::stringifyComparePredicate(op.getPredicate()) + ">")
                 .str());
  return step;
}

FailureOr<CudaStep> emitSelect(const StepContext &ctx, moe::SelectOp op) {
  const StepArg &c = ctx.arg(op.getCondition());
  const StepArg &t = ctx.arg(op.getOnTrue()), &f = ctx.arg(op.getOnFalse());
  const StepArg &out = ctx.arg(op.getResult());
  // `on_true`, `on_false` and the result share their element type: the
  // chosen element is copied bit for bit.
  std::string body = broadcastPositions(out, {&c, &t, &f});
  body += llvm::formatv("  {0}[i] = moec_load_int({1}, s0) != 0 ? {2}[s1] : "
                        "{3}[s2];\n",
                        out.name, c.name, t.name, f.name)
              .str();
  CudaStep step;
  appendFlat(ctx, step, countOf(out), body, "moe.select");
  return step;
}

FailureOr<CudaStep> emitCast(const StepContext &ctx, moe::CastOp op) {
  const StepArg &x = ctx.arg(op.getX()), &out = ctx.arg(op.getResult());
  bool fromInt = isa<IntegerType>(elementOf(x));
  bool toInt = isa<IntegerType>(elementOf(out));
  if ((!fromInt && failed(checkFloat(ctx, x, "x"))) ||
      (!toInt && failed(checkFloat(ctx, out, "result"))))
    return failure();
  std::string value;
  if (fromInt && toInt)
    value = llvm::formatv("moec_load_int({0}, i)", x.name).str();
  else if (fromInt)
    value = llvm::formatv("(float)moec_load_int({0}, i)", x.name).str();
  else if (!toInt)
    value = llvm::formatv("moec_load({0}, i)", x.name).str();
  else if (elementOf(out).isInteger(1))
    // Nonzero (NaN included) is true.
    value =
        llvm::formatv("(long long)(moec_load({0}, i) != 0.0f)", x.name).str();
  else
    value = llvm::formatv("moec_float_to_int(moec_load({0}, i))", x.name).str();
  std::string body = llvm::formatv("  moec_store_{0}({1}, i, {2});\n",
                                   toInt ? "int" : "float", out.name, value)
                         .str();
  std::string what;
  llvm::raw_string_ostream os(what);
  os << "moe.cast " << elementOf(x) << " to " << elementOf(out);
  CudaStep step;
  appendFlat(ctx, step, countOf(out), body, what);
  return step;
}

//===----------------------------------------------------------------------===//
// moe.softmax, moe.reduce, moe.topk
//===----------------------------------------------------------------------===//

FailureOr<CudaStep> emitSoftmax(const StepContext &ctx, moe::SoftmaxOp op) {
  const StepArg &x = ctx.arg(op.getX()), &out = ctx.arg(op.getResult());
  if (failed(checkFloat(ctx, x, "x")))
    return failure();
  int64_t cols = x.type.getShape().back();
  CudaStep step;
  appendPerRow(
      ctx, step, x, cols, rowThreads(cols),
      llvm::formatv("moec_softmax_row<{0}>({1}, {2}", cols, x.name, out.name)
          .str(),
      "moe.softmax");
  return step;
}

/// Reductions of at most this many elements run one thread per result
/// element, adding in index order exactly as the CPU kernel does; longer
/// ones one block per result element.
constexpr int64_t kSerialReduceMax = 64;

FailureOr<CudaStep> emitReduce(const StepContext &ctx, moe::ReduceOp op) {
  const StepArg &x = ctx.arg(op.getX()), &out = ctx.arg(op.getResult());
  if (failed(checkFloat(ctx, x, "x")))
    return failure();
  ArrayRef<int64_t> dims = op.getDims();
  ArrayRef<int64_t> shape = x.type.getShape();
  SmallVector<int64_t> strides = stridesOf(x);
  // The result element `o` splits over the kept dimensions of `x` (the
  // reduced ones have size 1 there, whether the result keeps them or not);
  // the reduced element `r` over the reduced dimensions, in index order.
  SmallVector<int64_t> keptShape(shape), reducedShape(shape.size(), 1);
  Target base{"base", SmallVector<int64_t>(strides)};
  Target offset{"at", SmallVector<int64_t>(shape.size(), 0)};
  int64_t count = 1;
  for (int64_t d : dims) {
    keptShape[d] = 1;
    base.strides[d] = 0;
    reducedShape[d] = shape[d];
    offset.strides[d] = strides[d];
    count *= shape[d];
  }
  int kind = int(op.getKind());
  bool serial = count <= kSerialReduceMax;
  std::string body = llvm::formatv("  // `{0}` element `o`: the reduced "
                                   "elements base + at(r), r < {1}.\n",
                                   out.name, count)
                         .str();
  body += splitIndex("o", keptShape, {base});
  body += llvm::formatv("  float acc = moec_reduce_init<{0}>();\n", kind);
  body +=
      serial
          ? llvm::formatv("  for (int r = 0; r < {0}; ++r) {{\n", count).str()
          : llvm::formatv("  for (int r = threadIdx.x; r < {0}; r += "
                          "blockDim.x) {{\n",
                          count)
                .str();
  std::string inner = splitIndex("r", reducedShape, {offset});
  // Indent the reduced split by two more.
  SmallVector<StringRef> lines;
  StringRef(inner).drop_back().split(lines, '\n');
  for (StringRef line : lines)
    body += "  " + line.str() + "\n";
  body +=
      llvm::formatv("    acc = moec_reduce_combine<{0}>(acc, moec_load({1}, "
                    "base + at));\n  }\n",
                    kind, x.name)
          .str();
  std::string store =
      llvm::formatv("moec_store_float({0}, o, {1});\n", out.name,
                    op.getKind() == moe::ReduceKind::mean
                        ? "acc / " + floatLiteral(double(count))
                        : std::string("acc"))
          .str();
  std::string what =
      llvm::formatv("moe.reduce <{0}> of {1} elements",
                    moe::stringifyReduceKind(op.getKind()), count)
          .str();
  CudaStep step;
  Count outputs = countOf(out);
  if (serial) {
    appendFlat(ctx, step, outputs,
               "  const long long o = i;\n" + body + "  " + store,
               what + ", in index order");
    return step;
  }
  step.libraries.push_back({"generic", kGeneric});
  unsigned threads = rowThreads(count);
  std::string name = ctx.kernel();
  step.source +=
      llvm::formatv(R"cuda(
// {0}: one block of {1} threads per element of `{2}`.
extern "C" __global__ void __launch_bounds__({1}) {3}({4}) {{
  const long long o = blockIdx.x;
  if (o >= {5}) // uniform over the block: no thread skips the reduction
    return;
{6}  acc = moec_block_reduce<{7}>(acc);
  if (threadIdx.x == 0)
    {8}}
)cuda",
                    what, threads, out.name, name, ctx.parameterList(),
                    outputs.expr(), body, kind, store)
          .str();
  CudaLaunch launch;
  launch.kernel = name;
  launch.grid[0] = outputs.blocks(1);
  launch.block = {threads, 1, 1};
  step.launches.push_back(std::move(launch));
  return step;
}

FailureOr<CudaStep> emitTopK(const StepContext &ctx, moe::TopKOp op) {
  const StepArg &x = ctx.arg(op.getX()), &values = ctx.arg(op.getValues());
  const StepArg &indices = ctx.arg(op.getIndices());
  if (failed(checkFloat(ctx, x, "x")))
    return failure();
  int64_t cols = x.type.getShape().back(), k = op.getK();
  CudaStep step;
  appendPerRow(ctx, step, x, cols, rowThreads(cols),
               llvm::formatv("moec_topk_row<{0}, {1}>({2}, {3}, {4}", cols, k,
                             x.name, values.name, indices.name)
                   .str(),
               llvm::formatv("moe.topk, k = {0}", k).str());
  return step;
}

//===----------------------------------------------------------------------===//
// moe.transpose, moe.batch_matmul
//===----------------------------------------------------------------------===//

FailureOr<CudaStep> emitTranspose(const StepContext &ctx, moe::TransposeOp op) {
  const StepArg &x = ctx.arg(op.getX()), &out = ctx.arg(op.getResult());
  ArrayRef<int64_t> perm = op.getPermutation();
  SmallVector<int64_t> xStrides = stridesOf(x);
  // Result coordinate d is `x` coordinate perm[d]; the element types agree,
  // so elements are copied bit for bit.
  Target src{"src", {}};
  for (int64_t p : perm)
    src.strides.push_back(xStrides[p]);
  std::string body = splitIndex("i", out.type.getShape(), {src});
  body += llvm::formatv("  {0}[i] = {1}[src];\n", out.name, x.name).str();
  std::string what = "moe.transpose [";
  for (auto [j, p] : llvm::enumerate(perm))
    what += (j ? ", " : "") + std::to_string(p);
  CudaStep step;
  appendFlat(ctx, step, countOf(out), body, what + "]");
  return step;
}

FailureOr<CudaStep> emitBatchMatmul(const StepContext &ctx,
                                    moe::BatchMatmulOp op) {
  const StepArg &l = ctx.arg(op.getLhs()), &r = ctx.arg(op.getRhs());
  const StepArg &out = ctx.arg(op.getResult());
  if (failed(checkFloat(ctx, l, "lhs")) || failed(checkFloat(ctx, r, "rhs")) ||
      failed(checkFloat(ctx, out, "result")))
    return failure();
  int64_t rank = l.type.getRank();
  int64_t m = l.type.getDimSize(rank - 2), k = l.type.getDimSize(rank - 1);
  int64_t n = r.type.getDimSize(rank - 1);
  int64_t tiles = llvm::divideCeil(m, 16) * llvm::divideCeil(n, 16);
  Count batches = countOf(l, m * k);
  CudaStep step;
  step.libraries.push_back({"generic", kGeneric});
  std::string name = ctx.kernel();
  step.source += llvm::formatv(R"cuda(
// moe.batch_matmul [{0}, {1}] x [{1}, {2}]: one block of 16 x 16 threads per
// 16 x 16 tile of a batch's result ({3} per batch).
extern "C" __global__ void __launch_bounds__(256) {4}({5}) {{
  moec_batch_matmul_tile<{0}, {2}, {1}>({6}, {7}, {8}, {9});
}
)cuda",
                               m, k, n, tiles, name, ctx.parameterList(),
                               l.name, r.name, out.name, batches.expr())
                     .str();
  CudaLaunch launch;
  launch.kernel = name;
  Count blocks{batches.n * tiles, batches.perToken};
  launch.grid[0] = blocks.blocks(1);
  launch.block = {256, 1, 1};
  step.launches.push_back(std::move(launch));
  return step;
}

//===----------------------------------------------------------------------===//
// moe.gather_elements, moe.scatter_elements, moe.one_hot
//===----------------------------------------------------------------------===//

/// The statements setting `at` to the index `indices[<position>]` along
/// dimension `dim` of `x`: negative indices count from the end, and
/// out-of-range ones are clamped so that a bad index cannot reach outside
/// the buffer (the CPU kernel's elementAt).
std::string clampedIndex(const StepArg &x, const StepArg &indices,
                         StringRef position, int64_t dim, StringRef indent) {
  int64_t size = x.type.getDimSize(dim);
  return llvm::formatv("{0}long long at = (long long){1}[{2}];\n"
                       "{0}if (at < 0)\n"
                       "{0}  at += {3};\n"
                       "{0}at = at < 0 ? 0 : (at > {4} ? {4} : at);\n",
                       indent, indices.name, position, size, size - 1)
      .str();
}

FailureOr<CudaStep> emitGatherElements(const StepContext &ctx,
                                       moe::GatherElementsOp op) {
  const StepArg &x = ctx.arg(op.getX()), &indices = ctx.arg(op.getIndices());
  const StepArg &out = ctx.arg(op.getResult());
  int64_t dim = op.getDim();
  SmallVector<int64_t> xStrides = stridesOf(x);
  // Element i of the result (shaped like `indices`) reads `x` at its own
  // coordinates except along `dim`, where it reads indices[i].
  Target base{"base", SmallVector<int64_t>(xStrides)};
  base.strides[dim] = 0;
  std::string body = splitIndex("i", indices.type.getShape(), {base});
  body += clampedIndex(x, indices, "i", dim, "  ");
  body += llvm::formatv("  {0}[i] = {1}[base + at * {2}];\n", out.name, x.name,
                        xStrides[dim])
              .str();
  CudaStep step;
  appendFlat(
      ctx, step, countOf(out), body,
      llvm::formatv("moe.gather_elements along dimension {0}", dim).str());
  return step;
}

FailureOr<CudaStep> emitScatterElements(const StepContext &ctx,
                                        moe::ScatterElementsOp op) {
  const StepArg &x = ctx.arg(op.getX()), &indices = ctx.arg(op.getIndices());
  const StepArg &updates = ctx.arg(op.getUpdates());
  const StepArg &out = ctx.arg(op.getResult());
  int64_t dim = op.getDim();
  CudaStep step;
  // Launch 1: the result starts as a copy of `x` (same type, bit for bit).
  appendFlat(ctx, step, countOf(out),
             llvm::formatv("  {0}[i] = {1}[i];\n", out.name, x.name).str(),
             "moe.scatter_elements, copy of `x`", "copy");
  // Launch 2: one thread per line of `indices` along `dim` applies the
  // line's updates in index order, so the last update of an element wins as
  // on the CPU. Different lines write different elements (their other
  // coordinates differ), so threads never race.
  SmallVector<int64_t> xStrides = stridesOf(x), iStrides = stridesOf(indices);
  SmallVector<int64_t> lineShape(indices.type.getShape());
  int64_t length = lineShape[dim];
  lineShape[dim] = 1;
  Target line{"line", SmallVector<int64_t>(iStrides)};
  Target base{"base", SmallVector<int64_t>(xStrides)};
  line.strides[dim] = base.strides[dim] = 0;
  std::string body = splitIndex("i", lineShape, {line, base});
  body += llvm::formatv("  for (int j = 0; j < {0}; ++j) {{\n"
                        "    const long long p = line + (long long)j * {1};\n",
                        length, iStrides[dim])
              .str();
  body += clampedIndex(x, indices, "p", dim, "    ");
  body += llvm::formatv("    {0}[base + at * {1}] = {2}[p];\n  }\n", out.name,
                        xStrides[dim], updates.name)
              .str();
  appendFlat(
      ctx, step, countOf(indices, length), body,
      llvm::formatv("moe.scatter_elements along dimension {0}", dim).str(),
      "scatter", llvm::formatv("line of {0} updates, in order", length).str());
  return step;
}

FailureOr<CudaStep> emitOneHot(const StepContext &ctx, moe::OneHotOp op) {
  const StepArg &indices = ctx.arg(op.getIndices());
  const StepArg &out = ctx.arg(op.getResult());
  if (failed(checkFloat(ctx, out, "result")))
    return failure();
  int64_t depth = out.type.getShape().back();
  // Negative indices count from `depth`; anything else outside [0, depth)
  // matches no column.
  std::string body =
      llvm::formatv(
          "  const long long row = i / {0};\n"
          "  long long at = (long long){1}[row];\n"
          "  if (at < 0)\n"
          "    at += {0};\n"
          "  moec_store_float({2}, i, at == i - row * {0} ? {3} : {4});\n",
          depth, indices.name, out.name,
          floatLiteral(op.getOnValue().convertToDouble()),
          floatLiteral(op.getOffValue().convertToDouble()))
          .str();
  CudaStep step;
  appendFlat(ctx, step, countOf(out), body,
             llvm::formatv("moe.one_hot of depth {0}", depth).str());
  return step;
}

} // namespace

//===----------------------------------------------------------------------===//
// Dispatch
//===----------------------------------------------------------------------===//

FailureOr<CudaStep> mlir::moec::cuda::emitGenericStep(const StepContext &ctx) {
  if (failed(checkRows(ctx)))
    return failure();
  return llvm::TypeSwitch<Operation *, FailureOr<CudaStep>>(ctx.op)
      .Case([&](moe::UnaryOp op) { return emitUnary(ctx, op); })
      .Case([&](moe::BinaryOp op) { return emitBinary(ctx, op); })
      .Case([&](moe::CompareOp op) { return emitCompare(ctx, op); })
      .Case([&](moe::SelectOp op) { return emitSelect(ctx, op); })
      .Case([&](moe::CastOp op) { return emitCast(ctx, op); })
      .Case([&](moe::SoftmaxOp op) { return emitSoftmax(ctx, op); })
      .Case([&](moe::ReduceOp op) { return emitReduce(ctx, op); })
      .Case([&](moe::TopKOp op) { return emitTopK(ctx, op); })
      .Case([&](moe::TransposeOp op) { return emitTranspose(ctx, op); })
      .Case([&](moe::BatchMatmulOp op) { return emitBatchMatmul(ctx, op); })
      .Case(
          [&](moe::GatherElementsOp op) { return emitGatherElements(ctx, op); })
      .Case([&](moe::ScatterElementsOp op) {
        return emitScatterElements(ctx, op);
      })
      .Case([&](moe::OneHotOp op) { return emitOneHot(ctx, op); })
      .Default([&](Operation *) -> FailureOr<CudaStep> {
        return ctx.fail("not a generic token-wise op"), failure();
      });
}
