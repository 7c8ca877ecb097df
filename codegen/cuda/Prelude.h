//===- Prelude.h - CUDA C++ every kernel of a model can use -----*- C++ -*-===//
//
// The first text of every emitted translation unit: element types, FP8 and
// bf16 conversions bit-exact with `runtime/fp8`, element loads and stores by
// type, warp and block reductions. Emitted source has no #includes (NVRTC
// compiles it with no include path), so everything kernels need is here or
// in a `CudaLibrary`.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_CODEGEN_CUDA_PRELUDE_H
#define MOEC_CODEGEN_CUDA_PRELUDE_H

#include "llvm/ADT/StringRef.h"

namespace mlir::moec::cuda {

/// The prelude's text (docs/cuda.md lists what it defines).
llvm::StringRef getCudaPrelude();

} // namespace mlir::moec::cuda

#endif // MOEC_CODEGEN_CUDA_PRELUDE_H
