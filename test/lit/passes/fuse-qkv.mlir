// --moec-fuse-qkv turns the attention input projections of one layer that share an input into one GEMM and slices.
// RUN: moec-opt %s --moec-fuse-qkv | FileCheck %s
// RUN: moec-opt %s --moec-fuse-qkv | moec-opt | FileCheck %s

// GQA with q/k/v biases (Qwen2-MoE): weights and biases are concatenated along N.
// CHECK-LABEL: func.func @gqa_with_bias
// CHECK-SAME: (%[[X:.+]]: tensor<?x64xf32>)
func.func @gqa_with_bias(%x: tensor<?x64xf32>) -> (tensor<?x64xf32>, tensor<?x32xf32>, tensor<?x32xf32>) {
  // CHECK-DAG: %[[WQ:.+]] = moe.weight {{.+}}"model.layers.2.self_attn.q_proj.weight"
  // CHECK-DAG: %[[BQ:.+]] = moe.weight {{.+}}"model.layers.2.self_attn.q_proj.bias"
  // CHECK-DAG: %[[WK:.+]] = moe.weight {{.+}}"model.layers.2.self_attn.k_proj.weight"
  // CHECK-DAG: %[[BK:.+]] = moe.weight {{.+}}"model.layers.2.self_attn.k_proj.bias"
  // CHECK-DAG: %[[WV:.+]] = moe.weight {{.+}}"model.layers.2.self_attn.v_proj.weight"
  // CHECK-DAG: %[[BV:.+]] = moe.weight {{.+}}"model.layers.2.self_attn.v_proj.bias"
  // CHECK: %[[W:.+]] = moe.concat %[[WQ]], %[[WK]], %[[WV]] {dim = 0 : i64} : tensor<64x64xbf16>, tensor<32x64xbf16>, tensor<32x64xbf16> -> tensor<128x64xbf16>
  // CHECK: %[[B:.+]] = moe.concat %[[BQ]], %[[BK]], %[[BV]] {dim = 0 : i64} : tensor<64xbf16>, tensor<32xbf16>, tensor<32xbf16> -> tensor<128xbf16>
  // CHECK: %[[QKV:.+]] = moe.matmul %[[X]], %[[W]] bias %[[B]] : tensor<?x64xf32>, tensor<128x64xbf16>, tensor<128xbf16> -> tensor<?x128xf32>
  // CHECK: %[[Q:.+]] = moe.slice %[[QKV]] {offset = 0 : i64} : tensor<?x128xf32> -> tensor<?x64xf32>
  // CHECK: %[[K:.+]] = moe.slice %[[QKV]] {offset = 64 : i64} : tensor<?x128xf32> -> tensor<?x32xf32>
  // CHECK: %[[V:.+]] = moe.slice %[[QKV]] {offset = 96 : i64} : tensor<?x128xf32> -> tensor<?x32xf32>
  // CHECK-NOT: moe.matmul
  // CHECK: return %[[Q]], %[[K]], %[[V]]
  %wq = moe.weight [#moe.tensor_ref<"m.safetensors", "model.layers.2.self_attn.q_proj.weight">] stored tensor<64x64xbf16> role <attn_q, layer = 2> : tensor<64x64xbf16>
  %bq = moe.weight [#moe.tensor_ref<"m.safetensors", "model.layers.2.self_attn.q_proj.bias">] stored tensor<64xbf16> role <attn_q, layer = 2> : tensor<64xbf16>
  %q = moe.matmul %x, %wq bias %bq : tensor<?x64xf32>, tensor<64x64xbf16>, tensor<64xbf16> -> tensor<?x64xf32>
  %wk = moe.weight [#moe.tensor_ref<"m.safetensors", "model.layers.2.self_attn.k_proj.weight">] stored tensor<32x64xbf16> role <attn_k, layer = 2> : tensor<32x64xbf16>
  %bk = moe.weight [#moe.tensor_ref<"m.safetensors", "model.layers.2.self_attn.k_proj.bias">] stored tensor<32xbf16> role <attn_k, layer = 2> : tensor<32xbf16>
  %k = moe.matmul %x, %wk bias %bk : tensor<?x64xf32>, tensor<32x64xbf16>, tensor<32xbf16> -> tensor<?x32xf32>
  %wv = moe.weight [#moe.tensor_ref<"m.safetensors", "model.layers.2.self_attn.v_proj.weight">] stored tensor<32x64xbf16> role <attn_v, layer = 2> : tensor<32x64xbf16>
  %bv = moe.weight [#moe.tensor_ref<"m.safetensors", "model.layers.2.self_attn.v_proj.bias">] stored tensor<32xbf16> role <attn_v, layer = 2> : tensor<32xbf16>
  %v = moe.matmul %x, %wv bias %bv : tensor<?x64xf32>, tensor<32x64xbf16>, tensor<32xbf16> -> tensor<?x32xf32>
  return %q, %k, %v : tensor<?x64xf32>, tensor<?x32xf32>, tensor<?x32xf32>
}

// MLA (DeepSeek-V3): q_a and kv_a read the same input; q_a's users come before kv_a's weight
// is even created, so the weight moves up and the fused GEMM takes q_a's place.
// CHECK-LABEL: func.func @mla_down_projections
// CHECK-SAME: (%[[X:.+]]: tensor<?x64xf32>, %[[NW:.+]]: tensor<96xbf16>)
func.func @mla_down_projections(%x: tensor<?x64xf32>, %nw: tensor<96xbf16>) -> (tensor<?x96xf32>, tensor<?x80xf32>) {
  // CHECK: %[[WQA:.+]] = moe.weight {{.+}}"model.layers.0.self_attn.q_a_proj.weight"
  // CHECK: %[[WKVA:.+]] = moe.weight {{.+}}"model.layers.0.self_attn.kv_a_proj_with_mqa.weight"
  // CHECK: %[[W:.+]] = moe.concat %[[WQA]], %[[WKVA]] {dim = 0 : i64} : tensor<96x64xbf16>, tensor<80x64xbf16> -> tensor<176x64xbf16>
  // CHECK: %[[F:.+]] = moe.matmul %[[X]], %[[W]] : tensor<?x64xf32>, tensor<176x64xbf16> -> tensor<?x176xf32>
  // CHECK: %[[QA:.+]] = moe.slice %[[F]] {offset = 0 : i64} : tensor<?x176xf32> -> tensor<?x96xf32>
  // CHECK: %[[KVA:.+]] = moe.slice %[[F]] {offset = 96 : i64} : tensor<?x176xf32> -> tensor<?x80xf32>
  // CHECK: %[[N:.+]] = moe.rms_norm %[[QA]], %[[NW]]
  // CHECK-NOT: moe.matmul
  // CHECK: return %[[N]], %[[KVA]]
  %wqa = moe.weight [#moe.tensor_ref<"m.safetensors", "model.layers.0.self_attn.q_a_proj.weight">] stored tensor<96x64xbf16> role <attn_q_a, layer = 0> : tensor<96x64xbf16>
  %qa = moe.matmul %x, %wqa : tensor<?x64xf32>, tensor<96x64xbf16> -> tensor<?x96xf32>
  %n = moe.rms_norm %qa, %nw {epsilon = 1.0e-06 : f64} : tensor<?x96xf32>, tensor<96xbf16> -> tensor<?x96xf32>
  %wkva = moe.weight [#moe.tensor_ref<"m.safetensors", "model.layers.0.self_attn.kv_a_proj_with_mqa.weight">] stored tensor<80x64xbf16> role <attn_kv_a, layer = 0> : tensor<80x64xbf16>
  %kva = moe.matmul %x, %wkva : tensor<?x64xf32>, tensor<80x64xbf16> -> tensor<?x80xf32>
  return %n, %kva : tensor<?x96xf32>, tensor<?x80xf32>
}

// Names that follow no convention (ONNX): the `#moe.role`s decide, never the names.
// CHECK-LABEL: func.func @explicit_roles
// CHECK: %[[W:.+]] = moe.concat {{.+}} -> tensor<128x64xbf16>
// CHECK: moe.matmul %{{.+}}, %[[W]] : tensor<?x64xf32>, tensor<128x64xbf16> -> tensor<?x128xf32>
// CHECK-COUNT-2: moe.slice
func.func @explicit_roles(%x: tensor<?x64xf32>) -> (tensor<?x64xf32>, tensor<?x64xf32>) {
  %wq = moe.weight [#moe.tensor_ref<"model.onnx", "onnx::MatMul_101">] stored tensor<64x64xbf16> role <attn_q, layer = 0> : tensor<64x64xbf16>
  %wk = moe.weight [#moe.tensor_ref<"model.onnx", "onnx::MatMul_102">] stored tensor<64x64xbf16> role <attn_k, layer = 0> : tensor<64x64xbf16>
  %q = moe.matmul %x, %wq : tensor<?x64xf32>, tensor<64x64xbf16> -> tensor<?x64xf32>
  %k = moe.matmul %x, %wk : tensor<?x64xf32>, tensor<64x64xbf16> -> tensor<?x64xf32>
  return %q, %k : tensor<?x64xf32>, tensor<?x64xf32>
}

// An MLP's gate and up projections also share their input, but are not attention inputs
// (--moec-fuse-gate-up handles them).
// CHECK-LABEL: func.func @mlp_left_alone
// CHECK-NOT: moe.concat
// CHECK-COUNT-2: moe.matmul
func.func @mlp_left_alone(%x: tensor<?x64xf32>) -> (tensor<?x96xf32>, tensor<?x96xf32>) {
  %wg = moe.weight [#moe.tensor_ref<"m.safetensors", "model.layers.0.mlp.gate_proj.weight">] stored tensor<96x64xbf16> role <mlp_gate, layer = 0> : tensor<96x64xbf16>
  %wu = moe.weight [#moe.tensor_ref<"m.safetensors", "model.layers.0.mlp.up_proj.weight">] stored tensor<96x64xbf16> role <mlp_up, layer = 0> : tensor<96x64xbf16>
  %g = moe.matmul %x, %wg : tensor<?x64xf32>, tensor<96x64xbf16> -> tensor<?x96xf32>
  %u = moe.matmul %x, %wu : tensor<?x64xf32>, tensor<96x64xbf16> -> tensor<?x96xf32>
  return %g, %u : tensor<?x96xf32>, tensor<?x96xf32>
}

// Projections of different layers are not fused even when they read the same value.
// CHECK-LABEL: func.func @different_layers_left_alone
// CHECK-NOT: moe.concat
// CHECK-COUNT-2: moe.matmul
func.func @different_layers_left_alone(%x: tensor<?x64xf32>) -> (tensor<?x64xf32>, tensor<?x64xf32>) {
  %wq = moe.weight [#moe.tensor_ref<"m.safetensors", "model.layers.0.self_attn.q_proj.weight">] stored tensor<64x64xbf16> role <attn_q, layer = 0> : tensor<64x64xbf16>
  %wk = moe.weight [#moe.tensor_ref<"m.safetensors", "model.layers.1.self_attn.k_proj.weight">] stored tensor<64x64xbf16> role <attn_k, layer = 1> : tensor<64x64xbf16>
  %q = moe.matmul %x, %wq : tensor<?x64xf32>, tensor<64x64xbf16> -> tensor<?x64xf32>
  %k = moe.matmul %x, %wk : tensor<?x64xf32>, tensor<64x64xbf16> -> tensor<?x64xf32>
  return %q, %k : tensor<?x64xf32>, tensor<?x64xf32>
}

// FP8 checkpoint q_a (96 rows) and kv_a: the split at 96 falls inside a 128-row scale block.
// CHECK-LABEL: func.func @fp8_unaligned_left_alone
// CHECK-NOT: moe.concat
// CHECK-COUNT-2: moe.matmul
func.func @fp8_unaligned_left_alone(%x: tensor<?x64xf32>) -> (tensor<?x96xf32>, tensor<?x80xf32>) {
  %qa, %sa = moe.weight [#moe.tensor_ref<"m.safetensors", "model.layers.0.self_attn.q_a_proj.weight">] stored tensor<96x64xf8E4M3FN> scales [#moe.tensor_ref<"m.safetensors", "model.layers.0.self_attn.q_a_proj.weight_scale_inv">] role <attn_q_a, layer = 0> {stored_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<96x64xf8E4M3FN>, tensor<1x1xf32>
  %wqa = moe.dequantize %qa, %sa {scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<96x64xf8E4M3FN>, tensor<1x1xf32> -> tensor<96x64xf32>
  %qkv, %skv = moe.weight [#moe.tensor_ref<"m.safetensors", "model.layers.0.self_attn.kv_a_proj_with_mqa.weight">] stored tensor<80x64xf8E4M3FN> scales [#moe.tensor_ref<"m.safetensors", "model.layers.0.self_attn.kv_a_proj_with_mqa.weight_scale_inv">] role <attn_kv_a, layer = 0> {stored_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<80x64xf8E4M3FN>, tensor<1x1xf32>
  %wkva = moe.dequantize %qkv, %skv {scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<80x64xf8E4M3FN>, tensor<1x1xf32> -> tensor<80x64xf32>
  %a = moe.matmul %x, %wqa : tensor<?x64xf32>, tensor<96x64xf32> -> tensor<?x96xf32>
  %b = moe.matmul %x, %wkva : tensor<?x64xf32>, tensor<80x64xf32> -> tensor<?x80xf32>
  return %a, %b : tensor<?x96xf32>, tensor<?x80xf32>
}

// Only q has a bias: the projections are not fused.
// CHECK-LABEL: func.func @mixed_bias_left_alone
// CHECK-NOT: moe.concat
// CHECK-COUNT-2: moe.matmul
func.func @mixed_bias_left_alone(%x: tensor<?x64xf32>) -> (tensor<?x64xf32>, tensor<?x64xf32>) {
  %wq = moe.weight [#moe.tensor_ref<"m.safetensors", "model.layers.0.self_attn.q_proj.weight">] stored tensor<64x64xbf16> role <attn_q, layer = 0> : tensor<64x64xbf16>
  %bq = moe.weight [#moe.tensor_ref<"m.safetensors", "model.layers.0.self_attn.q_proj.bias">] stored tensor<64xbf16> role <attn_q, layer = 0> : tensor<64xbf16>
  %wk = moe.weight [#moe.tensor_ref<"m.safetensors", "model.layers.0.self_attn.k_proj.weight">] stored tensor<64x64xbf16> role <attn_k, layer = 0> : tensor<64x64xbf16>
  %q = moe.matmul %x, %wq bias %bq : tensor<?x64xf32>, tensor<64x64xbf16>, tensor<64xbf16> -> tensor<?x64xf32>
  %k = moe.matmul %x, %wk : tensor<?x64xf32>, tensor<64x64xbf16> -> tensor<?x64xf32>
  return %q, %k : tensor<?x64xf32>, tensor<?x64xf32>
}
