//===- ArtifactWriter.h - Streaming, atomic artifact writer -----*- C++ -*-===//
//
// Writes a `.moea` file section by section. Sections go to disk as they are
// added (a large one may be produced chunk by chunk from a callback, so the
// weights never need to be in memory at once); each section's SHA-256 (the
// weights' per 16 MiB block) is computed on the way and recorded in the
// manifest, which is written last, followed by the table and the trailer
// with the meta digest. The file is written as `<path>.tmp-XXXXXX` in the
// target's folder, fsynced, and renamed over `<path>` only by `commit`; on
// any failure, or if `commit` is never reached, the temp file is removed.
//
#ifndef MOEC_RUNTIME_ARTIFACT_ARTIFACTWRITER_H
#define MOEC_RUNTIME_ARTIFACT_ARTIFACTWRITER_H

#include "runtime/artifact/Format.h"
#include "runtime/artifact/Manifest.h"
#include "runtime/support/Ed25519.h"
#include "runtime/support/Status.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace moec::runtime {

/// How a section is stored.
struct SectionSpec {
  /// Raw kind; a `SectionKind` for everything this runtime knows.
  uint32_t kind = 0;
  /// Section name (docs/artifact.md lists the names each kind requires).
  std::string name;
  /// Alignment of the section's first byte in the file (a power of two).
  uint32_t alignment = 64;
  /// Readers that do not know `kind` must refuse the file.
  bool required = true;
  /// Hash blocks of this size (a power of two) instead of the whole
  /// section; only the `weights` section is blocked, and must be.
  uint64_t blockSize = 0;

  /// The usual spec for `kind`: its required name (for cubins pass the arch,
  /// e.g. `name` = "cubin.sm_90a"), 4096-byte alignment for weights and the
  /// shared object, 64 otherwise, required (but embedded files, which a
  /// runtime that does not know them may skip); weights in 16 MiB hash
  /// blocks.
  static SectionSpec forKind(SectionKind kind, std::string name = "");
};

/// Writes one artifact. Not copyable; not thread-safe.
class ArtifactWriter {
  struct SectionState;

public:
  /// Receives the bytes of a streamed section, in order.
  class ChunkSink {
  public:
    /// Appends `size` bytes at `data`.
    Status operator()(const void *data, size_t size) const;
    /// Appends `size` zero bytes. Long runs are not written but skipped
    /// (a hole where the file system has them), and whole zero hash blocks
    /// take one precomputed digest, so a sparse section costs neither I/O
    /// nor hashing.
    Status zeros(uint64_t size) const;

  private:
    friend class ArtifactWriter;
    ChunkSink(ArtifactWriter &writer, SectionState &state)
        : writer_(writer), state_(state) {}
    ArtifactWriter &writer_;
    SectionState &state_;
  };
  /// Produces a streamed section by calling the sink any number of times;
  /// an error it returns (or one the sink returned) aborts the whole file.
  using SectionProducer = std::function<Status(const ChunkSink &sink)>;

  /// Creates `<path>.tmp-XXXXXX` next to `path` (next to its target when
  /// `path` is a symbolic link) and writes the header. Refuses what
  /// `resolveTarget` refuses.
  static StatusOr<std::unique_ptr<ArtifactWriter>>
  create(const std::string &path);

  /// The file an artifact written to `path` replaces: `path` itself when it
  /// does not exist or is a regular file, the link's target when it is a
  /// symbolic link to a regular file. Anything else (a device such as
  /// `/dev/null`, a FIFO, a folder, a dangling link) is refused, because the
  /// writer renames a finished temp file over the target and must never
  /// replace something that is not an artifact. Tools call it before long
  /// work, so that a bad `-o` fails at once.
  static StatusOr<std::string> resolveTarget(const std::string &path);

  /// Removes the temp file unless `commit` succeeded.
  ~ArtifactWriter();
  ArtifactWriter(const ArtifactWriter &) = delete;
  ArtifactWriter &operator=(const ArtifactWriter &) = delete;

  /// Appends a section holding `size` bytes at `data`.
  Status addSection(const SectionSpec &spec, const void *data, size_t size);
  /// Appends a section whose bytes `producer` streams in.
  Status addStreamedSection(const SectionSpec &spec,
                            const SectionProducer &producer);
  /// Keeps `manifest` for the "manifest" section, which `commit` writes
  /// after every other section, with their digests in `sections` (any
  /// records `manifest` has are replaced). Does not check its consistency;
  /// call `verifyManifest`, or reopen the committed file.
  Status addManifest(const manifest::ManifestT &manifest);

  /// Signs the artifact at `commit` with the Ed25519 key whose seed is
  /// `seed`: the trailer gets the signature of `signedMessage(meta digest)`
  /// and the key's public half. Fails (kUnavailable) at once when libsodium
  /// cannot be loaded, so that no unsigned file is written by mistake.
  Status setSigningKey(const Ed25519Seed &seed);

  /// Writes the manifest, the table and the trailer, fsyncs, and renames
  /// the temp file over the target (then fsyncs the folder). Needs
  /// `addManifest` first.
  Status commit();
  /// Gives up: closes and removes the temp file. Idempotent.
  void abandon();

  /// The temp file being written (empty once committed or abandoned).
  const std::string &tempPath() const { return tempPath_; }
  /// Bytes written so far.
  uint64_t bytesWritten() const { return position_; }

private:
  ArtifactWriter() = default;
  Status beginSection(const SectionSpec &spec, SectionEntry &entry);
  Status writeSection(const SectionSpec &spec, const SectionProducer &producer,
                      Sha256 *meta);
  Status write(const void *data, size_t size);
  Status skipZeros(uint64_t size);
  Status writePadding(uint64_t alignment);
  Status flush();
  Status failWith(Status status);
  const Sha256Digest &zeroBlockDigest(uint64_t blockSize);

  std::string path_;
  std::string tempPath_;
  int fd_ = -1;
  // The first error; every later call returns it.
  Status failed_;
  bool committed_ = false;
  bool inSection_ = false;
  uint64_t position_ = 0;
  // The header, kept for the meta digest.
  uint8_t header_[kHeaderSize] = {};
  std::vector<uint8_t> buffer_;
  std::vector<SectionEntry> entries_;
  std::set<std::string> names_;
  // The manifest from `addManifest`, and the digest record of every section
  // written so far (in table order).
  std::unique_ptr<manifest::ManifestT> manifest_;
  std::vector<std::unique_ptr<manifest::SectionDigestT>> digests_;
  // The signing key from `setSigningKey`, and its public half.
  std::optional<Ed25519Seed> signingSeed_;
  Ed25519PublicKey signingPublicKey_ = {};
  // SHA-256 of a block of zeros, for the block size it was computed for.
  uint64_t zeroBlockSize_ = 0;
  Sha256Digest zeroBlockDigest_ = {};
};

} // namespace moec::runtime

#endif // MOEC_RUNTIME_ARTIFACT_ARTIFACTWRITER_H
