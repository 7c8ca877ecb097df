//===- test/emu/cuda_emu.h - host emulation of moec's CUDA subset ---------===//
//
// Compiles moec's emitted CUDA C++ (kernels.cu) as host C++ and runs its
// kernels in an emulation of the CUDA execution model, so that kernel logic
// (indexing, barriers, warp collectives, MMA fragments) can be checked
// without a GPU. docs/cuda.md, "Host emulation of the kernels".
//
// Execution: blocks run one after another; the threads of a block are
// fibers (user-mode contexts with their own stacks, a persistent pool of at
// most 1024 reused across blocks and launches) on the calling OS thread. A
// fiber runs until it reaches a block barrier or a warp collective, then the
// next one runs (ascending thread order, or descending with
// MOEC_EMU_ORDER=reverse). So every thread of a block runs a barrier
// interval before any thread passes the barrier: a missing __syncthreads
// shows up deterministically, in one of the two orders, as a read of
// unwritten (poisoned) data.
//
// Checked: threads that return drop out of the block barrier and of their
// warp; all threads at one barrier must be at the same one (source line);
// the lanes of a warp collective must be at the same collective with the
// same mask; a round in which no thread can proceed is a deadlock. Static
// __shared__ arrays (one per function, i.e. exactly block-shared since
// blocks run sequentially; build_kernels.py registers each) are poisoned
// with 0xFF bytes (NaN, -1) at the start of every block, as are values shuffled
// from lanes that do not take part. cp.async copies land at
// cp.async.wait_group, the latest time the PTX ISA allows. A failed check
// prints what and where and aborts.
//
// The inline-PTX leaf functions of the GEMM kernels are replaced (by
// test/emu/build_kernels.py, through `using moec_emu::ptx::NAME;`) by models
// written from the PTX ISA: cp.async, mma.sync m16n8k32 e4m3, mma.sync
// m16n8k16 bf16 and wgmma m64n128k32 e4m3 (reading shared memory through the
// descriptor's start address, LBO and SBO).
//
//===----------------------------------------------------------------------===//
#pragma once

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <algorithm>
#include <cmath>
#include <deque>
#include <mutex>
#include <type_traits>
#include <vector>

#if !defined(__x86_64__)
#include <ucontext.h>
#endif

// ---- CUDA keywords ----
#define __device__
#define __host__
#define __global__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __restrict__
#define __constant__ static
#define __align__(n) __attribute__((aligned(n)))
#define __launch_bounds__(...)
// build_kernels.py follows every __shared__ declaration with a
// moec_emu::SharedRegistration of each variable it declares.
#define __shared__ static

// ---- built-in types ----
struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  dim3(unsigned x = 1, unsigned y = 1, unsigned z = 1) : x(x), y(y), z(z) {}
};
#define MOEC_EMU_VEC2(T, N, A)                                                 \
  struct __attribute__((aligned(A))) N {                                       \
    T x, y;                                                                    \
  };                                                                           \
  inline N make_##N(T x, T y) { return N{x, y}; }
#define MOEC_EMU_VEC4(T, N, A)                                                 \
  struct __attribute__((aligned(A))) N {                                       \
    T x, y, z, w;                                                              \
  };                                                                           \
  inline N make_##N(T x, T y, T z, T w) { return N{x, y, z, w}; }
MOEC_EMU_VEC2(float, float2, 8)
MOEC_EMU_VEC4(float, float4, 16)
MOEC_EMU_VEC2(int, int2, 8)
MOEC_EMU_VEC4(int, int4, 16)
MOEC_EMU_VEC2(unsigned, uint2, 8)
MOEC_EMU_VEC4(unsigned, uint4, 16)
MOEC_EMU_VEC2(unsigned short, ushort2, 4)
MOEC_EMU_VEC4(unsigned short, ushort4, 8)
MOEC_EMU_VEC4(unsigned char, uchar4, 4)
MOEC_EMU_VEC4(signed char, char4, 4)
#undef MOEC_EMU_VEC2
#undef MOEC_EMU_VEC4

inline uint3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;
constexpr int warpSize = 32;

namespace moec_emu {

constexpr unsigned kMaxThreads = 1024;
constexpr size_t kStackBytes = 256 * 1024;

// ---- fibers ----
struct Copy {
  void *dst;
  const void *src;
  int bytes;
};
struct Fiber {
  void *sp = nullptr;
  char *stack = nullptr;
  bool done = true;
  std::vector<Copy> pending;             // cp.async not yet committed
  std::vector<std::vector<Copy>> groups; // committed, oldest first
  const void *sharedRegion = nullptr;    // of the last __cvta_generic_to_shared
};

struct Warp {
  unsigned live = 0;    // lanes that have not returned
  unsigned arrived = 0; // lanes waiting at the current collective
  unsigned mask = 0;    // the current collective's mask
  int site = 0;
  unsigned long long gen = 0;
  unsigned took[2] = {0, 0}; // lanes that took part, by parity of gen
  alignas(16) unsigned char slots[2][32][64];
};

struct State {
  Fiber fibers[kMaxThreads];
  Warp warps[kMaxThreads / 32];
  void *schedulerSp = nullptr;
  int current = -1;
  unsigned threads = 0, live = 0, arrived = 0;
  int site = 0;
  unsigned long long gen = 0;
  bool progress = false;
  void (*body)(void *) = nullptr;
  void *bodyArg = nullptr;
  const char *kernel = "?";
  bool reverse = false;
#if !defined(__x86_64__)
  ucontext_t schedulerContext, contexts[kMaxThreads];
#endif
};
inline State state;
inline std::mutex launchMutex;

// The static __shared__ variables, registered at their first execution
// (build_kernels.py) and poisoned at the start of every block.
struct SharedRegion {
  char *start;
  size_t bytes;
};
inline std::deque<SharedRegion> sharedRegions; // stable addresses
struct SharedRegistration {
  SharedRegistration(void *p, size_t bytes) {
    sharedRegions.push_back({static_cast<char *>(p), bytes});
    memset(p, 0xFF, bytes);
  }
};
inline const SharedRegion *findShared(const void *p) {
  const char *c = static_cast<const char *>(p);
  for (const SharedRegion &r : sharedRegions)
    if (c >= r.start && c < r.start + r.bytes)
      return &r;
  return nullptr;
}

[[noreturn]] inline void fail(const char *format, ...) {
  fprintf(stderr,
          "moec-emu: kernel %s, block (%u, %u, %u), thread %d: ", state.kernel,
          blockIdx.x, blockIdx.y, blockIdx.z, state.current);
  va_list args;
  va_start(args, format);
  vfprintf(stderr, format, args);
  va_end(args);
  fputc('\n', stderr);
  fflush(stderr);
  abort();
}

#if defined(__x86_64__)
// Saves the callee-saved registers and the stack pointer in *save, switches
// to the stack `to` and restores its registers (System V x86-64).
__attribute__((naked, noinline)) static void switchStack(void **save,
                                                         void *to) {
  asm("pushq %rbp\n\t"
      "pushq %rbx\n\t"
      "pushq %r12\n\t"
      "pushq %r13\n\t"
      "pushq %r14\n\t"
      "pushq %r15\n\t"
      "movq %rsp, (%rdi)\n\t"
      "movq %rsi, %rsp\n\t"
      "popq %r15\n\t"
      "popq %r14\n\t"
      "popq %r13\n\t"
      "popq %r12\n\t"
      "popq %rbx\n\t"
      "popq %rbp\n\t"
      "ret\n\t");
}
#endif

inline void toScheduler() {
  asm volatile("" ::: "memory");
#if defined(__x86_64__)
  switchStack(&state.fibers[state.current].sp, state.schedulerSp);
#else
  swapcontext(&state.contexts[state.current], &state.schedulerContext);
#endif
  asm volatile("" ::: "memory");
}

inline void performCopies(std::vector<Copy> &copies) {
  for (const Copy &c : copies) {
    memcpy(c.dst, c.src, size_t(c.bytes));
    memset(static_cast<char *>(c.dst) + c.bytes, 0, size_t(16 - c.bytes));
  }
  copies.clear();
}

inline void releaseBlockIfComplete() {
  if (state.arrived && state.arrived == state.live) {
    state.arrived = 0;
    ++state.gen;
    state.progress = true;
  }
}

inline void releaseWarpIfComplete(Warp &w) {
  if (!w.arrived)
    return;
  const unsigned expected = w.mask & w.live;
  if ((w.arrived & expected) != expected)
    return;
  const int parity = int(w.gen & 1);
  // Lanes that do not take part read as poison.
  for (int l = 0; l < 32; ++l)
    if (!(w.arrived >> l & 1))
      memset(w.slots[parity][l], 0xFF, sizeof w.slots[parity][l]);
  w.took[parity] = w.arrived;
  w.arrived = 0;
  ++w.gen;
  state.progress = true;
}

[[noreturn]] inline void fiberMain() {
  state.body(state.bodyArg);
  Fiber &f = state.fibers[state.current];
  for (auto &g : f.groups) // cp.async still in flight completes
    performCopies(g);
  f.groups.clear();
  f.pending.clear();
  f.done = true;
  const unsigned t = unsigned(state.current);
  --state.live;
  state.warps[t / 32].live &= ~(1u << (t % 32));
  state.progress = true;
  releaseBlockIfComplete();
  releaseWarpIfComplete(state.warps[t / 32]);
  toScheduler();
  __builtin_unreachable();
}

#if !defined(__x86_64__)
inline void fiberEntry() { fiberMain(); }
#endif

inline void startFiber(unsigned t) {
  Fiber &f = state.fibers[t];
  if (!f.stack) {
    void *p = mmap(nullptr, kStackBytes + 4096, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
      fail("cannot map a fiber stack");
    mprotect(p, 4096, PROT_NONE); // guard page below the stack
    f.stack = static_cast<char *>(p) + 4096;
  }
  f.done = false;
  f.pending.clear();
  f.groups.clear();
#if defined(__x86_64__)
  uintptr_t *sp = reinterpret_cast<uintptr_t *>(f.stack + kStackBytes);
  *--sp = 0; // fiberMain's return address: never used
  *--sp = reinterpret_cast<uintptr_t>(&fiberMain);
  for (int i = 0; i < 6; ++i)
    *--sp = 0; // rbp rbx r12 r13 r14 r15
  f.sp = sp;
#else
  ucontext_t &c = state.contexts[t];
  getcontext(&c);
  c.uc_stack.ss_sp = f.stack;
  c.uc_stack.ss_size = kStackBytes;
  c.uc_link = nullptr;
  makecontext(&c, fiberEntry, 0);
#endif
}

inline void resume(unsigned t) {
  state.current = int(t);
  const unsigned bx = blockDim.x, by = blockDim.y;
  threadIdx = {t % bx, t / bx % by, t / (bx * by)};
  asm volatile("" ::: "memory");
#if defined(__x86_64__)
  switchStack(&state.schedulerSp, state.fibers[t].sp);
#else
  swapcontext(&state.schedulerContext, &state.contexts[t]);
#endif
  asm volatile("" ::: "memory");
}

inline void runBlock() {
  const unsigned n = state.threads;
  state.live = n;
  state.arrived = 0;
  for (unsigned w = 0; w < (n + 31) / 32; ++w) {
    Warp &warp = state.warps[w];
    const unsigned lanes = std::min(32u, n - 32 * w);
    warp.live = lanes == 32 ? ~0u : (1u << lanes) - 1;
    warp.arrived = 0;
  }
  for (unsigned t = 0; t < n; ++t)
    startFiber(t);
  for (const SharedRegion &r : sharedRegions)
    memset(r.start, 0xFF, r.bytes);
  while (state.live) {
    state.progress = false;
    for (unsigned i = 0; i < n; ++i) {
      const unsigned t = state.reverse ? n - 1 - i : i;
      if (!state.fibers[t].done)
        resume(t);
    }
    if (state.live && !state.progress) {
      state.current = -1;
      fail("deadlock: %u of %u threads wait at a barrier or warp collective "
           "that cannot complete (block barrier: %u arrived)",
           state.live, n, state.arrived);
    }
  }
  state.current = -1;
}

// Runs `kernel` for every block of the grid, blocks in order.
template <typename F>
void launch(const char *name, const unsigned *grid, const unsigned *block,
            unsigned maxThreads, F &&kernel) {
  std::lock_guard<std::mutex> lock(launchMutex);
  const unsigned n = block[0] * block[1] * block[2];
  state.kernel = name;
  if (n == 0 || n > kMaxThreads)
    fail("block of %u threads", n);
  if (maxThreads && n > maxThreads)
    fail("block of %u threads exceeds __launch_bounds__(%u)", n, maxThreads);
  if (const char *order = getenv("MOEC_EMU_ORDER"))
    state.reverse = strcmp(order, "reverse") == 0;
  state.body = [](void *arg) {
    (*static_cast<std::remove_reference_t<F> *>(arg))();
  };
  state.bodyArg = &kernel;
  state.threads = n;
  blockDim = dim3(block[0], block[1], block[2]);
  gridDim = dim3(grid[0], grid[1], grid[2]);
  for (unsigned z = 0; z < grid[2]; ++z)
    for (unsigned y = 0; y < grid[1]; ++y)
      for (unsigned x = 0; x < grid[0]; ++x) {
        blockIdx = {x, y, z};
        runBlock();
      }
}

// ---- barriers and warp collectives ----
inline void syncthreads(int site) {
  if (state.arrived == 0)
    state.site = site;
  else if (state.site != site)
    fail("__syncthreads at line %d while others wait at line %d (divergent "
         "barrier)",
         site, state.site);
  ++state.arrived;
  state.progress = true;
  const unsigned long long gen = state.gen;
  releaseBlockIfComplete();
  while (state.gen == gen)
    toScheduler();
}

// Every lane of `mask` in the calling thread's warp that has not returned
// contributes `bytes` bytes; returns the 32 lanes' contributions (poison for
// lanes that took no part) and sets *took to the lanes that took part.
inline const unsigned char (*exchange(unsigned mask, const void *mine,
                                      size_t bytes, int site,
                                      unsigned *took = nullptr))[64] {
  const unsigned t = unsigned(state.current), lane = t % 32;
  Warp &w = state.warps[t / 32];
  if (!(mask >> lane & 1))
    fail("warp collective at line %d with mask 0x%08x excludes the calling "
         "lane %u",
         site, mask, lane);
  if (w.arrived == 0) {
    w.mask = mask;
    w.site = site;
  } else if (w.site != site || w.mask != mask) {
    fail("warp collective at line %d (mask 0x%08x) while lanes 0x%08x of the "
         "warp wait at line %d (mask 0x%08x)",
         site, mask, w.arrived, w.site, w.mask);
  }
  const int parity = int(w.gen & 1);
  if (bytes)
    memcpy(w.slots[parity][lane], mine, bytes);
  w.arrived |= 1u << lane;
  state.progress = true;
  const unsigned long long gen = w.gen;
  releaseWarpIfComplete(w);
  while (w.gen == gen)
    toScheduler();
  if (took)
    *took = w.took[parity];
  return w.slots[parity];
}

inline unsigned laneId() { return unsigned(state.current) % 32; }

template <typename T> T shuffle(unsigned mask, T v, int src, int site) {
  static_assert(sizeof(T) <= 64, "shuffled type too large");
  auto slots = exchange(mask, &v, sizeof(T), site);
  T r;
  memcpy(&r, slots[src & 31], sizeof(T));
  return r;
}
template <typename T>
T shflIdx(int site, unsigned mask, T v, int src, int width = 32) {
  const int lane = int(laneId());
  return shuffle(mask, v, (lane & ~(width - 1)) + (src & (width - 1)), site);
}
template <typename T>
T shflUp(int site, unsigned mask, T v, unsigned d, int width = 32) {
  const int lane = int(laneId());
  const int src = (lane % width) >= int(d) ? lane - int(d) : lane;
  return shuffle(mask, v, src, site);
}
template <typename T>
T shflDown(int site, unsigned mask, T v, unsigned d, int width = 32) {
  const int lane = int(laneId());
  const int src = (lane % width) + int(d) < width ? lane + int(d) : lane;
  return shuffle(mask, v, src, site);
}
template <typename T>
T shflXor(int site, unsigned mask, T v, int m, int width = 32) {
  const int lane = int(laneId());
  int src = lane ^ m;
  if (src >= (lane / width + 1) * width)
    src = lane;
  return shuffle(mask, v, src, site);
}
// __ballot_sync (kind 0), __any_sync (1), __all_sync (2).
inline unsigned vote(int site, unsigned mask, bool predicate, int kind) {
  unsigned took = 0;
  const int mine = predicate;
  auto slots = exchange(mask, &mine, sizeof mine, site, &took);
  unsigned r = 0;
  for (int l = 0; l < 32; ++l) {
    int p;
    memcpy(&p, slots[l], sizeof p);
    if ((took >> l & 1) && p)
      r |= 1u << l;
  }
  return kind == 0 ? r : kind == 1 ? unsigned(r != 0) : unsigned(r == took);
}
inline void syncwarp(int site, unsigned mask = 0xFFFFFFFFu) {
  exchange(mask, nullptr, 0, site);
}

// ---- inline-PTX models (build_kernels.py: `using moec_emu::ptx::NAME;`) ----
namespace ptx {

inline float e4m3Decode(unsigned b) {
  const unsigned s = (b & 0x80u) << 24, e = (b >> 3) & 15, m = b & 7;
  float v;
  if ((b & 0x7F) == 0x7F)
    v = NAN;
  else if (e == 0)
    v = float(m) * 0.001953125f;
  else {
    const unsigned u = ((e + 120u) << 23) | (m << 20);
    memcpy(&v, &u, 4);
  }
  return s ? -v : v;
}
// The value of an e4m3 code (low 8 bits of b).
inline float e4m3(unsigned b) {
  static const struct Table {
    float v[256];
    Table() {
      for (unsigned i = 0; i < 256; ++i)
        v[i] = e4m3Decode(i);
    }
  } table;
  return table.v[b & 0xFF];
}
inline float bf16(unsigned h) {
  const unsigned u = (h & 0xFFFFu) << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

// cp.async.cg.shared.global [dst], [src], 16, src_bytes: queued per thread,
// performed at cp.async.wait_group (or when the thread exits).
inline void moec_gemm_cp_async16(void *dst, const void *src, int srcBytes) {
  if (reinterpret_cast<uintptr_t>(dst) % 16 ||
      (srcBytes && reinterpret_cast<uintptr_t>(src) % 16))
    fail("cp.async with a misaligned address (dst %p src %p)", dst, src);
  if (srcBytes < 0 || srcBytes > 16)
    fail("cp.async src-size %d", srcBytes);
  const SharedRegion *r = findShared(dst);
  if (!r || static_cast<char *>(dst) + 16 > r->start + r->bytes)
    fail("cp.async destination %p is not shared memory", dst);
  state.fibers[state.current].pending.push_back({dst, src, srcBytes});
}
inline void moec_gemm_cp_async_commit() {
  Fiber &f = state.fibers[state.current];
  f.groups.push_back(std::move(f.pending));
  f.pending.clear();
}
template <int PENDING> inline void moec_gemm_cp_async_wait() {
  Fiber &f = state.fibers[state.current];
  while (f.groups.size() > size_t(PENDING)) {
    performCopies(f.groups.front());
    f.groups.erase(f.groups.begin());
  }
}

// mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 (PTX ISA, "Matrix
// Fragments for mma.m16n8k32"): g = lane / 4, t = lane % 4; a[i] holds
// A[g + 8 (i % 2)][16 (i / 2) + 4t + byte], b[j] holds
// B[16 j + 4t + byte][g], d[j] is D[g + 8 (j / 2)][2t + j % 2].
struct Fragments {
  unsigned a[4], b[2];
};
inline Fragments gatherFragments(const unsigned *a, unsigned b0, unsigned b1,
                                 int site, Fragments (&all)[32]) {
  const unsigned t = unsigned(state.current);
  if (state.warps[t / 32].live != ~0u)
    fail("mma.sync with lanes that have returned");
  Fragments mine{{a[0], a[1], a[2], a[3]}, {b0, b1}};
  auto slots = exchange(~0u, &mine, sizeof mine, site);
  for (int l = 0; l < 32; ++l)
    memcpy(&all[l], slots[l], sizeof mine);
  return mine;
}
inline void moec_gemm_mma(float *d, const unsigned *a, unsigned b0,
                          unsigned b1) {
  Fragments all[32];
  gatherFragments(a, b0, b1, -1, all);
  const int lane = int(laneId()), g = lane / 4, t = lane % 4;
  // Rows g and g + 8 of A, columns 2t and 2t + 1 of B, decoded.
  float A[2][32], B[2][32];
  for (int k = 0; k < 32; ++k) {
    const int q = (k % 16) / 4, shift = 8 * (k % 4);
    for (int h = 0; h < 2; ++h) {
      A[h][k] = e4m3(all[g * 4 + q].a[h + 2 * (k / 16)] >> shift);
      B[h][k] = e4m3(all[(2 * t + h) * 4 + q].b[k / 16] >> shift);
    }
  }
  for (int j = 0; j < 4; ++j) {
    double s = 0; // products of e4m3 values are exact in f32
    for (int k = 0; k < 32; ++k)
      s += A[j / 2][k] * B[j % 2][k];
    d[j] = float(double(d[j]) + s);
  }
}

// mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32: a0: A[g][2t, 2t+1],
// a1: A[g+8][2t, 2t+1], a2: A[g][8+2t, +1], a3: A[g+8][8+2t, +1];
// b0: B[2t, 2t+1][g], b1: B[8+2t, +1][g] (lower k in the low half).
inline void moec_gemm_mma_bf16(float *d, unsigned a0, unsigned a1, unsigned a2,
                               unsigned a3, unsigned b0, unsigned b1) {
  Fragments all[32];
  const unsigned a[4] = {a0, a1, a2, a3};
  gatherFragments(a, b0, b1, -2, all);
  const int lane = int(laneId()), g = lane / 4, t = lane % 4;
  // Rows g and g + 8 of A, columns 2t and 2t + 1 of B.
  float A[2][16], B[2][16];
  for (int k = 0; k < 16; ++k) {
    const int q = (k % 8) / 2, shift = 16 * (k % 2);
    for (int h = 0; h < 2; ++h) {
      A[h][k] = bf16(all[g * 4 + q].a[h + 2 * (k / 8)] >> shift);
      B[h][k] = bf16(all[(2 * t + h) * 4 + q].b[k / 8] >> shift);
    }
  }
  for (int j = 0; j < 4; ++j) {
    double s = 0;
    for (int k = 0; k < 16; ++k)
      s += double(A[j / 2][k]) * B[j % 2][k];
    d[j] = float(double(d[j]) + s);
  }
}

// mul.rn.f32 by 2^120 (no flush to zero).
inline float moec_gemm_e4m3_to_f32(unsigned b) {
  const unsigned u = ((b & 0x80u) << 24) | ((b & 0x7Fu) << 20);
  float f;
  memcpy(&f, &u, 4);
  return f * 0x1p120f;
}

// wgmma: fences, commits and waits are no-ops (the model computes at issue).
inline void moec_gemm_wgmma_fence() {}
inline void moec_gemm_wgmma_commit() {}
inline void moec_gemm_wgmma_wait_all() {}
inline void moec_gemm_fence_regs(float (&)[64]) {}

// The operand a shared-memory matrix descriptor names (PTX ISA, "Matrix
// Descriptor Format"): start address bits 0-13 (>> 4), LBO 16-29, SBO
// 32-45, base offset 49-51, swizzle 62-63. K-major without swizzle: byte
// (m, k) at start + (m / 8) SBO + (m % 8) 16 + (k / 16) LBO + k % 16.
struct Operand {
  const unsigned char *start;
  unsigned lbo, sbo;
  float at(int m, int k) const {
    return e4m3(start[(m / 8) * sbo + (m % 8) * 16 + (k / 16) * lbo + k % 16]);
  }
};
inline Operand decode(unsigned long long desc, int rows) {
  if ((desc >> 62) & 3)
    fail("wgmma descriptor with swizzle mode %llu (the model has none)",
         (desc >> 62) & 3);
  if ((desc >> 49) & 7)
    fail("wgmma descriptor with base offset %llu", (desc >> 49) & 7);
  const auto *region = static_cast<const SharedRegion *>(
      state.fibers[state.current].sharedRegion);
  if (!region)
    fail("wgmma descriptor without a __cvta_generic_to_shared");
  Operand o;
  o.start = reinterpret_cast<const unsigned char *>(region->start) +
            (size_t(desc & 0x3FFF) << 4);
  o.lbo = unsigned((desc >> 16) & 0x3FFF) << 4;
  o.sbo = unsigned((desc >> 32) & 0x3FFF) << 4;
  const unsigned char *last =
      o.start + (rows / 8 - 1) * size_t(o.sbo) + 7 * 16 + o.lbo + 16;
  if (last >
      reinterpret_cast<const unsigned char *>(region->start) + region->bytes)
    fail("wgmma operand past the end of its shared array");
  return o;
}

// wgmma.mma_async.sync.aligned.m64n128k32.f32.e4m3.e4m3, A and B K-major in
// shared memory; d = (accumulate ? d : 0) + A B. Warpgroup thread
// (w = tid / 32, g = lane / 4, t = lane % 4) holds D[16w + g + 8 (j / 2)]
// [8i + 2t + j % 2] in d[4i + j].
inline void moec_gemm_wgmma(float (&d)[64], unsigned long long descA,
                            unsigned long long descB, int accumulate) {
  const Operand A = decode(descA, 64), B = decode(descB, 128);
  const int tid = state.current % 128, w = tid / 32, lane = tid % 32;
  const int g = lane / 4, t = lane % 4;
  float a[2][32], b[2][32]; // rows 16w + g (+8) of A; columns of B
  for (int h = 0; h < 2; ++h)
    for (int k = 0; k < 32; ++k)
      a[h][k] = A.at(16 * w + g + 8 * h, k);
  for (int i = 0; i < 16; ++i) {
    for (int h = 0; h < 2; ++h)
      for (int k = 0; k < 32; ++k)
        b[h][k] = B.at(8 * i + 2 * t + h, k);
    for (int j = 0; j < 4; ++j) {
      double s = 0;
      for (int k = 0; k < 32; ++k)
        s += a[j / 2][k] * b[j % 2][k];
      d[4 * i + j] = float((accumulate ? double(d[4 * i + j]) : 0.0) + s);
    }
  }
}

} // namespace ptx

// __cvta_generic_to_shared: the offset within the variable's own shared
// array (each kernel's shared window starts at its array, as if it were the
// kernel's only one); the thread remembers the array for the wgmma model's
// descriptors.
inline size_t sharedAddress(const void *p) {
  const SharedRegion *r = findShared(p);
  if (!r)
    fail("__cvta_generic_to_shared of a non-shared address %p", p);
  if (r->bytes > (size_t(1) << 18))
    fail("shared array of %zu bytes exceeds the 18-bit shared window",
         r->bytes);
  state.fibers[state.current].sharedRegion = r;
  return size_t(static_cast<const char *>(p) - r->start);
}

} // namespace moec_emu

// ---- barriers, warp functions ----
#define __syncthreads() moec_emu::syncthreads(__LINE__)
#define __syncwarp(...) moec_emu::syncwarp(__LINE__ __VA_OPT__(, ) __VA_ARGS__)
#define __shfl_sync(...) moec_emu::shflIdx(__LINE__, __VA_ARGS__)
#define __shfl_xor_sync(...) moec_emu::shflXor(__LINE__, __VA_ARGS__)
#define __shfl_up_sync(...) moec_emu::shflUp(__LINE__, __VA_ARGS__)
#define __shfl_down_sync(...) moec_emu::shflDown(__LINE__, __VA_ARGS__)
inline unsigned __activemask() {
  return moec_emu::state.warps[moec_emu::state.current / 32].live;
}
#define __ballot_sync(mask, p) moec_emu::vote(__LINE__, mask, p, 0)
#define __any_sync(mask, p) moec_emu::vote(__LINE__, mask, p, 1)
#define __all_sync(mask, p) moec_emu::vote(__LINE__, mask, p, 2)
inline void __threadfence() { asm volatile("" ::: "memory"); }
inline void __threadfence_block() { asm volatile("" ::: "memory"); }
inline size_t __cvta_generic_to_shared(const void *p) {
  return moec_emu::sharedAddress(p);
}

// ---- atomics (fibers of one OS thread: plain read-modify-write) ----
template <typename T> inline T atomicAdd(T *p, T v) {
  const T old = *p;
  *p = old + v;
  return old;
}
template <typename T> inline T atomicSub(T *p, T v) {
  const T old = *p;
  *p = old - v;
  return old;
}
template <typename T> inline T atomicMax(T *p, T v) {
  const T old = *p;
  *p = old < v ? v : old;
  return old;
}
template <typename T> inline T atomicMin(T *p, T v) {
  const T old = *p;
  *p = v < old ? v : old;
  return old;
}
template <typename T> inline T atomicExch(T *p, T v) {
  const T old = *p;
  *p = v;
  return old;
}
template <typename T> inline T atomicCAS(T *p, T compare, T v) {
  const T old = *p;
  if (old == compare)
    *p = v;
  return old;
}
template <typename T> inline T atomicOr(T *p, T v) {
  const T old = *p;
  *p = old | v;
  return old;
}
template <typename T> inline T atomicAnd(T *p, T v) {
  const T old = *p;
  *p = old & v;
  return old;
}

// ---- min / max: CUDA's overloads (fminf / fmaxf for floating point) ----
template <typename A, typename B> inline auto min(A a, B b) {
  using C = std::common_type_t<A, B>;
  if constexpr (std::is_floating_point_v<C>)
    return C(std::fmin(C(a), C(b)));
  else
    return C(a) < C(b) ? C(a) : C(b);
}
template <typename A, typename B> inline auto max(A a, B b) {
  using C = std::common_type_t<A, B>;
  if constexpr (std::is_floating_point_v<C>)
    return C(std::fmax(C(a), C(b)));
  else
    return C(a) < C(b) ? C(b) : C(a);
}

// ---- bit casts and intrinsics ----
inline unsigned __float_as_uint(float f) {
  unsigned u;
  memcpy(&u, &f, 4);
  return u;
}
inline float __uint_as_float(unsigned u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}
inline int __float_as_int(float f) {
  int u;
  memcpy(&u, &f, 4);
  return u;
}
inline float __int_as_float(int u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}
inline long long __double_as_longlong(double d) {
  long long u;
  memcpy(&u, &d, 8);
  return u;
}
inline double __longlong_as_double(long long u) {
  double d;
  memcpy(&d, &u, 8);
  return d;
}
inline unsigned __byte_perm(unsigned x, unsigned y, unsigned s) {
  unsigned char b[8];
  memcpy(b, &x, 4);
  memcpy(b + 4, &y, 4);
  unsigned r = 0;
  for (int i = 0; i < 4; ++i)
    r |= unsigned(b[(s >> (4 * i)) & 7]) << (8 * i);
  return r;
}
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x ? __builtin_clz(unsigned(x)) : 32; }
inline int __clzll(long long x) {
  return x ? __builtin_clzll((unsigned long long)x) : 64;
}
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline unsigned __brev(unsigned x) {
  unsigned r = 0;
  for (int i = 0; i < 32; ++i)
    r |= (x >> i & 1) << (31 - i);
  return r;
}
inline unsigned __umulhi(unsigned a, unsigned b) {
  return unsigned((unsigned long long)a * b >> 32);
}
template <typename T> inline T __ldg(const T *p) { return *p; }

// Rounded f32 arithmetic (the host compiles with -ffp-contract=off under
// -std=c++20, so plain operators round each step).
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline float __frcp_rn(float a) { return 1.0f / a; }
inline float __fsqrt_rn(float a) { return sqrtf(a); }
inline float __fdividef(float a, float b) { return a / b; }
inline float fdividef(float a, float b) { return a / b; }
inline float __expf(float a) { return expf(a); }
inline float __logf(float a) { return logf(a); }
inline float __powf(float a, float b) { return powf(a, b); }
inline float __sinf(float a) { return sinf(a); }
inline float __cosf(float a) { return cosf(a); }
inline float __tanf(float a) { return tanf(a); }
inline void __sincosf(float a, float *s, float *c) { sincosf(a, s, c); }
inline float rsqrtf(float a) { return 1.0f / sqrtf(a); }
inline double rsqrt(double a) { return 1.0 / sqrt(a); }
inline float __saturatef(float a) {
  return a != a ? 0.0f : a < 0.0f ? 0.0f : a > 1.0f ? 1.0f : a;
}
inline float exp10f(float a) { return powf(10.0f, a); }
inline int __float2int_rn(float a) { return int(nearbyintf(a)); }
inline int __float2int_rz(float a) { return int(a); }
inline int __float2int_rd(float a) { return int(floorf(a)); }
inline int __float2int_ru(float a) { return int(ceilf(a)); }
inline unsigned __float2uint_rn(float a) { return unsigned(nearbyintf(a)); }
inline long long __float2ll_rn(float a) { return (long long)nearbyintf(a); }
inline long long __float2ll_rz(float a) { return (long long)a; }
inline float __int2float_rn(int a) { return float(a); }
inline float __uint2float_rn(unsigned a) { return float(a); }
inline float __ll2float_rn(long long a) { return float(a); }
inline float __double2float_rn(double a) { return float(a); }
