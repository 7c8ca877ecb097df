//===- GenerationDefaults.h - Request defaults from an artifact -*- C++ -*-===//
//
// The sampling parameters and stop conditions a request gets by default from
// the generation facts `moec` stored in the artifact's manifest (from the
// checkpoint's generation_config.json), as HF `generate` would use them.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_RUNTIME_GENERATE_GENERATIONDEFAULTS_H
#define MOEC_RUNTIME_GENERATE_GENERATIONDEFAULTS_H

#include "runtime/artifact/Manifest.h"
#include "runtime/generate/Sampler.h"

namespace moec::runtime {

/// HF `GenerationConfig`'s `top_k` when sampling and the config names none.
constexpr int32_t kHfDefaultTopK = 50;

/// A request's defaults.
struct GenerationDefaults {
  SamplingParams sampling;
  StopConditions stop;
};

/// The defaults `generation` (the manifest's table; null when absent) gives,
/// with HF `generate`'s semantics: without `do_sample` (HF's default false)
/// greedy (`temperature` 0) with only the repetition penalty; with it, the
/// temperature (default 1), `top_k` (default `kHfDefaultTopK`), `top_p`
/// (default 1) and repetition penalty stated. The EOS ids become
/// `stop.eosTokenIds`; `maxNewTokens` keeps its default.
GenerationDefaults
getGenerationDefaults(const manifest::Generation *generation);

} // namespace moec::runtime

#endif // MOEC_RUNTIME_GENERATE_GENERATIONDEFAULTS_H
