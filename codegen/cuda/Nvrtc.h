//===- Nvrtc.h - Compiling CUDA C++ with NVRTC ------------------*- C++ -*-===//
//
// The compile step of the CUDA target: emitted CUDA C++ text in, PTX or a
// cubin out. libnvrtc is loaded with dlopen on first use (by the runtime's
// loader, runtime/nvrtc/Nvrtc.h, whose options `--std=c++17
// --gpu-architecture=<arch> -default-device` the runtime JIT uses too), so a
// machine without the CUDA toolkit gets an "unavailable" error instead of a
// link failure.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_CODEGEN_CUDA_NVRTC_H
#define MOEC_CODEGEN_CUDA_NVRTC_H

#include "codegen/cuda/TargetInfo.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <string>

namespace mlir::moec::cuda {

/// Whether libnvrtc could be loaded; if not and `why` is non-null, says why.
bool isNvrtcAvailable(std::string *why = nullptr);

/// Compiles `source` (one translation unit holding the kernel `kernelName`)
/// for `target` and returns its PTX. Errors name the kernel and carry NVRTC's
/// log; a missing libnvrtc is an "NVRTC unavailable" error.
llvm::Expected<std::string> compileToPtx(llvm::StringRef source,
                                         llvm::StringRef kernelName,
                                         const TargetInfo &target);

/// As `compileToPtx`, but returns the cubin for `target`'s real architecture.
llvm::Expected<std::string> compileToCubin(llvm::StringRef source,
                                           llvm::StringRef kernelName,
                                           const TargetInfo &target);

} // namespace mlir::moec::cuda

#endif // MOEC_CODEGEN_CUDA_NVRTC_H
