//===- ArtifactWriter.cpp - Streaming, atomic artifact writer ---*- C++ -*-===//
//
// Bytes flow through one buffered `write` that also feeds the whole-file
// SHA-256, so the file is produced in a single forward pass without seeking:
// header, sections (each padded to its alignment), table, trailer. The first
// error is sticky and removes the temp file at once.
//
//===----------------------------------------------------------------------===//

#include "runtime/artifact/ArtifactWriter.h"
#include "runtime/support/File.h"

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
  spec.required = true;
  return spec;
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
  uint8_t header[kHeaderSize];
  encodeHeader(header, kArtifactMajor, kArtifactMinor);
  MOEC_RETURN_IF_ERROR(writer->write(header, sizeof(header)));
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
  digest_.update(bytes, size);
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

Status ArtifactWriter::writePadding(uint64_t alignment) {
  static const uint8_t kZeros[4096] = {};
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
  MOEC_RETURN_IF_ERROR(writePadding(align));
  entry = SectionEntry();
  entry.kind = spec.kind;
  entry.flags = spec.required ? kSectionRequired : 0;
  entry.checksumKind = kChecksumCrc32;
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
  SectionEntry entry;
  MOEC_RETURN_IF_ERROR(beginSection(spec, entry));
  inSection_ = true;
  uint32_t crc = 0;
  uint64_t size = 0;
  ChunkSink sink = [&](const void *data, size_t n) -> Status {
    if (!failed_.isOk())
      return failed_;
    if (n == 0)
      return Status::ok();
    if (!data)
      return failWith(Status(StatusCode::kInvalidArgument,
                             strCat(path_, ": section '", spec.name,
                                    "': null chunk of ", n, " bytes")));
    crc = crc32Update(crc, data, n);
    size += n;
    return write(data, n);
  };
  Status produced = producer(sink);
  inSection_ = false;
  if (!produced.isOk() && failed_.isOk())
    return failWith(
        produced.withPrefix(strCat(path_, ": section '", spec.name, "'")));
  if (!failed_.isOk())
    return failed_;
  entry.size = size;
  entry.checksum = crc;
  entries_.push_back(entry);
  return Status::ok();
}

Status ArtifactWriter::addManifest(const manifest::Manifest &manifest) {
  std::string bytes;
  if (!manifest.SerializeToString(&bytes))
    return failWith(Status(StatusCode::kInternal,
                           strCat(path_, ": cannot serialize the manifest")));
  return addSection(SectionSpec::forKind(SectionKind::kManifest), bytes.data(),
                    bytes.size());
}

//===----------------------------------------------------------------------===//
// Commit
//===----------------------------------------------------------------------===//

Status ArtifactWriter::commit() {
  if (!failed_.isOk())
    return failed_;
  if (committed_)
    return Status(StatusCode::kInvalidArgument,
                  strCat(path_, ": already committed"));
  if (inSection_)
    return failWith(Status(StatusCode::kInvalidArgument,
                           strCat(path_, ": commit while streaming")));
  if (!names_.count("manifest"))
    return failWith(Status(StatusCode::kInvalidArgument,
                           strCat(path_, ": no 'manifest' section was added")));

  MOEC_RETURN_IF_ERROR(writePadding(8));
  Trailer trailer;
  trailer.tableOffset = position_;
  trailer.sectionCount = uint32_t(entries_.size());
  for (const SectionEntry &entry : entries_) {
    uint8_t encoded[kTableEntrySize];
    encodeSectionEntry(encoded, entry);
    MOEC_RETURN_IF_ERROR(write(encoded, sizeof(encoded)));
  }
  trailer.fileSize = position_ + kTrailerSize;
  std::memcpy(trailer.magic, kTrailerMagic, sizeof(kTrailerMagic));
  uint8_t encoded[kTrailerSize];
  encodeTrailer(encoded, trailer);
  // The digest covers everything before it, the trailer's first half
  // included.
  MOEC_RETURN_IF_ERROR(write(encoded, kTrailerDigestOffset));
  Sha256Digest digest = digest_.finish();
  MOEC_RETURN_IF_ERROR(write(digest.data(), digest.size()));
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
