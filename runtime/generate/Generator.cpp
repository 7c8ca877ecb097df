//===- Generator.cpp - Generation over an artifact's KV cache ---*- C++ -*-===//
//
// One step: the scheduler's page copies, then the rows as the artifact's
// inputs (the page table holds each step sequence's pages in its slot), one
// run of the step function, and sampling of the logits rows.
//
//===----------------------------------------------------------------------===//

#include "runtime/generate/Generator.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <unordered_map>

namespace moec::runtime {

namespace {

/// Default cache budget: this many positions per sequence of a step ...
constexpr int64_t kDefaultPositionsPerSequence = 4096;
/// ... but at most this many bytes.
constexpr int64_t kDefaultCacheBytesLimit = int64_t(4) << 30;

double secondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
      .count();
}

} // namespace

StatusOr<std::unique_ptr<Generator>>
Generator::create(Executor &executor, const GeneratorOptions &options) {
  const Artifact &artifact = executor.artifact();
  const manifest::Manifest &m = artifact.manifest();
  const manifest::KvCache *cache = executor.kvCache();
  if (!cache)
    return makeError(StatusCode::kInvalidArgument, artifact.path(),
                     ": has no KV cache, so it cannot generate; compile it "
                     "with `moec --kv-cache=bf16` (or f32)");
  std::unique_ptr<Generator> g(new Generator(executor));
  g->tokensInput_ = findInputIndex(m, "tokens");
  g->positionsInput_ = findInputIndex(m, "positions");
  g->slotsInput_ = findInputIndex(m, "slots");
  g->pageTableInput_ = findInputIndex(m, "page_table");
  g->logitsRowsInput_ = findInputIndex(m, "logits_rows");
  // The manifest verifier checked positions, slots and the page table.
  if (g->tokensInput_ < 0 || m.outputs()->size() == 0)
    return makeError(StatusCode::kInvalidArgument, artifact.path(),
                     ": generation needs an input 'tokens' and the logits "
                     "as output 0");
  const manifest::TensorSpec &tokens = *m.inputs()->Get(g->tokensInput_);
  const manifest::TensorSpec &logits = *m.outputs()->Get(0);
  if (tokens.shape()->size() != 1 ||
      (tokens.dtype() != manifest::DType::I32 &&
       tokens.dtype() != manifest::DType::I64) ||
      logits.dtype() != manifest::DType::F32 || logits.shape()->size() != 2 ||
      logits.shape()->Get(0) != -1 || logits.shape()->Get(1) < 1)
    return makeError(StatusCode::kInvalidArgument, artifact.path(),
                     ": generation needs i32/i64 'tokens' of shape [T] and "
                     "f32 logits of shape [T, vocab]");
  g->vocabSize_ = logits.shape()->Get(1);
  if (tokens.index_bound() && tokens.index_bound() != g->vocabSize_)
    return makeError(StatusCode::kInvalidArgument, artifact.path(),
                     ": the token ids' bound ", tokens.index_bound(),
                     " differs from the logits' vocabulary ", g->vocabSize_);

  int64_t pageTokens = cache->page_tokens();
  g->maxContextLength_ = cache->max_pages() * pageTokens;
  SchedulerLimits limits;
  limits.vocabSize = g->vocabSize_;
  limits.maxContextLength = g->maxContextLength_;
  limits.maxSequencesPerStep =
      options.maxSequencesPerStep > 0
          ? std::min(options.maxSequencesPerStep, cache->max_sequences())
          : cache->max_sequences();
  limits.maxTokensPerStep =
      options.maxTokensPerStep > 0
          ? std::min(options.maxTokensPerStep, executor.maxTokens())
          : executor.maxTokens();

  // The pool's pages are the executor's: one budget, one page count.
  int64_t pageBytes = int64_t(executor.kvCachePageBytes());
  int64_t budget = options.cacheBytes;
  if (budget < 0)
    return makeError(StatusCode::kInvalidArgument,
                     "generation: the KV cache budget is negative (", budget,
                     " bytes)");
  if (budget == 0) {
    int64_t positions =
        std::min(kDefaultPositionsPerSequence, g->maxContextLength_);
    int64_t pages = limits.maxSequencesPerStep *
                    ((positions + pageTokens - 1) / pageTokens);
    budget = std::min(pages * pageBytes,
                      std::max(kDefaultCacheBytesLimit, pageBytes));
  }
  // A page of the pool is a page of every executor pool together (the
  // manifest makes every pool's page `page_tokens` positions, so this
  // divides exactly).
  PagePoolConfig pool;
  pool.tokensPerPage = pageTokens;
  pool.bytesPerTokenPerLayer = pageBytes / pageTokens;
  pool.numLayers = 1;
  pool.budgetBytes = budget;
  MOEC_ASSIGN_OR_RETURN(PagePool pages, PagePool::create(pool));
  MOEC_RETURN_IF_ERROR(executor.resizeKvCache(pages.numPages()));
  MOEC_ASSIGN_OR_RETURN(g->scheduler_,
                        Scheduler::create(std::move(pages), limits));
  g->pageTable_.assign(size_t(cache->max_sequences() * cache->max_pages()), 0);
  return g;
}

Status Generator::setIntInput(int index, const std::vector<int64_t> &values,
                              int64_t tokens) {
  const manifest::TensorSpec &spec =
      *executor_.artifact().manifest().inputs()->Get(uint32_t(index));
  if (spec.dtype() == manifest::DType::I64)
    return executor_.setInput(index, values.data(),
                              values.size() * sizeof(int64_t), tokens);
  std::vector<int32_t> narrow(values.begin(), values.end());
  return executor_.setInput(index, narrow.data(),
                            narrow.size() * sizeof(int32_t), tokens);
}

StatusOr<std::vector<SequenceUpdate>> Generator::step() {
  std::vector<SequenceUpdate> updates;
  MOEC_ASSIGN_OR_RETURN(Step step, scheduler_->schedule(updates));
  if (step.rows.empty())
    return updates;
  for (const PageCopy &copy : step.copies)
    MOEC_RETURN_IF_ERROR(
        executor_.copyKvCachePage(copy.source, copy.destination));

  int64_t rows = int64_t(step.rows.size());
  std::vector<int64_t> tokens, positions, slots;
  for (const StepRow &row : step.rows) {
    tokens.push_back(row.token);
    positions.push_back(row.position);
    slots.push_back(row.slot);
  }
  // Slot i holds the pages of the step's sequence i; the rest is unused.
  int64_t maxPages = executor_.kvCache()->max_pages();
  std::fill(pageTable_.begin(), pageTable_.end(), 0);
  for (size_t i = 0; i < step.sequences.size(); ++i) {
    const std::vector<int32_t> &pages = step.sequences[i].pages;
    std::copy(pages.begin(),
              pages.begin() +
                  std::min<int64_t>(int64_t(pages.size()), maxPages),
              pageTable_.begin() + int64_t(i) * maxPages);
  }
  MOEC_RETURN_IF_ERROR(setIntInput(tokensInput_, tokens, rows));
  MOEC_RETURN_IF_ERROR(setIntInput(positionsInput_, positions, rows));
  MOEC_RETURN_IF_ERROR(setIntInput(slotsInput_, slots, rows));
  MOEC_RETURN_IF_ERROR(executor_.setInput(pageTableInput_, pageTable_.data(),
                                          pageTable_.size() * sizeof(int32_t),
                                          rows));
  // An artifact that selects rows computes the logits of those alone, in
  // order (at least one: a step of intermediate prefill chunks computes one
  // it does not use).
  int64_t logitsRows = rows;
  if (logitsRowsInput_ >= 0) {
    std::vector<int64_t> selected(step.logitsRows.begin(),
                                  step.logitsRows.end());
    if (selected.empty())
      selected.push_back(0);
    logitsRows = int64_t(selected.size());
    MOEC_RETURN_IF_ERROR(setIntInput(logitsRowsInput_, selected, logitsRows));
  }
  auto start = std::chrono::steady_clock::now();
  MOEC_RETURN_IF_ERROR(executor_.run(rows));
  stats_.runSeconds += secondsSince(start);

  // The rows that need logits, in order, one after another.
  MOEC_ASSIGN_OR_RETURN(TensorView view, executor_.tensor(true, 0, logitsRows));
  const auto *all = reinterpret_cast<const float *>(view.data);
  size_t vocab = size_t(vocabSize_);
  logits_.resize(step.logitsRows.size() * vocab);
  for (size_t i = 0; i < step.logitsRows.size(); ++i)
    std::memcpy(logits_.data() + i * vocab,
                all + (logitsRowsInput_ >= 0 ? i : size_t(step.logitsRows[i])) *
                          vocab,
                vocab * sizeof(float));
  start = std::chrono::steady_clock::now();
  MOEC_ASSIGN_OR_RETURN(std::vector<SequenceUpdate> done,
                        scheduler_->complete(step, logits_.data(), sampler_));
  stats_.sampleSeconds += secondsSince(start);
  // Each sampled token points at its row of `logits_` (sequences with a
  // logits row, in step order, are the rows' order).
  std::unordered_map<SequenceId, size_t> rowOf;
  for (const StepSequence &s : step.sequences)
    if (s.logitsRow >= 0)
      rowOf.emplace(s.id, rowOf.size());
  for (SequenceUpdate &u : done)
    if (auto it = rowOf.find(u.id); u.token >= 0 && it != rowOf.end())
      u.logits = logits_.data() + it->second * vocab;

  ++stats_.steps;
  stats_.rows += rows;
  for (const StepSequence &s : step.sequences)
    (s.numRows == 1 && s.logitsRow >= 0 ? stats_.decodeRows
                                        : stats_.prefillRows) += s.numRows;
  updates.insert(updates.end(), std::make_move_iterator(done.begin()),
                 std::make_move_iterator(done.end()));
  return updates;
}

} // namespace moec::runtime
