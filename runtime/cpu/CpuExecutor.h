//===- CpuExecutor.h - Runs an artifact's steps on the CPU ------*- C++ -*-===//
//
// Binds a verified `Artifact` to the CPU: loads its `cpu.so` from memory,
// resolves every step's kernel symbol up front, allocates the 64-byte
// aligned arena and precomputes each step's argument array, so that a run
// is only a loop of calls (runtime/cpu/KernelAbi.h). Kernels that spread
// their work over threads (the GEMMs) get the executor's `MoecCpuRuntime`
// table and thread pool through the shared object's `moec_cpu_runtime`.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_RUNTIME_CPU_CPUEXECUTOR_H
#define MOEC_RUNTIME_CPU_CPUEXECUTOR_H

#include "runtime/artifact/Artifact.h"
#include "runtime/cpu/KernelAbi.h"
#include "runtime/cpu/SharedObject.h"
#include "runtime/cpu/ThreadPool.h"
#include "runtime/executor/Executor.h"
#include "runtime/support/Status.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace moec::runtime {

/// Executes one artifact on the CPU. Not thread-safe: one run at a time.
class CpuExecutor final : public Executor {
public:
  /// Loads `artifact`'s shared object and prepares every step. Of several
  /// CPU code variants (`cpu_objects`) it loads the best one this CPU has
  /// the features for (`selectCpuCodeVariant`, honouring
  /// `MOEC_CPU_FEATURES`), and fails with `kUnavailable`, naming the missing
  /// features, when none fits. Fails with a message naming the symbol when
  /// a step's kernel is missing. Weights of a benchmark artifact
  /// (`weights_device_filled`) are filled in host memory with the values the
  /// CUDA executor gives them.
  static StatusOr<std::unique_ptr<CpuExecutor>>
  create(std::shared_ptr<const Artifact> artifact);

  /// Frees the arena and closes the shared object.
  ~CpuExecutor() override;

  /// "cpu".
  const char *device() const override { return "cpu"; }

  /// Copies the input into its arena buffer (see `Executor::setInput`).
  Status setInput(int index, const void *data, uint64_t bytes,
                  int64_t tokens) override;

  /// Calls every step's kernel in order (see `Executor::run`).
  Status run(int64_t tokens) override;

  /// A view into the arena (see `Executor::tensor`).
  StatusOr<TensorView> tensor(bool output, int index, int64_t tokens) override;

  /// Calls step `index`'s kernel alone (see `Executor::runStep`).
  Status runStep(int index, int64_t tokens) override;

  /// memcpy out of / into the arena (see `Executor::readArena`).
  Status readArena(uint64_t offset, uint64_t bytes, void *dst) override;
  Status writeArena(uint64_t offset, uint64_t bytes, const void *src) override;

  /// Runs the kernels' parallel loops on `threads` threads (the calling one
  /// included); `threads <= 0` means `ThreadPool::defaultThreads()`
  /// (`MOEC_NUM_THREADS`, else the hardware concurrency). 1 runs everything
  /// on the calling thread. Results do not depend on it. `create` applies
  /// the default.
  void setThreads(int threads);

  /// The threads set by `setThreads`.
  int threads() const { return threads_; }

  /// The section whose code runs: `cpu.so` or `cpu.so.<variant>`.
  const std::string &cpuCode() const { return cpuCode_; }

  /// The arena address of buffer `id` (nullptr when there is no such id).
  uint8_t *bufferData(uint32_t id) const;

  /// Host memory pools, 64-byte aligned (see `Executor::resizeKvCache`).
  Status resizeKvCache(int64_t pages) override;
  /// memcpy of one page in every pool (see `Executor::copyKvCachePage`).
  Status copyKvCachePage(int32_t src, int32_t dst) override;

private:
  /// `run` less its final check that the file is unchanged.
  Status runSteps(int64_t tokens);
  struct Step {
    MoecCpuKernel kernel = nullptr;
    std::vector<void *> args;
    std::vector<int64_t> params;
    // Runs on the rows `logits_rows` selects.
    bool selectedRows = false;
  };

  explicit CpuExecutor(std::shared_ptr<const Artifact> artifact)
      : Executor(std::move(artifact)) {}

  // Fills the `positions` inputs not set since the last run with 0 ..
  // tokens-1, and forgets which inputs were set.
  Status prepareInputs(int64_t tokens);

  std::string cpuCode_;
  std::unique_ptr<SharedObject> library_;
  uint8_t *arena_ = nullptr;
  // Host copy of filled weights (benchmark artifacts only).
  uint8_t *filledWeights_ = nullptr;
  std::vector<Step> steps_;
  // One pool per KV cache tensor (`kv_cache.tensors` order), its bytes per
  // page, and the step arguments that point to each: (step, arg, tensor).
  std::vector<uint8_t *> kvPools_;
  std::vector<uint64_t> kvPoolPageBytes_;
  struct KvArgument {
    size_t step, arg;
    uint32_t tensor;
  };
  std::vector<KvArgument> kvArguments_;
  // The services table the shared object's `moec_cpu_runtime` points to
  // (only when it exports one), and the threads behind it.
  MoecCpuRuntime runtime_{};
  const MoecCpuRuntime **runtimeSlot_ = nullptr;
  std::unique_ptr<ThreadPool> pool_;
  int threads_ = 1;
};

} // namespace moec::runtime

#endif // MOEC_RUNTIME_CPU_CPUEXECUTOR_H
