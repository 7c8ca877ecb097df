//===- Sampler.cpp - Host-side token sampling and stop conditions ---------===//
//
// The logits processors, the counter-based draw, logprobs and the stop
// checks of Sampler.h. Everything after reading the f32 logits is double
// precision, so that top-p and min-p cut where a double-precision
// reference does.
//
//===----------------------------------------------------------------------===//

#include "runtime/generate/Sampler.h"
#include "runtime/generate/Mix.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace moec::runtime {

namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

Status invalid(const char *field, double value, const char *expected) {
  return makeError(StatusCode::kInvalidArgument, "sampling: `", field,
                   "` must be ", expected, ", but got ", value);
}

/// log(sum(exp(w))) over the finite entries of `w`, and their maximum.
double logSumExp(const std::vector<double> &w, double *maxOut) {
  double maxValue = kNegInf;
  for (double v : w)
    maxValue = std::max(maxValue, v);
  double sum = 0.0;
  for (double v : w)
    if (v != kNegInf)
      sum += std::exp(v - maxValue);
  *maxOut = maxValue;
  return maxValue + std::log(sum);
}

/// The `n` largest entries of `logprob` (finite only), largest first and
/// lower id first on ties.
std::vector<TokenLogprob> topEntries(const std::vector<double> &logprob,
                                     int32_t n, std::vector<int32_t> &order) {
  order.clear();
  for (size_t i = 0; i < logprob.size(); ++i)
    if (logprob[i] != kNegInf)
      order.push_back(static_cast<int32_t>(i));
  auto before = [&](int32_t a, int32_t b) {
    return logprob[a] > logprob[b] || (logprob[a] == logprob[b] && a < b);
  };
  size_t count = std::min(order.size(), static_cast<size_t>(n));
  std::partial_sort(order.begin(), order.begin() + count, order.end(), before);
  std::vector<TokenLogprob> top;
  for (size_t i = 0; i < count; ++i)
    top.push_back({order[i], logprob[order[i]]});
  return top;
}

} // namespace

double counterUniform(uint64_t seed, uint64_t counter) {
  uint64_t bits = splitmix64(splitmix64(seed) ^ splitmix64(~counter));
  return static_cast<double>(bits >> 11) * 0x1.0p-53;
}

Status validateSamplingParams(const SamplingParams &params, int64_t vocabSize) {
  if (vocabSize <= 0 || vocabSize > std::numeric_limits<int32_t>::max())
    return makeError(StatusCode::kInvalidArgument,
                     "sampling: vocabulary size must be in [1, 2^31), but "
                     "got ",
                     vocabSize);
  // Written so that NaN fails every check.
  if (!(params.temperature >= 0.0f && std::isfinite(params.temperature)))
    return invalid("temperature", params.temperature, "finite and >= 0");
  if (params.topK < 0)
    return invalid("top_k", params.topK, ">= 0 (0 is off)");
  if (!(params.topP > 0.0f && params.topP <= 1.0f))
    return invalid("top_p", params.topP, "in (0, 1]");
  if (!(params.minP >= 0.0f && params.minP <= 1.0f))
    return invalid("min_p", params.minP, "in [0, 1]");
  if (!(params.repetitionPenalty > 0.0f &&
        std::isfinite(params.repetitionPenalty)))
    return invalid("repetition_penalty", params.repetitionPenalty,
                   "finite and > 0");
  if (!(params.presencePenalty >= -2.0f && params.presencePenalty <= 2.0f))
    return invalid("presence_penalty", params.presencePenalty, "in [-2, 2]");
  if (!(params.frequencyPenalty >= -2.0f && params.frequencyPenalty <= 2.0f))
    return invalid("frequency_penalty", params.frequencyPenalty, "in [-2, 2]");
  if (params.topLogprobs < 0 || params.topLogprobs > kMaxTopLogprobs)
    return invalid("top_logprobs", params.topLogprobs, "in [0, 20]");
  return Status::ok();
}

StatusOr<const std::vector<double> *>
Sampler::processLogits(const float *logits, int64_t vocabSize,
                       const SamplingParams &params,
                       const TokenHistory &history) {
  MOEC_RETURN_IF_ERROR(validateSamplingParams(params, vocabSize));
  if (history.promptLength > history.size)
    return makeError(StatusCode::kInvalidArgument, "sampling: prompt length ",
                     history.promptLength, " exceeds the history's ",
                     history.size, " tokens");
  size_t vocab = static_cast<size_t>(vocabSize);
  work_.resize(vocab);
  for (size_t i = 0; i < vocab; ++i) {
    // -inf is a masked token; NaN and +inf mean the model is broken.
    if (std::isnan(logits[i]) || logits[i] == INFINITY)
      return makeError(StatusCode::kInvalidArgument,
                       "sampling: logit of token ", i, " is ", logits[i]);
    work_[i] = logits[i];
  }
  for (size_t i = 0; i < history.size; ++i)
    if (history.tokens[i] < 0 ||
        static_cast<size_t>(history.tokens[i]) >= vocab)
      return makeError(StatusCode::kInvalidArgument, "sampling: token ",
                       history.tokens[i], " at position ", i,
                       " of the history is outside the vocabulary of ", vocab);

  // Penalties. The scratch arrays are all-zero between calls; only the
  // entries of the history's tokens are touched and reset.
  penalized_.resize(vocab, 0);
  outputCount_.resize(vocab, 0);
  if (params.repetitionPenalty != 1.0f) {
    double penalty = params.repetitionPenalty;
    for (size_t i = 0; i < history.size; ++i) {
      int32_t t = history.tokens[i];
      if (penalized_[t])
        continue;
      penalized_[t] = 1;
      work_[t] = work_[t] < 0 ? work_[t] * penalty : work_[t] / penalty;
    }
    for (size_t i = 0; i < history.size; ++i)
      penalized_[history.tokens[i]] = 0;
  }
  if (params.frequencyPenalty != 0.0f || params.presencePenalty != 0.0f) {
    for (size_t i = history.promptLength; i < history.size; ++i)
      ++outputCount_[history.tokens[i]];
    for (size_t i = history.promptLength; i < history.size; ++i) {
      int32_t t = history.tokens[i];
      if (outputCount_[t] == 0)
        continue;
      work_[t] -=
          outputCount_[t] * static_cast<double>(params.frequencyPenalty) +
          static_cast<double>(params.presencePenalty);
      outputCount_[t] = 0;
    }
  }
  if (params.temperature == 0.0f)
    return &work_;

  if (params.temperature != 1.0f)
    for (double &v : work_)
      v /= static_cast<double>(params.temperature);

  // Top-k: everything below the k-th largest value goes (HF keeps ties).
  if (params.topK > 0 && static_cast<size_t>(params.topK) < vocab) {
    scratch_ = work_;
    std::nth_element(scratch_.begin(), scratch_.begin() + (params.topK - 1),
                     scratch_.end(), std::greater<double>());
    double threshold = scratch_[params.topK - 1];
    for (double &v : work_)
      if (v < threshold)
        v = kNegInf;
  }

  // Top-p: keep the most probable tokens, in the order "larger logit
  // first, lower id first on ties", while the mass strictly above each is
  // < top_p (HF's "ascending cumulative probability <= 1 - top_p is
  // dropped", summed from the top). Only a prefix of the order is sorted:
  // it grows until its mass reaches top_p, so a 150k vocabulary costs a
  // partial sort of a few hundred tokens, not a full sort.
  if (params.topP < 1.0f) {
    order_.clear();
    for (size_t i = 0; i < vocab; ++i)
      if (work_[i] != kNegInf)
        order_.push_back(static_cast<int32_t>(i));
    double maxValue;
    double logZ = logSumExp(work_, &maxValue);
    double topP = params.topP;
    auto before = [&](int32_t a, int32_t b) {
      return work_[a] > work_[b] || (work_[a] == work_[b] && a < b);
    };
    size_t n = order_.size();
    size_t sorted = std::min<size_t>(n, 256);
    while (true) {
      std::partial_sort(order_.begin(), order_.begin() + sorted, order_.end(),
                        before);
      double mass = 0.0;
      for (size_t j = 0; j < sorted; ++j)
        mass += std::exp(work_[order_[j]] - logZ);
      if (mass >= topP || sorted == n)
        break;
      sorted = std::min(n, sorted * 8);
    }
    double above = 0.0;
    size_t keep = 0;
    for (; keep < sorted && (keep == 0 || above < topP); ++keep)
      above += std::exp(work_[order_[keep]] - logZ);
    for (size_t j = keep; j < n; ++j)
      work_[order_[j]] = kNegInf;
  }

  // Min-p: p_i < min_p * p_max, i.e. exp(w_i - w_max) < min_p.
  if (params.minP > 0.0f) {
    double maxValue = *std::max_element(work_.begin(), work_.end());
    double minP = params.minP;
    for (double &v : work_)
      if (v != kNegInf && std::exp(v - maxValue) < minP)
        v = kNegInf;
  }
  return &work_;
}

StatusOr<SampledToken> Sampler::sample(const float *logits, int64_t vocabSize,
                                       const SamplingParams &params,
                                       const TokenHistory &history) {
  MOEC_ASSIGN_OR_RETURN(const std::vector<double> *processed,
                        processLogits(logits, vocabSize, params, history));
  const std::vector<double> &w = *processed;
  double maxValue;
  double logZ = logSumExp(w, &maxValue);
  if (maxValue == kNegInf)
    return makeError(StatusCode::kInvalidArgument,
                     "sampling: every token has probability 0 (all logits "
                     "are -inf)");

  SampledToken result;
  if (params.temperature == 0.0f) {
    // max_element returns the first maximum: the lowest id on ties.
    result.token =
        static_cast<int32_t>(std::max_element(w.begin(), w.end()) - w.begin());
  } else {
    uint64_t step = history.size - history.promptLength;
    double target =
        counterUniform(params.seed, step) * std::exp(logZ - maxValue);
    double cumulative = 0.0;
    int32_t last = -1;
    result.token = -1;
    for (size_t i = 0; i < w.size(); ++i) {
      if (w[i] == kNegInf)
        continue;
      last = static_cast<int32_t>(i);
      cumulative += std::exp(w[i] - maxValue);
      if (cumulative > target) {
        result.token = last;
        break;
      }
    }
    // Rounding can leave the target just above the total.
    if (result.token < 0)
      result.token = last;
  }

  // Logprobs: the chosen token's always, the full log-softmax (in
  // `scratch_`) only when top entries are asked for.
  double logNormalizer = logZ;
  const double *source = w.data();
  if (params.logprobsMode == LogprobsMode::kRaw) {
    scratch_.assign(logits, logits + w.size());
    double rawMax;
    logNormalizer = logSumExp(scratch_, &rawMax);
    source = scratch_.data();
  }
  result.logprob = source[result.token] - logNormalizer;
  if (params.topLogprobs > 0) {
    scratch_.resize(w.size());
    for (size_t i = 0; i < w.size(); ++i)
      scratch_[i] = source[i] - logNormalizer;
    result.top = topEntries(scratch_, params.topLogprobs, order_);
  }
  return result;
}

//===----------------------------------------------------------------------===//
// Stop conditions
//===----------------------------------------------------------------------===//

const char *finishReasonName(FinishReason reason) {
  switch (reason) {
  case FinishReason::kNone:
    return "none";
  case FinishReason::kEos:
    return "eos";
  case FinishReason::kStopToken:
    return "stop_token";
  case FinishReason::kLength:
    return "length";
  case FinishReason::kCancelled:
    return "cancelled";
  case FinishReason::kError:
    return "error";
  }
  return "unknown";
}

Status validateStopConditions(const StopConditions &stop, int64_t vocabSize) {
  if (stop.maxNewTokens < 1)
    return makeError(StatusCode::kInvalidArgument,
                     "stop: `max_new_tokens` must be >= 1, but got ",
                     stop.maxNewTokens);
  for (const auto *ids : {&stop.eosTokenIds, &stop.stopTokenIds})
    for (int32_t id : *ids)
      if (id < 0 || id >= vocabSize)
        return makeError(StatusCode::kInvalidArgument, "stop: `",
                         ids == &stop.eosTokenIds ? "eos_token_id"
                                                  : "stop_token_ids",
                         "` ", id, " is outside the vocabulary of ", vocabSize);
  return Status::ok();
}

FinishReason checkStop(const StopConditions &stop, int32_t token,
                       int64_t numGenerated) {
  auto contains = [token](const std::vector<int32_t> &ids) {
    return std::find(ids.begin(), ids.end(), token) != ids.end();
  };
  if (!stop.ignoreEos && contains(stop.eosTokenIds))
    return FinishReason::kEos;
  if (contains(stop.stopTokenIds))
    return FinishReason::kStopToken;
  if (numGenerated >= stop.maxNewTokens)
    return FinishReason::kLength;
  return FinishReason::kNone;
}

} // namespace moec::runtime
