//===- FuzzManifest.cpp - Fuzz the manifest behind a valid container ------===//
//
// `fuzz-manifest`: the input is the bytes of the `manifest` section, a
// FlatBuffer. Each input is wrapped into an otherwise valid artifact
// (ManifestWrap.h: header, section table and meta digest correct; `cpu.so`,
// `kernels.cu` and 8 KiB of `weights` beside it) and opened with
// `VerifyLevel::kFull`, so every mutation gets past the meta digest and
// reaches the FlatBuffers verifier, the section records, `verifyManifest`
// and, through the digests the manifest records, the section hashes.
//
//===----------------------------------------------------------------------===//

#include "FuzzTarget.h"
#include "ManifestWrap.h"

#include "runtime/artifact/Artifact.h"

#include <vector>

using namespace moec::runtime;

moec::fuzz::FuzzOutcome moec::fuzz::runFuzzInput(const uint8_t *data,
                                                 size_t size) {
  static const char kName[] = "fuzz-manifest.moea";
  std::vector<uint8_t> image = wrapManifest(data, size);
  OpenOptions options;
  options.verify = VerifyLevel::kFull;
  auto artifact =
      Artifact::fromBytes(kName, image.data(), image.size(), options);
  if (!artifact.isOk()) {
    // Only the manifest may be at fault: a container error means the
    // wrapping is wrong, and the target would test nothing.
    const Status &status = artifact.status();
    if (status.code() != StatusCode::kCorrupt ||
        !isManifestRejection(kName, status.message()))
      __builtin_trap();
    return FuzzOutcome::reject(status.toString());
  }
  const Artifact &a = *artifact.value();
  // A full open verified every weight block.
  if (a.weightsBlocksVerified() != a.weightsBlockCount())
    __builtin_trap();
  unsigned sum = 0;
  for (const manifest::Weight *weight : *a.manifest().weights()) {
    if (!a.verifyWeight(weight->id()).isOk())
      __builtin_trap();
    // A benchmark artifact's weights are generated; the file holds none.
    if (a.manifest().weights_device_filled())
      continue;
    ByteSpan span = a.weightData(weight->id());
    if (span.size != 0)
      sum += span.data[0] + span.data[span.size - 1];
  }
  (void)a.summary();
  // Keeps the reads above from being optimised away.
  asm volatile("" : : "r"(sum));
  return FuzzOutcome::accept();
}
