// Variants of the generic token-wise ops without a CUDA kernel give a clear
// diagnostic naming the step.
// RUN: split-file %s %t
// RUN: not moec %t/rows.mlir --from=fp8 --compile-to=codegen --target=sm_89 2>&1 | FileCheck %s --check-prefix=ROWS
// RUN: not moec %t/cast-f16.mlir --from=fp8 --compile-to=codegen --target=sm_89 2>&1 | FileCheck %s --check-prefix=CAST-F16
// RUN: not moec %t/softmax-e5m2.mlir --from=fp8 --compile-to=codegen --target=sm_89 2>&1 | FileCheck %s --check-prefix=SOFTMAX-E5M2

//--- rows.mlir
// Dispatched rows (2 per token) divided by a per-token column (1 per token):
// positions are computed from one row count.
// ROWS: error: cannot emit CUDA for step 1: expected the same rows per token for every operand and result, but got 2 and 1
func.func @forward(%x: tensor<?x8xf32>, %idx: tensor<?x2xi32>, %n: tensor<?x1xf32>) -> tensor<?x8xf32> {
  %rows, %offsets, %pos = moe.dispatch %x, %idx
      : tensor<?x8xf32>, tensor<?x2xi32> -> tensor<?x8xf32>, tensor<5xi32>, tensor<?xi32>
  %r = moe.binary <div> %rows, %n : tensor<?x8xf32>, tensor<?x1xf32> -> tensor<?x8xf32>
  return %r : tensor<?x8xf32>
}

//--- cast-f16.mlir
// f16 has no loads or stores.
// CAST-F16: error: cannot emit CUDA for step 0: unsupported element type of argument 1
func.func @forward(%x: tensor<?x8xf32>) -> tensor<?x8xf16> {
  %r = moe.cast %x : tensor<?x8xf32> -> tensor<?x8xf16>
  return %r : tensor<?x8xf16>
}

//--- softmax-e5m2.mlir
// Nor has e5m2.
// SOFTMAX-E5M2: error: cannot emit CUDA for step 0: unsupported element type of argument 0
func.func @forward(%x: tensor<?x8xf8E5M2>) -> tensor<?x8xf8E5M2> {
  %r = moe.softmax %x : tensor<?x8xf8E5M2>
  return %r : tensor<?x8xf8E5M2>
}
