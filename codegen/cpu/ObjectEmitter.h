//===- ObjectEmitter.h - CPU kernels to a shared object ---------*- C++ -*-===//
//
// Compiles a module of CPU kernels (func.func on memrefs) into the bytes of a
// position-independent ELF shared object that exports one function per
// kernel with the runtime's ABI `void name(void *const *args, int64_t
// tokens)`. Everything runs in-process: MLIR lowering, LLVM -O3, the
// TargetMachine and lld as a library; the object links against nothing.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_CODEGEN_CPU_OBJECTEMITTER_H
#define MOEC_CODEGEN_CPU_OBJECTEMITTER_H

#include "codegen/cpu/CpuTarget.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Support/LLVM.h"

#include <string>

namespace mlir::moec::cpu {

/// Lowers `kernels` (left unchanged: a clone is lowered) through
/// `--moec-cpu-lower-to-llvm`, translates it to LLVM IR, optimises it for the
/// target of `options`, emits a PIC object and links it with lld into a
/// shared object with no dependencies and no undefined symbols. Returns the
/// shared object's bytes; on failure, the reason is emitted as a diagnostic
/// at `kernels` (including the external symbols the code would need, e.g.
/// `expf` from f64 math).
FailureOr<std::string> emitSharedObject(ModuleOp kernels,
                                        const CpuTargetOptions &options);

/// Like `emitSharedObject`, but stops after code generation and returns the
/// target assembly (for inspection and FileCheck tests).
FailureOr<std::string> emitAssembly(ModuleOp kernels,
                                    const CpuTargetOptions &options);

} // namespace mlir::moec::cpu

#endif // MOEC_CODEGEN_CPU_OBJECTEMITTER_H
