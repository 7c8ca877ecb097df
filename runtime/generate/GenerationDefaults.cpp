//===- GenerationDefaults.cpp - Request defaults from an artifact -*- C++
//-*-===//
//
// Maps the manifest's `generation` table to `SamplingParams` and
// `StopConditions` with HF `generate`'s defaults.
//
//===----------------------------------------------------------------------===//

#include "runtime/generate/GenerationDefaults.h"

namespace moec::runtime {

GenerationDefaults
getGenerationDefaults(const manifest::Generation *generation) {
  GenerationDefaults defaults;
  defaults.sampling.temperature = 0.0f;
  if (!generation)
    return defaults;
  for (int64_t id : *generation->eos_token_ids())
    defaults.stop.eosTokenIds.push_back(int32_t(id));
  if (generation->repetition_penalty())
    defaults.sampling.repetitionPenalty =
        float(*generation->repetition_penalty());
  if (!generation->do_sample().value_or(false))
    return defaults;
  SamplingParams &s = defaults.sampling;
  s.temperature = float(generation->temperature().value_or(1.0));
  s.topK = int32_t(generation->top_k().value_or(kHfDefaultTopK));
  s.topP = float(generation->top_p().value_or(1.0));
  return defaults;
}

} // namespace moec::runtime
