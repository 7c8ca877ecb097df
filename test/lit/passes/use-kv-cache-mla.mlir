// --moec-use-kv-cache on DeepSeek's MLA: absorbed attention over a latent cache, recognised from the ops and the attn_kv_b role; other attention stays moe.paged_attention.
// RUN: moec-opt %s --split-input-file --moec-use-kv-cache="dtype=f32 page-tokens=16 max-sequences=4 max-context=64" | FileCheck %s
// RUN: moec-opt %s --split-input-file --moec-use-kv-cache="dtype=f32 page-tokens=16 max-sequences=4 max-context=64" | moec-opt --split-input-file | FileCheck %s

// Grouped-query attention: K and V caches of the key/value heads, moe.paged_attention.
// CHECK-LABEL: func.func @gqa
// CHECK-SAME: %[[POS:[^:]+]]: tensor<?xi32> {moe.name = "positions"}, %[[SLOTS:[^:]+]]: tensor<?xi32> {moe.name = "slots"}, %[[TABLE:[^:]+]]: tensor<4x4xi32> {moe.name = "page_table"}, %[[KC:[^:]+]]: tensor<?x16x2x16xf32> {moe.kv_cache, moe.name = "kv_cache.0.k"}, %[[VC:[^:]+]]: tensor<?x16x2x8xf32> {moe.kv_cache, moe.name = "kv_cache.0.v"})
// CHECK: %[[O:.+]] = moe.paged_attention %{{.+}}, %{{.+}}, %{{.+}}, %[[POS]], %[[SLOTS]], %[[TABLE]], %[[KC]], %[[VC]] {layer = 0 : i64, scale = 2.500000e-01 : f64}
// CHECK-NOT: moe.attention
// CHECK: return %[[O]]
func.func @gqa(%q: tensor<?x4x16xf32>, %k: tensor<?x2x16xf32>, %v: tensor<?x2x8xf32>, %pos: tensor<?xi32> {moe.name = "positions"}) -> tensor<?x4x8xf32> {
  %o = moe.attention %q, %k, %v {causal, scale = 0.25 : f64} : tensor<?x4x16xf32>, tensor<?x2x16xf32>, tensor<?x2x8xf32> -> tensor<?x4x8xf32>
  return %o : tensor<?x4x8xf32>
}

// -----

// DeepSeek's MLA as the importer expands it: one latent cache of R + Dr = 32 + 16 values per position, the query
// halves, the normalised latent, the rotary key and the kv_b weight feed moe.paged_mla_attention, and the expanded
// K/V (kv_b GEMM, expand, slices, concats) are gone.
// CHECK-LABEL: func.func @mla
// CHECK-SAME: %[[POS:[^:]+]]: tensor<?xi32> {moe.name = "positions"}, %[[SLOTS:[^:]+]]: tensor<?xi32> {moe.name = "slots"}, %[[TABLE:[^:]+]]: tensor<4x4xi32> {moe.name = "page_table"}, %[[CACHE:[^:]+]]: tensor<?x16x1x48xf32> {moe.kv_cache, moe.name = "kv_cache.0.latent"})
// CHECK: %[[QN:.+]] = moe.slice %{{.+}} {offset = 0 : i64} : tensor<?x4x48xf32> -> tensor<?x4x32xf32>
// CHECK: %[[QR:.+]] = moe.rope
// CHECK: %[[C:.+]] = moe.rms_norm
// CHECK: %[[KR:.+]] = moe.rope {{.+}} : tensor<?x1x16xf32>, tensor<?xi32>
// CHECK-NOT: moe.expand
// CHECK: %[[W:.+]] = moe.weight {{.+}}"model.layers.0.self_attn.kv_b_proj.weight"
// CHECK-NOT: moe.{{matmul|reshape|slice|concat|attention}}
// CHECK: %[[O:.+]] = moe.paged_mla_attention %[[QN]], %[[QR]], %[[C]], %[[KR]], %[[W]], %[[POS]], %[[SLOTS]], %[[TABLE]], %[[CACHE]] {layer = 0 : i64, scale = 2.500000e-01 : f64} : tensor<?x4x32xf32>, tensor<?x4x16xf32>, tensor<?x32xf32>, tensor<?x1x16xf32>, tensor<224x32xbf16>, tensor<?xi32>, tensor<?xi32>, tensor<4x4xi32>, tensor<?x16x1x48xf32> -> tensor<?x4x24xf32>
// CHECK-NEXT: return %[[O]]
func.func @mla(%q: tensor<?x4x48xf32>, %kv: tensor<?x48xf32>, %pos: tensor<?xi32> {moe.name = "positions"}) -> tensor<?x4x24xf32> {
  %qn = moe.slice %q {offset = 0 : i64} : tensor<?x4x48xf32> -> tensor<?x4x32xf32>
  %qr0 = moe.slice %q {offset = 32 : i64} : tensor<?x4x48xf32> -> tensor<?x4x16xf32>
  %qr = moe.rope %qr0, %pos {interleaved, theta = 10000.0 : f64} : tensor<?x4x16xf32>, tensor<?xi32>
  %nw = moe.weight [#moe.tensor_ref<"m.safetensors", "model.layers.0.self_attn.kv_a_layernorm.weight">] stored tensor<32xbf16> role <norm, layer = 0> : tensor<32xbf16>
  %c0 = moe.slice %kv {offset = 0 : i64} : tensor<?x48xf32> -> tensor<?x32xf32>
  %c = moe.rms_norm %c0, %nw {epsilon = 1.0e-06 : f64} : tensor<?x32xf32>, tensor<32xbf16> -> tensor<?x32xf32>
  %kr0 = moe.slice %kv {offset = 32 : i64} : tensor<?x48xf32> -> tensor<?x16xf32>
  %kr1 = moe.reshape %kr0 : tensor<?x16xf32> -> tensor<?x1x16xf32>
  %kr = moe.rope %kr1, %pos {interleaved, theta = 10000.0 : f64} : tensor<?x1x16xf32>, tensor<?xi32>
  %kre = moe.expand %kr : tensor<?x1x16xf32> -> tensor<?x4x16xf32>
  %w = moe.weight [#moe.tensor_ref<"m.safetensors", "model.layers.0.self_attn.kv_b_proj.weight">] stored tensor<224x32xbf16> role <attn_kv_b, layer = 0> : tensor<224x32xbf16>
  %kvb = moe.matmul %c, %w : tensor<?x32xf32>, tensor<224x32xbf16> -> tensor<?x224xf32>
  %kvb3 = moe.reshape %kvb : tensor<?x224xf32> -> tensor<?x4x56xf32>
  %kn = moe.slice %kvb3 {offset = 0 : i64} : tensor<?x4x56xf32> -> tensor<?x4x32xf32>
  %k = moe.concat %kn, %kre : tensor<?x4x32xf32>, tensor<?x4x16xf32> -> tensor<?x4x48xf32>
  %v = moe.slice %kvb3 {offset = 32 : i64} : tensor<?x4x56xf32> -> tensor<?x4x24xf32>
  %qq = moe.concat %qn, %qr : tensor<?x4x32xf32>, tensor<?x4x16xf32> -> tensor<?x4x48xf32>
  %o = moe.attention %qq, %k, %v {causal, scale = 0.25 : f64} : tensor<?x4x48xf32>, tensor<?x4x48xf32>, tensor<?x4x24xf32> -> tensor<?x4x24xf32>
  return %o : tensor<?x4x24xf32>
}

// -----

// MLA after the fp8 phase: the latent is the f32 result the GEMM's input was quantized from, and kv_b the FP8
// weight dequantized with its 128x128 block scales (never the raw FP8 codes).
// CHECK-LABEL: func.func @mla_fp8
// CHECK-SAME: %[[CACHE:[^:]+]]: tensor<?x16x1x48xf32> {moe.kv_cache, moe.name = "kv_cache.0.latent"})
// CHECK: %[[C:.+]], %{{.+}}, %{{.+}} = moe.rms_norm
// CHECK: %[[WQ:.+]], %[[WS:.+]] = moe.weight {{.+}}"model.layers.0.self_attn.kv_b_proj.weight"
// CHECK-NOT: moe.fp8_matmul
// CHECK: %[[W:.+]] = moe.dequantize %[[WQ]], %[[WS]] {scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<224x32xf8E4M3FN>, tensor<2x1xf32> -> tensor<224x32xf32>
// CHECK-NEXT: %[[O:.+]] = moe.paged_mla_attention %{{.+}}, %{{.+}}, %[[C]], %{{.+}}, %[[W]], {{.+}}, %[[CACHE]]
// CHECK-NEXT: return %[[O]]
func.func @mla_fp8(%q: tensor<?x4x48xf32>, %kv: tensor<?x48xf32>, %pos: tensor<?xi32> {moe.name = "positions"}) -> tensor<?x4x24xf32> {
  %qn = moe.slice %q {offset = 0 : i64} : tensor<?x4x48xf32> -> tensor<?x4x32xf32>
  %qr0 = moe.slice %q {offset = 32 : i64} : tensor<?x4x48xf32> -> tensor<?x4x16xf32>
  %qr = moe.rope %qr0, %pos {interleaved, theta = 10000.0 : f64} : tensor<?x4x16xf32>, tensor<?xi32>
  %nw = moe.weight [#moe.tensor_ref<"m.safetensors", "model.layers.0.self_attn.kv_a_layernorm.weight">] stored tensor<32xbf16> role <norm, layer = 0> : tensor<32xbf16>
  %c0 = moe.slice %kv {offset = 0 : i64} : tensor<?x48xf32> -> tensor<?x32xf32>
  %c, %cq, %cs = moe.rms_norm %c0, %nw {epsilon = 1.0e-06 : f64, quantize = #moe.block_scale<format = e4m3fn, block = [1, 128]>} : tensor<?x32xf32>, tensor<32xbf16> -> tensor<?x32xf32>, tensor<?x32xf8E4M3FN>, tensor<?x1xf32>
  %kr0 = moe.slice %kv {offset = 32 : i64} : tensor<?x48xf32> -> tensor<?x16xf32>
  %kr1 = moe.reshape %kr0 : tensor<?x16xf32> -> tensor<?x1x16xf32>
  %kr = moe.rope %kr1, %pos {interleaved, theta = 10000.0 : f64} : tensor<?x1x16xf32>, tensor<?xi32>
  %kre = moe.expand %kr : tensor<?x1x16xf32> -> tensor<?x4x16xf32>
  %wq, %ws = moe.weight [#moe.tensor_ref<"m.safetensors", "model.layers.0.self_attn.kv_b_proj.weight">] stored tensor<224x32xf8E4M3FN> scales [#moe.tensor_ref<"m.safetensors", "model.layers.0.self_attn.kv_b_proj.weight_scale_inv">] role <attn_kv_b, layer = 0> {stored_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<224x32xf8E4M3FN>, tensor<2x1xf32>
  %kvb = moe.fp8_matmul %cq, %cs, %wq, %ws {act_scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>, weight_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<?x32xf8E4M3FN>, tensor<?x1xf32>, tensor<224x32xf8E4M3FN>, tensor<2x1xf32> -> tensor<?x224xf32>
  %kvb3 = moe.reshape %kvb : tensor<?x224xf32> -> tensor<?x4x56xf32>
  %kn = moe.slice %kvb3 {offset = 0 : i64} : tensor<?x4x56xf32> -> tensor<?x4x32xf32>
  %k = moe.concat %kn, %kre : tensor<?x4x32xf32>, tensor<?x4x16xf32> -> tensor<?x4x48xf32>
  %v = moe.slice %kvb3 {offset = 32 : i64} : tensor<?x4x56xf32> -> tensor<?x4x24xf32>
  %qq = moe.concat %qn, %qr : tensor<?x4x32xf32>, tensor<?x4x16xf32> -> tensor<?x4x48xf32>
  %o = moe.attention %qq, %k, %v {causal, scale = 0.25 : f64} : tensor<?x4x48xf32>, tensor<?x4x48xf32>, tensor<?x4x24xf32> -> tensor<?x4x24xf32>
  return %o : tensor<?x4x24xf32>
}

// -----

// The same ops over a weight that is not kv_b (role attn_q_b) are not MLA: plain paged attention over expanded K/V.
// CHECK-LABEL: func.func @not_kv_b
// CHECK-SAME: tensor<?x16x4x48xf32> {moe.kv_cache, moe.name = "kv_cache.0.k"}, %{{[^:]+}}: tensor<?x16x4x24xf32> {moe.kv_cache, moe.name = "kv_cache.0.v"})
// CHECK: moe.matmul
// CHECK: moe.paged_attention
// CHECK-NOT: moe.paged_mla_attention
func.func @not_kv_b(%q: tensor<?x4x48xf32>, %kv: tensor<?x48xf32>, %pos: tensor<?xi32> {moe.name = "positions"}) -> tensor<?x4x24xf32> {
  %qn = moe.slice %q {offset = 0 : i64} : tensor<?x4x48xf32> -> tensor<?x4x32xf32>
  %qr0 = moe.slice %q {offset = 32 : i64} : tensor<?x4x48xf32> -> tensor<?x4x16xf32>
  %qr = moe.rope %qr0, %pos {interleaved, theta = 10000.0 : f64} : tensor<?x4x16xf32>, tensor<?xi32>
  %nw = moe.weight [#moe.tensor_ref<"m.safetensors", "model.layers.0.self_attn.kv_a_layernorm.weight">] stored tensor<32xbf16> role <norm, layer = 0> : tensor<32xbf16>
  %c0 = moe.slice %kv {offset = 0 : i64} : tensor<?x48xf32> -> tensor<?x32xf32>
  %c = moe.rms_norm %c0, %nw {epsilon = 1.0e-06 : f64} : tensor<?x32xf32>, tensor<32xbf16> -> tensor<?x32xf32>
  %kr0 = moe.slice %kv {offset = 32 : i64} : tensor<?x48xf32> -> tensor<?x16xf32>
  %kr1 = moe.reshape %kr0 : tensor<?x16xf32> -> tensor<?x1x16xf32>
  %kr = moe.rope %kr1, %pos {interleaved, theta = 10000.0 : f64} : tensor<?x1x16xf32>, tensor<?xi32>
  %kre = moe.expand %kr : tensor<?x1x16xf32> -> tensor<?x4x16xf32>
  %w = moe.weight [#moe.tensor_ref<"m.safetensors", "model.layers.0.self_attn.kv_b_proj.weight">] stored tensor<224x32xbf16> role <attn_q_b, layer = 0> : tensor<224x32xbf16>
  %kvb = moe.matmul %c, %w : tensor<?x32xf32>, tensor<224x32xbf16> -> tensor<?x224xf32>
  %kvb3 = moe.reshape %kvb : tensor<?x224xf32> -> tensor<?x4x56xf32>
  %kn = moe.slice %kvb3 {offset = 0 : i64} : tensor<?x4x56xf32> -> tensor<?x4x32xf32>
  %k = moe.concat %kn, %kre : tensor<?x4x32xf32>, tensor<?x4x16xf32> -> tensor<?x4x48xf32>
  %v = moe.slice %kvb3 {offset = 32 : i64} : tensor<?x4x56xf32> -> tensor<?x4x24xf32>
  %qq = moe.concat %qn, %qr : tensor<?x4x32xf32>, tensor<?x4x16xf32> -> tensor<?x4x48xf32>
  %o = moe.attention %qq, %k, %v {causal, scale = 0.25 : f64} : tensor<?x4x48xf32>, tensor<?x4x48xf32>, tensor<?x4x24xf32> -> tensor<?x4x24xf32>
  return %o : tensor<?x4x24xf32>
}
