//===- FuzzManifest.cpp - Fuzz the manifest behind a valid container ------===//
//
// `fuzz-manifest`: the input is the bytes of the `manifest` section. Each
// input is wrapped into an otherwise valid artifact (header, section table,
// CRC-32s and SHA-256 all correct; `cpu.so`, `kernels.cu` and 8 KiB of
// `weights` beside it) and opened with full verification, so every mutation
// gets past the checksums and reaches the protobuf parse and
// `verifyManifest`.
//
//===----------------------------------------------------------------------===//

#include "FuzzTarget.h"

#include "runtime/artifact/Artifact.h"

#include <cstring>
#include <vector>

using namespace moec::runtime;

namespace {

/// Size of the zero-filled `weights` section: room for the test model's
/// 4800 bytes of weights (test/unit/runtime/TestModel.cpp).
constexpr size_t kWeightsBytes = 8192;

/// Builds a valid artifact image whose `manifest` section holds the `size`
/// bytes at `manifest`, laid out as ArtifactWriter lays it out.
std::vector<uint8_t> wrapManifest(const uint8_t *manifest, size_t size) {
  static const std::vector<uint8_t> weights(kWeightsBytes, 0);
  static const char cpuSo[] = "cpu.so placeholder: never loaded";
  static const char kernelsCu[] = "// kernels.cu placeholder: never compiled";

  std::vector<uint8_t> bytes(kHeaderSize);
  encodeHeader(bytes.data(), kArtifactMajor, kArtifactMinor);
  std::vector<SectionEntry> entries;
  auto add = [&](SectionKind kind, const char *name, uint32_t alignment,
                 const void *data, size_t n) {
    bytes.resize((bytes.size() + alignment - 1) / alignment * alignment);
    SectionEntry entry;
    entry.kind = uint32_t(kind);
    entry.flags = kSectionRequired;
    entry.offset = bytes.size();
    entry.size = n;
    entry.alignment = alignment;
    entry.checksum = crc32Update(0, data, n);
    std::memcpy(entry.name, name, std::strlen(name));
    const auto *p = static_cast<const uint8_t *>(data);
    bytes.insert(bytes.end(), p, p + n);
    entries.push_back(entry);
  };
  add(SectionKind::kManifest, "manifest", 64, manifest, size);
  add(SectionKind::kCpuSharedObject, "cpu.so", 64, cpuSo, sizeof(cpuSo) - 1);
  add(SectionKind::kKernelsCu, "kernels.cu", 64, kernelsCu,
      sizeof(kernelsCu) - 1);
  add(SectionKind::kWeights, "weights", kWeightsAlignment, weights.data(),
      weights.size());

  bytes.resize((bytes.size() + 7) / 8 * 8);
  Trailer trailer;
  trailer.tableOffset = bytes.size();
  trailer.sectionCount = uint32_t(entries.size());
  for (const SectionEntry &entry : entries) {
    bytes.resize(bytes.size() + kTableEntrySize);
    encodeSectionEntry(bytes.data() + bytes.size() - kTableEntrySize, entry);
  }
  size_t trailerAt = bytes.size();
  trailer.fileSize = trailerAt + kTrailerSize;
  std::memcpy(trailer.magic, kTrailerMagic, sizeof(kTrailerMagic));
  bytes.resize(trailerAt + kTrailerSize);
  encodeTrailer(bytes.data() + trailerAt, trailer);
  // The digest covers every byte before it, the trailer's first half too.
  Sha256Digest digest =
      Sha256::hash(bytes.data(), trailerAt + kTrailerDigestOffset);
  std::memcpy(bytes.data() + trailerAt + kTrailerDigestOffset, digest.data(),
              digest.size());
  return bytes;
}

} // namespace

moec::fuzz::FuzzOutcome moec::fuzz::runFuzzInput(const uint8_t *data,
                                                 size_t size) {
  std::vector<uint8_t> image = wrapManifest(data, size);
  auto artifact = Artifact::fromBytes("fuzz-manifest.moea", image.data(),
                                      image.size(), OpenOptions{});
  if (!artifact.isOk()) {
    // Only the manifest may be at fault: a container error means the
    // wrapping above is wrong, and the target would test nothing.
    const std::string message = artifact.status().toString();
    if (message.find(": manifest") == std::string::npos &&
        message.find("section 'manifest'") == std::string::npos)
      __builtin_trap();
    return FuzzOutcome::reject(message);
  }
  const Artifact &a = *artifact.value();
  unsigned sum = 0;
  for (const manifest::Weight &weight : a.manifest().weights()) {
    ByteSpan span = a.weightData(weight.id());
    if (span.size != 0)
      sum += span.data[0] + span.data[span.size - 1];
  }
  (void)a.summary();
  // Keeps the reads above from being optimised away.
  asm volatile("" : : "r"(sum));
  return FuzzOutcome::accept();
}
