//===- ManifestWrap.h - A valid artifact around a manifest ------*- C++ -*-===//
//
// `fuzz-manifest` fuzzes the bytes of the `manifest` section. Since format
// 2.0 those bytes hold the SHA-256 of every other section, so the target and
// the seeds it starts from (MakeSeeds.cpp) must agree on the sections beside
// the manifest. They are defined once here, with the in-memory wrapping that
// gives each input a correct header, section table and meta digest.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_TEST_FUZZ_MANIFESTWRAP_H
#define MOEC_TEST_FUZZ_MANIFESTWRAP_H

#include "runtime/artifact/ArtifactWriter.h"

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace moec::fuzz {

/// One section `wrapManifest` puts beside the manifest.
struct WrappedSection {
  /// Kind, name, alignment and hash block size, as `ArtifactWriter` takes
  /// them.
  runtime::SectionSpec spec;
  /// The section's bytes.
  std::vector<uint8_t> bytes;
};

/// The sections beside the manifest, in table order: a placeholder
/// `cpu.so` and `kernels.cu` (hashed, never loaded or compiled) and 8 KiB
/// of patterned `weights` in two 4 KiB hash blocks, room for the test
/// model's 4800 bytes of weights (test/unit/runtime/TestModel.cpp). A
/// manifest accepted by `wrapManifest`'s artifact records exactly these.
const std::vector<WrappedSection> &wrappedSections();

/// An artifact image (format 2.0) holding `wrappedSections()` and, as its
/// last section, the `size` bytes at `manifest` as the `manifest` section,
/// with a correct table and meta digest: whatever the reader refuses in it
/// is in the manifest or in the section digests it records.
std::vector<uint8_t> wrapManifest(const uint8_t *manifest, size_t size);

/// True when `message`, a rejection of a `wrapManifest` image named
/// `name`, comes from what the manifest decides: the FlatBuffers verifier
/// ("<name>: section 'manifest': ..."), the section records or
/// `verifyManifest` ("<name>: manifest: ..."), or the SHA-256 of a wrapped
/// section or weights block checked against its record. False for the
/// container checks (table, meta digest), which a correct wrapping passes.
bool isManifestRejection(std::string_view name, std::string_view message);

} // namespace moec::fuzz

#endif // MOEC_TEST_FUZZ_MANIFESTWRAP_H
