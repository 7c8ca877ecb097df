//===- CpuExecutor.h - Runs an artifact's steps on the CPU ------*- C++ -*-===//
//
// Binds a verified `Artifact` to the CPU: loads its `cpu.so` from memory,
// resolves every step's kernel symbol up front, allocates the 64-byte
// aligned arena and precomputes each step's argument array, so that a run
// is only a loop of calls (runtime/cpu/KernelAbi.h).
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_RUNTIME_CPU_CPUEXECUTOR_H
#define MOEC_RUNTIME_CPU_CPUEXECUTOR_H

#include "runtime/artifact/Artifact.h"
#include "runtime/cpu/KernelAbi.h"
#include "runtime/cpu/SharedObject.h"
#include "runtime/support/Status.h"

#include <cstdint>
#include <memory>
#include <vector>

namespace moec::runtime {

/// A view of one model input or output after a run.
struct TensorView {
  /// The manifest's description of the tensor.
  const manifest::TensorSpec *spec = nullptr;
  /// First byte of the data (inside the arena).
  uint8_t *data = nullptr;
  /// The shape with the token dimension resolved to the current count.
  std::vector<int64_t> shape;
  /// Bytes of data: product of `shape` times the element size.
  uint64_t bytes = 0;
};

/// Executes one artifact on the CPU. Not thread-safe: one run at a time.
class CpuExecutor {
public:
  /// Loads `artifact`'s shared object and prepares every step. Fails with a
  /// message naming the symbol when a step's kernel is missing.
  static StatusOr<std::unique_ptr<CpuExecutor>>
  create(std::shared_ptr<const Artifact> artifact);

  /// Frees the arena and closes the shared object.
  ~CpuExecutor();
  CpuExecutor(const CpuExecutor &) = delete;
  CpuExecutor &operator=(const CpuExecutor &) = delete;

  /// The artifact this executor runs.
  const Artifact &artifact() const { return *artifact_; }
  /// The largest token count a run accepts.
  int64_t maxTokens() const { return artifact_->manifest().max_tokens(); }

  /// Copies `tokens` rows of input `index` from `data` into its buffer and
  /// checks integer inputs against their `index_bound`. `bytes` must be
  /// exactly the input's size at `tokens` tokens. Inputs are set anew for
  /// every run: the arena reuses their memory once the steps have read them.
  Status setInput(int index, const void *data, uint64_t bytes, int64_t tokens);

  /// Runs every step in order for `tokens` tokens. An input named
  /// `positions` (i32 or i64, shape `[-1]`) that was not set since the last
  /// run is filled with `0 .. tokens-1` first.
  Status run(int64_t tokens);

  /// Input `index` (or output, with `output`) as of the last `setInput` /
  /// `run` with `tokens` tokens.
  StatusOr<TensorView> tensor(bool output, int index, int64_t tokens);

  /// The arena address of buffer `id` (nullptr when there is no such id).
  uint8_t *bufferData(uint32_t id) const;

private:
  struct Step {
    MoecCpuKernel kernel = nullptr;
    std::vector<void *> args;
    std::vector<int64_t> params;
  };

  CpuExecutor() = default;
  Status checkTokens(int64_t tokens) const;

  std::shared_ptr<const Artifact> artifact_;
  std::unique_ptr<SharedObject> library_;
  uint8_t *arena_ = nullptr;
  std::vector<Step> steps_;
  // Inputs named `positions` that `run` fills, and which inputs were set
  // by `setInput` since the last run.
  std::vector<int> positionInputs_;
  std::vector<bool> inputSet_;
};

} // namespace moec::runtime

#endif // MOEC_RUNTIME_CPU_CPUEXECUTOR_H
