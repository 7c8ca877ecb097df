//===- Scheduler.h - Continuous batching over the paged cache ---*- C++ -*-===//
//
// Decides what each generation step computes: which sequences decode, which
// prompt chunks are prefilled, the rows (token, position, slot) of the step,
// which rows need logits, and the page tables and page copies the executor
// needs. Applies the sampled tokens afterwards and finishes sequences.
//
// Threading contract: one thread (the driving thread) calls `schedule`,
// `complete`, `completeWithTokens` and `pool`; `add`, `cancel` and
// `numUnfinished` are safe from any thread at any time. Requests added or
// cancelled from other threads take effect at the next `schedule`.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_RUNTIME_GENERATE_SCHEDULER_H
#define MOEC_RUNTIME_GENERATE_SCHEDULER_H

#include "runtime/generate/PagePool.h"
#include "runtime/generate/Sampler.h"

#include <atomic>
#include <deque>
#include <memory>
#include <mutex>

namespace moec::runtime {

/// The scheduler's named limits.
struct SchedulerLimits {
  /// Sequences one step may touch (decoding or prefilling); vLLM's
  /// `max_num_seqs`.
  int64_t maxSequencesPerStep = 64;
  /// Rows one step may have: decode rows plus prefill chunk rows, so also
  /// the prefill chunk budget (vLLM's `max_num_batched_tokens`). Bounded by
  /// the artifact's `--max-tokens`.
  int64_t maxTokensPerStep = 512;
  /// Longest sequence, prompt plus output (the model's
  /// `max_position_embeddings`); 0 is unbounded.
  int64_t maxContextLength = 0;
  /// Vocabulary size, for checking token ids and sampling.
  int64_t vocabSize = 0;
};

/// What a caller asks for.
struct GenerationRequest {
  /// Prompt token ids; at least one.
  std::vector<int32_t> prompt;
  /// How tokens are picked.
  SamplingParams sampling;
  /// When to stop.
  StopConditions stop;
};

/// One row of a step.
struct StepRow {
  /// Token id fed to the model.
  int32_t token = 0;
  /// Its position in its sequence.
  int64_t position = 0;
  /// Index into `Step::sequences`.
  int32_t slot = 0;
};

/// One sequence of a step: its rows are consecutive.
struct StepSequence {
  /// The request.
  SequenceId id = 0;
  /// Its page table after this step's appends (what the attention reads).
  std::vector<int32_t> pages;
  /// Tokens in the cache once this step has written its rows.
  int64_t contextLength = 0;
  /// First row of this sequence in `Step::rows`.
  int64_t firstRow = 0;
  /// Rows of this sequence.
  int64_t numRows = 0;
  /// The row whose logits are sampled (its last row, when the step reaches
  /// the end of what the sequence has to compute), or -1.
  int64_t logitsRow = -1;
};

/// What one step computes.
struct Step {
  /// Serial number; `complete` checks it.
  uint64_t serial = 0;
  /// Rows: decode rows first, then prefill chunks.
  std::vector<StepRow> rows;
  /// The sequences of the rows.
  std::vector<StepSequence> sequences;
  /// Rows that need logits, ascending; the order of `complete`'s tokens.
  std::vector<int64_t> logitsRows;
  /// Page copies to make before writing the rows' K/V.
  std::vector<PageCopy> copies;
};

/// What happened to one request.
struct SequenceUpdate {
  /// The request.
  SequenceId id = 0;
  /// A newly generated token, or -1.
  int32_t token = -1;
  /// `kNone` while it goes on.
  FinishReason finish = FinishReason::kNone;
  /// Why it failed, when `finish` is `kError`.
  Status error;
  /// The `vocabSize` logits `token` was sampled from, when the caller of
  /// `complete` keeps them (the `Generator` does, until its next step);
  /// else null.
  const float *logits = nullptr;
};

/// Admits, batches, preempts and finishes generation requests.
///
/// Policy (docs/generation.md): running sequences are served in admission
/// order, those with one token to compute (decode) before those with a
/// prompt left (continued chunked prefill); then waiting requests are
/// admitted first-come first-served while the step's budgets last and the
/// cache can hold their next chunk without preempting (no skipping ahead).
/// When a running sequence cannot get its pages, the newest running
/// sequence not yet in this step is preempted by recomputation (its pages
/// released, requeued at the front of the queue with its output appended
/// to its prompt); if there is none it preempts itself. A request that
/// could not fit in the whole pool finishes with a `kOutOfMemory` error.
class Scheduler {
public:
  /// A scheduler over `pool` with `limits`; checks the limits.
  static StatusOr<std::unique_ptr<Scheduler>> create(PagePool pool,
                                                     SchedulerLimits limits);

  /// Any thread: checks and queues `request`, returning its id.
  StatusOr<SequenceId> add(GenerationRequest request);
  /// Any thread: cancels request `id` (its pages are freed at the next
  /// `schedule`, which reports it as `kCancelled`); unknown or finished ids
  /// are ignored.
  void cancel(SequenceId id);
  /// Any thread: requests added and not yet finished or cancelled.
  int64_t numUnfinished() const { return unfinished_.load(); }

  /// Driving thread: the next step (no rows when there is nothing to run).
  /// `updates` receives requests that ended while scheduling (cancelled,
  /// or too long for the pool). An error when the previous step was not
  /// completed.
  StatusOr<Step> schedule(std::vector<SequenceUpdate> &updates);
  /// Driving thread: samples each logits row of `step` from `logits`
  /// (`step.logitsRows.size()` rows of `vocabSize` floats) with `sampler`
  /// and applies the tokens; a sampling error finishes only its sequence.
  StatusOr<std::vector<SequenceUpdate>>
  complete(const Step &step, const float *logits, Sampler &sampler);
  /// Driving thread: applies `tokens` (one per logits row) to `step`'s
  /// sequences, for callers that sample elsewhere.
  StatusOr<std::vector<SequenceUpdate>>
  completeWithTokens(const Step &step, const std::vector<int32_t> &tokens);

  /// Driving thread: the page pool (page tables, occupancy).
  const PagePool &pool() const { return pool_; }
  /// Driving thread: how many preemptions happened so far.
  int64_t numPreemptions() const { return numPreemptions_; }

private:
  struct Sequence {
    GenerationRequest request;
    /// Prompt then output.
    std::vector<int32_t> tokens;
    /// Tokens whose K/V is in the cache or being written this step.
    int64_t numComputed = 0;
    bool running = false;
  };

  Scheduler(PagePool pool, SchedulerLimits limits)
      : pool_(std::move(pool)), limits_(limits) {}
  void drainInbox(std::vector<SequenceUpdate> &updates);
  void finish(SequenceId id, FinishReason reason, Status error,
              std::vector<SequenceUpdate> &updates, int32_t token = -1);
  void preempt(SequenceId id);
  int64_t pagesForLength(int64_t length) const;
  void addChunk(Step &step, SequenceId id, Sequence &seq, int64_t chunk);
  std::vector<SequenceUpdate> apply(const Step &step,
                                    const std::vector<int32_t> &tokens,
                                    const std::vector<Status> &errors);

  PagePool pool_;
  SchedulerLimits limits_;

  // Shared with other threads.
  std::mutex mutex_;
  std::vector<std::pair<SequenceId, GenerationRequest>> addInbox_;
  std::vector<SequenceId> cancelInbox_;
  std::atomic<SequenceId> nextId_{1};
  std::atomic<int64_t> unfinished_{0};

  // Driving thread only.
  std::unordered_map<SequenceId, Sequence> sequences_;
  std::deque<SequenceId> waiting_;
  /// Running sequences in admission order.
  std::vector<SequenceId> running_;
  uint64_t nextSerial_ = 1;
  uint64_t pendingSerial_ = 0;
  int64_t numPreemptions_ = 0;
};

} // namespace moec::runtime

#endif // MOEC_RUNTIME_GENERATE_SCHEDULER_H
