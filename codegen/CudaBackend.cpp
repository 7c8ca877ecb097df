//===- CudaBackend.cpp - The CUDA target backends ---------------*- C++ -*-===//
//
// One backend per CUDA architecture of `cuda::getCudaTargets()`: the planned
// module's CUDA program (built once and shared by every CUDA backend of a
// compilation), compiled by NVRTC into this architecture's cubin, with the
// program's launches as the artifact's launch records (docs/cuda.md).
//
//===----------------------------------------------------------------------===//

#include "codegen/TargetBackend.h"
#include "codegen/cuda/Nvrtc.h"
#include "runtime/nvrtc/Nvrtc.h"

#include "llvm/ADT/STLExtras.h"

using namespace mlir;
using namespace mlir::moec;

namespace {

class CudaBackend final : public TargetBackend {
public:
  explicit CudaBackend(const cuda::TargetInfo &info)
      : info(info),
        description((llvm::Twine(info.hasFp8TensorCores
                                     ? "FP8 tensor cores (e4m3 mma "
                                     : "bf16 tensor cores, FP8 weights decoded "
                                       "in-kernel (mma ") +
                     llvm::Twine(info.mmaShape.m) + "x" +
                     llvm::Twine(info.mmaShape.n) + "x" +
                     llvm::Twine(info.mmaShape.k) + "), " +
                     llvm::Twine(info.sharedMemoryPerBlock / 1024) +
                     " KiB shared memory per block")
                        .str()) {}

  llvm::StringRef getName() const override { return info.gpuArchitecture; }
  llvm::StringRef getDescription() const override { return description; }
  const cuda::TargetInfo *getCudaTargetInfo() const override { return &info; }

  llvm::Error serialize(ModuleOp module, llvm::ArrayRef<std::string> variants,
                        const TargetOptions &options,
                        TargetCode &code) const override {
    if (llvm::Error error = buildProgram(module, options, code))
      return error;
    const cuda::TargetInfo *targets[] = {&info};
    llvm::Expected<std::vector<std::pair<std::string, std::string>>> cubins =
        cuda::compileCudaProgram(*code.cudaProgram, targets);
    if (!cubins)
      return cubins.takeError();
    llvm::append_range(code.cubins, *cubins);
    if (auto nvrtc = ::moec::runtime::Nvrtc::get(); nvrtc.isOk())
      code.nvrtcVersion = (*nvrtc)->version();
    code.targets.push_back(info.gpuArchitecture.str());
    code.spelledTargets.push_back(info.gpuArchitecture.str());
    return llvm::Error::success();
  }

  llvm::Error printCode(ModuleOp module, llvm::ArrayRef<std::string> variants,
                        llvm::ArrayRef<TargetSelection> all,
                        const TargetOptions &options, TargetCode &code,
                        llvm::raw_ostream &os) const override {
    bool first = !code.cudaProgram;
    if (llvm::Error error = buildProgram(module, options, code))
      return error;
    if (options.emitPtx) {
      llvm::Expected<std::string> text =
          cuda::compileToPtx(code.cudaProgram->source, "kernels.cu", info);
      if (!text)
        return text.takeError();
      os << "// ---- ptx " << info.gpuArchitecture << " ----\n" << *text;
      return llvm::Error::success();
    }
    // The source is the same for every CUDA target: the first one prints
    // it once for all of them.
    if (!first)
      return llvm::Error::success();
    os << "// ---- target cuda (";
    llvm::interleave(
        llvm::make_filter_range(
            all, [](const TargetSelection &s) { return s.backend->isGpu(); }),
        os, [&](const TargetSelection &s) { os << s.backend->getName(); },
        ", ");
    os << ") ----\n"
       << cuda::describeLaunches(*code.cudaProgram) << code.cudaProgram->source;
    return llvm::Error::success();
  }

private:
  /// Builds the CUDA program of `module` into `code` unless an earlier CUDA
  /// backend did.
  static llvm::Error buildProgram(ModuleOp module, const TargetOptions &options,
                                  TargetCode &code) {
    if (code.cudaProgram)
      return llvm::Error::success();
    cuda::CudaCodegenOptions cudaOptions;
    cudaOptions.tma = options.cudaTma;
    FailureOr<cuda::CudaProgram> program =
        cuda::buildCudaProgram(module, cudaOptions);
    if (failed(program))
      return makeDiagnosedError();
    code.cudaProgram = std::move(*program);
    return llvm::Error::success();
  }

  const cuda::TargetInfo &info;
  /// Its line in `--help`, from `info`.
  std::string description;
};

} // namespace

std::unique_ptr<TargetBackend>
mlir::moec::createCudaBackend(const cuda::TargetInfo &info) {
  return std::make_unique<CudaBackend>(info);
}
