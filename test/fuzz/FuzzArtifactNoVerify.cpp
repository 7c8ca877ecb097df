//===- FuzzArtifactNoVerify.cpp - Fuzz the artifact reader, no checksums --===//
//
// `fuzz-artifact-no-verify`: the input is a whole `.moea` image, opened by
// `Artifact::fromBytes` with `verifyContents` off, as `moec-run` opens large
// artifacts: the CRCs and the digest are not checked, so mutations reach the
// section table and the manifest directly. An accepted artifact has the
// bytes of every section and weight read at both ends.
//
//===----------------------------------------------------------------------===//

#include "FuzzTarget.h"

#include "runtime/artifact/Artifact.h"

using namespace moec::runtime;

moec::fuzz::FuzzOutcome moec::fuzz::runFuzzInput(const uint8_t *data,
                                                 size_t size) {
  OpenOptions options;
  options.verifyContents = false;
  auto artifact = Artifact::fromBytes("fuzz.moea", data, size, options);
  if (!artifact.isOk())
    return FuzzOutcome::reject(artifact.status().toString());
  const Artifact &a = *artifact.value();
  unsigned sum = 0;
  auto touch = [&](ByteSpan span) {
    if (span.size != 0)
      sum += span.data[0] + span.data[span.size - 1];
  };
  for (const SectionInfo &section : a.sections())
    touch(a.sectionData(section));
  for (const manifest::Weight &weight : a.manifest().weights())
    touch(a.weightData(weight.id()));
  (void)a.summary();
  // Keeps the reads above from being optimised away.
  asm volatile("" : : "r"(sum));
  return FuzzOutcome::accept();
}
