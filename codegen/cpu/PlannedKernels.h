//===- PlannedKernels.h - Planned moe steps to CPU kernels ------*- C++ -*-===//
//
// Turns every step of a planned `func.func @forward` (ops carrying
// `moe.step = #moe.step<i>`) into one CPU kernel `moec_step_<i>` whose
// arguments are the op's operands then its results, each a dense row-major
// buffer, and compiles them into the `cpu` target's shared object.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_CODEGEN_CPU_PLANNEDKERNELS_H
#define MOEC_CODEGEN_CPU_PLANNEDKERNELS_H

#include "codegen/cpu/CpuTarget.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"
#include "mlir/Support/LLVM.h"

#include <string>

namespace mlir::moec::cpu {

/// Builds a module holding one kernel `moec_step_<i>` per step op of the
/// planned function of `planned` (`@forward`, else its only function), plus
/// the private GEMM helpers they call. Kernel `i` takes `args` = the step's
/// operands in order, then its results in order, each as a dense row-major
/// buffer of the tensor type, the leading `?` being `tokens` times the
/// value's rows per token (`rows_per_token` of `#moe.buffers`). Fails with a
/// diagnostic naming the op and the step for anything it cannot compile.
FailureOr<OwningOpRef<ModuleOp>>
buildPlannedKernels(ModuleOp planned, const CpuTargetOptions &options = {});

/// `buildPlannedKernels` followed by `emitSharedObject`: the bytes of the
/// shared object exporting every `moec_step_<i>` go to `soBytes`.
LogicalResult buildCpuSharedObject(ModuleOp planned, std::string &soBytes,
                                   const CpuTargetOptions &options = {});

} // namespace mlir::moec::cpu

#endif // MOEC_CODEGEN_CPU_PLANNEDKERNELS_H
