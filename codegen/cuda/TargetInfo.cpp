//===- TargetInfo.cpp - CUDA target registry --------------------*- C++ -*-===//
//
// The registry entries for the CUDA targets. Shared memory figures are the
// per-block opt-in maxima of each architecture (CUDA Programming Guide,
// "Technical Specifications per Compute Capability").
//
//===----------------------------------------------------------------------===//

#include "codegen/cuda/TargetInfo.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/raw_ostream.h"

#include <string>

using namespace mlir::moec::cuda;

static const TargetInfo kTargets[] = {
    // Ampere: no FP8 tensor cores, e4m3 decoded to bf16 in-kernel.
    {"sm_80",
     "sm_80",
     /*hasFp8TensorCores=*/false,
     {16, 8, 16},
     163 * 1024,
     16},
    // Ada: e4m3 mma.sync.
    {"sm_89", "sm_89", /*hasFp8TensorCores=*/true, {16, 8, 32}, 99 * 1024, 16},
    // Hopper: compiled as sm_90a so that wgmma is available; the GEMM
    // emitter still uses the sm_89 mma.sync shape until wgmma lands.
    {"sm_90",
     "sm_90a",
     /*hasFp8TensorCores=*/true,
     {16, 8, 32},
     227 * 1024,
     16},
};

llvm::ArrayRef<TargetInfo> mlir::moec::cuda::getCudaTargets() {
  return kTargets;
}

llvm::Expected<const TargetInfo &>
mlir::moec::cuda::lookupCudaTarget(llvm::StringRef name) {
  for (const TargetInfo &target : kTargets)
    if (target.name == name)
      return target;
  std::string known;
  llvm::raw_string_ostream os(known);
  llvm::interleave(
      kTargets, os, [&](const TargetInfo &t) { os << t.name; }, ", ");
  return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                 "unknown CUDA target '%s'; known targets: %s",
                                 name.str().c_str(), known.c_str());
}
