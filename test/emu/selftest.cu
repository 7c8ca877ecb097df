// Kernels that check the host emulation itself (check_cuda_emulated.py runs
// them through ctypes): each writes what the emulation must produce, or
// breaks a rule the emulation must report. Same ABI as moec's kernels.

// Warp collectives: out[4 * t + i] for thread t of one 64-thread block.
extern "C" __global__ void __launch_bounds__(64)
    emu_shuffles(int *__restrict__ out, void *__restrict__ workspace,
                 long long tokens) {
  const int t = threadIdx.x, lane = t & 31;
  out[8 * t + 0] = __shfl_xor_sync(0xFFFFFFFFu, t, 5);
  out[8 * t + 1] = __shfl_up_sync(0xFFFFFFFFu, t, 3);
  out[8 * t + 2] = __shfl_down_sync(0xFFFFFFFFu, t, 3);
  out[8 * t + 3] = __shfl_sync(0xFFFFFFFFu, t, 7);
  out[8 * t + 4] = (int)__ballot_sync(0xFFFFFFFFu, lane % 3 == 0);
  out[8 * t + 5] = __any_sync(0xFFFFFFFFu, t == 40);
  out[8 * t + 6] = __all_sync(0xFFFFFFFFu, lane < 32);
  out[8 * t + 7] = __shfl_xor_sync(0xFFFFFFFFu, t, 1, 4); // width 4
}

// Threads t >= tokens return before the block barrier and drop out of it
// and of their warp; out[b] = sum over the block's remaining threads of t,
// through shared memory and shuffles.
extern "C" __global__ void __launch_bounds__(128)
    emu_early_return(int *__restrict__ out, void *__restrict__ workspace,
                     long long tokens) {
  __shared__ int partial[4];
  const int t = threadIdx.x;
  if (t >= tokens)
    return;
  int v = t;
  for (int o = 16; o > 0; o >>= 1) {
    const unsigned mask = __ballot_sync(__activemask(), true);
    const int other = __shfl_xor_sync(mask, v, o);
    v += ((t & 31) ^ o) < 32 && (mask >> ((t & 31) ^ o) & 1) ? other : 0;
  }
  if ((t & 31) == 0)
    partial[t >> 5] = v;
  __syncthreads();
  if (t == 0) {
    int s = 0;
    for (int w = 0; w < (int)((tokens + 31) / 32); ++w)
      s += partial[w];
    out[blockIdx.x] = s;
  }
}

// No barrier between the write and the read: every thread reads its
// neighbour's slot, which the emulation must show as unwritten (0xFF bytes)
// for at least one thread in either thread order.
extern "C" __global__ void __launch_bounds__(64)
    emu_missing_barrier(float *__restrict__ out, void *__restrict__ workspace,
                        long long tokens) {
  __shared__ float slot[64];
  const int t = threadIdx.x;
  slot[t] = (float)t;
  out[t] = slot[(t + 1) % 64] + slot[(t + 63) % 64];
}

// Threads of one block at two different barriers: reported.
extern "C" __global__ void __launch_bounds__(64)
    emu_divergent_barrier(float *__restrict__ out, void *__restrict__ workspace,
                          long long tokens) {
  if (threadIdx.x < 32)
    __syncthreads();
  else
    __syncthreads();
}

// Warp 0 at a shuffle while warp 1 waits at the block barrier with lanes of
// warp 0 that can never reach it: a deadlock, reported.
extern "C" __global__ void __launch_bounds__(64)
    emu_deadlock(float *__restrict__ out, void *__restrict__ workspace,
                 long long tokens) {
  if (threadIdx.x == 0)
    out[0] = __shfl_sync(0xFFFFFFFFu, 1.0f, 0);
  __syncthreads();
}

// ---- TMA, mbarrier and swizzled wgmma (the sm_90a FP8 GEMM's leaf
// functions, under the names and signatures moec's GEMM library gives them;
// build_kernels.py replaces each by its model, so these bodies are never
// compiled for a GPU) ----

struct __align__(64) moec_tensor_map {
  unsigned long long opaque[16];
};

__device__ __forceinline__ void moec_gemm_mbar_init(unsigned long long *bar,
                                                    unsigned int count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(
                   (unsigned int)__cvta_generic_to_shared(bar)),
               "r"(count)
               : "memory");
}
__device__ __forceinline__ void moec_gemm_mbar_init_fence() {
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}
__device__ __forceinline__ void
moec_gemm_mbar_arrive_expect_tx(unsigned long long *bar, unsigned int bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(
                   (unsigned int)__cvta_generic_to_shared(bar)),
               "r"(bytes)
               : "memory");
}
__device__ __forceinline__ int moec_gemm_mbar_try_wait(unsigned long long *bar,
                                                       unsigned int parity) {
  unsigned int done;
  asm volatile("{\n.reg .pred p;\n"
               "mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
               "selp.u32 %0, 1, 0, p;\n}\n"
               : "=r"(done)
               : "r"((unsigned int)__cvta_generic_to_shared(bar)), "r"(parity)
               : "memory");
  return (int)done;
}
__device__ __forceinline__ void
moec_gemm_tma_load_2d(void *dst, const moec_tensor_map *map, int c0, int c1,
                      unsigned long long *bar) {
  asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::"
               "complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n" ::"r"(
                   (unsigned int)__cvta_generic_to_shared(dst)),
               "l"(map), "r"(c0), "r"(c1),
               "r"((unsigned int)__cvta_generic_to_shared(bar))
               : "memory");
}
__device__ __forceinline__ void
moec_gemm_tma_load_3d(void *dst, const moec_tensor_map *map, int c0, int c1,
                      int c2, unsigned long long *bar) {
  asm volatile("cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::"
               "complete_tx::bytes [%0], [%1, {%2, %3, %4}], [%5];\n" ::"r"(
                   (unsigned int)__cvta_generic_to_shared(dst)),
               "l"(map), "r"(c0), "r"(c1), "r"(c2),
               "r"((unsigned int)__cvta_generic_to_shared(bar))
               : "memory");
}
// Matrix descriptor (no inline PTX: not replaced); swizzle = bits 62-63.
__device__ __forceinline__ unsigned long long
moec_gemm_desc(const void *smem, unsigned int lbo, unsigned int sbo,
               unsigned int swizzle) {
  const unsigned int a = (unsigned int)__cvta_generic_to_shared(smem);
  return (unsigned long long)((a & 0x3FFFFu) >> 4) |
         ((unsigned long long)((lbo & 0x3FFFFu) >> 4) << 16) |
         ((unsigned long long)((sbo & 0x3FFFFu) >> 4) << 32) |
         ((unsigned long long)(swizzle & 3u) << 62);
}
// The real wrapper (64 accumulator operands) is generated by
// codegen/cuda/GemmEmitter.cpp; this one only has to name the model.
__device__ __forceinline__ void moec_gemm_wgmma(float (&d)[64],
                                                unsigned long long descA,
                                                unsigned long long descB,
                                                int accumulate) {
  asm volatile("wgmma.mma_async.sync.aligned.m64n128k32.f32.e4m3.e4m3 "
               "{...}, %0, %1, p, 1, 1;\n" ::"l"(descA),
               "l"(descB), "r"(accumulate)
               : "memory");
}

// Five TMA loads on one mbarrier, each partly out of bounds, then every
// thread copies the five 2 KiB tiles (swizzled bytes as they lie) to out:
// tm0..tm3 2-D u8 boxes of {W, 16} at (width - W/2, -3) with swizzle W =
// none (64-byte rows), 32, 64, 128; tm4 a 3-D {64, 8, 2} box at (0, 5, 2),
// swizzle 64. Bytes past a box stay poison (0xFF).
extern "C" __global__ void __launch_bounds__(64)
    emu_tma_roundtrip(unsigned char *__restrict__ out,
                      void *__restrict__ workspace, long long tokens,
                      const __grid_constant__ moec_tensor_map tm0,
                      const __grid_constant__ moec_tensor_map tm1,
                      const __grid_constant__ moec_tensor_map tm2,
                      const __grid_constant__ moec_tensor_map tm3,
                      const __grid_constant__ moec_tensor_map tm4) {
  __shared__ __align__(1024) unsigned char tiles[5][2048];
  __shared__ unsigned long long bar;
  const int t = threadIdx.x, width = (int)tokens;
  if (t == 0) {
    moec_gemm_mbar_init(&bar, 1);
    moec_gemm_mbar_init_fence();
  }
  __syncthreads();
  if (t == 0) {
    moec_gemm_mbar_arrive_expect_tx(&bar, (64 + 32 + 64 + 128) * 16 + 1024);
    moec_gemm_tma_load_2d(tiles[0], &tm0, width - 32, -3, &bar);
    moec_gemm_tma_load_2d(tiles[1], &tm1, width - 16, -3, &bar);
    moec_gemm_tma_load_2d(tiles[2], &tm2, width - 32, -3, &bar);
    moec_gemm_tma_load_2d(tiles[3], &tm3, width - 64, -3, &bar);
    moec_gemm_tma_load_3d(tiles[4], &tm4, 0, 5, 2, &bar);
  }
  while (!moec_gemm_mbar_try_wait(&bar, 0)) {
  }
  for (int i = t; i < 5 * 2048; i += 64)
    out[i] = tiles[i / 2048][i % 2048];
}

// Reads a TMA destination without waiting on its mbarrier: out[t] must be
// poison (NaN) in either thread order.
extern "C" __global__ void __launch_bounds__(64)
    emu_tma_no_wait(float *__restrict__ out, void *__restrict__ workspace,
                    long long tokens,
                    const __grid_constant__ moec_tensor_map tm0) {
  __shared__ __align__(128) float tile[64];
  __shared__ unsigned long long bar;
  const int t = threadIdx.x;
  if (t == 0)
    moec_gemm_mbar_init(&bar, 1);
  __syncthreads();
  if (t == 0) {
    moec_gemm_mbar_arrive_expect_tx(&bar, sizeof tile);
    moec_gemm_tma_load_2d(tile, &tm0, 0, 0, &bar);
  }
  out[t] = tile[t];
}

// mbarrier rules, by `tokens`: 0: expects 512 bytes, one 256-byte box
// arrives (a deadlock); 1: expects 128 (the box overshoots); 2: the map is
// passed as 128 zero bytes (not encoded); 3: a second arrive before any
// wait saw the first phase complete.
extern "C" __global__ void __launch_bounds__(64)
    emu_mbar_rules(float *__restrict__ out, void *__restrict__ workspace,
                   long long tokens,
                   const __grid_constant__ moec_tensor_map tm0) {
  __shared__ __align__(128) float tile[64];
  __shared__ unsigned long long bar;
  const int t = threadIdx.x;
  if (t == 0)
    moec_gemm_mbar_init(&bar, 1);
  __syncthreads();
  if (t == 0) {
    moec_gemm_mbar_arrive_expect_tx(&bar, tokens == 1 ? 128 : 512);
    moec_gemm_tma_load_2d(tile, &tm0, 0, 0, &bar);
    if (tokens == 3)
      moec_gemm_mbar_arrive_expect_tx(&bar, 512);
  }
  while (!moec_gemm_mbar_try_wait(&bar, 0)) {
  }
  out[t] = tile[t];
}

// The sm_90a GEMM's stage: TMA A {64 B, 64 rows} of a [50, 64] e4m3 matrix
// (rows 50.. zero-filled) and B as two {64 B, 64 rows, 1} boxes of expert 1
// of a [2, 100, 64] tensor (rows 100.. zero-filled), 64B-swizzled, then two
// wgmma k32 steps with swizzle-mode descriptors (start + 32 for the second):
// out[r * 128 + c] = sum_k A[r][k] B[c][k]. By `tokens`: 0 as described;
// 1: only thread 0 waits on the mbarrier; 2: thread 0 refills B's second
// half before the wgmma (no barrier between reads and refill).
extern "C" __global__ void __launch_bounds__(128)
    emu_tma_wgmma(float *__restrict__ out, void *__restrict__ workspace,
                  long long tokens, const __grid_constant__ moec_tensor_map tma,
                  const __grid_constant__ moec_tensor_map tmb) {
  __shared__ __align__(1024) unsigned char smem[3 * 4096];
  __shared__ unsigned long long bar;
  const int t = threadIdx.x, warp = t >> 5, lane = t & 31;
  const int g = lane >> 2, q = lane & 3;
  unsigned char *sA = smem, *sB = smem + 4096;
  if (t == 0) {
    moec_gemm_mbar_init(&bar, 1);
    moec_gemm_mbar_init_fence();
  }
  __syncthreads();
  if (t == 0) {
    moec_gemm_mbar_arrive_expect_tx(&bar, 3 * 4096);
    moec_gemm_tma_load_2d(sA, &tma, 0, 0, &bar);
    moec_gemm_tma_load_3d(sB, &tmb, 0, 0, 1, &bar);
    moec_gemm_tma_load_3d(sB + 4096, &tmb, 0, 64, 1, &bar);
  }
  if (tokens != 1 || t == 0)
    while (!moec_gemm_mbar_try_wait(&bar, 0)) {
    }
  if (tokens == 2 && t == 0) {
    moec_gemm_mbar_arrive_expect_tx(&bar, 4096);
    moec_gemm_tma_load_3d(sB + 4096, &tmb, 0, 64, 1, &bar);
  }
  float d[64];
  for (int i = 0; i < 64; ++i)
    d[i] = 0.0f;
  for (int kk = 0; kk < 2; ++kk)
    moec_gemm_wgmma(d, moec_gemm_desc(sA + kk * 32, 16, 512, 2),
                    moec_gemm_desc(sB + kk * 32, 16, 512, 2), kk);
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 4; ++j)
      out[(16 * warp + g + 8 * (j / 2)) * 128 + 8 * i + 2 * q + j % 2] =
          d[4 * i + j];
}

// The sm_90a GEMM's whole K loop as the TMA design runs it (docs/cuda.md):
// a 3-slot ring, one mbarrier per slot, thread 0 issuing stage s + 2 after
// the barrier that ends stage s - 1's reads, consumers waiting with parity
// (s / 3) & 1; A [50, 304] and B [100, 304] e4m3 (K past 304 and rows past
// the ends zero-filled), out as in emu_tma_wgmma. `tokens` 1 drops the
// barrier before the refill.
extern "C" __global__ void __launch_bounds__(128)
    emu_tma_ring(float *__restrict__ out, void *__restrict__ workspace,
                 long long tokens, const __grid_constant__ moec_tensor_map tma,
                 const __grid_constant__ moec_tensor_map tmb) {
  constexpr int S = 5, STAGES = 3, STAGE_BYTES = 3 * 4096;
  __shared__ __align__(1024) unsigned char smem[STAGES * STAGE_BYTES];
  __shared__ unsigned long long bars[STAGES];
  const int t = threadIdx.x, warp = t >> 5, lane = t & 31;
  const int g = lane >> 2, q = lane & 3;
  auto load_stage = [&](int s, int slot) {
    unsigned char *sA = smem + slot * STAGE_BYTES, *sB = sA + 4096;
    moec_gemm_mbar_arrive_expect_tx(&bars[slot], STAGE_BYTES);
    moec_gemm_tma_load_2d(sA, &tma, s * 64, 0, &bars[slot]);
    moec_gemm_tma_load_3d(sB, &tmb, s * 64, 0, 0, &bars[slot]);
    moec_gemm_tma_load_3d(sB + 4096, &tmb, s * 64, 64, 0, &bars[slot]);
  };
  if (t == 0) {
    for (int i = 0; i < STAGES; ++i)
      moec_gemm_mbar_init(&bars[i], 1);
    moec_gemm_mbar_init_fence();
  }
  __syncthreads();
  if (t == 0)
    for (int s = 0; s < STAGES - 1 && s < S; ++s)
      load_stage(s, s);
  float d[64];
  for (int s = 0; s < S; ++s) {
    if (tokens != 1)
      __syncthreads();
    if (t == 0 && s + STAGES - 1 < S)
      load_stage(s + STAGES - 1, (s + STAGES - 1) % STAGES);
    while (!moec_gemm_mbar_try_wait(&bars[s % STAGES], (s / STAGES) & 1)) {
    }
    const unsigned char *sA = smem + (s % STAGES) * STAGE_BYTES;
    for (int kk = 0; kk < 2; ++kk)
      moec_gemm_wgmma(d, moec_gemm_desc(sA + kk * 32, 16, 512, 2),
                      moec_gemm_desc(sA + 4096 + kk * 32, 16, 512, 2),
                      s > 0 || kk > 0);
  }
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 4; ++j)
      out[(16 * warp + g + 8 * (j / 2)) * 128 + 8 * i + 2 * q + j % 2] =
          d[4 * i + j];
}
