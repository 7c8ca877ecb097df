//===- GemmEmitter.cpp - CUDA C++ for the GEMM steps ------------*- C++ -*-===//
//
// Library text of the two GEMM kernel templates and the step emitter that
// instantiates them (docs/cuda.md, "The GEMM kernels"). Numerics follow the
// CPU's `gemmRows` (codegen/cpu/PlannedKernels.cpp): f32 accumulation, bias
// added to the full product, `silu(gate) * up` with silu(x) = x/(1+exp(-x)),
// grouped rows outside every expert's range written as zero.
//
//===----------------------------------------------------------------------===//

#include "codegen/cuda/GemmEmitter.h"

#include "codegen/cuda/Prelude.h"
#include "dialects/MoEDialect.h"

#include "llvm/ADT/TypeSwitch.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MathExtras.h"
#include "llvm/Support/raw_ostream.h"

using namespace mlir;
using namespace mlir::moec;
using namespace mlir::moec::cuda;

//===----------------------------------------------------------------------===//
// Library: row tiles of dense and grouped GEMMs
//===----------------------------------------------------------------------===//

static const char kGemmTiles[] = R"cuda(
// Grid y enumerates row tiles of BM rows. Dense: tile i is rows
// [i*BM, min(i*BM+BM, rows)). Grouped: expert e owns rows
// [offsets[e], offsets[e+1]) (each clamped to [0, rows] as the CPU does with
// unsigned minimum), cut into ceil(count_e / BM) tiles; tiles are numbered
// expert by expert, so tile i belongs to the expert whose prefix sum of tile
// counts brackets i. The grid is sized for the worst case
// (ceil(rows / BM) + E tiles) and surplus blocks exit.
#define MOEC_GEMM_FULL_MASK 0xFFFFFFFFu

// offsets[e] clamped to [0, rows]: negative values read as huge unsigned
// values and clamp to rows, as the CPU's unsigned minimum does.
__device__ __forceinline__ long long moec_gemm_clamp(int v, long long rows) {
  const unsigned long long u = (unsigned int)v;
  return u < (unsigned long long)rows ? (long long)u : rows;
}

// Finds the rows [begin, end) and the expert of row tile `tile`; false when
// the tile is past the last expert's last tile (the block then exits).
// end is the end of the expert's rows (the tile may hold fewer than BM).
// E == 0: dense. Every thread of the block must call it (two barriers).
template <int BM, int E>
__device__ __forceinline__ bool moec_gemm_row_tile(
    const int *__restrict__ offsets, long long rows, int tile, int &expert,
    long long &begin, long long &end) {
  if (E == 0) {
    expert = 0;
    begin = (long long)tile * BM;
    end = rows;
    return begin < rows;
  }
  __shared__ long long found[3]; // expert, begin, end
  if (threadIdx.x == 0)
    found[0] = -1;
  __syncthreads();
  if (threadIdx.x < 32) {
    // Warp 0 scans the per-expert tile counts 32 experts at a time.
    const int lane = threadIdx.x;
    int base = 0; // tiles of the experts before this chunk
    for (int e0 = 0; e0 < E; e0 += 32) {
      const int e = e0 + lane;
      long long b = 0, en = 0;
      int tiles = 0;
      if (e < E) {
        b = moec_gemm_clamp(offsets[e], rows);
        en = moec_gemm_clamp(offsets[e + 1], rows);
        tiles = en > b ? (int)((en - b + BM - 1) / BM) : 0;
      }
      int inclusive = tiles;
      for (int o = 1; o < 32; o <<= 1) {
        const int v = __shfl_up_sync(MOEC_GEMM_FULL_MASK, inclusive, o);
        if (lane >= o)
          inclusive += v;
      }
      const int first = base + inclusive - tiles;
      if (tiles > 0 && tile >= first && tile < first + tiles) {
        found[0] = e;
        found[1] = b + (long long)(tile - first) * BM;
        found[2] = en;
      }
      base += __shfl_sync(MOEC_GEMM_FULL_MASK, inclusive, 31);
    }
  }
  __syncthreads();
  expert = (int)found[0];
  begin = found[1];
  end = found[2];
  return found[0] >= 0;
}

// Grouped GEMMs: rows outside [offsets[0], offsets[E]) belong to no expert
// and are written as zero (the CPU zeroes the whole output first). Block
// (colTile, tile) zeroes such rows of [tile*BM, tile*BM+BM) in its output
// columns [colTile*OUTW, colTile*OUTW+OUTW); every row has such a block
// because the grid has at least ceil(rows / BM) row tiles. Assumes
// non-decreasing offsets (moe.dispatch's prefix sums).
template <int BM, int OUTW, int OUTN, int E>
__device__ __forceinline__ void moec_gemm_zero_unowned(
    const int *__restrict__ offsets, float *__restrict__ y, long long rows,
    int tile, int colTile) {
  if (E == 0)
    return;
  const long long lo = moec_gemm_clamp(offsets[0], rows);
  const long long hi = max(moec_gemm_clamp(offsets[E], rows), lo);
  const long long r0 = (long long)tile * BM;
  if (r0 >= rows || (r0 >= lo && r0 + BM <= hi))
    return;
  for (int i = threadIdx.x; i < BM * OUTW; i += blockDim.x) {
    const long long r = r0 + i / OUTW;
    const int c = colTile * OUTW + i % OUTW;
    if (r < rows && (r < lo || r >= hi) && c < OUTN)
      y[r * OUTN + c] = 0.0f;
  }
}

__device__ __forceinline__ float moec_gemm_silu(float x) {
  return x / (1.0f + expf(-x));
}
)cuda";

//===----------------------------------------------------------------------===//
// Library: the f32 SIMT GEMM
//===----------------------------------------------------------------------===//

static const char kF32Gemm[] = R"cuda(
// y = x * w^T (+ bias) with f32 FMA, each output accumulated over k in
// order by one thread. Block: 256 threads as 16 x 16 (tx = tid % 16,
// ty = tid / 16); tile 64 rows x 64 "logical" weight rows, K in steps of 16
// through shared memory (sA/sB[k][row], so the inner loop broadcasts).
// Thread (ty, tx) owns rows ty*4 .. ty*4+3 and logical columns
// {tx*2, tx*2+1, 32+tx*2, 32+tx*2+1}. Logical column c is weight row
//   dense:    blockIdx.x*64 + c
//   silu_mul: blockIdx.x*32 + c        (c < 32, gate)
//             N/2 + blockIdx.x*32 + c-32 (c >= 32, up)
// so with silu_mul a thread holds the gate and the up value of its two
// output columns blockIdx.x*32 + tx*2 + {0, 1}.
//
// With SB > 0 (moec_simt_gemm only) x and w are e4m3 codes with f32 block
// scales xs [rows, KB] and ws [E?, NB, KB] of [1, SB] and [SB, SB] blocks,
// decoded on load to code * scale, as the CPU dequantizes them: the FP8 GEMM
// for scale blocks the tensor-core kernel does not tile (SB % 64 != 0).
template <int N, int K, int SB, bool SILU, int E, bool HAS_BIAS, typename XT,
          typename WT, typename BT>
__device__ __forceinline__ void moec_simt_gemm(
    const XT *__restrict__ x, const float *__restrict__ xs,
    const int *__restrict__ offsets, const WT *__restrict__ w,
    const float *__restrict__ ws, const BT *__restrict__ bias,
    float *__restrict__ y, long long rows) {
  constexpr int BM = 64, BN = 64, BK = 16;
  constexpr int SBD = SB > 0 ? SB : 1; // a divisor even when unscaled
  constexpr int KB = (K + SBD - 1) / SBD, NB = (N + SBD - 1) / SBD;
  constexpr int NHALF = N / 2;
  constexpr int OUTN = SILU ? NHALF : N;  // result columns
  constexpr int OUTW = SILU ? BN / 2 : BN; // result columns per block
  __shared__ float sA[BK][BM + 4];
  __shared__ float sB[BK][BN + 4];
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  moec_gemm_zero_unowned<BM, OUTW, OUTN, E>(offsets, y, rows, blockIdx.y,
                                            blockIdx.x);
  int expert;
  long long begin, end;
  if (!moec_gemm_row_tile<BM, E>(offsets, rows, blockIdx.y, expert, begin,
                                 end))
    return;
  const WT *__restrict__ we = w + (long long)expert * N * K;
  const float *__restrict__ wse =
      SB > 0 ? ws + (long long)expert * NB * KB : nullptr;

  // Loader mapping: thread loads row/column lr = tid / 4 of the tile at
  // k = k0 + (tid % 4) * 4 + q, q = 0..3.
  const int lr = tid >> 2, lk = (tid & 3) * 4;
  const long long aRow = begin + lr;
  const bool aOk = aRow < end;
  const int bRow = SILU ? (lr < BN / 2 ? 0 : NHALF) +
                              (int)blockIdx.x * (BN / 2) + (lr & (BN / 2 - 1))
                        : (int)blockIdx.x * BN + lr;
  const bool bOk = SILU ? (int)blockIdx.x * (BN / 2) + (lr & (BN / 2 - 1)) <
                              NHALF
                        : bRow < N;

  float acc[4][4];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j)
      acc[i][j] = 0.0f;

#pragma unroll 1
  for (int k0 = 0; k0 < K; k0 += BK) {
    float av[4], bv[4];
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const int k = k0 + lk + q;
      av[q] = aOk && k < K ? moec_load(x, aRow * K + k) : 0.0f;
      bv[q] = bOk && k < K ? moec_load(we, (long long)bRow * K + k) : 0.0f;
      if (SB > 0 && aOk && k < K)
        av[q] *= xs[aRow * KB + k / SBD];
      if (SB > 0 && bOk && k < K)
        bv[q] *= wse[(bRow / SBD) * KB + k / SBD];
    }
    __syncthreads(); // the previous step's reads are done
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      sA[lk + q][lr] = av[q];
      sB[lk + q][lr] = bv[q];
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < BK; ++kk) {
      float a[4], b[4];
#pragma unroll
      for (int i = 0; i < 4; ++i)
        a[i] = sA[kk][ty * 4 + i];
#pragma unroll
      for (int j = 0; j < 4; ++j)
        b[j] = sB[kk][(j >> 1) * (BN / 2) + tx * 2 + (j & 1)];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j)
          acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
  }

  // Epilogue: bias on the full product, then silu_mul or a plain store.
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const long long row = begin + ty * 4 + i;
    if (row >= end)
      continue;
    if (SILU) {
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        const int col = (int)blockIdx.x * (BN / 2) + tx * 2 + j;
        if (col >= NHALF)
          continue;
        float gate = acc[i][j], up = acc[i][j + 2];
        if (HAS_BIAS) {
          gate += moec_load(bias, col);
          up += moec_load(bias, NHALF + col);
        }
        y[row * OUTN + col] = moec_gemm_silu(gate) * up;
      }
    } else {
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int col = (int)blockIdx.x * BN + (j >> 1) * (BN / 2) + tx * 2 +
                        (j & 1);
        if (col >= N)
          continue;
        float v = acc[i][j];
        if (HAS_BIAS)
          v += moec_load(bias, col);
        y[row * OUTN + col] = v;
      }
    }
  }
}

// f32 activations times f32 or bf16 weights: moec_simt_gemm unscaled.
template <int N, int K, bool SILU, int E, bool HAS_BIAS, typename WT,
          typename BT>
__device__ __forceinline__ void moec_f32_gemm(
    const float *__restrict__ x, const int *__restrict__ offsets,
    const WT *__restrict__ w, const BT *__restrict__ bias,
    float *__restrict__ y, long long rows) {
  moec_simt_gemm<N, K, 0, SILU, E, HAS_BIAS, float, WT, BT>(
      x, nullptr, offsets, w, nullptr, bias, y, rows);
}
)cuda";

//===----------------------------------------------------------------------===//
// Library: the block-scaled FP8 GEMM
//===----------------------------------------------------------------------===//

// Architecture selection (one source for every target, one launch shape).
static const char kFp8GemmArch[] = R"cuda(
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define MOEC_GEMM_WGMMA 1 // sm_90a: wgmma.mma_async m64n128k32 e4m3
#elif __CUDA_ARCH__ >= 890
#define MOEC_GEMM_MMA_FP8 1 // sm_89: mma.sync m16n8k32 e4m3
#else
#define MOEC_GEMM_MMA_BF16 1 // sm_80: e4m3 -> bf16, mma.sync m16n8k16 bf16
#endif

// 16-byte global -> shared copy; src_bytes = 0 fills the 16 bytes with
// zeros (rows or K past the end).
__device__ __forceinline__ void moec_gemm_cp_async16(void *dst,
                                                     const void *src,
                                                     int src_bytes) {
  const unsigned int d = (unsigned int)__cvta_generic_to_shared(dst);
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d),
               "l"(src), "r"(src_bytes)
               : "memory");
}
__device__ __forceinline__ void moec_gemm_cp_async_commit() {
  asm volatile("cp.async.commit_group;\n" ::: "memory");
}
template <int PENDING>
__device__ __forceinline__ void moec_gemm_cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(PENDING) : "memory");
}

#if defined(MOEC_GEMM_MMA_FP8)
// d += a * b, m16n8k32, e4m3 A (row) and B (col), f32 accumulators
// (PTX ISA, "Matrix Fragments for mma.m16n8k32" with .e4m3): g = lane / 4,
// t = lane % 4;
//   a[0]: A[g][4t..4t+3]      a[1]: A[g+8][4t..4t+3]
//   a[2]: A[g][16+4t..+3]     a[3]: A[g+8][16+4t..+3]
//   b0:   B[4t..4t+3][g]      b1:   B[16+4t..+3][g]   (byte i = k + i)
//   d[0], d[1]: D[g][2t], D[g][2t+1]; d[2], d[3]: D[g+8][2t], D[g+8][2t+1].
__device__ __forceinline__ void moec_gemm_mma(float *d, const unsigned int *a,
                                              unsigned int b0,
                                              unsigned int b1) {
  asm volatile("mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 "
               "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
               "{%0, %1, %2, %3};\n"
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0),
                 "r"(b1));
}
#endif

#if defined(MOEC_GEMM_MMA_BF16)
// e4m3 code (bias 7, no infinities, 0x7F/0xFF NaN; the low 8 bits of b) to
// f32, exact and branch-free: the 7 magnitude bits placed at f32 bits 20..26
// read as 2^(e-127) * (1 + m/8) (normal) or m * 2^-129 (e = 0, an f32
// subnormal), and times 2^120 give e4m3's 2^(e-7) * (1 + m/8) and m * 2^-9.
// mul.rn.f32 without .ftz keeps the subnormals whatever the compile flags.
// NaN codes are fixed up by the caller.
__device__ __forceinline__ float moec_gemm_e4m3_to_f32(unsigned int b) {
  const float f = __uint_as_float(((b & 0x80u) << 24) | ((b & 0x7Fu) << 20));
  float r;
  asm("mul.rn.f32 %0, %1, 0f7B800000;\n" : "=f"(r) : "f"(f)); // * 2^120
  return r;
}
// Bytes 2h and 2h+1 of `v` as a bf16x2 (byte 2h in the low half); exact,
// since e4m3 values have at most 4 significant bits.
__device__ __forceinline__ unsigned int moec_gemm_bf16x2(unsigned int v,
                                                         int h) {
  const unsigned int b0 = (v >> (16 * h)) & 0xFFu;
  const unsigned int b1 = (v >> (16 * h + 8)) & 0xFFu;
  unsigned int r = __byte_perm(__float_as_uint(moec_gemm_e4m3_to_f32(b0)),
                               __float_as_uint(moec_gemm_e4m3_to_f32(b1)),
                               0x7632);
  if ((b0 & 0x7Fu) == 0x7Fu) // NaN: a quiet bf16 NaN with the sign
    r = (r & 0xFFFF0000u) | 0x7FC0u | ((b0 & 0x80u) << 8);
  if ((b1 & 0x7Fu) == 0x7Fu)
    r = (r & 0x0000FFFFu) | 0x7FC00000u | ((b1 & 0x80u) << 24);
  return r;
}
// d += a * b, m16n8k16 bf16 (PTX ISA, "Matrix Fragments for mma.m16n8k16"
// with .bf16): a0: A[g][2t,2t+1] a1: A[g+8][2t,2t+1] a2: A[g][8+2t,+1]
// a3: A[g+8][8+2t,+1]; b0: B[2t,2t+1][g] b1: B[8+2t,+1][g]; d as m16n8k32.
__device__ __forceinline__ void moec_gemm_mma_bf16(float *d, unsigned int a0,
                                                   unsigned int a1,
                                                   unsigned int a2,
                                                   unsigned int a3,
                                                   unsigned int b0,
                                                   unsigned int b1) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
               "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
               "{%0, %1, %2, %3};\n"
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
               : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}
// The 32-byte K step of moec_gemm_mma done as two bf16 k16 MMAs. The
// reduction order inside one MMA is free, so the k16 "logical" index
// 2t+j is fed byte 4t+j and 8+2t+j is fed byte 4t+2+j of the same 32-bit
// words the e4m3 path loads, identically for A and B: MMA 1 takes bytes
// 0..15 (words a[0], a[1], b0), MMA 2 bytes 16..31 (a[2], a[3], b1).
__device__ __forceinline__ void moec_gemm_mma(float *d, const unsigned int *a,
                                              unsigned int b0,
                                              unsigned int b1) {
  moec_gemm_mma_bf16(d, moec_gemm_bf16x2(a[0], 0), moec_gemm_bf16x2(a[1], 0),
                     moec_gemm_bf16x2(a[0], 1), moec_gemm_bf16x2(a[1], 1),
                     moec_gemm_bf16x2(b0, 0), moec_gemm_bf16x2(b0, 1));
  moec_gemm_mma_bf16(d, moec_gemm_bf16x2(a[2], 0), moec_gemm_bf16x2(a[3], 0),
                     moec_gemm_bf16x2(a[2], 1), moec_gemm_bf16x2(a[3], 1),
                     moec_gemm_bf16x2(b1, 0), moec_gemm_bf16x2(b1, 1));
}
#endif
)cuda";

// The sm_90a wgmma wrapper: 64 accumulator operands, generated.
static std::string buildWgmmaText() {
  std::string text;
  llvm::raw_string_ostream os(text);
  os << R"cuda(
#if defined(MOEC_GEMM_WGMMA)
// Shared-memory matrix descriptor (PTX ISA, "Matrix Descriptor Format"):
// bits 0-13 start address >> 4, 16-29 leading dimension byte offset >> 4,
// 32-45 stride dimension byte offset >> 4, 49-51 base offset (0: every
// tile starts on its swizzle pattern's repeat boundary), 62-63 `swizzle`
// (0 none, 1 128B, 2 64B, 3 32B). K-major operands of 8-row groups:
// - no swizzle: 8x16B core matrices (8 rows of 16 contiguous bytes); LBO is
//   the distance between the two K-adjacent core matrices of a k32 step,
//   SBO between core matrices 8 rows apart;
// - swizzle span W ("Shared Memory Matrix Layout", swizzle atom 8 rows x W
//   bytes): byte (r, k) at start + (r/8)*SBO + (r%8)*W + k, with 16-byte
//   chunks then XOR-permuted by address bits 7.. as the TMA wrote them; LBO
//   is unused (the k32 step lies inside one W-byte row), and the k32 step
//   at byte 32 of the row is start + 32.
__device__ __forceinline__ unsigned long long
moec_gemm_desc(const void *smem, unsigned int lbo, unsigned int sbo,
               unsigned int swizzle) {
  const unsigned int a = (unsigned int)__cvta_generic_to_shared(smem);
  return (unsigned long long)((a & 0x3FFFFu) >> 4) |
         ((unsigned long long)((lbo & 0x3FFFFu) >> 4) << 16) |
         ((unsigned long long)((sbo & 0x3FFFFu) >> 4) << 32) |
         ((unsigned long long)(swizzle & 3u) << 62);
}

// ---- TMA loads and their mbarriers (sm_90a) ----
// `bar` and `dst` are generic pointers to shared memory; `map` is the
// address of a `__grid_constant__` kernel parameter, which PTX takes as a
// generic address of the tensor map.

// PTX ISA, "mbarrier.init": the 64-bit barrier at `bar` starts in phase 0,
// expecting `count` arrivals per phase and no transactions.
__device__ __forceinline__ void moec_gemm_mbar_init(unsigned long long *bar,
                                                    unsigned int count) {
  const unsigned int b = (unsigned int)__cvta_generic_to_shared(bar);
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(b),
               "r"(count)
               : "memory");
}
// PTX ISA, "membar / fence" (fence.mbarrier_init): orders the preceding
// mbarrier.init before later operations of the async proxy, so the TMA
// unit's complete_tx finds the barriers initialised.
__device__ __forceinline__ void moec_gemm_mbar_init_fence() {
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  // As DeepGEMM does: the generic-proxy init is also fenced against the
  // async proxy that the TMA unit's complete_tx uses.
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}
// PTX ISA, "Special registers: %globaltimer": a 64-bit nanosecond timer.
__device__ __forceinline__ unsigned long long moec_gemm_globaltimer() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;\n" : "=l"(t));
  return t;
}
// PTX ISA, "mbarrier.arrive" (.expect_tx): raises the current phase's
// expected transaction count by `bytes`, then arrives once. The phase
// completes when every expected arrival is in and `bytes` bytes of
// complete_tx have been signalled.
__device__ __forceinline__ void
moec_gemm_mbar_arrive_expect_tx(unsigned long long *bar, unsigned int bytes) {
  const unsigned int b = (unsigned int)__cvta_generic_to_shared(bar);
  asm volatile(
      "mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(b),
      "r"(bytes)
      : "memory");
}
// PTX ISA, "mbarrier.test_wait / mbarrier.try_wait" (.parity): 1 when the
// phase of parity `parity` has completed (the current phase has the other
// parity), else 0 after a bounded, hardware-chosen wait. Acquire semantics
// at CTA scope: the bytes the TMA wrote in that phase are visible after a 1.
__device__ __forceinline__ int moec_gemm_mbar_try_wait(unsigned long long *bar,
                                                       unsigned int parity) {
  const unsigned int b = (unsigned int)__cvta_generic_to_shared(bar);
  unsigned int done;
  asm volatile("{\n.reg .pred p;\n"
               "mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
               "selp.u32 %0, 1, 0, p;\n}\n"
               : "=r"(done)
               : "r"(b), "r"(parity)
               : "memory");
  return (int)done;
}
// PTX ISA, "cp.async.bulk.tensor" (tile mode): copies the box of `map` whose
// first element has coordinates {c0, c1} (elements, innermost first) to
// shared memory at `dst`, in the map's swizzled layout, elements outside
// the tensor read as zero; then signals complete_tx of the box's bytes on
// `bar`. `dst` must be 128-byte aligned (and on the swizzle pattern's
// repeat boundary for the layout the wgmma descriptors assume).
__device__ __forceinline__ void moec_gemm_tma_load_2d(void *dst,
                                                      const moec_tensor_map *map,
                                                      int c0, int c1,
                                                      unsigned long long *bar) {
  const unsigned int d = (unsigned int)__cvta_generic_to_shared(dst);
  const unsigned int b = (unsigned int)__cvta_generic_to_shared(bar);
  asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.tile"
               ".mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n"
               ::"r"(d), "l"((unsigned long long)map), "r"(c0), "r"(c1),
               "r"(b)
               : "memory");
}
// The same for a rank-3 map: coordinates {c0, c1, c2}.
__device__ __forceinline__ void moec_gemm_tma_load_3d(void *dst,
                                                      const moec_tensor_map *map,
                                                      int c0, int c1, int c2,
                                                      unsigned long long *bar) {
  const unsigned int d = (unsigned int)__cvta_generic_to_shared(dst);
  const unsigned int b = (unsigned int)__cvta_generic_to_shared(bar);
  asm volatile("cp.async.bulk.tensor.3d.shared::cluster.global.tile"
               ".mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4}], "
               "[%5];\n" ::"r"(d),
               "l"((unsigned long long)map), "r"(c0), "r"(c1), "r"(c2),
               "r"(b)
               : "memory");
}

__device__ __forceinline__ void moec_gemm_wgmma_fence() {
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
}
__device__ __forceinline__ void moec_gemm_wgmma_commit() {
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}
__device__ __forceinline__ void moec_gemm_wgmma_wait_all() {
  asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
}
// Keeps the compiler from moving accesses of `d` across wgmma fences/waits.
__device__ __forceinline__ void moec_gemm_fence_regs(float (&d)[64]) {
#pragma unroll
  for (int i = 0; i < 64; ++i)
    asm volatile("" : "+f"(d[i])::"memory");
}
// d = (accumulate ? d : 0) + A * B, one warpgroup, A 64x32 and B 32x128
// e4m3 from shared memory (both K-major). Accumulator layout (PTX ISA,
// "wgmma .m64nNk32 register fragment layout for accumulator D"): warp
// w = warpgroup thread / 32, g = lane / 4, t = lane % 4, for n8 tile
// i = 0..15: d[4i], d[4i+1]: D[16w+g][8i+2t, +1]; d[4i+2], d[4i+3]:
// D[16w+g+8][8i+2t, +1] -- the mma.sync m16n8 layout per warp.
__device__ __forceinline__ void
moec_gemm_wgmma(float (&d)[64], unsigned long long descA,
                unsigned long long descB, int accumulate) {
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
               "wgmma.mma_async.sync.aligned.m64n128k32.f32.e4m3.e4m3 {)cuda";
  for (int i = 0; i < 64; ++i)
    os << (i ? ", " : "") << "%" << i;
  os << "}, %64, %65, p, 1, 1;\\n}\\n\"\n               : ";
  for (int i = 0; i < 64; ++i)
    os << (i == 0       ? ""
           : i % 4 == 0 ? ",\n                 "
                        : ", ")
       << "\"+f\"(d[" << i << "])";
  os << R"cuda(
               : "l"(descA), "l"(descB), "r"(accumulate));
}
#endif
)cuda";
  return text;
}

static const char kFp8Gemm[] = R"cuda(
// y = x * w^T with e4m3 x [rows, K] (scales xs [rows, KB]) and e4m3 w
// [(E,) N, K] (scales ws [(E,) ceil(N/SB), KB]), KB = ceil(K/SB).
//
// Block: 128 threads (one warpgroup, 4 warps), tile 64 rows x 128 logical
// weight rows (BN; mapped to weight rows as in moec_f32_gemm, with 64 gate
// + 64 up under silu_mul). K runs in stages of 64 bytes through a 3-stage
// ring (stage s+2 loads while stage s computes); a scale block of SB bytes
// is SB/64 stages. Per scale block the tensor cores accumulate an f32
// `part`, then `total += part * xs[row, kb] * ws[wrow / SB, kb]`.
//
// Loads, per stage an A tile 64 rows x 64 B and a B tile 128 rows x 64 B:
// - cp.async (every target; sm_90a when TMA is false): 16-byte copies by
//   all threads, zero-filled past rows/K, into 8x16-byte core matrices:
//   byte (r, k) of a tile at ((r/8)*4 + k/16)*128 + (r%8)*16 + k%16 (no
//   swizzle). Chunk q goes to row (q%8) + 8*(q/32), k chunk (q/8)%4, so a
//   warp writes 512 contiguous bytes.
// - TMA (sm_90a with TMA: `tmA` maps x as {K, rows capacity}, `tmB` maps w
//   as {K, N, E or 1}, both box 64 B x 64 rows, 64-byte swizzle): thread 0
//   issues one box for A and two for B (gate and up halves under silu_mul)
//   per stage, completing on the slot's mbarrier. Row r of a tile is the 64
//   bytes at r*64, 16-byte chunks swizzled by address bits 7-8 (tiles start
//   on 1024-byte boundaries, a multiple of the 512-byte pattern). The map
//   zero-fills K and weight rows past the end; A rows past `end` (the next
//   expert's rows, or stale rows below the capacity) are loaded but only
//   feed output rows that are never stored.
//
// Every path leaves thread (warp w, g = lane/4, t = lane%4) with part[4i+j]
// = D[16w + g + 8*(j/2)][8i + 2t + j%2] for n8 tile i = 0..15:
// - sm_90a: per stage two wgmma m64n128k32, scale-d = 0 on the first step
//   of a scale block; descriptors: no swizzle, LBO 128, SBO 512, start + 256
//   for the second k32 step (cp.async), or 64-byte swizzle, SBO 512, start
//   + 32 (TMA). cp.async data is made visible to the async proxy with
//   fence.proxy.async before the barrier; wgmma.wait_group 0 before reuse.
// - sm_89 / sm_80: warp w computes rows 16w..16w+15 x all 128 columns with
//   mma.sync (A fragments once per k32 step, B fragments per n8 tile, read
//   as 32-bit words from the core-matrix layout: conflict-free).
template <int N, int K, int SB, bool SILU, int E, bool HAS_BIAS, typename BT,
          bool TMA>
__device__ __forceinline__ void moec_fp8_gemm(
    const moec_fp8 *__restrict__ x, const float *__restrict__ xs,
    const int *__restrict__ offsets, const moec_fp8 *__restrict__ w,
    const float *__restrict__ ws, const BT *__restrict__ bias,
    float *__restrict__ y, long long rows, const moec_tensor_map *tmA,
    const moec_tensor_map *tmB) {
  constexpr int BM = 64, BN = 128, KS = 64, STAGES = 3;
  constexpr int A_BYTES = BM * KS, B_BYTES = BN * KS;
  constexpr int STAGE_BYTES = A_BYTES + B_BYTES;
  constexpr int S = (K + KS - 1) / KS;   // K stages
  constexpr int KB = (K + SB - 1) / SB;  // scale blocks along K
  constexpr int NB = (N + SB - 1) / SB;  // scale blocks along N
  constexpr int NHALF = N / 2;
  constexpr int OUTN = SILU ? NHALF : N;
  constexpr int OUTW = SILU ? BN / 2 : BN;
  static_assert(K % 16 == 0 && SB % KS == 0, "unsupported K / scale block");
  static_assert(A_BYTES % 1024 == 0 && B_BYTES % 1024 == 0,
                "TMA tiles must start on the swizzle pattern's boundary");
  __shared__ __align__(1024) unsigned char smem[STAGES * STAGE_BYTES];
#if defined(MOEC_GEMM_WGMMA)
  constexpr bool USE_TMA = TMA;
  // full[i] completes a phase each time ring slot i has been filled.
  __shared__ unsigned long long full[STAGES];
#else
  constexpr bool USE_TMA = false; // no TMA before sm_90: the maps are unused
#endif

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int g = lane >> 2, t = lane & 3;
  moec_gemm_zero_unowned<BM, OUTW, OUTN, E>(offsets, y, rows, blockIdx.y,
                                            blockIdx.x);
  int expert;
  long long begin, end;
  if (!moec_gemm_row_tile<BM, E>(offsets, rows, blockIdx.y, expert, begin,
                                 end))
    return;
  const moec_fp8 *__restrict__ we = w + (long long)expert * N * K;
  const float *__restrict__ wse = ws + (long long)expert * NB * KB;

  // Logical column c of the tile -> weight row, and whether it exists.
  auto wrow = [&](int c) {
    return SILU ? (c < BN / 2 ? 0 : NHALF) + (int)blockIdx.x * (BN / 2) +
                      (c & (BN / 2 - 1))
                : (int)blockIdx.x * BN + c;
  };
  auto wvalid = [&](int c) {
    return SILU ? (int)blockIdx.x * (BN / 2) + (c & (BN / 2 - 1)) < NHALF
                : (int)blockIdx.x * BN + c < N;
  };

  // cp.async: every thread issues its copies of K stage s into ring slot
  // `slot`.
  auto copy_stage = [&](int s, int slot) {
    unsigned char *sA = smem + slot * STAGE_BYTES;
    unsigned char *sB = sA + A_BYTES;
#pragma unroll
    for (int q = tid; q < BM * 4; q += 128) {
      const int r = (q & 7) | ((q >> 5) << 3), kc = (q >> 3) & 3;
      const int k = s * KS + kc * 16;
      const long long row = begin + r;
      const bool ok = row < end && k < K;
      moec_gemm_cp_async16(sA + ((r >> 3) * 4 + kc) * 128 + (r & 7) * 16,
                           ok ? x + row * K + k : x, ok ? 16 : 0);
    }
#pragma unroll
    for (int q = tid; q < BN * 4; q += 128) {
      const int c = (q & 7) | ((q >> 5) << 3), kc = (q >> 3) & 3;
      const int k = s * KS + kc * 16;
      const bool ok = wvalid(c) && k < K;
      moec_gemm_cp_async16(sB + ((c >> 3) * 4 + kc) * 128 + (c & 7) * 16,
                           ok ? we + (long long)wrow(c) * K + k : we,
                           ok ? 16 : 0);
    }
  };

#if defined(MOEC_GEMM_WGMMA)
  if (USE_TMA) {
    // One arrival per phase: thread 0's expect_tx; the phase then completes
    // when the TMA unit has written all the stage's bytes. The fence makes
    // the inits visible to the TMA unit, the barrier to the other threads.
    if (tid == 0) {
#pragma unroll
      for (int i = 0; i < STAGES; ++i)
        moec_gemm_mbar_init(&full[i], 1);
      moec_gemm_mbar_init_fence();
    }
    __syncthreads();
  }
  // TMA (thread 0 only): K stage s into slot `slot`. Coordinates are
  // elements (bytes) innermost first; the emitter only enables TMA when the
  // row capacity fits an int. B's second box (weight rows 64..127 of a
  // dense tile) is skipped when it lies wholly past N: those columns are
  // never stored, and the expected bytes shrink to match.
  auto tma_stage = [&](int s, int slot) {
    unsigned char *sA = smem + slot * STAGE_BYTES;
    unsigned char *sB = sA + A_BYTES;
    unsigned long long *bar = &full[slot];
    const int k = s * KS;
    const int b0 = SILU ? (int)blockIdx.x * (BN / 2) : (int)blockIdx.x * BN;
    const int b1 = SILU ? NHALF + b0 : b0 + BN / 2;
    const bool second = SILU || b1 < N;
    moec_gemm_mbar_arrive_expect_tx(bar, second ? STAGE_BYTES
                                                : STAGE_BYTES - B_BYTES / 2);
    moec_gemm_tma_load_2d(sA, tmA, k, (int)begin, bar);
    moec_gemm_tma_load_3d(sB, tmB, k, b0, expert, bar);
    if (second)
      moec_gemm_tma_load_3d(sB + B_BYTES / 2, tmB, k, b1, expert, bar);
  };
#endif
  auto load_stage = [&](int s, int slot) {
#if defined(MOEC_GEMM_WGMMA)
    if (USE_TMA) {
      if (tid == 0)
        tma_stage(s, slot);
      return;
    }
#endif
    copy_stage(s, slot);
  };

  float total[64], part[64];
#pragma unroll
  for (int i = 0; i < 64; ++i) {
    total[i] = 0.0f;
    part[i] = 0.0f;
  }
  // This thread's output rows (tile-relative 16w+g and 16w+g+8).
  const long long rowLo = begin + warp * 16 + g, rowHi = rowLo + 8;
  float xsLo = 0.0f, xsHi = 0.0f, wsv[16];

#pragma unroll
  for (int s = 0; s < STAGES - 1; ++s) {
    if (s < S)
      load_stage(s, s);
    if (!USE_TMA)
      moec_gemm_cp_async_commit();
  }

#pragma unroll 1
  for (int s = 0; s < S; ++s) {
    if (!USE_TMA) {
      // Stage s has landed (at most STAGES-2 newer groups pending).
      moec_gemm_cp_async_wait<STAGES - 2>();
#if defined(MOEC_GEMM_WGMMA)
      // cp.async wrote through the generic proxy; wgmma reads through the
      // async proxy.
      asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
    }
    // Every thread is done with stage s-1 (its wgmma waited, its mma.sync
    // fragments read), whose slot stage s+STAGES-1 overwrites: on every
    // path this barrier orders that reuse.
    __syncthreads();
    if (s + STAGES - 1 < S)
      load_stage(s + STAGES - 1, (s + STAGES - 1) % STAGES);
    if (!USE_TMA)
      moec_gemm_cp_async_commit();

    const int kb = s * KS / SB;
    const bool firstOfBlock = (s * KS) % SB == 0;
    const bool lastOfBlock = ((s + 1) * KS) % SB == 0 || s == S - 1;
    if (firstOfBlock) {
      // Scales of this block, loaded early, used at its last stage.
      xsLo = rowLo < end ? xs[rowLo * KB + kb] : 0.0f;
      xsHi = rowHi < end ? xs[rowHi * KB + kb] : 0.0f;
#pragma unroll
      for (int i = 0; i < 16; ++i) {
        // Columns 8i+2t and 8i+2t+1 map to an even and the next weight
        // row: one scale block (SB is even, N/2 is even under silu_mul).
        const int c = 8 * i + 2 * t;
        wsv[i] = wvalid(c) ? wse[(wrow(c) / SB) * KB + kb] : 0.0f;
      }
    }

    const unsigned char *sA = smem + (s % STAGES) * STAGE_BYTES;
    const unsigned char *sB = sA + A_BYTES;
#if defined(MOEC_GEMM_WGMMA)
    if (USE_TMA) {
      // Stage s is the (s / STAGES)-th fill of its slot: wait for the
      // phase of that parity (acquire: the TMA's bytes are then visible).
      // A phase that never completes (a byte count the copies do not reach,
      // a copy the hardware drops) would hang the GPU; 10 s after the first
      // failed wait, far beyond any stage's load time (each try_wait itself
      // suspends for a hardware-chosen time, so a try count bounds nothing),
      // the kernel traps instead, which the runtime reports as a sticky
      // error naming this step.
      unsigned long long *bar = &full[s % STAGES];
      const unsigned int parity = (s / STAGES) & 1;
      if (!moec_gemm_mbar_try_wait(bar, parity)) {
        const unsigned long long start = moec_gemm_globaltimer();
        while (!moec_gemm_mbar_try_wait(bar, parity))
          if (moec_gemm_globaltimer() - start > 10000000000ull)
            __trap();
      }
    }
    moec_gemm_fence_regs(part);
    moec_gemm_wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < 2; ++kk) {
      const unsigned long long descA =
          USE_TMA ? moec_gemm_desc(sA + kk * 32, 16, 512, 2)
                  : moec_gemm_desc(sA + kk * 256, 128, 512, 0);
      const unsigned long long descB =
          USE_TMA ? moec_gemm_desc(sB + kk * 32, 16, 512, 2)
                  : moec_gemm_desc(sB + kk * 256, 128, 512, 0);
      moec_gemm_wgmma(part, descA, descB, (firstOfBlock && kk == 0) ? 0 : 1);
    }
    moec_gemm_wgmma_commit();
    moec_gemm_wgmma_wait_all();
    moec_gemm_fence_regs(part);
#else
    if (firstOfBlock) {
#pragma unroll
      for (int i = 0; i < 64; ++i)
        part[i] = 0.0f;
    }
#pragma unroll
    for (int kk = 0; kk < 2; ++kk) {
      // Byte (r, k) of a tile: ((r/8)*4 + k/16)*128 + (r%8)*16 + k%16;
      // k = kk*32 + 4t (+16) never crosses a 16-byte chunk.
      const int kOff = (kk * 2) * 128 + g * 16 + t * 4;
      const unsigned char *a0 = sA + (warp * 2) * 512 + kOff;
      unsigned int a[4];
      a[0] = *reinterpret_cast<const unsigned int *>(a0);            // row g
      a[1] = *reinterpret_cast<const unsigned int *>(a0 + 512);      // g+8
      a[2] = *reinterpret_cast<const unsigned int *>(a0 + 128);      // k+16
      a[3] = *reinterpret_cast<const unsigned int *>(a0 + 512 + 128);
#pragma unroll
      for (int i = 0; i < 16; ++i) {
        const unsigned char *b = sB + i * 512 + kOff; // column 8i+g
        moec_gemm_mma(&part[4 * i], a,
                      *reinterpret_cast<const unsigned int *>(b),
                      *reinterpret_cast<const unsigned int *>(b + 128));
      }
    }
#endif
    if (lastOfBlock) {
      // Promotion: the order of the scalar CPU formula's factors.
#pragma unroll
      for (int i = 0; i < 16; ++i) {
        total[4 * i + 0] += part[4 * i + 0] * xsLo * wsv[i];
        total[4 * i + 1] += part[4 * i + 1] * xsLo * wsv[i];
        total[4 * i + 2] += part[4 * i + 2] * xsHi * wsv[i];
        total[4 * i + 3] += part[4 * i + 3] * xsHi * wsv[i];
      }
    }
  }
  if (!USE_TMA)
    moec_gemm_cp_async_wait<0>(); // no copy outlives the block (every TMA
                                  // load was waited for above)

  // Epilogue: bias on the full product, then silu_mul or a plain store.
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const long long row = h ? rowHi : rowLo;
    if (row >= end)
      continue;
    if (SILU) {
#pragma unroll
      for (int i = 0; i < 8; ++i)
#pragma unroll
        for (int j = 0; j < 2; ++j) {
          const int col = (int)blockIdx.x * (BN / 2) + 8 * i + 2 * t + j;
          if (col >= NHALF)
            continue;
          float gate = total[4 * i + 2 * h + j];
          float up = total[4 * (i + 8) + 2 * h + j];
          if (HAS_BIAS) {
            gate += moec_load(bias, col);
            up += moec_load(bias, NHALF + col);
          }
          y[row * OUTN + col] = moec_gemm_silu(gate) * up;
        }
    } else {
#pragma unroll
      for (int i = 0; i < 16; ++i)
#pragma unroll
        for (int j = 0; j < 2; ++j) {
          const int col = (int)blockIdx.x * BN + 8 * i + 2 * t + j;
          if (col >= N)
            continue;
          float v = total[4 * i + 2 * h + j];
          if (HAS_BIAS)
            v += moec_load(bias, col);
          y[row * OUTN + col] = v;
        }
    }
  }
}
)cuda";

static llvm::StringRef wgmmaText() {
  static const std::string text = buildWgmmaText();
  return text;
}

//===----------------------------------------------------------------------===//
// Configs
//===----------------------------------------------------------------------===//

static llvm::Error configError(const llvm::Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message.str());
}

llvm::Error mlir::moec::cuda::checkGemmConfig(const GemmConfig &c) {
  if (c.n <= 0 || c.k <= 0)
    return configError("expected positive N and K, but got N = " +
                       llvm::Twine(c.n) + ", K = " + llvm::Twine(c.k));
  if (c.n > (1 << 30) || c.k > (1 << 30) || c.n * c.k > (int64_t(1) << 40))
    return configError("the weight is too large");
  if (c.siluMul && c.n % (c.fp8 ? 4 : 2) != 0)
    return configError("silu_mul needs N a multiple of " +
                       llvm::Twine(c.fp8 ? 4 : 2) +
                       ", but got N = " + llvm::Twine(c.n));
  if (c.experts < 0 || c.experts > 65536)
    return configError("unsupported expert count " + llvm::Twine(c.experts));
  if (c.fp8 && c.fp8Simt) {
    if (c.scaleBlock <= 0)
      return configError("expected a positive scale block, but got " +
                         llvm::Twine(c.scaleBlock));
  } else if (c.fp8) {
    if (c.scaleBlock <= 0 || c.scaleBlock % 64 != 0)
      return configError("the FP8 GEMM needs a scale block that is a "
                         "multiple of 64, but got " +
                         llvm::Twine(c.scaleBlock));
    if (c.k % 16 != 0)
      return configError("the FP8 GEMM needs K a multiple of 16 (16-byte "
                         "copies), but got K = " +
                         llvm::Twine(c.k));
  } else if (c.weightCType != "float" && c.weightCType != "moec_bf16") {
    return configError("expected f32 or bf16 weights");
  }
  if (!c.biasCType.empty() && c.biasCType != "float" &&
      c.biasCType != "moec_bf16")
    return configError("expected an f32 or bf16 bias");
  if (c.tma && (!c.fp8 || c.fp8Simt))
    return configError("TMA loads need the tensor-core FP8 kernel");
  return llvm::Error::success();
}

GemmGeometry mlir::moec::cuda::getGemmGeometry(const GemmConfig &c) {
  GemmGeometry geo;
  bool tensorCores = c.fp8 && !c.fp8Simt;
  geo.threads = tensorCores ? 128 : 256;
  geo.tileRows = 64;
  int64_t logical = tensorCores ? 128 : 64;
  geo.tileCols = c.siluMul ? logical / 2 : logical;
  int64_t outCols = c.siluMul ? c.n / 2 : c.n;
  geo.columnTiles = llvm::divideCeil(outCols, geo.tileCols);
  return geo;
}

llvm::SmallVector<CudaLibrary>
mlir::moec::cuda::getGemmLibraries(const GemmConfig &c) {
  llvm::SmallVector<CudaLibrary> libs;
  libs.push_back({"gemm_tiles", kGemmTiles});
  if (c.fp8 && !c.fp8Simt) {
    libs.push_back({"gemm_fp8_arch", kFp8GemmArch});
    libs.push_back({"gemm_fp8_wgmma", wgmmaText()});
    libs.push_back({"gemm_fp8", kFp8Gemm});
  } else {
    libs.push_back({"gemm_f32", kF32Gemm});
  }
  return libs;
}

std::string mlir::moec::cuda::emitGemmCall(
    const GemmConfig &c, llvm::StringRef x, llvm::StringRef xScale,
    llvm::StringRef offsets, llvm::StringRef w, llvm::StringRef wScale,
    llvm::StringRef bias, llvm::StringRef y, llvm::StringRef rows,
    llvm::StringRef mapA, llvm::StringRef mapB) {
  bool hasBias = !c.biasCType.empty();
  std::string biasType = hasBias ? c.biasCType : "float";
  std::string biasArg =
      hasBias ? bias.str() : "(const float *)nullptr /* no bias */";
  std::string offsetsArg =
      c.experts ? offsets.str() : "(const int *)nullptr /* dense */";
  const char *silu = c.siluMul ? "true" : "false";
  const char *hasB = hasBias ? "true" : "false";
  if (c.fp8 && c.fp8Simt)
    return llvm::formatv(
               "  moec_simt_gemm<{0}, {1}, {2}, {3}, {4}, {5}, moec_fp8, "
               "moec_fp8, {6}>({7}, {8}, {9}, {10}, {11}, {12}, {13}, {14});\n",
               c.n, c.k, c.scaleBlock, silu, c.experts, hasB, biasType, x,
               xScale, offsetsArg, w, wScale, biasArg, y, rows)
        .str();
  if (c.fp8) {
    std::string maps = c.tma ? (mapA + ", " + mapB).str()
                             : "(const moec_tensor_map *)nullptr, "
                               "(const moec_tensor_map *)nullptr /* no TMA */";
    return llvm::formatv(
               "  moec_fp8_gemm<{0}, {1}, {2}, {3}, {4}, {5}, {6}, {7}>("
               "{8}, {9}, {10}, {11}, {12}, {13}, {14}, {15}, {16});\n",
               c.n, c.k, c.scaleBlock, silu, c.experts, hasB, biasType,
               c.tma ? "true" : "false", x, xScale, offsetsArg, w, wScale,
               biasArg, y, rows, maps)
        .str();
  }
  return llvm::formatv("  moec_f32_gemm<{0}, {1}, {2}, {3}, {4}, {5}, {6}>("
                       "{7}, {8}, {9}, {10}, {11}, {12});\n",
                       c.n, c.k, silu, c.experts, hasB, c.weightCType, biasType,
                       x, offsetsArg, w, biasArg, y, rows)
      .str();
}

bool mlir::moec::cuda::canUseGemmTma(const GemmConfig &c, int64_t rowCapacity) {
  // Row and weight-row coordinates are 32-bit signed; byte strides must be
  // below 2^40 (cuTensorMapEncodeTiled).
  return c.fp8 && !c.fp8Simt && c.k % 16 == 0 && rowCapacity >= 1 &&
         rowCapacity <= INT32_MAX && c.n <= INT32_MAX &&
         c.n * c.k < (int64_t(1) << 40);
}

llvm::SmallVector<TensorMapSpec, 2>
mlir::moec::cuda::getGemmTensorMaps(const GemmConfig &c, unsigned xArg,
                                    unsigned wArg, int64_t rowCapacity) {
  // Both boxes: 64 bytes of K (one stage, the swizzle span) x 64 rows; the
  // kernel loads B's 128 rows as two boxes.
  TensorMapSpec a;
  a.arg = xArg;
  a.dims = {uint64_t(c.k), uint64_t(rowCapacity)};
  a.strides = {uint64_t(c.k)};
  a.box = {64, 64};
  a.swizzleBytes = 64;
  TensorMapSpec b;
  b.arg = wArg;
  b.dims = {uint64_t(c.k), uint64_t(c.n),
            uint64_t(std::max<int64_t>(c.experts, 1))};
  b.strides = {uint64_t(c.k), uint64_t(c.n * c.k)};
  b.box = {64, 64, 1};
  b.swizzleBytes = 64;
  return {a, b};
}

llvm::Expected<std::string>
mlir::moec::cuda::emitStandaloneGemm(llvm::StringRef name,
                                     const GemmConfig &c) {
  if (llvm::Error err = checkGemmConfig(c))
    return std::move(err);
  std::string text = getCudaPrelude().str();
  for (const CudaLibrary &lib : getGemmLibraries(c))
    text += lib.text.str();
  std::string xType = c.fp8 ? "moec_fp8" : "float";
  std::string wType = c.fp8 ? "moec_fp8" : c.weightCType;
  std::string bType = c.biasCType.empty() ? "float" : c.biasCType;
  GemmGeometry geo = getGemmGeometry(c);
  text += llvm::formatv(
              "\nextern \"C\" __global__ void __launch_bounds__({0}) {1}(\n"
              "    const {2} *__restrict__ x, const float *__restrict__ xs,\n"
              "    const int *__restrict__ offsets, const {3} *__restrict__ "
              "w,\n"
              "    const float *__restrict__ ws, const {4} *__restrict__ "
              "bias,\n"
              "    float *__restrict__ y, long long rows{5}) {{\n",
              geo.threads, name, xType, wType, bType,
              c.tma ? ",\n    const __grid_constant__ moec_tensor_map tmA,\n"
                      "    const __grid_constant__ moec_tensor_map tmB"
                    : "")
              .str();
  text += emitGemmCall(c, "x", "xs", "offsets", "w", "ws", "bias", "y", "rows",
                       "&tmA", "&tmB");
  text += "}\n";
  return text;
}

//===----------------------------------------------------------------------===//
// Planned GEMM steps
//===----------------------------------------------------------------------===//

namespace {
/// The operands of one GEMM op, as step arguments.
struct GemmArgs {
  const StepArg *x = nullptr, *xScale = nullptr, *offsets = nullptr;
  const StepArg *w = nullptr, *wScale = nullptr, *bias = nullptr;
  const StepArg *y = nullptr;
  moe::Epilogue epilogue = moe::Epilogue::none;
  moe::BlockScaleAttr actScheme, weightScheme;
};
} // namespace

/// Checks the FP8 schemes: e4m3fn activations in [1, B] and weights in
/// [B, B] blocks; returns B.
static FailureOr<int64_t> fp8Block(const StepContext &ctx,
                                   moe::BlockScaleAttr act,
                                   moe::BlockScaleAttr weight) {
  if (!act || !weight || act.getFormat() != moe::Fp8Format::e4m3fn ||
      weight.getFormat() != moe::Fp8Format::e4m3fn ||
      act.getBlock().size() != 2 || weight.getBlock().size() != 2)
    return ctx.fail("the FP8 GEMM needs e4m3fn operands with 2-d blocks"),
           failure();
  int64_t b = weight.getBlock()[1];
  if (act.getBlock()[0] != 1 || act.getBlock()[1] != b ||
      weight.getBlock()[0] != b || act.getZeroPoint() != 0 ||
      weight.getZeroPoint() != 0)
    return ctx.fail("the FP8 GEMM needs activation blocks [1, B] and "
                    "weight blocks [B, B] without zero points"),
           failure();
  return b;
}

static bool isType(const StepArg *a, llvm::StringRef ctype) {
  return a && a->elementCType() == ctype;
}

mlir::FailureOr<CudaStep>
mlir::moec::cuda::emitGemmStep(const StepContext &ctx) {
  GemmArgs g;
  GemmConfig config;
  auto argOf = [&](Value v) -> const StepArg * {
    return v ? &ctx.arg(v) : nullptr;
  };
  llvm::TypeSwitch<Operation *>(ctx.op)
      .Case([&](moe::MatmulOp o) {
        g.x = argOf(o.getX());
        g.w = argOf(o.getW());
        g.bias = argOf(o.getBias());
        g.y = argOf(o.getResult());
        g.epilogue = o.getEpilogue();
      })
      .Case([&](moe::Fp8MatmulOp o) {
        config.fp8 = true;
        g.x = argOf(o.getX());
        g.xScale = argOf(o.getXScale());
        g.w = argOf(o.getW());
        g.wScale = argOf(o.getWScale());
        g.bias = argOf(o.getBias());
        g.y = argOf(o.getResult());
        g.epilogue = o.getEpilogue();
        g.actScheme = o.getActScheme();
        g.weightScheme = o.getWeightScheme();
      })
      .Case([&](moe::GroupedMatmulOp o) {
        g.x = argOf(o.getRows());
        g.offsets = argOf(o.getOffsets());
        g.w = argOf(o.getW());
        g.y = argOf(o.getResult());
        g.epilogue = o.getEpilogue();
      })
      .Case([&](moe::Fp8GroupedMatmulOp o) {
        config.fp8 = true;
        g.x = argOf(o.getRows());
        g.xScale = argOf(o.getRowsScale());
        g.offsets = argOf(o.getOffsets());
        g.w = argOf(o.getW());
        g.wScale = argOf(o.getWScale());
        g.y = argOf(o.getResult());
        g.epilogue = o.getEpilogue();
        g.actScheme = o.getActScheme();
        g.weightScheme = o.getWeightScheme();
      });
  if (!g.x || !g.w || !g.y)
    return ctx.fail("not a GEMM op"), failure();

  bool grouped = g.offsets != nullptr;
  ArrayRef<int64_t> wShape = g.w->type.getShape();
  if (wShape.size() != (grouped ? 3u : 2u) ||
      ShapedType::isDynamicShape(wShape))
    return ctx.fail("expected a static weight of rank " +
                    llvm::Twine(grouped ? 3 : 2)),
           failure();
  config.n = wShape[grouped ? 1 : 0];
  config.k = wShape[grouped ? 2 : 1];
  if (g.x->type.getRank() != 2 || g.x->type.getShape()[1] != config.k)
    return ctx.fail("expected activations [rows, K]"), failure();
  if (!isType(g.y, "float"))
    return ctx.fail("expected an f32 result"), failure();
  if (grouped) {
    if (!isType(g.offsets, "int") || g.offsets->type.getRank() != 1 ||
        g.offsets->type.isDynamicDim(0) || g.offsets->type.getDimSize(0) < 2)
      return ctx.fail("expected static i32 offsets [E + 1]"), failure();
    config.experts = g.offsets->type.getDimSize(0) - 1;
    if (config.experts != wShape[0])
      return ctx.fail("expected one weight matrix per expert"), failure();
  }
  switch (g.epilogue) {
  case moe::Epilogue::none:
    break;
  case moe::Epilogue::silu_mul:
    config.siluMul = true;
    break;
  }
  if (g.bias)
    config.biasCType = g.bias->elementCType().str();

  if (config.fp8) {
    FailureOr<int64_t> block = fp8Block(ctx, g.actScheme, g.weightScheme);
    if (failed(block))
      return failure();
    config.scaleBlock = *block;
    // Small blocks (tiny test models) take the SIMT kernel.
    config.fp8Simt = config.scaleBlock % 64 != 0 || config.k % 16 != 0;
    if (!isType(g.x, "moec_fp8") || !isType(g.w, "moec_fp8"))
      return ctx.fail("expected e4m3fn activations and weights"), failure();
    int64_t kb = llvm::divideCeil(config.k, config.scaleBlock);
    int64_t nb = llvm::divideCeil(config.n, config.scaleBlock);
    if (!isType(g.xScale, "float") || g.xScale->rowElements() != kb ||
        !isType(g.wScale, "float") ||
        g.wScale->type.getNumElements() !=
            nb * kb * std::max<int64_t>(config.experts, 1))
      return ctx.fail("unexpected FP8 scale shapes"), failure();
  } else {
    if (!isType(g.x, "float"))
      return ctx.fail("expected f32 activations"), failure();
    config.weightCType = g.w->elementCType().str();
  }
  if (llvm::Error err = checkGemmConfig(config)) {
    ctx.fail(llvm::toString(std::move(err)));
    return failure();
  }

  // Rows of x: per token (`tokens * rowsPerToken`) or static.
  std::string rows;
  GridExtent rowTiles;
  int64_t rowCapacity; // rows at `max_tokens`
  GemmGeometry geo = getGemmGeometry(config);
  if (g.x->isPerToken()) {
    rows = llvm::formatv("tokens * {0}LL", g.x->rowsPerToken).str();
    rowTiles = GridExtent::tokens(g.x->rowsPerToken, geo.tileRows);
    rowCapacity = ctx.maxTokens * g.x->rowsPerToken;
  } else {
    int64_t r = g.x->type.getDimSize(0);
    rows = std::to_string(r) + "LL";
    rowTiles = GridExtent::fixed(llvm::divideCeil(r, geo.tileRows));
    rowCapacity = r;
  }
  // Grouped: each expert's last tile may be partial, so at most E more.
  rowTiles.constant += config.experts;

  // The same kernel text serves every target: the maps are parameters of
  // the launch everywhere and only the sm_90a path reads them.
  config.tma = ctx.options.tma && canUseGemmTma(config, rowCapacity);
  llvm::SmallVector<TensorMapSpec, 2> maps;
  if (config.tma)
    maps = getGemmTensorMaps(config, ctx.indexOf(*g.x), ctx.indexOf(*g.w),
                             rowCapacity);

  CudaStep step;
  step.libraries = getGemmLibraries(config);
  std::string name = ctx.kernel();
  auto nameOf = [](const StepArg *a) { return a ? a->name : std::string(); };
  step.source += llvm::formatv(
      R"cuda(
// {0}: {1} GEMM{2}, y[rows, {3}] = x[rows, {4}] * w[{5}{6}, {4}]^T{7}{8}.
// Grid (column tiles of {9}, row tiles of {10}{11}), {12} threads{14}.
extern "C" __global__ void __launch_bounds__({12}) {0}({13}) {{
)cuda",
      name,
      config.fp8 ? (config.fp8Simt ? "block-scaled FP8 (SIMT, small blocks)"
                                   : "block-scaled FP8")
                 : "f32",
      grouped ? " per expert" : "", config.siluMul ? config.n / 2 : config.n,
      config.k, grouped ? std::to_string(config.experts) + ", " : "", config.n,
      g.bias ? " + bias" : "", config.siluMul ? ", silu_mul epilogue" : "",
      geo.tileCols, geo.tileRows,
      grouped ? " + one partial tile per expert" : "", geo.threads,
      ctx.parameterList(maps.size()),
      config.tma ? llvm::formatv(", TMA loads on sm_90a (tm0: {0}, tm1: {1})",
                                 g.x->name, g.w->name)
                       .str()
                 : std::string());
  step.source += emitGemmCall(config, g.x->name, nameOf(g.xScale),
                              nameOf(g.offsets), g.w->name, nameOf(g.wScale),
                              nameOf(g.bias), g.y->name, rows, "&tm0", "&tm1");
  step.source += "}\n";

  CudaLaunch launch;
  launch.kernel = name;
  launch.grid[0] = GridExtent::fixed(geo.columnTiles);
  launch.grid[1] = rowTiles;
  launch.block = {geo.threads, 1, 1};
  launch.tensorMaps = std::move(maps);
  step.launches.push_back(std::move(launch));
  if (failed(appendFusedQuantize(ctx, step)))
    return failure();
  return step;
}
