//===- CpuBackend.cpp - The `cpu` target backend ----------------*- C++ -*-===//
//
// The `cpu` backend: the planned module's kernels built through MLIR and LLVM
// into one position-independent shared object per CPU variant (the x86-64
// psABI levels, docs/cpu-codegen.md), each an artifact section the runtime
// picks from by CPUID.
//
//===----------------------------------------------------------------------===//

#include "codegen/TargetBackend.h"
#include "codegen/cpu/CpuTarget.h"
#include "codegen/cpu/Passes.h"
#include "codegen/cpu/PlannedKernels.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/MemoryBuffer.h"

using namespace mlir;
using namespace mlir::moec;

namespace {

class CpuBackend final : public TargetBackend {
public:
  llvm::StringRef getName() const override { return "cpu"; }

  llvm::StringRef getDescription() const override {
    return "the CPU code twice: for the portable x86-64-v2 and for the most "
           "capable x86-64 level this machine has, once if they are the "
           "same; the runtime runs the best one the CPU it finds has the "
           "features for. cpu:<variant> is that variant only, several "
           "allowed: x86-64-v2, x86-64-v3, x86-64-v4, host = this machine's "
           "level, portable = x86-64-v2";
  }

  bool hasVariants() const override { return true; }

  llvm::Expected<std::vector<std::string>>
  resolveVariants(std::optional<llvm::StringRef> variant) const override {
    // The default pair: runs anywhere, and runs best here.
    if (!variant)
      return std::vector<std::string>{cpu::getPortableCpuVariant(),
                                      cpu::getHostCpuVariant()};
    if (*variant == "host")
      return std::vector<std::string>{cpu::getHostCpuVariant()};
    if (*variant == "portable")
      return std::vector<std::string>{cpu::getPortableCpuVariant()};
    std::vector<std::string> names = cpu::getCpuVariantNames();
    if (llvm::is_contained(names, variant->str()))
      return std::vector<std::string>{variant->str()};
    return llvm::createStringError(
        "unknown CPU variant '" + *variant + "' in --target=cpu:" + *variant +
        "; expected one of host, portable, " + llvm::join(names, ", "));
  }

  void buildLoweringPipeline(OpPassManager &pm) const override {
    cpu::buildCpuLowerToLLVMPipeline(pm);
  }

  llvm::Error serialize(ModuleOp module, llvm::ArrayRef<std::string> variants,
                        const TargetOptions &options,
                        TargetCode &code) const override {
    for (const std::string &variant : getOrderedVariants(variants)) {
      llvm::Expected<CpuSharedObject> object =
          buildSharedObject(module, variant, options.testCpuSharedObject);
      if (!object)
        return object.takeError();
      code.spelledTargets.push_back("cpu:" + object->cpu);
      code.cpuObjects.push_back(std::move(*object));
    }
    if (!code.cpuObjects.empty())
      code.targets.push_back("cpu");
    return llvm::Error::success();
  }

  llvm::Error printCode(ModuleOp module, llvm::ArrayRef<std::string> variants,
                        llvm::ArrayRef<TargetSelection> all,
                        const TargetOptions &options, TargetCode &code,
                        llvm::raw_ostream &os) const override {
    // `--emit-ptx` prints the CUDA targets' PTX only.
    if (options.emitPtx)
      return llvm::Error::success();
    for (const std::string &variant : getOrderedVariants(variants)) {
      cpu::CpuTargetOptions cpuOptions;
      cpuOptions.cpu = variant;
      FailureOr<OwningOpRef<ModuleOp>> kernels =
          cpu::buildPlannedKernels(module, cpuOptions);
      if (failed(kernels))
        return makeDiagnosedError();
      os << "// ---- target cpu:" << variant << " ----\n";
      (*kernels)->print(os);
      os << "\n";
    }
    return llvm::Error::success();
  }

private:
  /// `variants` without repeats, least capable first
  /// (`cpu::getCpuVariantNames()` order).
  static std::vector<std::string>
  getOrderedVariants(llvm::ArrayRef<std::string> variants) {
    std::vector<std::string> ordered;
    for (const std::string &variant : cpu::getCpuVariantNames())
      if (llvm::is_contained(variants, variant))
        ordered.push_back(variant);
    return ordered;
  }

  /// The CPU code of `variant`: the kernels built from the planned `module`
  /// for it, or the file `testSharedObject` (`--test-cpu-so`) when it is
  /// not empty; with the features the variant needs.
  static llvm::Expected<CpuSharedObject>
  buildSharedObject(ModuleOp module, llvm::StringRef variant,
                    const std::string &testSharedObject) {
    cpu::CpuTargetOptions options;
    options.cpu = variant.str();
    llvm::Expected<cpu::CpuTargetInfo> info = cpu::getCpuTargetInfo(options);
    if (!info)
      return info.takeError();
    CpuSharedObject object;
    object.cpu = info->cpu;
    object.features = info->requiredFeatures;
    if (testSharedObject.empty()) {
      if (failed(cpu::buildCpuSharedObject(module, object.bytes, options)))
        return makeDiagnosedError();
      return object;
    }
    llvm::ErrorOr<std::unique_ptr<llvm::MemoryBuffer>> file =
        llvm::MemoryBuffer::getFile(testSharedObject, /*IsText=*/false,
                                    /*RequiresNullTerminator=*/false);
    if (!file)
      return llvm::createStringError("cannot read '" + testSharedObject +
                                     "': " + file.getError().message());
    object.bytes = (*file)->getBuffer().str();
    return object;
  }
};

} // namespace

std::unique_ptr<TargetBackend> mlir::moec::createCpuBackend() {
  return std::make_unique<CpuBackend>();
}
