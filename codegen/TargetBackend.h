//===- TargetBackend.h - Target backends and their registry -----*- C++ -*-===//
//
// A target is a backend (IREE's `TargetBackend`): it names itself, carries its
// target facts, and turns a planned module into its part of the artifact
// (code sections and launch records) or prints that code for
// `--compile-to=codegen`. The driver only looks backends up by name in the
// `TargetRegistry`, which also holds the aliases (`sm_90` for `sm_90a`).
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_CODEGEN_TARGETBACKEND_H
#define MOEC_CODEGEN_TARGETBACKEND_H

#include "codegen/ArtifactEmitter.h"
#include "codegen/cuda/CudaProgram.h"
#include "codegen/cuda/TargetInfo.h"
#include "passes/OptionsBinder.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/raw_ostream.h"

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace mlir::moec {

/// An error whose diagnostic was already emitted through the MLIR context;
/// whoever reports errors prints nothing more for it.
class DiagnosedError : public llvm::ErrorInfo<DiagnosedError> {
public:
  static char ID;
  void log(llvm::raw_ostream &os) const override;
  std::error_code convertToErrorCode() const override;
};

/// A `DiagnosedError`: for a failure that already emitted its diagnostic.
llvm::Error makeDiagnosedError();

/// The options of the codegen phase: which backends, and how they lower.
struct TargetOptions {
  /// `--target`: comma-separated backend names, `cpu:<variant>` for one CPU
  /// variant.
  std::string targets = "cpu";
  /// `--cuda-tma`: load sm_90a's FP8 GEMM operand tiles with TMA.
  bool cudaTma = true;
  /// `--emit-ptx`: print PTX instead of CUDA C++ for `--compile-to=codegen`.
  bool emitPtx = false;
  /// `--test-cpu-so` (tests only): embed this file as every CPU variant's
  /// shared object instead of building the kernels.
  std::string testCpuSharedObject;

  /// Declares the options above with `binder`; the `--target` help lists the
  /// registered backends.
  void bindOptions(OptionsBinder &binder);
};

/// What the backends of one compilation produce: the artifact's code
/// sections and the targets its manifest lists.
struct TargetCode {
  /// One shared object per CPU variant.
  std::vector<CpuSharedObject> cpuObjects;
  /// The CUDA program every CUDA backend compiles (built once, by the
  /// first of them).
  std::optional<cuda::CudaProgram> cudaProgram;
  /// (NVRTC architecture, cubin) pairs.
  std::vector<std::pair<std::string, std::string>> cubins;
  /// NVRTC's version, when there is CUDA code.
  std::string nvrtcVersion;
  /// The manifest's targets: "cpu" and NVRTC architectures.
  std::vector<std::string> targets;
  /// The targets as `--target` spells them (`cpu:x86-64-v2`, `sm_90a`), for
  /// the compile summary.
  std::vector<std::string> spelledTargets;

  /// Fills the code fields of `options` (targets, CUDA program, cubins, NVRTC
  /// version) from this; `options` points into this object.
  void addTo(ArtifactOptions &options) const;
};

class TargetBackend;

/// A backend chosen by `--target`, with the variants asked of it.
struct TargetSelection {
  const TargetBackend *backend = nullptr;
  /// Its variants, in the order asked, possibly repeated (the CPU's ISA
  /// levels); empty for a backend without variants.
  std::vector<std::string> variants;
};

/// One code generation target.
class TargetBackend {
public:
  virtual ~TargetBackend();

  /// The name `--target` selects it by (`cpu`, `sm_89`, `sm_90a`).
  virtual llvm::StringRef getName() const = 0;
  /// One line for `--help`.
  virtual llvm::StringRef getDescription() const = 0;
  /// The CUDA target facts of a CUDA backend, else null.
  virtual const cuda::TargetInfo *getCudaTargetInfo() const { return nullptr; }
  /// Whether its code runs on a GPU.
  bool isGpu() const { return getCudaTargetInfo() != nullptr; }
  /// Whether `--target=<name>:<variant>` selects variants of it.
  virtual bool hasVariants() const { return false; }
  /// The variants `--target=<name>` (no `variant`) or
  /// `--target=<name>:<variant>` selects; an error naming the valid ones.
  virtual llvm::Expected<std::vector<std::string>>
  resolveVariants(std::optional<llvm::StringRef> variant) const;

  /// Adds to `pm` the passes that lower its kernel module to what it
  /// translates (the CPU: linalg/vector/scf to the LLVM dialect, the pipeline
  /// `serialize` runs before LLVM's code generation). The CUDA backends add
  /// none yet: their emitters write CUDA C++ from the planned ops directly.
  virtual void buildLoweringPipeline(OpPassManager &pm) const {}

  /// Builds its code for the planned `module` (its `variants` of it) into
  /// `code`.
  virtual llvm::Error serialize(ModuleOp module,
                                llvm::ArrayRef<std::string> variants,
                                const TargetOptions &options,
                                TargetCode &code) const = 0;
  /// Prints its code for the planned `module` to `os`
  /// (`--compile-to=codegen`); `all` is every selected backend, and `code`
  /// what earlier backends of this compilation left.
  virtual llvm::Error printCode(ModuleOp module,
                                llvm::ArrayRef<std::string> variants,
                                llvm::ArrayRef<TargetSelection> all,
                                const TargetOptions &options, TargetCode &code,
                                llvm::raw_ostream &os) const = 0;
};

/// The `cpu` backend: MLIR → LLVM → one shared object per ISA variant.
std::unique_ptr<TargetBackend> createCpuBackend();
/// The CUDA backend of `info`, named by its NVRTC architecture.
std::unique_ptr<TargetBackend> createCudaBackend(const cuda::TargetInfo &info);

/// The backends by name, with aliases, in registration order.
class TargetRegistry {
public:
  /// The built-in backends: `cpu`, `sm_80`, `sm_89`, `sm_90a` (alias
  /// `sm_90`).
  static const TargetRegistry &get();

  /// Registers `backend` under its name.
  void add(std::unique_ptr<TargetBackend> backend);
  /// Makes `alias` select the registered backend `name`.
  void addAlias(llvm::StringRef alias, llvm::StringRef name);

  /// The backend `name` (or an alias) selects; null when none does.
  const TargetBackend *lookup(llvm::StringRef name) const;
  /// The registered backends' names, in registration order.
  std::vector<std::string> getNames() const;
  /// The names `--target` accepts, for help and errors:
  /// "cpu, cpu:<variant>, sm_80, sm_89, sm_90a, sm_90 (alias of sm_90a)".
  std::string describeNames() const;
  /// Every backend with its description, one per line, for `--help`.
  std::string describeBackends() const;

  /// Parses a `--target` list: the selected backends in registration order,
  /// each once with the variants asked of it; an error for an unknown name
  /// listing the registered ones.
  llvm::Expected<std::vector<TargetSelection>>
  parseTargets(llvm::StringRef list) const;

private:
  std::vector<std::unique_ptr<TargetBackend>> backends;
  std::vector<std::pair<std::string, std::string>> aliases;
};

} // namespace mlir::moec

#endif // MOEC_CODEGEN_TARGETBACKEND_H
