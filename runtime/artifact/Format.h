//===- Format.h - Byte layout of the artifact container ---------*- C++ -*-===//
//
// The on-disk layout of a `.moea` file (docs/artifact.md): a 16-byte header,
// sections at their alignment, a section table and a 160-byte trailer holding
// the table's position, the meta digest (SHA-256 of the header, the table and
// the manifest) and room for a signature. Everything is little-endian and
// encoded/decoded bytewise here, so the reader never casts file bytes to
// structs. Shared by `ArtifactWriter` and `Artifact`.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_RUNTIME_ARTIFACT_FORMAT_H
#define MOEC_RUNTIME_ARTIFACT_FORMAT_H

#include "runtime/support/Checksum.h"

#include <array>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace moec::runtime {

//===----------------------------------------------------------------------===//
// Versions and fixed sizes
//===----------------------------------------------------------------------===//

/// The format major version this runtime reads and writes; a file with any
/// other major is refused.
constexpr uint16_t kArtifactMajor = 2;
/// The newest minor version this runtime understands; newer minors of the
/// same major are refused, older ones are read.
constexpr uint16_t kArtifactMinor = 1;
/// The minor that added the KV cache (`kv_cache`, `KV_CACHE` arguments).
/// The writer labels a file with the lowest minor that holds it: 2.0
/// unless it has a KV cache, so a 2.0 runtime reads every other artifact.
constexpr uint16_t kArtifactMinorKvCache = 1;

/// The 8 bytes every artifact starts with.
constexpr char kArtifactMagic[8] = {'M', 'O', 'E', 'C', 'A', 'R', 'T', '\0'};
/// The 8 bytes inside the trailer that mark a complete file.
constexpr char kTrailerMagic[8] = {'M', 'O', 'E', 'C', 'E', 'N', 'D', '\0'};

/// Size of the header at offset 0: magic, major, minor, 4 reserved bytes.
constexpr uint64_t kHeaderSize = 16;
/// Size of one section table entry.
constexpr uint64_t kTableEntrySize = 64;
/// Size of the trailer at the very end of the file.
constexpr uint64_t kTrailerSize = 160;
/// Offset of the meta digest inside the trailer. It covers the header, the
/// manifest section, the section table and the trailer's bytes before it.
constexpr uint64_t kTrailerDigestOffset = 32;
/// Offset and size of the signature field inside the trailer (reserved for
/// an Ed25519 signature; zero when unsigned; not covered by the digest).
constexpr uint64_t kTrailerSignatureOffset = 64;
constexpr uint64_t kSignatureSize = 64;
/// Offset and size of the signer's public key inside the trailer (zero when
/// unsigned; not covered by the digest).
constexpr uint64_t kTrailerPublicKeyOffset = 128;
constexpr uint64_t kPublicKeySize = 32;
/// Longest section name (the name field is 32 bytes, NUL-padded).
constexpr size_t kMaxSectionNameLength = 31;
/// Most sections a file may have.
constexpr uint32_t kMaxSections = 4096;
/// Largest section alignment (1 MiB).
constexpr uint32_t kMaxSectionAlignment = 1u << 20;
/// Alignment of the `weights` section, so that it can be mapped and used in
/// place.
constexpr uint32_t kWeightsAlignment = 4096;
/// The writer's default size of the `weights` section's hash blocks: each
/// 16 MiB of weights has its own SHA-256 in the manifest, so that using a
/// weight needs only its blocks verified.
constexpr uint64_t kDefaultWeightsBlockSize = uint64_t(16) << 20;
/// Smallest and largest block size a reader accepts (powers of two).
constexpr uint64_t kMinWeightsBlockSize = 4096;
constexpr uint64_t kMaxWeightsBlockSize = uint64_t(1) << 30;

/// `SectionEntry::flags` bit: a reader that does not know the section's kind
/// must refuse the file instead of skipping the section.
constexpr uint16_t kSectionRequired = 1;
/// `SectionEntry::checksumKind` of format 1: a CRC-32 in the table. Not
/// written or read since 2.0.
constexpr uint8_t kChecksumCrc32 = 1;
/// `SectionEntry::checksumKind` of format 2: the section's SHA-256 is in the
/// manifest (`Manifest.sections`; the `weights` section's per block), and
/// the manifest itself is covered by the trailer's meta digest. The table's
/// 4-byte checksum field is reserved and 0.
constexpr uint8_t kChecksumSha256InManifest = 2;

//===----------------------------------------------------------------------===//
// Section kinds
//===----------------------------------------------------------------------===//

/// What a section holds. Values are part of the format; never renumber.
enum class SectionKind : uint32_t {
  /// The `moec.runtime.manifest.Manifest` FlatBuffer (manifest.fbs); name
  /// "manifest".
  kManifest = 1,
  /// The CPU target's position-independent shared object; name "cpu.so", or
  /// "cpu.so.<variant>" for one of several variants (manifest `cpu_objects`).
  kCpuSharedObject = 2,
  /// All weights, each at the offset the manifest gives; name "weights".
  kWeights = 3,
  /// CUDA C++ sources of every kernel; name "kernels.cu".
  kKernelsCu = 4,
  /// Compiled kernels for one GPU arch; name "cubin.sm_<NN>[a]".
  kCubin = 5,
  /// A file of the checkpoint folder kept verbatim for the runtime's
  /// callers (`generation_config.json`, `tokenizer.json`, ...); name
  /// "file.<file name>". Not needed to run the model, so not `required`.
  kEmbeddedFile = 6,
};

/// The highest `SectionKind` value this runtime knows.
constexpr uint32_t kLastSectionKind = uint32_t(SectionKind::kEmbeddedFile);

/// What the name of an embedded file's section starts with.
constexpr std::string_view kEmbeddedFilePrefix = "file.";

/// What the name of a CPU code variant's section starts with.
constexpr std::string_view kCpuSharedObjectPrefix = "cpu.so.";

/// True for "cpu.so" and "cpu.so.<variant>" with a non-empty variant (the
/// characters are checked by `checkSectionNameSyntax`).
bool isCpuSharedObjectName(std::string_view name);

/// True for "file.<name>" with a non-empty name (the characters are
/// checked by `checkSectionNameSyntax`).
bool isEmbeddedFileName(std::string_view name);

/// True when this runtime knows `kind`.
bool isKnownSectionKind(uint32_t kind);

/// A readable name of `kind` ("manifest", "cpu.so", ...; "unknown" if the
/// runtime does not know it).
const char *sectionKindName(uint32_t kind);

/// Checks that `name` is a valid section name: 1..31 characters of
/// [A-Za-z0-9._-]. Returns an empty string when valid, else what is wrong.
std::string checkSectionNameSyntax(std::string_view name);

/// Checks that `name` fits `kind`: a known kind requires its name
/// ("cubin.sm_<NN>[a]" for cubins); an unknown kind may not take a name
/// reserved for a known one. Returns an empty string when it fits.
std::string checkSectionKindName(uint32_t kind, std::string_view name);

/// Both checks above.
std::string checkSectionName(uint32_t kind, std::string_view name);

//===----------------------------------------------------------------------===//
// Encoded records
//===----------------------------------------------------------------------===//

/// One decoded entry of the section table.
struct SectionEntry {
  /// Raw `SectionKind` value (bytes 0..3).
  uint32_t kind = 0;
  /// `kSectionRequired` or 0 (bytes 4..5).
  uint16_t flags = 0;
  /// `kChecksumSha256InManifest` (byte 6).
  uint8_t checksumKind = kChecksumSha256InManifest;
  /// Must be 0 (byte 7).
  uint8_t reserved = 0;
  /// First byte of the section in the file (bytes 8..15).
  uint64_t offset = 0;
  /// Section size in bytes (bytes 16..23).
  uint64_t size = 0;
  /// Power of two dividing `offset` (bytes 24..27).
  uint32_t alignment = 1;
  /// Reserved, 0 (bytes 28..31; format 1 kept a CRC-32 here).
  uint32_t checksum = 0;
  /// The raw 32-byte name field, NUL-padded (bytes 32..63).
  char name[32] = {};

  /// The name up to its first NUL.
  std::string_view nameView() const {
    return std::string_view(name, strnlen(name, sizeof(name)));
  }
};

/// The decoded trailer.
struct Trailer {
  /// Where the section table starts (bytes 0..7).
  uint64_t tableOffset = 0;
  /// Number of table entries (bytes 8..11).
  uint32_t sectionCount = 0;
  /// Size of one entry, `kTableEntrySize` (bytes 12..15).
  uint32_t entrySize = kTableEntrySize;
  /// Size of the whole file (bytes 16..23).
  uint64_t fileSize = 0;
  /// `kTrailerMagic` (bytes 24..31).
  char magic[8] = {};
  /// The meta digest (bytes 32..63): SHA-256 of the header, the manifest
  /// section, the section table and trailer bytes 0..31, in that order.
  Sha256Digest digest = {};
  /// Reserved for an Ed25519 signature (bytes 64..127); zero when unsigned.
  std::array<uint8_t, kSignatureSize> signature = {};
  /// Reserved for the signer's Ed25519 public key (bytes 128..159); zero
  /// when unsigned.
  std::array<uint8_t, kPublicKeySize> signerPublicKey = {};
};

/// Little-endian load of an unsigned integer of type `T` at `p`.
template <typename T> T loadLE(const uint8_t *p) {
  T v = 0;
  for (size_t i = 0; i < sizeof(T); ++i)
    v |= T(p[i]) << (8 * i);
  return v;
}

/// Little-endian store of `v` at `p`.
template <typename T> void storeLE(uint8_t *p, T v) {
  for (size_t i = 0; i < sizeof(T); ++i)
    p[i] = uint8_t(v >> (8 * i));
}

/// The domain separator that starts every signed message: the ASCII text
/// "moec-artifact-2 signature" and a NUL byte (26 bytes), so that a
/// signature over an artifact can never be taken for one over anything else.
constexpr char kSignatureDomain[] = "moec-artifact-2 signature";
/// Size of the signed message: the domain separator with its NUL, then the
/// 32-byte meta digest.
constexpr size_t kSignedMessageSize = sizeof(kSignatureDomain) + 32;

/// The message an artifact's Ed25519 signature is over:
/// "moec-artifact-2 signature\0" || `metaDigest`.
std::array<uint8_t, kSignedMessageSize>
signedMessage(const Sha256Digest &metaDigest);

/// Encodes the header for version `major`.`minor` into `out[kHeaderSize]`.
void encodeHeader(uint8_t *out, uint16_t major, uint16_t minor);
/// Encodes `entry` into `out[kTableEntrySize]`.
void encodeSectionEntry(uint8_t *out, const SectionEntry &entry);
/// Decodes `kTableEntrySize` bytes at `in`.
SectionEntry decodeSectionEntry(const uint8_t *in);
/// Encodes `trailer` into `out[kTrailerSize]`.
void encodeTrailer(uint8_t *out, const Trailer &trailer);
/// Decodes `kTrailerSize` bytes at `in`.
Trailer decodeTrailer(const uint8_t *in);

} // namespace moec::runtime

#endif // MOEC_RUNTIME_ARTIFACT_FORMAT_H
