//===- GemmEmitter.h - CUDA C++ for the block-scaled FP8 GEMM ---*- C++ -*-===//
//
// Emits the CUDA C++ text of one block-scaled FP8 GEMM kernel
// `y[T,N] f32 = x[T,K] · w[N,K]ᵀ`, instantiated with compile-time `N` and `K`
// and 128-wide scale blocks, choosing the tensor-core path from the target's
// `TargetInfo`. Compiling the text is a separate step (Nvrtc.h).
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_CODEGEN_CUDA_GEMMEMITTER_H
#define MOEC_CODEGEN_CUDA_GEMMEMITTER_H

#include "codegen/cuda/TargetInfo.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <string>

namespace mlir::moec::cuda {

/// The shape of one block-scaled GEMM.
struct Fp8GemmShape {
  /// Output features (rows of `w`); a multiple of 8.
  int64_t n = 0;
  /// Reduction size; a multiple of the scale block.
  int64_t k = 0;
  /// Scale block along `N` and `K` (DeepSeek-V3's 128).
  int64_t block = 128;
};

/// An emitted kernel and how to launch it.
struct EmittedKernel {
  /// The `extern "C"` entry point in `source`.
  std::string name;
  /// One CUDA C++ translation unit, no includes.
  std::string source;
  /// Threads per block (one warp).
  unsigned blockThreads = 32;
  /// Grid: `ceil(T / tileRows)` blocks along y, `n / tileCols` along x.
  unsigned tileRows = 16;
  unsigned tileCols = 8;
};

/// Emits `kernelName` computing `y = x · wᵀ` for e4m3 `x` [T, K] with f32
/// scales [T, K/block] and e4m3 `w` [N, K] with f32 scales
/// [ceil(N/block), K/block], for `target`. Errors on shapes the kernel does
/// not tile.
llvm::Expected<EmittedKernel> emitFp8BlockScaledGemm(llvm::StringRef kernelName,
                                                     const Fp8GemmShape &shape,
                                                     const TargetInfo &target);

} // namespace mlir::moec::cuda

#endif // MOEC_CODEGEN_CUDA_GEMMEMITTER_H
