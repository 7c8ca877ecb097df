//===- ThreadPool.h - Persistent threads for CPU kernels --------*- C++ -*-===//
//
// The threads behind `MoecCpuRuntime::parallel_for` (KernelAbi.h): a fixed
// set of workers that wait for a loop, take chunks of it from a shared
// counter together with the calling thread, and go back to waiting. Workers
// spin briefly before they sleep, since a model's parallel loops come in
// quick succession (one per GEMM step).
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_RUNTIME_CPU_THREADPOOL_H
#define MOEC_RUNTIME_CPU_THREADPOOL_H

#include "runtime/cpu/KernelAbi.h"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace moec::runtime {

/// `threads - 1` worker threads plus the caller. One loop at a time: a
/// second `parallelFor` from another thread waits for the first to finish,
/// and one from inside a body runs inline.
class ThreadPool {
public:
  /// Starts `threads - 1` workers (`threads` is at least 1).
  explicit ThreadPool(int threads);
  /// Stops and joins the workers.
  ~ThreadPool();
  ThreadPool(const ThreadPool &) = delete;
  ThreadPool &operator=(const ThreadPool &) = delete;

  /// Threads a loop runs on, the caller included.
  int threads() const { return int(workers_.size()) + 1; }

  /// Runs `body(ctx, begin, end)` over chunks of `grain` items that cover
  /// `[0, count)` (KernelAbi.h's `parallel_for`).
  void parallelFor(MoecParallelBody body, void *ctx, int64_t count,
                   int64_t grain);

  /// The threads to use when none are asked for: `MOEC_NUM_THREADS` when it
  /// is a positive integer, else the hardware's concurrency (at least 1).
  static int defaultThreads();

private:
  void workerLoop();
  // Takes chunks of the current loop until none is left.
  void runChunks();

  std::vector<std::thread> workers_;
  // Serialises loops started from different threads.
  std::mutex loopMutex_;
  // Guards the sleeping side of `generation_`, `pending_` and `stop_`.
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  bool stop_ = false;

  // The current loop (written before `generation_` is bumped).
  MoecParallelBody body_ = nullptr;
  void *ctx_ = nullptr;
  int64_t count_ = 0, grain_ = 1;
  std::atomic<int64_t> next_{0};
};

} // namespace moec::runtime

#endif // MOEC_RUNTIME_CPU_THREADPOOL_H
