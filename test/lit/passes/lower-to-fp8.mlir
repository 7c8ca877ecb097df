// --moec-lower-to-fp8 quantizes the weights and activations of the GEMMs the policy allows and rewrites them to FP8 GEMMs.
// RUN: moec-opt %s --moec-lower-to-fp8 | FileCheck %s
// RUN: moec-opt %s --moec-lower-to-fp8 | moec-opt | FileCheck %s
// RUN: moec-opt %s --moec-lower-to-fp8="keep-lm-head=false keep-attention=true" | FileCheck %s --check-prefix=OPTS
// RUN: moec-opt %s --moec-lower-to-fp8="keep-first-layers=1 keep-last-layers=1" | FileCheck %s --check-prefix=LAYERS
// RUN: moec-opt %s --moec-lower-to-fp8="pow2-scales=true" | FileCheck %s --check-prefix=POW2

// Two GEMMs over one activation share its quantization; each weight gets a #moe.quantize transform.
// CHECK-LABEL: func.func @shared_activation
// CHECK-SAME: (%[[X:.+]]: tensor<?x128xf32>)
// CHECK: %[[XQ:.+]], %[[XS:.+]] = moe.quantize %[[X]] {scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>} : tensor<?x128xf32> -> tensor<?x128xf8E4M3FN>, tensor<?x1xf32>
// CHECK: %[[KQ:.+]], %[[KS:.+]] = moe.weight [#moe.tensor_ref<"m.safetensors", "model.layers.0.self_attn.k_proj.weight">] stored tensor<256x128xbf16> role <attn_k, layer = 0> {transforms = [#moe.quantize<#moe.block_scale<format = e4m3fn, block = [128, 128]>>]} : tensor<256x128xf8E4M3FN>, tensor<2x1xf32>
// CHECK: %[[VQ:.+]], %[[VS:.+]] = moe.weight [#moe.tensor_ref<"m.safetensors", "model.layers.0.self_attn.v_proj.weight">]
// CHECK-NOT: = moe.quantize
// CHECK: %[[K:.+]] = moe.fp8_matmul %[[XQ]], %[[XS]], %[[KQ]], %[[KS]] {act_scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>, weight_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<?x128xf8E4M3FN>, tensor<?x1xf32>, tensor<256x128xf8E4M3FN>, tensor<2x1xf32> -> tensor<?x256xf32>
// CHECK: %[[V:.+]] = moe.fp8_matmul %[[XQ]], %[[XS]], %[[VQ]], %[[VS]]
// CHECK-NOT: moe.matmul
// CHECK-NOT: moe.dequantize
// CHECK: return %[[K]], %[[V]]
// POW2-LABEL: func.func @shared_activation
// POW2: moe.quantize %{{.+}} {scheme = #moe.block_scale<format = e4m3fn, block = [1, 128], pow2 = true>}
// POW2: moe.weight {{.+}} {transforms = [#moe.quantize<#moe.block_scale<format = e4m3fn, block = [128, 128], pow2 = true>>]}
// POW2: moe.fp8_matmul {{.+}} {act_scheme = #moe.block_scale<format = e4m3fn, block = [1, 128], pow2 = true>, weight_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128], pow2 = true>}
// OPTS-LABEL: func.func @shared_activation
// OPTS-NOT: moe.fp8_matmul
// OPTS-COUNT-2: moe.matmul
func.func @shared_activation(%x: tensor<?x128xf32>) -> (tensor<?x256xf32>, tensor<?x256xf32>) {
  %wk = moe.weight [#moe.tensor_ref<"m.safetensors", "model.layers.0.self_attn.k_proj.weight">] stored tensor<256x128xbf16> role <attn_k, layer = 0> : tensor<256x128xbf16>
  %wv = moe.weight [#moe.tensor_ref<"m.safetensors", "model.layers.0.self_attn.v_proj.weight">] stored tensor<256x128xbf16> role <attn_v, layer = 0> : tensor<256x128xbf16>
  %k = moe.matmul %x, %wk : tensor<?x128xf32>, tensor<256x128xbf16> -> tensor<?x256xf32>
  %v = moe.matmul %x, %wv : tensor<?x128xf32>, tensor<256x128xbf16> -> tensor<?x256xf32>
  return %k, %v : tensor<?x256xf32>, tensor<?x256xf32>
}

// Routed experts: stacked weights get per-expert block scales; the epilogue is kept.
// CHECK-LABEL: func.func @grouped
// CHECK-SAME: (%[[ROWS:.+]]: tensor<?x128xf32>, %[[OFF:.+]]: tensor<3xi32>)
// CHECK: %[[RQ:.+]], %[[RS:.+]] = moe.quantize %[[ROWS]]
// CHECK: %[[WQ:.+]], %[[WS:.+]] = moe.weight {{.+}} {transforms = [#moe.stack, #moe.quantize<#moe.block_scale<format = e4m3fn, block = [128, 128]>>]} : tensor<2x512x128xf8E4M3FN>, tensor<2x4x1xf32>
// CHECK: %[[Y:.+]] = moe.fp8_grouped_matmul %[[RQ]], %[[RS]], %[[OFF]], %[[WQ]], %[[WS]] {act_scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>, epilogue = #moe.epilogue<silu_mul>, weight_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<?x128xf8E4M3FN>, tensor<?x1xf32>, tensor<3xi32>, tensor<2x512x128xf8E4M3FN>, tensor<2x4x1xf32> -> tensor<?x256xf32>
// CHECK-NOT: moe.grouped_matmul
// CHECK: return %[[Y]]
func.func @grouped(%rows: tensor<?x128xf32>, %off: tensor<3xi32>) -> tensor<?x256xf32> {
  %w = moe.weight [#moe.tensor_ref<"m.safetensors", "model.layers.1.mlp.experts.0.gate_up">, #moe.tensor_ref<"m.safetensors", "model.layers.1.mlp.experts.1.gate_up">] stored tensor<512x128xbf16> role <unknown, layer = 1> {transforms = [#moe.stack]} : tensor<2x512x128xbf16>
  %y = moe.grouped_matmul %rows, %off, %w {epilogue = #moe.epilogue<silu_mul>} : tensor<?x128xf32>, tensor<3xi32>, tensor<2x512x128xbf16> -> tensor<?x256xf32>
  return %y : tensor<?x256xf32>
}

// An FP8 checkpoint weight is used as stored: its data and scales feed the FP8 GEMM.
// CHECK-LABEL: func.func @fp8_checkpoint
// CHECK: %[[Q:.+]], %[[S:.+]] = moe.weight {{.+}} stored tensor<256x128xf8E4M3FN> scales {{.+}} {stored_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<256x128xf8E4M3FN>, tensor<2x1xf32>
// CHECK-NOT: #moe.quantize
// CHECK-NOT: moe.dequantize
// CHECK: moe.fp8_matmul %{{.+}}, %{{.+}}, %[[Q]], %[[S]]
// OPTS-LABEL: func.func @fp8_checkpoint
// OPTS: moe.dequantize
// OPTS: moe.matmul
func.func @fp8_checkpoint(%x: tensor<?x128xf32>) -> tensor<?x256xf32> {
  %q, %s = moe.weight [#moe.tensor_ref<"m.safetensors", "model.layers.0.self_attn.q_proj.weight">] stored tensor<256x128xf8E4M3FN> scales [#moe.tensor_ref<"m.safetensors", "model.layers.0.self_attn.q_proj.weight_scale_inv">] role <attn_q, layer = 0> {stored_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<256x128xf8E4M3FN>, tensor<2x1xf32>
  %w = moe.dequantize %q, %s {scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<256x128xf8E4M3FN>, tensor<2x1xf32> -> tensor<256x128xf32>
  %y = moe.matmul %x, %w : tensor<?x128xf32>, tensor<256x128xf32> -> tensor<?x256xf32>
  return %y : tensor<?x256xf32>
}

// Gate and up concatenated at N = 128, a block boundary: each piece is quantized while
// streaming and data and scales are concatenated.
// CHECK-LABEL: func.func @concat_aligned
// CHECK: %[[GQ:.+]], %[[GS:.+]] = moe.weight {{.+}}"model.layers.0.mlp.gate_proj.weight"{{.+}}#moe.quantize
// CHECK: %[[UQ:.+]], %[[US:.+]] = moe.weight {{.+}}"model.layers.0.mlp.up_proj.weight"{{.+}}#moe.quantize
// CHECK: %[[Q:.+]] = moe.concat %[[GQ]], %[[UQ]] {dim = 0 : i64} : tensor<128x128xf8E4M3FN>, tensor<128x128xf8E4M3FN> -> tensor<256x128xf8E4M3FN>
// CHECK: %[[S:.+]] = moe.concat %[[GS]], %[[US]] {dim = 0 : i64} : tensor<1x1xf32>, tensor<1x1xf32> -> tensor<2x1xf32>
// CHECK: moe.fp8_matmul %{{.+}}, %{{.+}}, %[[Q]], %[[S]] {{.+}}epilogue = #moe.epilogue<silu_mul>
func.func @concat_aligned(%x: tensor<?x128xf32>) -> tensor<?x128xf32> {
  %wg = moe.weight [#moe.tensor_ref<"m.safetensors", "model.layers.0.mlp.gate_proj.weight">] stored tensor<128x128xbf16> role <mlp_gate, layer = 0> : tensor<128x128xbf16>
  %wu = moe.weight [#moe.tensor_ref<"m.safetensors", "model.layers.0.mlp.up_proj.weight">] stored tensor<128x128xbf16> role <mlp_up, layer = 0> : tensor<128x128xbf16>
  %w = moe.concat %wg, %wu {dim = 0 : i64} : tensor<128x128xbf16>, tensor<128x128xbf16> -> tensor<256x128xbf16>
  %y = moe.matmul %x, %w {epilogue = #moe.epilogue<silu_mul>} : tensor<?x128xf32>, tensor<256x128xbf16> -> tensor<?x128xf32>
  return %y : tensor<?x128xf32>
}

// Split at N = 48, inside a block: the concatenated weight is quantized as a whole by a
// moe.quantize (all-weight operands, folded by the artifact writer).
// CHECK-LABEL: func.func @concat_unaligned
// CHECK: %[[W:.+]] = moe.concat %{{.+}}, %{{.+}} {dim = 0 : i64} : tensor<48x128xbf16>, tensor<48x128xbf16> -> tensor<96x128xbf16>
// CHECK: %[[Q:.+]], %[[S:.+]] = moe.quantize %[[W]] {scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<96x128xbf16> -> tensor<96x128xf8E4M3FN>, tensor<1x1xf32>
// CHECK: moe.fp8_matmul %{{.+}}, %{{.+}}, %[[Q]], %[[S]]
func.func @concat_unaligned(%x: tensor<?x128xf32>) -> tensor<?x48xf32> {
  %wg = moe.weight [#moe.tensor_ref<"m.safetensors", "model.layers.0.mlp.gate_proj.weight">] stored tensor<48x128xbf16> role <mlp_gate, layer = 0> : tensor<48x128xbf16>
  %wu = moe.weight [#moe.tensor_ref<"m.safetensors", "model.layers.0.mlp.up_proj.weight">] stored tensor<48x128xbf16> role <mlp_up, layer = 0> : tensor<48x128xbf16>
  %w = moe.concat %wg, %wu {dim = 0 : i64} : tensor<48x128xbf16>, tensor<48x128xbf16> -> tensor<96x128xbf16>
  %y = moe.matmul %x, %w {epilogue = #moe.epilogue<silu_mul>} : tensor<?x128xf32>, tensor<96x128xbf16> -> tensor<?x48xf32>
  return %y : tensor<?x48xf32>
}

// A bias stays high precision and moves to the FP8 GEMM.
// CHECK-LABEL: func.func @bias
// CHECK: %[[B:.+]] = moe.weight {{.+}}"model.layers.0.self_attn.q_proj.bias"
// CHECK: moe.fp8_matmul %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}} bias %[[B]] {{.+}} : tensor<?x128xf8E4M3FN>, tensor<?x1xf32>, tensor<128x128xf8E4M3FN>, tensor<1x1xf32>, tensor<128xbf16> -> tensor<?x128xf32>
func.func @bias(%x: tensor<?x128xf32>) -> tensor<?x128xf32> {
  %w = moe.weight [#moe.tensor_ref<"m.safetensors", "model.layers.0.self_attn.q_proj.weight">] stored tensor<128x128xbf16> role <attn_q, layer = 0> : tensor<128x128xbf16>
  %b = moe.weight [#moe.tensor_ref<"m.safetensors", "model.layers.0.self_attn.q_proj.bias">] stored tensor<128xbf16> role <attn_q, layer = 0> : tensor<128xbf16>
  %y = moe.matmul %x, %w bias %b : tensor<?x128xf32>, tensor<128x128xbf16>, tensor<128xbf16> -> tensor<?x128xf32>
  return %y : tensor<?x128xf32>
}

// The lm_head stays in high precision unless keep-lm-head=false.
// CHECK-LABEL: func.func @lm_head
// CHECK-NOT: = moe.quantize
// CHECK: moe.matmul
// OPTS-LABEL: func.func @lm_head
// OPTS: = moe.quantize
// OPTS: moe.fp8_matmul
func.func @lm_head(%h: tensor<?x128xf32>) -> tensor<?x512xf32> {
  %w = moe.weight [#moe.tensor_ref<"m.safetensors", "lm_head.weight">] stored tensor<512x128xbf16> role <lm_head> : tensor<512x128xbf16>
  %y = moe.matmul %h, %w : tensor<?x128xf32>, tensor<512x128xbf16> -> tensor<?x512xf32>
  return %y : tensor<?x512xf32>
}

// A tied lm_head (the embedding table): with keep-lm-head=false only the GEMM reads an FP8
// copy; the embedding keeps the bf16 table.
// CHECK-LABEL: func.func @tied_lm_head
// CHECK-NOT: moe.fp8_matmul
// CHECK: moe.matmul
// OPTS-LABEL: func.func @tied_lm_head
// OPTS: %[[T:.+]] = moe.weight {{.+}}"model.embed_tokens.weight"{{.+}} : tensor<512x128xbf16>
// OPTS: %[[TQ:.+]], %[[TS:.+]] = moe.weight {{.+}}"model.embed_tokens.weight"{{.+}}#moe.quantize
// OPTS: moe.embed %[[T]]
// OPTS: moe.fp8_matmul %{{.+}}, %{{.+}}, %[[TQ]], %[[TS]]
func.func @tied_lm_head(%ids: tensor<?xi32>) -> tensor<?x512xf32> {
  %t = moe.weight [#moe.tensor_ref<"m.safetensors", "model.embed_tokens.weight">] stored tensor<512x128xbf16> role <embedding> : tensor<512x128xbf16>
  %h = moe.embed %t, %ids : tensor<512x128xbf16>, tensor<?xi32> -> tensor<?x128xf32>
  %y = moe.matmul %h, %t : tensor<?x128xf32>, tensor<512x128xbf16> -> tensor<?x512xf32>
  return %y : tensor<?x512xf32>
}

// keep-first-layers=1 keep-last-layers=1 over layers 0..2 leaves only layer 1 in FP8.
// CHECK-LABEL: func.func @layers
// CHECK-COUNT-3: moe.fp8_matmul
// LAYERS-LABEL: func.func @layers
// LAYERS: %[[L0:.+]] = moe.matmul
// LAYERS: %[[L1:.+]] = moe.fp8_matmul
// LAYERS: %[[L2:.+]] = moe.matmul
func.func @layers(%x: tensor<?x128xf32>) -> tensor<?x128xf32> {
  %w0 = moe.weight [#moe.tensor_ref<"m.safetensors", "model.layers.0.mlp.down_proj.weight">] stored tensor<128x128xbf16> role <mlp_down, layer = 0> : tensor<128x128xbf16>
  %w1 = moe.weight [#moe.tensor_ref<"m.safetensors", "model.layers.1.mlp.down_proj.weight">] stored tensor<128x128xbf16> role <mlp_down, layer = 1> : tensor<128x128xbf16>
  %w2 = moe.weight [#moe.tensor_ref<"m.safetensors", "model.layers.2.mlp.down_proj.weight">] stored tensor<128x128xbf16> role <mlp_down, layer = 2> : tensor<128x128xbf16>
  %y0 = moe.matmul %x, %w0 : tensor<?x128xf32>, tensor<128x128xbf16> -> tensor<?x128xf32>
  %y1 = moe.matmul %y0, %w1 : tensor<?x128xf32>, tensor<128x128xbf16> -> tensor<?x128xf32>
  %y2 = moe.matmul %y1, %w2 : tensor<?x128xf32>, tensor<128x128xbf16> -> tensor<?x128xf32>
  return %y2 : tensor<?x128xf32>
}

// GEMMs over router, shared-expert-gate and norm weights (by their `#moe.role`) and over
// weights that are not checkpoint tensors stay in high precision.
// CHECK-LABEL: func.func @kept
// CHECK-NOT: = moe.quantize
// CHECK-NOT: moe.fp8_matmul
// CHECK-COUNT-4: moe.matmul
func.func @kept(%x: tensor<?x128xf32>, %arg: tensor<8x128xbf16>) -> (tensor<?x8xf32>, tensor<?x1xf32>, tensor<?x8xf32>, tensor<?x8xf32>) {
  %router = moe.weight [#moe.tensor_ref<"m.safetensors", "model.layers.1.mlp.gate.weight">] stored tensor<8x128xbf16> role <router, layer = 1> : tensor<8x128xbf16>
  %sg = moe.weight [#moe.tensor_ref<"m.safetensors", "model.layers.1.mlp.shared_expert_gate.weight">] stored tensor<1x128xbf16> role <shared_expert_gate, layer = 1> : tensor<1x128xbf16>
  %byrole = moe.weight [#moe.tensor_ref<"model.onnx", "onnx::Gemm_7">] stored tensor<8x128xbf16> role <router> : tensor<8x128xbf16>
  %a = moe.matmul %x, %router : tensor<?x128xf32>, tensor<8x128xbf16> -> tensor<?x8xf32>
  %b = moe.matmul %x, %sg : tensor<?x128xf32>, tensor<1x128xbf16> -> tensor<?x1xf32>
  %c = moe.matmul %x, %byrole : tensor<?x128xf32>, tensor<8x128xbf16> -> tensor<?x8xf32>
  %d = moe.matmul %x, %arg : tensor<?x128xf32>, tensor<8x128xbf16> -> tensor<?x8xf32>
  return %a, %b, %c, %d : tensor<?x8xf32>, tensor<?x1xf32>, tensor<?x8xf32>, tensor<?x8xf32>
}

// Interleaved SwiGLU weights (the ONNX importer's reshape + slice of one stacked weight) are
// weights too: each slice read by a GEMM is quantized as a whole, in its sliced layout.
// CHECK-LABEL: func.func @reshape_slice
// CHECK-SAME: (%[[ROWS:.+]]: tensor<?x128xf32>, %[[OFF:.+]]: tensor<3xi32>)
// CHECK: %[[RQ:.+]], %[[RS:.+]] = moe.quantize %[[ROWS]] {scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>}
// CHECK: %[[W:.+]] = moe.weight {{.+}} : tensor<2x256x128xf32>
// CHECK-NOT: #moe.quantize
// CHECK: %[[R:.+]] = moe.reshape %[[W]] : tensor<2x256x128xf32> -> tensor<2x128x256xf32>
// CHECK: %[[G:.+]] = moe.slice %[[R]] {offset = 0 : i64}
// CHECK: %[[GQ:.+]], %[[GS:.+]] = moe.quantize %[[G]] {scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<2x128x128xf32> -> tensor<2x128x128xf8E4M3FN>, tensor<2x1x1xf32>
// CHECK: %[[U:.+]] = moe.slice %[[R]] {offset = 128 : i64}
// CHECK: %[[UQ:.+]], %[[US:.+]] = moe.quantize %[[U]] {scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<2x128x128xf32> -> tensor<2x128x128xf8E4M3FN>, tensor<2x1x1xf32>
// CHECK: %[[GY:.+]] = moe.fp8_grouped_matmul %[[RQ]], %[[RS]], %[[OFF]], %[[GQ]], %[[GS]]
// CHECK: %[[UY:.+]] = moe.fp8_grouped_matmul %[[RQ]], %[[RS]], %[[OFF]], %[[UQ]], %[[US]]
// CHECK-NOT: moe.grouped_matmul
// CHECK-NOT: moe.dequantize
// CHECK: moe.silu_mul %[[GY]], %[[UY]]
func.func @reshape_slice(%rows: tensor<?x128xf32>, %off: tensor<3xi32>) -> tensor<?x128xf32> {
  %w = moe.weight [#moe.tensor_ref<"model.onnx", "mlp.fc1">] stored tensor<2x256x128xf32> role <expert_gate, layer = 1> : tensor<2x256x128xf32>
  %r = moe.reshape %w : tensor<2x256x128xf32> -> tensor<2x128x256xf32>
  %wg = moe.slice %r {offset = 0 : i64} : tensor<2x128x256xf32> -> tensor<2x128x128xf32>
  %wu = moe.slice %r {offset = 128 : i64} : tensor<2x128x256xf32> -> tensor<2x128x128xf32>
  %g = moe.grouped_matmul %rows, %off, %wg : tensor<?x128xf32>, tensor<3xi32>, tensor<2x128x128xf32> -> tensor<?x128xf32>
  %u = moe.grouped_matmul %rows, %off, %wu : tensor<?x128xf32>, tensor<3xi32>, tensor<2x128x128xf32> -> tensor<?x128xf32>
  %h = moe.silu_mul %g, %u : tensor<?x128xf32>
  return %h : tensor<?x128xf32>
}
