//===- CudaProgram.h - A planned model as one CUDA translation unit -*- C++
//-*-===//
//
// The CUDA target's code generator: every step of a planned `@forward`
// becomes kernels in one CUDA C++ translation unit (the artifact's
// `kernels.cu`, the same text for every CUDA target) plus the launches that
// run it. `compileCudaProgram` turns the text into a cubin per target with
// NVRTC.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_CODEGEN_CUDA_CUDAPROGRAM_H
#define MOEC_CODEGEN_CUDA_CUDAPROGRAM_H

#include "codegen/cuda/CudaStep.h"
#include "codegen/cuda/TargetInfo.h"

#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/Error.h"

#include <map>
#include <string>
#include <vector>

namespace mlir::moec::cuda {

/// The CUDA code of one planned function.
struct CudaProgram {
  /// The translation unit: the prelude, the libraries the steps use (each
  /// once) and every step's kernels, in step order. A step whose kernels
  /// would only differ from an earlier step's by their names (the same op,
  /// shapes and attributes in another layer) launches the earlier step's
  /// kernels instead, so each distinct kernel is compiled once.
  std::string source;
  /// The launches of step `i` at index `i`.
  std::vector<llvm::SmallVector<CudaLaunch, 2>> launches;
  /// Device scratch shared by all steps: the largest any step needs.
  uint64_t workspaceBytes = 0;
};

/// Emits the CUDA program of `planned`'s `@forward` (else its only
/// function), which must be planned (`moe.plan`, `moe.step`), with
/// `options`. Fails with a diagnostic on the first step it cannot emit.
FailureOr<CudaProgram> buildCudaProgram(ModuleOp planned,
                                        const CudaCodegenOptions &options = {});

/// Compiles `program` with NVRTC for each of `targets`: cubins keyed by the
/// target's NVRTC architecture (`sm_80`, `sm_89`, `sm_90a`), in target order.
/// Errors carry NVRTC's log.
llvm::Expected<std::vector<std::pair<std::string, std::string>>>
compileCudaProgram(const CudaProgram &program,
                   llvm::ArrayRef<const TargetInfo *> targets);

/// The launches of `program` as C++ comments, one line per launch
/// (`// step 3: moec_step_3 grid (T, 4, 1) block (32, 1, 1) smem 0`, then
/// its tensor maps, if any: ` tma(a0 320x128 strides 320 box 64x64 sw64,
/// ...)`, dims and box innermost first), for `moec --compile-to=codegen` and
/// the lit tests.
std::string describeLaunches(const CudaProgram &program);

} // namespace mlir::moec::cuda

#endif // MOEC_CODEGEN_CUDA_CUDAPROGRAM_H
