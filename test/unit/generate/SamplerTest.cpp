//===- SamplerTest.cpp - Sampling against a double-precision reference ----===//
//
// The logits processors compared with a straightforward double-precision
// implementation written from the HF / OpenAI definitions on random logits;
// greedy ties; seeded reproducibility; a chi-square test of the draw
// frequencies (with a check that it rejects a wrong distribution); logprobs;
// parameter validation; stop conditions.
//
//===----------------------------------------------------------------------===//

#include "runtime/generate/Sampler.h"
#include "runtime/generate/GenerationDefaults.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <set>

using namespace moec::runtime;

namespace {

constexpr double kNegInf = -INFINITY;

/// Softmax of `w`; -inf entries get probability 0.
std::vector<double> softmaxOf(const std::vector<double> &w) {
  double m = *std::max_element(w.begin(), w.end());
  std::vector<double> p(w.size());
  double z = 0;
  for (size_t i = 0; i < w.size(); ++i)
    z += p[i] = w[i] == kNegInf ? 0.0 : std::exp(w[i] - m);
  for (double &v : p)
    v /= z;
  return p;
}

/// The processed probabilities, from the definitions: HF repetition
/// penalty, OpenAI presence/frequency penalties, temperature, top-k (ties
/// kept), top-p (keep a token iff the mass strictly above it is < top_p),
/// min-p (p < min_p * p_max dropped).
std::vector<double> referenceProbabilities(const std::vector<float> &logits,
                                           const SamplingParams &params,
                                           const std::vector<int32_t> &tokens,
                                           size_t promptLength) {
  size_t vocab = logits.size();
  std::vector<double> w(logits.begin(), logits.end());
  std::set<int32_t> seen(tokens.begin(), tokens.end());
  for (int32_t t : seen)
    w[t] = w[t] < 0 ? w[t] * params.repetitionPenalty
                    : w[t] / params.repetitionPenalty;
  std::map<int32_t, int> counts;
  for (size_t i = promptLength; i < tokens.size(); ++i)
    ++counts[tokens[i]];
  for (auto [t, c] : counts)
    w[t] -= c * static_cast<double>(params.frequencyPenalty) +
            static_cast<double>(params.presencePenalty);
  if (params.temperature == 0.0f)
    return softmaxOf(w);
  for (double &v : w)
    v /= params.temperature;
  if (params.topK > 0 && static_cast<size_t>(params.topK) < vocab) {
    std::vector<double> sorted = w;
    std::sort(sorted.rbegin(), sorted.rend());
    double kth = sorted[params.topK - 1];
    for (double &v : w)
      if (v < kth)
        v = kNegInf;
  }
  if (params.topP < 1.0f) {
    std::vector<double> p = softmaxOf(w);
    std::vector<int32_t> order(vocab);
    for (size_t i = 0; i < vocab; ++i)
      order[i] = static_cast<int32_t>(i);
    std::stable_sort(order.begin(), order.end(),
                     [&](int32_t a, int32_t b) { return w[a] > w[b]; });
    double above = 0;
    for (size_t j = 0; j < vocab; ++j) {
      if (j > 0 && above >= params.topP)
        w[order[j]] = kNegInf;
      above += p[order[j]];
    }
  }
  if (params.minP > 0.0f) {
    std::vector<double> p = softmaxOf(w);
    double top = *std::max_element(p.begin(), p.end());
    for (size_t i = 0; i < vocab; ++i)
      if (p[i] < params.minP * top)
        w[i] = kNegInf;
  }
  return softmaxOf(w);
}

TokenHistory historyOf(const std::vector<int32_t> &tokens, size_t prompt) {
  return {tokens.data(), tokens.size(), prompt};
}

/// Pearson's chi-square of `counts` against `expected` probabilities over
/// the categories with non-zero expectation.
double chiSquare(const std::vector<int64_t> &counts,
                 const std::vector<double> &expected, int64_t draws) {
  double chi2 = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    if (expected[i] == 0)
      continue;
    double e = expected[i] * draws;
    chi2 += (counts[i] - e) * (counts[i] - e) / e;
  }
  return chi2;
}

} // namespace

TEST(SamplerTest, ProcessorsMatchDoublePrecisionReference) {
  std::mt19937 rng(1234);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  Sampler sampler;
  int filteredSomething = 0;
  for (int trial = 0; trial < 400; ++trial) {
    int vocab = std::uniform_int_distribution<int>(2, 400)(rng);
    std::vector<float> logits(vocab);
    for (float &v : logits)
      v = normal(rng);
    auto coin = [&] { return rng() % 2 == 0; };
    auto uniform = [&](double lo, double hi) {
      return static_cast<float>(
          std::uniform_real_distribution<double>(lo, hi)(rng));
    };
    SamplingParams params;
    params.temperature = trial % 7 == 0 ? 0.0f : uniform(0.2, 2.0);
    if (coin())
      params.topK = std::uniform_int_distribution<int>(1, vocab + 3)(rng);
    if (coin())
      params.topP = uniform(0.05, 1.0);
    if (coin())
      params.minP = uniform(0.0, 0.3);
    if (coin())
      params.repetitionPenalty = uniform(0.5, 2.0);
    if (coin())
      params.presencePenalty = uniform(-2.0, 2.0);
    if (coin())
      params.frequencyPenalty = uniform(-2.0, 2.0);
    std::vector<int32_t> tokens(std::uniform_int_distribution<int>(0, 30)(rng));
    for (int32_t &t : tokens)
      t = std::uniform_int_distribution<int32_t>(0, vocab - 1)(rng);
    size_t prompt =
        std::uniform_int_distribution<size_t>(0, tokens.size())(rng);

    StatusOr<const std::vector<double> *> processed = sampler.processLogits(
        logits.data(), vocab, params, historyOf(tokens, prompt));
    ASSERT_TRUE(processed.isOk()) << processed.status().toString();
    std::vector<double> got = softmaxOf(**processed);
    std::vector<double> want =
        referenceProbabilities(logits, params, tokens, prompt);
    for (int i = 0; i < vocab; ++i) {
      ASSERT_EQ(got[i] == 0.0, want[i] == 0.0)
          << "trial " << trial << ": token " << i << " kept differently";
      ASSERT_NEAR(got[i], want[i], 1e-12 + 1e-9 * want[i])
          << "trial " << trial << ": token " << i;
    }
    filteredSomething += std::count(want.begin(), want.end(), 0.0) > 0;
  }
  // The filters were exercised, not only the penalties.
  EXPECT_GT(filteredSomething, 100);
}

// Top-p sorts only a growing prefix of the vocabulary; a flat
// distribution over a large vocabulary makes it grow to the end.
TEST(SamplerTest, TopPOverALargeFlatVocabulary) {
  std::mt19937 rng(99);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  Sampler sampler;
  for (float topP : {0.3f, 0.9f, 0.999f}) {
    std::vector<float> logits(20000);
    for (float &v : logits)
      v = normal(rng);
    SamplingParams params;
    params.temperature = 4.0f;
    params.topP = topP;
    StatusOr<const std::vector<double> *> processed =
        sampler.processLogits(logits.data(), 20000, params, TokenHistory());
    ASSERT_TRUE(processed.isOk());
    std::vector<double> got = softmaxOf(**processed);
    std::vector<double> want = referenceProbabilities(logits, params, {}, 0);
    size_t kept = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_EQ(got[i] == 0.0, want[i] == 0.0)
          << "top_p " << topP << " token " << i;
      ASSERT_NEAR(got[i], want[i], 1e-12 + 1e-9 * want[i]);
      kept += want[i] > 0;
    }
    EXPECT_GT(kept, 256u) << "top_p " << topP;
  }
}

TEST(SamplerTest, GreedyIsArgmaxWithLowestIndexOnTies) {
  Sampler sampler;
  SamplingParams greedy;
  greedy.temperature = 0.0f;
  std::vector<float> logits = {0.5f, 2.0f, -1.0f, 2.0f, 2.0f, 1.9f};
  StatusOr<SampledToken> token =
      sampler.sample(logits.data(), 6, greedy, TokenHistory());
  ASSERT_TRUE(token.isOk());
  EXPECT_EQ(token->token, 1);
  // Greedy ignores the seed and the filters, but not the penalties:
  // penalizing token 1 leaves 3 as the first maximum.
  greedy.seed = 99;
  greedy.topK = 1;
  greedy.repetitionPenalty = 1.5f;
  std::vector<int32_t> seen = {1};
  token = sampler.sample(logits.data(), 6, greedy, historyOf(seen, 1));
  ASSERT_TRUE(token.isOk());
  EXPECT_EQ(token->token, 3);
}

TEST(SamplerTest, SeedMakesDrawsReproducibleWhateverElseIsSampled) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> logits(50);
  for (float &v : logits)
    v = normal(rng);
  SamplingParams params;
  params.temperature = 1.3f;
  params.seed = 42;
  std::vector<int32_t> history = {3, 4, 5};

  auto draw = [&](Sampler &sampler, size_t generated) {
    std::vector<int32_t> tokens(history.begin(), history.end());
    tokens.resize(history.size() + generated, 7);
    return sampler.sample(logits.data(), 50, params, historyOf(tokens, 3))
        ->token;
  };
  Sampler a, b;
  std::vector<int32_t> alone, interleaved;
  for (size_t step = 0; step < 64; ++step)
    alone.push_back(draw(a, step));
  SamplingParams other = params;
  for (size_t step = 0; step < 64; ++step) {
    // Other requests sampled by the same sampler in between.
    other.seed = step * 31 + 5;
    (void)b.sample(logits.data(), 50, other, historyOf(history, 3));
    interleaved.push_back(draw(b, step));
  }
  EXPECT_EQ(alone, interleaved);
  // Another seed gives another stream.
  params.seed = 43;
  std::vector<int32_t> otherSeed;
  for (size_t step = 0; step < 64; ++step)
    otherSeed.push_back(draw(a, step));
  EXPECT_NE(alone, otherSeed);
}

TEST(SamplerTest, DrawFrequenciesPassChiSquare) {
  // Ten tokens; temperature, top-k, top-p and min-p all active.
  std::vector<float> logits = {1.0f,  0.2f, -0.5f, 2.0f, 1.5f,
                               -3.0f, 0.9f, 1.1f,  0.0f, -1.0f};
  SamplingParams params;
  params.temperature = 0.8f;
  params.topK = 8;
  params.topP = 0.95f;
  params.minP = 0.03f;
  std::vector<double> expected = referenceProbabilities(logits, params, {}, 0);
  int kept = std::count_if(expected.begin(), expected.end(),
                           [](double p) { return p > 0; });
  ASSERT_GE(kept, 5);
  ASSERT_LT(kept, 10);

  constexpr int64_t kDraws = 40000;
  std::vector<int64_t> counts(10, 0);
  Sampler sampler;
  for (int64_t i = 0; i < kDraws; ++i) {
    params.seed = static_cast<uint64_t>(i);
    ++counts[sampler.sample(logits.data(), 10, params, TokenHistory())->token];
  }
  for (int i = 0; i < 10; ++i)
    if (expected[i] == 0) {
      EXPECT_EQ(counts[i], 0) << "filtered token " << i << " was drawn";
    }
  // 99.9% quantile of chi-square with `kept - 1` <= 8 degrees of freedom.
  double bound = 26.12;
  EXPECT_LT(chiSquare(counts, expected, kDraws), bound);
  // The same counts are far outside the bound for the distribution without
  // temperature: the test can tell a wrong sampler.
  SamplingParams noTemperature = params;
  noTemperature.temperature = 1.0f;
  EXPECT_GT(chiSquare(counts,
                      referenceProbabilities(logits, noTemperature, {}, 0),
                      kDraws),
            10 * bound);
}

TEST(SamplerTest, CounterUniformIsUniformOverCounters) {
  constexpr int kBins = 100;
  constexpr int64_t kDraws = 200000;
  std::vector<int64_t> counts(kBins, 0);
  for (int64_t i = 0; i < kDraws; ++i) {
    double u = counterUniform(12345, static_cast<uint64_t>(i));
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    ++counts[static_cast<int>(u * kBins)];
  }
  // 99.9% quantile of chi-square with 99 degrees of freedom.
  EXPECT_LT(chiSquare(counts, std::vector<double>(kBins, 1.0 / kBins), kDraws),
            148.23);
}

TEST(SamplerTest, LogprobsOfProcessedAndRawDistributions) {
  std::vector<float> logits = {0.1f, 3.0f, 2.5f, -1.0f, 2.9f, 0.0f};
  SamplingParams params;
  params.topK = 2;
  params.topLogprobs = 4;
  params.seed = 3;
  Sampler sampler;
  StatusOr<SampledToken> token =
      sampler.sample(logits.data(), 6, params, TokenHistory());
  ASSERT_TRUE(token.isOk());
  std::vector<double> p = referenceProbabilities(logits, params, {}, 0);
  EXPECT_NEAR(token->logprob, std::log(p[token->token]), 1e-12);
  // Only the two tokens top-k keeps have a probability.
  ASSERT_EQ(token->top.size(), 2u);
  EXPECT_EQ(token->top[0].token, 1);
  EXPECT_EQ(token->top[1].token, 4);
  EXPECT_NEAR(token->top[0].logprob, std::log(p[1]), 1e-12);

  params.logprobsMode = LogprobsMode::kRaw;
  token = sampler.sample(logits.data(), 6, params, TokenHistory());
  ASSERT_TRUE(token.isOk());
  SamplingParams plain;
  std::vector<double> raw = referenceProbabilities(logits, plain, {}, 0);
  ASSERT_EQ(token->top.size(), 4u);
  int32_t order[] = {1, 4, 2, 0};
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(token->top[i].token, order[i]);
    EXPECT_NEAR(token->top[i].logprob, std::log(raw[order[i]]), 1e-12);
  }
}

TEST(SamplerTest, InvalidParametersNameTheField) {
  struct Case {
    void (*set)(SamplingParams &);
    const char *message;
  };
  const Case cases[] = {
      {[](SamplingParams &p) { p.temperature = -0.5f; },
       "sampling: `temperature` must be finite and >= 0, but got -0.5"},
      {[](SamplingParams &p) { p.temperature = NAN; }, "`temperature`"},
      {[](SamplingParams &p) { p.topK = -1; },
       "sampling: `top_k` must be >= 0 (0 is off), but got -1"},
      {[](SamplingParams &p) { p.topP = 0.0f; },
       "sampling: `top_p` must be in (0, 1], but got 0"},
      {[](SamplingParams &p) { p.topP = 1.5f; }, "`top_p`"},
      {[](SamplingParams &p) { p.minP = 1.5f; },
       "sampling: `min_p` must be in [0, 1], but got 1.5"},
      {[](SamplingParams &p) { p.repetitionPenalty = 0.0f; },
       "sampling: `repetition_penalty` must be finite and > 0, but got 0"},
      {[](SamplingParams &p) { p.presencePenalty = 2.5f; },
       "sampling: `presence_penalty` must be in [-2, 2], but got 2.5"},
      {[](SamplingParams &p) { p.frequencyPenalty = -3.0f; },
       "sampling: `frequency_penalty` must be in [-2, 2], but got -3"},
      {[](SamplingParams &p) { p.topLogprobs = 21; },
       "sampling: `top_logprobs` must be in [0, 20], but got 21"},
  };
  for (const Case &c : cases) {
    SamplingParams params;
    c.set(params);
    Status status = validateSamplingParams(params, 10);
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(status.message().find(c.message), std::string::npos)
        << status.message();
  }
  EXPECT_TRUE(validateSamplingParams(SamplingParams(), 10).isOk());

  Sampler sampler;
  std::vector<float> logits = {0.0f, NAN, 1.0f};
  StatusOr<SampledToken> bad =
      sampler.sample(logits.data(), 3, SamplingParams(), TokenHistory());
  EXPECT_EQ(bad.status().message(), "sampling: logit of token 1 is nan");
  std::vector<int32_t> outside = {5};
  logits[1] = 0.0f;
  bad =
      sampler.sample(logits.data(), 3, SamplingParams(), historyOf(outside, 1));
  EXPECT_EQ(bad.status().message(),
            "sampling: token 5 at position 0 of the history is outside the "
            "vocabulary of 3");
}

TEST(SamplerTest, StopConditions) {
  StopConditions stop;
  stop.eosTokenIds = {2, 7};
  stop.stopTokenIds = {5};
  stop.maxNewTokens = 4;
  EXPECT_EQ(checkStop(stop, 7, 1), FinishReason::kEos);
  EXPECT_EQ(checkStop(stop, 5, 1), FinishReason::kStopToken);
  EXPECT_EQ(checkStop(stop, 3, 3), FinishReason::kNone);
  EXPECT_EQ(checkStop(stop, 3, 4), FinishReason::kLength);
  // EOS wins over the length when both apply.
  EXPECT_EQ(checkStop(stop, 2, 4), FinishReason::kEos);
  stop.ignoreEos = true;
  EXPECT_EQ(checkStop(stop, 2, 1), FinishReason::kNone);
  EXPECT_EQ(checkStop(stop, 5, 1), FinishReason::kStopToken);

  EXPECT_TRUE(validateStopConditions(stop, 8).isOk());
  EXPECT_EQ(validateStopConditions(stop, 7).message(),
            "stop: `eos_token_id` 7 is outside the vocabulary of 7");
  stop.maxNewTokens = 0;
  EXPECT_EQ(validateStopConditions(stop, 8).message(),
            "stop: `max_new_tokens` must be >= 1, but got 0");
}

// The request defaults from an artifact's generation facts follow HF
// `generate`: greedy unless `do_sample`, HF's top_k of 50 when sampling
// without one, the EOS ids as stop conditions.
TEST(GenerationDefaultsTest, FollowHfGenerate) {
  auto defaultsOf = [](const manifest::GenerationT &g) {
    flatbuffers::FlatBufferBuilder fbb;
    fbb.Finish(manifest::Generation::Pack(fbb, &g));
    return getGenerationDefaults(
        flatbuffers::GetRoot<manifest::Generation>(fbb.GetBufferPointer()));
  };
  GenerationDefaults none = getGenerationDefaults(nullptr);
  EXPECT_EQ(none.sampling.temperature, 0.0f);
  EXPECT_TRUE(none.stop.eosTokenIds.empty());

  manifest::GenerationT g;
  g.eos_token_ids = {2, 7};
  g.temperature = 0.6;
  g.repetition_penalty = 1.1;
  GenerationDefaults greedy = defaultsOf(g);
  EXPECT_EQ(greedy.sampling.temperature, 0.0f);
  EXPECT_EQ(greedy.sampling.topK, 0);
  EXPECT_FLOAT_EQ(greedy.sampling.repetitionPenalty, 1.1f);
  EXPECT_EQ(greedy.stop.eosTokenIds, (std::vector<int32_t>{2, 7}));
  EXPECT_FALSE(greedy.stop.ignoreEos);

  g.do_sample = true;
  GenerationDefaults sampled = defaultsOf(g);
  EXPECT_FLOAT_EQ(sampled.sampling.temperature, 0.6f);
  EXPECT_EQ(sampled.sampling.topK, kHfDefaultTopK);
  EXPECT_EQ(sampled.sampling.topP, 1.0f);
  g.top_k = 20;
  g.top_p = 0.95;
  sampled = defaultsOf(g);
  EXPECT_EQ(sampled.sampling.topK, 20);
  EXPECT_FLOAT_EQ(sampled.sampling.topP, 0.95f);
  EXPECT_TRUE(validateSamplingParams(sampled.sampling, 8).isOk());
}
