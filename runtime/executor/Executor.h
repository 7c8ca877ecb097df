//===- Executor.h - One artifact bound to one device ------------*- C++ -*-===//
//
// The interface every device's executor implements (CPU: runtime/cpu, CUDA:
// runtime/cuda): set inputs, run for T tokens, read inputs and outputs. The
// C API holds an `Executor` and never asks which device it is. The checks
// that do not depend on the device (token counts, input sizes, index
// bounds, the default `positions`) live here once.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_RUNTIME_EXECUTOR_EXECUTOR_H
#define MOEC_RUNTIME_EXECUTOR_EXECUTOR_H

#include "runtime/artifact/Artifact.h"
#include "runtime/support/Status.h"

#include <cstdint>
#include <memory>
#include <vector>

namespace moec::runtime {

/// A view of one model input or output after a run, in host memory.
struct TensorView {
  /// The manifest's description of the tensor.
  const manifest::TensorSpec *spec = nullptr;
  /// First byte of the data (host memory owned by the executor).
  uint8_t *data = nullptr;
  /// The shape with the token dimension resolved to the current count.
  std::vector<int64_t> shape;
  /// Bytes of data: product of `shape` times the element size.
  uint64_t bytes = 0;
};

/// Executes one artifact on one device. Not thread-safe: one call at a time.
class Executor {
public:
  virtual ~Executor();
  Executor(const Executor &) = delete;
  Executor &operator=(const Executor &) = delete;

  /// The device: "cpu" or "cuda".
  virtual const char *device() const = 0;

  /// The artifact this executor runs.
  const Artifact &artifact() const { return *artifact_; }
  /// The largest token count a run accepts.
  int64_t maxTokens() const { return artifact_->manifest().max_tokens(); }

  /// Copies `tokens` rows of input `index` from `data` and checks integer
  /// inputs against their `index_bound`. `bytes` must be exactly the input's
  /// size at `tokens` tokens. Inputs are set anew for every run: the arena
  /// reuses their memory once the steps have read them.
  virtual Status setInput(int index, const void *data, uint64_t bytes,
                          int64_t tokens) = 0;

  /// Runs every step in order for `tokens` tokens. An input named
  /// `positions` (i32 or i64, shape `[-1]`) that was not set since the last
  /// run is filled with `0 .. tokens-1` first.
  virtual Status run(int64_t tokens) = 0;

  /// Input `index` (or output, with `output`) as of the last `setInput` /
  /// `run` with `tokens` tokens, in host memory.
  virtual StatusOr<TensorView> tensor(bool output, int index,
                                      int64_t tokens) = 0;

  /// Runs step `index` alone for `tokens` tokens (for per-kernel checks):
  /// the inputs set since the last `run` / `runStep` are in the arena first,
  /// and step 0 fills an unset `positions` input as `run` does, so that
  /// `runStep(0, T)`, ..., `runStep(n-1, T)` is `run(T)`. Returns once the
  /// step has finished on the device.
  virtual Status runStep(int index, int64_t tokens) = 0;

  /// Copies `bytes` bytes of the arena from `offset` to host memory `dst`
  /// (every earlier step has finished). `offset + bytes` must be within
  /// `arena_bytes`.
  virtual Status readArena(uint64_t offset, uint64_t bytes, void *dst) = 0;

  /// Copies `bytes` bytes from host memory `src` into the arena at `offset`
  /// (done when it returns). Buffers are raw bytes at their manifest offsets.
  virtual Status writeArena(uint64_t offset, uint64_t bytes,
                            const void *src) = 0;

protected:
  explicit Executor(std::shared_ptr<const Artifact> artifact);

  /// `tokens` in [1, max_tokens], else an error naming the artifact.
  Status checkTokens(int64_t tokens) const;
  /// The input (or output) `index` with its buffer, or an error.
  StatusOr<const manifest::TensorSpec *> findTensor(bool output,
                                                    int index) const;
  /// Checks `setInput`'s arguments: index, token count, byte count, null
  /// data and every id against `index_bound`.
  Status checkInput(int index, const void *data, uint64_t bytes,
                    int64_t tokens) const;
  /// `index` names a step, else an error naming the artifact.
  Status checkStep(int index) const;
  /// Verifies the weight bytes step `index` reads (`Artifact::verifyWeight`)
  /// unless done before: every executor calls it before a step first runs
  /// (or, for a device that copies the weights at load, before the copy),
  /// so that a corrupted weight is reported instead of used.
  Status verifyStepWeights(int index);
  /// `[offset, offset + bytes)` lies in the arena and `data` is not null
  /// (unless `bytes` is 0), else an error.
  Status checkArenaRange(uint64_t offset, uint64_t bytes,
                         const void *data) const;
  /// Writes `0 .. tokens-1` as `spec`'s dtype (i32 or i64) to `out`.
  static void writePositions(const manifest::TensorSpec &spec, uint8_t *out,
                             int64_t tokens);

  std::shared_ptr<const Artifact> artifact_;
  /// Inputs named `positions` that `run` fills unless they were set.
  std::vector<int> positionInputs_;
  /// Which inputs were set by `setInput` since the last run.
  std::vector<bool> inputSet_;
  /// Which steps' weights `verifyStepWeights` has verified.
  std::vector<bool> stepWeightsVerified_;
};

} // namespace moec::runtime

#endif // MOEC_RUNTIME_EXECUTOR_EXECUTOR_H
