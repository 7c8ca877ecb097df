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
// cp.async.wait_group, the latest time the PTX ISA allows; TMA copies
// (cp.async.bulk.tensor) poison their destination at issue and land when a
// mbarrier try_wait observes the phase they complete. A failed check prints
// what and where and aborts.
//
// The inline-PTX leaf functions of the GEMM kernels are replaced (by
// test/emu/build_kernels.py, through `using moec_emu::ptx::NAME;`) by models
// written from the PTX ISA: cp.async, mma.sync m16n8k32 e4m3, mma.sync
// m16n8k16 bf16, wgmma m64n128k32 e4m3 (reading shared memory through the
// descriptor's start address, LBO, SBO and swizzle mode), mbarrier (init,
// arrive.expect_tx, try_wait.parity) and 2-D/3-D TMA tile loads through a
// tensor map FakeCudaDriver encoded (tensor_map_image.h).
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
#include <time.h>

#include <algorithm>
#include <cmath>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

#include "tensor_map_image.h"

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
// Kernel parameters arrive by value on each fiber's stack (a copy per
// thread, which reads the same bytes as the one constant-bank copy).
#define __grid_constant__
// build_kernels.py follows every __shared__ declaration with a
// moec_emu::SharedRegistration of each variable it declares.
#define __shared__ static

// The kernels' 128-byte CUtensorMap stand-in (defined by moec's prelude);
// the TMA models read it as a moec_emu::TensorMapImage.
struct moec_tensor_map;

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
  // Per mbarrier: how many of its phases this thread has seen complete
  // through a successful try_wait (what makes TMA writes visible to it).
  std::map<const void *, unsigned long long> observed;
  const void *waitBar = nullptr; // the mbarrier of a failed try_wait
  unsigned waitParity = 0;
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
  // The declared alignment (__align__ or the type's): the real shared
  // address of the array is known modulo this, and the emulation's shared
  // addresses (offsets within the array) agree with it up to this.
  size_t align;
  const char *name;
};
inline std::deque<SharedRegion> sharedRegions; // stable addresses
struct SharedRegistration {
  SharedRegistration(void *p, size_t bytes, size_t align = 1,
                     const char *name = "?") {
    sharedRegions.push_back({static_cast<char *>(p), bytes, align, name});
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

// "NAME+OFFSET" of a shared address, for messages.
inline std::string sharedName(const void *p) {
  const SharedRegion *r = findShared(p);
  if (!r)
    return "(not shared)";
  return std::string(r->name) + "+" +
         std::to_string(static_cast<const char *>(p) - r->start);
}

// ---- mbarrier and TMA state (per block) ----
// A cp.async.bulk.tensor load issued and not yet performed: it is performed
// (lands) only when a try_wait observes the phase it completes, the latest
// time the PTX memory model allows.
struct TmaCopy {
  TensorMapImage map; // the tensor map as read at issue
  int coords[5];
  unsigned char *dst;
  const SharedRegion *region;
  size_t bytes;
  int thread;
};
struct Mbarrier {
  unsigned expected = 0;        // arrivals per phase (mbarrier.init count)
  unsigned pending = 0;         // arrivals the current phase still needs
  long long tx = 0;             // tx-count of the current phase
  unsigned long long phase = 0; // phases completed so far
  unsigned long long seen = 0;  // phases some try_wait has seen complete
  int initThread = -1;
  std::vector<TmaCopy> inflight; // in issue order
};
inline std::map<const void *, Mbarrier> mbarriers;
// Shared bytes written by a TMA copy that has landed: visible to a thread
// once it has seen phase `phase` of `bar` complete (wgmma checks this).
struct LandedCopy {
  const unsigned char *dst;
  size_t bytes;
  const void *bar;
  unsigned long long phase; // the phase whose completion performed it
  int thread;
};
inline std::vector<LandedCopy> landedCopies;

inline std::string describeMbarrier(const void *bar) {
  auto it = mbarriers.find(bar);
  if (it == mbarriers.end())
    return "mbarrier " + sharedName(bar) + " (not initialized)";
  const Mbarrier &m = it->second;
  size_t inflight = 0;
  for (const TmaCopy &c : m.inflight)
    inflight += c.bytes;
  char text[256];
  snprintf(text, sizeof text,
           "mbarrier %s (phase %llu: %u of %u arrivals pending, tx-count "
           "%lld, %zu bytes of TMA copies in flight)",
           sharedName(bar).c_str(), m.phase, m.pending, m.expected, m.tx,
           inflight);
  return text;
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
  f.observed.clear();
  f.waitBar = nullptr;
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
  // Shared memory, and the mbarriers in it, are new in every block; copies
  // still in flight when the previous block ended are dropped.
  mbarriers.clear();
  landedCopies.clear();
  while (state.live) {
    state.progress = false;
    for (unsigned i = 0; i < n; ++i) {
      const unsigned t = state.reverse ? n - 1 - i : i;
      if (!state.fibers[t].done)
        resume(t);
    }
    if (state.live && !state.progress) {
      // Name the mbarriers that threads spin on (try_wait), one line each.
      std::string waits;
      std::map<const void *, std::pair<unsigned, int>> byBar; // count, first
      for (unsigned t = 0; t < n; ++t) {
        const Fiber &f = state.fibers[t];
        if (!f.done && f.waitBar) {
          auto &e = byBar.try_emplace(f.waitBar, 0u, int(t)).first->second;
          ++e.first;
        }
      }
      for (const auto &[bar, e] : byBar)
        waits += "\n  " + std::to_string(e.first) +
                 " thread(s) (first: " + std::to_string(e.second) +
                 ") wait with mbarrier.try_wait.parity " +
                 std::to_string(state.fibers[e.second].waitParity) + " on " +
                 describeMbarrier(bar) +
                 ": no pending arrival or copy can complete that phase";
      state.current = -1;
      fail("deadlock: %u of %u threads wait at a barrier, warp collective or "
           "mbarrier that cannot complete (block barrier: %u arrived)%s",
           state.live, n, state.arrived, waits.c_str());
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

// ---- mbarrier (PTX ISA, "Parallel Synchronization and Communication
// Instructions: mbarrier") ----
// State per object, keyed by its address: expected and pending arrival
// counts, the tx-count and the phase. A phase completes when its pending
// arrivals and its tx-count are both 0; then the pending count is reset.
// TMA copies complete their transactions (and land) only when a try_wait
// observes the phase they finish, so a read that does not wait for them
// sees the poison their issue wrote.

inline void checkMbarrierAddress(const void *bar, const char *op) {
  const SharedRegion *r = findShared(bar);
  if (!r || static_cast<const char *>(bar) + 8 > r->start + r->bytes)
    fail("%s: %p is not shared memory", op, bar);
  if ((static_cast<const char *>(bar) - r->start) % 8 || r->align % 8)
    fail("%s: mbarrier %s is not 8-byte aligned", op, sharedName(bar).c_str());
}
inline Mbarrier &mbarrierAt(const void *bar, const char *op) {
  checkMbarrierAddress(bar, op);
  auto it = mbarriers.find(bar);
  if (it == mbarriers.end())
    fail("%s on %s, which holds no mbarrier initialized in this block", op,
         sharedName(bar).c_str());
  return it->second;
}
inline void completePhase(Mbarrier &m) {
  ++m.phase;
  m.pending = m.expected;
  m.tx = 0;
  state.progress = true;
}

// mbarrier.init.shared::cta.b64 [bar], count.
inline void moec_gemm_mbar_init(unsigned long long *bar, unsigned int count) {
  checkMbarrierAddress(bar, "mbarrier.init");
  if (count < 1 || count > (1u << 20) - 1)
    fail("mbarrier.init of %s with count %u (valid: 1 .. 2^20 - 1)",
         sharedName(bar).c_str(), count);
  if (mbarriers.count(bar))
    fail("mbarrier.init on %s, which already holds a valid mbarrier (PTX: "
         "undefined without mbarrier.inval)",
         sharedName(bar).c_str());
  Mbarrier m;
  m.expected = m.pending = count;
  m.initThread = state.current;
  mbarriers[bar] = std::move(m);
  state.progress = true;
}
// fence.mbarrier_init.release.cluster and fence.proxy.async.shared::cta:
// order the inits before the async proxy's use; the host has a single proxy.
inline void moec_gemm_mbar_init_fence() {}

// mov.u64 %globaltimer: nanoseconds of a monotonic clock.
inline unsigned long long moec_gemm_globaltimer() {
  timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (unsigned long long)now.tv_sec * 1000000000ull +
         (unsigned long long)now.tv_nsec;
}

// mbarrier.arrive.expect_tx.shared::cta.b64 _, [bar], bytes: expect-tx
// (tx-count += bytes), then one arrive-on.
inline void moec_gemm_mbar_arrive_expect_tx(unsigned long long *bar,
                                            unsigned int bytes) {
  Mbarrier &m = mbarrierAt(bar, "mbarrier.arrive.expect_tx");
  // PTX ISA, "Primary phase": each phase must be seen complete by at least
  // one test_wait/try_wait before an arrive-on of the next phase. A phase
  // that has all its arrivals is only waiting for transactions.
  if (m.pending == 0 || m.seen < m.phase)
    fail("mbarrier.arrive.expect_tx on %s: its phase %llu has not been seen "
         "complete by any try_wait (each phase must be, before an arrive-on "
         "of the next)",
         describeMbarrier(bar).c_str(), m.pending == 0 ? m.phase : m.phase - 1);
  m.tx += bytes;
  if (m.tx > (1 << 20) - 1)
    fail("mbarrier.arrive.expect_tx on %s: tx-count %lld exceeds 2^20 - 1",
         sharedName(bar).c_str(), m.tx);
  if (--m.pending == 0 && m.tx == 0)
    completePhase(m);
  state.progress = true;
}

// Performs one TMA copy: every box element, innermost dimension first, at
// dst + (its index in the box) * elementBytes, that shared address then
// swizzled; elements with a coordinate outside [0, dims) read as zero
// (FLOAT_OOB_FILL_NONE).
inline void performTma(const TmaCopy &c, const void *bar,
                       unsigned long long phase) {
  const TensorMapImage &t = c.map;
  const unsigned eb = t.elementBytes, span = t.swizzleBytes;
  size_t total = 1;
  for (unsigned d = 0; d < t.rank; ++d)
    total *= t.box[d];
  const size_t dstOffset =
      size_t(c.dst - reinterpret_cast<unsigned char *>(c.region->start));
  for (size_t e = 0; e < total; ++e) {
    size_t rest = e;
    bool outside = false;
    uint64_t src = t.address;
    for (unsigned d = 0; d < t.rank; ++d) {
      const long long g = (long long)c.coords[d] + (long long)(rest % t.box[d]);
      rest /= t.box[d];
      if (g < 0 || g >= (long long)t.dims[d])
        outside = true;
      else
        src += d == 0 ? uint64_t(g) * eb : uint64_t(g) * t.strides[d - 1];
    }
    size_t a = dstOffset + e * eb;
    if (span)
      a ^= ((a >> 7) & (span / 16 - 1)) << 4;
    char *out = c.region->start + a;
    if (outside)
      memset(out, 0, eb);
    else
      memcpy(out, reinterpret_cast<const void *>(uintptr_t(src)), eb);
  }
  std::erase_if(landedCopies, [&](const LandedCopy &l) {
    return l.dst < c.dst + c.bytes && c.dst < l.dst + l.bytes;
  });
  landedCopies.push_back({c.dst, c.bytes, bar, phase, c.thread});
}

// Completes the current phase if its arrivals are all in and the copies in
// flight on it (a prefix, in issue order) bring its tx-count to exactly 0,
// landing those copies. Returns whether the phase completed.
inline bool tryCompletePhase(const void *bar, Mbarrier &m) {
  if (m.pending)
    return false;
  long long sum = 0;
  size_t n = 0;
  while (n < m.inflight.size() && sum < m.tx)
    sum += (long long)m.inflight[n++].bytes;
  if (sum < m.tx)
    return false; // copies not yet issued may still complete it
  if (sum > m.tx)
    fail("%s: the TMA copies in flight complete %lld bytes, overshooting the "
         "%lld its phase still expects (expect_tx and the boxes disagree)",
         describeMbarrier(bar).c_str(), sum, m.tx);
  for (size_t i = 0; i < n; ++i)
    performTma(m.inflight[i], bar, m.phase);
  m.inflight.erase(m.inflight.begin(), m.inflight.begin() + ptrdiff_t(n));
  completePhase(m);
  return true;
}

// mbarrier.try_wait.parity.shared::cta.b64 p, [bar], parity: 1 when the
// phase of that parity (the current one or the one before) has completed.
// A failed wait yields the fiber; the scheduler reports a deadlock when no
// thread can make progress.
inline int moec_gemm_mbar_try_wait(unsigned long long *bar,
                                   unsigned int parity) {
  Mbarrier &m = mbarrierAt(bar, "mbarrier.try_wait.parity");
  Fiber &f = state.fibers[state.current];
  if ((m.phase & 1) == (parity & 1) && !tryCompletePhase(bar, m)) {
    f.waitBar = bar;
    f.waitParity = parity & 1;
    toScheduler();
    f.waitBar = nullptr;
    return 0;
  }
  unsigned long long &seen = f.observed[bar];
  seen = std::max(seen, m.phase);
  m.seen = std::max(m.seen, m.phase);
  state.progress = true;
  return 1;
}

// cp.async.bulk.tensor.{2d,3d}.shared::cluster.global.tile.mbarrier::
// complete_tx::bytes [dst], [map, coords], [bar]: checked and queued on the
// mbarrier; the destination reads as poison until the copy lands.
inline void tmaLoad(const char *op, void *dst, const moec_tensor_map *map,
                    const int *coords, unsigned rank, unsigned long long *bar) {
  TensorMapImage t;
  memcpy(&t, map, sizeof t);
  if (t.magic != kTensorMapMagic) {
    bool zero = true;
    for (size_t i = 0; i < sizeof t; ++i)
      zero = zero && reinterpret_cast<const unsigned char *>(&t)[i] == 0;
    if (zero)
      fail("%s: tensor map not encoded (128 zero bytes, as passed on a device "
           "without TMA)",
           op);
    fail("%s: the tensor map is not one cuTensorMapEncodeTiled wrote (magic "
         "0x%08x)",
         op, t.magic);
  }
  if (t.rank != rank)
    fail("%s with a tensor map of rank %u", op, t.rank);
  const unsigned eb = t.elementBytes, span = t.swizzleBytes;
  if (eb != 1 && eb != 2 && eb != 4 && eb != 8)
    fail("%s: tensor map with %u-byte elements", op, eb);
  if (span != 0 && span != 32 && span != 64 && span != 128)
    fail("%s: tensor map with swizzle span %u", op, span);
  size_t bytes = eb;
  for (unsigned d = 0; d < rank; ++d) {
    if (t.box[d] < 1 || t.box[d] > 256 || t.dims[d] < 1)
      fail("%s: tensor map dimension %u: %llu elements, box %u", op, d,
           (unsigned long long)t.dims[d], t.box[d]);
    if (d && t.strides[d - 1] % 16)
      fail("%s: tensor map stride %llu is not a multiple of 16", op,
           (unsigned long long)t.strides[d - 1]);
    bytes *= t.box[d];
  }
  const unsigned inner = t.box[0] * eb;
  if (inner % 16)
    fail("%s: box inner dimension of %u bytes (not a multiple of 16)", op,
         inner);
  if (span && inner > span)
    fail("%s: box inner dimension of %u bytes exceeds the %u-byte swizzle "
         "span",
         op, inner, span);
  if (span && inner != span)
    fail("%s: box inner dimension of %u bytes, narrower than the %u-byte "
         "swizzle span (rows padded to the span: not modelled)",
         op, inner, span);
  // CUDA Programming Guide, TMA swizzle patterns: global memory aligned to
  // 128 bytes when swizzled (16 otherwise).
  if (t.address % (span ? 128 : 16))
    fail("%s: tensor address 0x%llx is not %u-byte aligned", op,
         (unsigned long long)t.address, span ? 128u : 16u);
  const SharedRegion *r = findShared(dst);
  if (!r)
    fail("%s: destination %p is not shared memory", op, dst);
  const size_t offset = size_t(static_cast<char *>(dst) - r->start);
  // The shared destination must be 128-byte aligned; swizzled, the
  // destination starts the pattern, which repeats every 8 x span bytes
  // (its offset into the pattern would otherwise depend on the address).
  const size_t need = span ? 8 * size_t(span) : 128;
  if (offset % need || r->align % need)
    fail("%s: destination %s (array __align__(%zu)) is not %zu-byte aligned",
         op, sharedName(dst).c_str(), r->align, need);
  if (offset + bytes > r->bytes)
    fail("%s: %zu bytes to %s run past the end of the array (%zu bytes)", op,
         bytes, sharedName(dst).c_str(), r->bytes);
  Mbarrier &m = mbarrierAt(bar, op);
  unsigned char *d = static_cast<unsigned char *>(dst);
  for (const auto &[other, om] : mbarriers)
    for (const TmaCopy &c : om.inflight)
      if (c.dst < d + bytes && d < c.dst + c.bytes)
        fail("%s to %s overlaps the copy to %s that thread %d issued, still "
             "in flight on %s",
             op, sharedName(dst).c_str(), sharedName(c.dst).c_str(), c.thread,
             sharedName(other).c_str());
  // Undefined until the copy completes: poison, and no longer a landed copy.
  memset(dst, 0xFF, bytes);
  std::erase_if(landedCopies, [&](const LandedCopy &l) {
    return l.dst < d + bytes && d < l.dst + l.bytes;
  });
  TmaCopy c{t, {0, 0, 0, 0, 0}, d, r, bytes, state.current};
  for (unsigned i = 0; i < rank; ++i)
    c.coords[i] = coords[i];
  m.inflight.push_back(c);
  state.progress = true;
}
inline void moec_gemm_tma_load_2d(void *dst, const moec_tensor_map *map, int c0,
                                  int c1, unsigned long long *bar) {
  const int coords[2] = {c0, c1};
  tmaLoad("cp.async.bulk.tensor.2d", dst, map, coords, 2, bar);
}
inline void moec_gemm_tma_load_3d(void *dst, const moec_tensor_map *map, int c0,
                                  int c1, int c2, unsigned long long *bar) {
  const int coords[3] = {c0, c1, c2};
  tmaLoad("cp.async.bulk.tensor.3d", dst, map, coords, 3, bar);
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
// 32-45, base offset 49-51, swizzle mode 62-63 (0 none, 1 128B, 2 64B,
// 3 32B). K-major operands ("Shared Memory Matrix Layout"):
// - no swizzle: byte (m, k) at start + (m / 8) SBO + (m % 8) 16 +
//   (k / 16) LBO + k % 16 (8x16-byte core matrices);
// - swizzle span W: byte (m, k) at a = start + (m / 8) SBO + (m % 8) W + k
//   (rows of W bytes, LBO unused), stored at the shared address
//   a ^ (((a >> 7) & (W / 16 - 1)) << 4), the same function of the address
//   the TMA unit writes by; a k32 step inside a row moves start by 32.
// Shared addresses are offsets in the operand's __shared__ array (see
// sharedAddress); with the array aligned to the pattern's repeat (8 W) they
// agree with the real ones in every bit the swizzle reads.
struct Operand {
  const unsigned char *base; // the shared array: shared address 0
  size_t start;
  unsigned lbo, sbo, span;
  size_t lo, hi; // the bytes it reads: [lo, hi) (shared addresses)
  float at(int m, int k) const {
    if (!span)
      return e4m3(
          base[start + (m / 8) * sbo + (m % 8) * 16 + (k / 16) * lbo + k % 16]);
    size_t a = start + size_t(m / 8) * sbo + size_t(m % 8) * span + size_t(k);
    a ^= ((a >> 7) & (span / 16 - 1)) << 4;
    return e4m3(base[a]);
  }
};
inline Operand decode(unsigned long long desc, int rows, const char *what) {
  static const unsigned spans[4] = {0, 128, 64, 32};
  if ((desc >> 49) & 7)
    fail("wgmma %s descriptor with base offset %llu (not modelled)", what,
         (desc >> 49) & 7);
  const auto *region = static_cast<const SharedRegion *>(
      state.fibers[state.current].sharedRegion);
  if (!region)
    fail("wgmma descriptor without a __cvta_generic_to_shared");
  Operand o;
  o.base = reinterpret_cast<const unsigned char *>(region->start);
  o.start = size_t(desc & 0x3FFF) << 4;
  o.lbo = unsigned((desc >> 16) & 0x3FFF) << 4;
  o.sbo = unsigned((desc >> 32) & 0x3FFF) << 4;
  o.span = spans[(desc >> 62) & 3];
  if (o.span) {
    const size_t repeat = 8 * size_t(o.span);
    if (region->align % repeat)
      fail("wgmma %s: %u-byte swizzle on shared array %s, declared "
           "__align__(%zu): the pattern (repeating every %zu bytes) would "
           "depend on where the array lands",
           what, o.span, region->name, region->align, repeat);
    if (o.start % o.span + 32 > o.span)
      fail("wgmma %s: a k32 step at byte %zu of a %u-byte swizzled row "
           "crosses the row (not modelled)",
           what, o.start % o.span, o.span);
    // Base offset 0 holds when the pattern starts on a repeat boundary.
    if ((o.start - o.start % o.span) % repeat || o.sbo % repeat)
      fail("wgmma %s: start %zu / SBO %u not on the %zu-byte boundary of "
           "the %u-byte swizzle pattern (needs a base offset: not modelled)",
           what, o.start, o.sbo, repeat, o.span);
    o.lo = o.start - o.start % o.span;
    o.hi = o.lo + size_t(rows / 8 - 1) * o.sbo + repeat;
  } else {
    o.lo = o.start;
    o.hi = o.start + size_t(rows / 8 - 1) * o.sbo + 7 * 16 + o.lbo + 16;
  }
  if (o.hi > region->bytes)
    fail("wgmma %s operand past the end of its shared array", what);
  // The async proxy reads what TMA wrote only after this thread has seen
  // the copy's mbarrier phase complete, and never while a copy is writing.
  const unsigned char *lo = o.base + o.lo, *hi = o.base + o.hi;
  for (const auto &[bar, m] : mbarriers)
    for (const TmaCopy &c : m.inflight)
      if (c.dst < hi && lo < c.dst + c.bytes)
        fail("wgmma %s reads %s, which cp.async.bulk.tensor (issued by thread "
             "%d, completing on mbarrier %s) is still writing",
             what, sharedName(lo).c_str(), c.thread, sharedName(bar).c_str());
  const Fiber &f = state.fibers[state.current];
  for (const LandedCopy &c : landedCopies)
    if (c.dst < hi && lo < c.dst + c.bytes) {
      auto seen = f.observed.find(c.bar);
      if (seen == f.observed.end() || seen->second <= c.phase)
        fail("wgmma %s reads %s, written by cp.async.bulk.tensor (thread %d) "
             "at the completion of phase %llu of mbarrier %s, which this "
             "thread has not seen with mbarrier.try_wait",
             what, sharedName(c.dst).c_str(), c.thread, c.phase,
             sharedName(c.bar).c_str());
    }
  return o;
}

// wgmma.mma_async.sync.aligned.m64n128k32.f32.e4m3.e4m3, A and B K-major in
// shared memory; d = (accumulate ? d : 0) + A B. Warpgroup thread
// (w = tid / 32, g = lane / 4, t = lane % 4) holds D[16w + g + 8 (j / 2)]
// [8i + 2t + j % 2] in d[4i + j].
inline void moec_gemm_wgmma(float (&d)[64], unsigned long long descA,
                            unsigned long long descB, int accumulate) {
  const Operand A = decode(descA, 64, "A"), B = decode(descB, 128, "B");
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
// A device trap aborts the kernel: the emulation reports it where it ran.
[[noreturn]] inline void __trap() { moec_emu::fail("__trap()"); }
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
