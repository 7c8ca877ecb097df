//===- ArtifactWriter.cpp - Streaming, atomic artifact writer ---*- C++ -*-===//
//
// Bytes flow through one buffered `write`, so the file is produced in a
// single forward pass without seeking back: header, sections (each padded to
// its alignment and hashed as it streams by), the manifest with those
// hashes, table, trailer with the meta digest. The first error is sticky and
// removes the temp file at once.
//
//===----------------------------------------------------------------------===//

#include "runtime/artifact/ArtifactWriter.h"
#include "runtime/support/File.h"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace moec::runtime {

namespace {

/// Writes are collected up to this many bytes before going to the file.
constexpr size_t kWriteBufferBytes = size_t(1) << 20;
/// Runs of zeros at least this long are skipped with lseek, not written.
constexpr uint64_t kSkipZerosBytes = uint64_t(1) << 20;
/// A page of zeros to hash and write from.
const uint8_t kZeros[65536] = {};

Status ioError(const std::string &what, int err) {
  return makeError(StatusCode::kIoError, what, ": ", std::strerror(err));
}

Status writeAll(int fd, const uint8_t *data, size_t size) {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return Status(StatusCode::kIoError, std::strerror(errno));
    }
    data += n;
    size -= size_t(n);
  }
  return Status::ok();
}

std::string directoryOf(const std::string &path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos)
    return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

} // namespace

SectionSpec SectionSpec::forKind(SectionKind kind, std::string name) {
  SectionSpec spec;
  spec.kind = uint32_t(kind);
  spec.name = name.empty() ? std::string(sectionKindName(spec.kind)) : name;
  spec.alignment =
      kind == SectionKind::kWeights || kind == SectionKind::kCpuSharedObject
          ? kWeightsAlignment
          : 64;
  spec.required = kind != SectionKind::kEmbeddedFile;
  spec.blockSize = kind == SectionKind::kWeights ? kDefaultWeightsBlockSize : 0;
  return spec;
}

//===----------------------------------------------------------------------===//
// Section hashing
//===----------------------------------------------------------------------===//

/// A section being streamed: its size so far and its running SHA-256, or
/// for a blocked section the running SHA-256 of the current block and the
/// digests of the finished ones.
struct ArtifactWriter::SectionState {
  const SectionSpec &spec;
  uint64_t size = 0;
  Sha256 hash;
  uint64_t inBlock = 0;
  std::vector<manifest::Hash> blocks;

  explicit SectionState(const SectionSpec &spec) : spec(spec) {}

  void update(const uint8_t *data, uint64_t n) {
    size += n;
    if (!spec.blockSize) {
      hash.update(data, size_t(n));
      return;
    }
    while (n > 0) {
      uint64_t take = std::min(n, spec.blockSize - inBlock);
      hash.update(data, size_t(take));
      inBlock += take;
      data += take;
      n -= take;
      if (inBlock == spec.blockSize)
        endBlock();
    }
  }

  /// Appends `n` zeros; whole blocks take `zeroBlock`, their digest.
  void zeros(uint64_t n, const Sha256Digest *zeroBlock) {
    while (n > 0) {
      if (zeroBlock && inBlock == 0 && n >= spec.blockSize) {
        blocks.push_back(toHash(*zeroBlock));
        size += spec.blockSize;
        n -= spec.blockSize;
        continue;
      }
      uint64_t take = std::min<uint64_t>(n, sizeof(kZeros));
      if (spec.blockSize)
        take = std::min(take, spec.blockSize - inBlock);
      update(kZeros, take);
      n -= take;
    }
  }

  void endBlock() {
    blocks.push_back(toHash(hash.finish()));
    hash.reset();
    inBlock = 0;
  }

  /// The section's record for the manifest.
  std::unique_ptr<manifest::SectionDigestT> finish() {
    auto record = std::make_unique<manifest::SectionDigestT>();
    record->name = spec.name;
    record->size = size;
    record->block_size = spec.blockSize;
    if (!spec.blockSize) {
      record->sha256 = std::make_unique<manifest::Hash>(toHash(hash.finish()));
      return record;
    }
    if (inBlock > 0)
      endBlock();
    // A blocked section's digest is the SHA-256 of its block digests.
    Sha256 list;
    list.update(blocks.data(), blocks.size() * sizeof(manifest::Hash));
    record->sha256 = std::make_unique<manifest::Hash>(toHash(list.finish()));
    record->blocks = std::move(blocks);
    return record;
  }
};

static_assert(sizeof(manifest::Hash) == 32, "block digests are packed");

Status ArtifactWriter::ChunkSink::operator()(const void *data,
                                             size_t size) const {
  if (!writer_.failed_.isOk())
    return writer_.failed_;
  if (size == 0)
    return Status::ok();
  if (!data)
    return writer_.failWith(
        Status(StatusCode::kInvalidArgument,
               strCat(writer_.path_, ": section '", state_.spec.name,
                      "': null chunk of ", size, " bytes")));
  state_.update(static_cast<const uint8_t *>(data), size);
  return writer_.write(data, size);
}

Status ArtifactWriter::ChunkSink::zeros(uint64_t size) const {
  if (!writer_.failed_.isOk())
    return writer_.failed_;
  const Sha256Digest *zeroBlock =
      state_.spec.blockSize && size >= state_.spec.blockSize
          ? &writer_.zeroBlockDigest(state_.spec.blockSize)
          : nullptr;
  state_.zeros(size, zeroBlock);
  return writer_.skipZeros(size);
}

const Sha256Digest &ArtifactWriter::zeroBlockDigest(uint64_t blockSize) {
  if (zeroBlockSize_ != blockSize) {
    Sha256 hash;
    for (uint64_t done = 0; done < blockSize; done += sizeof(kZeros))
      hash.update(kZeros,
                  size_t(std::min<uint64_t>(sizeof(kZeros), blockSize - done)));
    zeroBlockDigest_ = hash.finish();
    zeroBlockSize_ = blockSize;
  }
  return zeroBlockDigest_;
}

//===----------------------------------------------------------------------===//
// Lifetime
//===----------------------------------------------------------------------===//

StatusOr<std::string> ArtifactWriter::resolveTarget(const std::string &path) {
  if (path.empty())
    return Status(StatusCode::kInvalidArgument, "empty artifact path");
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT)
      return path;
    return ioError(strCat(path, ": cannot stat"), errno);
  }
  std::string target = path;
  if (S_ISLNK(st.st_mode)) {
    char resolved[PATH_MAX];
    if (!::realpath(path.c_str(), resolved))
      return makeError(StatusCode::kInvalidArgument, path,
                       ": is a symbolic link that does not lead to an "
                       "existing file (",
                       std::strerror(errno),
                       "); an artifact is written through a link only to a "
                       "regular file");
    target = resolved;
    if (::stat(target.c_str(), &st) != 0)
      return ioError(strCat(target, ": cannot stat"), errno);
  }
  if (!S_ISREG(st.st_mode))
    return makeError(StatusCode::kInvalidArgument, target, ": is ",
                     fileKindName(st.st_mode),
                     "; an artifact is written only to a new or regular file "
                     "(it is written beside it and renamed over it)");
  return target;
}

StatusOr<std::unique_ptr<ArtifactWriter>>
ArtifactWriter::create(const std::string &requested) {
  MOEC_ASSIGN_OR_RETURN(std::string path, resolveTarget(requested));
  std::unique_ptr<ArtifactWriter> writer(new ArtifactWriter());
  writer->path_ = path;
  std::string tmpl = path + ".tmp-XXXXXX";
  std::vector<char> name(tmpl.begin(), tmpl.end());
  name.push_back('\0');
  int fd = mkostemp(name.data(), O_CLOEXEC);
  if (fd < 0)
    return ioError(
        strCat(path, ": cannot create a temp file in ", directoryOf(path)),
        errno);
  writer->fd_ = fd;
  writer->tempPath_ = name.data();
  // mkostemp creates 0600; an artifact is an ordinary readable file.
  if (fchmod(fd, 0644) != 0)
    return writer->failWith(
        ioError(strCat(writer->tempPath_, ": chmod"), errno));
  writer->buffer_.reserve(kWriteBufferBytes);
  encodeHeader(writer->header_, kArtifactMajor, kArtifactMinor);
  MOEC_RETURN_IF_ERROR(writer->write(writer->header_, kHeaderSize));
  return writer;
}

ArtifactWriter::~ArtifactWriter() {
  if (!committed_)
    abandon();
}

void ArtifactWriter::abandon() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  if (!tempPath_.empty()) {
    ::unlink(tempPath_.c_str());
    tempPath_.clear();
  }
  if (failed_.isOk() && !committed_)
    failed_ = Status(StatusCode::kInvalidArgument,
                     strCat(path_, ": the writer was abandoned"));
}

Status ArtifactWriter::failWith(Status status) {
  if (failed_.isOk())
    failed_ = std::move(status);
  abandon();
  return failed_;
}

//===----------------------------------------------------------------------===//
// Buffered output
//===----------------------------------------------------------------------===//

Status ArtifactWriter::write(const void *data, size_t size) {
  if (!failed_.isOk())
    return failed_;
  const auto *bytes = static_cast<const uint8_t *>(data);
  position_ += size;
  if (buffer_.size() + size > kWriteBufferBytes)
    MOEC_RETURN_IF_ERROR(flush());
  if (size >= kWriteBufferBytes) {
    Status s = writeAll(fd_, bytes, size);
    if (!s.isOk())
      return failWith(s.withPrefix(strCat(tempPath_, ": write")));
    return Status::ok();
  }
  buffer_.insert(buffer_.end(), bytes, bytes + size);
  return Status::ok();
}

Status ArtifactWriter::flush() {
  if (!failed_.isOk())
    return failed_;
  Status s = writeAll(fd_, buffer_.data(), buffer_.size());
  buffer_.clear();
  if (!s.isOk())
    return failWith(s.withPrefix(strCat(tempPath_, ": write")));
  return Status::ok();
}

Status ArtifactWriter::skipZeros(uint64_t size) {
  if (!failed_.isOk())
    return failed_;
  if (size < kSkipZerosBytes) {
    while (size > 0) {
      size_t n = size_t(std::min<uint64_t>(size, sizeof(kZeros)));
      MOEC_RETURN_IF_ERROR(write(kZeros, n));
      size -= n;
    }
    return Status::ok();
  }
  // The manifest, table and trailer always follow, so the skipped range
  // ends up inside the file, reading as zeros.
  MOEC_RETURN_IF_ERROR(flush());
  if (size > uint64_t(INT64_MAX) - position_)
    return failWith(ioError(strCat(tempPath_, ": seek"), EFBIG));
  if (::lseek(fd_, off_t(size), SEEK_CUR) < 0) {
    int err = errno;
    return failWith(ioError(strCat(tempPath_, ": seek"), err));
  }
  position_ += size;
  return Status::ok();
}

Status ArtifactWriter::writePadding(uint64_t alignment) {
  uint64_t pad = (alignment - position_ % alignment) % alignment;
  while (pad > 0) {
    size_t n = size_t(std::min<uint64_t>(pad, sizeof(kZeros)));
    MOEC_RETURN_IF_ERROR(write(kZeros, n));
    pad -= n;
  }
  return Status::ok();
}

//===----------------------------------------------------------------------===//
// Sections
//===----------------------------------------------------------------------===//

Status ArtifactWriter::beginSection(const SectionSpec &spec,
                                    SectionEntry &entry) {
  if (!failed_.isOk())
    return failed_;
  std::string where = strCat(path_, ": section '", spec.name, "'");
  if (inSection_)
    return failWith(Status(StatusCode::kInvalidArgument,
                           strCat(where, ": added while another section is "
                                         "being streamed")));
  std::string problem = checkSectionName(spec.kind, spec.name);
  if (!problem.empty())
    return failWith(
        Status(StatusCode::kInvalidArgument, strCat(where, ": ", problem)));
  if (!names_.insert(spec.name).second)
    return failWith(
        Status(StatusCode::kInvalidArgument, strCat(where, ": added twice")));
  if (entries_.size() >= kMaxSections)
    return failWith(
        Status(StatusCode::kInvalidArgument,
               strCat(where, ": more than ", kMaxSections, " sections")));
  uint32_t align = spec.alignment;
  if (align == 0 || (align & (align - 1)) != 0 ||
      align > kMaxSectionAlignment ||
      (spec.kind == uint32_t(SectionKind::kWeights) &&
       align < kWeightsAlignment))
    return failWith(Status(
        StatusCode::kInvalidArgument,
        strCat(where, ": alignment ", align, " is not a power of two in [",
               spec.kind == uint32_t(SectionKind::kWeights) ? kWeightsAlignment
                                                            : 1,
               ", ", kMaxSectionAlignment, "]")));
  bool weights = spec.kind == uint32_t(SectionKind::kWeights);
  if (weights != (spec.blockSize != 0) ||
      (weights && (spec.blockSize < kMinWeightsBlockSize ||
                   spec.blockSize > kMaxWeightsBlockSize ||
                   (spec.blockSize & (spec.blockSize - 1)) != 0)))
    return failWith(
        Status(StatusCode::kInvalidArgument,
               strCat(where, ": block size ", spec.blockSize,
                      weights ? strCat(" is not a power of two in [",
                                       kMinWeightsBlockSize, ", ",
                                       kMaxWeightsBlockSize, "]")
                              : std::string(": only the weights section is "
                                            "hashed in blocks"))));
  MOEC_RETURN_IF_ERROR(writePadding(align));
  entry = SectionEntry();
  entry.kind = spec.kind;
  entry.flags = spec.required ? kSectionRequired : 0;
  entry.checksumKind = kChecksumSha256InManifest;
  entry.offset = position_;
  entry.alignment = align;
  std::memcpy(entry.name, spec.name.data(), spec.name.size());
  return Status::ok();
}

Status ArtifactWriter::addSection(const SectionSpec &spec, const void *data,
                                  size_t size) {
  return addStreamedSection(
      spec, [&](const ChunkSink &sink) { return sink(data, size); });
}

Status ArtifactWriter::addStreamedSection(const SectionSpec &spec,
                                          const SectionProducer &producer) {
  if (spec.kind == uint32_t(SectionKind::kManifest))
    return failWith(Status(StatusCode::kInvalidArgument,
                           strCat(path_, ": section '", spec.name,
                                  "': the manifest is added with "
                                  "addManifest and written by commit")));
  return writeSection(spec, producer, nullptr);
}

Status ArtifactWriter::writeSection(const SectionSpec &spec,
                                    const SectionProducer &producer,
                                    Sha256 *meta) {
  SectionEntry entry;
  MOEC_RETURN_IF_ERROR(beginSection(spec, entry));
  inSection_ = true;
  SectionState state(spec);
  Status produced = producer(ChunkSink(*this, state));
  inSection_ = false;
  if (!produced.isOk() && failed_.isOk())
    return failWith(
        produced.withPrefix(strCat(path_, ": section '", spec.name, "'")));
  if (!failed_.isOk())
    return failed_;
  entry.size = state.size;
  entries_.push_back(entry);
  // The manifest is covered by the meta digest; every other section by its
  // record in the manifest.
  if (!meta)
    digests_.push_back(state.finish());
  return Status::ok();
}

Status ArtifactWriter::addManifest(const manifest::ManifestT &manifest) {
  if (!failed_.isOk())
    return failed_;
  if (manifest_)
    return failWith(Status(StatusCode::kInvalidArgument,
                           strCat(path_, ": section 'manifest': added twice")));
  manifest_ = std::make_unique<manifest::ManifestT>(manifest);
  return Status::ok();
}

//===----------------------------------------------------------------------===//
// Commit
//===----------------------------------------------------------------------===//

Status ArtifactWriter::setSigningKey(const Ed25519Seed &seed) {
  if (!failed_.isOk())
    return failed_;
  StatusOr<Ed25519PublicKey> publicKey = ed25519PublicKeyOf(seed);
  if (!publicKey.isOk())
    return publicKey.status().withPrefix(strCat(path_, ": cannot sign"));
  signingSeed_ = seed;
  signingPublicKey_ = *publicKey;
  return Status::ok();
}

Status ArtifactWriter::commit() {
  if (!failed_.isOk())
    return failed_;
  if (committed_)
    return Status(StatusCode::kInvalidArgument,
                  strCat(path_, ": already committed"));
  if (inSection_)
    return failWith(Status(StatusCode::kInvalidArgument,
                           strCat(path_, ": commit while streaming")));
  if (!manifest_)
    return failWith(Status(StatusCode::kInvalidArgument,
                           strCat(path_, ": no 'manifest' section was added")));

  // The manifest goes last, carrying every other section's digest; the
  // meta digest covers it, the header, the table and the trailer's start.
  manifest_->sections = std::move(digests_);
  std::vector<uint8_t> manifestBytes = packManifest(*manifest_);
  // The header written at create says the newest minor; the file gets the
  // lowest one that holds it (Format.h), rewritten in place.
  encodeHeader(header_, kArtifactMajor,
               manifest_->kv_cache ? kArtifactMinorKvCache : uint16_t(0));
  MOEC_RETURN_IF_ERROR(flush());
  if (::pwrite(fd_, header_, kHeaderSize, 0) != ssize_t(kHeaderSize))
    return failWith(ioError(strCat(tempPath_, ": rewrite the header"), errno));
  Sha256 meta;
  meta.update(header_, kHeaderSize);
  meta.update(manifestBytes.data(), manifestBytes.size());
  MOEC_RETURN_IF_ERROR(writeSection(
      SectionSpec::forKind(SectionKind::kManifest),
      [&](const ChunkSink &sink) {
        return sink(manifestBytes.data(), manifestBytes.size());
      },
      &meta));

  MOEC_RETURN_IF_ERROR(writePadding(8));
  Trailer trailer;
  trailer.tableOffset = position_;
  trailer.sectionCount = uint32_t(entries_.size());
  for (const SectionEntry &entry : entries_) {
    uint8_t encoded[kTableEntrySize];
    encodeSectionEntry(encoded, entry);
    meta.update(encoded, sizeof(encoded));
    MOEC_RETURN_IF_ERROR(write(encoded, sizeof(encoded)));
  }
  trailer.fileSize = position_ + kTrailerSize;
  std::memcpy(trailer.magic, kTrailerMagic, sizeof(kTrailerMagic));
  uint8_t encoded[kTrailerSize];
  encodeTrailer(encoded, trailer);
  meta.update(encoded, kTrailerDigestOffset);
  // The signature and key fields are not covered by the digest, so that
  // signing does not change it; unsigned, they stay zero.
  trailer.digest = meta.finish();
  if (signingSeed_) {
    std::array<uint8_t, kSignedMessageSize> message =
        signedMessage(trailer.digest);
    StatusOr<Ed25519Signature> signature =
        ed25519Sign(*signingSeed_, message.data(), message.size());
    if (!signature.isOk())
      return failWith(
          signature.status().withPrefix(strCat(path_, ": cannot sign")));
    trailer.signature = *signature;
    trailer.signerPublicKey = signingPublicKey_;
  }
  encodeTrailer(encoded, trailer);
  MOEC_RETURN_IF_ERROR(write(encoded, kTrailerSize));
  MOEC_RETURN_IF_ERROR(flush());

  if (fsync(fd_) != 0)
    return failWith(ioError(strCat(tempPath_, ": fsync"), errno));
  int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0)
    return failWith(ioError(strCat(tempPath_, ": close"), errno));
  if (std::rename(tempPath_.c_str(), path_.c_str()) != 0)
    return failWith(ioError(
        strCat(path_, ": cannot rename ", tempPath_, " over it"), errno));
  tempPath_.clear();
  committed_ = true;
  // Make the rename itself durable; best effort, as some file systems
  // refuse fsync on folders.
  int dir =
      ::open(directoryOf(path_).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    (void)fsync(dir);
    ::close(dir);
  }
  return Status::ok();
}

} // namespace moec::runtime
