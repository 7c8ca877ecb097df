// The ops and attributes the passes added parse, verify, print, and parse again to the same text.
// RUN: moec-opt %s | moec-opt | FileCheck %s
// RUN: moec-opt %s | moec-opt > %t.1 && moec-opt %s > %t.2 && diff %t.1 %t.2

// CHECK-LABEL: func.func @add_rms_norm
// CHECK-SAME: (%[[H:.+]]: tensor<?x64xf32>, %[[A:.+]]: tensor<?x64xf32>, %[[W:.+]]: tensor<64xbf16>)
func.func @add_rms_norm(%h: tensor<?x64xf32>, %a: tensor<?x64xf32>, %w: tensor<64xbf16>) -> (tensor<?x64xf32>, tensor<?x64xf32>) {
  // CHECK: %[[SUM:.+]], %[[N:.+]] = moe.add_rms_norm %[[H]], %[[A]], %[[W]] {epsilon = 9.9999999999999995E-7 : f64} : tensor<?x64xf32>, tensor<64xbf16> -> tensor<?x64xf32>
  %sum, %n = moe.add_rms_norm %h, %a, %w {epsilon = 1.0e-06 : f64} : tensor<?x64xf32>, tensor<64xbf16> -> tensor<?x64xf32>
  // CHECK: return %[[SUM]], %[[N]]
  return %sum, %n : tensor<?x64xf32>, tensor<?x64xf32>
}

// CHECK-LABEL: func.func @sigmoid_gate
// CHECK-SAME: (%[[X:.+]]: tensor<?x64xf32>, %[[G:.+]]: tensor<1x64xbf16>, %[[Y:.+]]: tensor<?x32xf32>)
func.func @sigmoid_gate(%x: tensor<?x64xf32>, %g: tensor<1x64xbf16>, %y: tensor<?x32xf32>) -> tensor<?x32xf32> {
  // CHECK: moe.sigmoid_gate %[[X]], %[[G]], %[[Y]] : tensor<?x64xf32>, tensor<1x64xbf16>, tensor<?x32xf32>
  %r = moe.sigmoid_gate %x, %g, %y : tensor<?x64xf32>, tensor<1x64xbf16>, tensor<?x32xf32>
  return %r : tensor<?x32xf32>
}

// CHECK-LABEL: func.func @concat_dim
func.func @concat_dim(%a: tensor<2x32x64xbf16>, %b: tensor<2x16x64xbf16>, %c: tensor<48x64xf8E4M3FN>, %d: tensor<80x64xf8E4M3FN>) -> (tensor<2x48x64xbf16>, tensor<128x64xf8E4M3FN>) {
  // CHECK: moe.concat %{{.+}}, %{{.+}} {dim = 1 : i64} : tensor<2x32x64xbf16>, tensor<2x16x64xbf16> -> tensor<2x48x64xbf16>
  %0 = moe.concat %a, %b {dim = 1 : i64} : tensor<2x32x64xbf16>, tensor<2x16x64xbf16> -> tensor<2x48x64xbf16>
  // CHECK: moe.concat %{{.+}}, %{{.+}} {dim = 0 : i64} : tensor<48x64xf8E4M3FN>, tensor<80x64xf8E4M3FN> -> tensor<128x64xf8E4M3FN>
  %1 = moe.concat %c, %d {dim = 0 : i64} : tensor<48x64xf8E4M3FN>, tensor<80x64xf8E4M3FN> -> tensor<128x64xf8E4M3FN>
  return %0, %1 : tensor<2x48x64xbf16>, tensor<128x64xf8E4M3FN>
}

// CHECK-LABEL: func.func @router_shared_experts
func.func @router_shared_experts(%x: tensor<?x64xf32>, %g: tensor<8x64xbf16>) -> (tensor<?x3xf32>, tensor<?x3xi32>) {
  // CHECK: moe.router %{{.+}}, %{{.+}} {routing = #moe.routing<scoring = softmax, k = 2>, shared_experts = 1 : i64} : tensor<?x64xf32>, tensor<8x64xbf16> -> tensor<?x3xf32>, tensor<?x3xi32>
  %w, %i = moe.router %x, %g {routing = #moe.routing<scoring = softmax, k = 2>, shared_experts = 1 : i64} : tensor<?x64xf32>, tensor<8x64xbf16> -> tensor<?x3xf32>, tensor<?x3xi32>
  // The default (no folded shared expert) is not printed.
  // CHECK: moe.router %{{.+}}, %{{.+}} {routing = #moe.routing<scoring = softmax, k = 2>} :
  %w2, %i2 = moe.router %x, %g {routing = #moe.routing<scoring = softmax, k = 2>, shared_experts = 0 : i64} : tensor<?x64xf32>, tensor<8x64xbf16> -> tensor<?x2xf32>, tensor<?x2xi32>
  return %w, %i : tensor<?x3xf32>, tensor<?x3xi32>
}

// CHECK-LABEL: func.func @fp8_matmul_bias
func.func @fp8_matmul_bias(%xq: tensor<?x256xf8E4M3FN>, %xs: tensor<?x2xf32>, %wq: tensor<512x256xf8E4M3FN>, %ws: tensor<4x2xf32>, %b: tensor<512xbf16>) -> tensor<?x512xf32> {
  // CHECK: moe.fp8_matmul %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}} bias %{{.+}} {act_scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>, weight_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<?x256xf8E4M3FN>, tensor<?x2xf32>, tensor<512x256xf8E4M3FN>, tensor<4x2xf32>, tensor<512xbf16> -> tensor<?x512xf32>
  %y = moe.fp8_matmul %xq, %xs, %wq, %ws bias %b {act_scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>, weight_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<?x256xf8E4M3FN>, tensor<?x2xf32>, tensor<512x256xf8E4M3FN>, tensor<4x2xf32>, tensor<512xbf16> -> tensor<?x512xf32>
  return %y : tensor<?x512xf32>
}

// A weight's role and layer (`#moe.role`) print in the op's own syntax, after its sources.
// CHECK-LABEL: func.func @roles
func.func @roles() -> (tensor<64x64xbf16>, tensor<256x64xbf16>, tensor<64x64xbf16>, tensor<64x64xf8E4M3FN>, tensor<1x1xf32>) {
  // CHECK: moe.weight [#moe.tensor_ref<"model.onnx", "w0">] stored tensor<64x64xbf16> role <attn_q, layer = 3> : tensor<64x64xbf16>
  %q = moe.weight [#moe.tensor_ref<"model.onnx", "w0">] stored tensor<64x64xbf16> role <attn_q, layer = 3> : tensor<64x64xbf16>
  // Weights outside the decoder layers have no layer.
  // CHECK: moe.weight [#moe.tensor_ref<"model.onnx", "w1">] stored tensor<256x64xbf16> role <lm_head> : tensor<256x64xbf16>
  %head = moe.weight [#moe.tensor_ref<"model.onnx", "w1">] stored tensor<256x64xbf16> role <lm_head> : tensor<256x64xbf16>
  // The role goes before the attribute dictionary.
  // CHECK: moe.weight [#moe.tensor_ref<"model.onnx", "w2">] stored tensor<64x64xbf16> role <expert_down, layer = 0> {transforms = [#moe.transpose]} : tensor<64x64xbf16>
  %down = moe.weight [#moe.tensor_ref<"model.onnx", "w2">] stored tensor<64x64xbf16> role <expert_down, layer = 0> {transforms = [#moe.transpose]} : tensor<64x64xbf16>
  // ... and after the scale sources of a stored FP8 weight.
  // CHECK: moe.weight [#moe.tensor_ref<"m.safetensors", "w3">] stored tensor<64x64xf8E4M3FN> scales [#moe.tensor_ref<"m.safetensors", "w3.scale">] role <attn_kv_b, layer = 60> {stored_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<64x64xf8E4M3FN>, tensor<1x1xf32>
  %kvb, %s = moe.weight [#moe.tensor_ref<"m.safetensors", "w3">] stored tensor<64x64xf8E4M3FN> scales [#moe.tensor_ref<"m.safetensors", "w3.scale">] role <attn_kv_b, layer = 60> {stored_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<64x64xf8E4M3FN>, tensor<1x1xf32>
  // CHECK: return
  return %q, %head, %down, %kvb, %s : tensor<64x64xbf16>, tensor<256x64xbf16>, tensor<64x64xbf16>, tensor<64x64xf8E4M3FN>, tensor<1x1xf32>
}

// Fused activation quantization (`--moec-fuse-quantize`): each op that can emit its result
// quantized per token carries `quantize` and two more results; without it the syntax is unchanged.
// CHECK-LABEL: func.func @fused_quantize_norms
func.func @fused_quantize_norms(%x: tensor<?x128xf32>, %a: tensor<?x128xf32>, %w: tensor<128xbf16>, %g: tensor<?x4x128xf32>, %wh: tensor<128xbf16>) -> (tensor<?x128xf32>, tensor<?x1xf32>, tensor<?x128xf32>, tensor<?x128xf8E4M3FN>, tensor<?x4x1xf32>) {
  // CHECK: %{{.+}}, %{{.+}}, %[[S1:.+]] = moe.rms_norm %{{.+}}, %{{.+}} {epsilon = 9.9999999999999995E-7 : f64, quantize = #moe.block_scale<format = e4m3fn, block = [1, 128]>} : tensor<?x128xf32>, tensor<128xbf16> -> tensor<?x128xf32>, tensor<?x128xf8E4M3FN>, tensor<?x1xf32>
  %n, %nq, %ns = moe.rms_norm %x, %w {epsilon = 1.0e-06 : f64, quantize = #moe.block_scale<format = e4m3fn, block = [1, 128]>} : tensor<?x128xf32>, tensor<128xbf16> -> tensor<?x128xf32>, tensor<?x128xf8E4M3FN>, tensor<?x1xf32>
  // CHECK: %[[SUM:.+]], %{{.+}}, %[[Q2:.+]], %{{.+}} = moe.add_rms_norm %{{.+}}, %{{.+}}, %{{.+}} {epsilon = 9.9999999999999995E-7 : f64, quantize = #moe.block_scale<format = e4m3fn, block = [1, 128], placement = col_major, pow2 = true>} : tensor<?x128xf32>, tensor<128xbf16> -> tensor<?x128xf32>, tensor<?x128xf8E4M3FN>, tensor<?x1xf32>
  %sum, %m, %mq, %ms = moe.add_rms_norm %x, %a, %w {epsilon = 1.0e-06 : f64, quantize = #moe.block_scale<format = e4m3fn, block = [1, 128], placement = col_major, pow2 = true>} : tensor<?x128xf32>, tensor<128xbf16> -> tensor<?x128xf32>, tensor<?x128xf8E4M3FN>, tensor<?x1xf32>
  // Per-head norms (rank 3) quantize each head's row.
  // CHECK: %{{.+}}, %{{.+}}, %[[S3:.+]] = moe.rms_norm %{{.+}}, %{{.+}} {epsilon = 9.9999999999999995E-7 : f64, quantize = #moe.block_scale<format = e5m2, block = [1, 128]>} : tensor<?x4x128xf32>, tensor<128xbf16> -> tensor<?x4x128xf32>, tensor<?x4x128xf8E5M2>, tensor<?x4x1xf32>
  %h, %hq, %hs = moe.rms_norm %g, %wh {epsilon = 1.0e-06 : f64, quantize = #moe.block_scale<format = e5m2, block = [1, 128]>} : tensor<?x4x128xf32>, tensor<128xbf16> -> tensor<?x4x128xf32>, tensor<?x4x128xf8E5M2>, tensor<?x4x1xf32>
  // CHECK: return %[[SUM]], %[[S1]], %{{.+}}, %[[Q2]], %[[S3]]
  return %sum, %ns, %m, %mq, %hs : tensor<?x128xf32>, tensor<?x1xf32>, tensor<?x128xf32>, tensor<?x128xf8E4M3FN>, tensor<?x4x1xf32>
}

// CHECK-LABEL: func.func @fused_quantize_swiglu
func.func @fused_quantize_swiglu(%x: tensor<?x128xf32>, %wgu: tensor<512x128xbf16>, %gate: tensor<?x256xf32>, %up: tensor<?x256xf32>, %off: tensor<3xi32>, %we: tensor<2x512x128xbf16>) -> (tensor<?x2xf32>, tensor<?x256xf8E4M3FN>, tensor<?x256xf8E4M3FN>) {
  // CHECK: %{{.+}}, %{{.+}}, %[[S1:.+]] = moe.matmul %{{.+}}, %{{.+}} {epilogue = #moe.epilogue<silu_mul>, quantize = #moe.block_scale<format = e4m3fn, block = [1, 128]>} : tensor<?x128xf32>, tensor<512x128xbf16> -> tensor<?x256xf32>, tensor<?x256xf8E4M3FN>, tensor<?x2xf32>
  %h, %hq, %hs = moe.matmul %x, %wgu {epilogue = #moe.epilogue<silu_mul>, quantize = #moe.block_scale<format = e4m3fn, block = [1, 128]>} : tensor<?x128xf32>, tensor<512x128xbf16> -> tensor<?x256xf32>, tensor<?x256xf8E4M3FN>, tensor<?x2xf32>
  // CHECK: %{{.+}}, %[[Q2:.+]], %{{.+}} = moe.silu_mul %{{.+}}, %{{.+}} {quantize = #moe.block_scale<format = e4m3fn, block = [1, 128]>} : tensor<?x256xf32>, tensor<?x256xf8E4M3FN>, tensor<?x2xf32>
  %a, %aq, %as = moe.silu_mul %gate, %up {quantize = #moe.block_scale<format = e4m3fn, block = [1, 128]>} : tensor<?x256xf32>, tensor<?x256xf8E4M3FN>, tensor<?x2xf32>
  // CHECK: %{{.+}}, %[[Q3:.+]], %{{.+}} = moe.grouped_matmul %{{.+}}, %{{.+}}, %{{.+}} {epilogue = #moe.epilogue<silu_mul>, quantize = #moe.block_scale<format = e4m3fn, block = [1, 128]>} : tensor<?x128xf32>, tensor<3xi32>, tensor<2x512x128xbf16> -> tensor<?x256xf32>, tensor<?x256xf8E4M3FN>, tensor<?x2xf32>
  %e, %eq, %es = moe.grouped_matmul %x, %off, %we {epilogue = #moe.epilogue<silu_mul>, quantize = #moe.block_scale<format = e4m3fn, block = [1, 128]>} : tensor<?x128xf32>, tensor<3xi32>, tensor<2x512x128xbf16> -> tensor<?x256xf32>, tensor<?x256xf8E4M3FN>, tensor<?x2xf32>
  // CHECK: return %[[S1]], %[[Q2]], %[[Q3]]
  return %hs, %aq, %eq : tensor<?x2xf32>, tensor<?x256xf8E4M3FN>, tensor<?x256xf8E4M3FN>
}

// CHECK-LABEL: func.func @fused_quantize_fp8_gemms
func.func @fused_quantize_fp8_gemms(%xq: tensor<?x128xf8E4M3FN>, %xs: tensor<?x1xf32>, %wq: tensor<512x128xf8E4M3FN>, %ws: tensor<4x1xf32>, %b: tensor<512xbf16>, %off: tensor<3xi32>, %weq: tensor<2x512x128xf8E4M3FN>, %wes: tensor<2x4x1xf32>) -> (tensor<?x256xf8E4M3FN>, tensor<?x2xf32>) {
  // CHECK: %{{.+}}, %[[Q1:.+]], %{{.+}} = moe.fp8_matmul %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}} bias %{{.+}} {act_scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>, epilogue = #moe.epilogue<silu_mul>, quantize = #moe.block_scale<format = e4m3fn, block = [1, 128]>, weight_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<?x128xf8E4M3FN>, tensor<?x1xf32>, tensor<512x128xf8E4M3FN>, tensor<4x1xf32>, tensor<512xbf16> -> tensor<?x256xf32>, tensor<?x256xf8E4M3FN>, tensor<?x2xf32>
  %h, %hq, %hs = moe.fp8_matmul %xq, %xs, %wq, %ws bias %b {act_scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>, epilogue = #moe.epilogue<silu_mul>, quantize = #moe.block_scale<format = e4m3fn, block = [1, 128]>, weight_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<?x128xf8E4M3FN>, tensor<?x1xf32>, tensor<512x128xf8E4M3FN>, tensor<4x1xf32>, tensor<512xbf16> -> tensor<?x256xf32>, tensor<?x256xf8E4M3FN>, tensor<?x2xf32>
  // CHECK: %{{.+}}, %{{.+}}, %[[S2:.+]] = moe.fp8_grouped_matmul %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}} {act_scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>, epilogue = #moe.epilogue<silu_mul>, quantize = #moe.block_scale<format = e4m3fn, block = [1, 128]>, weight_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<?x128xf8E4M3FN>, tensor<?x1xf32>, tensor<3xi32>, tensor<2x512x128xf8E4M3FN>, tensor<2x4x1xf32> -> tensor<?x256xf32>, tensor<?x256xf8E4M3FN>, tensor<?x2xf32>
  %e, %eq, %es = moe.fp8_grouped_matmul %xq, %xs, %off, %weq, %wes {act_scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>, epilogue = #moe.epilogue<silu_mul>, quantize = #moe.block_scale<format = e4m3fn, block = [1, 128]>, weight_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<?x128xf8E4M3FN>, tensor<?x1xf32>, tensor<3xi32>, tensor<2x512x128xf8E4M3FN>, tensor<2x4x1xf32> -> tensor<?x256xf32>, tensor<?x256xf8E4M3FN>, tensor<?x2xf32>
  // CHECK: return %[[Q1]], %[[S2]]
  return %hq, %es : tensor<?x256xf8E4M3FN>, tensor<?x2xf32>
}

// u8 codes in signless i8 with a zero point: the stored weight and its
// dequantization to f32 (onnxruntime's 8-bit QMoE, one scale per row).
// CHECK-LABEL: func.func @dequantize_u8
func.func @dequantize_u8() -> tensor<4x64x128xf32> {
  // CHECK: %[[Q:.+]], %[[S:.+]] = moe.weight [#moe.tensor_ref<"m.onnx", "fc1">] stored tensor<4x64x128xi8> scales [#moe.tensor_ref<"m.onnx", "fc1.scales">] {stored_scheme = #moe.block_scale<format = u8, block = [1, 128], zero_point = 128>} : tensor<4x64x128xi8>, tensor<4x64x1xf32>
  %q, %s = moe.weight [#moe.tensor_ref<"m.onnx", "fc1">] stored tensor<4x64x128xi8> scales [#moe.tensor_ref<"m.onnx", "fc1.scales">] {stored_scheme = #moe.block_scale<format = u8, block = [1, 128], zero_point = 128>} : tensor<4x64x128xi8>, tensor<4x64x1xf32>
  // CHECK: moe.dequantize %[[Q]], %[[S]] {scheme = #moe.block_scale<format = u8, block = [1, 128], zero_point = 128>} : tensor<4x64x128xi8>, tensor<4x64x1xf32> -> tensor<4x64x128xf32>
  %w = moe.dequantize %q, %s {scheme = #moe.block_scale<format = u8, block = [1, 128], zero_point = 128>} : tensor<4x64x128xi8>, tensor<4x64x1xf32> -> tensor<4x64x128xf32>
  return %w : tensor<4x64x128xf32>
}

// u4 codes, two per byte of signless i8 (low nibble first): 128 columns are
// 64 bytes wide, and blocks and scales count the 128 unpacked columns
// (onnxruntime's 4-bit QMoE, one scale per 32 columns).
// CHECK-LABEL: func.func @dequantize_u4
func.func @dequantize_u4() -> tensor<4x64x128xf32> {
  // CHECK: %[[Q:.+]], %[[S:.+]] = moe.weight [#moe.tensor_ref<"m.onnx", "fc1">] stored tensor<4x64x64xi8> scales [#moe.tensor_ref<"m.onnx", "fc1.scales">] {stored_scheme = #moe.block_scale<format = u4, block = [1, 32], zero_point = 8>} : tensor<4x64x64xi8>, tensor<4x64x4xf32>
  %q, %s = moe.weight [#moe.tensor_ref<"m.onnx", "fc1">] stored tensor<4x64x64xi8> scales [#moe.tensor_ref<"m.onnx", "fc1.scales">] {stored_scheme = #moe.block_scale<format = u4, block = [1, 32], zero_point = 8>} : tensor<4x64x64xi8>, tensor<4x64x4xf32>
  // CHECK: moe.dequantize %[[Q]], %[[S]] {scheme = #moe.block_scale<format = u4, block = [1, 32], zero_point = 8>} : tensor<4x64x64xi8>, tensor<4x64x4xf32> -> tensor<4x64x128xf32>
  %w = moe.dequantize %q, %s {scheme = #moe.block_scale<format = u4, block = [1, 32], zero_point = 8>} : tensor<4x64x64xi8>, tensor<4x64x4xf32> -> tensor<4x64x128xf32>
  return %w : tensor<4x64x128xf32>
}
