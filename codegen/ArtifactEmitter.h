//===- ArtifactEmitter.h - Planned module to a .moea file -------*- C++ -*-===//
//
// Writes the deployable artifact (docs/artifact.md) of a module in the
// `planned` phase: the manifest (inputs, outputs, the arena's buffers, the
// weights and the launch steps of `@forward`), the CPU shared objects it is
// given (one per CPU variant), and the weights section, streamed from the
// checkpoint one weight at a time through their transforms. The file appears
// only when all of it was written.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_CODEGEN_ARTIFACTEMITTER_H
#define MOEC_CODEGEN_ARTIFACTEMITTER_H

#include "codegen/cuda/CudaProgram.h"
#include "dialects/WeightSource.h"
#include "runtime/artifact/Manifest.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Value.h"
#include "mlir/Support/LLVM.h"
#include "llvm/ADT/StringRef.h"

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mlir::moec {

/// What goes into an artifact besides the module.
struct ArtifactOptions {
  /// `compiler_version` of the manifest.
  std::string compilerVersion = "moec 0.1.0";
  /// The targets the file carries code for: "cpu" and the NVRTC
  /// architectures of CUDA targets ("sm_80", "sm_89", "sm_90a").
  std::vector<std::string> targets = {"cpu"};
  /// The CUDA program (needed when `targets` names a CUDA target): its
  /// launches go into the steps, its source into `kernels.cu`.
  const cuda::CudaProgram *cudaProgram = nullptr;
  /// (NVRTC architecture, cubin) pairs, one `cubin.<arch>` section each.
  std::vector<std::pair<std::string, std::string>> cubins;
  /// The manifest's `nvrtc_version` ("12.8"), when there is CUDA code.
  std::string nvrtcVersion;
  /// Benchmark artifacts: store no weight data; the runtime fills every
  /// weight on the device from this seed (`weights_device_filled`).
  std::optional<uint64_t> deviceFillSeed;
  /// Sign the artifact with the Ed25519 key of this seed (see
  /// `ArtifactWriter::setSigningKey`).
  std::optional<std::array<uint8_t, 32>> signingSeed;
  /// The function to emit.
  std::string function = "forward";
  /// The checkpoint folder; when empty, the module's `moe.checkpoint`
  /// attribute names it.
  std::string checkpointDir;
  /// Checkpoint files kept verbatim, as (file name, bytes): one section
  /// `file.<name>` each (docs/artifact.md, "Embedded checkpoint files").
  std::vector<std::pair<std::string, std::string>> embeddedFiles;
  /// The manifest's `generation` table (EOS ids, sampling defaults), when
  /// the checkpoint states any.
  std::optional<::moec::runtime::manifest::GenerationT> generation;
  /// Opens the weights in the checkpoint folder (the importers'
  /// `openCheckpointWeights`); needed unless no weight bytes are stored.
  WeightSourceOpener openWeights;
};

/// One compiled variant of the CPU code.
struct CpuSharedObject {
  /// The LLVM CPU it was compiled for, e.g. `x86-64-v4`; its section is
  /// `cpu.so.<cpu>`.
  std::string cpu;
  /// The features its code needs, by LLVM name, sorted
  /// (`CpuTargetInfo::requiredFeatures`).
  std::vector<std::string> features;
  /// The shared object's bytes.
  std::string bytes;
};

/// The manifest of a planned function and the constant value behind each
/// of its weights (`weights[i]` is manifest weight id `i`).
struct ArtifactPlan {
  /// Complete but for `source_weight_bytes`, which needs the checkpoint.
  ::moec::runtime::manifest::ManifestT manifest;
  /// The value each manifest weight holds.
  std::vector<Value> weights;
  /// Bytes of the `weights` section.
  uint64_t weightsSectionBytes = 0;
};

/// Figures for the compile summary.
struct ArtifactSummary {
  /// Launch steps, one kernel each.
  int64_t steps = 0;
  /// Weights in the artifact, and their bytes.
  int64_t weights = 0;
  uint64_t weightBytes = 0;
  /// Bytes of the checkpoint tensors the model reads.
  uint64_t checkpointBytes = 0;
  /// Arena size and the token count it is sized for.
  uint64_t arenaBytes = 0;
  int64_t maxTokens = 0;
  /// Size of the written file.
  uint64_t fileBytes = 0;
  /// "op_class=precision" for each entry of the manifest.
  std::vector<std::string> precision;
};

/// The name of step `index`'s kernel: `moec_step_<index>`.
std::string getStepKernelName(int64_t index);

/// Builds the manifest of `func`, which must be planned
/// (`--moec-plan-buffers`). Reads no weights. Emits a diagnostic and fails
/// for IR the artifact cannot describe.
FailureOr<ArtifactPlan> buildArtifactPlan(func::FuncOp func,
                                          const ArtifactOptions &options);

/// Writes the artifact of the planned `module` to `path` with each of
/// `cpuObjects` as a `cpu.so.<cpu>` section listed in the manifest's
/// `cpu_objects` (when `options.targets` has "cpu", which needs at least
/// one) and the CUDA code of `options`. On failure a diagnostic says why
/// and `path` is left as it was (an existing file survives).
FailureOr<ArtifactSummary> emitArtifact(ModuleOp module,
                                        ArrayRef<CpuSharedObject> cpuObjects,
                                        llvm::StringRef path,
                                        const ArtifactOptions &options);

} // namespace mlir::moec

#endif // MOEC_CODEGEN_ARTIFACTEMITTER_H
