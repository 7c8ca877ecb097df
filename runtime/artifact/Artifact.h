//===- Artifact.h - Verified, memory-mapped artifact ------------*- C++ -*-===//
//
// `Artifact::open` maps a `.moea` file and verifies it before handing
// anything out: magic, version, section table, the meta digest over header,
// table and manifest, the manifest (FlatBuffers verifier, then its
// consistency with the file) and the SHA-256 of every section but the
// weights. The weights stay mapped and are used in place; their 16 MiB
// blocks are verified when first used (`verifyWeights`), or all at load with
// `VerifyLevel::kFull`. Every failure is a `Status` naming the file and the
// field; malformed input never crashes the reader.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_RUNTIME_ARTIFACT_ARTIFACT_H
#define MOEC_RUNTIME_ARTIFACT_ARTIFACT_H

#include "runtime/artifact/Format.h"
#include "runtime/artifact/Manifest.h"
#include "runtime/support/Ed25519.h"
#include "runtime/support/MappedFile.h"
#include "runtime/support/Status.h"

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
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
  /// The `required` flag.
  bool required = false;
  /// False for kinds this runtime does not know; such sections were
  /// bounds-checked and hashed but are otherwise skipped.
  bool known = false;
  /// The section's digest record in the manifest (its SHA-256, for the
  /// weights the block digests); null for the manifest itself.
  const manifest::SectionDigest *digest = nullptr;
};

/// How much of the file `Artifact::open` reads and checks.
enum class VerifyLevel {
  /// Header, table, trailer, meta digest, the manifest (FlatBuffers
  /// verifier and `verifyManifest`) and the SHA-256 of every section but
  /// the weights (code is small and executable: it is checked before use).
  /// No weight byte is read: weight blocks are verified when first used
  /// (`Artifact::verifyWeights`).
  kDefault,
  /// All of that and every weight block, at load.
  kFull,
};

/// Which signatures `Artifact::open` accepts (docs/artifact.md, "Deploying
/// with signatures"). The signature is checked right after the meta digest,
/// before the manifest or any section is used.
struct SignaturePolicy {
  /// The keys whose signatures are accepted. When not empty, a signed
  /// artifact must be signed by one of them and its signature must verify.
  std::vector<Ed25519PublicKey> trustedKeys;
  /// Refuse unsigned artifacts; needs at least one trusted key.
  bool requireSignature = false;

  /// True when the policy checks anything (and so needs libsodium: without
  /// it the open fails closed with kUnavailable).
  bool enforced() const { return requireSignature || !trustedKeys.empty(); }
};

/// Options of `Artifact::open`.
struct OpenOptions {
  /// How much to verify at load.
  VerifyLevel verify = VerifyLevel::kDefault;
  /// Which signatures are accepted; by default any artifact, signed or not.
  SignaturePolicy signatures;
};

/// What `Artifact::open` found out about the signature.
enum class SignatureCheck {
  /// The trailer's signature and key fields are zero.
  kUnsigned,
  /// Signed, and the signature verifies under the signer key it names.
  kVerified,
  /// Signed, but the signature does not verify (only loaded without a
  /// policy).
  kInvalid,
  /// Signed, but not checked: libsodium is unavailable and no policy asked.
  kUnchecked,
};

/// A verified artifact. Immutable but for the record of which weight blocks
/// were verified; its bytes stay valid while it lives. Thread-safe.
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
  /// The stored (and verified) meta digest: SHA-256 of the header, the
  /// manifest, the section table and the trailer's first 32 bytes. Through
  /// the manifest's section digests it identifies every byte in use.
  const Sha256Digest &metaDigest() const { return metaDigest_; }
  /// The trailer's signature field (zero when unsigned).
  const std::array<uint8_t, kSignatureSize> &signature() const {
    return signature_;
  }
  /// The trailer's signer public key field (zero when unsigned).
  const std::array<uint8_t, kPublicKeySize> &signerPublicKey() const {
    return signerPublicKey_;
  }

  /// Whether the artifact is signed and whether the signature verified.
  SignatureCheck signatureCheck() const { return signatureCheck_; }

  /// All sections, in table order.
  const std::vector<SectionInfo> &sections() const { return sections_; }
  /// The section named `name`, or nullptr.
  const SectionInfo *findSection(std::string_view name) const;
  /// The bytes of `section`.
  ByteSpan sectionData(const SectionInfo &section) const;

  /// The bytes of the checkpoint file `name` (e.g. "generation_config.json")
  /// embedded in section "file.<name>", verified at open like every section
  /// but the weights; `data` is nullptr when the artifact has no such file.
  ByteSpan embeddedFile(std::string_view name) const;
  /// The names of the embedded files, in table order.
  std::vector<std::string> embeddedFileNames() const;
  /// The generation facts (EOS ids, sampling defaults), or nullptr when the
  /// checkpoint had none.
  const manifest::Generation *generation() const {
    return manifest_->generation();
  }

  /// The verified manifest, read in place from the file.
  const manifest::Manifest &manifest() const { return *manifest_; }
  /// The buffer with id `id`, or nullptr.
  const manifest::Buffer *findBuffer(uint32_t id) const;
  /// The weight with id `id`, or nullptr.
  const manifest::Weight *findWeight(uint32_t id) const;
  /// The bytes of the weight with id `id` (empty when there is none). They
  /// are verified only once `verifyWeight(id)` (or a kFull open) said so.
  ByteSpan weightData(uint32_t id) const;

  /// Verifies the `weights` blocks covering bytes `[offset, offset + size)`
  /// of the weights section that were not verified yet, and remembers them.
  /// Safe to call from several threads: each block is hashed once (large
  /// ranges on several threads). A mismatch is `kCorrupt` naming the file,
  /// the block index, its byte range and both digests; the block stays
  /// unverified. A range outside the section is `kInvalidArgument`.
  Status verifyWeights(uint64_t offset, uint64_t size) const;

  /// Success while the file is as it was opened; a kCorrupt error once it
  /// has been changed in place (`cp new.moea live.moea`), after which
  /// results computed from its weights are not to be trusted. Executors
  /// check before and after every run. In-memory images never change.
  Status checkUnchanged() const;
  /// Verifies the bytes of weight `id` and of its scale weight, if any.
  Status verifyWeight(uint32_t id) const;
  /// The weights section's hash block size (0 without weights).
  uint64_t weightsBlockSize() const { return blockSize_; }
  /// How many weight blocks are verified so far, out of `weightsBlockCount`.
  uint64_t weightsBlocksVerified() const;
  uint64_t weightsBlockCount() const { return blockCount_; }

  /// A human-readable summary: versions, model, targets, inputs, outputs,
  /// buffers, weights, precision, steps and sections (`moec-run --info`).
  std::string summary() const;

private:
  Artifact() = default;
  Status verify(const OpenOptions &options);
  Status verifyStructure();
  Status verifyMetaDigest();
  Status verifySignature(const SignaturePolicy &policy);
  Status verifyManifestSection();
  Status verifySectionDigests();
  Status verifySections();
  Status verifyBlocks(uint64_t begin, uint64_t end) const;
  Status fail(StatusCode code, const std::string &what) const;

  std::string path_;
  const uint8_t *bytes_ = nullptr;
  uint64_t size_ = 0;
  // The mapped file behind `bytes_`; null for an in-memory image, whose
  // `bytes_` are freed.
  std::unique_ptr<MappedFile> file_;
  uint16_t major_ = 0, minor_ = 0;
  uint64_t tableOffset_ = 0;
  Sha256Digest metaDigest_ = {};
  std::array<uint8_t, kSignatureSize> signature_ = {};
  std::array<uint8_t, kPublicKeySize> signerPublicKey_ = {};
  SignatureCheck signatureCheck_ = SignatureCheck::kUnsigned;
  std::vector<SectionInfo> sections_;
  const manifest::Manifest *manifest_ = nullptr;
  // The manifest section's bytes, copied before they are hashed; `manifest_`
  // points into them (aligned by the allocator, as FlatBuffers needs).
  std::vector<uint8_t> manifestCopy_;
  ManifestIndex index_;
  ByteSpan weights_;

  // Lazy weight verification: one state per block (kUnverified, kHashing,
  // kVerified), read without the lock on the fast path; `blockMutex_` and
  // `blockDone_` coordinate threads that need the same blocks.
  const manifest::SectionDigest *weightsDigest_ = nullptr;
  uint64_t blockSize_ = 0;
  uint64_t blockCount_ = 0;
  std::unique_ptr<std::atomic<uint8_t>[]> blockState_;
  mutable std::mutex blockMutex_;
  mutable std::condition_variable blockDone_;
};

} // namespace moec::runtime

#endif // MOEC_RUNTIME_ARTIFACT_ARTIFACT_H
