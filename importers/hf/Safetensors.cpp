//===- Safetensors.cpp - Validating safetensors reader ----------*- C++ -*-===//
//
// Parses and validates safetensors headers and checkpoint index files. Every
// rule has its own message naming the file and the tensor, so that a user
// with a broken download learns what is wrong; nothing here trusts a size,
// an offset or a name before it has been checked.
//
//===----------------------------------------------------------------------===//

#include "importers/hf/Safetensors.h"

#include "importers/hf/JsonDepth.h"
#include "runtime/support/File.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/ADT/Twine.h"
#include "llvm/Support/Endian.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <limits>

using namespace llvm;
using namespace mlir::moec::hf;

namespace {

/// Most JSON one tensor entry of a header may take; a real one takes 60-150
/// bytes, and each is parsed alone, so this bounds the parser's memory.
constexpr uint64_t kMaxEntryBytes = 64 * 1024;

/// Longest stretch of an untrusted name echoed into a message.
constexpr size_t kMaxQuotedLength = 200;

/// The keys a tensor entry must have, and the only ones it may have.
constexpr StringLiteral kEntryKeys[] = {"dtype", "shape", "data_offsets"};

/// The top-level header key that holds string metadata, not a tensor.
constexpr StringLiteral kMetadataKey = "__metadata__";

/// Returns a plain error carrying `message`.
Error makeError(const Twine &message) {
  return make_error<StringError>(message.str(), inconvertibleErrorCode());
}

/// Quotes an untrusted `name` for a message: non-printable bytes escaped,
/// long names cut.
std::string quote(StringRef name) {
  std::string out;
  raw_string_ostream os(out);
  os << '\'';
  printEscapedString(name.take_front(kMaxQuotedLength), os);
  if (name.size() > kMaxQuotedLength)
    os << "...";
  os << '\'';
  return out;
}

/// Names the JSON kind of `value`, with its article, for "but it is ..."
/// messages.
StringRef kindName(const json::Value &value) {
  switch (value.kind()) {
  case json::Value::Null:
    return "null";
  case json::Value::Boolean:
    return "a boolean";
  case json::Value::Number:
    return "a number";
  case json::Value::String:
    return "a string";
  case json::Value::Array:
    return "an array";
  case json::Value::Object:
    return "an object";
  }
  return "a value";
}

std::string formatShape(ArrayRef<int64_t> shape) {
  std::string out;
  raw_string_ostream os(out);
  os << '[';
  interleaveComma(shape, os);
  os << ']';
  return out;
}

/// Decodes the JSON string literal `token` (quotes included).
std::string decodeJsonString(StringRef token) {
  if (!token.contains('\\'))
    return token.drop_front().drop_back().str();
  Expected<json::Value> value = json::parse(token);
  if (!value) {
    consumeError(value.takeError());
    return token.str();
  }
  if (std::optional<StringRef> str = value->getAsString())
    return str->str();
  return token.str();
}

/// Decodes the key token `token` (quotes included) of an object member,
/// refusing a malformed escape; `what` names the text in messages.
Expected<std::string> decodeKey(StringRef token, const Twine &what) {
  if (!token.contains('\\'))
    return token.drop_front().drop_back().str();
  Expected<json::Value> value = json::parse(token);
  if (!value)
    return makeError(what +
                     " is not valid JSON: " + toString(value.takeError()));
  return value->getAsString()->str();
}

/// The first key that some object of a JSON text repeats, read straight
/// from the text because json::Object keeps only the last of two equal keys.
struct KeyScan {
  bool hasDuplicate = false;
  std::string duplicateKey;
};

/// Scans `text` (one member value, small) for a repeated object key.
KeyScan scanKeys(StringRef text) {
  struct Frame {
    bool isObject;
    bool expectKey;
    StringSet<> keys;
  };
  std::vector<Frame> stack;
  KeyScan result;
  size_t i = 0, n = text.size();
  while (i < n) {
    char c = text[i];
    if (c == '{' || c == '[') {
      stack.push_back(Frame{c == '{', c == '{', {}});
      ++i;
      continue;
    }
    if (c == '}' || c == ']') {
      if (!stack.empty())
        stack.pop_back();
      ++i;
      continue;
    }
    if (c == ',') {
      if (!stack.empty() && stack.back().isObject)
        stack.back().expectKey = true;
      ++i;
      continue;
    }
    if (c != '"') {
      ++i;
      continue;
    }
    // A string literal: a key when it opens an object member.
    size_t start = i++;
    while (i < n && text[i] != '"')
      i += text[i] == '\\' ? 2 : 1;
    i = std::min(i + 1, n);
    if (stack.empty() || !stack.back().isObject || !stack.back().expectKey)
      continue;
    Frame &frame = stack.back();
    frame.expectKey = false;
    std::string key = decodeJsonString(text.slice(start, i));
    if (!frame.keys.insert(key).second) {
      result.hasDuplicate = true;
      result.duplicateKey = std::move(key);
      return result;
    }
  }
  return result;
}

/// True for the four JSON whitespace characters.
bool isJsonSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/// Names the JSON kind a value starting with `c` would have, for messages
/// about texts too large to parse whole.
StringRef kindOfFirstChar(char c) {
  switch (c) {
  case '{':
    return "an object";
  case '[':
    return "an array";
  case '"':
    return "a string";
  case 't':
  case 'f':
    return "a boolean";
  case 'n':
    return "null";
  default:
    return "a number";
  }
}

/// One member of a JSON object: its key as written (quotes and escapes
/// included) and its value's text, both spans of the object's text.
struct JsonMember {
  StringRef keyToken;
  StringRef value;
};

/// Texts up to this size that are not a JSON object are parsed whole, so
/// their message carries the JSON parser's own words.
constexpr size_t kParseWholeBytes = 1 << 20;

/// Walks the members of the JSON object `text` in text order without
/// building a tree: memory does not grow with the text, and each value is
/// left to the caller (who parses it alone, so that it is validated fully).
/// Checks the structure between values (braces, colons, commas, string
/// ends); `what` names the text in messages ("<path>: header"). Stops at the
/// first error `visit` returns.
Error forEachMember(StringRef text, const Twine &what,
                    function_ref<Error(const JsonMember &)> visit) {
  size_t i = 0, n = text.size();
  auto skipSpace = [&] {
    while (i < n && isJsonSpace(text[i]))
      ++i;
  };
  auto broken = [&](const Twine &why) {
    return makeError(what + " is not valid JSON: " + why + " at offset " +
                     Twine(i));
  };
  // Scans the string literal at `i`; false when the text ends inside it.
  auto skipString = [&] {
    for (++i; i < n; ++i) {
      if (text[i] == '\\')
        ++i;
      else if (text[i] == '"')
        return ++i, true;
    }
    return false;
  };
  skipSpace();
  if (i == n)
    return broken("the text is empty");
  if (text[i] != '{') {
    if (text.size() <= kParseWholeBytes) {
      Expected<json::Value> value = json::parse(text);
      if (!value)
        return makeError(what +
                         " is not valid JSON: " + toString(value.takeError()));
      return makeError(what + " must be a JSON object, but it is " +
                       kindName(*value));
    }
    return makeError(what + " must be a JSON object, but it is " +
                     kindOfFirstChar(text[i]));
  }
  ++i;
  skipSpace();
  bool first = true;
  while (true) {
    if (i == n)
      return broken("the object is not closed");
    if (text[i] == '}' && first) {
      ++i;
      break;
    }
    if (text[i] != '"')
      return broken("expected a string key");
    size_t keyStart = i;
    if (!skipString())
      return broken("a string is not closed");
    StringRef keyToken = text.slice(keyStart, i);
    skipSpace();
    if (i == n || text[i] != ':')
      return broken("expected ':' after a key");
    ++i;
    skipSpace();
    // The value: a string, a bracketed value (brackets counted outside
    // strings), or a scalar token ending at a delimiter.
    size_t valueStart = i;
    if (i < n && text[i] == '"') {
      if (!skipString())
        return broken("a string is not closed");
    } else if (i < n && (text[i] == '{' || text[i] == '[')) {
      size_t depth = 0;
      do {
        char c = text[i];
        if (c == '"') {
          if (!skipString())
            return broken("a string is not closed");
          continue;
        }
        if (c == '{' || c == '[')
          ++depth;
        else if (c == '}' || c == ']')
          --depth;
        ++i;
      } while (depth > 0 && i < n);
      if (depth > 0)
        return broken("a bracket is not closed");
    } else {
      while (i < n && text[i] != ',' && text[i] != '}' && !isJsonSpace(text[i]))
        ++i;
    }
    StringRef value = text.slice(valueStart, i);
    if (value.empty())
      return broken("expected a value");
    if (Error err = visit(JsonMember{keyToken, value}))
      return err;
    skipSpace();
    if (i < n && text[i] == ',') {
      ++i;
      skipSpace();
      first = false;
      continue;
    }
    if (i < n && text[i] == '}') {
      ++i;
      break;
    }
    return broken("expected ',' or '}'");
  }
  skipSpace();
  if (i != n)
    return broken("text follows the object");
  return Error::success();
}

/// Checks what can be checked of a JSON text before any of it is parsed:
/// UTF-8 and nesting depth. Both scans keep no state that grows.
Error checkJsonText(StringRef text, const Twine &what) {
  size_t badOffset = 0;
  if (!json::isUTF8(text, &badOffset))
    return makeError(what + " is not valid UTF-8 (first bad byte at offset " +
                     Twine(badOffset) + ")");
  if (nestsDeeperThan(text, kMaxJsonDepth))
    return makeError(what + " nests JSON deeper than " + Twine(kMaxJsonDepth) +
                     " levels");
  return Error::success();
}

/// Parses one member value alone; `what` names it in messages.
Expected<json::Value> parseValue(StringRef text, const Twine &what) {
  Expected<json::Value> value = json::parse(text);
  if (!value)
    return makeError(what +
                     " is not valid JSON: " + toString(value.takeError()));
  return value;
}

/// Spells "1 <noun>" or "<n> <noun>s".
std::string countOf(uint64_t n, StringRef noun) {
  return std::to_string(n) + " " + noun.str() + (n == 1 ? "" : "s");
}

/// Checks that a JSON text of `size` bytes describing `entries` tensors
/// stays within what that many tensors can need (see `kJsonBytesPerTensor`).
Error checkJsonBudget(uint64_t size, uint64_t entries, const Twine &what) {
  if (entries > kMaxTensors)
    return makeError(what + " lists " + Twine(entries) +
                     " tensors, more than the " + Twine(kMaxTensors) +
                     " a checkpoint may have");
  uint64_t budget = kJsonSlackBytes + kJsonBytesPerTensor * entries;
  if (size > budget)
    return makeError(what + " is " + Twine(size) + " bytes for " +
                     countOf(entries, "tensor") + "; at most " + Twine(budget) +
                     " bytes are accepted (" + Twine(kJsonBytesPerTensor) +
                     " per tensor plus " + Twine(kJsonSlackBytes) + ")");
  return Error::success();
}

/// Prints `value` as JSON, cut like an untrusted name.
std::string jsonText(const json::Value &value) {
  std::string out;
  raw_string_ostream(out) << value;
  if (out.size() > kMaxQuotedLength)
    out = out.substr(0, kMaxQuotedLength) + "...";
  return out;
}

/// Reads a non-negative integer that fits in `uint64_t`; `what` names it.
Expected<uint64_t> readUnsigned(const json::Value &value, const Twine &what) {
  if (std::optional<uint64_t> v = value.getAsUINT64())
    return *v;
  // getAsInteger also accepts integral doubles such as 5.0, hence the sign
  // test.
  if (std::optional<int64_t> v = value.getAsInteger(); v && *v < 0)
    return makeError(what + " is " + Twine(*v) + ", which is negative");
  if (std::optional<double> d = value.getAsNumber()) {
    double whole;
    if (*d < 0)
      return makeError(what + " is " + jsonText(value) + ", which is negative");
    if (std::modf(*d, &whole) != 0.0)
      return makeError(what + " is " + jsonText(value) + ", not an integer");
    if (*d >= 18446744073709551616.0)
      return makeError(what + " is " + jsonText(value) +
                       ", which exceeds 64 bits");
    return makeError(what + " is the floating-point number " + jsonText(value) +
                     "; it must be an integer literal");
  }
  return makeError(what + " must be an integer, but it is " + kindName(value));
}

/// Checks that the index file names a shard as a plain file inside the
/// checkpoint folder.
Error checkShardName(StringRef shard, const Twine &where) {
  auto fail = [&](const Twine &why) {
    return makeError(where + ": shard name " + quote(shard) + " " + why +
                     "; shard names must be plain file names inside the "
                     "checkpoint folder");
  };
  if (shard.empty())
    return fail("is empty");
  if (shard.contains('\0'))
    return fail("contains a NUL character");
  if (shard.starts_with("/") || shard.starts_with("\\") ||
      sys::path::is_absolute(shard) ||
      sys::path::is_absolute(shard, sys::path::Style::windows))
    return fail("is an absolute path");
  SmallVector<StringRef, 4> parts;
  SplitString(shard, parts, "/\\");
  if (is_contained(parts, ".."))
    return fail("escapes the folder with '..'");
  if (shard.find_first_of("/\\") != StringRef::npos)
    return fail("contains a path separator");
  if (shard == ".")
    return fail("names the folder itself");
  return Error::success();
}

} // namespace

//===----------------------------------------------------------------------===//
// DType
//===----------------------------------------------------------------------===//

namespace {
struct DTypeEntry {
  DType dtype;
  StringLiteral name;
  uint64_t size;
};
constexpr DTypeEntry kDTypes[] = {
    {DType::F64, "F64", 8},         {DType::F32, "F32", 4},
    {DType::F16, "F16", 2},         {DType::BF16, "BF16", 2},
    {DType::F8_E4M3, "F8_E4M3", 1}, {DType::F8_E5M2, "F8_E5M2", 1},
    {DType::I64, "I64", 8},         {DType::I32, "I32", 4},
    {DType::I16, "I16", 2},         {DType::I8, "I8", 1},
    {DType::U64, "U64", 8},         {DType::U32, "U32", 4},
    {DType::U16, "U16", 2},         {DType::U8, "U8", 1},
    {DType::BOOL, "BOOL", 1},
};

const DTypeEntry &dtypeEntry(DType dtype) {
  for (const DTypeEntry &entry : kDTypes)
    if (entry.dtype == dtype)
      return entry;
  llvm_unreachable("every DType has a table entry");
}
} // namespace

uint64_t mlir::moec::hf::dtypeSize(DType dtype) {
  return dtypeEntry(dtype).size;
}

StringRef mlir::moec::hf::dtypeName(DType dtype) {
  return dtypeEntry(dtype).name;
}

std::optional<DType> mlir::moec::hf::parseDType(StringRef name) {
  for (const DTypeEntry &entry : kDTypes)
    if (entry.name == name)
      return entry.dtype;
  return std::nullopt;
}

namespace {
/// Validates the header entry `value` of tensor `name` against a data
/// section of `dataSize` bytes. `path` names the file in messages.
Expected<TensorInfo> parseEntry(StringRef path, StringRef name,
                                const json::Value &value, uint64_t dataSize) {
  std::string prefix = (path + ": tensor " + quote(name) + ": ").str();
  auto fail = [&](const Twine &message) { return makeError(prefix + message); };
  const json::Object *entry = value.getAsObject();
  if (!entry)
    return fail("entry must be a JSON object with keys dtype, shape and "
                "data_offsets, but it is " +
                kindName(value));
  SmallVector<std::string, 4> unknown;
  for (const auto &kv : *entry)
    if (!is_contained(kEntryKeys, StringRef(kv.first)))
      unknown.push_back(kv.first.str());
  if (!unknown.empty()) {
    llvm::sort(unknown);
    return fail("unexpected key " + quote(unknown.front()) +
                " (allowed: dtype, shape, data_offsets)");
  }
  for (StringLiteral key : kEntryKeys)
    if (!entry->get(key))
      return fail("missing key '" + key + "'");

  TensorInfo info;
  info.name = name.str();
  const json::Value &dtypeValue = *entry->get("dtype");
  std::optional<StringRef> dtypeString = dtypeValue.getAsString();
  if (!dtypeString)
    return fail("dtype must be a string, but it is " + kindName(dtypeValue));
  std::optional<DType> dtype = parseDType(*dtypeString);
  if (!dtype)
    return fail("unknown dtype " + quote(*dtypeString));
  info.dtype = *dtype;

  const json::Value &shapeValue = *entry->get("shape");
  const json::Array *shape = shapeValue.getAsArray();
  if (!shape)
    return fail("shape must be an array of integers, but it is " +
                kindName(shapeValue));
  uint64_t numElements = 1;
  bool elementsOverflow = false;
  for (auto [i, dimValue] : enumerate(*shape)) {
    Expected<uint64_t> dim =
        readUnsigned(dimValue, "shape dimension " + Twine(i));
    if (!dim)
      return fail(toString(dim.takeError()));
    if (*dim > uint64_t(std::numeric_limits<int64_t>::max()))
      return fail("shape dimension " + Twine(i) + " is " + Twine(*dim) +
                  ", which exceeds the int64 range");
    info.shape.push_back(static_cast<int64_t>(*dim));
    elementsOverflow |= __builtin_mul_overflow(numElements, *dim, &numElements);
  }
  // A zero dimension makes the true count 0 even if a partial product
  // overflowed.
  if (is_contained(info.shape, 0)) {
    numElements = 0;
    elementsOverflow = false;
  }
  if (elementsOverflow)
    return fail("element count of shape " + formatShape(info.shape) +
                " overflows 64 bits");
  info.numElements = numElements;
  uint64_t byteSize = 0;
  if (__builtin_mul_overflow(numElements, dtypeSize(info.dtype), &byteSize))
    return fail("byte size of shape " + formatShape(info.shape) + " of " +
                dtypeName(info.dtype) + " overflows 64 bits");

  const json::Value &offsetsValue = *entry->get("data_offsets");
  const json::Array *offsets = offsetsValue.getAsArray();
  if (!offsets)
    return fail("data_offsets must be an array of two integers, but it is " +
                kindName(offsetsValue));
  if (offsets->size() != 2)
    return fail("data_offsets must be an array of two integers, but it has " +
                countOf(offsets->size(), "element"));
  Expected<uint64_t> begin = readUnsigned((*offsets)[0], "data_offsets[0]");
  if (!begin)
    return fail(toString(begin.takeError()));
  Expected<uint64_t> end = readUnsigned((*offsets)[1], "data_offsets[1]");
  if (!end)
    return fail(toString(end.takeError()));
  if (*begin > *end)
    return fail("data_offsets begin " + Twine(*begin) +
                " is greater than end " + Twine(*end));
  info.begin = *begin;
  info.end = *end;
  if (info.end - info.begin != byteSize)
    return fail("byte range [" + Twine(info.begin) + ", " + Twine(info.end) +
                ") holds " + Twine(info.end - info.begin) +
                " bytes but shape " + formatShape(info.shape) + " of " +
                dtypeName(info.dtype) + " needs " + Twine(byteSize));
  if (info.end > dataSize)
    return fail("byte range [" + Twine(info.begin) + ", " + Twine(info.end) +
                ") extends past the end of the data section, which has " +
                Twine(dataSize) + " bytes");
  return info;
}
} // namespace

//===----------------------------------------------------------------------===//
// SafetensorsFile
//===----------------------------------------------------------------------===//

/// Maps (or, when small, reads) the regular file at `path`: opened without
/// blocking and checked with fstat first, so that a FIFO, a device such as
/// `/dev/zero` or a folder is refused before anything is read.
static Expected<std::unique_ptr<MemoryBuffer>> openRegular(StringRef path) {
  moec::runtime::StatusOr<moec::runtime::RegularFile> file =
      moec::runtime::openRegularFile(path.str());
  if (!file.isOk())
    return makeError(file.status().message());
  ErrorOr<std::unique_ptr<MemoryBuffer>> buffer = MemoryBuffer::getOpenFile(
      sys::fs::convertFDToNativeFile(file->fd.get()), path, file->size,
      /*RequiresNullTerminator=*/false);
  if (!buffer)
    return makeError(path + ": cannot read: " + buffer.getError().message());
  return std::move(*buffer);
}

Expected<std::unique_ptr<SafetensorsFile>>
SafetensorsFile::open(StringRef path) {
  // Large files are memory-mapped, so weight bytes are only paged in when a
  // later stage reads them.
  Expected<std::unique_ptr<MemoryBuffer>> buffer = openRegular(path);
  if (!buffer)
    return buffer.takeError();
  std::unique_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->buffer = std::move(*buffer);
  file->filePath = path.str();
  if (Error err = file->parse())
    return err;
  return file;
}

Expected<std::unique_ptr<SafetensorsFile>>
SafetensorsFile::fromBuffer(std::unique_ptr<MemoryBuffer> buffer) {
  assert(buffer && "fromBuffer needs a buffer");
  std::unique_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->filePath = buffer->getBufferIdentifier().str();
  file->buffer = std::move(buffer);
  if (Error err = file->parse())
    return err;
  return file;
}

const TensorInfo *SafetensorsFile::lookup(StringRef name) const {
  auto it = tensorIndex.find(name);
  return it == tensorIndex.end() ? nullptr : &tensorList[it->second];
}

ArrayRef<uint8_t> SafetensorsFile::bytes(const TensorInfo &info) const {
  assert(&info >= tensorList.data() &&
         &info < tensorList.data() + tensorList.size() &&
         "TensorInfo belongs to another file");
  const auto *start =
      reinterpret_cast<const uint8_t *>(buffer->getBufferStart());
  return ArrayRef<uint8_t>(start + dataStart + info.begin,
                           info.end - info.begin);
}

Error SafetensorsFile::parse() {
  StringRef contents = buffer->getBuffer();
  uint64_t size = contents.size();
  const std::string &path = filePath;
  if (size < 8)
    return makeError(path + ": file is " + Twine(size) +
                     " bytes, shorter than the 8-byte header length field");

  uint64_t headerSize = support::endian::read64le(contents.data());
  if (headerSize > kMaxHeaderSize)
    return makeError(path + ": header length " + Twine(headerSize) +
                     " exceeds " + Twine(kMaxHeaderSize) + " bytes");
  // Cannot overflow: headerSize <= kMaxHeaderSize.
  if (8 + headerSize > size)
    return makeError(path + ": header length " + Twine(headerSize) +
                     " runs past the end of the file, which has only " +
                     Twine(size - 8) + " bytes after the length field");
  StringRef header = contents.substr(8, headerSize);
  dataStart = 8 + headerSize;
  uint64_t dataSize = size - dataStart;

  // Count the entries before parsing any, so that the header's size can be
  // held against what that many tensors need; then parse one entry at a
  // time, so that memory follows the tensors, not the text.
  std::string what = path + ": header";
  if (Error err = checkJsonText(header, what))
    return err;
  uint64_t entries = 0;
  if (Error err =
          forEachMember(header, what, [&](const JsonMember &member) -> Error {
            entries += member.keyToken != "\"__metadata__\"";
            return Error::success();
          }))
    return err;
  if (Error err = checkJsonBudget(header.size(), entries, what))
    return err;
  tensorList.reserve(entries);

  // Entries are visited in header order so that the first error reported is
  // the same on every run.
  Error err =
      forEachMember(header, what, [&](const JsonMember &member) -> Error {
        Expected<std::string> key = decodeKey(member.keyToken, what);
        if (!key)
          return key.takeError();
        const std::string &name = *key;
        if (!tensorIndex.try_emplace(name, 0).second)
          return makeError(path + ": duplicate tensor name " + quote(name));
        bool isMetadata = StringRef(name) == kMetadataKey;
        std::string where = isMetadata ? (path + ": " + kMetadataKey).str()
                                       : path + ": tensor " + quote(name);
        uint64_t limit = isMetadata ? kJsonSlackBytes : kMaxEntryBytes;
        if (member.value.size() > limit)
          return makeError(where + ": entry is " + Twine(member.value.size()) +
                           " bytes of JSON, more than the " + Twine(limit) +
                           " accepted");
        KeyScan scan = scanKeys(member.value);
        if (scan.hasDuplicate)
          return makeError(
              isMetadata
                  ? path + ": duplicate key " + quote(scan.duplicateKey) +
                        " in " + kMetadataKey
                  : where + ": duplicate key " + quote(scan.duplicateKey));
        Expected<json::Value> value = parseValue(member.value, what);
        if (!value)
          return value.takeError();
        if (isMetadata) {
          const json::Object *meta = value->getAsObject();
          if (!meta)
            return makeError(path + ": " + kMetadataKey +
                             " must be an object of strings, but it is " +
                             kindName(*value));
          for (const auto &kv : *meta) {
            std::optional<StringRef> str = kv.second.getAsString();
            if (!str)
              return makeError(path + ": " + kMetadataKey + " value for key " +
                               quote(kv.first) +
                               " must be a string, but it is " +
                               kindName(kv.second));
            metadataMap[kv.first.str()] = str->str();
          }
          return Error::success();
        }
        Expected<TensorInfo> info = parseEntry(path, name, *value, dataSize);
        if (!info)
          return info.takeError();
        tensorList.push_back(std::move(*info));
        return Error::success();
      });
  if (err)
    return err;
  tensorIndex.erase(kMetadataKey);

  // The tensors must tile the data section exactly: sorted by offset, each
  // starts where the previous one ended and the last ends at the file end.
  // Sorting by end as well puts an empty tensor before a non-empty one at
  // the same offset.
  std::stable_sort(tensorList.begin(), tensorList.end(),
                   [](const TensorInfo &a, const TensorInfo &b) {
                     return std::tie(a.begin, a.end) < std::tie(b.begin, b.end);
                   });
  uint64_t cursor = 0;
  const TensorInfo *previous = nullptr;
  for (const TensorInfo &info : tensorList) {
    if (info.begin > cursor) {
      std::string where =
          previous ? "after tensor " + quote(previous->name) +
                         ", which ends at offset " + std::to_string(cursor)
                   : std::string("at the start of the data section");
      return makeError(path + ": gap of " +
                       countOf(info.begin - cursor, "unused byte") + " " +
                       where + ", before tensor " + quote(info.name) +
                       ", which begins at " + Twine(info.begin));
    }
    if (info.begin < cursor)
      return makeError(
          path + ": tensor " + quote(info.name) + ": byte range [" +
          Twine(info.begin) + ", " + Twine(info.end) + ") overlaps tensor " +
          quote(previous->name) + " at [" + Twine(previous->begin) + ", " +
          Twine(previous->end) + ")");
    cursor = info.end;
    previous = &info;
  }
  if (cursor != dataSize)
    return makeError(path + ": " + countOf(dataSize - cursor, "trailing byte") +
                     " after the last tensor: the data section "
                     "has " +
                     Twine(dataSize) + " bytes but the tensors end at " +
                     Twine(cursor));

  for (auto [i, info] : enumerate(tensorList))
    tensorIndex[info.name] = i;
  return Error::success();
}

//===----------------------------------------------------------------------===//
// Checkpoint
//===----------------------------------------------------------------------===//

Expected<std::unique_ptr<Checkpoint>> Checkpoint::open(StringRef dir) {
  if (!sys::fs::exists(dir))
    return makeError(dir + ": checkpoint folder does not exist");
  if (!sys::fs::is_directory(dir))
    return makeError(dir + ": checkpoint path is not a folder");
  std::unique_ptr<Checkpoint> checkpoint(new Checkpoint());
  checkpoint->dirPath = dir.str();
  SmallString<256> indexPath(dir);
  sys::path::append(indexPath, kIndexFileName);
  Error err = sys::fs::exists(indexPath) ? checkpoint->openSharded(indexPath)
                                         : checkpoint->openSingle();
  if (err)
    return err;
  for (const auto &entry : checkpoint->refs)
    checkpoint->names.push_back(entry.first().str());
  llvm::sort(checkpoint->names);
  return checkpoint;
}

TensorRef Checkpoint::lookup(StringRef name) const {
  auto it = refs.find(name);
  return it == refs.end() ? TensorRef() : it->second;
}

void Checkpoint::addFile(std::unique_ptr<SafetensorsFile> file) {
  for (const TensorInfo &info : file->tensors())
    refs[info.name] = TensorRef{file.get(), &info};
  fileList.push_back(std::move(file));
}

Error Checkpoint::openSingle() {
  std::vector<std::string> found;
  std::error_code ec;
  for (sys::fs::directory_iterator it(dirPath, ec), end; it != end && !ec;
       it.increment(ec)) {
    StringRef entryPath = it->path();
    // Regular files or links to them: the Hugging Face cache links snapshot
    // files into a blob store.
    if (sys::path::filename(entryPath).ends_with(".safetensors") &&
        sys::fs::is_regular_file(entryPath))
      found.push_back(sys::path::filename(entryPath).str());
  }
  if (ec)
    return makeError(dirPath + ": cannot list folder: " + ec.message());
  llvm::sort(found);
  if (found.empty())
    return makeError(dirPath + ": no *.safetensors file and no " +
                     kIndexFileName + " in the checkpoint folder");
  if (found.size() > 1) {
    std::string list;
    raw_string_ostream os(list);
    interleaveComma(found, os, [&](const std::string &f) { os << quote(f); });
    return makeError(dirPath + ": several *.safetensors files (" + list +
                     ") but no " + kIndexFileName +
                     " to say which tensors each holds");
  }
  SmallString<256> path(dirPath);
  sys::path::append(path, found.front());
  Expected<std::unique_ptr<SafetensorsFile>> file = SafetensorsFile::open(path);
  if (!file)
    return file.takeError();
  addFile(std::move(*file));
  return Error::success();
}

Expected<ShardIndex> mlir::moec::hf::parseShardIndex(StringRef text,
                                                     StringRef indexPath) {
  if (text.size() > SafetensorsFile::kMaxHeaderSize)
    return makeError(indexPath + ": index file of " + Twine(text.size()) +
                     " bytes exceeds " +
                     Twine(SafetensorsFile::kMaxHeaderSize) + " bytes");
  std::string what = (indexPath + ": index").str();
  if (Error err = checkJsonText(text, what))
    return std::move(err);

  // The top level: `weight_map` is found, not parsed; every other value is
  // small and parsed alone.
  std::optional<StringRef> weightMapText;
  StringSet<> topKeys;
  Error err = forEachMember(text, what, [&](const JsonMember &member) -> Error {
    Expected<std::string> key = decodeKey(member.keyToken, what);
    if (!key)
      return key.takeError();
    if (!topKeys.insert(*key).second)
      return makeError(indexPath + ": duplicate key " + quote(*key));
    if (*key == "weight_map") {
      weightMapText = member.value;
      return Error::success();
    }
    if (member.value.size() > kJsonSlackBytes)
      return makeError(indexPath + ": " + quote(*key) + " is " +
                       Twine(member.value.size()) +
                       " bytes of JSON, more than the " +
                       Twine(kJsonSlackBytes) + " accepted");
    KeyScan scan = scanKeys(member.value);
    if (scan.hasDuplicate)
      return makeError(indexPath + ": duplicate key " +
                       quote(scan.duplicateKey));
    Expected<json::Value> value = parseValue(member.value, what);
    if (!value)
      return value.takeError();
    if (*key == "metadata" && !value->getAsObject())
      return makeError(indexPath +
                       ": 'metadata' must be an object, but it is " +
                       kindName(*value));
    return Error::success();
  });
  if (err)
    return std::move(err);
  if (!weightMapText)
    return makeError(indexPath + ": missing key 'weight_map'");
  if (weightMapText->front() != '{')
    return makeError(indexPath +
                     ": 'weight_map' must be an object mapping tensor names "
                     "to shard file names, but it is " +
                     kindOfFirstChar(weightMapText->front()));

  uint64_t entries = 0;
  if (Error err =
          forEachMember(*weightMapText, what, [&](const JsonMember &) -> Error {
            ++entries;
            return Error::success();
          }))
    return std::move(err);
  if (entries == 0)
    return makeError(indexPath + ": 'weight_map' lists no tensors");
  if (Error err = checkJsonBudget(text.size(), entries, what))
    return std::move(err);

  ShardIndex index;
  index.reserve(entries);
  err = forEachMember(
      *weightMapText, what, [&](const JsonMember &member) -> Error {
        Expected<std::string> name = decodeKey(member.keyToken, what);
        if (!name)
          return name.takeError();
        std::string where = (indexPath + ": tensor " + quote(*name)).str();
        if (member.value.front() != '"')
          return makeError(where +
                           ": weight_map entry must be a string (a shard "
                           "file name), but it is " +
                           kindOfFirstChar(member.value.front()));
        Expected<std::string> shard = decodeKey(member.value, what);
        if (!shard)
          return shard.takeError();
        if (Error err = checkShardName(*shard, where))
          return err;
        index.emplace_back(std::move(*name), std::move(*shard));
        return Error::success();
      });
  if (err)
    return std::move(err);
  llvm::sort(index,
             [](const auto &a, const auto &b) { return a.first < b.first; });
  for (size_t i = 1; i < index.size(); ++i)
    if (index[i].first == index[i - 1].first)
      return makeError(indexPath + ": duplicate tensor name " +
                       quote(index[i].first) + " in weight_map");
  return index;
}

Error Checkpoint::openSharded(StringRef indexPath) {
  sharded = true;
  Expected<std::unique_ptr<MemoryBuffer>> buffer = openRegular(indexPath);
  if (!buffer)
    return buffer.takeError();
  Expected<ShardIndex> index =
      parseShardIndex((*buffer)->getBuffer(), indexPath);
  if (!index)
    return index.takeError();

  // Remember the first tensor (in name order) that names each shard.
  StringMap<std::string> shardOf;
  std::map<std::string, std::string> firstTensorOfShard;
  for (const auto &[name, shard] : *index) {
    shardOf[name] = shard;
    firstTensorOfShard.emplace(shard, name);
  }

  // Open and validate each shard once.
  StringMap<const SafetensorsFile *> fileOfShard;
  for (const auto &[shard, firstTensor] : firstTensorOfShard) {
    SmallString<256> path(dirPath);
    sys::path::append(path, shard);
    Expected<std::unique_ptr<SafetensorsFile>> file =
        SafetensorsFile::open(path);
    if (!file)
      return makeError(indexPath + ": tensor " + quote(firstTensor) +
                       ": cannot use shard " + quote(shard) + ": " +
                       toString(file.takeError()));
    fileOfShard[shard] = file->get();
    fileList.push_back(std::move(*file));
  }

  // Cross-check the shards against each other and against the weight_map.
  StringMap<const SafetensorsFile *> holder;
  for (const auto &file : fileList)
    for (const TensorInfo &info : file->tensors()) {
      auto [it, inserted] = holder.try_emplace(info.name, file.get());
      if (!inserted)
        return makeError(indexPath + ": tensor " + quote(info.name) +
                         " is stored in two shards, " +
                         quote(sys::path::filename(it->second->path())) +
                         " and " + quote(sys::path::filename(file->path())));
    }
  for (const auto &[name, shard] : *index) {
    const SafetensorsFile *file = fileOfShard[shard];
    if (file->lookup(name))
      continue;
    std::string hint;
    if (auto it = holder.find(name); it != holder.end())
      hint = " (it is in shard " +
             quote(sys::path::filename(it->second->path())) + ")";
    return makeError(indexPath + ": tensor " + quote(name) +
                     ": weight_map places it in shard " + quote(shard) +
                     ", but " + file->path() + " has no such tensor" + hint);
  }
  for (const auto &file : fileList)
    for (const TensorInfo &info : file->tensors()) {
      auto it = shardOf.find(info.name);
      if (it == shardOf.end())
        return makeError(file->path() + ": tensor " + quote(info.name) +
                         " is not listed in the weight_map of " + indexPath);
      // Unreachable after the checks above, kept as a guard.
      if (fileOfShard[it->second] != file.get())
        return makeError(file->path() + ": tensor " + quote(info.name) +
                         " is listed in the weight_map of " + indexPath +
                         " under shard " + quote(it->second));
    }

  for (const auto &file : fileList)
    for (const TensorInfo &info : file->tensors())
      refs[info.name] = TensorRef{file.get(), &info};
  return Error::success();
}
