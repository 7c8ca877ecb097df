//===- KernelCache.cpp - On-disk cache of JIT-compiled cubins ---*- C++ -*-===//
//
// Entries are flat files `<key hex>.cubin` in one 0700 directory. Readers
// never see a partial entry: writers publish with rename(2), which replaces
// the name atomically, and concurrent writers of the same key write the
// same bytes, so whichever rename lands last is as good as the first. A
// reader that still finds damage (a disk error, a truncated copy) treats
// the entry as absent and rewrites it.
//
//===----------------------------------------------------------------------===//

#include "runtime/nvrtc/KernelCache.h"

#include "runtime/artifact/Format.h"
#include "runtime/nvrtc/Nvrtc.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef MOEC_RUNTIME_BUILD_ID
#define MOEC_RUNTIME_BUILD_ID "moec unknown build"
#endif

namespace moec::runtime {

namespace {

constexpr char kEntryMagic[8] = {'M', 'O', 'E', 'C', 'K', 'C', '0', '1'};
constexpr uint32_t kEntryFormat = 1;
/// Largest payload a reader accepts (a cubin of a whole model is far
/// smaller); a bigger file is treated as corrupt.
constexpr uint64_t kMaxPayload = uint64_t(1) << 30;

std::string errnoText() { return std::strerror(errno); }

Status ioError(const std::string &what) {
  return Status(StatusCode::kIoError, what + ": " + errnoText());
}

// Writes all of `size` bytes, retrying short writes and EINTR.
bool writeAll(int fd, const void *data, size_t size) {
  const char *p = static_cast<const char *>(data);
  while (size > 0) {
    ssize_t n = ::write(fd, p, size);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return false;
    p += n;
    size -= size_t(n);
  }
  return true;
}

// Creates `dir` and its missing parents; new folders get mode 0700.
Status makeDirs(const std::string &dir) {
  for (size_t at = 1; at <= dir.size(); ++at) {
    if (at != dir.size() && dir[at] != '/')
      continue;
    std::string prefix = dir.substr(0, at);
    if (::mkdir(prefix.c_str(), 0700) != 0 && errno != EEXIST)
      return ioError("cannot create kernel cache directory '" + prefix + "'");
  }
  return Status::ok();
}

void appendField(std::string &out, std::string_view field) {
  uint8_t length[8];
  storeLE<uint64_t>(length, field.size());
  out.append(reinterpret_cast<const char *>(length), 8);
  out.append(field.data(), field.size());
}

} // namespace

const char *runtimeBuildId() { return MOEC_RUNTIME_BUILD_ID; }

std::string defaultKernelCacheDir() {
  if (const char *dir = std::getenv("MOEC_CACHE_DIR"); dir && *dir)
    return dir;
  if (const char *xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg == '/')
    return std::string(xdg) + "/moec";
  const char *home = std::getenv("HOME");
  if (!home || !*home) {
    passwd *pw = getpwuid(geteuid());
    home = pw ? pw->pw_dir : nullptr;
  }
  if (!home || !*home)
    return "";
  return std::string(home) + "/.cache/moec";
}

Sha256Digest kernelCacheKey(std::string_view programName,
                            std::string_view source,
                            std::string_view nvrtcVersion,
                            std::string_view arch,
                            const std::vector<std::string> &options,
                            std::string_view buildId) {
  // Length-prefixed, so that no two field lists hash the same bytes.
  std::string text;
  appendField(text, "moec kernel cache 1");
  appendField(text, programName);
  appendField(text, source);
  appendField(text, nvrtcVersion);
  appendField(text, arch);
  appendField(text, std::to_string(options.size()));
  for (const std::string &option : options)
    appendField(text, option);
  appendField(text, buildId);
  return Sha256::hash(text.data(), text.size());
}

std::string kernelCacheEntryPath(const std::string &dir,
                                 const Sha256Digest &key) {
  return dir + "/" + toHex(key) + ".cubin";
}

Status prepareKernelCacheDir(const std::string &dir) {
  if (dir.empty() || dir[0] != '/')
    return makeError(StatusCode::kInvalidArgument, "kernel cache directory '",
                     dir, "' is not an absolute path");
  MOEC_RETURN_IF_ERROR(makeDirs(dir));
  // O_NOFOLLOW: the cache directory itself must not be a symlink that
  // someone else could point elsewhere.
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return ioError("cannot open kernel cache directory '" + dir +
                   "' (is it a symlink or not a directory?)");
  struct stat st;
  int rc = ::fstat(fd, &st);
  ::close(fd);
  if (rc != 0)
    return ioError("cannot stat kernel cache directory '" + dir + "'");
  if (st.st_uid != ::geteuid())
    return makeError(StatusCode::kInvalidArgument, "kernel cache directory '",
                     dir, "' is owned by uid ", st.st_uid,
                     ", not by this user (uid ", ::geteuid(), ")");
  if (st.st_mode & 077) {
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o", unsigned(st.st_mode & 07777));
    return makeError(StatusCode::kInvalidArgument, "kernel cache directory '",
                     dir, "' is accessible by group or others (mode ", mode,
                     "); run chmod 700 on it");
  }
  return Status::ok();
}

CacheLookup readKernelCacheEntry(const std::string &dir,
                                 const Sha256Digest &key,
                                 std::string &payload) {
  std::string path = kernelCacheEntryPath(dir, key);
  int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return errno == ENOENT ? CacheLookup::kMiss : CacheLookup::kCorrupt;
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
      uint64_t(st.st_size) < kKernelCacheHeaderSize ||
      uint64_t(st.st_size) > kKernelCacheHeaderSize + kMaxPayload) {
    ::close(fd);
    return CacheLookup::kCorrupt;
  }
  std::string bytes(size_t(st.st_size), '\0');
  size_t got = 0;
  while (got < bytes.size()) {
    ssize_t n = ::read(fd, bytes.data() + got, bytes.size() - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    got += size_t(n);
  }
  ::close(fd);
  if (got != bytes.size())
    return CacheLookup::kCorrupt;
  const auto *h = reinterpret_cast<const uint8_t *>(bytes.data());
  uint64_t length = loadLE<uint64_t>(h + 16);
  if (std::memcmp(h, kEntryMagic, 8) != 0 ||
      loadLE<uint32_t>(h + 8) != kEntryFormat ||
      length != bytes.size() - kKernelCacheHeaderSize ||
      std::memcmp(h + 24, key.data(), key.size()) != 0 ||
      crc32Update(0, h + kKernelCacheHeaderSize, length) !=
          loadLE<uint32_t>(h + 12))
    return CacheLookup::kCorrupt;
  payload = bytes.substr(kKernelCacheHeaderSize);
  return CacheLookup::kHit;
}

Status writeKernelCacheEntry(const std::string &dir, const Sha256Digest &key,
                             std::string_view payload) {
  uint8_t header[kKernelCacheHeaderSize] = {};
  std::memcpy(header, kEntryMagic, 8);
  storeLE<uint32_t>(header + 8, kEntryFormat);
  storeLE<uint32_t>(header + 12,
                    crc32Update(0, payload.data(), payload.size()));
  storeLE<uint64_t>(header + 16, payload.size());
  std::memcpy(header + 24, key.data(), key.size());

  std::string finalPath = kernelCacheEntryPath(dir, key);
  std::string tmpl = dir + "/.tmp-" + toHex(key).substr(0, 16) + "-XXXXXX";
  // mkostemp creates the file with mode 0600: private until renamed.
  int fd = ::mkostemp(tmpl.data(), O_CLOEXEC);
  if (fd < 0)
    return ioError("cannot create a temp file in kernel cache '" + dir + "'");
  bool ok = writeAll(fd, header, sizeof(header)) &&
            writeAll(fd, payload.data(), payload.size()) && ::fsync(fd) == 0;
  Status status = ok ? Status::ok() : ioError("cannot write '" + tmpl + "'");
  if (::close(fd) != 0 && status.isOk())
    status = ioError("cannot close '" + tmpl + "'");
  if (status.isOk() && ::rename(tmpl.c_str(), finalPath.c_str()) != 0)
    status = ioError("cannot rename '" + tmpl + "' to '" + finalPath + "'");
  if (!status.isOk()) {
    ::unlink(tmpl.c_str());
    return status;
  }
  // Make the rename itself durable.
  if (int dirFd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      dirFd >= 0) {
    ::fsync(dirFd);
    ::close(dirFd);
  }
  return Status::ok();
}

StatusOr<CachedCubin> compileCached(std::string_view source,
                                    std::string_view programName,
                                    std::string_view arch,
                                    const KernelCacheOptions &options) {
  MOEC_ASSIGN_OR_RETURN(const Nvrtc *nvrtc, Nvrtc::get());
  CachedCubin result;
  std::string dir;
  if (options.enabled) {
    dir =
        options.directory.empty() ? defaultKernelCacheDir() : options.directory;
    if (dir.empty()) {
      result.warning = "kernel cache disabled: no cache directory (set "
                       "MOEC_CACHE_DIR or HOME)";
    } else if (Status s = prepareKernelCacheDir(dir); !s.isOk()) {
      result.warning = "kernel cache disabled: " + s.message();
      dir.clear();
    }
  }
  Sha256Digest key = kernelCacheKey(programName, source, nvrtc->version(), arch,
                                    nvrtcOptions(arch), runtimeBuildId());
  CacheLookup lookup = CacheLookup::kMiss;
  if (!dir.empty()) {
    lookup = readKernelCacheEntry(dir, key, result.cubin);
    if (lookup == CacheLookup::kHit) {
      result.origin = CubinOrigin::kCacheHit;
      result.entryPath = kernelCacheEntryPath(dir, key);
      return result;
    }
  }
  MOEC_ASSIGN_OR_RETURN(result.cubin, nvrtc->compile(source, programName, arch,
                                                     NvrtcOutput::kCubin));
  if (dir.empty())
    return result;
  if (Status s = writeKernelCacheEntry(dir, key, result.cubin); !s.isOk()) {
    result.warning = "kernel cache not written: " + s.message();
    return result;
  }
  result.origin = lookup == CacheLookup::kCorrupt
                      ? CubinOrigin::kReplacedCorrupt
                      : CubinOrigin::kCompiled;
  result.entryPath = kernelCacheEntryPath(dir, key);
  return result;
}

} // namespace moec::runtime
