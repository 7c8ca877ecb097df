//===- Npy.h - Reading NumPy .npy files -------------------------*- C++ -*-===//
//
// The `.npy` reader behind `moec-run --input`: a strict parser of the format
// (versions 1.0-3.0, C order, little-endian numeric dtypes) that validates the
// header, computes the exact data size from `descr` and `shape` with overflow
// checks and compares it with what the file holds before anything is
// allocated, so a tiny file claiming a huge shape costs nothing. A fuzz target
// drives `parseNpy`.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_RUNTIME_SUPPORT_NPY_H
#define MOEC_RUNTIME_SUPPORT_NPY_H

#include "runtime/support/Status.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace moec::runtime {

/// Largest .npy header (the dict after the length field) that is read.
/// NumPy itself refuses headers over 10,000 bytes unless told otherwise.
constexpr uint64_t kMaxNpyHeaderBytes = 65536;
/// Most dimensions an array may have (NumPy's own limit is 64).
constexpr size_t kMaxNpyRank = 64;

/// The element types `parseNpy` accepts: the fixed-size little-endian
/// numeric types moec inputs and outputs use.
enum class NpyDtype {
  kF32, ///< '<f4'
  kF16, ///< '<f2'
  kI32, ///< '<i4'
  kI64, ///< '<i8'
  kI8,  ///< '|i1'
  kU8,  ///< '|u1'
};

/// Bytes per element of `dtype`.
size_t npyDtypeSize(NpyDtype dtype);
/// NumPy's name of `dtype` ("float32", "int64", ...), for messages.
const char *npyDtypeName(NpyDtype dtype);

/// A whole .npy array: its element type, shape and raw C-order data.
struct NpyArray {
  /// The element type.
  NpyDtype dtype = NpyDtype::kF32;
  /// The header's `descr` as written (e.g. "<f4").
  std::string descr;
  /// The dimensions, each >= 0; empty for a 0-d array (one element).
  std::vector<int64_t> shape;
  /// The raw little-endian element bytes, exactly the product of `shape`
  /// times `npyDtypeSize(dtype)`.
  std::vector<uint8_t> data;
};

/// Parses the whole .npy image of `size` bytes at `data`. `path` only names
/// the image in messages, which start with "<path>: " and say which part of
/// the header is wrong; the data bytes must be exactly what the header's
/// `descr` and `shape` need. Errors have code kInvalidArgument.
StatusOr<NpyArray> parseNpy(const uint8_t *data, size_t size,
                            const std::string &path);

/// Reads the .npy file at `path`: opens it with `openRegularFile` (a FIFO or
/// a device is refused without blocking), reads and validates the header
/// (at most `kMaxNpyHeaderBytes`), and checks the data size the header
/// implies against the file size before allocating or reading the data.
/// Messages start with "<path>: " as for `parseNpy`.
StatusOr<NpyArray> readNpyFile(const std::string &path);

} // namespace moec::runtime

#endif // MOEC_RUNTIME_SUPPORT_NPY_H
