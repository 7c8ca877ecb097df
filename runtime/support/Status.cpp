//===- Status.cpp - Runtime error channel -----------------------*- C++ -*-===//
//
// Names of the status codes and the string forms of `Status`.
//
//===----------------------------------------------------------------------===//

#include "runtime/support/Status.h"

namespace moec::runtime {

const char *statusCodeName(StatusCode code) {
  switch (code) {
  case StatusCode::kOk:
    return "ok";
  case StatusCode::kInvalidArgument:
    return "invalid argument";
  case StatusCode::kNotFound:
    return "not found";
  case StatusCode::kIoError:
    return "i/o error";
  case StatusCode::kCorrupt:
    return "corrupt artifact";
  case StatusCode::kUnsupportedVersion:
    return "unsupported version";
  case StatusCode::kUnavailable:
    return "unavailable";
  case StatusCode::kOutOfMemory:
    return "out of memory";
  case StatusCode::kInternal:
    return "internal error";
  case StatusCode::kUntrusted:
    return "untrusted artifact";
  }
  return "unknown status";
}

std::string Status::toString() const {
  if (isOk())
    return "ok";
  return strCat(statusCodeName(code_), ": ", message_);
}

Status Status::withPrefix(const std::string &prefix) const {
  if (isOk())
    return *this;
  return Status(code_, strCat(prefix, ": ", message_));
}

} // namespace moec::runtime
