//===- GemmEmitter.h - CUDA C++ for the GEMM steps --------------*- C++ -*-===//
//
// The CUDA kernels of `moe.matmul`, `moe.fp8_matmul`, `moe.grouped_matmul`
// and `moe.fp8_grouped_matmul` (docs/cuda.md, "The GEMM kernels"). Two
// kernel templates, shared as `CudaLibrary` text:
//
// - `moec_f32_gemm`: f32 activations times f32 or bf16 weights, a tiled
//   SIMT kernel with f32 FMA (f32-level accuracy on every target).
// - `moec_fp8_gemm`: block-scaled e4m3 times e4m3, f32 accumulation
//   promoted once per scale block; `wgmma` on sm_90a, e4m3 `mma.sync` on
//   sm_89, e4m3 decoded to bf16 and bf16 `mma.sync` on sm_80, selected by
//   `#if` in one source with one launch shape. On sm_90a the operand tiles
//   can come in by TMA (`GemmConfig::tma`: two tensor maps per launch).
//
// Both handle the dense and the grouped (expert-contiguous rows) forms, a
// bias, and the `silu_mul` epilogue. Fused quantization is a second launch
// (`appendFusedQuantize`).
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_CODEGEN_CUDA_GEMMEMITTER_H
#define MOEC_CODEGEN_CUDA_GEMMEMITTER_H

#include "codegen/cuda/CudaStep.h"

#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <string>

namespace mlir::moec::cuda {

/// What one GEMM kernel instantiation computes.
struct GemmConfig {
  /// Block-scaled e4m3 operands (`moec_fp8_gemm`); otherwise f32
  /// activations (`moec_f32_gemm`).
  bool fp8 = false;
  /// Weight rows (output features before the epilogue) and reduction size.
  int64_t n = 0;
  int64_t k = 0;
  /// Experts of a grouped GEMM (weights `[E, N, K]`, rows grouped by an
  /// `offsets` operand `[E + 1]`); 0 for a dense GEMM.
  int64_t experts = 0;
  /// `silu(y[:, :N/2]) * y[:, N/2:]`: the result has N/2 columns.
  bool siluMul = false;
  /// FP8 scale block along K (activations `[1, B]`, weights `[B, B]`).
  int64_t scaleBlock = 128;
  /// FP8 operands through the SIMT kernel (`moec_simt_gemm`), decoded to
  /// f32 on load: for scale blocks that are not a multiple of 64 or K not a
  /// multiple of 16, which the tensor-core kernel does not tile.
  bool fp8Simt = false;
  /// Tensor-core FP8 only: on sm_90a, load operand tiles with TMA through
  /// two tensor maps the kernel takes after `tokens` (`getGemmTensorMaps`);
  /// other targets ignore the maps and use `cp.async`.
  bool tma = false;
  /// f32 path: the C element type of the weights (`float`, `moec_bf16`).
  std::string weightCType = "float";
  /// The C element type of the bias, empty without a bias.
  std::string biasCType;
};

/// The launch geometry of a GEMM kernel for `config`.
struct GemmGeometry {
  /// Threads per block.
  unsigned threads = 0;
  /// Output rows per block (row tiles along grid y).
  int64_t tileRows = 0;
  /// Output columns per block (after the epilogue; grid x).
  int64_t tileCols = 0;
  /// Blocks along x: `ceil(outputColumns / tileCols)`.
  int64_t columnTiles = 0;
};

/// Checks that the kernels support `config`; the error says why not.
llvm::Error checkGemmConfig(const GemmConfig &config);

/// The launch geometry of `config` (which must pass `checkGemmConfig`).
GemmGeometry getGemmGeometry(const GemmConfig &config);

/// The libraries the kernel of `config` needs, in order.
llvm::SmallVector<CudaLibrary> getGemmLibraries(const GemmConfig &config);

/// The call of the kernel template for `config`: a C++ statement using the
/// given argument expressions (`offsets`, `xScale`, `wScale`, `bias` may be
/// empty where the config has none; `rows` is a `long long` expression;
/// `mapA` and `mapB`, the `const moec_tensor_map *` expressions of the maps
/// of x and w, are only used when `config.tma`).
std::string emitGemmCall(const GemmConfig &config, llvm::StringRef x,
                         llvm::StringRef xScale, llvm::StringRef offsets,
                         llvm::StringRef w, llvm::StringRef wScale,
                         llvm::StringRef bias, llvm::StringRef y,
                         llvm::StringRef rows, llvm::StringRef mapA = "",
                         llvm::StringRef mapB = "");

/// The tensor maps of a `config.tma` launch, in kernel parameter order:
/// x (argument `xArg`, `rowCapacity` rows: the row count at `max_tokens`) as
/// 2-d {K, rows} and w (argument `wArg`) as 3-d {K, N, E or 1}, both in
/// boxes of 64 bytes x 64 rows with a 64-byte swizzle.
llvm::SmallVector<TensorMapSpec, 2> getGemmTensorMaps(const GemmConfig &config,
                                                      unsigned xArg,
                                                      unsigned wArg,
                                                      int64_t rowCapacity);

/// Whether a tensor-core FP8 GEMM of `config` over activations of at most
/// `rowCapacity` rows can load through TMA (coordinates are 32-bit, strides
/// below 2^40).
bool canUseGemmTma(const GemmConfig &config, int64_t rowCapacity);

/// A whole translation unit (prelude, libraries, one `extern "C"` kernel
/// `name`) for `config`, for tests: parameters `(x, xScale, offsets, w,
/// wScale, bias, y, long long rows)` with the types of `config` (unused
/// ones are `const void *`), then `tmA, tmB` (`const __grid_constant__
/// moec_tensor_map`) when `config.tma`.
llvm::Expected<std::string> emitStandaloneGemm(llvm::StringRef name,
                                               const GemmConfig &config);

} // namespace mlir::moec::cuda

#endif // MOEC_CODEGEN_CUDA_GEMMEMITTER_H
