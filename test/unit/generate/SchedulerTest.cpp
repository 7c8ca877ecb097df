//===- SchedulerTest.cpp - Continuous batching and its threading contract -===//
//
// The scheduler driven by a fake model whose next token is a hash of the
// sequence so far (so outputs do not depend on batching): row layout,
// decode before prefill, chunked prefill, the limits, prefix reuse,
// preemption by recomputation, errors that touch one request only,
// cancellation, and adds/cancels from several threads while one thread
// drives the steps (run under TSan by scripts/sanitizers.sh).
//
//===----------------------------------------------------------------------===//

#include "runtime/generate/Scheduler.h"

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <random>
#include <thread>

using namespace moec::runtime;

namespace {

constexpr int64_t kVocab = 64;

int32_t fakeNextToken(const std::vector<int32_t> &tokens) {
  uint64_t h = 1469598103934665603ull;
  for (int32_t t : tokens)
    h = (h ^ static_cast<uint64_t>(t)) * 1099511628211ull;
  return static_cast<int32_t>((h >> 17) % kVocab);
}

std::unique_ptr<Scheduler> makeScheduler(int64_t pages, int64_t tokensPerPage,
                                         SchedulerLimits limits) {
  limits.vocabSize = kVocab;
  StatusOr<PagePool> pool =
      PagePool::create({tokensPerPage, 1, 1, pages * tokensPerPage});
  EXPECT_TRUE(pool.isOk());
  StatusOr<std::unique_ptr<Scheduler>> scheduler =
      Scheduler::create(std::move(pool).value(), limits);
  EXPECT_TRUE(scheduler.isOk()) << scheduler.status().toString();
  return std::move(scheduler).value();
}

GenerationRequest request(std::vector<int32_t> prompt, int64_t maxNewTokens) {
  GenerationRequest r;
  r.prompt = std::move(prompt);
  r.sampling.temperature = 0.0f;
  r.stop.maxNewTokens = maxNewTokens;
  return r;
}

std::vector<int32_t> iota(int32_t first, int64_t count) {
  std::vector<int32_t> v(count);
  for (int64_t i = 0; i < count; ++i)
    v[i] = (first + static_cast<int32_t>(i)) % kVocab;
  return v;
}

/// Drives a scheduler with the fake model, checking every step's rows
/// against its own copy of each sequence.
struct Driver {
  explicit Driver(Scheduler &scheduler) : scheduler(scheduler) {}

  Scheduler &scheduler;
  std::map<SequenceId, std::vector<int32_t>> tokens;
  std::map<SequenceId, std::vector<int32_t>> outputs;
  std::map<SequenceId, SequenceUpdate> finished;
  std::vector<Step> steps;

  SequenceId add(GenerationRequest r) {
    std::vector<int32_t> prompt = r.prompt;
    StatusOr<SequenceId> id = scheduler.add(std::move(r));
    EXPECT_TRUE(id.isOk()) << id.status().toString();
    tokens[*id] = prompt;
    return *id;
  }

  void record(const SequenceUpdate &u) {
    if (u.token >= 0) {
      tokens[u.id].push_back(u.token);
      outputs[u.id].push_back(u.token);
    }
    if (u.finish != FinishReason::kNone) {
      EXPECT_EQ(finished.count(u.id), 0u) << "sequence " << u.id;
      finished[u.id] = u;
    }
  }

  /// One step; false when there was nothing to run.
  bool step() {
    std::vector<SequenceUpdate> updates;
    StatusOr<Step> s = scheduler.schedule(updates);
    EXPECT_TRUE(s.isOk()) << s.status().toString();
    for (const SequenceUpdate &u : updates)
      record(u);
    if (s->rows.empty())
      return false;
    std::vector<int32_t> sampled;
    for (size_t slot = 0; slot < s->sequences.size(); ++slot) {
      const StepSequence &seq = s->sequences[slot];
      const std::vector<int32_t> &mine = tokens.at(seq.id);
      for (int64_t r = 0; r < seq.numRows; ++r) {
        const StepRow &row = s->rows[seq.firstRow + r];
        EXPECT_EQ(row.slot, static_cast<int32_t>(slot));
        EXPECT_EQ(row.position, seq.contextLength - seq.numRows + r);
        EXPECT_EQ(row.token, mine.at(row.position));
      }
      int64_t tpp = scheduler.pool().tokensPerPage();
      EXPECT_EQ(static_cast<int64_t>(seq.pages.size()),
                (seq.contextLength + tpp - 1) / tpp);
      bool last = seq.contextLength == static_cast<int64_t>(mine.size());
      EXPECT_EQ(seq.logitsRow >= 0, last);
      if (last) {
        EXPECT_EQ(seq.logitsRow, seq.firstRow + seq.numRows - 1);
        sampled.push_back(fakeNextToken(mine));
      }
    }
    EXPECT_EQ(sampled.size(), s->logitsRows.size());
    StatusOr<std::vector<SequenceUpdate>> done =
        scheduler.completeWithTokens(*s, sampled);
    EXPECT_TRUE(done.isOk()) << done.status().toString();
    for (const SequenceUpdate &u : *done)
      record(u);
    steps.push_back(std::move(s).value());
    return true;
  }

  void runToEnd() {
    for (int i = 0; i < 10000 && step(); ++i) {
    }
  }
};

/// The output of `r` generated alone in a large pool.
std::vector<int32_t> outputAlone(const GenerationRequest &r) {
  auto scheduler = makeScheduler(1000, 4, SchedulerLimits());
  Driver driver(*scheduler);
  SequenceId id = driver.add(r);
  driver.runToEnd();
  return driver.outputs[id];
}

} // namespace

TEST(SchedulerTest, DecodeRowsFirstThenPrefillChunks) {
  SchedulerLimits limits;
  limits.maxTokensPerStep = 6;
  auto scheduler = makeScheduler(64, 4, limits);
  Driver driver(*scheduler);
  SequenceId a = driver.add(request(iota(1, 5), 4));
  SequenceId b = driver.add(request(iota(9, 3), 4));
  ASSERT_TRUE(driver.step());
  const Step &first = driver.steps[0];
  ASSERT_EQ(first.rows.size(), 6u);
  ASSERT_EQ(first.sequences.size(), 2u);
  EXPECT_EQ(first.sequences[0].id, a);
  EXPECT_EQ(first.sequences[0].numRows, 5);
  EXPECT_EQ(first.sequences[1].id, b);
  EXPECT_EQ(first.sequences[1].numRows, 1);
  EXPECT_EQ(first.logitsRows, std::vector<int64_t>{4});

  ASSERT_TRUE(driver.step());
  const Step &second = driver.steps[1];
  ASSERT_EQ(second.rows.size(), 3u);
  // A's decode row, then the rest of B's prompt.
  EXPECT_EQ(second.sequences[0].id, a);
  EXPECT_EQ(second.rows[0].position, 5);
  EXPECT_EQ(second.sequences[1].id, b);
  EXPECT_EQ(second.rows[1].position, 1);
  EXPECT_EQ(second.logitsRows, (std::vector<int64_t>{0, 2}));
  driver.runToEnd();
  EXPECT_EQ(driver.outputs[a].size(), 4u);
  EXPECT_EQ(driver.finished[a].finish, FinishReason::kLength);
  EXPECT_EQ(driver.finished[b].finish, FinishReason::kLength);
  EXPECT_EQ(scheduler->numUnfinished(), 0);
}

TEST(SchedulerTest, ChunkedPrefillAsksForLogitsOnlyAtTheEnd) {
  SchedulerLimits limits;
  limits.maxTokensPerStep = 4;
  auto scheduler = makeScheduler(64, 4, limits);
  Driver driver(*scheduler);
  SequenceId id = driver.add(request(iota(3, 10), 2));
  driver.runToEnd();
  ASSERT_EQ(driver.steps.size(), 4u);
  EXPECT_EQ(driver.steps[0].rows.size(), 4u);
  EXPECT_TRUE(driver.steps[0].logitsRows.empty());
  EXPECT_EQ(driver.steps[1].rows.size(), 4u);
  EXPECT_TRUE(driver.steps[1].logitsRows.empty());
  EXPECT_EQ(driver.steps[2].rows.size(), 2u);
  EXPECT_EQ(driver.steps[2].logitsRows, std::vector<int64_t>{1});
  EXPECT_EQ(driver.outputs[id], outputAlone(request(iota(3, 10), 2)));
}

TEST(SchedulerTest, MaxSequencesPerStepIsHonoured) {
  SchedulerLimits limits;
  limits.maxSequencesPerStep = 2;
  auto scheduler = makeScheduler(64, 4, limits);
  Driver driver(*scheduler);
  for (int i = 0; i < 5; ++i)
    driver.add(request(iota(i, 3), 3));
  driver.runToEnd();
  for (const Step &step : driver.steps)
    EXPECT_LE(step.sequences.size(), 2u);
  EXPECT_EQ(driver.finished.size(), 5u);
}

TEST(SchedulerTest, CachedPrefixIsNotRecomputed) {
  auto scheduler = makeScheduler(64, 4, SchedulerLimits());
  Driver driver(*scheduler);
  driver.add(request(iota(5, 9), 1));
  driver.runToEnd();
  // The same 9-token prompt: its first two full pages come from the cache.
  SequenceId again = driver.add(request(iota(5, 9), 1));
  ASSERT_TRUE(driver.step());
  const Step &step = driver.steps.back();
  ASSERT_EQ(step.sequences.size(), 1u);
  EXPECT_EQ(step.sequences[0].id, again);
  EXPECT_EQ(step.rows.size(), 1u);
  EXPECT_EQ(step.rows[0].position, 8);
  driver.runToEnd();
  EXPECT_EQ(driver.outputs[again], outputAlone(request(iota(5, 9), 1)));
}

TEST(SchedulerTest, PreemptionByRecomputationGivesTheSameTokens) {
  // 6 pages of 4 tokens; three requests of 4 + 10 tokens need 4 pages each.
  auto scheduler = makeScheduler(6, 4, SchedulerLimits());
  Driver driver(*scheduler);
  std::vector<GenerationRequest> requests;
  std::vector<SequenceId> ids;
  for (int i = 0; i < 3; ++i) {
    requests.push_back(request(iota(10 * i, 4), 10));
    ids.push_back(driver.add(requests.back()));
  }
  driver.runToEnd();
  EXPECT_GT(scheduler->numPreemptions(), 0);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(driver.finished[ids[i]].finish, FinishReason::kLength);
    EXPECT_EQ(driver.outputs[ids[i]], outputAlone(requests[i]));
  }
  EXPECT_EQ(scheduler->pool().numSequences(), 0u);
  EXPECT_EQ(scheduler->pool().numAvailablePages(), 6);
}

TEST(SchedulerTest, RequestTooLargeForTheCacheFailsAloneWithAClearError) {
  auto scheduler = makeScheduler(4, 4, SchedulerLimits());
  Driver driver(*scheduler);
  SequenceId big = driver.add(request(iota(0, 20), 2));
  SequenceId grows = driver.add(request(iota(1, 10), 20));
  SequenceId small = driver.add(request(iota(2, 3), 3));
  driver.runToEnd();
  EXPECT_EQ(driver.finished[big].finish, FinishReason::kError);
  EXPECT_EQ(driver.finished[big].error.code(), StatusCode::kOutOfMemory);
  EXPECT_EQ(driver.finished[big].error.message(),
            "KV cache too small: sequence 1 needs 5 pages for 20 tokens, but "
            "the pool has 4 pages of 4 tokens");
  // Fails when its 17th token would need a fifth page, keeping its output.
  EXPECT_EQ(driver.finished[grows].finish, FinishReason::kError);
  EXPECT_EQ(driver.outputs[grows].size(), 7u);
  EXPECT_EQ(driver.finished[small].finish, FinishReason::kLength);
  EXPECT_EQ(driver.outputs[small], outputAlone(request(iota(2, 3), 3)));
}

TEST(SchedulerTest, CancelFreesPagesAndStopStops) {
  auto scheduler = makeScheduler(16, 4, SchedulerLimits());
  Driver driver(*scheduler);
  GenerationRequest eos = request(iota(0, 3), 50);
  std::vector<int32_t> alone = outputAlone(request(iota(0, 3), 4));
  // The fake model's third token ends it.
  eos.stop.eosTokenIds = {alone[2]};
  SequenceId stops = driver.add(eos);
  SequenceId cancelled = driver.add(request(iota(4, 6), 50));
  ASSERT_TRUE(driver.step());
  EXPECT_GT(
      scheduler->pool().numPages() - scheduler->pool().numAvailablePages(), 0);
  scheduler->cancel(cancelled);
  scheduler->cancel(12345);
  driver.runToEnd();
  EXPECT_EQ(driver.finished[cancelled].finish, FinishReason::kCancelled);
  EXPECT_EQ(driver.finished[stops].finish, FinishReason::kEos);
  EXPECT_EQ(driver.outputs[stops],
            std::vector<int32_t>(alone.begin(), alone.begin() + 3));
  EXPECT_EQ(scheduler->pool().numSequences(), 0u);
  EXPECT_EQ(scheduler->pool().numAvailablePages(), 16);
}

TEST(SchedulerTest, CompleteSamplesEachLogitsRow) {
  auto scheduler = makeScheduler(16, 4, SchedulerLimits());
  GenerationRequest greedy = request(iota(0, 2), 1);
  GenerationRequest sampled = request(iota(5, 3), 1);
  sampled.sampling.temperature = 1.0f;
  sampled.sampling.topK = 1;
  ASSERT_TRUE(scheduler->add(greedy).isOk());
  ASSERT_TRUE(scheduler->add(sampled).isOk());
  std::vector<SequenceUpdate> updates;
  StatusOr<Step> step = scheduler->schedule(updates);
  ASSERT_TRUE(step.isOk());
  ASSERT_EQ(step->logitsRows.size(), 2u);
  std::vector<float> logits(2 * kVocab, 0.0f);
  logits[17] = 5.0f;
  logits[kVocab + 33] = 4.0f;
  Sampler sampler;
  StatusOr<std::vector<SequenceUpdate>> done =
      scheduler->complete(*step, logits.data(), sampler);
  ASSERT_TRUE(done.isOk());
  ASSERT_EQ(done->size(), 2u);
  EXPECT_EQ((*done)[0].token, 17);
  EXPECT_EQ((*done)[1].token, 33);
  EXPECT_EQ((*done)[1].finish, FinishReason::kLength);
}

TEST(SchedulerTest, MisuseIsAnError) {
  auto scheduler = makeScheduler(16, 4, SchedulerLimits());
  EXPECT_EQ(scheduler->add(request({}, 1)).status().message(),
            "scheduler: the prompt is empty");
  EXPECT_EQ(scheduler->add(request({1, 64}, 1)).status().message(),
            "scheduler: prompt token 1 is 64, outside the vocabulary of 64");
  GenerationRequest bad = request({1}, 1);
  bad.sampling.topP = 2.0f;
  EXPECT_EQ(scheduler->add(bad).status().message(),
            "sampling: `top_p` must be in (0, 1], but got 2");
  ASSERT_TRUE(scheduler->add(request({1, 2}, 1)).isOk());
  std::vector<SequenceUpdate> updates;
  StatusOr<Step> step = scheduler->schedule(updates);
  ASSERT_TRUE(step.isOk());
  EXPECT_EQ(scheduler->schedule(updates).status().message(),
            "scheduler: step 1 was scheduled but not completed; call complete "
            "first");
  EXPECT_EQ(scheduler->completeWithTokens(*step, {}).status().message(),
            "scheduler: step 1 has 1 logits rows, but got 0 tokens");
  EXPECT_TRUE(scheduler->completeWithTokens(*step, {3}).isOk());
  EXPECT_FALSE(scheduler->completeWithTokens(*step, {3}).isOk());

  SchedulerLimits limits;
  limits.maxTokensPerStep = 0;
  limits.vocabSize = 8;
  StatusOr<std::unique_ptr<Scheduler>> none = Scheduler::create(
      std::move(PagePool::create({4, 1, 1, 16})).value(), limits);
  EXPECT_EQ(none.status().message(),
            "scheduler: `max_tokens_per_step` must be >= 1, but got 0");
}

// The threading contract: four threads add and cancel requests (their own
// and each other's) while this thread drives the steps. Every request ends
// exactly once, and the pool is empty at the end. Run under TSan by
// scripts/sanitizers.sh.
TEST(SchedulerTest, ConcurrentAddAndCancelWhileOneThreadDrives) {
  SchedulerLimits limits;
  limits.maxTokensPerStep = 16;
  limits.maxSequencesPerStep = 8;
  auto scheduler = makeScheduler(24, 4, limits);
  constexpr int kThreads = 4, kPerThread = 40;
  std::atomic<int> addersDone{0};
  std::vector<std::vector<SequenceId>> added(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      std::mt19937 rng(t);
      for (int i = 0; i < kPerThread; ++i) {
        StatusOr<SequenceId> id = scheduler->add(
            request(iota(static_cast<int32_t>(rng() % kVocab), 1 + rng() % 9),
                    1 + rng() % 12));
        if (!id.isOk())
          continue;
        added[t].push_back(*id);
        if (rng() % 3 == 0)
          scheduler->cancel(*id);
        // Ids of other threads' requests, possibly finished or unknown.
        if (rng() % 4 == 0)
          scheduler->cancel(static_cast<SequenceId>(rng() % 200));
        if (rng() % 8 == 0)
          std::this_thread::yield();
      }
      addersDone.fetch_add(1);
    });

  // The drive loop is a lambda so that a failed ASSERT still joins the
  // threads below. It runs until every adder is done and every request has
  // ended; the deadline only turns a hang into a failure. (A spin count was
  // used before: on a loaded 2-core CI machine the adders were descheduled
  // long enough for an idle driver to use up its spins and stop early.)
  std::map<SequenceId, int> ends;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(2);
  auto drive = [&] {
    for (;;) {
      ASSERT_LT(std::chrono::steady_clock::now(), deadline)
          << "the scheduler did not end every request";
      std::vector<SequenceUpdate> updates;
      StatusOr<Step> step = scheduler->schedule(updates);
      ASSERT_TRUE(step.isOk());
      std::vector<int32_t> sampled(step->logitsRows.size(), 1);
      if (!step->rows.empty()) {
        StatusOr<std::vector<SequenceUpdate>> done =
            scheduler->completeWithTokens(*step, sampled);
        ASSERT_TRUE(done.isOk());
        updates.insert(updates.end(), done->begin(), done->end());
      }
      for (const SequenceUpdate &u : updates) {
        ASSERT_NE(u.finish, FinishReason::kError) << u.error.toString();
        if (u.finish != FinishReason::kNone)
          ++ends[u.id];
      }
      if (addersDone.load() == kThreads && scheduler->numUnfinished() == 0)
        return;
      if (step->rows.empty())
        std::this_thread::yield();
    }
  };
  drive();
  for (std::thread &thread : threads)
    thread.join();
  int total = 0;
  for (const auto &ids : added)
    for (SequenceId id : ids) {
      EXPECT_EQ(ends[id], 1) << "request " << id;
      ++total;
    }
  EXPECT_EQ(total, kThreads * kPerThread);
  EXPECT_EQ(ends.size(), static_cast<size_t>(total));
  EXPECT_EQ(scheduler->numUnfinished(), 0);
  EXPECT_EQ(scheduler->pool().numSequences(), 0u);
  EXPECT_EQ(scheduler->pool().numAvailablePages(), 24);
}
