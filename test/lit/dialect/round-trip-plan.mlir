// A planned function (arena, steps, buffers with rows per token, a reshape alias, a constant)
// parses, verifies, prints, and parses again to the same text.
// RUN: moec-opt %s | moec-opt | FileCheck %s
// RUN: moec-opt %s | moec-opt > %t.1 && moec-opt %s > %t.2 && diff %t.1 %t.2

// CHECK-LABEL: func.func @planned
// CHECK-SAME: (%[[X:.+]]: tensor<?x16xf32> {moe.buffers = #moe.buffers<offsets = [0]>})
// CHECK-SAME: attributes {moe.plan = #moe.plan<arena_bytes = 1024, max_tokens = 4>}
// CHECK: %[[W:.+]] = moe.weight {{.+}} {moe.constant} : tensor<16xbf16>
// CHECK: %[[N:.+]] = moe.rms_norm %[[X]], %[[W]] {epsilon = {{.+}}, moe.buffers = #moe.buffers<offsets = [256], rows_per_token = [2]>, moe.step = #moe.step<0>}
// CHECK: %[[R:.+]] = moe.reshape %[[N]] {moe.buffers = #moe.buffers<offsets = [256]>}
// CHECK: moe.add %[[X]], %[[X]] {moe.buffers = #moe.buffers<offsets = [768]>, moe.step = #moe.step<1>}
func.func @planned(%x: tensor<?x16xf32> {moe.buffers = #moe.buffers<offsets = [0]>}) -> (tensor<?x4x4xf32>, tensor<?x16xf32>) attributes {moe.plan = #moe.plan<arena_bytes = 1024, max_tokens = 4>} {
  %w = moe.weight [#moe.tensor_ref<"model.safetensors", "model.norm.weight">] stored tensor<16xbf16> {moe.constant} : tensor<16xbf16>
  %n = moe.rms_norm %x, %w {epsilon = 1.0e-06 : f64, moe.buffers = #moe.buffers<offsets = [256], rows_per_token = [2]>, moe.step = #moe.step<0>} : tensor<?x16xf32>, tensor<16xbf16> -> tensor<?x16xf32>
  %r = moe.reshape %n {moe.buffers = #moe.buffers<offsets = [256]>} : tensor<?x16xf32> -> tensor<?x4x4xf32>
  %y = moe.add %x, %x {moe.buffers = #moe.buffers<offsets = [768]>, moe.step = #moe.step<1>} : tensor<?x16xf32>
  return %r, %y : tensor<?x4x4xf32>, tensor<?x16xf32>
}
