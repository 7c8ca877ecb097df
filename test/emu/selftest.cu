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
