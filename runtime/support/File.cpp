//===- File.cpp - Opening untrusted files safely ----------------*- C++ -*-===//
//
// Implements `openRegularFile`: O_NONBLOCK so that opening a FIFO returns at
// once, fstat on the opened descriptor (not the path) so that the check and
// the read see the same file, then O_NONBLOCK cleared for ordinary reads.
//
//===----------------------------------------------------------------------===//

#include "runtime/support/File.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace moec::runtime {

void ScopedFd::reset(int fd) {
  if (fd_ >= 0)
    ::close(fd_);
  fd_ = fd;
}

const char *fileKindName(mode_t mode) {
  if (S_ISREG(mode))
    return "a regular file";
  if (S_ISDIR(mode))
    return "a folder";
  if (S_ISFIFO(mode))
    return "a FIFO";
  if (S_ISCHR(mode))
    return "a character device";
  if (S_ISBLK(mode))
    return "a block device";
  if (S_ISSOCK(mode))
    return "a socket";
  if (S_ISLNK(mode))
    return "a symbolic link";
  return "not a regular file";
}

StatusOr<RegularFile> openRegularFile(const std::string &path) {
  // O_NOCTTY: a terminal named as input must not become our controlling one.
  ScopedFd fd(
      ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
  if (fd.get() < 0) {
    int err = errno;
    return makeError(err == ENOENT ? StatusCode::kNotFound
                                   : StatusCode::kIoError,
                     path, ": cannot open: ", std::strerror(err));
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0)
    return makeError(StatusCode::kIoError, path,
                     ": cannot stat: ", std::strerror(errno));
  if (!S_ISREG(st.st_mode))
    return makeError(StatusCode::kInvalidArgument, path, ": is ",
                     fileKindName(st.st_mode), ", not a regular file");
  int flags = ::fcntl(fd.get(), F_GETFL);
  if (flags < 0 || ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK) != 0)
    return makeError(StatusCode::kIoError, path,
                     ": cannot set blocking mode: ", std::strerror(errno));
  RegularFile file;
  file.fd = std::move(fd);
  file.size = uint64_t(st.st_size);
  file.device = st.st_dev;
  file.inode = st.st_ino;
  return file;
}

Status readExactly(int fd, const std::string &path, uint64_t offset, void *out,
                   uint64_t size) {
  auto *cursor = static_cast<char *>(out);
  uint64_t done = 0;
  while (done < size) {
    ssize_t n = ::pread(fd, cursor + done, size - done, off_t(offset + done));
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return makeError(StatusCode::kIoError, path,
                       ": cannot read: ", std::strerror(errno));
    if (n == 0)
      return makeError(StatusCode::kIoError, path, ": ended after ",
                       offset + done, " bytes; expected ", size - done,
                       " more");
    done += uint64_t(n);
  }
  return Status();
}

} // namespace moec::runtime
