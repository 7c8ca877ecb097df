//===- Artifact.h - Verified, memory-mapped artifact ------------*- C++ -*-===//
//
// `Artifact::open` maps a `.moea` file and verifies all of it before handing
// anything out: magic, version, section table, per-section CRC-32, the
// whole-file SHA-256, the manifest and its consistency with the file. The
// weights stay mapped and are used in place. Every failure is a `Status`
// naming the file and the field; malformed input never crashes the reader.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_RUNTIME_ARTIFACT_ARTIFACT_H
#define MOEC_RUNTIME_ARTIFACT_ARTIFACT_H

#include "runtime/artifact/Format.h"
#include "runtime/artifact/Manifest.h"
#include "runtime/support/Status.h"

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace moec::runtime {

/// A read-only view of bytes inside an artifact.
struct ByteSpan {
  /// First byte (nullptr when empty).
  const uint8_t *data = nullptr;
  /// Number of bytes.
  uint64_t size = 0;
};

/// One verified entry of the section table.
struct SectionInfo {
  /// Raw kind value (`SectionKind` when `known`).
  uint32_t kind = 0;
  /// Section name, e.g. "weights".
  std::string name;
  /// First byte in the file.
  uint64_t offset = 0;
  /// Size in bytes.
  uint64_t size = 0;
  /// Alignment of `offset` in the file.
  uint32_t alignment = 1;
  /// CRC-32 of the section's bytes, as stored (and checked).
  uint32_t crc32 = 0;
  /// The `required` flag.
  bool required = false;
  /// False for kinds this runtime does not know; such sections were
  /// bounds-checked and checksummed but are otherwise skipped.
  bool known = false;
};

/// How much of the file `Artifact::open` checks.
struct OpenOptions {
  /// Check every section's CRC-32 and the file's SHA-256. Turning it off
  /// skips reading the weights at load time; the structure and the manifest
  /// are always checked.
  bool verifyContents = true;
};

/// A verified artifact. Immutable; its bytes stay valid while it lives.
class Artifact {
public:
  /// Maps and verifies the file at `path`.
  static StatusOr<std::unique_ptr<Artifact>>
  open(const std::string &path, const OpenOptions &options = {});

  /// Verifies an in-memory image; `name` stands for the file in messages.
  /// The bytes are copied into a page-aligned buffer.
  static StatusOr<std::unique_ptr<Artifact>>
  fromBytes(std::string name, const void *data, size_t size,
            const OpenOptions &options = {});

  /// Unmaps (or frees) the bytes.
  ~Artifact();
  Artifact(const Artifact &) = delete;
  Artifact &operator=(const Artifact &) = delete;

  /// The path (or name) the artifact was opened from.
  const std::string &path() const { return path_; }
  /// The file's format major version.
  uint16_t majorVersion() const { return major_; }
  /// The file's format minor version.
  uint16_t minorVersion() const { return minor_; }
  /// Total size of the file in bytes.
  uint64_t fileSize() const { return size_; }
  /// The stored (and verified) whole-file digest.
  const Sha256Digest &digest() const { return digest_; }

  /// All sections, in table order.
  const std::vector<SectionInfo> &sections() const { return sections_; }
  /// The section named `name`, or nullptr.
  const SectionInfo *findSection(std::string_view name) const;
  /// The bytes of `section`.
  ByteSpan sectionData(const SectionInfo &section) const;

  /// The parsed, verified manifest.
  const manifest::Manifest &manifest() const { return manifest_; }
  /// The buffer with id `id`, or nullptr.
  const manifest::Buffer *findBuffer(uint32_t id) const;
  /// The weight with id `id`, or nullptr.
  const manifest::Weight *findWeight(uint32_t id) const;
  /// The bytes of the weight with id `id` (empty when there is none).
  ByteSpan weightData(uint32_t id) const;

  /// A human-readable summary: versions, model, targets, inputs, outputs,
  /// buffers, weights, precision, steps and sections (`moec-run --info`).
  std::string summary() const;

private:
  Artifact() = default;
  Status verify(const OpenOptions &options);
  Status verifyStructure();
  Status verifyContents();
  Status verifyManifestSection();
  Status fail(StatusCode code, const std::string &what) const;

  std::string path_;
  const uint8_t *bytes_ = nullptr;
  uint64_t size_ = 0;
  // How to release `bytes_`: munmap for files, free for in-memory images.
  bool mapped_ = false;
  uint16_t major_ = 0, minor_ = 0;
  Sha256Digest digest_ = {};
  std::vector<SectionInfo> sections_;
  manifest::Manifest manifest_;
  ManifestIndex index_;
  ByteSpan weights_;
};

} // namespace moec::runtime

#endif // MOEC_RUNTIME_ARTIFACT_ARTIFACT_H
