//===- ThreadPool.cpp - Persistent threads for CPU kernels ------*- C++ -*-===//
//
// A loop is published by writing its fields and bumping `generation_` under
// the mutex; workers notice the new generation (spinning first, then on the
// condition variable), take chunks from `next_`, and count themselves out
// through `pending_`. The caller takes chunks too, then waits for `pending_`
// to reach zero. Which thread runs which chunk varies; what each chunk
// computes does not.
//
//===----------------------------------------------------------------------===//

#include "runtime/cpu/ThreadPool.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define MOEC_CPU_RELAX() _mm_pause()
#else
#define MOEC_CPU_RELAX() std::this_thread::yield()
#endif

namespace moec::runtime {

namespace {

/// Polls before a waiting thread sleeps (a few tens of microseconds).
constexpr int kSpinIterations = 20000;

/// One poll of a spinning thread: a pause, and every 64th time a yield, so
/// that more threads than cores still make progress.
inline void relax(int iteration) {
  if (iteration % 64 == 63)
    std::this_thread::yield();
  else
    MOEC_CPU_RELAX();
}

/// Whether this thread is inside a body (a nested loop runs inline).
thread_local bool inBody = false;

} // namespace

ThreadPool::ThreadPool(int threads) {
  for (int i = 1; i < std::max(threads, 1); ++i)
    workers_.emplace_back([this] { workerLoop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  for (std::thread &worker : workers_)
    worker.join();
}

int ThreadPool::defaultThreads() {
  if (const char *env = std::getenv("MOEC_NUM_THREADS")) {
    char *end = nullptr;
    long value = std::strtol(env, &end, 10);
    if (end != env && *end == '\0' && value > 0 && value <= 4096)
      return int(value);
  }
  unsigned hardware = std::thread::hardware_concurrency();
  return hardware ? int(std::min(hardware, 4096u)) : 1;
}

void ThreadPool::runChunks() {
  bool outer = inBody;
  inBody = true;
  for (;;) {
    int64_t begin = next_.fetch_add(grain_, std::memory_order_relaxed);
    if (begin >= count_)
      break;
    body_(ctx_, begin, std::min(count_, begin + grain_));
  }
  inBody = outer;
}

void ThreadPool::parallelFor(MoecParallelBody body, void *ctx, int64_t count,
                             int64_t grain) {
  grain = std::max<int64_t>(grain, 1);
  if (count <= 0)
    return;
  if (workers_.empty() || count <= grain || inBody) {
    body(ctx, 0, count);
    return;
  }
  std::lock_guard<std::mutex> loop(loopMutex_);
  body_ = body;
  ctx_ = ctx;
  count_ = count;
  grain_ = grain;
  next_.store(0, std::memory_order_relaxed);
  pending_.store(int(workers_.size()), std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  runChunks();
  for (int i = 0; i < kSpinIterations; ++i) {
    if (pending_.load(std::memory_order_acquire) == 0)
      return;
    relax(i);
  }
  std::unique_lock<std::mutex> lock(mutex_);
  done_.wait(lock,
             [&] { return pending_.load(std::memory_order_acquire) == 0; });
}

void ThreadPool::workerLoop() {
  uint64_t seen = 0;
  for (;;) {
    bool ready = false;
    for (int i = 0; i < kSpinIterations && !ready; ++i) {
      ready = generation_.load(std::memory_order_acquire) != seen;
      if (!ready)
        relax(i);
    }
    if (!ready) {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] {
        return stop_ || generation_.load(std::memory_order_acquire) != seen;
      });
      if (stop_)
        return;
    }
    seen = generation_.load(std::memory_order_acquire);
    runChunks();
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard<std::mutex> lock(mutex_);
      done_.notify_one();
    }
  }
}

} // namespace moec::runtime
