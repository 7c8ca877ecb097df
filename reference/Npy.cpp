//===- Npy.cpp - NumPy .npy files of interpreter tensors --------*- C++ -*-===//
//
// A minimal `.npy` writer and f32 reader: enough for logits, routing dumps
// and pinned routing inputs.
//
//===----------------------------------------------------------------------===//

#include "reference/Npy.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"

#include <cstring>
#include <string>

using namespace mlir;
using namespace mlir::moec;

llvm::Error mlir::moec::writeNpy(llvm::StringRef path,
                                 const InterpTensor &tensor) {
  // Float tensors are written as f32, integer ones (router indices, dispatch
  // offsets) as i32 or i64.
  bool wide = false;
  if (tensor.isInteger())
    wide = cast<IntegerType>(tensor.elementType).getWidth() > 32;
  const char *descr = !tensor.isInteger() ? "<f4" : wide ? "<i8" : "<i4";
  std::string shape = "(";
  for (int64_t d : tensor.shape)
    shape += std::to_string(d) + (tensor.shape.size() == 1 ? "," : ", ");
  if (tensor.shape.size() > 1)
    shape.resize(shape.size() - 2);
  shape += ")";
  std::string header = std::string("{'descr': '") + descr +
                       "', 'fortran_order': False, 'shape': " + shape + ", }";
  // Magic (6) + version (2) + length (2) + header + '\n' is a multiple of 64.
  size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header += '\n';
  std::error_code ec;
  llvm::raw_fd_ostream os(path, ec, llvm::sys::fs::OF_None);
  if (ec)
    return llvm::createStringError(ec, "cannot write '" + path +
                                           "': " + ec.message());
  os << "\x93NUMPY" << char(1) << char(0) << char(header.size() & 0xff)
     << char(header.size() >> 8) << header;
  auto writeLittleEndian = [&](uint64_t bits, int bytes) {
    for (int i = 0; i < bytes; ++i)
      os << char((bits >> (8 * i)) & 0xff);
  };
  for (float value : tensor.floats) {
    uint32_t bits;
    std::memcpy(&bits, &value, 4);
    writeLittleEndian(bits, 4);
  }
  for (int64_t value : tensor.ints)
    writeLittleEndian(uint64_t(value), wide ? 8 : 4);
  os.close();
  if (os.has_error())
    return llvm::createStringError(os.error(), "cannot write '" + path + "'");
  return llvm::Error::success();
}

llvm::Expected<InterpTensor> mlir::moec::readNpy(llvm::StringRef path) {
  auto error = [&](const llvm::Twine &message) {
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "'" + path + "': " + message);
  };
  llvm::ErrorOr<std::unique_ptr<llvm::MemoryBuffer>> file =
      llvm::MemoryBuffer::getFile(path);
  if (!file)
    return error("cannot read: " + file.getError().message());
  llvm::StringRef bytes = (*file)->getBuffer();
  if (!bytes.starts_with("\x93NUMPY") || bytes.size() < 10)
    return error("not a .npy file");
  unsigned major = uint8_t(bytes[6]);
  size_t lengthBytes = major == 1 ? 2 : 4, length = 0;
  if (major < 1 || major > 3 || bytes.size() < 8 + lengthBytes)
    return error("unsupported .npy version " + llvm::Twine(major));
  for (size_t i = 0; i < lengthBytes; ++i)
    length |= size_t(uint8_t(bytes[8 + i])) << (8 * i);
  size_t dataStart = 8 + lengthBytes + length;
  if (bytes.size() < dataStart)
    return error("truncated header");
  llvm::StringRef header = bytes.slice(8 + lengthBytes, dataStart);
  if (!header.contains("'descr': '<f4'"))
    return error("expected little-endian float32 data ('<f4')");
  if (!header.contains("'fortran_order': False"))
    return error("expected C order");
  size_t open = header.find("'shape': (");
  size_t close = header.find(')', open);
  if (open == llvm::StringRef::npos || close == llvm::StringRef::npos)
    return error("no shape in the header");
  InterpTensor tensor;
  llvm::SmallVector<llvm::StringRef> dims;
  header.slice(open + 10, close).split(dims, ',', -1, /*KeepEmpty=*/false);
  for (llvm::StringRef dim : dims) {
    int64_t size;
    if (dim.trim().getAsInteger(10, size) || size < 0)
      return error("bad shape '" + header.slice(open + 9, close + 1) + "'");
    tensor.shape.push_back(size);
  }
  int64_t count = tensor.numElements();
  if (bytes.size() - dataStart != size_t(count) * 4)
    return error("holds " + llvm::Twine(bytes.size() - dataStart) +
                 " bytes of data, but its shape needs " +
                 llvm::Twine(count * 4));
  tensor.floats.resize(count);
  for (int64_t i = 0; i < count; ++i) {
    uint32_t bits = 0;
    for (int b = 0; b < 4; ++b)
      bits |= uint32_t(uint8_t(bytes[dataStart + 4 * i + b])) << (8 * b);
    std::memcpy(&tensor.floats[i], &bits, 4);
  }
  return tensor;
}
