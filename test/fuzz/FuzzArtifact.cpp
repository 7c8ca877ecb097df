//===- FuzzArtifact.cpp - Fuzz the artifact reader, contents verified -----===//
//
// `fuzz-artifact`: the input is a whole `.moea` image, opened by
// `Artifact::fromBytes` with `VerifyLevel::kFull`: the meta digest (header,
// table, manifest), every section's SHA-256 and every weight block are
// checked. The table checks run before the meta digest; mutations rarely
// get further. `fuzz-artifact-no-verify` and `fuzz-manifest` reach further.
//
//===----------------------------------------------------------------------===//

#include "FuzzTarget.h"

#include "runtime/artifact/Artifact.h"

using namespace moec::runtime;

moec::fuzz::FuzzOutcome moec::fuzz::runFuzzInput(const uint8_t *data,
                                                 size_t size) {
  OpenOptions options;
  options.verify = VerifyLevel::kFull;
  auto artifact = Artifact::fromBytes("fuzz.moea", data, size, options);
  if (!artifact.isOk())
    return FuzzOutcome::reject(artifact.status().toString());
  const Artifact &a = *artifact.value();
  // A full open leaves no weight block unverified.
  if (a.weightsBlocksVerified() != a.weightsBlockCount())
    __builtin_trap();
  // What moec-run --info prints walks every field of the manifest.
  (void)a.summary();
  return FuzzOutcome::accept();
}
