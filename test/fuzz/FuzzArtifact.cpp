//===- FuzzArtifact.cpp - Fuzz the artifact reader, contents verified -----===//
//
// `fuzz-artifact`: the input is a whole `.moea` image, opened by
// `Artifact::fromBytes` with the default options (every section's CRC-32 and
// the file's SHA-256 are checked). Mutations rarely survive the checksums;
// `fuzz-artifact-no-verify` and `fuzz-manifest` reach further.
//
//===----------------------------------------------------------------------===//

#include "FuzzTarget.h"

#include "runtime/artifact/Artifact.h"

using namespace moec::runtime;

moec::fuzz::FuzzOutcome moec::fuzz::runFuzzInput(const uint8_t *data,
                                                 size_t size) {
  OpenOptions options;
  options.verifyContents = true;
  auto artifact = Artifact::fromBytes("fuzz.moea", data, size, options);
  if (!artifact.isOk())
    return FuzzOutcome::reject(artifact.status().toString());
  // What moec-run --info prints walks every field of the manifest.
  (void)artifact.value()->summary();
  return FuzzOutcome::accept();
}
