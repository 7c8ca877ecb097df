//===- FuzzArtifactNoVerify.cpp - Fuzz the artifact reader, default level -===//
//
// `fuzz-artifact-no-verify`: the input is a whole `.moea` image, opened by
// `Artifact::fromBytes` with `VerifyLevel::kDefault`, as `moec-run` opens
// artifacts: the weight blocks are not read at load, so mutated weights get
// through the open and reach the lazy verification (`verifyWeight`, as the
// executors call it before a weight's first use). The meta digest still
// guards the header, table and manifest (`fuzz-manifest` reaches past it).
// An accepted artifact has every section and weight read at both ends.
//
//===----------------------------------------------------------------------===//

#include "FuzzTarget.h"

#include "runtime/artifact/Artifact.h"

using namespace moec::runtime;

moec::fuzz::FuzzOutcome moec::fuzz::runFuzzInput(const uint8_t *data,
                                                 size_t size) {
  OpenOptions options;
  options.verify = VerifyLevel::kDefault;
  auto artifact = Artifact::fromBytes("fuzz.moea", data, size, options);
  if (!artifact.isOk())
    return FuzzOutcome::reject(artifact.status().toString());
  const Artifact &a = *artifact.value();
  // The default level reads no weight byte at load.
  if (a.weightsBlocksVerified() != 0)
    __builtin_trap();
  unsigned sum = 0;
  auto touch = [&](ByteSpan span) {
    if (span.size != 0)
      sum += span.data[0] + span.data[span.size - 1];
  };
  for (const SectionInfo &section : a.sections())
    touch(a.sectionData(section));
  (void)a.summary();
  // A benchmark artifact's weights are generated; the file holds none.
  if (!a.manifest().weights_device_filled()) {
    for (const manifest::Weight *weight : *a.manifest().weights()) {
      Status verified = a.verifyWeight(weight->id());
      if (!verified.isOk()) {
        // A block that failed stays unverified: asked again, it fails again.
        if (a.verifyWeight(weight->id()).message() != verified.message())
          __builtin_trap();
        return FuzzOutcome::reject(verified.toString());
      }
      touch(a.weightData(weight->id()));
    }
  }
  // Keeps the reads above from being optimised away.
  asm volatile("" : : "r"(sum));
  return FuzzOutcome::accept();
}
