//===- Checksum.h - CRC-32 and SHA-256 --------------------------*- C++ -*-===//
//
// The two integrity functions of the artifact format (docs/artifact.md):
// CRC-32 (IEEE 802.3 / zlib's `crc32`) per section and SHA-256 (FIPS 180-4)
// over the whole file. Both are incremental so that multi-gigabyte sections
// can be checked while streaming. Plain C++17; tested against the standard
// vectors and against Python's zlib and hashlib.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_RUNTIME_SUPPORT_CHECKSUM_H
#define MOEC_RUNTIME_SUPPORT_CHECKSUM_H

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace moec::runtime {

/// Continues the CRC-32 `crc` (start with 0) over `size` bytes at `data`;
/// `crc32Update(0, p, n)` equals Python's `zlib.crc32(bytes(p[:n]))`.
uint32_t crc32Update(uint32_t crc, const void *data, size_t size);
/// Whether `crc32Update` folds with carry-less multiplication (x86
/// PCLMULQDQ) in this process: several times faster than the tables.
bool crc32UsesHardware();
/// Tests: force the table code (true) or go back to the detected path.
void crc32ForcePortableForTesting(bool portable);

/// A SHA-256 digest.
using Sha256Digest = std::array<uint8_t, 32>;

/// Incremental SHA-256: `update` any number of times, then `finish` once.
class Sha256 {
public:
  Sha256();
  /// Appends `size` bytes at `data` to the message.
  void update(const void *data, size_t size);
  /// Pads the message and returns its digest; the object must not be used
  /// afterwards except through `reset`.
  Sha256Digest finish();
  /// Starts a new, empty message.
  void reset();

  /// The digest of `size` bytes at `data` in one call.
  static Sha256Digest hash(const void *data, size_t size);

  /// Whether this process compresses with the CPU's SHA instructions (x86
  /// SHA-NI, about 5x faster: artifact verification hashes every byte).
  static bool usesHardware();
  /// Tests: force the portable code (true) or go back to the detected path.
  static void forcePortableForTesting(bool portable);

private:
  /// Compresses `blocks` 64-byte blocks at `data` into the state.
  void compress(const uint8_t *data, size_t blocks);

  std::array<uint32_t, 8> state_;
  std::array<uint8_t, 64> buffer_;
  size_t buffered_ = 0;
  uint64_t totalBytes_ = 0;
};

/// Lower-case hexadecimal spelling of `digest` (64 characters).
std::string toHex(const Sha256Digest &digest);

} // namespace moec::runtime

#endif // MOEC_RUNTIME_SUPPORT_CHECKSUM_H
