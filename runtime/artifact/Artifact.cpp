//===- Artifact.cpp - Verified, memory-mapped artifact ----------*- C++ -*-===//
//
// Verification runs in a fixed order so that the message names the most
// specific problem: magic and version first (a newer file may have another
// layout), then the trailer and section table (bounds, alignment, overlap),
// the meta digest, the manifest (FlatBuffers verifier, its section digest
// records against the table, `verifyManifest`), and last the SHA-256 of
// every section but the weights. Weight blocks are hashed on first use, or
// all at load (kFull) on several threads. Nothing is used before its
// check passed.
//
//===----------------------------------------------------------------------===//

#include "runtime/artifact/Artifact.h"

#include "runtime/support/File.h"

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
  // MappedFile opens without blocking on a FIFO, refuses anything but a
  // regular file (a device such as /dev/zero cannot be mapped sensibly), and
  // notices an in-place change of the file while it is mapped.
  MOEC_ASSIGN_OR_RETURN(std::unique_ptr<MappedFile> file,
                        MappedFile::open(path));
  std::unique_ptr<Artifact> artifact(new Artifact());
  artifact->path_ = path;
  artifact->size_ = file->size();
  artifact->bytes_ = file->data();
  artifact->file_ = std::move(file);
  // A default open must not read weights, not even by the kernel's
  // read-around of the pages it faults in (which can span megabytes, into
  // the weights next to the manifest or the code): no read-around while
  // verifying; `verify` asks for exactly the sections it hashes.
  bool noReadAround =
      artifact->bytes_ && options.verify == VerifyLevel::kDefault;
  if (noReadAround)
    (void)madvise(const_cast<uint8_t *>(artifact->bytes_), artifact->size_,
                  MADV_RANDOM);
  Status verified = artifact->verify(options);
  if (noReadAround)
    (void)madvise(const_cast<uint8_t *>(artifact->bytes_), artifact->size_,
                  MADV_NORMAL);
  MOEC_RETURN_IF_ERROR(verified);
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
  // A mapped file unmaps itself.
  if (bytes_ && !file_)
    std::free(const_cast<uint8_t *>(bytes_));
}

Status Artifact::checkUnchanged() const {
  return file_ ? file_->checkUnchanged() : Status::ok();
}

Status Artifact::fail(StatusCode code, const std::string &what) const {
  return Status(code, strCat(path_, ": ", what));
}

Status Artifact::verify(const OpenOptions &options) {
  MOEC_RETURN_IF_ERROR(verifyStructure());
  if (file_ && file_->data() && options.verify == VerifyLevel::kDefault) {
    // Read ahead exactly what the default open hashes: every section but
    // the weights (see `open`).
    const uintptr_t page = uintptr_t(sysconf(_SC_PAGESIZE));
    for (const SectionInfo &s : sections_) {
      if (s.name == "weights" || s.size == 0)
        continue;
      uintptr_t begin = uintptr_t(bytes_ + s.offset) & ~(page - 1);
      uintptr_t end = uintptr_t(bytes_ + s.offset + s.size);
      (void)madvise(reinterpret_cast<void *>(begin), end - begin,
                    MADV_WILLNEED);
    }
  }
  MOEC_RETURN_IF_ERROR(verifyMetaDigest());
  // The signature covers the meta digest, which covers the manifest with
  // every section's digest: check it before anything in the file is used.
  MOEC_RETURN_IF_ERROR(verifySignature(options.signatures));
  MOEC_RETURN_IF_ERROR(verifyManifestSection());
  MOEC_RETURN_IF_ERROR(verifySections());
  if (options.verify == VerifyLevel::kFull)
    MOEC_RETURN_IF_ERROR(verifyBlocks(0, blockCount_));
  return Status::ok();
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
                       ".", kArtifactMinor, "): the major version differs; ",
                       major_ < kArtifactMajor ? "recompile it with this moec"
                                               : "it needs a newer runtime"));
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
  metaDigest_ = trailer.digest;
  signature_ = trailer.signature;
  signerPublicKey_ = trailer.signerPublicKey;
  tableOffset_ = trailer.tableOffset;
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
    if (e.checksumKind != kChecksumSha256InManifest)
      return fail(corrupt,
                  strCat(where, ": checksum kind ", int(e.checksumKind),
                         " is unknown (expected 2, SHA-256 in the "
                         "manifest)"));
    if (e.reserved != 0 || e.checksum != 0)
      return fail(corrupt, strCat(where, ": reserved bytes are not zero"));
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
// Meta digest and manifest
//===----------------------------------------------------------------------===//

Status Artifact::verifyMetaDigest() {
  const SectionInfo *manifest = findSection("manifest");
  if (!manifest)
    return fail(StatusCode::kCorrupt, "has no 'manifest' section");
  // The manifest is read from a private copy, hashed here, so that the
  // bytes verified are the bytes used: a file changed in place after the
  // check (MappedFile) cannot change the manifest under the running model.
  manifestCopy_.assign(bytes_ + manifest->offset,
                       bytes_ + manifest->offset + manifest->size);
  // The header, the manifest, the table and the trailer before the digest:
  // everything that is read on every load, and nothing else.
  Sha256 meta;
  meta.update(bytes_, kHeaderSize);
  meta.update(manifestCopy_.data(), manifestCopy_.size());
  meta.update(bytes_ + tableOffset_, size_ - kTrailerSize - tableOffset_);
  meta.update(bytes_ + size_ - kTrailerSize, kTrailerDigestOffset);
  Sha256Digest actual = meta.finish();
  if (actual != metaDigest_)
    return fail(StatusCode::kCorrupt,
                strCat("meta digest mismatch (stored ", toHex(metaDigest_),
                       ", computed ", toHex(actual),
                       "): the header, section table or manifest is "
                       "corrupted"));
  return Status::ok();
}

Status Artifact::verifySignature(const SignaturePolicy &policy) {
  auto isZero = [](const auto &bytes) {
    return std::all_of(bytes.begin(), bytes.end(),
                       [](uint8_t b) { return b == 0; });
  };
  bool noSignature = isZero(signature_), noKey = isZero(signerPublicKey_);
  if (noSignature != noKey)
    return fail(StatusCode::kCorrupt,
                noSignature ? "trailer: a signer key but no signature"
                            : "trailer: a signature but no signer key");
  bool isSigned = !noSignature;
  if (policy.enforced()) {
    if (policy.requireSignature && policy.trustedKeys.empty())
      return fail(StatusCode::kInvalidArgument,
                  "a signature is required but no key is trusted");
    // Fail closed: a policy that cannot be checked refuses every file.
    Status available = ed25519Available();
    if (!available.isOk())
      return available.withPrefix(
          strCat(path_, ": cannot check the signature policy"));
    if (!isSigned) {
      if (!policy.requireSignature)
        return Status::ok();
      size_t n = policy.trustedKeys.size();
      return fail(StatusCode::kUntrusted,
                  strCat("is not signed; this runtime requires artifacts "
                         "signed by one of ",
                         n, " trusted key", n == 1 ? "" : "s"));
    }
    if (std::find(policy.trustedKeys.begin(), policy.trustedKeys.end(),
                  signerPublicKey_) == policy.trustedKeys.end())
      return fail(StatusCode::kUntrusted,
                  strCat("is signed by key ",
                         toHex(signerPublicKey_.data(), kPublicKeySize),
                         ", which is not trusted"));
  } else if (!isSigned) {
    return Status::ok();
  } else if (!ed25519Available().isOk()) {
    // Without a policy a signature is informational only.
    signatureCheck_ = SignatureCheck::kUnchecked;
    return Status::ok();
  }
  std::array<uint8_t, kSignedMessageSize> message = signedMessage(metaDigest_);
  Status verified = ed25519Verify(signerPublicKey_, message.data(),
                                  message.size(), signature_);
  signatureCheck_ =
      verified.isOk() ? SignatureCheck::kVerified : SignatureCheck::kInvalid;
  if (!verified.isOk() && policy.enforced())
    return verified.withPrefix(strCat(
        path_, ": signer ", toHex(signerPublicKey_.data(), kPublicKeySize)));
  return Status::ok();
}

Status Artifact::verifyManifestSection() {
  StatusOr<const manifest::Manifest *> parsed =
      readManifest(manifestCopy_.data(), manifestCopy_.size());
  if (!parsed.isOk())
    return parsed.status().withPrefix(strCat(path_, ": section 'manifest'"));
  manifest_ = *parsed;
  MOEC_RETURN_IF_ERROR(verifySectionDigests());

  ManifestContext context;
  for (const SectionInfo &s : sections_)
    context.sectionNames.push_back(s.name);
  if (const SectionInfo *weights = findSection("weights")) {
    context.weightsSectionSize = weights->size;
    weights_ = sectionData(*weights);
  }
  StatusOr<ManifestIndex> index = verifyManifest(*manifest_, context);
  if (!index.isOk())
    return index.status().withPrefix(strCat(path_, ": manifest"));
  // A 2.0 runtime would not know the cache a 2.0-labelled file holds.
  if (manifest_->kv_cache() && minor_ < kArtifactMinorKvCache)
    return makeError(StatusCode::kCorrupt, path_,
                     ": manifest: kv_cache needs "
                     "artifact version ",
                     kArtifactMajor, ".", kArtifactMinorKvCache,
                     ", but the file says ", major_, ".", minor_);
  index_ = std::move(index).value();
  return Status::ok();
}

// The records of `Manifest.sections` must match the table one to one: one
// per section but the manifest, with its size; the weights hashed in
// blocks, everything else whole.
Status Artifact::verifySectionDigests() {
  const auto &records = *manifest_->sections();
  for (uint32_t i = 0; i < records.size(); ++i) {
    const manifest::SectionDigest &r = *records[i];
    std::string name(text(r.name()));
    auto bad = [&](const std::string &what) {
      return fail(StatusCode::kCorrupt,
                  strCat("manifest: sections[", i, "] ('", name, "'): ", what));
    };
    auto it =
        std::find_if(sections_.begin(), sections_.end(),
                     [&](const SectionInfo &s) { return s.name == name; });
    if (it == sections_.end() || name == "manifest")
      return bad(name == "manifest"
                     ? "the manifest has no record (the meta digest covers it)"
                     : "names no section of the table");
    if (it->digest)
      return bad("the section has two records");
    if (r.size() != it->size)
      return bad(
          strCat("size ", r.size(), " differs from the table's ", it->size));
    const auto &blocks = *r.blocks();
    if (name != "weights") {
      if (r.block_size() != 0 || blocks.size() != 0)
        return bad(strCat("block_size ", r.block_size(), " and ", blocks.size(),
                          " block digests, but only the weights section is "
                          "hashed in blocks"));
    } else {
      uint64_t b = r.block_size();
      if (b < kMinWeightsBlockSize || b > kMaxWeightsBlockSize ||
          (b & (b - 1)) != 0)
        return bad(strCat("block_size ", b, " is not a power of two in [",
                          kMinWeightsBlockSize, ", ", kMaxWeightsBlockSize,
                          "]"));
      uint64_t count = r.size() / b + (r.size() % b != 0);
      if (blocks.size() != count)
        return bad(strCat(blocks.size(), " block digests, expected ", count,
                          " for ", r.size(), " bytes in blocks of ", b));
      // The record's own digest is the SHA-256 of the block digests.
      Sha256Digest list =
          Sha256::hash(blocks.data(), blocks.size() * sizeof(manifest::Hash));
      if (list != fromHash(*r.sha256()))
        return bad("sha256 is not the SHA-256 of the block digests");
      weightsDigest_ = &r;
      blockSize_ = b;
      blockCount_ = count;
      blockState_.reset(new std::atomic<uint8_t>[count]);
      for (uint64_t k = 0; k < count; ++k)
        blockState_[k].store(0, std::memory_order_relaxed);
    }
    it->digest = &r;
  }
  for (const SectionInfo &s : sections_)
    if (!s.digest && s.name != "manifest")
      return fail(StatusCode::kCorrupt,
                  strCat("manifest: section '", s.name,
                         "' has no record in `sections`"));
  return Status::ok();
}

//===----------------------------------------------------------------------===//
// Section contents
//===----------------------------------------------------------------------===//

Status Artifact::verifySections() {
  // Everything but the weights is small and read at load (code is
  // executable): hash it all before anything uses it.
  for (const SectionInfo &s : sections_) {
    if (!s.digest || s.name == "weights")
      continue;
    Sha256Digest actual = Sha256::hash(bytes_ + s.offset, s.size);
    Sha256Digest expected = fromHash(*s.digest->sha256());
    if (actual != expected)
      return fail(StatusCode::kCorrupt,
                  strCat("section '", s.name, "': SHA-256 mismatch (expected ",
                         toHex(expected), ", computed ", toHex(actual),
                         "): the section is corrupted"));
  }
  return Status::ok();
}

namespace {

/// Block states of lazy weight verification.
enum : uint8_t { kUnverified = 0, kHashing = 1, kVerified = 2 };

/// Below this many bytes a batch of blocks is hashed on the calling thread.
constexpr uint64_t kThreadedHashBytes = uint64_t(64) << 20;
/// Most threads that hash weight blocks at once.
constexpr unsigned kMaxHashThreads = 8;

} // namespace

Status Artifact::verifyWeights(uint64_t offset, uint64_t size) const {
  uint64_t sectionSize = weightsDigest_ ? weightsDigest_->size() : 0;
  if (offset > sectionSize || size > sectionSize - offset)
    return makeError(StatusCode::kInvalidArgument, path_, ": weights range [",
                     offset, ", +", size, ") is outside the weights section (",
                     sectionSize, " bytes)");
  if (size == 0)
    return Status::ok();
  return verifyBlocks(offset / blockSize_,
                      (offset + size - 1) / blockSize_ + 1);
}

Status Artifact::verifyWeight(uint32_t id) const {
  const manifest::Weight *w = findWeight(id);
  if (!w)
    return makeError(StatusCode::kInvalidArgument, path_, ": no weight id ",
                     id);
  // Benchmark artifacts carry no weight bytes.
  if (manifest_->weights_device_filled())
    return Status::ok();
  Status s = verifyWeights(w->offset(), w->bytes());
  if (!s.isOk()) {
    // Name the weight after the file: "m.moea: weight 'x' (id 3): ...".
    std::string what = s.message();
    if (what.rfind(path_ + ": ", 0) == 0)
      what.erase(0, path_.size() + 2);
    return Status(s.code(), strCat(path_, ": weight '", text(w->name()),
                                   "' (id ", id, "): ", what));
  }
  if (w->scale())
    return verifyWeight(*w->scale());
  return Status::ok();
}

uint64_t Artifact::weightsBlocksVerified() const {
  uint64_t count = 0;
  for (uint64_t k = 0; k < blockCount_; ++k)
    count += blockState_[k].load(std::memory_order_acquire) == kVerified;
  return count;
}

Status Artifact::verifyBlocks(uint64_t begin, uint64_t end) const {
  auto allVerified = [&] {
    for (uint64_t k = begin; k < end; ++k)
      if (blockState_[k].load(std::memory_order_acquire) != kVerified)
        return false;
    return true;
  };
  // Claim the unverified blocks, hash them (on several threads when there
  // are many), publish the results, then wait for blocks other threads
  // were hashing. A block that failed elsewhere went back to unverified:
  // the next round hashes it here and reports it.
  while (!allVerified()) {
    std::vector<uint64_t> mine;
    {
      std::lock_guard<std::mutex> lock(blockMutex_);
      for (uint64_t k = begin; k < end; ++k)
        if (blockState_[k].load(std::memory_order_relaxed) == kUnverified) {
          blockState_[k].store(kHashing, std::memory_order_relaxed);
          mine.push_back(k);
        }
    }
    const uint8_t *base = weights_.data;
    const auto &digests = *weightsDigest_->blocks();
    uint64_t sectionSize = weightsDigest_->size();
    auto blockBytes = [&](uint64_t k) {
      return std::min(blockSize_, sectionSize - k * blockSize_);
    };
    std::vector<Sha256Digest> actual(mine.size());
    std::atomic<size_t> next{0};
    auto work = [&] {
      for (size_t i = next++; i < mine.size(); i = next++)
        actual[i] = Sha256::hash(base + mine[i] * blockSize_,
                                 size_t(blockBytes(mine[i])));
    };
    std::vector<std::thread> threads;
    if (mine.size() * blockSize_ >= kThreadedHashBytes) {
      unsigned n = std::min<unsigned>(
          {std::max(1u, std::thread::hardware_concurrency()), kMaxHashThreads,
           unsigned(std::min<size_t>(mine.size(), kMaxHashThreads))});
      for (unsigned t = 1; t < n; ++t) {
        try {
          threads.emplace_back(work);
        } catch (const std::system_error &) {
          break; // fewer threads, same result
        }
      }
    }
    work();
    for (std::thread &t : threads)
      t.join();

    Status failure = Status::ok();
    {
      std::lock_guard<std::mutex> lock(blockMutex_);
      for (size_t i = 0; i < mine.size(); ++i) {
        uint64_t k = mine[i];
        Sha256Digest expected = fromHash(*digests.Get(uint32_t(k)));
        bool ok = actual[i] == expected;
        blockState_[k].store(ok ? kVerified : kUnverified,
                             std::memory_order_release);
        if (!ok && failure.isOk())
          failure =
              fail(StatusCode::kCorrupt,
                   strCat("section 'weights': block ", k, " (bytes [",
                          k * blockSize_, ", ", k * blockSize_ + blockBytes(k),
                          ")): SHA-256 mismatch (expected ", toHex(expected),
                          ", computed ", toHex(actual[i]),
                          "): the weights are corrupted"));
      }
    }
    blockDone_.notify_all();
    if (!failure.isOk())
      return failure;
    std::unique_lock<std::mutex> lock(blockMutex_);
    blockDone_.wait(lock, [&] {
      for (uint64_t k = begin; k < end; ++k)
        if (blockState_[k].load(std::memory_order_relaxed) == kHashing)
          return false;
      return true;
    });
  }
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

ByteSpan Artifact::embeddedFile(std::string_view name) const {
  std::string section = strCat(kEmbeddedFilePrefix, name);
  for (const SectionInfo &s : sections_)
    if (s.kind == uint32_t(SectionKind::kEmbeddedFile) && s.name == section)
      return sectionData(s);
  return ByteSpan{};
}

std::vector<std::string> Artifact::embeddedFileNames() const {
  std::vector<std::string> names;
  for (const SectionInfo &s : sections_)
    if (s.kind == uint32_t(SectionKind::kEmbeddedFile))
      names.push_back(s.name.substr(kEmbeddedFilePrefix.size()));
  return names;
}

const manifest::Buffer *Artifact::findBuffer(uint32_t id) const {
  auto it = index_.bufferById.find(id);
  return it == index_.bufferById.end()
             ? nullptr
             : manifest_->buffers()->Get(uint32_t(it->second));
}

const manifest::Weight *Artifact::findWeight(uint32_t id) const {
  auto it = index_.weightById.find(id);
  return it == index_.weightById.end()
             ? nullptr
             : manifest_->weights()->Get(uint32_t(it->second));
}

ByteSpan Artifact::weightData(uint32_t id) const {
  const manifest::Weight *w = findWeight(id);
  if (!w || !weights_.data)
    return {};
  return ByteSpan{weights_.data + w->offset(), w->bytes()};
}

} // namespace moec::runtime
