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
#include <functional>
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

  //===--------------------------------------------------------------------===//
  // The KV cache (artifacts compiled with --kv-cache; docs/generation.md)
  //===--------------------------------------------------------------------===//

  /// The artifact's KV cache, or null for a stateless forward.
  const manifest::KvCache *kvCache() const {
    return artifact_->manifest().kv_cache();
  }
  /// Bytes one page takes in all the cache's pools together (0 without a
  /// cache): what a page of the generation's page pool costs.
  uint64_t kvCachePageBytes() const;
  /// Pages every pool holds now; 0 without a cache. Loading allocates
  /// enough for one sequence of `max_tokens` (a plain `run`).
  int64_t kvCachePages() const { return kvCachePages_; }
  /// Replaces every pool by one of `pages` pages, zeroed: what was cached
  /// is gone. Fails without a cache or when the memory is not there.
  virtual Status resizeKvCache(int64_t pages);
  /// Copies page `src` to page `dst` in every pool (done when it returns);
  /// for a sequence that writes into a page it shares.
  virtual Status copyKvCachePage(int32_t src, int32_t dst);

protected:
  explicit Executor(std::shared_ptr<const Artifact> artifact);
  /// Fills the `slots` and `page_table` inputs when they were not set for
  /// this run: every row in slot 0, whose pages are 0, 1, ... (a plain `run`
  /// is one sequence from position 0), and `logits_rows` with every row.
  /// `data(index)` is input `index`'s memory. Then checks that every row's
  /// position and all positions before it in its slot lie in pages of the
  /// pools, so that no kernel indexes outside them, and that the selected
  /// rows are rows of the run.
  Status prepareKvCacheInputs(int64_t tokens,
                              const std::function<uint8_t *(int)> &data);

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
  /// With a KV cache: the inputs `positions`, `slots`, `page_table` and
  /// `logits_rows`.
  int positionsInput_ = -1, slotsInput_ = -1, pageTableInput_ = -1,
      logitsRowsInput_ = -1;
  /// Entries of `logits_rows` as set for this run (its `tokens`); after
  /// `prepareKvCacheInputs`, the row count R of the steps on selected rows.
  int64_t selectedRows_ = 0;
  /// Pages of every KV cache pool (set by the device's allocation).
  int64_t kvCachePages_ = 0;
  /// Which steps' weights `verifyStepWeights` has verified.
  std::vector<bool> stepWeightsVerified_;
};

} // namespace moec::runtime

#endif // MOEC_RUNTIME_EXECUTOR_EXECUTOR_H
