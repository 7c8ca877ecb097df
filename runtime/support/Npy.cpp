//===- Npy.cpp - Reading NumPy .npy files -----------------------*- C++ -*-===//
//
// A .npy file is a 6-byte magic, a version, a little-endian header length,
// a Python dict literal (`{'descr': '<f4', 'fortran_order': False, 'shape':
// (3, 4), }`) and the raw data. The dict is parsed by a small recursive-
// descent reader that accepts exactly that grammar; everything the data size
// depends on is checked with overflow-safe arithmetic before it is used.
//
//===----------------------------------------------------------------------===//

#include "runtime/support/Npy.h"

#include "runtime/support/File.h"

#include <algorithm>
#include <cstring>
#include <string_view>

namespace moec::runtime {

size_t npyDtypeSize(NpyDtype dtype) {
  switch (dtype) {
  case NpyDtype::kF32:
  case NpyDtype::kI32:
    return 4;
  case NpyDtype::kF16:
    return 2;
  case NpyDtype::kI64:
    return 8;
  case NpyDtype::kI8:
  case NpyDtype::kU8:
    return 1;
  }
  return 0;
}

const char *npyDtypeName(NpyDtype dtype) {
  switch (dtype) {
  case NpyDtype::kF32:
    return "float32";
  case NpyDtype::kF16:
    return "float16";
  case NpyDtype::kI32:
    return "int32";
  case NpyDtype::kI64:
    return "int64";
  case NpyDtype::kI8:
    return "int8";
  case NpyDtype::kU8:
    return "uint8";
  }
  return "unknown";
}

namespace {

constexpr uint8_t kMagic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
/// Bytes before the header of a version 2.0 or 3.0 file, the longest.
constexpr size_t kMaxPreambleBytes = 12;

template <typename... Parts>
Status invalid(const std::string &path, const Parts &...parts) {
  return makeError(StatusCode::kInvalidArgument, path, ": ", parts...);
}

/// Where the header and the data of a .npy file lie.
struct NpyLayout {
  /// Offset and length of the header dict.
  uint64_t headerOffset = 0, headerBytes = 0;
  /// Offset of the first data byte.
  uint64_t dataOffset = 0;
};

/// Reads the magic, version and header length from the first `available`
/// bytes at `bytes` of a file of `fileSize` bytes, and checks that the whole
/// header lies in the file.
StatusOr<NpyLayout> parsePreamble(const uint8_t *bytes, size_t available,
                                  uint64_t fileSize, const std::string &path) {
  size_t magicBytes = std::min(available, sizeof(kMagic));
  if (magicBytes > 0 && std::memcmp(bytes, kMagic, magicBytes) != 0)
    return invalid(path, "not a NumPy .npy file (bad magic)");
  if (available < 8)
    return invalid(path, "truncated .npy header: the file has ", fileSize,
                   " bytes, too few for the magic and version");
  unsigned major = bytes[6], minor = bytes[7];
  if (major < 1 || major > 3 || minor != 0)
    return invalid(path, "unsupported .npy version ", major, ".", minor,
                   " (expected 1.0, 2.0 or 3.0)");
  // Version 1.0 stores the header length in 2 bytes, later ones in 4.
  size_t lengthBytes = major == 1 ? 2 : 4;
  if (available < 8 + lengthBytes)
    return invalid(path, "truncated .npy header: the file has ", fileSize,
                   " bytes, too few for the header length");
  NpyLayout layout;
  for (size_t i = 0; i < lengthBytes; ++i)
    layout.headerBytes |= uint64_t(bytes[8 + i]) << (8 * i);
  if (layout.headerBytes > kMaxNpyHeaderBytes)
    return invalid(path, ".npy header length ", layout.headerBytes,
                   " exceeds the limit of ", kMaxNpyHeaderBytes, " bytes");
  layout.headerOffset = 8 + lengthBytes;
  layout.dataOffset = layout.headerOffset + layout.headerBytes;
  if (layout.dataOffset > fileSize)
    return invalid(path, "truncated .npy header: it claims ",
                   layout.headerBytes, " bytes from offset ",
                   layout.headerOffset, ", but the file has ", fileSize,
                   " bytes");
  return layout;
}

/// Python's spelling of a shape tuple: "()", "(3,)", "(3, 4)".
std::string tupleText(const std::vector<int64_t> &shape) {
  std::string text = "(";
  for (size_t i = 0; i < shape.size(); ++i)
    text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + (shape.size() == 1 ? ",)" : ")");
}

/// Parses the header dict of a .npy file: exactly the keys `descr`,
/// `fortran_order` and `shape`, in any order, with a Python string, a
/// boolean and a tuple of non-negative integers as their values.
class HeaderParser {
public:
  HeaderParser(std::string_view text, const std::string &path)
      : text_(text), path_(path) {}

  /// Fills `array.dtype`, `array.descr` and `array.shape`.
  Status parse(NpyArray &array) {
    skipSpace();
    if (!consume('{'))
      return error("does not start with '{'");
    bool haveDescr = false, haveOrder = false, haveShape = false;
    skipSpace();
    while (!consume('}')) {
      std::string key;
      MOEC_RETURN_IF_ERROR(parseString("a key", key));
      skipSpace();
      if (!consume(':'))
        return error("expected ':' after the key '", key, "'");
      skipSpace();
      bool *seen = key == "descr"           ? &haveDescr
                   : key == "fortran_order" ? &haveOrder
                   : key == "shape"         ? &haveShape
                                            : nullptr;
      if (!seen)
        return error("unknown key '", key,
                     "' (expected 'descr', 'fortran_order' and 'shape')");
      if (*seen)
        return error("key '", key, "' appears twice");
      *seen = true;
      if (key == "descr")
        MOEC_RETURN_IF_ERROR(parseDescr(array));
      else if (key == "fortran_order")
        MOEC_RETURN_IF_ERROR(parseFortranOrder());
      else
        MOEC_RETURN_IF_ERROR(parseShape(array.shape));
      skipSpace();
      // Entries are separated by commas; one may trail before the '}'.
      if (consume(',')) {
        skipSpace();
      } else if (!peek('}')) {
        return error("expected ',' or '}' after the value of '", key, "'");
      }
    }
    skipSpace();
    if (pos_ != text_.size())
      return error("has bytes after the closing '}'");
    if (!haveDescr || !haveOrder || !haveShape)
      return error("key '",
                   !haveDescr   ? "descr"
                   : !haveOrder ? "fortran_order"
                                : "shape",
                   "' is missing");
    return Status::ok();
  }

private:
  template <typename... Parts> Status error(const Parts &...parts) const {
    return invalid(path_, ".npy header: ", parts...);
  }

  bool atEnd() const { return pos_ >= text_.size(); }
  bool peek(char c) const { return !atEnd() && text_[pos_] == c; }
  bool consume(char c) {
    if (!peek(c))
      return false;
    ++pos_;
    return true;
  }
  bool consumeWord(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word)
      return false;
    pos_ += word.size();
    return true;
  }
  void skipSpace() {
    while (!atEnd() && (text_[pos_] == ' ' || text_[pos_] == '\t' ||
                        text_[pos_] == '\n' || text_[pos_] == '\r'))
      ++pos_;
  }

  /// A Python string literal in single or double quotes, without escapes.
  Status parseString(const char *what, std::string &out) {
    char quote = atEnd() ? 0 : text_[pos_];
    if (quote != '\'' && quote != '"')
      return error("expected ", what, " in quotes at byte ", pos_);
    size_t end = text_.find(quote, pos_ + 1);
    if (end == std::string_view::npos)
      return error("unterminated string at byte ", pos_);
    std::string_view body = text_.substr(pos_ + 1, end - pos_ - 1);
    if (body.find('\\') != std::string_view::npos || body.size() > 64)
      return error("unsupported string at byte ", pos_,
                   " (escapes or more than 64 characters)");
    out.assign(body);
    pos_ = end + 1;
    return Status::ok();
  }

  Status parseDescr(NpyArray &array) {
    if (peek('[') || peek('{'))
      return error("key 'descr': structured dtypes are not supported");
    MOEC_RETURN_IF_ERROR(parseString("the dtype", array.descr));
    static const std::pair<const char *, NpyDtype> kDescrs[] = {
        {"<f4", NpyDtype::kF32}, {"<f2", NpyDtype::kF16},
        {"<i4", NpyDtype::kI32}, {"<i8", NpyDtype::kI64},
        {"|i1", NpyDtype::kI8},  {"|u1", NpyDtype::kU8}};
    for (const auto &[descr, dtype] : kDescrs) {
      if (array.descr == descr) {
        array.dtype = dtype;
        return Status::ok();
      }
    }
    return error("key 'descr': dtype '", array.descr,
                 "' is not supported (expected little-endian float32 '<f4', "
                 "float16 '<f2', int32 '<i4', int64 '<i8', int8 '|i1' or "
                 "uint8 '|u1')");
  }

  Status parseFortranOrder() {
    if (consumeWord("False"))
      return Status::ok();
    if (consumeWord("True"))
      return error("key 'fortran_order': Fortran-order arrays are not "
                   "supported (save a C-order array)");
    return error("key 'fortran_order': expected True or False at byte ", pos_);
  }

  /// A tuple of dimensions: "()", "(3,)", "(3, 4)" or "(3, 4,)".
  Status parseShape(std::vector<int64_t> &shape) {
    shape.clear();
    if (!consume('('))
      return error("key 'shape': expected a tuple at byte ", pos_);
    bool comma = false;
    skipSpace();
    while (!consume(')')) {
      if (!shape.empty() && !comma)
        return error("key 'shape': expected ',' or ')' at byte ", pos_);
      if (shape.size() == kMaxNpyRank)
        return error("key 'shape': more than ", kMaxNpyRank, " dimensions");
      size_t start = pos_;
      uint64_t value = 0;
      while (!atEnd() && text_[pos_] >= '0' && text_[pos_] <= '9') {
        unsigned digit = unsigned(text_[pos_] - '0');
        if (value > (uint64_t(INT64_MAX) - digit) / 10)
          return error("key 'shape': dimension ", shape.size(),
                       " exceeds 2^63-1");
        value = value * 10 + digit;
        ++pos_;
      }
      if (pos_ == start)
        return error("key 'shape': dimension ", shape.size(),
                     " is not a non-negative integer (at byte ", pos_, ")");
      shape.push_back(int64_t(value));
      skipSpace();
      comma = consume(',');
      skipSpace();
    }
    // Python reads "(3)" as the integer 3, not as a tuple.
    if (shape.size() == 1 && !comma)
      return error("key 'shape': (", shape[0],
                   ") is not a tuple (a 1-d shape is written (", shape[0],
                   ",))");
    return Status::ok();
  }

  std::string_view text_;
  const std::string &path_;
  size_t pos_ = 0;
};

/// The data bytes `array`'s dtype and shape need, or an error when the
/// product does not fit in 63 bits.
StatusOr<uint64_t> dataBytesOf(const NpyArray &array, const std::string &path) {
  // An array with a zero dimension is empty whatever its other dimensions.
  if (std::find(array.shape.begin(), array.shape.end(), 0) != array.shape.end())
    return uint64_t(0);
  uint64_t bytes = npyDtypeSize(array.dtype);
  for (int64_t d : array.shape)
    if (__builtin_mul_overflow(bytes, uint64_t(d), &bytes) ||
        bytes > uint64_t(INT64_MAX))
      return invalid(path, "shape ", tupleText(array.shape), " of ",
                     npyDtypeName(array.dtype),
                     " needs more than 2^63 data bytes");
  return bytes;
}

/// Parses the header dict of `layout` in `bytes` into `array` and returns
/// the data bytes it needs, checked against the `dataBytes` the file holds.
StatusOr<uint64_t> parseHeader(const uint8_t *header, const NpyLayout &layout,
                               uint64_t fileSize, const std::string &path,
                               NpyArray &array) {
  std::string_view text(reinterpret_cast<const char *>(header),
                        size_t(layout.headerBytes));
  MOEC_RETURN_IF_ERROR(HeaderParser(text, path).parse(array));
  MOEC_ASSIGN_OR_RETURN(uint64_t need, dataBytesOf(array, path));
  uint64_t have = fileSize - layout.dataOffset;
  if (have != need)
    return invalid(path, "holds ", have, " data bytes, but shape ",
                   tupleText(array.shape), " of ", npyDtypeName(array.dtype),
                   " needs ", need);
  return need;
}

} // namespace

StatusOr<NpyArray> parseNpy(const uint8_t *data, size_t size,
                            const std::string &path) {
  if (!data && size > 0)
    return invalid(path, "no data");
  MOEC_ASSIGN_OR_RETURN(
      NpyLayout layout,
      parsePreamble(data, std::min(size, kMaxPreambleBytes), size, path));
  NpyArray array;
  MOEC_ASSIGN_OR_RETURN(uint64_t bytes, parseHeader(data + layout.headerOffset,
                                                    layout, size, path, array));
  array.data.assign(data + layout.dataOffset, data + layout.dataOffset + bytes);
  return array;
}

StatusOr<NpyArray> readNpyFile(const std::string &path) {
  MOEC_ASSIGN_OR_RETURN(RegularFile file, openRegularFile(path));
  uint8_t preamble[kMaxPreambleBytes];
  size_t available = size_t(std::min<uint64_t>(file.size, sizeof(preamble)));
  MOEC_RETURN_IF_ERROR(
      readExactly(file.fd.get(), path, 0, preamble, available));
  MOEC_ASSIGN_OR_RETURN(NpyLayout layout,
                        parsePreamble(preamble, available, file.size, path));
  // The header is at most kMaxNpyHeaderBytes, and the data size it implies
  // is compared with the file size before the data is allocated.
  std::vector<uint8_t> header(size_t(layout.headerBytes));
  MOEC_RETURN_IF_ERROR(readExactly(file.fd.get(), path, layout.headerOffset,
                                   header.data(), header.size()));
  NpyArray array;
  MOEC_ASSIGN_OR_RETURN(uint64_t bytes, parseHeader(header.data(), layout,
                                                    file.size, path, array));
  array.data.resize(size_t(bytes));
  MOEC_RETURN_IF_ERROR(readExactly(file.fd.get(), path, layout.dataOffset,
                                   array.data.data(), bytes));
  return array;
}

} // namespace moec::runtime
