//===- Scheduler.cpp - Continuous batching over the paged cache -----------===//
//
// The scheduling policy of Scheduler.h: decode rows, continued prefill
// chunks, first-come first-served admission, preemption by recomputation,
// and the application of sampled tokens with the stop conditions.
//
//===----------------------------------------------------------------------===//

#include "runtime/generate/Scheduler.h"

#include <algorithm>

namespace moec::runtime {

StatusOr<std::unique_ptr<Scheduler>> Scheduler::create(PagePool pool,
                                                       SchedulerLimits limits) {
  auto atLeast = [](const char *field, int64_t value, int64_t low) -> Status {
    if (value >= low)
      return Status::ok();
    return makeError(StatusCode::kInvalidArgument, "scheduler: `", field,
                     "` must be >= ", low, ", but got ", value);
  };
  MOEC_RETURN_IF_ERROR(
      atLeast("max_sequences_per_step", limits.maxSequencesPerStep, 1));
  MOEC_RETURN_IF_ERROR(
      atLeast("max_tokens_per_step", limits.maxTokensPerStep, 1));
  MOEC_RETURN_IF_ERROR(
      atLeast("max_context_length", limits.maxContextLength, 0));
  MOEC_RETURN_IF_ERROR(atLeast("vocab_size", limits.vocabSize, 1));
  return std::unique_ptr<Scheduler>(new Scheduler(std::move(pool), limits));
}

//===----------------------------------------------------------------------===//
// Any thread
//===----------------------------------------------------------------------===//

StatusOr<SequenceId> Scheduler::add(GenerationRequest request) {
  if (request.prompt.empty())
    return makeError(StatusCode::kInvalidArgument,
                     "scheduler: the prompt is empty");
  for (size_t i = 0; i < request.prompt.size(); ++i)
    if (request.prompt[i] < 0 || request.prompt[i] >= limits_.vocabSize)
      return makeError(StatusCode::kInvalidArgument, "scheduler: prompt token ",
                       i, " is ", request.prompt[i],
                       ", outside the vocabulary of ", limits_.vocabSize);
  if (limits_.maxContextLength > 0 &&
      static_cast<int64_t>(request.prompt.size()) >= limits_.maxContextLength)
    return makeError(StatusCode::kInvalidArgument, "scheduler: the prompt has ",
                     request.prompt.size(),
                     " tokens, leaving no room to generate within the context "
                     "length of ",
                     limits_.maxContextLength);
  MOEC_RETURN_IF_ERROR(
      validateSamplingParams(request.sampling, limits_.vocabSize));
  MOEC_RETURN_IF_ERROR(validateStopConditions(request.stop, limits_.vocabSize));
  SequenceId id = nextId_.fetch_add(1);
  std::lock_guard<std::mutex> lock(mutex_);
  addInbox_.emplace_back(id, std::move(request));
  unfinished_.fetch_add(1);
  return id;
}

void Scheduler::cancel(SequenceId id) {
  std::lock_guard<std::mutex> lock(mutex_);
  cancelInbox_.push_back(id);
}

//===----------------------------------------------------------------------===//
// Driving thread
//===----------------------------------------------------------------------===//

void Scheduler::drainInbox(std::vector<SequenceUpdate> &updates) {
  std::vector<std::pair<SequenceId, GenerationRequest>> adds;
  std::vector<SequenceId> cancels;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    adds.swap(addInbox_);
    cancels.swap(cancelInbox_);
  }
  // An id is returned by `add` only after its request is in the inbox, so
  // adds go first.
  for (auto &[id, request] : adds) {
    Sequence seq;
    seq.tokens = request.prompt;
    seq.request = std::move(request);
    sequences_.emplace(id, std::move(seq));
    waiting_.push_back(id);
  }
  for (SequenceId id : cancels)
    if (sequences_.count(id))
      finish(id, FinishReason::kCancelled, Status::ok(), updates);
}

void Scheduler::finish(SequenceId id, FinishReason reason, Status error,
                       std::vector<SequenceUpdate> &updates, int32_t token) {
  if (pool_.pageTable(id))
    (void)pool_.release(id);
  running_.erase(std::remove(running_.begin(), running_.end(), id),
                 running_.end());
  waiting_.erase(std::remove(waiting_.begin(), waiting_.end(), id),
                 waiting_.end());
  sequences_.erase(id);
  unfinished_.fetch_sub(1);
  updates.push_back({id, token, reason, std::move(error)});
}

void Scheduler::preempt(SequenceId id) {
  // Recomputation: everything it has, output included, becomes a prompt to
  // prefill again; its full pages stay in the prefix cache until evicted.
  (void)pool_.release(id);
  Sequence &seq = sequences_.at(id);
  seq.numComputed = 0;
  seq.running = false;
  running_.erase(std::remove(running_.begin(), running_.end(), id),
                 running_.end());
  waiting_.push_front(id);
  ++numPreemptions_;
}

int64_t Scheduler::pagesForLength(int64_t length) const {
  return (length + pool_.tokensPerPage() - 1) / pool_.tokensPerPage();
}

void Scheduler::addChunk(Step &step, SequenceId id, Sequence &seq,
                         int64_t chunk) {
  // The callers checked the pages, so append cannot fail.
  StatusOr<std::vector<PageCopy>> copies =
      pool_.append(id, seq.tokens.data() + seq.numComputed, chunk);
  step.copies.insert(step.copies.end(), copies->begin(), copies->end());
  StepSequence entry;
  entry.id = id;
  entry.firstRow = static_cast<int64_t>(step.rows.size());
  entry.numRows = chunk;
  int32_t slot = static_cast<int32_t>(step.sequences.size());
  for (int64_t j = 0; j < chunk; ++j)
    step.rows.push_back(
        {seq.tokens[seq.numComputed + j], seq.numComputed + j, slot});
  seq.numComputed += chunk;
  entry.contextLength = seq.numComputed;
  entry.pages = pool_.pageTable(id)->pages;
  if (seq.numComputed == static_cast<int64_t>(seq.tokens.size())) {
    entry.logitsRow = static_cast<int64_t>(step.rows.size()) - 1;
    step.logitsRows.push_back(entry.logitsRow);
  }
  step.sequences.push_back(std::move(entry));
}

StatusOr<Step> Scheduler::schedule(std::vector<SequenceUpdate> &updates) {
  if (pendingSerial_ != 0)
    return makeError(StatusCode::kInvalidArgument, "scheduler: step ",
                     pendingSerial_,
                     " was scheduled but not completed; call complete first");
  drainInbox(updates);
  Step step;
  step.serial = nextSerial_++;
  int64_t tokenBudget = limits_.maxTokensPerStep;
  int64_t sequenceBudget = limits_.maxSequencesPerStep;
  auto inStep = [&](SequenceId id) {
    return std::any_of(step.sequences.begin(), step.sequences.end(),
                       [id](const StepSequence &s) { return s.id == id; });
  };
  auto tooLong = [&](SequenceId id, int64_t length) {
    finish(id, FinishReason::kError,
           makeError(StatusCode::kOutOfMemory, "KV cache too small: sequence ",
                     id, " needs ", pagesForLength(length), " pages for ",
                     length, " tokens, but the pool has ", pool_.numPages(),
                     " pages of ", pool_.tokensPerPage(), " tokens"),
           updates);
  };

  // Running sequences: decode (one token left) first, then continued
  // prefill, each pass in admission order.
  for (bool decodePass : {true, false}) {
    std::vector<SequenceId> order = running_;
    for (SequenceId id : order) {
      auto it = sequences_.find(id);
      if (it == sequences_.end() || !it->second.running)
        continue;
      Sequence &seq = it->second;
      int64_t remaining =
          static_cast<int64_t>(seq.tokens.size()) - seq.numComputed;
      // Zero left: the decode pass already took it.
      if (remaining == 0 || (remaining == 1) != decodePass)
        continue;
      if (sequenceBudget == 0 || tokenBudget == 0)
        break;
      int64_t chunk = std::min(remaining, tokenBudget);
      if (pagesForLength(seq.numComputed + chunk) > pool_.numPages()) {
        tooLong(id, seq.numComputed + chunk);
        continue;
      }
      // Preempt the newest sequences not in this step until it fits.
      bool preemptedSelf = false;
      while (*pool_.pagesNeeded(id, chunk) > pool_.numAvailablePages()) {
        auto victim = std::find_if(
            running_.rbegin(), running_.rend(),
            [&](SequenceId other) { return other != id && !inStep(other); });
        if (victim == running_.rend()) {
          preempt(id);
          preemptedSelf = true;
          break;
        }
        preempt(*victim);
      }
      if (preemptedSelf)
        continue;
      addChunk(step, id, seq, chunk);
      tokenBudget -= chunk;
      --sequenceBudget;
    }
  }

  // Admission, first come first served, without preempting anyone.
  while (!waiting_.empty() && sequenceBudget > 0 && tokenBudget > 0) {
    SequenceId id = waiting_.front();
    Sequence &seq = sequences_.at(id);
    int64_t length = static_cast<int64_t>(seq.tokens.size());
    if (pagesForLength(length) > pool_.numPages()) {
      tooLong(id, length);
      continue;
    }
    StatusOr<int64_t> reused = pool_.addSequenceWithPrefix(id, seq.tokens);
    if (!reused.isOk()) {
      finish(id, FinishReason::kError, reused.status(), updates);
      continue;
    }
    int64_t chunk = std::min(length - *reused, tokenBudget);
    if (*pool_.pagesNeeded(id, chunk) > pool_.numAvailablePages()) {
      (void)pool_.release(id);
      break;
    }
    waiting_.pop_front();
    seq.numComputed = *reused;
    seq.running = true;
    running_.push_back(id);
    addChunk(step, id, seq, chunk);
    tokenBudget -= chunk;
    --sequenceBudget;
  }
  if (!step.rows.empty())
    pendingSerial_ = step.serial;
  return step;
}

StatusOr<std::vector<SequenceUpdate>>
Scheduler::complete(const Step &step, const float *logits, Sampler &sampler) {
  if (step.serial != pendingSerial_ || pendingSerial_ == 0)
    return makeError(StatusCode::kInvalidArgument, "scheduler: step ",
                     step.serial, " is not the step being run");
  std::vector<int32_t> tokens;
  std::vector<Status> errors;
  size_t vocab = static_cast<size_t>(limits_.vocabSize);
  for (const StepSequence &entry : step.sequences) {
    if (entry.logitsRow < 0)
      continue;
    const Sequence &seq = sequences_.at(entry.id);
    TokenHistory history{seq.tokens.data(), seq.tokens.size(),
                         seq.request.prompt.size()};
    StatusOr<SampledToken> sampled =
        sampler.sample(logits + tokens.size() * vocab, limits_.vocabSize,
                       seq.request.sampling, history);
    tokens.push_back(sampled.isOk() ? sampled->token : -1);
    errors.push_back(sampled.status().withPrefix(
        strCat("sequence ", entry.id, " at position ", seq.tokens.size())));
  }
  return apply(step, tokens, errors);
}

StatusOr<std::vector<SequenceUpdate>>
Scheduler::completeWithTokens(const Step &step,
                              const std::vector<int32_t> &tokens) {
  if (step.serial != pendingSerial_ || pendingSerial_ == 0)
    return makeError(StatusCode::kInvalidArgument, "scheduler: step ",
                     step.serial, " is not the step being run");
  if (tokens.size() != step.logitsRows.size())
    return makeError(StatusCode::kInvalidArgument, "scheduler: step ",
                     step.serial, " has ", step.logitsRows.size(),
                     " logits rows, but got ", tokens.size(), " tokens");
  for (int32_t token : tokens)
    if (token < 0 || token >= limits_.vocabSize)
      return makeError(StatusCode::kInvalidArgument, "scheduler: token ", token,
                       " is outside the vocabulary of ", limits_.vocabSize);
  return apply(step, tokens, std::vector<Status>(tokens.size()));
}

std::vector<SequenceUpdate>
Scheduler::apply(const Step &step, const std::vector<int32_t> &tokens,
                 const std::vector<Status> &errors) {
  pendingSerial_ = 0;
  std::vector<SequenceUpdate> updates;
  // The step has written its rows' K/V: their full pages may be shared now.
  for (const StepSequence &entry : step.sequences)
    (void)pool_.publishFullPages(entry.id);
  size_t k = 0;
  for (const StepSequence &entry : step.sequences) {
    if (entry.logitsRow < 0)
      continue;
    int32_t token = tokens[k];
    const Status &error = errors[k++];
    if (!error.isOk()) {
      finish(entry.id, FinishReason::kError, error, updates);
      continue;
    }
    Sequence &seq = sequences_.at(entry.id);
    seq.tokens.push_back(token);
    int64_t length = static_cast<int64_t>(seq.tokens.size());
    FinishReason reason =
        checkStop(seq.request.stop, token,
                  length - static_cast<int64_t>(seq.request.prompt.size()));
    if (reason == FinishReason::kNone && limits_.maxContextLength > 0 &&
        length >= limits_.maxContextLength)
      reason = FinishReason::kLength;
    if (reason != FinishReason::kNone)
      finish(entry.id, reason, Status::ok(), updates, token);
    else
      updates.push_back({entry.id, token, FinishReason::kNone, Status::ok()});
  }
  return updates;
}

} // namespace moec::runtime
