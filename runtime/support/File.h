//===- File.h - Opening untrusted files safely ------------------*- C++ -*-===//
//
// Every file that moec or the runtime reads comes from a user: a checkpoint
// shard, an ONNX model or its external data, an artifact, an `.npy` input.
// `openRegularFile` opens such a path without blocking (a FIFO would hang a
// plain open or read) and checks on the descriptor that it is a regular file,
// so that `/dev/zero`, a FIFO or a folder is refused before a byte is read.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_RUNTIME_SUPPORT_FILE_H
#define MOEC_RUNTIME_SUPPORT_FILE_H

#include "runtime/support/Status.h"

#include <cstdint>
#include <string>
#include <sys/types.h>

namespace moec::runtime {

/// Owns a file descriptor and closes it when destroyed. Movable.
class ScopedFd {
public:
  explicit ScopedFd(int fd = -1) : fd_(fd) {}
  ScopedFd(ScopedFd &&other) : fd_(other.release()) {}
  ScopedFd &operator=(ScopedFd &&other) {
    reset(other.release());
    return *this;
  }
  ScopedFd(const ScopedFd &) = delete;
  ScopedFd &operator=(const ScopedFd &) = delete;
  ~ScopedFd() { reset(-1); }

  /// The descriptor, or -1.
  int get() const { return fd_; }
  /// Gives up ownership of the descriptor.
  int release() {
    int owned = fd_;
    fd_ = -1;
    return owned;
  }
  /// Closes the descriptor held, if any, and takes `fd`.
  void reset(int fd);

private:
  int fd_;
};

/// A regular file opened for reading.
struct RegularFile {
  /// The open descriptor (O_RDONLY, O_CLOEXEC; O_NONBLOCK cleared again).
  ScopedFd fd;
  /// Its size in bytes, from fstat on `fd`.
  uint64_t size = 0;
  /// Its identity (device and inode), from the same fstat.
  dev_t device = 0;
  ino_t inode = 0;
};

/// Names the kind of file `mode` describes, with its article ("a FIFO",
/// "a character device", "a folder", "a regular file"), for messages.
const char *fileKindName(mode_t mode);

/// Opens `path` for reading without blocking and checks with fstat that it
/// is a regular file (a symbolic link to one is followed). Errors start with
/// `path` and say what the file is instead: "<path>: is a FIFO, not a regular
/// file". Not-found errors have code kNotFound.
StatusOr<RegularFile> openRegularFile(const std::string &path);

/// Reads exactly `size` bytes at `offset` of `fd` into `out`; an error names
/// `path` and says how many bytes were missing.
Status readExactly(int fd, const std::string &path, uint64_t offset, void *out,
                   uint64_t size);

} // namespace moec::runtime

#endif // MOEC_RUNTIME_SUPPORT_FILE_H
