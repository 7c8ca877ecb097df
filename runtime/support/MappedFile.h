//===- MappedFile.h - A file mapping that survives in-place edits -*- C++
//-*-===//
//
// Artifacts are used in place from a read-only private mapping. A file
// overwritten in place while it is mapped (`cp new.moea live.moea`) used to
// kill the process: pages past the new end raise SIGBUS, and pages not yet
// read show bytes that were never verified. `MappedFile` keeps the opened
// descriptor, notices any change of size or modification time, and turns a
// SIGBUS inside its mapping into zero pages plus a sticky "changed" mark, so
// that the run in progress ends and reports a clear error instead of a signal.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_RUNTIME_SUPPORT_MAPPEDFILE_H
#define MOEC_RUNTIME_SUPPORT_MAPPEDFILE_H

#include "runtime/support/File.h"
#include "runtime/support/Status.h"

#include <cstdint>
#include <ctime>
#include <memory>
#include <string>

namespace moec::runtime {

/// A regular file mapped read-only (MAP_PRIVATE) for the object's lifetime.
class MappedFile {
public:
  /// Opens `path` (a regular file: `openRegularFile`) and maps it whole.
  static StatusOr<std::unique_ptr<MappedFile>> open(const std::string &path);

  /// Unmaps the file and forgets its range in the SIGBUS guard.
  ~MappedFile();
  MappedFile(const MappedFile &) = delete;
  MappedFile &operator=(const MappedFile &) = delete;

  /// The mapped bytes (null for an empty file).
  const uint8_t *data() const { return data_; }
  /// The size the file had when it was mapped.
  uint64_t size() const { return size_; }
  /// The path it was opened from.
  const std::string &path() const { return path_; }

  /// Success while the file is as it was when mapped; otherwise a kCorrupt
  /// error saying that it was changed in place while in use and how to
  /// replace a deployed file safely. Anything read from the mapping since
  /// the last successful check must then be discarded. A file replaced by
  /// rename(2) is not a change: the mapping keeps the old file.
  Status checkUnchanged() const;

private:
  MappedFile() = default;

  std::string path_;
  ScopedFd fd_;
  const uint8_t *data_ = nullptr;
  uint64_t size_ = 0;
  struct timespec mtime_ = {};
  // The slot of the SIGBUS guard's range table, or -1.
  int guardSlot_ = -1;
};

} // namespace moec::runtime

#endif // MOEC_RUNTIME_SUPPORT_MAPPEDFILE_H
