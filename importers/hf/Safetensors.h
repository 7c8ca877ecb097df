//===- Safetensors.h - Validating safetensors reader ------------*- C++ -*-===//
//
// Reads Hugging Face checkpoints: single `.safetensors` files and sharded
// folders with a `model.safetensors.index.json`. Files are untrusted, so the
// header is fully validated (sizes, offsets, dtypes, duplicates) before any
// tensor is handed out; weight bytes stay memory-mapped and are never copied.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_IMPORTERS_HF_SAFETENSORS_H
#define MOEC_IMPORTERS_HF_SAFETENSORS_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/MemoryBuffer.h"

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace mlir::moec::hf {

/// Most tensors one checkpoint (and so one file or index) may list: five
/// times DeepSeek-V3's ~92,000, and a bound on what a header may make the
/// reader allocate.
constexpr uint64_t kMaxTensors = uint64_t(1) << 19;

/// JSON bytes a safetensors header or index may spend per tensor it lists:
/// a real entry takes 60-150 bytes. Beyond that a header is refused before
/// any entry is parsed, so that a large text cannot cost memory or time out
/// of proportion to what it describes.
constexpr uint64_t kJsonBytesPerTensor = 256;

/// JSON bytes allowed on top of the per-tensor budget, for `__metadata__`,
/// an index's `metadata` and formatting; also the most any one of those
/// values may take.
constexpr uint64_t kJsonSlackBytes = uint64_t(1) << 20;

/// Element types a safetensors header may name.
enum class DType : uint8_t {
  F64,
  F32,
  F16,
  BF16,
  F8_E4M3,
  F8_E5M2,
  I64,
  I32,
  I16,
  I8,
  U64,
  U32,
  U16,
  U8,
  BOOL,
};

/// Returns the size in bytes of one element of `dtype`.
uint64_t dtypeSize(DType dtype);

/// Returns the safetensors spelling of `dtype` (e.g. "BF16").
llvm::StringRef dtypeName(DType dtype);

/// Parses the safetensors spelling `name` of a dtype; std::nullopt when the
/// name is unknown.
std::optional<DType> parseDType(llvm::StringRef name);

/// One validated tensor entry of a safetensors header.
struct TensorInfo {
  /// The tensor name, as written in the header.
  std::string name;
  /// The element type.
  DType dtype = DType::F32;
  /// The dimensions, each non-negative; empty for a scalar.
  llvm::SmallVector<int64_t, 4> shape;
  /// Byte offsets `[begin, end)` relative to the start of the data section.
  uint64_t begin = 0, end = 0;
  /// Product of `shape` (1 for a scalar); `end - begin` equals
  /// `numElements * dtypeSize(dtype)`.
  uint64_t numElements = 0;
};

/// A memory-mapped, validated `.safetensors` file.
///
/// Layout: an 8-byte little-endian header length N, N bytes of UTF-8 JSON,
/// then the data section, which the tensors tile exactly.
class SafetensorsFile {
public:
  /// Largest header length accepted, in bytes.
  static constexpr uint64_t kMaxHeaderSize = 100000000;

  /// Memory-maps the file at `path` and validates its header. Errors name
  /// `path` and, where there is one, the tensor at fault.
  static llvm::Expected<std::unique_ptr<SafetensorsFile>>
  open(llvm::StringRef path);

  /// Validates the contents of `buffer`, which the result takes over; the
  /// buffer identifier stands in for the path in messages and `path()`.
  static llvm::Expected<std::unique_ptr<SafetensorsFile>>
  fromBuffer(std::unique_ptr<llvm::MemoryBuffer> buffer);

  /// The path the file was opened from.
  llvm::StringRef path() const { return filePath; }

  /// All tensors in file order: sorted by `begin` (zero-sized tensors that
  /// share an offset keep their header order).
  llvm::ArrayRef<TensorInfo> tensors() const { return tensorList; }

  /// Returns the tensor called `name`, or null when there is none.
  const TensorInfo *lookup(llvm::StringRef name) const;

  /// The `__metadata__` string-to-string map (empty when absent).
  const std::map<std::string, std::string> &metadata() const {
    return metadataMap;
  }

  /// The raw little-endian bytes of `info`, which must be one of this file's
  /// `tensors()`. The bytes are memory-mapped and need not be aligned.
  llvm::ArrayRef<uint8_t> bytes(const TensorInfo &info) const;

  /// Absolute offset of the data section in the file (8 + header length).
  uint64_t dataOffset() const { return dataStart; }

  /// Total size of the file in bytes.
  uint64_t fileSize() const { return buffer->getBufferSize(); }

private:
  SafetensorsFile() = default;
  llvm::Error parse();

  std::unique_ptr<llvm::MemoryBuffer> buffer;
  std::string filePath;
  uint64_t dataStart = 0;
  std::vector<TensorInfo> tensorList;
  llvm::StringMap<size_t> tensorIndex;
  std::map<std::string, std::string> metadataMap;
};

/// The `weight_map` of a `model.safetensors.index.json`: (tensor name, shard
/// file name) pairs sorted by tensor name.
using ShardIndex = std::vector<std::pair<std::string, std::string>>;

/// Parses and validates the text of an index file: a JSON object whose
/// `weight_map` maps each tensor name once to a plain file name inside the
/// checkpoint folder. `indexPath` names the file in messages. Costs memory
/// in proportion to the entries, never to the text (docs/importers-hf.md).
llvm::Expected<ShardIndex> parseShardIndex(llvm::StringRef text,
                                           llvm::StringRef indexPath);

/// Where a checkpoint tensor lives: its file and its entry in that file.
struct TensorRef {
  /// The file holding the tensor; null when the lookup failed.
  const SafetensorsFile *file = nullptr;
  /// The tensor entry inside `file`; null when the lookup failed.
  const TensorInfo *info = nullptr;

  /// True when the lookup found the tensor.
  explicit operator bool() const { return info != nullptr; }
};

/// A Hugging Face checkpoint folder: one `*.safetensors` file, or shards
/// listed by `model.safetensors.index.json`. Every shard is opened and
/// validated once, and the index is cross-checked against the shards.
class Checkpoint {
public:
  /// Name of the index file of a sharded checkpoint.
  static constexpr llvm::StringLiteral kIndexFileName =
      "model.safetensors.index.json";

  /// Opens the checkpoint folder `dir`. Errors name the file and tensor.
  static llvm::Expected<std::unique_ptr<Checkpoint>> open(llvm::StringRef dir);

  /// The folder the checkpoint was opened from.
  llvm::StringRef dir() const { return dirPath; }

  /// True when the checkpoint came with an index file.
  bool isSharded() const { return sharded; }

  /// Returns the file and entry of tensor `name`; empty when there is none.
  TensorRef lookup(llvm::StringRef name) const;

  /// All tensor names of the checkpoint, sorted.
  llvm::ArrayRef<std::string> tensorNames() const { return names; }

  /// The opened files, sorted by file name.
  llvm::ArrayRef<std::unique_ptr<SafetensorsFile>> files() const {
    return fileList;
  }

private:
  Checkpoint() = default;
  llvm::Error openSingle();
  llvm::Error openSharded(llvm::StringRef indexPath);
  void addFile(std::unique_ptr<SafetensorsFile> file);

  std::string dirPath;
  bool sharded = false;
  std::vector<std::unique_ptr<SafetensorsFile>> fileList;
  std::vector<std::string> names;
  llvm::StringMap<TensorRef> refs;
};

} // namespace mlir::moec::hf

#endif // MOEC_IMPORTERS_HF_SAFETENSORS_H
