//===- Artifact.cpp - Verified, memory-mapped artifact ----------*- C++ -*-===//
//
// Verification runs in a fixed order so that the message names the most
// specific problem: magic and version first (a newer file may have another
// layout), then the trailer and section table (bounds, alignment, overlap),
// then each section's CRC-32, the whole-file SHA-256, and last the manifest
// and its consistency with the sections. Nothing is used before all passed.
//
//===----------------------------------------------------------------------===//

#include "runtime/artifact/Artifact.h"

#include "runtime/support/File.h"

#include <google/protobuf/stubs/common.h>
#if GOOGLE_PROTOBUF_VERSION < 4022000
#include <google/protobuf/stubs/logging.h>
#endif

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <iomanip>
#include <set>
#include <sys/mman.h>
#include <system_error>
#include <thread>

namespace moec::runtime {

static_assert(sizeof(size_t) == 8, "the runtime needs a 64-bit host");
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "weights are stored little-endian and used in place");

//===----------------------------------------------------------------------===//
// Opening
//===----------------------------------------------------------------------===//

StatusOr<std::unique_ptr<Artifact>> Artifact::open(const std::string &path,
                                                   const OpenOptions &options) {
  // openRegularFile does not block on a FIFO and refuses anything but a
  // regular file (a device such as /dev/zero cannot be mapped sensibly).
  MOEC_ASSIGN_OR_RETURN(RegularFile file, openRegularFile(path));
  std::unique_ptr<Artifact> artifact(new Artifact());
  artifact->path_ = path;
  artifact->size_ = file.size;
  if (artifact->size_ > 0) {
    void *map = mmap(nullptr, artifact->size_, PROT_READ, MAP_PRIVATE,
                     file.fd.get(), 0);
    if (map == MAP_FAILED)
      return makeError(StatusCode::kIoError, path,
                       ": cannot map: ", std::strerror(errno));
    artifact->bytes_ = static_cast<const uint8_t *>(map);
    artifact->mapped_ = true;
  }
  // The mapping stays valid once the descriptor is closed.
  file.fd.reset(-1);
  MOEC_RETURN_IF_ERROR(artifact->verify(options));
  return artifact;
}

StatusOr<std::unique_ptr<Artifact>>
Artifact::fromBytes(std::string name, const void *data, size_t size,
                    const OpenOptions &options) {
  std::unique_ptr<Artifact> artifact(new Artifact());
  artifact->path_ = std::move(name);
  artifact->size_ = size;
  if (size > 0) {
    // Page-aligned like a mapping, so weights keep their alignment.
    size_t rounded = (size + 4095) / 4096 * 4096;
    void *copy = std::aligned_alloc(4096, rounded);
    if (!copy)
      return makeError(StatusCode::kOutOfMemory, artifact->path_,
                       ": cannot allocate ", size, " bytes");
    std::memcpy(copy, data, size);
    artifact->bytes_ = static_cast<const uint8_t *>(copy);
  }
  MOEC_RETURN_IF_ERROR(artifact->verify(options));
  return artifact;
}

Artifact::~Artifact() {
  if (!bytes_)
    return;
  if (mapped_)
    munmap(const_cast<uint8_t *>(bytes_), size_);
  else
    std::free(const_cast<uint8_t *>(bytes_));
}

Status Artifact::fail(StatusCode code, const std::string &what) const {
  return Status(code, strCat(path_, ": ", what));
}

Status Artifact::verify(const OpenOptions &options) {
  MOEC_RETURN_IF_ERROR(verifyStructure());
  if (options.verifyContents)
    MOEC_RETURN_IF_ERROR(verifyContents());
  return verifyManifestSection();
}

//===----------------------------------------------------------------------===//
// Header, trailer and section table
//===----------------------------------------------------------------------===//

Status Artifact::verifyStructure() {
  const StatusCode corrupt = StatusCode::kCorrupt;
  if (size_ < sizeof(kArtifactMagic) ||
      std::memcmp(bytes_, kArtifactMagic, sizeof(kArtifactMagic)) != 0)
    return fail(corrupt, size_ < sizeof(kArtifactMagic)
                             ? strCat("too small to be a moec artifact (",
                                      size_, " bytes)")
                             : "not a moec artifact (the file does not start "
                               "with the magic \"MOECART\\0\")");
  if (size_ < 12)
    return fail(corrupt,
                strCat("truncated inside the header (", size_, " bytes)"));
  major_ = loadLE<uint16_t>(bytes_ + 8);
  minor_ = loadLE<uint16_t>(bytes_ + 10);
  if (major_ != kArtifactMajor)
    return fail(StatusCode::kUnsupportedVersion,
                strCat("artifact version ", major_, ".", minor_,
                       " is not readable by this runtime (", kArtifactMajor,
                       ".", kArtifactMinor, "): the major version differs"));
  if (minor_ > kArtifactMinor)
    return fail(StatusCode::kUnsupportedVersion,
                strCat("artifact version ", major_, ".", minor_,
                       " is newer than this runtime (", kArtifactMajor, ".",
                       kArtifactMinor, ")"));
  if (size_ < kHeaderSize + kTrailerSize)
    return fail(corrupt, strCat("truncated: ", size_,
                                " bytes cannot hold the header and trailer"));
  if (loadLE<uint32_t>(bytes_ + 12) != 0)
    return fail(corrupt, "header: reserved bytes 12..15 are not zero");

  Trailer trailer = decodeTrailer(bytes_ + size_ - kTrailerSize);
  digest_ = trailer.digest;
  if (std::memcmp(trailer.magic, kTrailerMagic, sizeof(kTrailerMagic)) != 0)
    return fail(corrupt, "trailer: end marker \"MOECEND\\0\" missing (the file "
                         "is truncated, extended, or was not completely "
                         "written)");
  if (trailer.fileSize != size_)
    return fail(corrupt, strCat("trailer: file_size is ", trailer.fileSize,
                                " but the file has ", size_, " bytes"));
  if (trailer.entrySize != kTableEntrySize)
    return fail(corrupt, strCat("trailer: entry_size is ", trailer.entrySize,
                                ", expected ", kTableEntrySize));
  if (trailer.sectionCount > kMaxSections)
    return fail(corrupt, strCat("trailer: section_count ", trailer.sectionCount,
                                " exceeds ", kMaxSections));
  uint64_t tableBytes = uint64_t(trailer.sectionCount) * kTableEntrySize;
  uint64_t tableEnd = size_ - kTrailerSize;
  if (trailer.tableOffset % 8 != 0 || trailer.tableOffset < kHeaderSize ||
      trailer.tableOffset > tableEnd ||
      tableEnd - trailer.tableOffset != tableBytes)
    return fail(corrupt,
                strCat("trailer: table_offset ", trailer.tableOffset, " with ",
                       trailer.sectionCount,
                       " entries does not end where the trailer starts (",
                       tableEnd, ")"));

  std::set<std::string> names;
  for (uint32_t i = 0; i < trailer.sectionCount; ++i) {
    SectionEntry e =
        decodeSectionEntry(bytes_ + trailer.tableOffset + i * kTableEntrySize);
    std::string_view name = e.nameView();
    std::string where = strCat("section table entry ", i);
    // The name field must be NUL-padded: nothing after the first NUL.
    bool padded = std::all_of(e.name + name.size(), e.name + sizeof(e.name),
                              [](char c) { return c == 0; });
    std::string nameProblem = checkSectionNameSyntax(name);
    if (!padded || !nameProblem.empty())
      return fail(corrupt, strCat(where, ": name field: ",
                                  padded ? nameProblem
                                         : "bytes after the name are not NUL"));
    where += strCat(" ('", name, "')");
    bool required = e.flags & kSectionRequired;
    if (e.flags & ~kSectionRequired)
      return fail(corrupt,
                  strCat(where, ": unknown flags 0x", std::hex, e.flags));
    if (!isKnownSectionKind(e.kind) && required)
      return fail(corrupt, strCat(where, ": kind ", e.kind,
                                  " is unknown to this runtime but marked "
                                  "required"));
    nameProblem = checkSectionKindName(e.kind, name);
    if (!nameProblem.empty())
      return fail(corrupt, strCat(where, ": name field: ", nameProblem));
    if (!names.insert(std::string(name)).second)
      return fail(corrupt, strCat(where, ": the name is used twice"));
    if (e.checksumKind != kChecksumCrc32)
      return fail(corrupt,
                  strCat(where, ": checksum kind ", int(e.checksumKind),
                         " is unknown (expected 1, CRC-32)"));
    if (e.reserved != 0)
      return fail(corrupt, strCat(where, ": reserved byte is not zero"));
    if (e.alignment == 0 || (e.alignment & (e.alignment - 1)) != 0 ||
        e.alignment > kMaxSectionAlignment)
      return fail(corrupt,
                  strCat(where, ": alignment ", e.alignment,
                         " is not a power of two <= ", kMaxSectionAlignment));
    if (e.kind == uint32_t(SectionKind::kWeights) &&
        e.alignment < kWeightsAlignment)
      return fail(corrupt,
                  strCat(where, ": alignment ", e.alignment,
                         " is below the required ", kWeightsAlignment));
    if (e.offset % e.alignment != 0)
      return fail(corrupt,
                  strCat(where, ": offset ", e.offset,
                         " is not a multiple of its alignment ", e.alignment));
    if (e.offset < kHeaderSize || e.offset > trailer.tableOffset ||
        trailer.tableOffset - e.offset < e.size)
      return fail(corrupt, strCat(where, ": offset ", e.offset, " + size ",
                                  e.size, " is outside the data area [16, ",
                                  trailer.tableOffset, ")"));
    SectionInfo info;
    info.kind = e.kind;
    info.name = std::string(name);
    info.offset = e.offset;
    info.size = e.size;
    info.alignment = e.alignment;
    info.crc32 = e.checksum;
    info.required = required;
    info.known = isKnownSectionKind(e.kind);
    sections_.push_back(std::move(info));
  }

  std::vector<const SectionInfo *> byOffset;
  for (const SectionInfo &s : sections_)
    byOffset.push_back(&s);
  std::sort(byOffset.begin(), byOffset.end(),
            [](const SectionInfo *a, const SectionInfo *b) {
              return a->offset < b->offset;
            });
  for (size_t i = 1; i < byOffset.size(); ++i)
    if (byOffset[i - 1]->offset + byOffset[i - 1]->size > byOffset[i]->offset)
      return fail(corrupt, strCat("sections '", byOffset[i - 1]->name,
                                  "' and '", byOffset[i]->name, "' overlap"));
  return Status::ok();
}

//===----------------------------------------------------------------------===//
// Checksums and digest
//===----------------------------------------------------------------------===//

Status Artifact::verifyContents() {
  // The section CRCs and the whole-file digest read the same bytes
  // independently, so for a large file the SHA-256 runs on a second thread
  // while this one checks the CRCs: opening then takes the slower of the
  // two, not their sum. A CRC mismatch is still the error reported first.
  const uint64_t digestBytes = size_ - kTrailerSize + kTrailerDigestOffset;
  constexpr uint64_t kThreadedDigestBytes = uint64_t(16) << 20;
  Sha256Digest actual{};
  std::thread hasher;
  if (digestBytes >= kThreadedDigestBytes) {
    try {
      hasher = std::thread([this, digestBytes, &actual] {
        actual = Sha256::hash(bytes_, digestBytes);
      });
    } catch (const std::system_error &) {
      // No thread to be had: hash below, on this one.
    }
  }
  Status crcStatus = Status::ok();
  for (const SectionInfo &s : sections_) {
    uint32_t crc = crc32Update(0, bytes_ + s.offset, s.size);
    if (crc != s.crc32) {
      crcStatus = fail(
          StatusCode::kCorrupt,
          strCat("section '", s.name, "': CRC-32 mismatch (stored ", std::hex,
                 std::setw(8), std::setfill('0'), s.crc32, ", computed ",
                 std::setw(8), crc, "): the section is corrupted"));
      break;
    }
  }
  if (hasher.joinable())
    hasher.join();
  else if (crcStatus.isOk())
    actual = Sha256::hash(bytes_, digestBytes);
  if (!crcStatus.isOk())
    return crcStatus;
  if (actual != digest_)
    return fail(StatusCode::kCorrupt,
                strCat("SHA-256 mismatch (stored ", toHex(digest_),
                       ", computed ", toHex(actual),
                       "): the file is corrupted"));
  return Status::ok();
}

//===----------------------------------------------------------------------===//
// Manifest
//===----------------------------------------------------------------------===//

Status Artifact::verifyManifestSection() {
  const SectionInfo *section = findSection("manifest");
  if (!section)
    return fail(StatusCode::kCorrupt, "has no 'manifest' section");
  if (section->size > uint64_t(INT_MAX))
    return fail(StatusCode::kCorrupt,
                strCat("section 'manifest': size ", section->size,
                       " exceeds the 2 GiB protobuf limit"));
  bool parsed;
  {
    // A corrupted string would also be logged to stderr by protobuf; the
    // returned status is the one report.
#if GOOGLE_PROTOBUF_VERSION < 4022000
    google::protobuf::LogSilencer silence;
#endif
    parsed =
        manifest_.ParseFromArray(bytes_ + section->offset, int(section->size));
  }
  if (!parsed)
    return fail(StatusCode::kCorrupt,
                "section 'manifest': not a valid protobuf Manifest message");

  ManifestContext context;
  for (const SectionInfo &s : sections_)
    context.sectionNames.push_back(s.name);
  if (const SectionInfo *weights = findSection("weights")) {
    context.weightsSectionSize = weights->size;
    weights_ = sectionData(*weights);
  }
  StatusOr<ManifestIndex> index = verifyManifest(manifest_, context);
  if (!index.isOk())
    return index.status().withPrefix(strCat(path_, ": manifest"));
  index_ = std::move(index).value();
  return Status::ok();
}

//===----------------------------------------------------------------------===//
// Accessors
//===----------------------------------------------------------------------===//

const SectionInfo *Artifact::findSection(std::string_view name) const {
  for (const SectionInfo &s : sections_)
    if (s.name == name)
      return &s;
  return nullptr;
}

ByteSpan Artifact::sectionData(const SectionInfo &section) const {
  return ByteSpan{bytes_ + section.offset, section.size};
}

const manifest::Buffer *Artifact::findBuffer(uint32_t id) const {
  auto it = index_.bufferById.find(id);
  return it == index_.bufferById.end() ? nullptr
                                       : &manifest_.buffers(it->second);
}

const manifest::Weight *Artifact::findWeight(uint32_t id) const {
  auto it = index_.weightById.find(id);
  return it == index_.weightById.end() ? nullptr
                                       : &manifest_.weights(it->second);
}

ByteSpan Artifact::weightData(uint32_t id) const {
  const manifest::Weight *w = findWeight(id);
  if (!w)
    return {};
  return ByteSpan{weights_.data + w->offset(), w->bytes()};
}

} // namespace moec::runtime
