// Variants of the elementwise ops without a CUDA kernel give a clear
// diagnostic naming the step.
// RUN: split-file %s %t
// RUN: not moec %t/add-fp8.mlir --from=fp8 --compile-to=codegen --target=sm_89 2>&1 | FileCheck %s --check-prefix=ADD-FP8
// RUN: not moec %t/quantize-bf16.mlir --from=fp8 --compile-to=codegen --target=sm_89 2>&1 | FileCheck %s --check-prefix=QUANTIZE-BF16
// RUN: not moec %t/quantize-block.mlir --from=fp8 --compile-to=codegen --target=sm_89 2>&1 | FileCheck %s --check-prefix=QUANTIZE-BLOCK
// RUN: not moec %t/quantize-col-major.mlir --from=fp8 --compile-to=codegen --target=sm_89 2>&1 | FileCheck %s --check-prefix=QUANTIZE-COL
// RUN: not moec %t/dequantize-col-major.mlir --from=fp8 --compile-to=codegen --target=sm_89 2>&1 | FileCheck %s --check-prefix=DEQUANTIZE-COL
// RUN: not moec %t/expand-tokens.mlir --from=fp8 --compile-to=codegen --target=sm_89 2>&1 | FileCheck %s --check-prefix=EXPAND
// RUN: not moec %t/embed-fp8.mlir --from=fp8 --compile-to=codegen --target=sm_89 2>&1 | FileCheck %s --check-prefix=EMBED

//--- add-fp8.mlir
// An FP8 result: floats are only stored as f32 or bf16.
// ADD-FP8: error: cannot emit CUDA for step 0: unsupported element type of `result` (expected f32 or bf16)
func.func @forward(%a: tensor<?x64xf8E4M3FN>, %b: tensor<?x64xf8E4M3FN>) -> tensor<?x64xf8E4M3FN> {
  %r = moe.add %a, %b : tensor<?x64xf8E4M3FN>
  return %r : tensor<?x64xf8E4M3FN>
}

//--- quantize-bf16.mlir
// The quantization kernel reads f32.
// QUANTIZE-BF16: error: cannot emit CUDA for step 0: quantization reads f32 `x`
func.func @forward(%x: tensor<?x256xbf16>) -> (tensor<?x256xf8E4M3FN>, tensor<?x2xf32>) {
  %q, %s = moe.quantize %x {scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>} : tensor<?x256xbf16> -> tensor<?x256xf8E4M3FN>, tensor<?x2xf32>
  return %q, %s : tensor<?x256xf8E4M3FN>, tensor<?x2xf32>
}

//--- quantize-block.mlir
// Activations are quantized per token: [1, B] blocks only.
// QUANTIZE-BLOCK: error: cannot emit CUDA for step 0: quantization must be e4m3fn in [1, B] blocks
func.func @forward(%x: tensor<4x256x256xf32>) -> (tensor<4x256x256xf8E4M3FN>, tensor<4x2x2xf32>) {
  %q, %s = moe.quantize %x {scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<4x256x256xf32> -> tensor<4x256x256xf8E4M3FN>, tensor<4x2x2xf32>
  return %q, %s : tensor<4x256x256xf8E4M3FN>, tensor<4x2x2xf32>
}

//--- quantize-col-major.mlir
// QUANTIZE-COL: error: cannot emit CUDA for step 0: only row-major block scales are supported
func.func @forward(%x: tensor<?x256xf32>) -> (tensor<?x256xf8E4M3FN>, tensor<?x2xf32>) {
  %q, %s = moe.quantize %x {scheme = #moe.block_scale<format = e4m3fn, block = [1, 128], placement = col_major>} : tensor<?x256xf32> -> tensor<?x256xf8E4M3FN>, tensor<?x2xf32>
  return %q, %s : tensor<?x256xf8E4M3FN>, tensor<?x2xf32>
}

//--- dequantize-col-major.mlir
// DEQUANTIZE-COL: error: cannot emit CUDA for step 0: only row-major block scales are supported
func.func @forward(%q: tensor<?x256xf8E4M3FN>, %s: tensor<?x2xf32>) -> tensor<?x256xf32> {
  %x = moe.dequantize %q, %s {scheme = #moe.block_scale<format = e4m3fn, block = [1, 128], placement = col_major>} : tensor<?x256xf8E4M3FN>, tensor<?x2xf32> -> tensor<?x256xf32>
  return %x : tensor<?x256xf32>
}

//--- expand-tokens.mlir
// A static leading dimension cannot be broadcast to the token count.
// EXPAND: error: cannot emit CUDA for step 0: cannot broadcast the leading dimension
func.func @forward(%x: tensor<1x8xf32>) -> tensor<?x8xf32> {
  %r = moe.expand %x : tensor<1x8xf32> -> tensor<?x8xf32>
  return %r : tensor<?x8xf32>
}

//--- embed-fp8.mlir
// EMBED: error: cannot emit CUDA for step 0: unsupported element type of `result` (expected f32 or bf16)
func.func @forward(%t: tensor<16x8xf32>, %ids: tensor<?xi64>) -> tensor<?x8xf8E4M3FN> {
  %r = moe.embed %t, %ids : tensor<16x8xf32>, tensor<?xi64> -> tensor<?x8xf8E4M3FN>
  return %r : tensor<?x8xf8E4M3FN>
}
