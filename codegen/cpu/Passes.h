//===- Passes.h - cpu target passes and pipeline ----------------*- C++ -*-===//
//
// Declares the `cpu` target's passes (Passes.td), the pipeline that lowers a
// module of kernels on memrefs to the LLVM dialect, and their registration
// with the pass registry so that `moec-opt --moec-cpu-lower-to-llvm` works.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_CODEGEN_CPU_PASSES_H
#define MOEC_CODEGEN_CPU_PASSES_H

#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlow.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Index/IR/IndexDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/UB/IR/UBOps.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Pass/Pass.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"

namespace mlir::moec::cpu {

// The passes of Passes.td. Declared here rather than through the generated
// Passes.h.inc so that tools including this header (through InitAll.h) do
// not depend on MoecCpuCodegen's tablegen step.

/// Creates `--moec-cpu-abi-wrappers`.
std::unique_ptr<Pass> createCpuAbiWrappersPass();

/// Creates `--moec-cpu-expand-math`.
std::unique_ptr<Pass> createCpuExpandMathPass();

/// Creates `--moec-convert-planned-to-cpu`.
std::unique_ptr<Pass> createConvertPlannedToCpuPass();

/// Suffix of the symbol a kernel is renamed to when its ABI wrapper takes
/// its name (`gemm` becomes `gemm.impl`).
inline constexpr llvm::StringLiteral kKernelImplSuffix = ".impl";

/// Builds, at `b`'s insertion point, the memref `type` (identity layout,
/// only dimension 0 dynamic) whose base pointer is `base` (`!llvm.ptr`) and
/// whose dynamic leading size is `tokens` (i64): the descriptor the ABI
/// wrappers build for every kernel argument.
Value buildAbiMemRef(OpBuilder &b, Location loc, MemRefType type, Value base,
                     Value tokens);

/// Adds the math expansions of `--moec-cpu-expand-math` to `patterns`.
void populateCpuExpandMathPatterns(RewritePatternSet &patterns);

/// Adds to `pm` (anchored on a `builtin.module`) the lowering of a module of
/// kernels written with linalg, scf, arith, math, vector and memref on
/// memrefs to the LLVM dialect, ABI wrappers included: the pipeline behind
/// `--moec-cpu-lower-to-llvm`.
void buildCpuLowerToLLVMPipeline(OpPassManager &pm);

/// Adds the dialects that CPU kernels are written in (and lowered to), and
/// their translation to LLVM IR, to `registry`. Inline, so that tools that
/// only parse such IR need not link MoecCpuCodegen.
inline void registerCpuCodegenDialects(DialectRegistry &registry) {
  registry.insert<affine::AffineDialect, arith::ArithDialect,
                  cf::ControlFlowDialect, func::FuncDialect,
                  index::IndexDialect, linalg::LinalgDialect, LLVM::LLVMDialect,
                  math::MathDialect, memref::MemRefDialect, scf::SCFDialect,
                  ub::UBDialect, vector::VectorDialect>();
  registerBuiltinDialectTranslation(registry);
  registerLLVMDialectTranslation(registry);
}

/// Registers the cpu passes and the `--moec-cpu-lower-to-llvm` pipeline.
void registerCpuCodegenPasses();

} // namespace mlir::moec::cpu

#endif // MOEC_CODEGEN_CPU_PASSES_H
