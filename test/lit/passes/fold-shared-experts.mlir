// --moec-fold-shared-experts appends an equally wide shared expert to the routed experts, always selected with weight 1.
// RUN: moec-opt %s --moec-decompose-moe --moec-fold-shared-experts | FileCheck %s
// RUN: moec-opt %s --moec-decompose-moe --moec-fold-shared-experts | moec-opt | FileCheck %s

// DeepSeek-V3-style layer, bf16: the shared expert becomes expert 2 of 3.
// CHECK-LABEL: func.func @fold
// CHECK-SAME: (%[[X:.+]]: tensor<?x64xf32>)
func.func @fold(%x: tensor<?x64xf32>) -> tensor<?x64xf32> {
  %g = moe.weight [#moe.tensor_ref<"m.safetensors", "model.layers.1.mlp.gate.weight">] stored tensor<2x64xbf16> role <router, layer = 1> : tensor<2x64xbf16>
  %w1 = moe.weight [#moe.tensor_ref<"m.safetensors", "e0.gate_proj">, #moe.tensor_ref<"m.safetensors", "e1.gate_proj">] stored tensor<32x64xbf16> {transforms = [#moe.stack]} : tensor<2x32x64xbf16>
  %w3 = moe.weight [#moe.tensor_ref<"m.safetensors", "e0.up_proj">, #moe.tensor_ref<"m.safetensors", "e1.up_proj">] stored tensor<32x64xbf16> {transforms = [#moe.stack]} : tensor<2x32x64xbf16>
  %w2 = moe.weight [#moe.tensor_ref<"m.safetensors", "e0.down_proj">, #moe.tensor_ref<"m.safetensors", "e1.down_proj">] stored tensor<64x32xbf16> {transforms = [#moe.stack]} : tensor<2x64x32xbf16>
  %s1 = moe.weight [#moe.tensor_ref<"m.safetensors", "s.gate_proj">] stored tensor<32x64xbf16> : tensor<32x64xbf16>
  %s3 = moe.weight [#moe.tensor_ref<"m.safetensors", "s.up_proj">] stored tensor<32x64xbf16> : tensor<32x64xbf16>
  %s2 = moe.weight [#moe.tensor_ref<"m.safetensors", "s.down_proj">] stored tensor<64x32xbf16> : tensor<64x32xbf16>
  // CHECK: %[[G:.+]] = moe.weight {{.+}}"model.layers.1.mlp.gate.weight"
  // CHECK: %[[W1:.+]] = moe.weight [#moe.tensor_ref<"m.safetensors", "e0.gate_proj">, #moe.tensor_ref<"m.safetensors", "e1.gate_proj">, #moe.tensor_ref<"m.safetensors", "s.gate_proj">] stored tensor<32x64xbf16> {transforms = [#moe.stack]} : tensor<3x32x64xbf16>
  // CHECK: %[[W3:.+]] = moe.weight [#moe.tensor_ref<"m.safetensors", "e0.up_proj">, #moe.tensor_ref<"m.safetensors", "e1.up_proj">, #moe.tensor_ref<"m.safetensors", "s.up_proj">] stored tensor<32x64xbf16> {transforms = [#moe.stack]} : tensor<3x32x64xbf16>
  // CHECK: %[[W2:.+]] = moe.weight [#moe.tensor_ref<"m.safetensors", "e0.down_proj">, #moe.tensor_ref<"m.safetensors", "e1.down_proj">, #moe.tensor_ref<"m.safetensors", "s.down_proj">] stored tensor<64x32xbf16> {transforms = [#moe.stack]} : tensor<3x64x32xbf16>
  // CHECK: %[[RW:.+]], %[[RI:.+]] = moe.router %[[X]], %[[G]] {routing = #moe.routing<scoring = sigmoid, k = 1>, shared_experts = 1 : i64} : tensor<?x64xf32>, tensor<2x64xbf16> -> tensor<?x2xf32>, tensor<?x2xi32>
  // CHECK: %[[ROWS:.+]], %[[OFF:.+]], %[[POS:.+]] = moe.dispatch %[[X]], %[[RI]] : tensor<?x64xf32>, tensor<?x2xi32> -> tensor<?x64xf32>, tensor<4xi32>, tensor<?xi32>
  // CHECK: %[[GATE:.+]] = moe.grouped_matmul %[[ROWS]], %[[OFF]], %[[W1]] : tensor<?x64xf32>, tensor<4xi32>, tensor<3x32x64xbf16> -> tensor<?x32xf32>
  // CHECK: %[[UP:.+]] = moe.grouped_matmul %[[ROWS]], %[[OFF]], %[[W3]]
  // CHECK: %[[H:.+]] = moe.silu_mul %[[GATE]], %[[UP]]
  // CHECK: %[[DOWN:.+]] = moe.grouped_matmul %[[H]], %[[OFF]], %[[W2]] : tensor<?x32xf32>, tensor<4xi32>, tensor<3x64x32xbf16> -> tensor<?x64xf32>
  // CHECK: %[[Y:.+]] = moe.combine %[[DOWN]], %[[POS]], %[[RW]] : tensor<?x64xf32>, tensor<?xi32>, tensor<?x2xf32> -> tensor<?x64xf32>
  // CHECK-NOT: moe.matmul
  // CHECK-NOT: moe.add
  // CHECK: return %[[Y]]
  %y = moe.moe %x router %g experts %w1, %w3, %w2 shared %s1, %s3, %s2 {routing = #moe.routing<scoring = sigmoid, k = 1>} : (tensor<?x64xf32>, tensor<2x64xbf16>, tensor<2x32x64xbf16>, tensor<2x32x64xbf16>, tensor<2x64x32xbf16>, tensor<32x64xbf16>, tensor<32x64xbf16>, tensor<64x32xbf16>) -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// FP8 checkpoint: data and scale sources are appended together, then dequantized.
// CHECK-LABEL: func.func @fold_fp8
func.func @fold_fp8(%x: tensor<?x64xf32>, %g: tensor<2x64xbf16>) -> tensor<?x64xf32> {
  %q1, %c1 = moe.weight [#moe.tensor_ref<"m.safetensors", "e0.w1">, #moe.tensor_ref<"m.safetensors", "e1.w1">] stored tensor<32x64xf8E4M3FN> scales [#moe.tensor_ref<"m.safetensors", "e0.w1_s">, #moe.tensor_ref<"m.safetensors", "e1.w1_s">] {stored_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>, transforms = [#moe.stack]} : tensor<2x32x64xf8E4M3FN>, tensor<2x1x1xf32>
  %w1 = moe.dequantize %q1, %c1 {scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<2x32x64xf8E4M3FN>, tensor<2x1x1xf32> -> tensor<2x32x64xf32>
  %q3, %c3 = moe.weight [#moe.tensor_ref<"m.safetensors", "e0.w3">, #moe.tensor_ref<"m.safetensors", "e1.w3">] stored tensor<32x64xf8E4M3FN> scales [#moe.tensor_ref<"m.safetensors", "e0.w3_s">, #moe.tensor_ref<"m.safetensors", "e1.w3_s">] {stored_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>, transforms = [#moe.stack]} : tensor<2x32x64xf8E4M3FN>, tensor<2x1x1xf32>
  %w3 = moe.dequantize %q3, %c3 {scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<2x32x64xf8E4M3FN>, tensor<2x1x1xf32> -> tensor<2x32x64xf32>
  %q2, %c2 = moe.weight [#moe.tensor_ref<"m.safetensors", "e0.w2">, #moe.tensor_ref<"m.safetensors", "e1.w2">] stored tensor<64x32xf8E4M3FN> scales [#moe.tensor_ref<"m.safetensors", "e0.w2_s">, #moe.tensor_ref<"m.safetensors", "e1.w2_s">] {stored_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>, transforms = [#moe.stack]} : tensor<2x64x32xf8E4M3FN>, tensor<2x1x1xf32>
  %w2 = moe.dequantize %q2, %c2 {scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<2x64x32xf8E4M3FN>, tensor<2x1x1xf32> -> tensor<2x64x32xf32>
  %p1, %d1 = moe.weight [#moe.tensor_ref<"m.safetensors", "s.w1">] stored tensor<32x64xf8E4M3FN> scales [#moe.tensor_ref<"m.safetensors", "s.w1_s">] {stored_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<32x64xf8E4M3FN>, tensor<1x1xf32>
  %s1 = moe.dequantize %p1, %d1 {scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<32x64xf8E4M3FN>, tensor<1x1xf32> -> tensor<32x64xf32>
  %p3, %d3 = moe.weight [#moe.tensor_ref<"m.safetensors", "s.w3">] stored tensor<32x64xf8E4M3FN> scales [#moe.tensor_ref<"m.safetensors", "s.w3_s">] {stored_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<32x64xf8E4M3FN>, tensor<1x1xf32>
  %s3 = moe.dequantize %p3, %d3 {scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<32x64xf8E4M3FN>, tensor<1x1xf32> -> tensor<32x64xf32>
  %p2, %d2 = moe.weight [#moe.tensor_ref<"m.safetensors", "s.w2">] stored tensor<64x32xf8E4M3FN> scales [#moe.tensor_ref<"m.safetensors", "s.w2_s">] {stored_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<64x32xf8E4M3FN>, tensor<1x1xf32>
  %s2 = moe.dequantize %p2, %d2 {scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<64x32xf8E4M3FN>, tensor<1x1xf32> -> tensor<64x32xf32>
  // CHECK: %[[Q1:.+]], %[[C1:.+]] = moe.weight [{{.+}}"e0.w1">, {{.+}}"e1.w1">, {{.+}}"s.w1">] stored tensor<32x64xf8E4M3FN> scales [{{.+}}"e0.w1_s">, {{.+}}"e1.w1_s">, {{.+}}"s.w1_s">] {{.+}} : tensor<3x32x64xf8E4M3FN>, tensor<3x1x1xf32>
  // CHECK: %[[W1:.+]] = moe.dequantize %[[Q1]], %[[C1]] {{.+}} -> tensor<3x32x64xf32>
  // CHECK: moe.router {{.+}}shared_experts = 1 : i64
  // CHECK: moe.grouped_matmul %{{.+}}, %{{.+}}, %[[W1]]
  // CHECK-NOT: moe.matmul
  // CHECK-NOT: moe.add
  %y = moe.moe %x router %g experts %w1, %w3, %w2 shared %s1, %s3, %s2 {routing = #moe.routing<scoring = sigmoid, k = 1>} : (tensor<?x64xf32>, tensor<2x64xbf16>, tensor<2x32x64xf32>, tensor<2x32x64xf32>, tensor<2x64x32xf32>, tensor<32x64xf32>, tensor<32x64xf32>, tensor<64x32xf32>) -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// A shared expert twice as wide as a routed one (n_shared_experts = 2) stays separate.
// CHECK-LABEL: func.func @wider_shared_left_alone
// CHECK: moe.router
// CHECK-NOT: shared_experts
// CHECK: moe.dispatch {{.+}} tensor<3xi32>
// CHECK: moe.add
func.func @wider_shared_left_alone(%x: tensor<?x64xf32>, %g: tensor<2x64xbf16>) -> tensor<?x64xf32> {
  %w1 = moe.weight [#moe.tensor_ref<"m.safetensors", "e0.w1">, #moe.tensor_ref<"m.safetensors", "e1.w1">] stored tensor<32x64xbf16> {transforms = [#moe.stack]} : tensor<2x32x64xbf16>
  %w3 = moe.weight [#moe.tensor_ref<"m.safetensors", "e0.w3">, #moe.tensor_ref<"m.safetensors", "e1.w3">] stored tensor<32x64xbf16> {transforms = [#moe.stack]} : tensor<2x32x64xbf16>
  %w2 = moe.weight [#moe.tensor_ref<"m.safetensors", "e0.w2">, #moe.tensor_ref<"m.safetensors", "e1.w2">] stored tensor<64x32xbf16> {transforms = [#moe.stack]} : tensor<2x64x32xbf16>
  %s1 = moe.weight [#moe.tensor_ref<"m.safetensors", "s.w1">] stored tensor<64x64xbf16> : tensor<64x64xbf16>
  %s3 = moe.weight [#moe.tensor_ref<"m.safetensors", "s.w3">] stored tensor<64x64xbf16> : tensor<64x64xbf16>
  %s2 = moe.weight [#moe.tensor_ref<"m.safetensors", "s.w2">] stored tensor<64x64xbf16> : tensor<64x64xbf16>
  %y = moe.moe %x router %g experts %w1, %w3, %w2 shared %s1, %s3, %s2 {routing = #moe.routing<scoring = sigmoid, k = 1>} : (tensor<?x64xf32>, tensor<2x64xbf16>, tensor<2x32x64xbf16>, tensor<2x32x64xbf16>, tensor<2x64x32xbf16>, tensor<64x64xbf16>, tensor<64x64xbf16>, tensor<64x64xbf16>) -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// Qwen2-MoE's gated shared expert: its per-token sigmoid gate is not a routing weight.
// CHECK-LABEL: func.func @gated_shared_left_alone
// CHECK-NOT: shared_experts
// CHECK: moe.sigmoid_gate
// CHECK: moe.add
func.func @gated_shared_left_alone(%x: tensor<?x64xf32>, %g: tensor<2x64xbf16>, %sg: tensor<1x64xbf16>) -> tensor<?x64xf32> {
  %w1 = moe.weight [#moe.tensor_ref<"m.safetensors", "e0.w1">, #moe.tensor_ref<"m.safetensors", "e1.w1">] stored tensor<32x64xbf16> {transforms = [#moe.stack]} : tensor<2x32x64xbf16>
  %w3 = moe.weight [#moe.tensor_ref<"m.safetensors", "e0.w3">, #moe.tensor_ref<"m.safetensors", "e1.w3">] stored tensor<32x64xbf16> {transforms = [#moe.stack]} : tensor<2x32x64xbf16>
  %w2 = moe.weight [#moe.tensor_ref<"m.safetensors", "e0.w2">, #moe.tensor_ref<"m.safetensors", "e1.w2">] stored tensor<64x32xbf16> {transforms = [#moe.stack]} : tensor<2x64x32xbf16>
  %s1 = moe.weight [#moe.tensor_ref<"m.safetensors", "s.w1">] stored tensor<32x64xbf16> : tensor<32x64xbf16>
  %s3 = moe.weight [#moe.tensor_ref<"m.safetensors", "s.w3">] stored tensor<32x64xbf16> : tensor<32x64xbf16>
  %s2 = moe.weight [#moe.tensor_ref<"m.safetensors", "s.w2">] stored tensor<64x32xbf16> : tensor<64x32xbf16>
  %y = moe.moe %x router %g experts %w1, %w3, %w2 shared %s1, %s3, %s2 shared_gate %sg {routing = #moe.routing<scoring = softmax, k = 1>} : (tensor<?x64xf32>, tensor<2x64xbf16>, tensor<2x32x64xbf16>, tensor<2x32x64xbf16>, tensor<2x64x32xbf16>, tensor<32x64xbf16>, tensor<32x64xbf16>, tensor<64x32xbf16>, tensor<1x64xbf16>) -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// The shared expert is stored in bf16 and the routed ones in FP8: no common stacked weight.
// CHECK-LABEL: func.func @different_storage_left_alone
// CHECK-NOT: shared_experts
// CHECK: moe.add
func.func @different_storage_left_alone(%x: tensor<?x64xf32>, %g: tensor<2x64xbf16>) -> tensor<?x64xf32> {
  %w1 = moe.weight [#moe.tensor_ref<"m.safetensors", "e0.w1">, #moe.tensor_ref<"m.safetensors", "e1.w1">] stored tensor<32x64xbf16> {transforms = [#moe.stack]} : tensor<2x32x64xbf16>
  %w3 = moe.weight [#moe.tensor_ref<"m.safetensors", "e0.w3">, #moe.tensor_ref<"m.safetensors", "e1.w3">] stored tensor<32x64xbf16> {transforms = [#moe.stack]} : tensor<2x32x64xbf16>
  %w2 = moe.weight [#moe.tensor_ref<"m.safetensors", "e0.w2">, #moe.tensor_ref<"m.safetensors", "e1.w2">] stored tensor<64x32xbf16> {transforms = [#moe.stack]} : tensor<2x64x32xbf16>
  %s1 = moe.weight [#moe.tensor_ref<"m.safetensors", "s.w1">] stored tensor<32x64xf32> : tensor<32x64xf32>
  %s3 = moe.weight [#moe.tensor_ref<"m.safetensors", "s.w3">] stored tensor<32x64xf32> : tensor<32x64xf32>
  %s2 = moe.weight [#moe.tensor_ref<"m.safetensors", "s.w2">] stored tensor<64x32xf32> : tensor<64x32xf32>
  %y = moe.moe %x router %g experts %w1, %w3, %w2 shared %s1, %s3, %s2 {routing = #moe.routing<scoring = sigmoid, k = 1>} : (tensor<?x64xf32>, tensor<2x64xbf16>, tensor<2x32x64xbf16>, tensor<2x32x64xbf16>, tensor<2x64x32xbf16>, tensor<32x64xf32>, tensor<32x64xf32>, tensor<64x32xf32>) -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
