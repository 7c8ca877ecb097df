//===- AttentionEmitter.cpp - moe.attention as a flash-style kernel -------===//
//
// Causal (or full) scaled dot-product attention for MHA, GQA and expanded
// MLA (q/k head dim != v head dim): one block per (query tile, query head),
// key/value tiles streamed through shared memory, online softmax with a
// running max and sum in f32. The semantic reference is `emitAttention` in
// codegen/cpu/PlannedKernels.cpp (same layouts, scale and masking).
//
//===----------------------------------------------------------------------===//

#include "codegen/cuda/CudaStep.h"

#include "dialects/MoEDialect.h"

#include "llvm/Support/FormatVariadic.h"

#include <cmath>
#include <cstdio>

using namespace mlir;
using namespace mlir::moec;
using namespace mlir::moec::cuda;

namespace {

/// Warps per block; each owns one query row of the block's tile.
constexpr int64_t kAttentionWarps = 8;
/// Largest head dimension (q/k or v) the kernel keeps in registers.
constexpr int64_t kMaxHeadDim = 256;
/// Shared memory budget for one key/value tile.
constexpr int64_t kTileBudget = 40 * 1024;

} // namespace

// Layouts (row-major): q [T, HQ, DQK], k [T, HKV, DQK], v [T, HKV, DV],
// out [T, HQ, DV]; query head h reads key/value head h / (HQ / HKV).
//
// Thread mapping: block (bx, h) handles queries t = bx*NW + w, one per warp
// w, for head h. Lane l holds q[t, h, d] and the output accumulator for
// d = l, l + 32, ... in registers. The block walks keys in tiles of BK <= 32
// (only up to its last query when causal); all threads stage the tile's K
// and V rows of the kv head in shared memory as f32, then each warp computes
// the scores of its query against the tile's keys (a warp-wide dot product
// per key; lane j keeps the score of key j), masks keys past t (causal) or
// past T, and folds the tile into the running max `m`, sum `l` and output
// with the usual rescaling by exp(m_old - m_new). Out-of-range warps still
// take part in every block barrier and write nothing.
static const char kAttention[] = R"cuda(
template <int HQ, int HKV, int DQK, int DV, bool CAUSAL, int NW, int BK,
          typename Q, typename KT, typename V, typename O>
__device__ __forceinline__ void
moec_attention(const Q *__restrict__ q, const KT *__restrict__ k,
               const V *__restrict__ v, O *__restrict__ out,
               long long tokens, float scale) {
  static_assert(BK <= 32, "lane j keeps the score of key j of a tile");
  constexpr int GROUP = HQ / HKV;
  constexpr int NQ = (DQK + 31) / 32, NV = (DV + 31) / 32;
  const float NEG_INF = -__int_as_float(0x7F800000);
  __shared__ float ks[BK][DQK];
  __shared__ float vs[BK][DV];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int h = blockIdx.y, kvh = h / GROUP;
  const long long q0 = (long long)blockIdx.x * NW;
  if (q0 >= tokens)
    return; // the whole block
  const long long t = q0 + warp;
  const bool active = t < tokens;

  float qr[NQ], o[NV];
#pragma unroll
  for (int i = 0; i < NQ; ++i) {
    const int d = lane + 32 * i;
    qr[i] = active && d < DQK ? moec_load(q, (t * HQ + h) * DQK + d) : 0.0f;
  }
#pragma unroll
  for (int i = 0; i < NV; ++i)
    o[i] = 0.0f;
  float m = NEG_INF, l = 0.0f;

  // Keys the block needs, and keys this warp's query attends to.
  const long long blockEnd = CAUSAL ? min(q0 + NW, tokens) : tokens;
  const long long rowEnd = CAUSAL ? t + 1 : tokens;
  for (long long s0 = 0; s0 < blockEnd; s0 += BK) {
    __syncthreads(); // the previous tile is consumed
    for (int i = threadIdx.x; i < BK * DQK; i += NW * 32) {
      const int r = i / DQK, d = i % DQK;
      const long long s = s0 + r;
      ks[r][d] = s < blockEnd ? moec_load(k, (s * HKV + kvh) * DQK + d) : 0.0f;
    }
    for (int i = threadIdx.x; i < BK * DV; i += NW * 32) {
      const int r = i / DV, d = i % DV;
      const long long s = s0 + r;
      vs[r][d] = s < blockEnd ? moec_load(v, (s * HKV + kvh) * DV + d) : 0.0f;
    }
    __syncthreads();
    // Warp-uniform: t is the same for the 32 lanes.
    const int n = active ? (int)min((long long)BK, rowEnd - s0) : 0;
    if (n <= 0)
      continue;
    // Scores of keys s0 .. s0 + n - 1; lane j keeps key j's.
    float mine = NEG_INF;
    for (int j = 0; j < n; ++j) {
      float part = 0.0f;
#pragma unroll
      for (int i = 0; i < NQ; ++i) {
        const int d = lane + 32 * i;
        if (d < DQK)
          part += qr[i] * ks[j][d];
      }
      const float score = moec_warp_sum(part) * scale;
      if (lane == j)
        mine = score;
    }
    // Online softmax: new running max, rescale what is accumulated.
    const float mNew = fmaxf(m, moec_warp_max(mine));
    const float alpha = m == NEG_INF ? 0.0f : expf(m - mNew);
    const float p = lane < n ? expf(mine - mNew) : 0.0f;
    l = l * alpha + moec_warp_sum(p);
#pragma unroll
    for (int i = 0; i < NV; ++i)
      o[i] *= alpha;
    for (int j = 0; j < n; ++j) {
      const float pj = __shfl_sync(0xFFFFFFFFu, p, j);
#pragma unroll
      for (int i = 0; i < NV; ++i) {
        const int d = lane + 32 * i;
        if (d < DV)
          o[i] += pj * vs[j][d];
      }
    }
    m = mNew;
  }
  if (!active)
    return;
#pragma unroll
  for (int i = 0; i < NV; ++i) {
    const int d = lane + 32 * i;
    if (d < DV)
      moec_store(out, (t * HQ + h) * DV + d, o[i] / l);
  }
}
)cuda";

FailureOr<CudaStep>
mlir::moec::cuda::emitAttentionStep(const StepContext &ctx) {
  auto op = dyn_cast<moe::AttentionOp>(ctx.op);
  if (!op)
    return ctx.fail("not an attention op"), failure();
  const StepArg &q = ctx.arg(op.getQ()), &k = ctx.arg(op.getK()),
                &v = ctx.arg(op.getV()), &out = ctx.arg(op.getResult());
  int64_t heads = q.type.getDimSize(1), dqk = q.type.getDimSize(2);
  int64_t kvHeads = k.type.getDimSize(1), dv = v.type.getDimSize(2);
  for (const StepArg *a : {&q, &k, &v, &out})
    if (!a->isPerToken() || a->rowsPerToken != 1)
      return ctx.fail("attention expects one row per token"), failure();
  if (kvHeads <= 0 || heads % kvHeads)
    return ctx.fail("expected query heads to be a multiple of key/value heads"),
           failure();
  if (dqk > kMaxHeadDim || dv > kMaxHeadDim)
    return ctx.fail(llvm::formatv("head dimensions above {0} are not "
                                  "supported (q/k {1}, v {2})",
                                  kMaxHeadDim, dqk, dv)
                        .str()),
           failure();
  StringRef outType = out.elementCType();
  if (outType != "float" && outType != "moec_bf16")
    return ctx.fail("attention writes f32 or bf16 only"), failure();
  if (heads > 65535)
    return ctx.fail("more than 65535 query heads"), failure();

  // The largest key tile (32, 16 or 8 keys) whose K and V fit the budget.
  int64_t tile = 32;
  while (tile > 8 && tile * (dqk + dv) * 4 > kTileBudget)
    tile /= 2;
  char scale[64];
  std::snprintf(scale, sizeof(scale), "%af",
                static_cast<double>(float(op.getScale().convertToDouble())));

  CudaStep step;
  step.libraries.push_back({"attention", kAttention});
  step.source += llvm::formatv(
      R"cuda(
// moe.attention: {2} query heads, {3} kv heads, head dims {4}/{5}{6}.
// Grid (ceil(T / {7}), {2}); {7} warps, one query row each; key tiles of {8}.
extern "C" __global__ void __launch_bounds__({9}) {0}({1}) {{
  moec_attention<{2}, {3}, {4}, {5}, {10}, {7}, {8}>(
      {11}, {12}, {13}, {14}, tokens, {15});
}
)cuda",
      ctx.kernel(), ctx.parameterList(), heads, kvHeads, dqk, dv,
      op.getCausal() ? ", causal" : "", kAttentionWarps, tile,
      kAttentionWarps * 32, op.getCausal() ? "true" : "false", q.name, k.name,
      v.name, out.name, scale);
  CudaLaunch launch;
  launch.kernel = ctx.kernel();
  launch.grid[0] = GridExtent::tokens(1, kAttentionWarps);
  launch.grid[1] = GridExtent::fixed(heads);
  launch.block = {unsigned(kAttentionWarps * 32), 1, 1};
  step.launches.push_back(std::move(launch));
  return step;
}
