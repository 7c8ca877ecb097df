//===- Generator.h - Generation over an artifact's KV cache -----*- C++ -*-===//
//
// Runs generation on an executor whose artifact keeps a paged KV cache
// (`moec --kv-cache`): sizes the executor's cache pools from a memory
// budget, and for every step takes the scheduler's rows, writes them as the
// step's inputs (tokens, positions, slots, page table), runs the step
// function, and samples the rows that need logits (docs/generation.md).
//
// Threading contract: the thread that calls `step` is the driving thread;
// `add`, `cancel` and `numUnfinished` are safe from any thread (they are
// the scheduler's).
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_RUNTIME_GENERATE_GENERATOR_H
#define MOEC_RUNTIME_GENERATE_GENERATOR_H

#include "runtime/executor/Executor.h"
#include "runtime/generate/Scheduler.h"

namespace moec::runtime {

/// How a `Generator` is sized; zeros take the defaults.
struct GeneratorOptions {
  /// Bytes of KV cache (all layers); 0 is enough for `maxSequencesPerStep`
  /// sequences of 4096 positions (fewer when the model is shorter).
  int64_t cacheBytes = 0;
  /// Sequences per step; 0 (and any larger value) is the artifact's
  /// `max_sequences`.
  int64_t maxSequencesPerStep = 0;
  /// Rows per step (the prefill chunk budget); 0 (and any larger value) is
  /// the artifact's `max_tokens`.
  int64_t maxTokensPerStep = 0;
};

/// What the steps so far did, for throughput reports.
struct GeneratorStats {
  /// Steps run and rows computed; of them, rows of sequences that computed
  /// one row and sampled from it (decode), and the others (prefill).
  int64_t steps = 0, rows = 0, prefillRows = 0, decodeRows = 0;
  /// Seconds spent in the executor's runs and in sampling.
  double runSeconds = 0, sampleSeconds = 0;
};

/// Generates with one executor (docs/generation.md).
class Generator {
public:
  /// Binds to `executor` (which must outlive the generator and keep a KV
  /// cache) and resizes its cache pools to the budget: whatever they held
  /// is gone.
  static StatusOr<std::unique_ptr<Generator>>
  create(Executor &executor, const GeneratorOptions &options = {});

  /// Any thread: queues `request` (checked against the vocabulary and the
  /// context length), returning its id.
  StatusOr<SequenceId> add(GenerationRequest request) {
    return scheduler_->add(std::move(request));
  }
  /// Any thread: cancels request `id` (reported by a later `step`).
  void cancel(SequenceId id) { scheduler_->cancel(id); }
  /// Any thread: requests not finished yet.
  int64_t numUnfinished() const { return scheduler_->numUnfinished(); }

  /// Driving thread: runs one step (nothing when nothing is queued) and
  /// returns what happened to the requests: new tokens (with the logits
  /// they were sampled from, valid until the next step) and endings. A
  /// request's own failure (its cache needs, a sampling error) ends only
  /// that request. An error return means the executor failed: the step was
  /// not completed and the generator cannot go on (create another).
  StatusOr<std::vector<SequenceUpdate>> step();

  /// Driving thread: the pages and their holders.
  const PagePool &pool() const { return scheduler_->pool(); }
  /// Driving thread: counters of the steps so far.
  const GeneratorStats &stats() const { return stats_; }
  /// The vocabulary size (columns of the logits).
  int64_t vocabSize() const { return vocabSize_; }
  /// The longest sequence (prompt and output) a request may reach.
  int64_t maxContextLength() const { return maxContextLength_; }

private:
  explicit Generator(Executor &executor) : executor_(executor) {}
  /// Writes `values` to integer input `index` as its dtype (i32 or i64).
  Status setIntInput(int index, const std::vector<int64_t> &values,
                     int64_t tokens);

  Executor &executor_;
  std::unique_ptr<Scheduler> scheduler_;
  Sampler sampler_;
  GeneratorStats stats_;
  int64_t vocabSize_ = 0, maxContextLength_ = 0;
  int tokensInput_ = -1, positionsInput_ = -1, slotsInput_ = -1,
      pageTableInput_ = -1, logitsRowsInput_ = -1;
  // Reused between steps.
  std::vector<int32_t> pageTable_;
  std::vector<float> logits_;
};

} // namespace moec::runtime

#endif // MOEC_RUNTIME_GENERATE_GENERATOR_H
