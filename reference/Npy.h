//===- Npy.h - NumPy .npy files of interpreter tensors ----------*- C++ -*-===//
//
// The interpreter's file format for logits and routing dumps: NumPy `.npy`
// (format 1.0 written; 1.0 to 3.0 read), C order, little-endian.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_REFERENCE_NPY_H
#define MOEC_REFERENCE_NPY_H

#include "reference/Interpreter.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

namespace mlir::moec {

/// Writes `tensor` to `path` as a NumPy `.npy` file (format 1.0, C order):
/// float tensors as little-endian f32, integer ones as i32 (i64 when wider
/// than 32 bits).
llvm::Error writeNpy(llvm::StringRef path, const InterpTensor &tensor);

/// Reads a little-endian f32 `.npy` file (format 1.0 or 2.0, C order) into a
/// float tensor; its element type is left null.
llvm::Expected<InterpTensor> readNpy(llvm::StringRef path);

} // namespace mlir::moec

#endif // MOEC_REFERENCE_NPY_H
