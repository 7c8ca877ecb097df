//===- TargetInfo.h - CUDA target registry ----------------------*- C++ -*-===//
//
// The CUDA targets moec knows (`sm_80`, `sm_89`, `sm_90`) and the facts that
// emitters and the NVRTC step read about each one (DESIGN.md §5). Adding a GPU
// means adding a registry entry here and a lowering, never an `#ifdef`.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_CODEGEN_CUDA_TARGETINFO_H
#define MOEC_CODEGEN_CUDA_TARGETINFO_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>

namespace mlir::moec::cuda {

/// The MMA instruction shape `m x n x k` the GEMM path uses.
struct MmaShape {
  unsigned m = 0;
  unsigned n = 0;
  unsigned k = 0;
};

/// The facts about one CUDA target.
struct TargetInfo {
  /// The name users select with `--target`, e.g. `sm_90`.
  llvm::StringRef name;
  /// NVRTC's `--gpu-architecture` value, e.g. `sm_90a` (wgmma needs the `a`
  /// variant).
  llvm::StringRef gpuArchitecture;
  /// Whether the GEMM path runs e4m3 operands on tensor cores; otherwise FP8
  /// is decoded to bf16 in-kernel.
  bool hasFp8TensorCores = false;
  /// The `mma.sync` shape of the GEMM path (k = 32 for e4m3, 16 for bf16).
  MmaShape mmaShape;
  /// Shared memory available to one block, in bytes (opt-in maximum).
  uint32_t sharedMemoryPerBlock = 0;
  /// Bytes per vectorized global load.
  unsigned vectorWidthBytes = 16;
};

/// All registered CUDA targets, in ascending arch order.
llvm::ArrayRef<TargetInfo> getCudaTargets();

/// The target named `name`; an error listing the known targets otherwise.
llvm::Expected<const TargetInfo &> lookupCudaTarget(llvm::StringRef name);

} // namespace mlir::moec::cuda

#endif // MOEC_CODEGEN_CUDA_TARGETINFO_H
