//===- LowerToLLVM.cpp - --moec-cpu-lower-to-llvm ---------------*- C++ -*-===//
//
// The `cpu` target's lowering of a module of kernels on memrefs to the LLVM
// dialect: ABI wrappers, linalg to loops, math expansion, then the upstream
// conversions in dependency order. Also registers the cpu passes and the
// pipeline with the pass registry.
//
//===----------------------------------------------------------------------===//

#include "codegen/cpu/Passes.h"

#include "mlir/Conversion/Passes.h"
#include "mlir/Dialect/Arith/Transforms/Passes.h"
#include "mlir/Dialect/Linalg/Passes.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"

namespace mlir::moec::cpu {
#define GEN_PASS_REGISTRATION
#include "codegen/cpu/Passes.h.inc"
} // namespace mlir::moec::cpu

using namespace mlir;

void mlir::moec::cpu::buildCpuLowerToLLVMPipeline(OpPassManager &pm) {
  // The ABI wrappers are written against memref types, so they come first;
  // their descriptor casts are reconciled by the last pass.
  pm.addPass(createCpuAbiWrappersPass());
  pm.addNestedPass<func::FuncOp>(createConvertLinalgToLoopsPass());
  pm.addNestedPass<func::FuncOp>(createCpuExpandMathPass());
  // After the math expansion, which computes bf16 functions in f32: the
  // bf16 <-> f32 casts become integer code (no `__truncsfbf2`).
  arith::ArithExpandOpsPassOptions expand;
  expand.includeBf16 = true;
  pm.addNestedPass<func::FuncOp>(arith::createArithExpandOpsPass(expand));
  pm.addNestedPass<func::FuncOp>(createConvertVectorToSCFPass());
  pm.addPass(createLowerAffinePass());
  pm.addPass(createSCFToControlFlowPass());
  pm.addPass(memref::createExpandStridedMetadataPass());
  pm.addPass(createLowerAffinePass());
  pm.addPass(createCanonicalizerPass());

  ConvertVectorToLLVMPassOptions vector;
  // Horizontal sums of GEMM accumulators may use a shuffle tree.
  vector.reassociateFPReductions = true;
  pm.addPass(createConvertVectorToLLVMPass(vector));
  pm.addPass(createFinalizeMemRefToLLVMConversionPass());
  pm.addPass(createConvertMathToLLVMPass());
  pm.addPass(createArithToLLVMConversionPass());
  pm.addPass(createConvertIndexToLLVMPass());
  pm.addPass(createConvertFuncToLLVMPass());
  pm.addPass(createConvertControlFlowToLLVMPass());
  pm.addPass(createUBToLLVMConversionPass());
  pm.addPass(createReconcileUnrealizedCastsPass());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
}

void mlir::moec::cpu::registerCpuCodegenPasses() {
  registerMoecCpuPasses();
  PassPipelineRegistration<>(
      "moec-cpu-lower-to-llvm",
      "Lower a module of CPU kernels on memrefs to the LLVM dialect, with "
      "the runtime's ABI wrappers",
      buildCpuLowerToLLVMPipeline);
}
