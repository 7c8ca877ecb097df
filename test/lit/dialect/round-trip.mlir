// Every moe op and attribute parses, verifies, prints, and parses again to the same text.
// RUN: moec-opt %s | moec-opt | FileCheck %s
// RUN: moec-opt %s | moec-opt > %t.1 && moec-opt %s > %t.2 && diff %t.1 %t.2

// CHECK-LABEL: func.func @weights
func.func @weights() -> (tensor<64xbf16>, tensor<2x32x64xbf16>, tensor<256x128xf8E4M3FN>, tensor<2x1xf32>, tensor<200x300xf8E4M3FN>, tensor<2x3xf32>) {
  // CHECK: %[[NORM:.+]] = moe.weight [#moe.tensor_ref<"model.safetensors", "model.norm.weight">] stored tensor<64xbf16> : tensor<64xbf16>
  %0 = moe.weight [#moe.tensor_ref<"model.safetensors", "model.norm.weight">] stored tensor<64xbf16> : tensor<64xbf16>
  // CHECK: moe.weight [#moe.tensor_ref<"a.safetensors", "e.0.w1">, #moe.tensor_ref<"b.safetensors", "e.1.w1">]
  // CHECK-SAME: stored tensor<32x64xbf16> {transforms = [#moe.stack]} : tensor<2x32x64xbf16>
  %1 = moe.weight [#moe.tensor_ref<"a.safetensors", "e.0.w1">, #moe.tensor_ref<"b.safetensors", "e.1.w1">] stored tensor<32x64xbf16> {transforms = [#moe.stack]} : tensor<2x32x64xbf16>
  // A bf16 weight quantized while streaming: 256x128 in 128x128 blocks has 2x1 scales.
  // CHECK: %[[Q:.+]], %[[S:.+]] = moe.weight
  // CHECK-SAME: {transforms = [#moe.quantize<#moe.block_scale<format = e4m3fn, block = [128, 128]>>]} : tensor<256x128xf8E4M3FN>, tensor<2x1xf32>
  %2:2 = moe.weight [#moe.tensor_ref<"model.safetensors", "q.weight">] stored tensor<256x128xbf16> {transforms = [#moe.quantize<#moe.block_scale<format = e4m3fn, block = [128, 128]>>]} : tensor<256x128xf8E4M3FN>, tensor<2x1xf32>
  // An FP8 checkpoint tensor with its weight_scale_inv, transposed: scales follow.
  // CHECK: moe.weight [#moe.tensor_ref<"model.safetensors", "o.weight">] stored tensor<300x200xf8E4M3FN> scales [#moe.tensor_ref<"model.safetensors", "o.weight_scale_inv">]
  // CHECK-SAME: stored_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>, transforms = [#moe.transpose]
  // CHECK-SAME: : tensor<200x300xf8E4M3FN>, tensor<2x3xf32>
  %3:2 = moe.weight [#moe.tensor_ref<"model.safetensors", "o.weight">] stored tensor<300x200xf8E4M3FN> scales [#moe.tensor_ref<"model.safetensors", "o.weight_scale_inv">] {stored_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>, transforms = [#moe.transpose]} : tensor<200x300xf8E4M3FN>, tensor<2x3xf32>
  return %0, %1, %2#0, %2#1, %3#0, %3#1 : tensor<64xbf16>, tensor<2x32x64xbf16>, tensor<256x128xf8E4M3FN>, tensor<2x1xf32>, tensor<200x300xf8E4M3FN>, tensor<2x3xf32>
}

// CHECK-LABEL: func.func @dense
// CHECK-SAME: (%[[IDS:.+]]: tensor<?xi32>, %[[TABLE:.+]]: tensor<256x64xbf16>, %[[W:.+]]: tensor<128x64xbf16>, %[[B:.+]]: tensor<128xbf16>, %[[NW:.+]]: tensor<64xbf16>)
func.func @dense(%ids: tensor<?xi32>, %table: tensor<256x64xbf16>, %w: tensor<128x64xbf16>, %b: tensor<128xbf16>, %nw: tensor<64xbf16>) -> tensor<?x64xf32> {
  // CHECK: %[[H:.+]] = moe.embed %[[TABLE]], %[[IDS]] : tensor<256x64xbf16>, tensor<?xi32> -> tensor<?x64xf32>
  %h = moe.embed %table, %ids : tensor<256x64xbf16>, tensor<?xi32> -> tensor<?x64xf32>
  // CHECK: %[[N:.+]] = moe.rms_norm %[[H]], %[[NW]] {epsilon = 9.9999999999999995E-7 : f64} : tensor<?x64xf32>, tensor<64xbf16> -> tensor<?x64xf32>
  %n = moe.rms_norm %h, %nw {epsilon = 1.0e-06 : f64} : tensor<?x64xf32>, tensor<64xbf16> -> tensor<?x64xf32>
  // CHECK: %[[M:.+]] = moe.matmul %[[N]], %[[W]] bias %[[B]] : tensor<?x64xf32>, tensor<128x64xbf16>, tensor<128xbf16> -> tensor<?x128xf32>
  %m = moe.matmul %n, %w bias %b : tensor<?x64xf32>, tensor<128x64xbf16>, tensor<128xbf16> -> tensor<?x128xf32>
  // CHECK: %[[S:.+]] = moe.matmul %[[N]], %[[W]] {epilogue = #moe.epilogue<silu_mul>} : tensor<?x64xf32>, tensor<128x64xbf16> -> tensor<?x64xf32>
  %s = moe.matmul %n, %w {epilogue = #moe.epilogue<silu_mul>} : tensor<?x64xf32>, tensor<128x64xbf16> -> tensor<?x64xf32>
  // CHECK: %[[G:.+]] = moe.slice %[[M]] {offset = 0 : i64} : tensor<?x128xf32> -> tensor<?x64xf32>
  %g = moe.slice %m {offset = 0 : i64} : tensor<?x128xf32> -> tensor<?x64xf32>
  // CHECK: %[[U:.+]] = moe.slice %[[M]] {offset = 64 : i64} : tensor<?x128xf32> -> tensor<?x64xf32>
  %u = moe.slice %m {offset = 64 : i64} : tensor<?x128xf32> -> tensor<?x64xf32>
  // CHECK: %[[A:.+]] = moe.silu_mul %[[G]], %[[U]] : tensor<?x64xf32>
  %a = moe.silu_mul %g, %u : tensor<?x64xf32>
  // CHECK: %[[P:.+]] = moe.mul %[[A]], %[[S]] : tensor<?x64xf32>
  %p = moe.mul %a, %s : tensor<?x64xf32>
  // CHECK: %[[R:.+]] = moe.add %[[P]], %[[H]] : tensor<?x64xf32>
  %r = moe.add %p, %h : tensor<?x64xf32>
  return %r : tensor<?x64xf32>
}

// CHECK-LABEL: func.func @attention
func.func @attention(%x: tensor<?x64xf32>, %pos: tensor<?xi32>, %kpe: tensor<?x1x8xf32>) -> tensor<?x4x16xf32> {
  // CHECK: %[[Q:.+]] = moe.reshape %{{.+}} : tensor<?x64xf32> -> tensor<?x4x16xf32>
  %q = moe.reshape %x : tensor<?x64xf32> -> tensor<?x4x16xf32>
  // CHECK: moe.rope %[[Q]], %{{.+}} {theta = 1.000000e+04 : f64} : tensor<?x4x16xf32>, tensor<?xi32>
  %r = moe.rope %q, %pos {theta = 10000.0 : f64} : tensor<?x4x16xf32>, tensor<?xi32>
  // CHECK: moe.rope %{{.+}}, %{{.+}} {interleaved, scaling = #moe.rope_scaling<kind = yarn, factor = 4.000000e+01, original_max_position_embeddings = 4096, mscale_all_dim = 1.000000e+00>, theta = 1.000000e+04 : f64}
  %y = moe.rope %kpe, %pos {theta = 10000.0 : f64, interleaved, scaling = #moe.rope_scaling<kind = yarn, factor = 40.0, original_max_position_embeddings = 4096, beta_fast = 32.0, beta_slow = 1.0, mscale = 1.0, mscale_all_dim = 1.0>} : tensor<?x1x8xf32>, tensor<?xi32>
  // CHECK: moe.rope %{{.+}}, %{{.+}} {scaling = #moe.rope_scaling<kind = linear, factor = 2.000000e+00>, theta = 1.000000e+06 : f64}
  %l = moe.rope %q, %pos {theta = 1000000.0 : f64, scaling = #moe.rope_scaling<kind = linear, factor = 2.0>} : tensor<?x4x16xf32>, tensor<?xi32>
  // CHECK: %[[KE:.+]] = moe.expand %{{.+}} : tensor<?x1x8xf32> -> tensor<?x4x8xf32>
  %ke = moe.expand %y : tensor<?x1x8xf32> -> tensor<?x4x8xf32>
  // CHECK: %[[KN:.+]] = moe.slice %{{.+}} {offset = 8 : i64} : tensor<?x4x16xf32> -> tensor<?x4x8xf32>
  %kn = moe.slice %r {offset = 8 : i64} : tensor<?x4x16xf32> -> tensor<?x4x8xf32>
  // CHECK: %[[K:.+]] = moe.concat %[[KN]], %[[KE]] : tensor<?x4x8xf32>, tensor<?x4x8xf32> -> tensor<?x4x16xf32>
  %k = moe.concat %kn, %ke : tensor<?x4x8xf32>, tensor<?x4x8xf32> -> tensor<?x4x16xf32>
  // MLA: query/key head dim 16, value head dim 8.
  // CHECK: moe.attention %{{.+}}, %[[K]], %[[KN]] {causal, scale = 2.500000e-01 : f64} : tensor<?x4x16xf32>, tensor<?x4x16xf32>, tensor<?x4x8xf32> -> tensor<?x4x8xf32>
  %o = moe.attention %r, %k, %kn {scale = 0.25 : f64, causal} : tensor<?x4x16xf32>, tensor<?x4x16xf32>, tensor<?x4x8xf32> -> tensor<?x4x8xf32>
  // GQA: 4 query heads share 2 key/value heads.
  // CHECK: moe.attention {{.+}} : tensor<?x4x16xf32>, tensor<?x2x16xf32>, tensor<?x2x16xf32> -> tensor<?x4x16xf32>
  %kv = moe.reshape %x : tensor<?x64xf32> -> tensor<?x2x32xf32>
  %k2 = moe.slice %kv {offset = 0 : i64} : tensor<?x2x32xf32> -> tensor<?x2x16xf32>
  %v2 = moe.slice %kv {offset = 16 : i64} : tensor<?x2x32xf32> -> tensor<?x2x16xf32>
  %g = moe.attention %l, %k2, %v2 {scale = 0.25 : f64, causal} : tensor<?x4x16xf32>, tensor<?x2x16xf32>, tensor<?x2x16xf32> -> tensor<?x4x16xf32>
  return %g : tensor<?x4x16xf32>
}

// The MLA step over a latent cache: q_nope, q_rope, latent, k_rope, kv_b, rows and the marked cache.
// CHECK-LABEL: func.func @paged_mla_attention
// CHECK-SAME: %[[CACHE:[^:]+]]: tensor<?x16x1x48xf32> {moe.kv_cache}
// CHECK: moe.paged_mla_attention %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}}, %[[CACHE]] {layer = 0 : i64, scale = 2.500000e-01 : f64} : tensor<?x4x32xf32>, tensor<?x4x16xf32>, tensor<?x32xf32>, tensor<?x1x16xf32>, tensor<224x32xbf16>, tensor<?xi32>, tensor<?xi32>, tensor<8x64xi32>, tensor<?x16x1x48xf32> -> tensor<?x4x24xf32>
func.func @paged_mla_attention(%qn: tensor<?x4x32xf32>, %qr: tensor<?x4x16xf32>, %c: tensor<?x32xf32>, %kr: tensor<?x1x16xf32>, %w: tensor<224x32xbf16>, %pos: tensor<?xi32>, %slots: tensor<?xi32>, %table: tensor<8x64xi32>, %cache: tensor<?x16x1x48xf32> {moe.kv_cache}) -> tensor<?x4x24xf32> {
  %o = moe.paged_mla_attention %qn, %qr, %c, %kr, %w, %pos, %slots, %table, %cache {scale = 0.25 : f64, layer = 0 : i64} : tensor<?x4x32xf32>, tensor<?x4x16xf32>, tensor<?x32xf32>, tensor<?x1x16xf32>, tensor<224x32xbf16>, tensor<?xi32>, tensor<?xi32>, tensor<8x64xi32>, tensor<?x16x1x48xf32> -> tensor<?x4x24xf32>
  return %o : tensor<?x4x24xf32>
}

// CHECK-LABEL: func.func @experts
func.func @experts(%x: tensor<?x64xf32>, %gate: tensor<8x64xbf16>, %bias: tensor<8xf32>, %w13: tensor<8x64x64xbf16>, %w2: tensor<8x64x32xbf16>) -> tensor<?x64xf32> {
  // CHECK: %[[W:.+]], %[[I:.+]] = moe.router %{{.+}}, %{{.+}} bias %{{.+}} {routing = #moe.routing<scoring = sigmoid, k = 2, n_group = 2, group_score = top2_sum, norm_topk_prob = true, routed_scaling_factor = 2.500000e+00>}
  // CHECK-SAME: : tensor<?x64xf32>, tensor<8x64xbf16>, tensor<8xf32> -> tensor<?x2xf32>, tensor<?x2xi32>
  %w, %i = moe.router %x, %gate bias %bias {routing = #moe.routing<scoring = sigmoid, k = 2, n_group = 2, topk_group = 1, group_score = top2_sum, norm_topk_prob = true, routed_scaling_factor = 2.5>} : tensor<?x64xf32>, tensor<8x64xbf16>, tensor<8xf32> -> tensor<?x2xf32>, tensor<?x2xi32>
  // CHECK: moe.router %{{.+}}, %{{.+}} {routing = #moe.routing<scoring = softmax, k = 2>} : tensor<?x64xf32>, tensor<8x64xbf16> -> tensor<?x2xf32>, tensor<?x2xi32>
  %w1, %i1 = moe.router %x, %gate {routing = #moe.routing<scoring = softmax, k = 2>} : tensor<?x64xf32>, tensor<8x64xbf16> -> tensor<?x2xf32>, tensor<?x2xi32>
  // CHECK: %[[ROWS:.+]], %[[OFF:.+]], %[[POS:.+]] = moe.dispatch %{{.+}}, %[[I]] : tensor<?x64xf32>, tensor<?x2xi32> -> tensor<?x64xf32>, tensor<9xi32>, tensor<?xi32>
  %rows, %off, %pos = moe.dispatch %x, %i : tensor<?x64xf32>, tensor<?x2xi32> -> tensor<?x64xf32>, tensor<9xi32>, tensor<?xi32>
  // CHECK: %[[H:.+]] = moe.grouped_matmul %[[ROWS]], %[[OFF]], %{{.+}} {epilogue = #moe.epilogue<silu_mul>} : tensor<?x64xf32>, tensor<9xi32>, tensor<8x64x64xbf16> -> tensor<?x32xf32>
  %h = moe.grouped_matmul %rows, %off, %w13 {epilogue = #moe.epilogue<silu_mul>} : tensor<?x64xf32>, tensor<9xi32>, tensor<8x64x64xbf16> -> tensor<?x32xf32>
  // CHECK: %[[D:.+]] = moe.grouped_matmul %[[H]], %[[OFF]], %{{.+}} : tensor<?x32xf32>, tensor<9xi32>, tensor<8x64x32xbf16> -> tensor<?x64xf32>
  %d = moe.grouped_matmul %h, %off, %w2 : tensor<?x32xf32>, tensor<9xi32>, tensor<8x64x32xbf16> -> tensor<?x64xf32>
  // CHECK: moe.combine %[[D]], %[[POS]], %[[W]] residual %{{.+}} : tensor<?x64xf32>, tensor<?xi32>, tensor<?x2xf32>, tensor<?x64xf32> -> tensor<?x64xf32>
  %c = moe.combine %d, %pos, %w residual %x : tensor<?x64xf32>, tensor<?xi32>, tensor<?x2xf32>, tensor<?x64xf32> -> tensor<?x64xf32>
  // CHECK: moe.combine %[[D]], %[[POS]], %[[W]] : tensor<?x64xf32>, tensor<?xi32>, tensor<?x2xf32> -> tensor<?x64xf32>
  %c2 = moe.combine %d, %pos, %w : tensor<?x64xf32>, tensor<?xi32>, tensor<?x2xf32> -> tensor<?x64xf32>
  %r = moe.add %c, %c2 : tensor<?x64xf32>
  return %r : tensor<?x64xf32>
}

// CHECK-LABEL: func.func @moe_layers
func.func @moe_layers(%x: tensor<?x64xf32>, %gate: tensor<8x64xbf16>, %bias: tensor<8xf32>, %w1: tensor<8x32x64xbf16>, %w3: tensor<8x32x64xbf16>, %w2: tensor<8x64x32xbf16>, %s1: tensor<48x64xbf16>, %s3: tensor<48x64xbf16>, %s2: tensor<64x48xbf16>, %sg: tensor<1x64xbf16>) -> tensor<?x64xf32> {
  // Mixtral: softmax top-2, renormalised, no shared experts.
  // CHECK: moe.moe %{{.+}} router %{{.+}} experts %{{.+}}, %{{.+}}, %{{.+}} {routing = #moe.routing<scoring = softmax, k = 2, norm_topk_prob = true>}
  // CHECK-NOT: shared
  %a = moe.moe %x router %gate experts %w1, %w3, %w2 {routing = #moe.routing<scoring = softmax, k = 2, norm_topk_prob = true>} : (tensor<?x64xf32>, tensor<8x64xbf16>, tensor<8x32x64xbf16>, tensor<8x32x64xbf16>, tensor<8x64x32xbf16>) -> tensor<?x64xf32>
  // DeepSeek-V3: sigmoid, correction bias, groups, one shared expert.
  // CHECK: moe.moe %{{.+}} router %{{.+}} bias %{{.+}} experts %{{.+}}, %{{.+}}, %{{.+}} shared %{{.+}}, %{{.+}}, %{{.+}} {routing = #moe.routing<scoring = sigmoid, k = 4, n_group = 4, topk_group = 2, group_score = top2_sum, norm_topk_prob = true, routed_scaling_factor = 2.500000e+00>}
  // CHECK-SAME: tensor<8xf32>, tensor<8x32x64xbf16>
  %b = moe.moe %x router %gate bias %bias experts %w1, %w3, %w2 shared %s1, %s3, %s2 {routing = #moe.routing<scoring = sigmoid, k = 4, n_group = 4, topk_group = 2, group_score = top2_sum, norm_topk_prob = true, routed_scaling_factor = 2.5>} : (tensor<?x64xf32>, tensor<8x64xbf16>, tensor<8xf32>, tensor<8x32x64xbf16>, tensor<8x32x64xbf16>, tensor<8x64x32xbf16>, tensor<48x64xbf16>, tensor<48x64xbf16>, tensor<64x48xbf16>) -> tensor<?x64xf32>
  // Qwen2-MoE: shared expert with its sigmoid gate.
  // CHECK: moe.moe {{.+}} shared %{{.+}}, %{{.+}}, %{{.+}} shared_gate %{{.+}} {routing = #moe.routing<scoring = softmax, k = 2>}
  // CHECK-SAME: tensor<1x64xbf16>) -> tensor<?x64xf32>
  %c = moe.moe %x router %gate experts %w1, %w3, %w2 shared %s1, %s3, %s2 shared_gate %sg {routing = #moe.routing<scoring = softmax, k = 2>} : (tensor<?x64xf32>, tensor<8x64xbf16>, tensor<8x32x64xbf16>, tensor<8x32x64xbf16>, tensor<8x64x32xbf16>, tensor<48x64xbf16>, tensor<48x64xbf16>, tensor<64x48xbf16>, tensor<1x64xbf16>) -> tensor<?x64xf32>
  // group_limited_greedy (DeepSeek-V2) scores a group by its max.
  // CHECK: {routing = #moe.routing<scoring = softmax, k = 2, n_group = 2, group_score = max>}
  %d = moe.moe %x router %gate experts %w1, %w3, %w2 {routing = #moe.routing<scoring = softmax, k = 2, n_group = 2, topk_group = 1, group_score = max>} : (tensor<?x64xf32>, tensor<8x64xbf16>, tensor<8x32x64xbf16>, tensor<8x32x64xbf16>, tensor<8x64x32xbf16>) -> tensor<?x64xf32>
  %ab = moe.add %a, %b : tensor<?x64xf32>
  %cd = moe.add %c, %d : tensor<?x64xf32>
  %r = moe.add %ab, %cd : tensor<?x64xf32>
  return %r : tensor<?x64xf32>
}

// CHECK-LABEL: func.func @fp8
func.func @fp8(%x: tensor<?x256xf32>, %wq: tensor<512x256xf8E4M3FN>, %ws: tensor<4x2xf32>, %off: tensor<9xi32>, %gq: tensor<8x256x256xf8E4M3FN>, %gs: tensor<8x2x2xf32>) -> (tensor<?x512xf32>, tensor<?x128xf32>, tensor<512x256xf32>) {
  // CHECK: %[[Q:.+]], %[[S:.+]] = moe.quantize %{{.+}} {scheme = #moe.block_scale<format = e4m3fn, block = [1, 128], placement = col_major, pow2 = true>} : tensor<?x256xf32> -> tensor<?x256xf8E4M3FN>, tensor<?x2xf32>
  %q, %s = moe.quantize %x {scheme = #moe.block_scale<format = e4m3fn, block = [1, 128], placement = col_major, pow2 = true>} : tensor<?x256xf32> -> tensor<?x256xf8E4M3FN>, tensor<?x2xf32>
  // CHECK: moe.fp8_matmul %[[Q]], %[[S]], %{{.+}}, %{{.+}} {act_scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>, weight_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<?x256xf8E4M3FN>, tensor<?x2xf32>, tensor<512x256xf8E4M3FN>, tensor<4x2xf32> -> tensor<?x512xf32>
  %y = moe.fp8_matmul %q, %s, %wq, %ws {act_scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>, weight_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<?x256xf8E4M3FN>, tensor<?x2xf32>, tensor<512x256xf8E4M3FN>, tensor<4x2xf32> -> tensor<?x512xf32>
  // CHECK: moe.fp8_grouped_matmul %[[Q]], %[[S]], %{{.+}}, %{{.+}}, %{{.+}} {act_scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>, epilogue = #moe.epilogue<silu_mul>, weight_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<?x256xf8E4M3FN>, tensor<?x2xf32>, tensor<9xi32>, tensor<8x256x256xf8E4M3FN>, tensor<8x2x2xf32> -> tensor<?x128xf32>
  %g = moe.fp8_grouped_matmul %q, %s, %off, %gq, %gs {act_scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>, weight_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>, epilogue = #moe.epilogue<silu_mul>} : tensor<?x256xf8E4M3FN>, tensor<?x2xf32>, tensor<9xi32>, tensor<8x256x256xf8E4M3FN>, tensor<8x2x2xf32> -> tensor<?x128xf32>
  // CHECK: moe.dequantize %{{.+}}, %{{.+}} {scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<512x256xf8E4M3FN>, tensor<4x2xf32> -> tensor<512x256xf32>
  %d = moe.dequantize %wq, %ws {scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<512x256xf8E4M3FN>, tensor<4x2xf32> -> tensor<512x256xf32>
  return %y, %g, %d : tensor<?x512xf32>, tensor<?x128xf32>, tensor<512x256xf32>
}

// One generation step of attention over a paged KV cache: the caches are arguments marked
// moe.kv_cache (GQA: 4 query heads over 2 key/value heads; 16-position pages of bf16).
// CHECK-LABEL: func.func @paged_attention
// CHECK-SAME: %[[KC:[^:]+]]: tensor<?x16x2x16xbf16> {moe.kv_cache}, %[[VC:[^:]+]]: tensor<?x16x2x16xbf16> {moe.kv_cache}
func.func @paged_attention(%q: tensor<?x4x16xf32>, %k: tensor<?x2x16xf32>, %v: tensor<?x2x16xf32>, %pos: tensor<?xi64>, %slots: tensor<?xi32>, %table: tensor<8x64xi32>, %kc: tensor<?x16x2x16xbf16> {moe.kv_cache}, %vc: tensor<?x16x2x16xbf16> {moe.kv_cache}) -> tensor<?x4x16xf32> {
  // CHECK: moe.paged_attention %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}}, %[[KC]], %[[VC]] {layer = 3 : i64, scale = 2.500000e-01 : f64}
  // CHECK-SAME: : tensor<?x4x16xf32>, tensor<?x2x16xf32>, tensor<?x2x16xf32>, tensor<?xi64>, tensor<?xi32>, tensor<8x64xi32>, tensor<?x16x2x16xbf16>, tensor<?x16x2x16xbf16> -> tensor<?x4x16xf32>
  %o = moe.paged_attention %q, %k, %v, %pos, %slots, %table, %kc, %vc {scale = 0.25 : f64, layer = 3 : i64}
      : tensor<?x4x16xf32>, tensor<?x2x16xf32>, tensor<?x2x16xf32>, tensor<?xi64>, tensor<?xi32>, tensor<8x64xi32>, tensor<?x16x2x16xbf16>, tensor<?x16x2x16xbf16> -> tensor<?x4x16xf32>
  return %o : tensor<?x4x16xf32>
}

// The rows of a step that need logits.
// CHECK-LABEL: func.func @select_rows
// CHECK: moe.select_rows %{{.+}}, %{{.+}} : tensor<?x64xf32>, tensor<?xi32> -> tensor<?x64xf32>
func.func @select_rows(%x: tensor<?x64xf32>, %rows: tensor<?xi32>) -> tensor<?x64xf32> {
  %h = moe.select_rows %x, %rows : tensor<?x64xf32>, tensor<?xi32> -> tensor<?x64xf32>
  return %h : tensor<?x64xf32>
}
