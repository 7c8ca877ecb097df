// --moec-fuse-gate-up turns silu_mul(gemm(x, Wg), gemm(x, Wu)) into one GEMM over concat(Wg, Wu) with the silu_mul epilogue.
// RUN: moec-opt %s --moec-fuse-gate-up | FileCheck %s
// RUN: moec-opt %s --moec-fuse-gate-up | moec-opt | FileCheck %s

// Routed experts: the stacked [E, N, K] weights are concatenated along N (dim 1).
// CHECK-LABEL: func.func @grouped
// CHECK-SAME: (%[[ROWS:.+]]: tensor<?x64xf32>, %[[OFF:.+]]: tensor<3xi32>)
func.func @grouped(%rows: tensor<?x64xf32>, %off: tensor<3xi32>) -> tensor<?x32xf32> {
  // CHECK: %[[W1:.+]] = moe.weight {{.+}}"l.0.w1"{{.+}} : tensor<2x32x64xbf16>
  // CHECK: %[[W3:.+]] = moe.weight {{.+}}"l.0.w3"{{.+}} : tensor<2x32x64xbf16>
  %w1 = moe.weight [#moe.tensor_ref<"m.safetensors", "l.0.w1">, #moe.tensor_ref<"m.safetensors", "l.1.w1">] stored tensor<32x64xbf16> {transforms = [#moe.stack]} : tensor<2x32x64xbf16>
  %w3 = moe.weight [#moe.tensor_ref<"m.safetensors", "l.0.w3">, #moe.tensor_ref<"m.safetensors", "l.1.w3">] stored tensor<32x64xbf16> {transforms = [#moe.stack]} : tensor<2x32x64xbf16>
  // CHECK: %[[W:.+]] = moe.concat %[[W1]], %[[W3]] {dim = 1 : i64} : tensor<2x32x64xbf16>, tensor<2x32x64xbf16> -> tensor<2x64x64xbf16>
  // CHECK: %[[Y:.+]] = moe.grouped_matmul %[[ROWS]], %[[OFF]], %[[W]] {epilogue = #moe.epilogue<silu_mul>} : tensor<?x64xf32>, tensor<3xi32>, tensor<2x64x64xbf16> -> tensor<?x32xf32>
  // CHECK-NOT: moe.silu_mul
  // CHECK: return %[[Y]]
  %g = moe.grouped_matmul %rows, %off, %w1 : tensor<?x64xf32>, tensor<3xi32>, tensor<2x32x64xbf16> -> tensor<?x32xf32>
  %u = moe.grouped_matmul %rows, %off, %w3 : tensor<?x64xf32>, tensor<3xi32>, tensor<2x32x64xbf16> -> tensor<?x32xf32>
  %h = moe.silu_mul %g, %u : tensor<?x32xf32>
  return %h : tensor<?x32xf32>
}

// Dense MLP (or shared expert) with biases: weights along dim 0, biases concatenated too.
// CHECK-LABEL: func.func @dense_with_bias
// CHECK-SAME: (%[[X:.+]]: tensor<?x64xf32>)
func.func @dense_with_bias(%x: tensor<?x64xf32>) -> tensor<?x96xf32> {
  %wg = moe.weight [#moe.tensor_ref<"m.safetensors", "mlp.gate_proj.weight">] stored tensor<96x64xbf16> role <mlp_gate> : tensor<96x64xbf16>
  %bg = moe.weight [#moe.tensor_ref<"m.safetensors", "mlp.gate_proj.bias">] stored tensor<96xbf16> role <mlp_gate> : tensor<96xbf16>
  %wu = moe.weight [#moe.tensor_ref<"m.safetensors", "mlp.up_proj.weight">] stored tensor<96x64xbf16> role <mlp_up> : tensor<96x64xbf16>
  %bu = moe.weight [#moe.tensor_ref<"m.safetensors", "mlp.up_proj.bias">] stored tensor<96xbf16> role <mlp_up> : tensor<96xbf16>
  // CHECK: %[[W:.+]] = moe.concat %{{.+}}, %{{.+}} {dim = 0 : i64} : tensor<96x64xbf16>, tensor<96x64xbf16> -> tensor<192x64xbf16>
  // CHECK: %[[B:.+]] = moe.concat %{{.+}}, %{{.+}} {dim = 0 : i64} : tensor<96xbf16>, tensor<96xbf16> -> tensor<192xbf16>
  // CHECK: %[[Y:.+]] = moe.matmul %[[X]], %[[W]] bias %[[B]] {epilogue = #moe.epilogue<silu_mul>} : tensor<?x64xf32>, tensor<192x64xbf16>, tensor<192xbf16> -> tensor<?x96xf32>
  // CHECK-NOT: moe.silu_mul
  // CHECK: return %[[Y]]
  %g = moe.matmul %x, %wg bias %bg : tensor<?x64xf32>, tensor<96x64xbf16>, tensor<96xbf16> -> tensor<?x96xf32>
  %u = moe.matmul %x, %wu bias %bu : tensor<?x64xf32>, tensor<96x64xbf16>, tensor<96xbf16> -> tensor<?x96xf32>
  %h = moe.silu_mul %g, %u : tensor<?x96xf32>
  return %h : tensor<?x96xf32>
}

// FP8 checkpoint experts split at N = 128, a multiple of the 128-row scale block:
// data and scales are concatenated and dequantized once.
// CHECK-LABEL: func.func @fp8_aligned
func.func @fp8_aligned(%rows: tensor<?x64xf32>, %off: tensor<3xi32>) -> tensor<?x128xf32> {
  // CHECK: %[[Q1:.+]], %[[S1:.+]] = moe.weight {{.+}}"l.0.w1"
  // CHECK: %[[Q3:.+]], %[[S3:.+]] = moe.weight {{.+}}"l.0.w3"
  %q1, %s1 = moe.weight [#moe.tensor_ref<"m.safetensors", "l.0.w1">, #moe.tensor_ref<"m.safetensors", "l.1.w1">] stored tensor<128x64xf8E4M3FN> scales [#moe.tensor_ref<"m.safetensors", "l.0.w1_scale_inv">, #moe.tensor_ref<"m.safetensors", "l.1.w1_scale_inv">] {stored_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>, transforms = [#moe.stack]} : tensor<2x128x64xf8E4M3FN>, tensor<2x1x1xf32>
  %w1 = moe.dequantize %q1, %s1 {scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<2x128x64xf8E4M3FN>, tensor<2x1x1xf32> -> tensor<2x128x64xf32>
  %q3, %s3 = moe.weight [#moe.tensor_ref<"m.safetensors", "l.0.w3">, #moe.tensor_ref<"m.safetensors", "l.1.w3">] stored tensor<128x64xf8E4M3FN> scales [#moe.tensor_ref<"m.safetensors", "l.0.w3_scale_inv">, #moe.tensor_ref<"m.safetensors", "l.1.w3_scale_inv">] {stored_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>, transforms = [#moe.stack]} : tensor<2x128x64xf8E4M3FN>, tensor<2x1x1xf32>
  %w3 = moe.dequantize %q3, %s3 {scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<2x128x64xf8E4M3FN>, tensor<2x1x1xf32> -> tensor<2x128x64xf32>
  // CHECK: %[[Q:.+]] = moe.concat %[[Q1]], %[[Q3]] {dim = 1 : i64} : tensor<2x128x64xf8E4M3FN>, tensor<2x128x64xf8E4M3FN> -> tensor<2x256x64xf8E4M3FN>
  // CHECK: %[[S:.+]] = moe.concat %[[S1]], %[[S3]] {dim = 1 : i64} : tensor<2x1x1xf32>, tensor<2x1x1xf32> -> tensor<2x2x1xf32>
  // CHECK: %[[W:.+]] = moe.dequantize %[[Q]], %[[S]] {scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<2x256x64xf8E4M3FN>, tensor<2x2x1xf32> -> tensor<2x256x64xf32>
  // CHECK: %[[Y:.+]] = moe.grouped_matmul %{{.+}}, %{{.+}}, %[[W]] {epilogue = #moe.epilogue<silu_mul>}
  // CHECK-NOT: moe.silu_mul
  // CHECK: return %[[Y]]
  %g = moe.grouped_matmul %rows, %off, %w1 : tensor<?x64xf32>, tensor<3xi32>, tensor<2x128x64xf32> -> tensor<?x128xf32>
  %u = moe.grouped_matmul %rows, %off, %w3 : tensor<?x64xf32>, tensor<3xi32>, tensor<2x128x64xf32> -> tensor<?x128xf32>
  %h = moe.silu_mul %g, %u : tensor<?x128xf32>
  return %h : tensor<?x128xf32>
}

// FP8 checkpoint weights split at N = 48: a 128-row scale block would straddle the
// split, so the GEMMs stay separate.
// CHECK-LABEL: func.func @fp8_unaligned_left_alone
func.func @fp8_unaligned_left_alone(%x: tensor<?x64xf32>) -> tensor<?x48xf32> {
  %qg, %sg = moe.weight [#moe.tensor_ref<"m.safetensors", "g">] stored tensor<48x64xf8E4M3FN> scales [#moe.tensor_ref<"m.safetensors", "g_scale_inv">] {stored_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<48x64xf8E4M3FN>, tensor<1x1xf32>
  %wg = moe.dequantize %qg, %sg {scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<48x64xf8E4M3FN>, tensor<1x1xf32> -> tensor<48x64xf32>
  %qu, %su = moe.weight [#moe.tensor_ref<"m.safetensors", "u">] stored tensor<48x64xf8E4M3FN> scales [#moe.tensor_ref<"m.safetensors", "u_scale_inv">] {stored_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<48x64xf8E4M3FN>, tensor<1x1xf32>
  %wu = moe.dequantize %qu, %su {scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<48x64xf8E4M3FN>, tensor<1x1xf32> -> tensor<48x64xf32>
  // CHECK-NOT: moe.concat
  // CHECK: %[[G:.+]] = moe.matmul
  // CHECK: %[[U:.+]] = moe.matmul
  // CHECK: moe.silu_mul %[[G]], %[[U]]
  %g = moe.matmul %x, %wg : tensor<?x64xf32>, tensor<48x64xf32> -> tensor<?x48xf32>
  %u = moe.matmul %x, %wu : tensor<?x64xf32>, tensor<48x64xf32> -> tensor<?x48xf32>
  %h = moe.silu_mul %g, %u : tensor<?x48xf32>
  return %h : tensor<?x48xf32>
}

// The GEMMs read different inputs: nothing to share.
// CHECK-LABEL: func.func @different_inputs_left_alone
// CHECK-NOT: moe.concat
// CHECK: moe.silu_mul
func.func @different_inputs_left_alone(%x: tensor<?x64xf32>, %y: tensor<?x64xf32>) -> tensor<?x96xf32> {
  %wg = moe.weight [#moe.tensor_ref<"m.safetensors", "g">] stored tensor<96x64xbf16> : tensor<96x64xbf16>
  %wu = moe.weight [#moe.tensor_ref<"m.safetensors", "u">] stored tensor<96x64xbf16> : tensor<96x64xbf16>
  %g = moe.matmul %x, %wg : tensor<?x64xf32>, tensor<96x64xbf16> -> tensor<?x96xf32>
  %u = moe.matmul %y, %wu : tensor<?x64xf32>, tensor<96x64xbf16> -> tensor<?x96xf32>
  %h = moe.silu_mul %g, %u : tensor<?x96xf32>
  return %h : tensor<?x96xf32>
}

// The gate projection has another user, which would still need it.
// CHECK-LABEL: func.func @gate_used_twice_left_alone
// CHECK-NOT: moe.concat
// CHECK: moe.silu_mul
func.func @gate_used_twice_left_alone(%x: tensor<?x64xf32>) -> (tensor<?x96xf32>, tensor<?x96xf32>) {
  %wg = moe.weight [#moe.tensor_ref<"m.safetensors", "g">] stored tensor<96x64xbf16> : tensor<96x64xbf16>
  %wu = moe.weight [#moe.tensor_ref<"m.safetensors", "u">] stored tensor<96x64xbf16> : tensor<96x64xbf16>
  %g = moe.matmul %x, %wg : tensor<?x64xf32>, tensor<96x64xbf16> -> tensor<?x96xf32>
  %u = moe.matmul %x, %wu : tensor<?x64xf32>, tensor<96x64xbf16> -> tensor<?x96xf32>
  %h = moe.silu_mul %g, %u : tensor<?x96xf32>
  return %h, %g : tensor<?x96xf32>, tensor<?x96xf32>
}

// Weights passed in as arguments cannot be concatenated at compile time.
// CHECK-LABEL: func.func @argument_weights_left_alone
// CHECK-NOT: moe.concat
// CHECK: moe.silu_mul
func.func @argument_weights_left_alone(%x: tensor<?x64xf32>, %wg: tensor<96x64xbf16>, %wu: tensor<96x64xbf16>) -> tensor<?x96xf32> {
  %g = moe.matmul %x, %wg : tensor<?x64xf32>, tensor<96x64xbf16> -> tensor<?x96xf32>
  %u = moe.matmul %x, %wu : tensor<?x64xf32>, tensor<96x64xbf16> -> tensor<?x96xf32>
  %h = moe.silu_mul %g, %u : tensor<?x96xf32>
  return %h : tensor<?x96xf32>
}

// Interleaved SwiGLU weights (the ONNX importer's reshape + slice of one stacked weight) are
// weights: the gate and up slices are concatenated along N like any other.
// CHECK-LABEL: func.func @reshape_slice
// CHECK-SAME: (%[[ROWS:.+]]: tensor<?x64xf32>, %[[OFF:.+]]: tensor<3xi32>)
func.func @reshape_slice(%rows: tensor<?x64xf32>, %off: tensor<3xi32>) -> tensor<?x32xf32> {
  // CHECK: %[[W:.+]] = moe.weight {{.+}}"mlp.fc1"{{.+}} : tensor<2x64x64xf32>
  // CHECK: %[[R:.+]] = moe.reshape %[[W]] : tensor<2x64x64xf32> -> tensor<2x32x128xf32>
  // CHECK: %[[G:.+]] = moe.slice %[[R]] {offset = 0 : i64} : tensor<2x32x128xf32> -> tensor<2x32x64xf32>
  // CHECK: %[[U:.+]] = moe.slice %[[R]] {offset = 64 : i64} : tensor<2x32x128xf32> -> tensor<2x32x64xf32>
  // CHECK: %[[C:.+]] = moe.concat %[[G]], %[[U]] {dim = 1 : i64} : tensor<2x32x64xf32>, tensor<2x32x64xf32> -> tensor<2x64x64xf32>
  // CHECK: %[[Y:.+]] = moe.grouped_matmul %[[ROWS]], %[[OFF]], %[[C]] {epilogue = #moe.epilogue<silu_mul>} : tensor<?x64xf32>, tensor<3xi32>, tensor<2x64x64xf32> -> tensor<?x32xf32>
  // CHECK-NOT: moe.silu_mul
  // CHECK: return %[[Y]]
  %w = moe.weight [#moe.tensor_ref<"model.onnx", "mlp.fc1">] stored tensor<2x64x64xf32> : tensor<2x64x64xf32>
  %r = moe.reshape %w : tensor<2x64x64xf32> -> tensor<2x32x128xf32>
  %wg = moe.slice %r {offset = 0 : i64} : tensor<2x32x128xf32> -> tensor<2x32x64xf32>
  %wu = moe.slice %r {offset = 64 : i64} : tensor<2x32x128xf32> -> tensor<2x32x64xf32>
  %g = moe.grouped_matmul %rows, %off, %wg : tensor<?x64xf32>, tensor<3xi32>, tensor<2x32x64xf32> -> tensor<?x32xf32>
  %u = moe.grouped_matmul %rows, %off, %wu : tensor<?x64xf32>, tensor<3xi32>, tensor<2x32x64xf32> -> tensor<?x32xf32>
  %h = moe.silu_mul %g, %u : tensor<?x32xf32>
  return %h : tensor<?x32xf32>
}
