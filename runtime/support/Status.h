//===- Status.h - Runtime error channel -------------------------*- C++ -*-===//
//
// The runtime's one error channel (STYLE.md "Errors: one channel per layer"):
// a `Status` carrying a code and a message, `StatusOr<T>` for functions that
// produce a value, and the `MOEC_RETURN_IF_ERROR` / `MOEC_ASSIGN_OR_RETURN`
// macros. Plain C++17, no exceptions; the C API maps the codes one to one.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_RUNTIME_SUPPORT_STATUS_H
#define MOEC_RUNTIME_SUPPORT_STATUS_H

#include <optional>
#include <sstream>
#include <string>
#include <utility>

namespace moec::runtime {

/// What went wrong, coarsely; the message says exactly what.
enum class StatusCode {
  /// Success.
  kOk = 0,
  /// The caller passed something unusable (bad path, token count, device).
  kInvalidArgument,
  /// A file, section, symbol or tensor that was asked for does not exist.
  kNotFound,
  /// Reading, writing, mapping or renaming a file failed at the OS level.
  kIoError,
  /// The artifact is malformed: truncated, corrupted, or inconsistent.
  kCorrupt,
  /// The artifact's format version is not one this runtime reads.
  kUnsupportedVersion,
  /// A device or library is not present (CUDA on this build or machine).
  kUnavailable,
  /// An allocation failed.
  kOutOfMemory,
  /// A bug in the runtime or in a kernel it loaded.
  kInternal,
  /// The artifact is not signed by a key the signature policy trusts.
  kUntrusted,
};

/// Returns the spelling of `code` used in messages (e.g. "corrupt").
const char *statusCodeName(StatusCode code);

/// A success or an error with a code and a human-readable message.
class [[nodiscard]] Status {
public:
  /// Constructs success.
  Status() = default;
  /// Constructs an error; `code` must not be `kOk`.
  Status(StatusCode code, std::string message)
      : code_(code), message_(std::move(message)) {}

  /// Returns success.
  static Status ok() { return Status(); }

  /// True when this is success.
  bool isOk() const { return code_ == StatusCode::kOk; }
  /// The code; `kOk` for success.
  StatusCode code() const { return code_; }
  /// The message; empty for success.
  const std::string &message() const { return message_; }
  /// "<code name>: <message>", or "ok".
  std::string toString() const;

  /// Returns this error with `prefix` and ": " put in front of its message;
  /// success stays success.
  Status withPrefix(const std::string &prefix) const;

private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

/// Either a value of type `T` or an error `Status`.
template <typename T> class [[nodiscard]] StatusOr {
public:
  /// Holds `value`.
  StatusOr(T value) : value_(std::move(value)) {}
  /// Holds the error `status`, which must not be success.
  StatusOr(Status status) : status_(std::move(status)) {
    if (status_.isOk())
      status_ = Status(StatusCode::kInternal, "StatusOr built from success");
  }

  /// True when a value is held.
  bool isOk() const { return status_.isOk(); }
  /// The error, or success when a value is held.
  const Status &status() const { return status_; }

  /// The value; only valid when `isOk()` (as are all accessors below).
  T &value() & { return *value_; }
  /// The value, read-only.
  const T &value() const & { return *value_; }
  /// The value, moved out.
  T &&value() && { return std::move(*value_); }
  /// Member access to the value.
  T *operator->() { return &*value_; }
  /// Read-only member access to the value.
  const T *operator->() const { return &*value_; }
  /// The value.
  T &operator*() & { return *value_; }
  /// The value, read-only.
  const T &operator*() const & { return *value_; }

private:
  Status status_;
  std::optional<T> value_;
};

/// Concatenates `parts` with `operator<<` into one string; the building block
/// of every error message.
template <typename... Parts> std::string strCat(const Parts &...parts) {
  std::ostringstream os;
  (os << ... << parts);
  return os.str();
}

/// Builds an error status of `code` whose message is `parts` concatenated.
template <typename... Parts>
Status makeError(StatusCode code, const Parts &...parts) {
  return Status(code, strCat(parts...));
}

} // namespace moec::runtime

#define MOEC_STATUS_CONCAT_INNER(a, b) a##b
#define MOEC_STATUS_CONCAT(a, b) MOEC_STATUS_CONCAT_INNER(a, b)

/// Evaluates `expr` (a `Status`) and returns it from the enclosing function
/// when it is an error.
#define MOEC_RETURN_IF_ERROR(expr)                                             \
  MOEC_RETURN_IF_ERROR_IMPL(MOEC_STATUS_CONCAT(moecStatus_, __LINE__), expr)
#define MOEC_RETURN_IF_ERROR_IMPL(tmp, expr)                                   \
  do {                                                                         \
    ::moec::runtime::Status tmp = (expr);                                      \
    if (!tmp.isOk())                                                           \
      return tmp;                                                              \
  } while (false)

/// Evaluates `expr` (a `StatusOr<T>`); returns its error from the enclosing
/// function, or move-assigns its value to `lhs` (which may be a declaration).
#define MOEC_ASSIGN_OR_RETURN(lhs, expr)                                       \
  MOEC_ASSIGN_OR_RETURN_IMPL(MOEC_STATUS_CONCAT(moecStatusOr_, __LINE__), lhs, \
                             expr)
#define MOEC_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr)                             \
  auto tmp = (expr);                                                           \
  if (!tmp.isOk())                                                             \
    return tmp.status();                                                       \
  lhs = std::move(tmp).value()

#endif // MOEC_RUNTIME_SUPPORT_STATUS_H
