//===- ExternalData.h - ONNX external tensor data ---------------*- C++ -*-===//
//
// The rules for ONNX external data (tensor bytes stored in a file beside the
// model): where the file may be, which keys are allowed, and that the byte
// range exists and matches the tensor. The checks open the file the way the
// reader later will, so a check and a read see the same file.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_IMPORTERS_ONNX_EXTERNALDATA_H
#define MOEC_IMPORTERS_ONNX_EXTERNALDATA_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace mlir::moec {

/// A validated reference to the bytes of one tensor in an external file.
struct ExternalDataRef {
  /// The location as the model writes it, relative to the model's folder.
  std::string location;
  /// The first byte of the tensor in the file.
  uint64_t offset = 0;
  /// The tensor's size in bytes (equal to what its type needs).
  uint64_t length = 0;
  /// The `checksum` entry, kept as written (not verified).
  std::string checksum;
};

/// Checks the `external_data` entries (`key`, `value`) of the tensor called
/// `what` (e.g. "initializer 'w'") in the model at `modelPath`, whose type
/// needs `byteSize` bytes. The location must be relative, free of `..`,
/// symbolic links and hard links, and name a regular file under the model's
/// folder; the only keys are location, offset, length and checksum; offset
/// and length are decimal integers and `offset + length` lies within the
/// file, with `length == byteSize`. Every message names the model and `what`.
llvm::Expected<ExternalDataRef>
resolveExternalData(llvm::StringRef modelPath, llvm::StringRef what,
                    llvm::ArrayRef<std::pair<std::string, std::string>> entries,
                    uint64_t byteSize);

/// Reads the bytes `ref` points at, re-checking the file as
/// resolveExternalData does.
llvm::Expected<std::vector<char>> readExternalData(llvm::StringRef modelPath,
                                                   llvm::StringRef what,
                                                   const ExternalDataRef &ref);

} // namespace mlir::moec

#endif // MOEC_IMPORTERS_ONNX_EXTERNALDATA_H
