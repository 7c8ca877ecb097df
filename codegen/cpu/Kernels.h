//===- Kernels.h - CPU kernel builders --------------------------*- C++ -*-===//
//
// Builders that append the `cpu` target's hot kernels to a module as
// `func.func`s on memrefs (token dimension `?`, row-major): the GEMM
// `y = x · wᵀ` with f32, bf16 or FP8 weights and f32 or FP8 activations
// (packed, register-blocked and vectorized), and the non-GEMM examples
// elementwise add, SiLU-mul and RMSNorm.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_CODEGEN_CPU_KERNELS_H
#define MOEC_CODEGEN_CPU_KERNELS_H

#include "codegen/cpu/CpuTarget.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Support/LLVM.h"

#include <cstdint>
#include <string>

namespace mlir::moec::cpu {

/// How the kernels are blocked for registers and caches.
struct CpuKernelOptions {
  /// f32 lanes per vector (16 for AVX-512, 8 for AVX2, 4 for SSE).
  int64_t lanes = 16;
  /// Token rows of a GEMM micro-tile.
  int64_t tileRows = 4;
  /// Output columns (weight rows) of a GEMM micro-tile.
  int64_t tileCols = 4;
  /// Upper bound, in bytes, of the stack buffer that holds dequantized FP8
  /// activation rows; it sets how many tokens share one dequantization of
  /// the weights.
  int64_t packedActivationBytes = 256 * 1024;
  /// Decode vectors of FP8 through f16 (`CpuTargetInfo::hasF16Convert`):
  /// the bit shuffling then runs on 16-bit lanes and one conversion widens
  /// them, cheaper than building f32 bits directly.
  bool f16Decode = false;

  /// The options that suit `target`: one vector register wide, and a
  /// micro-tile whose accumulators and operands fit its register file.
  static CpuKernelOptions forTarget(const CpuTargetInfo &target);
};

/// How a GEMM operand is stored.
enum class GemmElementType { F32, BF16, F8E4M3FN };

/// A GEMM kernel `y[T,N] = x[T,K] · w[N,K]ᵀ` (f32 accumulation, `y`
/// overwritten). Its arguments, in order:
///   `x: memref<?xKxf32>` or, for FP8 activations, `x: memref<?xKxf8E4M3FN>`
///   and `x_scale: memref<?x⌈K/B⌉xf32>` (one scale per token per `B`
///   channels);
///   `w: memref<NxKx{f32,bf16,f8E4M3FN}>` and, for FP8 weights,
///   `w_scale: memref<⌈N/B⌉x⌈K/B⌉xf32>` (one scale per `B`×`B` block);
///   `y: memref<?xNxf32>`.
/// FP8 operands are dequantized as `value × scale` (DESIGN.md §4).
struct GemmKernelSpec {
  /// Symbol of the kernel.
  std::string name;
  /// Output columns `N` and reduction length `K`.
  int64_t n = 0, k = 0;
  /// Storage of `w`: f32, bf16 or FP8 E4M3FN with block scales.
  GemmElementType weightType = GemmElementType::F32;
  /// Storage of `x`: f32 or FP8 E4M3FN with per-token block scales.
  GemmElementType activationType = GemmElementType::F32;
  /// Edge `B` of the FP8 scale blocks.
  int64_t scaleBlock = 128;
  /// When set, the kernel takes two more arguments, `columnBegin, columnEnd:
  /// index`, and computes only the output columns of the micro-tile panels
  /// in `[columnBegin, columnEnd)`: `columnBegin` must be a multiple of the
  /// micro-tile's columns and `columnEnd` one too or `N`. Every panel is
  /// computed exactly as by the whole kernel, so splitting the columns over
  /// threads leaves each element bit-identical. Such kernels are helpers
  /// (called with `func.call`), not ABI kernels.
  bool columnRange = false;
};

/// Appends the GEMM kernel `spec` to `module`. Fails, with a diagnostic at
/// the module, for a non-positive `N` or `K`, bf16 activations, a scale
/// block that is not a multiple of the vector width, or a duplicate name.
FailureOr<func::FuncOp> buildGemmKernel(ModuleOp module,
                                        const GemmKernelSpec &spec,
                                        const CpuKernelOptions &options);

/// Appends `name(a, b, y: memref<?xWIDTHxf32>)`, `y = a + b`, written as a
/// `linalg.generic`.
FailureOr<func::FuncOp> buildAddKernel(ModuleOp module, StringRef name,
                                       int64_t width);

/// Appends `name(gate, up, y: memref<?xWIDTHxf32>)`,
/// `y = gate · sigmoid(gate) · up`, written as a `linalg.generic`.
FailureOr<func::FuncOp> buildSiluMulKernel(ModuleOp module, StringRef name,
                                           int64_t width);

/// Appends `name(x: memref<?xHxf32>, weight: memref<Hxf32>,
/// y: memref<?xHxf32>)`, `y = x / sqrt(mean(x²) + eps) · weight` per row,
/// vectorized by hand.
FailureOr<func::FuncOp> buildRmsNormKernel(ModuleOp module, StringRef name,
                                           int64_t hidden, double eps,
                                           const CpuKernelOptions &options);

/// Loads every dialect the kernel builders emit into `ctx`.
void loadCpuKernelDialects(MLIRContext &ctx);

} // namespace mlir::moec::cpu

#endif // MOEC_CODEGEN_CPU_KERNELS_H
