//===- NormEmitter.cpp - CUDA kernels of RMSNorm and RoPE -----------------===//
//
// CUDA C++ for `moe.rms_norm`, `moe.add_rms_norm` (one block per row, the
// row held in registers between the sum of squares and the scaling, with the
// fused activation quantization as a second launch) and `moe.rope` (one
// block per token, the inverse frequencies computed at compile time by
// `moe::getRopeInverseFrequencies`, as every other executor of the op does).
//
//===----------------------------------------------------------------------===//

#include "codegen/cuda/CudaStep.h"

#include "dialects/MoEDialect.h"

#include "llvm/ADT/TypeSwitch.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MathExtras.h"

#include <algorithm>
#include <cstdio>

using namespace mlir;
using namespace mlir::moec::cuda;

//===----------------------------------------------------------------------===//
// Kernel text
//===----------------------------------------------------------------------===//

// VEC-wide loads and stores as f32. Four contiguous elements at an index
// that is a multiple of 4 go through one 16-, 8- or 4-byte access (buffers
// and weights are 64-byte aligned, docs/artifact.md); other widths fall back
// to scalar accesses.
static const char kVectorAccess[] = R"cuda(
template <int VEC, typename T>
__device__ __forceinline__ void moec_load_vec(const T *__restrict__ p,
                                              long long i, float (&v)[VEC]) {
#pragma unroll
  for (int k = 0; k < VEC; ++k)
    v[k] = moec_load(p, i + k);
}
__device__ __forceinline__ void moec_load_vec(const float *__restrict__ p,
                                              long long i, float (&v)[4]) {
  const float4 q = *reinterpret_cast<const float4 *>(p + i);
  v[0] = q.x, v[1] = q.y, v[2] = q.z, v[3] = q.w;
}
__device__ __forceinline__ void moec_load_vec(const moec_bf16 *__restrict__ p,
                                              long long i, float (&v)[4]) {
  const uint2 q = *reinterpret_cast<const uint2 *>(p + i);
  v[0] = __uint_as_float(q.x << 16), v[1] = __uint_as_float(q.x & 0xFFFF0000u);
  v[2] = __uint_as_float(q.y << 16), v[3] = __uint_as_float(q.y & 0xFFFF0000u);
}
__device__ __forceinline__ void moec_load_vec(const moec_fp8 *__restrict__ p,
                                              long long i, float (&v)[4]) {
  const unsigned int q = *reinterpret_cast<const unsigned int *>(p + i);
#pragma unroll
  for (int k = 0; k < 4; ++k)
    v[k] = moec_fp8_to_float((moec_fp8)(q >> (8 * k)));
}

template <int VEC, typename T>
__device__ __forceinline__ void moec_store_vec(T *__restrict__ p, long long i,
                                               const float (&v)[VEC]) {
#pragma unroll
  for (int k = 0; k < VEC; ++k)
    moec_store(p, i + k, v[k]);
}
__device__ __forceinline__ void moec_store_vec(float *__restrict__ p,
                                               long long i,
                                               const float (&v)[4]) {
  *reinterpret_cast<float4 *>(p + i) = make_float4(v[0], v[1], v[2], v[3]);
}
__device__ __forceinline__ void moec_store_vec(moec_bf16 *__restrict__ p,
                                               long long i,
                                               const float (&v)[4]) {
  *reinterpret_cast<uint2 *>(p + i) = make_uint2(
      (unsigned int)moec_float_to_bf16(v[0]) |
          ((unsigned int)moec_float_to_bf16(v[1]) << 16),
      (unsigned int)moec_float_to_bf16(v[2]) |
          ((unsigned int)moec_float_to_bf16(v[3]) << 16));
}

// `v` rounded to the element type of `p`, as a later load of it would read.
__device__ __forceinline__ float moec_round_as(const float *, float v) {
  return v;
}
__device__ __forceinline__ float moec_round_as(const moec_bf16 *, float v) {
  return moec_bf16_to_float(moec_float_to_bf16(v));
}
)cuda";

static const char kRmsNorm[] = R"cuda(
// moe.rms_norm / moe.add_rms_norm over rows of D channels: one block of
// THREADS threads per row. The row is cut into D / VEC groups of VEC
// channels; thread t owns groups t, t + THREADS, t + 2 THREADS, ... (a warp
// reads consecutive groups) and keeps them in registers between the sum of
// squares (f32, block-reduced) and the scaling, so x is read once.
// ADD: x = lhs + rhs, stored into `sum` and read back at `sum`'s precision,
// as the CPU kernel's norm reads the stored sum; otherwise x = lhs.
// out = weight * (x * (1 / sqrt(mean(x^2) + eps))), the CPU kernel's order.
template <int D, int THREADS, int VEC, bool ADD, typename TX, typename TS,
          typename TW, typename TO>
__device__ __forceinline__ void
moec_rms_norm_row(const TX *__restrict__ lhs, const TX *__restrict__ rhs,
                  TS *__restrict__ sum, const TW *__restrict__ weight,
                  TO *__restrict__ out, float eps, long long rows) {
  static_assert(D % VEC == 0, "VEC must divide the row");
  constexpr int kGroups = D / VEC;
  constexpr int kItems = (kGroups + THREADS - 1) / THREADS;
  const long long row = blockIdx.x;
  if (row >= rows) // uniform over the block: no thread skips the reduction
    return;
  const long long base = row * D;
  float x[kItems][VEC];
  float squares = 0.0f;
#pragma unroll
  for (int j = 0; j < kItems; ++j) {
    const int g = threadIdx.x + THREADS * j;
    if (g < kGroups) {
      moec_load_vec(lhs + base, (long long)g * VEC, x[j]);
      if constexpr (ADD) {
        float r[VEC];
        moec_load_vec(rhs + base, (long long)g * VEC, r);
#pragma unroll
        for (int k = 0; k < VEC; ++k)
          x[j][k] += r[k];
        moec_store_vec(sum + base, (long long)g * VEC, x[j]);
#pragma unroll
        for (int k = 0; k < VEC; ++k)
          x[j][k] = moec_round_as(sum, x[j][k]);
      }
#pragma unroll
      for (int k = 0; k < VEC; ++k)
        squares += x[j][k] * x[j][k];
    }
  }
  squares = moec_block_sum(squares);
  const float inv = 1.0f / sqrtf(squares / (float)D + eps);
#pragma unroll
  for (int j = 0; j < kItems; ++j) {
    const int g = threadIdx.x + THREADS * j;
    if (g < kGroups) {
      float w[VEC], y[VEC];
      moec_load_vec(weight, (long long)g * VEC, w);
#pragma unroll
      for (int k = 0; k < VEC; ++k)
        y[k] = w[k] * (x[j][k] * inv);
      moec_store_vec(out + base, (long long)g * VEC, y);
    }
  }
}
)cuda";

static const char kRope[] = R"cuda(
// moe.rope on rows of [HEADS, DIM]: one block per token. The block first
// computes cos and sin of position * invFreq[i] for the DIM / 2 frequencies
// (accurate sincosf, times the YaRN attention factor) into shared memory,
// then thread k rotates pairs p = k, k + blockDim.x, ... of the
// HEADS * DIM / 2 pairs: head p / (DIM / 2), frequency i = p % (DIM / 2),
// channels (i, i + DIM / 2), or (2i, 2i + 1) when INTERLEAVED.
template <int HEADS, int DIM, bool INTERLEAVED, typename T, typename TP>
__device__ __forceinline__ void
moec_rope_row(const T *__restrict__ x, const TP *__restrict__ positions,
              T *__restrict__ out, const float *__restrict__ invFreq,
              float attention, long long rows) {
  static_assert(DIM % 2 == 0, "moe.rope rotates pairs of channels");
  constexpr int kHalf = DIM / 2;
  __shared__ float cosines[kHalf], sines[kHalf];
  const long long t = blockIdx.x;
  if (t >= rows) // uniform over the block
    return;
  const float position = (float)positions[t];
  for (int i = threadIdx.x; i < kHalf; i += blockDim.x) {
    float s, c;
    sincosf(invFreq[i] * position, &s, &c);
    cosines[i] = c * attention;
    sines[i] = s * attention;
  }
  __syncthreads();
  const long long base = t * (HEADS * DIM);
  for (int p = threadIdx.x; p < HEADS * kHalf; p += blockDim.x) {
    const int h = p / kHalf, i = p - h * kHalf;
    const int a = h * DIM + (INTERLEAVED ? 2 * i : i);
    const int b = INTERLEAVED ? a + 1 : a + kHalf;
    const float x1 = moec_load(x, base + a), x2 = moec_load(x, base + b);
    const float c = cosines[i], s = sines[i];
    moec_store(out, base + a, x1 * c - x2 * s);
    moec_store(out, base + b, x2 * c + x1 * s);
  }
}
)cuda";

//===----------------------------------------------------------------------===//
// Helpers
//===----------------------------------------------------------------------===//

namespace {

bool isLoadable(Type type) {
  return type.isF32() || type.isBF16() || isa<Float8E4M3FNType>(type);
}
bool isStorable(Type type) { return type.isF32() || type.isBF16(); }

/// Fails unless `a` can be read (`store` false) or written as floats.
LogicalResult checkFloat(const StepContext &ctx, const StepArg &a,
                         StringRef what, bool store) {
  Type type = a.type.getElementType();
  if (store ? isStorable(type) : isLoadable(type))
    return success();
  return ctx.fail(Twine("unsupported element type of `") + what +
                  (store ? "` (expected f32 or bf16)"
                         : "` (expected f32, bf16 or f8E4M3FN)"));
}

/// Rows of `rowLength` elements of `a` per token (per-token values) or in
/// all.
int64_t rowsPerUnit(const StepArg &a, int64_t rowLength) {
  int64_t n = a.isPerToken() ? a.rowsPerToken * a.rowElements()
                             : a.type.getNumElements();
  return n / rowLength;
}
std::string rowsExpr(const StepArg &a, int64_t rowLength) {
  int64_t n = rowsPerUnit(a, rowLength);
  return a.isPerToken() ? llvm::formatv("tokens * {0}LL", n).str()
                        : llvm::formatv("{0}LL", n).str();
}
GridExtent rowsGrid(const StepArg &a, int64_t rowLength) {
  int64_t n = rowsPerUnit(a, rowLength);
  return a.isPerToken() ? GridExtent::tokens(n)
                        : GridExtent::fixed(std::max<int64_t>(n, 1));
}

/// `v` as a C float literal that reads back as exactly `v`.
std::string floatLiteral(float v) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.9ef", double(v));
  return text;
}

//===----------------------------------------------------------------------===//
// moe.rms_norm, moe.add_rms_norm
//===----------------------------------------------------------------------===//

/// One RMSNorm launch over the rows of `x` (`lhs`, or `lhs + rhs` stored
/// into `sum` when `sum` is given), then the fused quantization.
FailureOr<CudaStep> emitRmsNorm(const StepContext &ctx, Value lhs, Value rhs,
                                Value sum, Value weight, Value result,
                                double epsilon, StringRef what) {
  const StepArg &x = ctx.arg(lhs), &w = ctx.arg(weight);
  const StepArg &out = ctx.arg(result);
  if (failed(checkFloat(ctx, x, "x", /*store=*/false)) ||
      failed(checkFloat(ctx, w, "weight", /*store=*/false)) ||
      failed(checkFloat(ctx, out, "result", /*store=*/true)))
    return failure();
  if (sum && failed(checkFloat(ctx, ctx.arg(sum), "sum", /*store=*/true)))
    return failure();
  if (x.rowsPerToken != out.rowsPerToken)
    return ctx.fail("expected `x` and the result to have the same rows"),
           failure();
  int64_t dim = x.type.getShape().back();
  if (dim <= 0)
    return ctx.fail("expected a non-empty last dimension"), failure();
  // Four-wide accesses where the row allows them; about eight groups per
  // thread, 32 to 1024 threads.
  int64_t vec = dim % 4 == 0 ? 4 : 1;
  int64_t groups = dim / vec;
  unsigned threads = unsigned(std::clamp<int64_t>(
      llvm::alignTo(llvm::divideCeil(groups, 8), 32), 32, 1024));

  CudaStep step;
  step.libraries.push_back({"vector_access", kVectorAccess});
  step.libraries.push_back({"rms_norm", kRmsNorm});
  std::string name = ctx.kernel();
  std::string sumName = sum ? ctx.arg(sum).name : "(float *)nullptr";
  std::string rhsName = sum ? ctx.arg(rhs).name : x.name;
  step.source +=
      llvm::formatv(R"cuda(
// {0}: one block of {1} threads per row of {2} channels ({3}-wide groups).
extern "C" __global__ void __launch_bounds__({1}) {4}({5}) {{
  moec_rms_norm_row<{2}, {1}, {3}, {6}>({7}, {8}, {9}, {10}, {11}, {12}, {13});
}
)cuda",
                    what, threads, dim, vec, name, ctx.parameterList(),
                    sum ? "true" : "false", x.name, rhsName, sumName, w.name,
                    out.name, floatLiteral(float(epsilon)), rowsExpr(x, dim))
          .str();
  CudaLaunch launch;
  launch.kernel = name;
  launch.grid[0] = rowsGrid(x, dim);
  launch.block = {threads, 1, 1};
  step.launches.push_back(std::move(launch));
  if (failed(appendFusedQuantize(ctx, step)))
    return failure();
  return step;
}

//===----------------------------------------------------------------------===//
// moe.rope
//===----------------------------------------------------------------------===//

FailureOr<CudaStep> emitRope(const StepContext &ctx, moe::RopeOp op) {
  const StepArg &x = ctx.arg(op.getX()),
                &positions = ctx.arg(op.getPositions());
  const StepArg &out = ctx.arg(op.getResult());
  if (failed(checkFloat(ctx, x, "x", /*store=*/false)) ||
      failed(checkFloat(ctx, out, "result", /*store=*/true)))
    return failure();
  if (x.type.getRank() != 3 || x.rowsPerToken != positions.rowsPerToken)
    return ctx.fail("expected `x` of shape [T, heads, dim] with one position "
                    "per row"),
           failure();
  int64_t heads = x.type.getDimSize(1), dim = x.type.getDimSize(2);
  if (dim % 2 != 0 || dim == 0)
    return ctx.fail("expected an even, non-zero last dimension"), failure();
  int64_t half = dim / 2;
  std::vector<float> invFreq = moe::getRopeInverseFrequencies(
      dim, op.getTheta().convertToDouble(), op.getScalingAttr());
  float attention = float(moe::getRopeCosSinScale(op.getScalingAttr()));

  CudaStep step;
  step.libraries.push_back({"rope", kRope});
  std::string name = ctx.kernel();
  std::string table = name + "_inv_freq";
  std::string values;
  for (auto [i, f] : llvm::enumerate(invFreq))
    values += (i % 4 == 0 ? "\n    " : " ") + floatLiteral(f) + ",";
  moe::RopeScalingAttr scaling = op.getScalingAttr();
  std::string scalingText = "none";
  if (scaling)
    scalingText =
        llvm::formatv("{0} x{1}",
                      moe::stringifyRopeScalingKind(scaling.getKind()),
                      scaling.getFactor().convertToDouble())
            .str();
  unsigned threads = unsigned(std::clamp<int64_t>(
      llvm::alignTo(std::min<int64_t>(heads * half, 256), 32), 32, 256));
  step.source +=
      llvm::formatv(
          R"cuda(
// moe.rope: theta {0}, scaling {1}, {2}; inverse frequencies
// computed at compile time (moe::getRopeInverseFrequencies).
static __device__ const float {3}[{4}] = {{{5}
};
// One block of {6} threads per token row of [{7}, {8}].
extern "C" __global__ void __launch_bounds__({6}) {9}({10}) {{
  moec_rope_row<{7}, {8}, {11}>({12}, {13}, {14}, {3}, {15}, {16});
}
)cuda",
          op.getTheta().convertToDouble(), scalingText,
          op.getInterleaved() ? "interleaved pairs" : "rotate-half pairs",
          table, half, values, threads, heads, dim, name, ctx.parameterList(),
          op.getInterleaved() ? "true" : "false", x.name, positions.name,
          out.name, floatLiteral(attention), rowsExpr(x, heads * dim))
          .str();
  CudaLaunch launch;
  launch.kernel = name;
  launch.grid[0] = rowsGrid(x, heads * dim);
  launch.block = {threads, 1, 1};
  step.launches.push_back(std::move(launch));
  return step;
}

} // namespace

//===----------------------------------------------------------------------===//
// Dispatch
//===----------------------------------------------------------------------===//

FailureOr<CudaStep> mlir::moec::cuda::emitNormStep(const StepContext &ctx) {
  return llvm::TypeSwitch<Operation *, FailureOr<CudaStep>>(ctx.op)
      .Case([&](moe::RmsNormOp op) {
        return emitRmsNorm(ctx, op.getX(), Value(), Value(), op.getWeight(),
                           op.getResult(), op.getEpsilon().convertToDouble(),
                           "moe.rms_norm");
      })
      .Case([&](moe::AddRmsNormOp op) {
        return emitRmsNorm(ctx, op.getLhs(), op.getRhs(), op.getSum(),
                           op.getWeight(), op.getResult(),
                           op.getEpsilon().convertToDouble(),
                           "moe.add_rms_norm");
      })
      .Case([&](moe::RopeOp op) { return emitRope(ctx, op); })
      .Default([&](Operation *) -> FailureOr<CudaStep> {
        return ctx.fail("not a norm or rope op"), failure();
      });
}
