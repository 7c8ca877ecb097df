//===- RoutingEmitter.cpp - moe.router, moe.dispatch, moe.combine ---------===//
//
// The CUDA kernels of MoE routing: the fused router (gate GEMV, scoring,
// group-limited top-k, weighting), the stable permutation of token rows into
// expert-contiguous order, and the weighted un-permute. Each mirrors its CPU
// kernel in codegen/cpu/PlannedKernels.cpp operation by operation (same
// accumulation order, no FMA contraction where the CPU has none), so that the
// selected experts and the dispatch layout are identical on both targets.
//
//===----------------------------------------------------------------------===//

#include "codegen/cuda/CudaStep.h"

#include "dialects/MoEDialect.h"

#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MathExtras.h"

#include <cmath>
#include <cstdio>

using namespace mlir;
using namespace mlir::moec;
using namespace mlir::moec::cuda;

namespace {

/// Threads per block of the router's gate GEMV (at most; fewer for small E).
constexpr int64_t kRouterThreads = 256;
/// Hidden columns the router stages per chunk.
constexpr int64_t kRouterChunk = 16;
/// (token, slot) pairs per block of the dispatch kernels.
constexpr int64_t kDispatchChunk = 256;
/// Threads per block of the row copy and combine kernels.
constexpr int64_t kRowThreads = 256;
/// Static shared memory a block may use without cuFuncSetAttribute.
constexpr int64_t kMaxStaticShared = 48 * 1024;

/// `v` rounded to f32, as an exact hexadecimal CUDA literal (`0x1.4p+1f`).
std::string floatLiteral(double v) {
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), "%af", static_cast<double>(float(v)));
  return buffer;
}

/// Whether `arg` is computed per token with one row per token.
bool isTokenRows(const StepArg &arg) {
  return arg.isPerToken() && arg.rowsPerToken == 1;
}

} // namespace

//===----------------------------------------------------------------------===//
// Shared device code
//===----------------------------------------------------------------------===//

static const char kRoutingCommon[] = R"cuda(
// Copies one element: raw bits when the types agree, else through f32.
template <typename T>
__device__ __forceinline__ void moec_routing_copy(const T *src, long long i,
                                                  T *dst, long long j) {
  dst[j] = src[i];
}
template <typename S, typename D>
__device__ __forceinline__ void moec_routing_copy(const S *src, long long i,
                                                  D *dst, long long j) {
  moec_store(dst, j, moec_load(src, i));
}
)cuda";

//===----------------------------------------------------------------------===//
// moe.router
//===----------------------------------------------------------------------===//

// TPB tokens per block (up to 8; fewer when shared memory is short).
// Phase 1 (all NT threads): thread i owns the logits of experts e0 + i for
// e0 = 0, NT, 2 NT, ..., for each of the block's tokens; the block stages CH
// hidden columns of the tokens' x and of those NT gate rows in shared
// memory at a time, and each thread accumulates every dot product
// sequentially in hidden order with separate multiply and add (the CPU
// kernel's order and rounding), so the gate tile is read once per TPB
// tokens. Phase 2 (warp w for token w of the block): scoring, bias,
// group-limited and top-k selection with warp-wide arg-max reductions, then
// weighting.
static const char kRouter[] = R"cuda(
__device__ __forceinline__ bool moec_router_isnan(float v) {
  return (__float_as_uint(v) & 0x7FFFFFFFu) > 0x7F800000u;
}

// The rank order of DESIGN.md §3.5: a number before NaN, a higher value
// first (-0 == +0), ties to the lower index; index < 0 ("no candidate")
// last. A strict total order, so the best entry under it is exactly what
// the CPU kernel's ascending scan ("replace if strictly better") keeps.
__device__ __forceinline__ bool moec_router_before(int ai, float av, int bi,
                                                   float bv) {
  if (ai < 0)
    return false;
  if (bi < 0)
    return true;
  const bool an = moec_router_isnan(av), bn = moec_router_isnan(bv);
  if (an != bn)
    return bn;
  if (!an && av != bv)
    return av > bv;
  return ai < bi;
}

// The best entry of values[begin, end) not marked in `taken`, for the whole
// warp: lane l scans begin + l, begin + l + 32, ... in ascending order, then
// an xor butterfly leaves the same winner (index, value) in every lane.
// Index -1 when every entry is taken.
__device__ __forceinline__ void
moec_router_argbest(const float *values, const unsigned char *taken,
                    int begin, int end, int &bestIndex, float &bestValue) {
  const int lane = threadIdx.x & 31;
  int bi = -1;
  float bv = 0.0f;
  for (int e = begin + lane; e < end; e += 32)
    if (!taken[e] && moec_router_before(e, values[e], bi, bv)) {
      bi = e;
      bv = values[e];
    }
  for (int o = 16; o > 0; o >>= 1) {
    const int oi = __shfl_xor_sync(0xFFFFFFFFu, bi, o);
    const float ov = __shfl_xor_sync(0xFFFFFFFFu, bv, o);
    if (moec_router_before(oi, ov, bi, bv)) {
      bi = oi;
      bv = ov;
    }
  }
  bestIndex = bi;
  bestValue = bv;
}

// E experts, H hidden, K routed slots then SHARED folded shared experts,
// G = n_group groups of which KEEP are kept, NT threads (a multiple of 32),
// TPB <= NT / 32 tokens per block (they share each staged gate tile).
template <int E, int H, int K, int SHARED, int G, int KEEP, bool SOFTMAX,
          bool TOP2, bool NORM, bool BIAS, int NT, int TPB, typename X,
          typename W, typename B>
__device__ __forceinline__ void
moec_router(const X *__restrict__ x, const W *__restrict__ gate,
            const B *__restrict__ bias, float *__restrict__ weights,
            int *__restrict__ indices, long long tokens, float scaling,
            float epsilon) {
  static_assert(TPB * 32 <= NT, "one selecting warp per token");
  constexpr int CH = 16; // hidden columns per staged chunk
  constexpr int PG = E / G;
  constexpr int SLOTS = K + SHARED;
  __shared__ float tile[NT][CH + 1]; // gate rows e0.., padded: no conflicts
  __shared__ float xs[TPB][CH];
  __shared__ float sScores[TPB][E], sSelection[TPB][E];
  __shared__ unsigned char sTaken[TPB][E];
  __shared__ float sGroupScore[TPB][G];
  __shared__ unsigned char sGroupKept[TPB][G];
  __shared__ int sChosen[TPB][K];
  const long long t0 = (long long)blockIdx.x * TPB;
  if (t0 >= tokens)
    return; // the whole block

  // §3.1: logits in f32, each a sequential sum over the hidden dimension,
  // for the block's TPB tokens at once (acc[r] is token t0 + r's).
  for (int e0 = 0; e0 < E; e0 += NT) {
    const int e = e0 + (int)threadIdx.x;
    float acc[TPB];
#pragma unroll
    for (int r = 0; r < TPB; ++r)
      acc[r] = 0.0f;
    for (int c0 = 0; c0 < H; c0 += CH) {
      const int n = min(CH, H - c0);
      __syncthreads(); // the previous chunk is consumed
      for (int l = threadIdx.x; l < TPB * CH; l += NT) {
        const int r = l / CH, c = l % CH;
        if (t0 + r < tokens && c < n)
          xs[r][c] = moec_load(x, (t0 + r) * H + c0 + c);
      }
      // Coalesced: consecutive threads read consecutive columns of a row.
      for (int l = threadIdx.x; l < NT * CH; l += NT) {
        const int r = l / CH, c = l % CH;
        if (e0 + r < E && c < n)
          tile[r][c] = moec_load(gate, (long long)(e0 + r) * H + c0 + c);
      }
      __syncthreads();
      if (e < E)
        for (int c = 0; c < n; ++c) {
          const float g = tile[threadIdx.x][c];
#pragma unroll
          for (int r = 0; r < TPB; ++r)
            acc[r] = __fadd_rn(acc[r], __fmul_rn(xs[r][c], g));
        }
    }
    if (e < E)
#pragma unroll
      for (int r = 0; r < TPB; ++r)
        sScores[r][e] = acc[r];
  }
  __syncthreads();
  // Selection: warp w for token t0 + w; no block barrier follows.
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const long long t = t0 + warp;
  if (warp >= TPB || t >= tokens)
    return;
  float *scores = sScores[warp], *selection = sSelection[warp];
  unsigned char *taken = sTaken[warp], *groupKept = sGroupKept[warp];
  float *groupScore = sGroupScore[warp];
  int *chosen = sChosen[warp];

  // §3.2: scores. The max skips NaN like the CPU's `max < l ? l : max`;
  // the sum is sequential, in expert order.
  if (SOFTMAX) {
    float m = -__int_as_float(0x7F800000);
    for (int e = lane; e < E; e += 32)
      m = fmaxf(m, scores[e]);
    m = moec_warp_max(m);
    for (int e = lane; e < E; e += 32)
      scores[e] = expf(scores[e] - m);
    __syncwarp();
    float sum = 0.0f;
    if (lane == 0)
      for (int e = 0; e < E; ++e)
        sum = sum + scores[e];
    sum = __shfl_sync(0xFFFFFFFFu, sum, 0);
    for (int e = lane; e < E; e += 32)
      scores[e] = scores[e] / sum;
  } else {
    for (int e = lane; e < E; e += 32)
      scores[e] = 1.0f / (1.0f + expf(-scores[e]));
  }
  // §3.3: the correction bias only steers selection.
  for (int e = lane; e < E; e += 32) {
    selection[e] = BIAS ? scores[e] + moec_load(bias, e) : scores[e];
    taken[e] = 0;
  }
  __syncwarp();

  // §3.4: score each group (top-2 sum or max), keep the best KEEP groups,
  // mask the experts of the others with -inf.
  if (G > 1) {
    for (int g = 0; g < G; ++g) {
      int first, second;
      float firstValue, secondValue;
      moec_router_argbest(selection, taken, g * PG, (g + 1) * PG, first,
                          firstValue);
      if (lane == 0)
        taken[first] = 1;
      __syncwarp();
      moec_router_argbest(selection, taken, g * PG, (g + 1) * PG, second,
                          secondValue);
      __syncwarp();
      if (lane == 0) {
        taken[first] = 0;
        groupScore[g] = TOP2 ? firstValue + secondValue : firstValue;
        groupKept[g] = 0;
      }
      __syncwarp();
    }
    for (int r = 0; r < KEEP; ++r) {
      int best;
      float value;
      moec_router_argbest(groupScore, groupKept, 0, G, best, value);
      __syncwarp();
      if (lane == 0)
        groupKept[best] = 1;
      __syncwarp();
    }
    for (int e = lane; e < E; e += 32)
      if (!groupKept[e / PG])
        selection[e] = -__int_as_float(0x7F800000);
    __syncwarp();
  }

  // §3.5: top-k on the selection scores, distinct indices.
  for (int j = 0; j < K; ++j) {
    int best;
    float value;
    moec_router_argbest(selection, taken, 0, E, best, value);
    __syncwarp();
    if (lane == 0) {
      taken[best] = 1;
      chosen[j] = best;
    }
    __syncwarp();
  }

  // §3.6: the unbiased scores, renormalised (sequential sum) and scaled;
  // folded shared experts E.. follow with weight 1.
  if (lane == 0) {
    float sum = 0.0f;
    for (int j = 0; j < K; ++j)
      sum = sum + scores[chosen[j]];
    for (int j = 0; j < K; ++j) {
      float w = scores[chosen[j]];
      if (NORM)
        w = w / (sum + epsilon);
      weights[t * SLOTS + j] = w * scaling;
      indices[t * SLOTS + j] = chosen[j];
    }
    for (int j = K; j < SLOTS; ++j) {
      weights[t * SLOTS + j] = 1.0f;
      indices[t * SLOTS + j] = E + (j - K);
    }
  }
}
)cuda";

static FailureOr<CudaStep> emitRouter(const StepContext &ctx,
                                      moe::RouterOp op) {
  const StepArg &x = ctx.arg(op.getX()), &gate = ctx.arg(op.getGate());
  const StepArg &weights = ctx.arg(op.getWeights()),
                &indices = ctx.arg(op.getIndices());
  moe::RoutingAttr routing = op.getRouting();
  int64_t hidden = x.type.getDimSize(1), experts = gate.type.getDimSize(0);
  int64_t k = routing.getK(), shared = int64_t(op.getSharedExperts());
  int64_t groups = routing.getNGroup(), keep = routing.getTopkGroup();
  if (!isTokenRows(x) || !isTokenRows(weights) || !isTokenRows(indices))
    return ctx.fail("the router expects one row per token"), failure();
  if (k < 1 || k > experts || groups <= 0 || experts % groups ||
      (groups > 1 && experts / groups < 2) || keep < 1 || keep > groups)
    return ctx.fail("unsupported routing shape"), failure();
  double scaling = routing.getRoutedScalingFactor().convertToDouble();
  if (!std::isfinite(scaling))
    return ctx.fail("the routed scaling factor is not finite"), failure();
  int64_t threads =
      std::min<int64_t>(kRouterThreads, llvm::alignTo(experts, 32));
  // The gate tile, then per token: x chunk, scores, selection, taken, group
  // arrays, chosen. As many tokens per block (one selecting warp each) as
  // fit, keeping 1 KiB for alignment.
  auto sharedBytes = [&](int64_t tokensPerBlock) {
    return threads * (kRouterChunk + 1) * 4 +
           tokensPerBlock *
               (kRouterChunk * 4 + experts * 9 + groups * 5 + k * 4 + 16);
  };
  int64_t tokensPerBlock = threads / 32;
  while (tokensPerBlock > 1 &&
         sharedBytes(tokensPerBlock) > kMaxStaticShared - 1024)
    tokensPerBlock /= 2;
  if (sharedBytes(tokensPerBlock) > kMaxStaticShared - 1024)
    return ctx.fail(llvm::formatv("the router needs {0} bytes of shared "
                                  "memory for {1} experts (at most {2})",
                                  sharedBytes(1), experts,
                                  kMaxStaticShared - 1024)
                        .str()),
           failure();

  CudaStep step;
  step.libraries.push_back({"routing_common", kRoutingCommon});
  step.libraries.push_back({"router", kRouter});
  std::string bias =
      op.getBias() ? ctx.arg(op.getBias()).name : "(const float *)nullptr";
  step.source += llvm::formatv(
      R"cuda(
// moe.router: {2} experts, top-{4} (+{5} shared), {6} groups keep {7}.
// Blocks of {11} threads for {20} tokens each (see moec_router).
extern "C" __global__ void __launch_bounds__({11}) {0}({1}) {{
  moec_router<{2}, {3}, {4}, {5}, {6}, {7}, {8}, {9}, {10}, {12}, {11}, {20}>(
      {13}, {14}, {15}, {16}, {17}, tokens, {18}, {19});
}
)cuda",
      ctx.kernel(), ctx.parameterList(), experts, hidden, k, shared, groups,
      keep,
      routing.getScoring() == moe::ScoringFunc::softmax ? "true" : "false",
      routing.getGroupScore() == moe::GroupScore::top2_sum ? "true" : "false",
      routing.getNormTopkProb() ? "true" : "false", threads,
      op.getBias() ? "true" : "false", x.name, gate.name, bias, weights.name,
      indices.name, floatLiteral(scaling), floatLiteral(1e-20), tokensPerBlock);
  CudaLaunch launch;
  launch.kernel = ctx.kernel();
  launch.grid[0] = GridExtent::tokens(1, tokensPerBlock);
  launch.block = {unsigned(threads), 1, 1};
  step.launches.push_back(std::move(launch));
  return step;
}

//===----------------------------------------------------------------------===//
// moe.dispatch
//===----------------------------------------------------------------------===//

// The layout of the CPU kernel: offsets[e] = rows routed to experts < e, and
// within an expert the pairs (token, slot) in token-major order i = t*K + j,
// so the row of pair i is offsets[e] + #{i' < i : expert(i') = e}. Four
// launches, pairs cut into chunks of C = blockDim.x:
//   count:     block b counts the experts of chunk b into workspace[b][E];
//   scan:      one block turns the counts into each chunk's first row per
//              expert (offsets[e] + rows of e in chunks < b) and writes
//              offsets;
//   positions: block b ranks each pair among the earlier pairs of its chunk
//              with the same expert: positions[i] = base[b][e] + rank;
//   rows:      one block per pair copies x[i / K] to rows[positions[i]].
// Every workspace word is written by `count` before `scan` reads it.
static const char kDispatch[] = R"cuda(
// Expert of pair i, clamped like the CPU kernel (out of range -> E - 1).
template <int E, typename I>
__device__ __forceinline__ int moec_dispatch_expert(const I *indices,
                                                    long long i) {
  const unsigned long long e = (unsigned long long)(long long)indices[i];
  return e < (unsigned long long)E ? (int)e : E - 1;
}

// Thread i of block b counts pair b*C + i (C = blockDim.x).
template <int E, int K, int C, typename I>
__device__ __forceinline__ void
moec_dispatch_count(const I *__restrict__ indices, int *__restrict__ counts,
                    long long tokens) {
  __shared__ int count[E];
  const long long pairs = tokens * K;
  if ((long long)blockIdx.x * C >= pairs)
    return; // the whole block
  for (int e = threadIdx.x; e < E; e += C)
    count[e] = 0;
  __syncthreads();
  const long long i = (long long)blockIdx.x * C + threadIdx.x;
  if (i < pairs)
    atomicAdd(&count[moec_dispatch_expert<E>(indices, i)], 1);
  __syncthreads();
  for (int e = threadIdx.x; e < E; e += C)
    counts[(long long)blockIdx.x * E + e] = count[e];
}

// One block; thread e walks the chunks for experts e, e + NT, ...
template <int E, int K, int C, int NT>
__device__ __forceinline__ void moec_dispatch_scan(int *__restrict__ base,
                                                   int *__restrict__ offsets,
                                                   long long tokens) {
  __shared__ int first[E];
  const long long chunks = (tokens * K + C - 1) / C;
  // Per expert: exclusive prefix over chunks, total in `first`.
  for (int e = threadIdx.x; e < E; e += NT) {
    int run = 0;
    for (long long b = 0; b < chunks; ++b) {
      const int c = base[b * E + e];
      base[b * E + e] = run;
      run += c;
    }
    first[e] = run;
  }
  __syncthreads();
  // Exclusive prefix over experts: the first row of each expert.
  if (threadIdx.x == 0) {
    int run = 0;
    for (int e = 0; e < E; ++e) {
      const int c = first[e];
      first[e] = run;
      offsets[e] = run;
      run += c;
    }
    offsets[E] = run;
  }
  __syncthreads();
  for (int e = threadIdx.x; e < E; e += NT)
    for (long long b = 0; b < chunks; ++b)
      base[b * E + e] += first[e];
}

// Thread i of block b places pair b*C + i: its rank among the earlier pairs
// of the chunk with the same expert (a broadcast scan of shared memory).
template <int E, int K, int C, typename I>
__device__ __forceinline__ void
moec_dispatch_positions(const I *__restrict__ indices,
                        const int *__restrict__ base,
                        int *__restrict__ positions, long long tokens) {
  __shared__ int expertOf[C];
  const long long pairs = tokens * K;
  if ((long long)blockIdx.x * C >= pairs)
    return; // the whole block
  const long long i = (long long)blockIdx.x * C + threadIdx.x;
  const int expert = i < pairs ? moec_dispatch_expert<E>(indices, i) : -1;
  expertOf[threadIdx.x] = expert;
  __syncthreads();
  if (i >= pairs)
    return;
  int rank = 0;
  for (int p = 0; p < (int)threadIdx.x; ++p)
    rank += expertOf[p] == expert;
  positions[i] = base[(long long)blockIdx.x * E + expert] + rank;
}

// Block i copies the H elements of token i / K to row positions[i].
template <int K, int H, int NT, typename S, typename D>
__device__ __forceinline__ void
moec_dispatch_rows(const S *__restrict__ x, const int *__restrict__ positions,
                   D *__restrict__ rows, long long tokens) {
  const long long i = blockIdx.x;
  if (i >= tokens * K)
    return;
  const long long src = (i / K) * H, dst = (long long)positions[i] * H;
  for (int h = threadIdx.x; h < H; h += NT)
    moec_routing_copy(x, src + h, rows, dst + h);
}
)cuda";

static FailureOr<CudaStep> emitDispatch(const StepContext &ctx,
                                        moe::DispatchOp op) {
  const StepArg &x = ctx.arg(op.getX()), &indices = ctx.arg(op.getIndices());
  const StepArg &rows = ctx.arg(op.getRows()),
                &offsets = ctx.arg(op.getOffsets()),
                &positions = ctx.arg(op.getPositions());
  int64_t hidden = x.type.getDimSize(1), k = indices.type.getDimSize(1);
  int64_t experts = offsets.type.getDimSize(0) - 1;
  if (!isTokenRows(x) || !isTokenRows(indices))
    return ctx.fail("dispatch expects one row of `x` and `indices` per token"),
           failure();
  if (!rows.isPerToken() || rows.rowsPerToken != k || !positions.isPerToken() ||
      positions.rowsPerToken != k)
    return ctx.fail("dispatch expects `rows` and `positions` planned with k "
                    "rows per token"),
           failure();
  if (k < 1 || experts < 1)
    return ctx.fail("dispatch needs k >= 1 and at least one expert"), failure();
  if (rows.elementCType() == "int" || rows.elementCType() == "bool")
    return ctx.fail("dispatch rows must be floating point"), failure();
  if (experts * 4 > kMaxStaticShared / 2)
    return ctx.fail("too many experts for the dispatch kernels"), failure();

  CudaStep step;
  step.libraries.push_back({"routing_common", kRoutingCommon});
  step.libraries.push_back({"dispatch", kDispatch});
  std::string ws = "(int *)workspace";
  step.source += llvm::formatv(
      R"cuda(
// moe.dispatch: {2} experts, k = {3}, hidden {4}; chunks of {5} pairs.
extern "C" __global__ void __launch_bounds__({5}) {0}_count({1}) {{
  moec_dispatch_count<{2}, {3}, {5}>({6}, {7}, tokens);
}
extern "C" __global__ void __launch_bounds__(1024) {0}_scan({1}) {{
  moec_dispatch_scan<{2}, {3}, {5}, 1024>({7}, {8}, tokens);
}
extern "C" __global__ void __launch_bounds__({5}) {0}_positions({1}) {{
  moec_dispatch_positions<{2}, {3}, {5}>({6}, {7}, {9}, tokens);
}
extern "C" __global__ void __launch_bounds__({10}) {0}_rows({1}) {{
  moec_dispatch_rows<{3}, {4}, {10}>({11}, {9}, {12}, tokens);
}
)cuda",
      ctx.kernel(), ctx.parameterList(), experts, k, hidden, kDispatchChunk,
      indices.name, ws, offsets.name, positions.name, kRowThreads, x.name,
      rows.name);
  auto add = [&](StringRef suffix, GridExtent grid, int64_t threads) {
    CudaLaunch launch;
    launch.kernel = ctx.kernel(suffix);
    launch.grid[0] = grid;
    launch.block = {unsigned(threads), 1, 1};
    step.launches.push_back(std::move(launch));
  };
  add("count", GridExtent::tokens(k, kDispatchChunk), kDispatchChunk);
  add("scan", GridExtent::fixed(1), 1024);
  add("positions", GridExtent::tokens(k, kDispatchChunk), kDispatchChunk);
  add("rows", GridExtent::tokens(k), kRowThreads);
  // One int per (chunk, expert) at max_tokens.
  step.workspaceBytes =
      uint64_t(llvm::divideCeil(ctx.maxTokens * k, kDispatchChunk)) *
      uint64_t(experts) * 4;
  return step;
}

//===----------------------------------------------------------------------===//
// moe.combine
//===----------------------------------------------------------------------===//

// Grid (T, ceil(H / NT)): thread (t, h) sums slot by slot, from zero, with
// separate multiply and add, then adds the residual (the CPU kernel's
// order). A position outside the rows contributes 0.
static const char kCombine[] = R"cuda(
template <int K, int H, bool RESIDUAL, int NT, typename R, typename Q,
          typename O>
__device__ __forceinline__ void
moec_combine(const R *__restrict__ rows, const int *__restrict__ positions,
             const float *__restrict__ weights,
             const Q *__restrict__ residual, O *__restrict__ out,
             long long tokens, long long rowCount) {
  const long long t = blockIdx.x;
  const int h = blockIdx.y * NT + threadIdx.x;
  if (t >= tokens || h >= H)
    return;
  float acc = 0.0f;
  for (int j = 0; j < K; ++j) {
    const long long slot = t * K + j;
    const long long row = positions[slot];
    const bool valid = (unsigned long long)row < (unsigned long long)rowCount;
    const float v =
        valid ? __fmul_rn(weights[slot], moec_load(rows, row * H + h)) : 0.0f;
    acc = __fadd_rn(acc, v);
  }
  if (RESIDUAL)
    acc = __fadd_rn(acc, moec_load(residual, t * H + h));
  moec_store(out, t * H + h, acc);
}
)cuda";

static FailureOr<CudaStep> emitCombine(const StepContext &ctx,
                                       moe::CombineOp op) {
  const StepArg &rows = ctx.arg(op.getRows()),
                &positions = ctx.arg(op.getPositions()),
                &weights = ctx.arg(op.getWeights()),
                &out = ctx.arg(op.getResult());
  int64_t k = weights.type.getDimSize(1), hidden = rows.type.getDimSize(1);
  if (!isTokenRows(weights) || !isTokenRows(out) ||
      (op.getResidual() && !isTokenRows(ctx.arg(op.getResidual()))))
    return ctx.fail("combine expects one row of `weights`, `residual` and the "
                    "result per token"),
           failure();
  std::string rowCount =
      rows.isPerToken()
          ? llvm::formatv("tokens * {0}LL", rows.rowsPerToken).str()
          : std::to_string(rows.type.getDimSize(0)) + "LL";
  std::string residual = op.getResidual() ? ctx.arg(op.getResidual()).name
                                          : "(const float *)nullptr";

  CudaStep step;
  step.libraries.push_back({"routing_common", kRoutingCommon});
  step.libraries.push_back({"combine", kCombine});
  step.source += llvm::formatv(
      R"cuda(
// moe.combine: k = {2}, hidden {3}; grid (tokens, ceil({3} / {5})).
extern "C" __global__ void __launch_bounds__({5}) {0}({1}) {{
  moec_combine<{2}, {3}, {4}, {5}>({6}, {7}, {8}, {9}, {10}, tokens, {11});
}
)cuda",
      ctx.kernel(), ctx.parameterList(), k, hidden,
      op.getResidual() ? "true" : "false", kRowThreads, rows.name,
      positions.name, weights.name, residual, out.name, rowCount);
  CudaLaunch launch;
  launch.kernel = ctx.kernel();
  launch.grid[0] = GridExtent::tokens(1);
  launch.grid[1] = GridExtent::fixed(llvm::divideCeil(hidden, kRowThreads));
  launch.block = {unsigned(kRowThreads), 1, 1};
  step.launches.push_back(std::move(launch));
  return step;
}

//===----------------------------------------------------------------------===//
// Dispatch by op
//===----------------------------------------------------------------------===//

FailureOr<CudaStep> mlir::moec::cuda::emitRoutingStep(const StepContext &ctx) {
  if (auto router = dyn_cast<moe::RouterOp>(ctx.op))
    return emitRouter(ctx, router);
  if (auto dispatch = dyn_cast<moe::DispatchOp>(ctx.op))
    return emitDispatch(ctx, dispatch);
  if (auto combine = dyn_cast<moe::CombineOp>(ctx.op))
    return emitCombine(ctx, combine);
  return ctx.fail("not a routing op"), failure();
}
