//===- ExternalData.cpp - ONNX external tensor data -------------*- C++ -*-===//
//
// Resolves and reads ONNX external data under the model's folder. Files are
// opened one path component at a time with O_NOFOLLOW, so no symbolic link is
// ever followed, the last one with O_NONBLOCK, so a FIFO cannot block the
// open, and checked with fstat on the descriptor that is read.
//
//===----------------------------------------------------------------------===//

#include "importers/onnx/ExternalData.h"

#include "runtime/support/File.h"

#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/Path.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

using namespace llvm;
using namespace mlir::moec;

namespace {

using ::moec::runtime::fileKindName;
using ::moec::runtime::ScopedFd;

/// The prefix of every message: `'<model>': <what>: external data`.
std::string prefix(StringRef modelPath, StringRef what) {
  return llvm::formatv("'{0}': {1}: external data", modelPath, what).str();
}

llvm::Error makeError(StringRef modelPath, StringRef what,
                      const llvm::Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                 prefix(modelPath, what) + " " + message);
}

/// Parses a non-negative decimal integer of at most 19 digits (so that it
/// fits in int64_t, as the IR stores it).
std::optional<uint64_t> parseDecimal(StringRef text) {
  if (text.empty() || text.size() > 19 ||
      !llvm::all_of(text, [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  uint64_t value = 0;
  if (text.getAsInteger(10, value))
    return std::nullopt;
  return value;
}

/// Checks that `location` is a relative path without `..` components.
llvm::Error checkLocation(StringRef modelPath, StringRef what,
                          StringRef location) {
  auto fail = [&](const llvm::Twine &why) {
    return makeError(modelPath, what, "location '" + location + "' " + why);
  };
  if (location.empty())
    return makeError(modelPath, what, "has an empty location");
  if (location.contains('\0'))
    return fail("contains a NUL character");
  if (location.starts_with("/"))
    return fail("is an absolute path; it must be relative to the model's "
                "folder");
  if (location.contains('\\'))
    return fail("contains a backslash; use '/' between path components");
  SmallVector<StringRef> parts;
  location.split(parts, '/');
  if (llvm::is_contained(parts, ".."))
    return fail("contains '..'; it must stay inside the model's folder");
  return llvm::Error::success();
}

/// Opens `location` under the model's folder without following symbolic
/// links, and checks that it is a regular file with a single link. Returns
/// the descriptor and the file size.
llvm::Expected<std::pair<int, uint64_t>>
openUnderModelDir(StringRef modelPath, StringRef what, StringRef location) {
  if (llvm::Error error = checkLocation(modelPath, what, location))
    return std::move(error);
  SmallString<256> dir(llvm::sys::path::parent_path(modelPath));
  if (dir.empty())
    dir = ".";
  ScopedFd current(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (current.get() < 0)
    return makeError(modelPath, what,
                     "cannot open the model's folder '" + dir +
                         "': " + std::strerror(errno));
  SmallVector<StringRef> parts;
  location.split(parts, '/', /*MaxSplit=*/-1, /*KeepEmpty=*/false);
  llvm::erase(parts, ".");
  if (parts.empty())
    return makeError(modelPath, what,
                     "location '" + location + "' names no file");
  std::string walked;
  for (auto [index, part] : llvm::enumerate(parts)) {
    bool last = index + 1 == parts.size();
    if (!walked.empty())
      walked += "/";
    walked += part.str();
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a
    // writer; it is cleared again once fstat has seen a regular file.
    int flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC |
                (last ? O_NONBLOCK | O_NOCTTY : O_DIRECTORY);
    int fd = ::openat(current.get(), part.str().c_str(), flags);
    if (fd < 0) {
      int code = errno;
      struct stat info;
      if (::fstatat(current.get(), part.str().c_str(), &info,
                    AT_SYMLINK_NOFOLLOW) == 0 &&
          S_ISLNK(info.st_mode))
        return makeError(modelPath, what,
                         "location '" + location + "': '" + walked +
                             "' is a symbolic link, which is not allowed");
      return makeError(modelPath, what,
                       "location '" + location + "': cannot open '" + walked +
                           "': " + std::strerror(code));
    }
    current.reset(fd);
  }
  struct stat info;
  if (::fstat(current.get(), &info) != 0)
    return makeError(modelPath, what,
                     "location '" + location +
                         "': cannot stat: " + std::strerror(errno));
  if (!S_ISREG(info.st_mode))
    return makeError(modelPath, what,
                     "location '" + location + "' is " +
                         fileKindName(info.st_mode) + ", not a regular file");
  if (info.st_nlink > 1)
    return makeError(modelPath, what,
                     "location '" + location + "' has " +
                         llvm::Twine(static_cast<uint64_t>(info.st_nlink)) +
                         " hard links; a file with more than one name is "
                         "not allowed");
  int flags = ::fcntl(current.get(), F_GETFL);
  if (flags < 0 || ::fcntl(current.get(), F_SETFL, flags & ~O_NONBLOCK) != 0)
    return makeError(modelPath, what,
                     "location '" + location + "': cannot set blocking mode: " +
                         std::strerror(errno));
  return std::make_pair(current.release(), static_cast<uint64_t>(info.st_size));
}

/// Checks the byte range of `ref` against a file of `fileSize` bytes.
llvm::Error checkRange(StringRef modelPath, StringRef what,
                       const ExternalDataRef &ref, uint64_t fileSize) {
  uint64_t end;
  if (__builtin_add_overflow(ref.offset, ref.length, &end))
    return makeError(modelPath, what,
                     llvm::formatv("offset {0} + length {1} overflows",
                                   ref.offset, ref.length)
                         .str());
  if (end > fileSize)
    return makeError(
        modelPath, what,
        llvm::formatv("offset {0} + length {1} is past the end of '{2}' "
                      "({3} bytes)",
                      ref.offset, ref.length, ref.location, fileSize)
            .str());
  return llvm::Error::success();
}

} // namespace

llvm::Expected<ExternalDataRef> mlir::moec::resolveExternalData(
    StringRef modelPath, StringRef what,
    ArrayRef<std::pair<std::string, std::string>> entries, uint64_t byteSize) {
  ExternalDataRef ref;
  llvm::StringSet<> seen;
  std::optional<uint64_t> length;
  bool hasLocation = false;
  for (const auto &[key, value] : entries) {
    if (!seen.insert(key).second)
      return makeError(modelPath, what, "key '" + key + "' appears twice");
    if (key == "location") {
      ref.location = value;
      hasLocation = true;
    } else if (key == "offset" || key == "length") {
      std::optional<uint64_t> parsed = parseDecimal(value);
      if (!parsed)
        return makeError(modelPath, what,
                         key + " '" + value +
                             "' is not a non-negative decimal integer below "
                             "2^63");
      (key == "offset" ? ref.offset : length.emplace()) = *parsed;
    } else if (key == "checksum") {
      ref.checksum = value;
    } else {
      return makeError(modelPath, what,
                       "has the unknown key '" + key +
                           "'; only location, offset, length and checksum "
                           "are allowed");
    }
  }
  if (!hasLocation)
    return makeError(modelPath, what, "has no location");
  auto opened = openUnderModelDir(modelPath, what, ref.location);
  if (!opened)
    return opened.takeError();
  ScopedFd fd(opened->first);
  uint64_t fileSize = opened->second;
  if (!length) {
    // Without a length the tensor runs to the end of the file.
    if (ref.offset > fileSize)
      return makeError(modelPath, what,
                       llvm::formatv("offset {0} is past the end of '{1}' "
                                     "({2} bytes)",
                                     ref.offset, ref.location, fileSize)
                           .str());
    length = fileSize - ref.offset;
  }
  ref.length = *length;
  if (llvm::Error error = checkRange(modelPath, what, ref, fileSize))
    return std::move(error);
  if (ref.length != byteSize)
    return makeError(modelPath, what,
                     llvm::formatv("length {0} does not match the {1} bytes "
                                   "the tensor's type needs",
                                   ref.length, byteSize)
                         .str());
  return ref;
}

llvm::Expected<std::vector<char>>
mlir::moec::readExternalData(StringRef modelPath, StringRef what,
                             const ExternalDataRef &ref) {
  auto opened = openUnderModelDir(modelPath, what, ref.location);
  if (!opened)
    return opened.takeError();
  ScopedFd fd(opened->first);
  if (llvm::Error error = checkRange(modelPath, what, ref, opened->second))
    return std::move(error);
  std::vector<char> bytes(ref.length);
  uint64_t done = 0;
  while (done < ref.length) {
    ssize_t got = ::pread(fd.get(), bytes.data() + done, ref.length - done,
                          static_cast<off_t>(ref.offset + done));
    if (got < 0 && errno == EINTR)
      continue;
    if (got <= 0)
      return makeError(modelPath, what,
                       "cannot read '" + ref.location + "': " +
                           (got < 0 ? std::strerror(errno) : "file shrank"));
    done += static_cast<uint64_t>(got);
  }
  return bytes;
}
