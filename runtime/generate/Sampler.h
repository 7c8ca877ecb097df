//===- Sampler.h - Host-side token sampling and stop conditions -*- C++ -*-===//
//
// Turns one row of f32 logits into the next token of one request: the
// logits processors (penalties, temperature, top-k, top-p, min-p) in the
// order HF `generate` applies them, a draw from a per-request counter-based
// random stream, top-n logprobs, and the stop conditions. Sampling runs on
// the host for every target (docs/generation.md says why).
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_RUNTIME_GENERATE_SAMPLER_H
#define MOEC_RUNTIME_GENERATE_SAMPLER_H

#include "runtime/support/Status.h"

#include <cstddef>
#include <cstdint>
#include <vector>

namespace moec::runtime {

/// Which distribution top-n logprobs and the sampled token's logprob come
/// from.
enum class LogprobsMode {
  /// The distribution the token was drawn from: after every processor,
  /// filtered tokens excluded (greedy: after the penalties only).
  kProcessed,
  /// The model's own distribution: log-softmax of the raw logits.
  kRaw,
};

/// How one request picks its tokens. The defaults sample from the model's
/// distribution unchanged; `temperature = 0` is greedy.
struct SamplingParams {
  /// Divides the logits; 0 means greedy (argmax, lowest index on ties).
  float temperature = 1.0f;
  /// Keeps the `topK` largest logits (ties at the k-th value all kept); 0 is
  /// off.
  int32_t topK = 0;
  /// Keeps the smallest set of most probable tokens whose mass reaches
  /// `topP` (HF `TopPLogitsWarper`); 1 is off.
  float topP = 1.0f;
  /// Drops tokens less probable than `minP` times the most probable one; 0
  /// is off.
  float minP = 0.0f;
  /// HF repetition penalty over prompt and output tokens: a positive logit
  /// is divided by it, a negative one multiplied; 1 is off.
  float repetitionPenalty = 1.0f;
  /// OpenAI presence penalty, subtracted once from every token generated at
  /// least once; in [-2, 2].
  float presencePenalty = 0.0f;
  /// OpenAI frequency penalty, subtracted once per occurrence in the output;
  /// in [-2, 2].
  float frequencyPenalty = 0.0f;
  /// How many most probable tokens to report with their logprobs (0..20).
  int32_t topLogprobs = 0;
  /// Which distribution the logprobs describe.
  LogprobsMode logprobsMode = LogprobsMode::kProcessed;
  /// The request's seed: draw i of the request is a function of (seed, i)
  /// alone, so it does not depend on the batch or the thread.
  uint64_t seed = 0;
};

/// The largest `topLogprobs` accepted (OpenAI's and vLLM's default limit).
constexpr int32_t kMaxTopLogprobs = 20;

/// Checks `params` for a vocabulary of `vocabSize` tokens; the error names
/// the field and its value.
Status validateSamplingParams(const SamplingParams &params, int64_t vocabSize);

/// A token with its log-probability.
struct TokenLogprob {
  /// Token id.
  int32_t token = 0;
  /// Natural-log probability under the distribution `LogprobsMode` names.
  double logprob = 0.0;
};

/// What one draw produced.
struct SampledToken {
  /// The chosen token.
  int32_t token = 0;
  /// Its logprob (see `SamplingParams::logprobsMode`).
  double logprob = 0.0;
  /// The `topLogprobs` most probable tokens, most probable first (lower id
  /// first on ties); tokens of probability 0 are left out, so there may be
  /// fewer.
  std::vector<TokenLogprob> top;
};

/// The tokens a request has seen so far: `tokens[0, promptLength)` is the
/// prompt, the rest its output. The number of output tokens is the index of
/// the next draw in the request's random stream.
struct TokenHistory {
  /// Prompt followed by the generated tokens.
  const int32_t *tokens = nullptr;
  /// Length of `tokens`.
  size_t size = 0;
  /// How many of `tokens` are prompt.
  size_t promptLength = 0;
};

/// A uniform double in [0, 1) that depends only on (`seed`, `counter`):
/// splitmix64 of the seed's mix xor the counter's mix, top 53 bits.
double counterUniform(uint64_t seed, uint64_t counter);

/// Samples tokens from logits. Holds scratch buffers sized to the
/// vocabulary, so keep one per driving thread; not thread-safe.
class Sampler {
public:
  /// Applies the processors to `logits` (`vocabSize` values) in the order
  /// repetition penalty, frequency and presence penalties, temperature,
  /// top-k, top-p, min-p, and returns the processed logits in double
  /// precision (filtered tokens are -inf). Greedy stops after the
  /// penalties. The reference stays valid until the next call.
  StatusOr<const std::vector<double> *>
  processLogits(const float *logits, int64_t vocabSize,
                const SamplingParams &params, const TokenHistory &history);

  /// Processes `logits` and draws the next token: greedy takes the argmax
  /// (lowest id on ties), otherwise the inverse CDF in id order at
  /// `counterUniform(params.seed, output length)`.
  StatusOr<SampledToken> sample(const float *logits, int64_t vocabSize,
                                const SamplingParams &params,
                                const TokenHistory &history);

private:
  std::vector<double> work_;
  std::vector<double> scratch_;
  std::vector<int32_t> order_;
  std::vector<int32_t> outputCount_;
  std::vector<uint8_t> penalized_;
};

//===----------------------------------------------------------------------===//
// Stop conditions
//===----------------------------------------------------------------------===//

/// Why a sequence stopped, if it did.
enum class FinishReason {
  /// Still generating.
  kNone,
  /// It generated one of the EOS ids.
  kEos,
  /// It generated one of the extra stop tokens.
  kStopToken,
  /// It reached `maxNewTokens` or the context limit.
  kLength,
  /// Its request was cancelled.
  kCancelled,
  /// It failed (the update's status says why); other sequences go on.
  kError,
};

/// Returns "eos", "stop_token", "length", "cancelled", "error" or "none".
const char *finishReasonName(FinishReason reason);

/// When a request stops.
struct StopConditions {
  /// End-of-sequence ids (`generation_config.json`'s `eos_token_id`).
  std::vector<int32_t> eosTokenIds;
  /// Further tokens that end the request (OpenAI `stop_token_ids`).
  std::vector<int32_t> stopTokenIds;
  /// The most tokens to generate; at least 1.
  int64_t maxNewTokens = 16;
  /// Keep generating through EOS ids (stop tokens still stop).
  bool ignoreEos = false;
};

/// Checks the ids against `vocabSize` and that `maxNewTokens` >= 1.
Status validateStopConditions(const StopConditions &stop, int64_t vocabSize);

/// Whether a request that just generated `token`, its `numGenerated`-th
/// (counting it), stops. EOS is checked first, then stop tokens, then the
/// length, as vLLM does; the stopping token is part of the output.
FinishReason checkStop(const StopConditions &stop, int32_t token,
                       int64_t numGenerated);

} // namespace moec::runtime

#endif // MOEC_RUNTIME_GENERATE_SAMPLER_H
