// --moec-fuse-quantize turns a per-token moe.quantize into two more results of the op that produces its input.
// RUN: moec-opt %s --moec-fuse-quantize | FileCheck %s
// RUN: moec-opt %s --moec-fuse-quantize | moec-opt | FileCheck %s
// RUN: moec-opt %s --moec-fuse-quantize | moec-opt --moec-fuse-quantize | FileCheck %s

// The first layer's attention input: the norm emits the FP8 rows the q/k/v GEMMs read.
// CHECK-LABEL: func.func @rms_norm
// CHECK-SAME: (%[[X:.+]]: tensor<?x128xf32>, %[[NW:.+]]: tensor<128xbf16>, %[[WQ:.+]]: tensor<256x128xf8E4M3FN>, %[[WS:.+]]: tensor<2x1xf32>)
func.func @rms_norm(%x: tensor<?x128xf32>, %nw: tensor<128xbf16>, %wq: tensor<256x128xf8E4M3FN>, %ws: tensor<2x1xf32>) -> tensor<?x256xf32> {
  // CHECK: %{{.+}}, %[[Q:.+]], %[[S:.+]] = moe.rms_norm %[[X]], %[[NW]] {epsilon = 9.9999999999999995E-7 : f64, quantize = #moe.block_scale<format = e4m3fn, block = [1, 128]>} : tensor<?x128xf32>, tensor<128xbf16> -> tensor<?x128xf32>, tensor<?x128xf8E4M3FN>, tensor<?x1xf32>
  // CHECK-NOT: moe.quantize
  // CHECK: %[[Y:.+]] = moe.fp8_matmul %[[Q]], %[[S]], %[[WQ]], %[[WS]]
  // CHECK: return %[[Y]]
  %n = moe.rms_norm %x, %nw {epsilon = 1.0e-06 : f64} : tensor<?x128xf32>, tensor<128xbf16> -> tensor<?x128xf32>
  %q, %s = moe.quantize %n {scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>} : tensor<?x128xf32> -> tensor<?x128xf8E4M3FN>, tensor<?x1xf32>
  %y = moe.fp8_matmul %q, %s, %wq, %ws {act_scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>, weight_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<?x128xf8E4M3FN>, tensor<?x1xf32>, tensor<256x128xf8E4M3FN>, tensor<2x1xf32> -> tensor<?x256xf32>
  return %y : tensor<?x256xf32>
}

// The MoE layer's input: add+norm emits the FP8 rows of its normalised result. The sum (the
// residual stream) and the high-precision result (read by the router) keep their users.
// CHECK-LABEL: func.func @add_rms_norm
// CHECK-SAME: (%[[H:.+]]: tensor<?x128xf32>, %[[A:.+]]: tensor<?x128xf32>, %[[NW:.+]]: tensor<128xbf16>, %[[G:.+]]: tensor<4x128xbf16>
func.func @add_rms_norm(%h: tensor<?x128xf32>, %a: tensor<?x128xf32>, %nw: tensor<128xbf16>, %g: tensor<4x128xbf16>, %wq: tensor<256x128xf8E4M3FN>, %ws: tensor<2x1xf32>) -> (tensor<?x128xf32>, tensor<?x2xf32>, tensor<?x256xf32>) {
  // CHECK: %[[SUM:.+]], %[[N:.+]], %[[Q:.+]], %[[S:.+]] = moe.add_rms_norm %[[H]], %[[A]], %[[NW]] {epsilon = 9.9999999999999995E-7 : f64, quantize = #moe.block_scale<format = e4m3fn, block = [1, 128]>} : tensor<?x128xf32>, tensor<128xbf16> -> tensor<?x128xf32>, tensor<?x128xf8E4M3FN>, tensor<?x1xf32>
  // CHECK-NOT: moe.quantize
  // CHECK: %[[W:.+]], %{{.+}} = moe.router %[[N]], %[[G]]
  // CHECK: %[[Y:.+]] = moe.fp8_matmul %[[Q]], %[[S]]
  // CHECK: return %[[SUM]], %[[W]], %[[Y]]
  %sum, %n = moe.add_rms_norm %h, %a, %nw {epsilon = 1.0e-06 : f64} : tensor<?x128xf32>, tensor<128xbf16> -> tensor<?x128xf32>
  %q, %s = moe.quantize %n {scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>} : tensor<?x128xf32> -> tensor<?x128xf8E4M3FN>, tensor<?x1xf32>
  %w, %i = moe.router %n, %g {routing = #moe.routing<scoring = softmax, k = 2>} : tensor<?x128xf32>, tensor<4x128xbf16> -> tensor<?x2xf32>, tensor<?x2xi32>
  %y = moe.fp8_matmul %q, %s, %wq, %ws {act_scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>, weight_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<?x128xf8E4M3FN>, tensor<?x1xf32>, tensor<256x128xf8E4M3FN>, tensor<2x1xf32> -> tensor<?x256xf32>
  return %sum, %w, %y : tensor<?x128xf32>, tensor<?x2xf32>, tensor<?x256xf32>
}

// Unfused gate/up (FP8 checkpoint weights split inside a scale block): the SwiGLU emits the
// down projection's FP8 input, with the scheme as it was (pow2 scales, 64-channel blocks).
// CHECK-LABEL: func.func @silu_mul
// CHECK-SAME: (%[[G:.+]]: tensor<?x192xf32>, %[[U:.+]]: tensor<?x192xf32>
func.func @silu_mul(%g: tensor<?x192xf32>, %u: tensor<?x192xf32>, %wq: tensor<64x192xf8E4M3FN>, %ws: tensor<1x3xf32>) -> tensor<?x64xf32> {
  // CHECK: %{{.+}}, %[[Q:.+]], %[[S:.+]] = moe.silu_mul %[[G]], %[[U]] {quantize = #moe.block_scale<format = e4m3fn, block = [1, 64], pow2 = true>} : tensor<?x192xf32>, tensor<?x192xf8E4M3FN>, tensor<?x3xf32>
  // CHECK-NOT: moe.quantize
  // CHECK: %[[Y:.+]] = moe.fp8_matmul %[[Q]], %[[S]]
  // CHECK: return %[[Y]]
  %h = moe.silu_mul %g, %u : tensor<?x192xf32>
  %q, %s = moe.quantize %h {scheme = #moe.block_scale<format = e4m3fn, block = [1, 64], pow2 = true>} : tensor<?x192xf32> -> tensor<?x192xf8E4M3FN>, tensor<?x3xf32>
  %y = moe.fp8_matmul %q, %s, %wq, %ws {act_scheme = #moe.block_scale<format = e4m3fn, block = [1, 64], pow2 = true>, weight_scheme = #moe.block_scale<format = e4m3fn, block = [64, 64]>} : tensor<?x192xf8E4M3FN>, tensor<?x3xf32>, tensor<64x192xf8E4M3FN>, tensor<1x3xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// Routed experts: the gate/up GEMM with the silu_mul epilogue hands the down projection its
// FP8 rows.
// CHECK-LABEL: func.func @grouped_gate_up
// CHECK-SAME: (%[[RQ:.+]]: tensor<?x128xf8E4M3FN>, %[[RS:.+]]: tensor<?x1xf32>, %[[OFF:.+]]: tensor<3xi32>, %[[W1Q:.+]]: tensor<2x512x128xf8E4M3FN>, %[[W1S:.+]]: tensor<2x4x1xf32>, %[[W2Q:.+]]: tensor<2x128x256xf8E4M3FN>, %[[W2S:.+]]: tensor<2x1x2xf32>)
func.func @grouped_gate_up(%rq: tensor<?x128xf8E4M3FN>, %rs: tensor<?x1xf32>, %off: tensor<3xi32>, %w1q: tensor<2x512x128xf8E4M3FN>, %w1s: tensor<2x4x1xf32>, %w2q: tensor<2x128x256xf8E4M3FN>, %w2s: tensor<2x1x2xf32>) -> tensor<?x128xf32> {
  // CHECK: %{{.+}}, %[[Q:.+]], %[[S:.+]] = moe.fp8_grouped_matmul %[[RQ]], %[[RS]], %[[OFF]], %[[W1Q]], %[[W1S]] {act_scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>, epilogue = #moe.epilogue<silu_mul>, quantize = #moe.block_scale<format = e4m3fn, block = [1, 128]>, weight_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<?x128xf8E4M3FN>, tensor<?x1xf32>, tensor<3xi32>, tensor<2x512x128xf8E4M3FN>, tensor<2x4x1xf32> -> tensor<?x256xf32>, tensor<?x256xf8E4M3FN>, tensor<?x2xf32>
  // CHECK-NOT: moe.quantize
  // CHECK: %[[D:.+]] = moe.fp8_grouped_matmul %[[Q]], %[[S]], %[[OFF]], %[[W2Q]], %[[W2S]]
  // CHECK: return %[[D]]
  %h = moe.fp8_grouped_matmul %rq, %rs, %off, %w1q, %w1s {act_scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>, epilogue = #moe.epilogue<silu_mul>, weight_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<?x128xf8E4M3FN>, tensor<?x1xf32>, tensor<3xi32>, tensor<2x512x128xf8E4M3FN>, tensor<2x4x1xf32> -> tensor<?x256xf32>
  %q, %s = moe.quantize %h {scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>} : tensor<?x256xf32> -> tensor<?x256xf8E4M3FN>, tensor<?x2xf32>
  %d = moe.fp8_grouped_matmul %q, %s, %off, %w2q, %w2s {act_scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>, weight_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<?x256xf8E4M3FN>, tensor<?x2xf32>, tensor<3xi32>, tensor<2x128x256xf8E4M3FN>, tensor<2x1x2xf32> -> tensor<?x128xf32>
  return %d : tensor<?x128xf32>
}

// Dense MLP and shared experts: the same with moe.fp8_matmul (its bias is kept).
// CHECK-LABEL: func.func @dense_gate_up
func.func @dense_gate_up(%xq: tensor<?x128xf8E4M3FN>, %xs: tensor<?x1xf32>, %w1q: tensor<512x128xf8E4M3FN>, %w1s: tensor<4x1xf32>, %b: tensor<512xbf16>) -> tensor<?x256xf8E4M3FN> {
  // CHECK: %{{.+}}, %[[Q:.+]], %{{.+}} = moe.fp8_matmul %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}} bias %{{.+}} {act_scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>, epilogue = #moe.epilogue<silu_mul>, quantize = #moe.block_scale<format = e4m3fn, block = [1, 128]>, weight_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<?x128xf8E4M3FN>, tensor<?x1xf32>, tensor<512x128xf8E4M3FN>, tensor<4x1xf32>, tensor<512xbf16> -> tensor<?x256xf32>, tensor<?x256xf8E4M3FN>, tensor<?x2xf32>
  // CHECK-NOT: moe.quantize
  // CHECK: return %[[Q]]
  %h = moe.fp8_matmul %xq, %xs, %w1q, %w1s bias %b {act_scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>, epilogue = #moe.epilogue<silu_mul>, weight_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<?x128xf8E4M3FN>, tensor<?x1xf32>, tensor<512x128xf8E4M3FN>, tensor<4x1xf32>, tensor<512xbf16> -> tensor<?x256xf32>
  %q, %s = moe.quantize %h {scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>} : tensor<?x256xf32> -> tensor<?x256xf8E4M3FN>, tensor<?x2xf32>
  return %q : tensor<?x256xf8E4M3FN>
}

// GEMMs the policy keeps in high precision fuse too (a kept layer feeding a lowered one).
// CHECK-LABEL: func.func @high_precision_gemms
func.func @high_precision_gemms(%x: tensor<?x128xf32>, %w: tensor<256x128xbf16>, %rows: tensor<?x128xf32>, %off: tensor<3xi32>, %we: tensor<2x256x128xbf16>) -> (tensor<?x128xf8E4M3FN>, tensor<?x128xf8E4M3FN>) {
  // CHECK: %{{.+}}, %[[Q1:.+]], %{{.+}} = moe.matmul %{{.+}}, %{{.+}} {epilogue = #moe.epilogue<silu_mul>, quantize = #moe.block_scale<format = e4m3fn, block = [1, 128]>} : tensor<?x128xf32>, tensor<256x128xbf16> -> tensor<?x128xf32>, tensor<?x128xf8E4M3FN>, tensor<?x1xf32>
  // CHECK: %{{.+}}, %[[Q2:.+]], %{{.+}} = moe.grouped_matmul %{{.+}}, %{{.+}}, %{{.+}} {epilogue = #moe.epilogue<silu_mul>, quantize = #moe.block_scale<format = e4m3fn, block = [1, 128]>} : tensor<?x128xf32>, tensor<3xi32>, tensor<2x256x128xbf16> -> tensor<?x128xf32>, tensor<?x128xf8E4M3FN>, tensor<?x1xf32>
  // CHECK-NOT: moe.quantize
  // CHECK: return %[[Q1]], %[[Q2]]
  %h = moe.matmul %x, %w {epilogue = #moe.epilogue<silu_mul>} : tensor<?x128xf32>, tensor<256x128xbf16> -> tensor<?x128xf32>
  %q1, %s1 = moe.quantize %h {scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>} : tensor<?x128xf32> -> tensor<?x128xf8E4M3FN>, tensor<?x1xf32>
  %e = moe.grouped_matmul %rows, %off, %we {epilogue = #moe.epilogue<silu_mul>} : tensor<?x128xf32>, tensor<3xi32>, tensor<2x256x128xbf16> -> tensor<?x128xf32>
  %q2, %s2 = moe.quantize %e {scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>} : tensor<?x128xf32> -> tensor<?x128xf8E4M3FN>, tensor<?x1xf32>
  return %q1, %q2 : tensor<?x128xf8E4M3FN>, tensor<?x128xf8E4M3FN>
}

// A second quantization with the same scheme reuses the producer's results.
// CHECK-LABEL: func.func @same_scheme_twice
func.func @same_scheme_twice(%x: tensor<?x128xf32>, %nw: tensor<128xbf16>) -> (tensor<?x128xf8E4M3FN>, tensor<?x128xf8E4M3FN>) {
  // CHECK: %{{.+}}, %[[Q:.+]], %{{.+}} = moe.rms_norm
  // CHECK-NOT: moe.quantize
  // CHECK: return %[[Q]], %[[Q]]
  %n = moe.rms_norm %x, %nw {epsilon = 1.0e-06 : f64} : tensor<?x128xf32>, tensor<128xbf16> -> tensor<?x128xf32>
  %q1, %s1 = moe.quantize %n {scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>} : tensor<?x128xf32> -> tensor<?x128xf8E4M3FN>, tensor<?x1xf32>
  %q2, %s2 = moe.quantize %n {scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>} : tensor<?x128xf32> -> tensor<?x128xf8E4M3FN>, tensor<?x1xf32>
  return %q1, %q2 : tensor<?x128xf8E4M3FN>, tensor<?x128xf8E4M3FN>
}

// Left alone: a second quantization with another scheme (the producer emits one), a
// quantization with blocks of 128 rows (they span tokens), one of a function argument, one of
// an op with no quantized form (the attention output's reshape before o_proj), and one of
// add_rms_norm's sum.
// CHECK-LABEL: func.func @left_alone
func.func @left_alone(%x: tensor<?x128xf32>, %nw: tensor<128xbf16>, %a: tensor<?x4x32xf32>, %h: tensor<?x128xf32>) -> (tensor<?x128xf8E4M3FN>, tensor<?x128xf8E5M2>, tensor<?x128xf8E4M3FN>, tensor<?x128xf8E4M3FN>, tensor<?x128xf8E4M3FN>, tensor<?x128xf8E4M3FN>) {
  // CHECK: %[[N:.+]], %[[Q1:.+]], %{{.+}} = moe.rms_norm {{.+}}quantize = #moe.block_scale<format = e4m3fn, block = [1, 128]>}
  // CHECK: %[[Q2:.+]], %{{.+}} = moe.quantize %[[N]] {scheme = #moe.block_scale<format = e5m2, block = [1, 128]>}
  // CHECK: %[[Q3:.+]], %{{.+}} = moe.quantize %[[N]] {scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>}
  // CHECK: %[[Q4:.+]], %{{.+}} = moe.quantize %{{.+}} {scheme
  // CHECK: %[[R:.+]] = moe.reshape
  // CHECK: %[[Q5:.+]], %{{.+}} = moe.quantize %[[R]]
  // CHECK: %[[SUM:.+]], %{{.+}} = moe.add_rms_norm
  // CHECK: %[[Q6:.+]], %{{.+}} = moe.quantize %[[SUM]]
  // CHECK: return %[[Q1]], %[[Q2]], %[[Q3]], %[[Q4]], %[[Q5]], %[[Q6]]
  %n = moe.rms_norm %x, %nw {epsilon = 1.0e-06 : f64} : tensor<?x128xf32>, tensor<128xbf16> -> tensor<?x128xf32>
  %q1, %s1 = moe.quantize %n {scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>} : tensor<?x128xf32> -> tensor<?x128xf8E4M3FN>, tensor<?x1xf32>
  %q2, %s2 = moe.quantize %n {scheme = #moe.block_scale<format = e5m2, block = [1, 128]>} : tensor<?x128xf32> -> tensor<?x128xf8E5M2>, tensor<?x1xf32>
  %q3, %s3 = moe.quantize %n {scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<?x128xf32> -> tensor<?x128xf8E4M3FN>, tensor<?x1xf32>
  %q4, %s4 = moe.quantize %x {scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>} : tensor<?x128xf32> -> tensor<?x128xf8E4M3FN>, tensor<?x1xf32>
  %r = moe.reshape %a : tensor<?x4x32xf32> -> tensor<?x128xf32>
  %q5, %s5 = moe.quantize %r {scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>} : tensor<?x128xf32> -> tensor<?x128xf8E4M3FN>, tensor<?x1xf32>
  %sum, %m = moe.add_rms_norm %x, %h, %nw {epsilon = 1.0e-06 : f64} : tensor<?x128xf32>, tensor<128xbf16> -> tensor<?x128xf32>
  %q6, %s6 = moe.quantize %sum {scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>} : tensor<?x128xf32> -> tensor<?x128xf8E4M3FN>, tensor<?x1xf32>
  return %q1, %q2, %q3, %q4, %q5, %q6 : tensor<?x128xf8E4M3FN>, tensor<?x128xf8E5M2>, tensor<?x128xf8E4M3FN>, tensor<?x128xf8E4M3FN>, tensor<?x128xf8E4M3FN>, tensor<?x128xf8E4M3FN>
}
