//===- ManifestWrap.cpp - A valid artifact around a manifest --------------===//
//
// Lays an image out as docs/artifact.md §1 describes (the manifest last,
// then the table and the trailer) and computes its meta digest over the
// header, the manifest, the table and the trailer's first 32 bytes. The
// part before the manifest is the same for every input and built once.
//
//===----------------------------------------------------------------------===//

#include "ManifestWrap.h"

#include <cstring>

using namespace moec::runtime;

namespace moec::fuzz {

namespace {

/// Size of the `weights` section and of its hash blocks.
constexpr size_t kWeightsBytes = 8192;
constexpr uint64_t kWeightsBlockSize = kMinWeightsBlockSize;

std::vector<uint8_t> textBytes(std::string_view text) {
  return std::vector<uint8_t>(text.begin(), text.end());
}

/// Appends `size` bytes at `data` to `image` as a section at `alignment`
/// and returns its table entry.
SectionEntry appendSection(std::vector<uint8_t> &image, const SectionSpec &spec,
                           const uint8_t *data, size_t size) {
  image.resize((image.size() + spec.alignment - 1) / spec.alignment *
               spec.alignment);
  SectionEntry entry;
  entry.kind = spec.kind;
  entry.flags = spec.required ? kSectionRequired : 0;
  entry.offset = image.size();
  entry.size = size;
  entry.alignment = spec.alignment;
  std::memcpy(entry.name, spec.name.data(), spec.name.size());
  image.insert(image.end(), data, data + size);
  return entry;
}

/// The header and the wrapped sections, with their table entries.
struct Prefix {
  std::vector<uint8_t> image;
  std::vector<SectionEntry> entries;
};

const Prefix &prefix() {
  static const Prefix built = [] {
    Prefix p;
    p.image.resize(kHeaderSize);
    encodeHeader(p.image.data(), kArtifactMajor, kArtifactMinor);
    for (const WrappedSection &s : wrappedSections())
      p.entries.push_back(
          appendSection(p.image, s.spec, s.bytes.data(), s.bytes.size()));
    return p;
  }();
  return built;
}

} // namespace

const std::vector<WrappedSection> &wrappedSections() {
  static const std::vector<WrappedSection> sections = [] {
    std::vector<WrappedSection> out;
    // 64-byte alignment (not the writer's 4096) keeps the image small; the
    // reader requires it only of the weights.
    SectionSpec so = SectionSpec::forKind(SectionKind::kCpuSharedObject);
    so.alignment = 64;
    out.push_back({so, textBytes("cpu.so placeholder: never loaded")});
    out.push_back({SectionSpec::forKind(SectionKind::kKernelsCu),
                   textBytes("// kernels.cu placeholder: never compiled")});
    // A pattern whose two blocks differ, so that swapping their digests in
    // the manifest is caught.
    SectionSpec weights = SectionSpec::forKind(SectionKind::kWeights);
    weights.blockSize = kWeightsBlockSize;
    std::vector<uint8_t> bytes(kWeightsBytes);
    for (size_t i = 0; i < bytes.size(); ++i)
      bytes[i] = uint8_t(i % 251);
    out.push_back({weights, std::move(bytes)});
    return out;
  }();
  return sections;
}

std::vector<uint8_t> wrapManifest(const uint8_t *manifest, size_t size) {
  const Prefix &p = prefix();
  std::vector<uint8_t> image;
  image.reserve(p.image.size() + size + 64 +
                (p.entries.size() + 1) * kTableEntrySize + kTrailerSize + 8);
  image = p.image;
  std::vector<SectionEntry> entries = p.entries;
  SectionEntry manifestEntry = appendSection(
      image, SectionSpec::forKind(SectionKind::kManifest), manifest, size);
  entries.push_back(manifestEntry);

  image.resize((image.size() + 7) / 8 * 8);
  Trailer trailer;
  trailer.tableOffset = image.size();
  trailer.sectionCount = uint32_t(entries.size());
  for (const SectionEntry &entry : entries) {
    image.resize(image.size() + kTableEntrySize);
    encodeSectionEntry(image.data() + image.size() - kTableEntrySize, entry);
  }
  size_t trailerAt = image.size();
  trailer.fileSize = trailerAt + kTrailerSize;
  std::memcpy(trailer.magic, kTrailerMagic, sizeof(kTrailerMagic));
  image.resize(trailerAt + kTrailerSize);
  encodeTrailer(image.data() + trailerAt, trailer);

  // The meta digest covers what every load reads, in this order.
  Sha256 meta;
  meta.update(image.data(), kHeaderSize);
  meta.update(image.data() + manifestEntry.offset, size);
  meta.update(image.data() + trailer.tableOffset,
              trailerAt - trailer.tableOffset);
  meta.update(image.data() + trailerAt, kTrailerDigestOffset);
  Sha256Digest digest = meta.finish();
  std::memcpy(image.data() + trailerAt + kTrailerDigestOffset, digest.data(),
              digest.size());
  return image;
}

bool isManifestRejection(std::string_view name, std::string_view message) {
  auto startsWith = [&](const std::string &prefix) {
    return message.substr(0, prefix.size()) == prefix;
  };
  const std::string at = std::string(name) + ": ";
  // Artifact::open's checks after the meta digest, in order: the
  // FlatBuffers verifier, the section records and verifyManifest, the
  // SHA-256 of each section but the weights, the weights' blocks (kFull).
  if (startsWith(at + "section 'manifest': ") || startsWith(at + "manifest: "))
    return true;
  for (const WrappedSection &s : wrappedSections()) {
    const std::string section = at + "section '" + s.spec.name + "': ";
    if (startsWith(section + "SHA-256 mismatch") ||
        (s.spec.blockSize != 0 && startsWith(section + "block ") &&
         message.find("SHA-256 mismatch") != std::string_view::npos))
      return true;
  }
  return false;
}

} // namespace moec::fuzz
