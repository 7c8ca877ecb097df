// Variants of the norm and rope ops without a CUDA kernel give a clear
// diagnostic naming the step.
// RUN: split-file %s %t
// RUN: not moec %t/rms-norm-fp8.mlir --from=fp8 --compile-to=codegen --target=sm_89 2>&1 | FileCheck %s --check-prefix=RMS-FP8
// RUN: not moec %t/add-rms-norm-fp8-sum.mlir --from=fp8 --compile-to=codegen --target=sm_89 2>&1 | FileCheck %s --check-prefix=SUM-FP8
// RUN: not moec %t/rope-fp8.mlir --from=fp8 --compile-to=codegen --target=sm_89 2>&1 | FileCheck %s --check-prefix=ROPE-FP8

//--- rms-norm-fp8.mlir
// Norms store f32 or bf16; FP8 comes from the fused quantization instead.
// RMS-FP8: error: cannot emit CUDA for step 0: unsupported element type of `result` (expected f32 or bf16)
func.func @forward(%x: tensor<?x64xf32>, %w: tensor<64xbf16>) -> tensor<?x64xf8E4M3FN> {
  %r = moe.rms_norm %x, %w {epsilon = 1.0e-06 : f64} : tensor<?x64xf32>, tensor<64xbf16> -> tensor<?x64xf8E4M3FN>
  return %r : tensor<?x64xf8E4M3FN>
}

//--- add-rms-norm-fp8-sum.mlir
// SUM-FP8: error: cannot emit CUDA for step 0: unsupported element type of `result` (expected f32 or bf16)
func.func @forward(%a: tensor<?x64xf8E4M3FN>, %b: tensor<?x64xf8E4M3FN>, %w: tensor<64xbf16>) -> (tensor<?x64xf8E4M3FN>, tensor<?x64xf8E4M3FN>) {
  %s, %r = moe.add_rms_norm %a, %b, %w {epsilon = 1.0e-06 : f64} : tensor<?x64xf8E4M3FN>, tensor<64xbf16> -> tensor<?x64xf8E4M3FN>
  return %s, %r : tensor<?x64xf8E4M3FN>, tensor<?x64xf8E4M3FN>
}

//--- rope-fp8.mlir
// ROPE-FP8: error: cannot emit CUDA for step 0: unsupported element type of `result` (expected f32 or bf16)
func.func @forward(%x: tensor<?x2x8xf8E4M3FN>, %p: tensor<?xi32>) -> tensor<?x2x8xf8E4M3FN> {
  %r = moe.rope %x, %p {theta = 10000.0 : f64} : tensor<?x2x8xf8E4M3FN>, tensor<?xi32>
  return %r : tensor<?x2x8xf8E4M3FN>
}
