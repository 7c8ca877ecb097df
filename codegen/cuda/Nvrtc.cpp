//===- Nvrtc.cpp - Compiling CUDA C++ with NVRTC ----------------*- C++ -*-===//
//
// The compiler's view of NVRTC: a thin wrapper over the runtime's loader
// (runtime/nvrtc/Nvrtc.h), so that libnvrtc is found, loaded and called in
// one place and cubins built here use exactly the options of the runtime's
// JIT (`moec::runtime::nvrtcOptions`). Runtime statuses become llvm::Error
// here, at the boundary (STYLE.md "Errors: one channel per layer").
//
//===----------------------------------------------------------------------===//

#include "codegen/cuda/Nvrtc.h"

#include "runtime/nvrtc/Nvrtc.h"

using namespace mlir::moec::cuda;
namespace rt = ::moec::runtime;

namespace {

llvm::Error nvrtcError(llvm::StringRef kernelName, const llvm::Twine &what) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                 "NVRTC: kernel '" + kernelName + "': " + what);
}

llvm::Expected<std::string> compile(llvm::StringRef source,
                                    llvm::StringRef kernelName,
                                    const TargetInfo &target,
                                    rt::NvrtcOutput output) {
  rt::StatusOr<const rt::Nvrtc *> nvrtc = rt::Nvrtc::get();
  if (!nvrtc.isOk())
    return nvrtcError(kernelName, nvrtc.status().message());
  rt::StatusOr<std::string> result = (*nvrtc)->compile(
      std::string_view(source.data(), source.size()),
      kernelName.ends_with(".cu") ? kernelName.str()
                                  : (kernelName + ".cu").str(),
      std::string_view(target.gpuArchitecture.data(),
                       target.gpuArchitecture.size()),
      output);
  if (!result.isOk())
    return nvrtcError(kernelName, result.status().message());
  return std::move(result).value();
}

} // namespace

bool mlir::moec::cuda::isNvrtcAvailable(std::string *why) {
  rt::StatusOr<const rt::Nvrtc *> nvrtc = rt::Nvrtc::get();
  if (!nvrtc.isOk() && why)
    *why = nvrtc.status().message();
  return nvrtc.isOk();
}

llvm::Expected<std::string>
mlir::moec::cuda::compileToPtx(llvm::StringRef source,
                               llvm::StringRef kernelName,
                               const TargetInfo &target) {
  return compile(source, kernelName, target, rt::NvrtcOutput::kPtx);
}

llvm::Expected<std::string>
mlir::moec::cuda::compileToCubin(llvm::StringRef source,
                                 llvm::StringRef kernelName,
                                 const TargetInfo &target) {
  return compile(source, kernelName, target, rt::NvrtcOutput::kCubin);
}
