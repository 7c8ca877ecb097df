// Every verifier message of the ops and attributes the passes added rejects bad IR with its whole message.
// RUN: moec-opt %s --split-input-file --verify-diagnostics

//===----------------------------------------------------------------------===//
// moe.concat with `dim`
//===----------------------------------------------------------------------===//

// moe.concat: `dim` must name a dimension of the result.
func.func @concat_dim_out_of_range(%a: tensor<32x64xbf16>, %b: tensor<32x64xbf16>) {
  // expected-error @+1 {{'moe.concat' op expected `dim` in [0, 2), but got 2}}
  %0 = moe.concat %a, %b {dim = 2 : i64} : tensor<32x64xbf16>, tensor<32x64xbf16> -> tensor<64x64xbf16>
  return
}

// -----

// moe.concat: inputs may differ from the result only along `dim`.
func.func @concat_dim_other_dimension(%a: tensor<2x32x64xbf16>, %b: tensor<2x16x32xbf16>) {
  // expected-error @+1 {{'moe.concat' op expected every input to match the result except in dimension 1, but got [2, 16, 32] and [2, 48, 64]}}
  %0 = moe.concat %a, %b {dim = 1 : i64} : tensor<2x32x64xbf16>, tensor<2x16x32xbf16> -> tensor<2x48x64xbf16>
  return
}

// -----

// moe.concat: the inputs' sizes along `dim` must add up to the result's.
func.func @concat_dim_sum(%a: tensor<2x32x64xbf16>, %b: tensor<2x16x64xbf16>) {
  // expected-error @+1 {{'moe.concat' op expected dimension 1 of the inputs to add up to 64, but got 48}}
  %0 = moe.concat %a, %b {dim = 1 : i64} : tensor<2x32x64xbf16>, tensor<2x16x64xbf16> -> tensor<2x64x64xbf16>
  return
}

// -----

//===----------------------------------------------------------------------===//
// moe.router with `shared_experts`
//===----------------------------------------------------------------------===//

// moe.router: `shared_experts` cannot be negative.
func.func @router_negative_shared_experts(%x: tensor<?x64xf32>, %g: tensor<8x64xbf16>) {
  // expected-error @+1 {{'moe.router' op attribute 'shared_experts' failed to satisfy constraint: 64-bit signless integer attribute whose value is non-negative}}
  %w, %i = moe.router %x, %g {routing = #moe.routing<scoring = softmax, k = 2>, shared_experts = -1 : i64} : tensor<?x64xf32>, tensor<8x64xbf16> -> tensor<?x1xf32>, tensor<?x1xi32>
  return
}

// -----

// moe.router: folded shared experts widen both results to k + shared_experts columns.
func.func @router_shared_experts_width(%x: tensor<?x64xf32>, %g: tensor<8x64xbf16>) {
  // expected-error @+1 {{'moe.router' op expected `weights` of shape [?, 3], but got [?, 2]}}
  %w, %i = moe.router %x, %g {routing = #moe.routing<scoring = softmax, k = 2>, shared_experts = 1 : i64} : tensor<?x64xf32>, tensor<8x64xbf16> -> tensor<?x2xf32>, tensor<?x2xi32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// moe.fp8_matmul with `bias`
//===----------------------------------------------------------------------===//

// moe.fp8_matmul: the bias has one entry per output column.
func.func @fp8_matmul_bias_shape(%xq: tensor<?x256xf8E4M3FN>, %xs: tensor<?x2xf32>, %wq: tensor<512x256xf8E4M3FN>, %ws: tensor<4x2xf32>, %b: tensor<256xbf16>) {
  // expected-error @+1 {{'moe.fp8_matmul' op expected `bias` of shape [512], but got [256]}}
  %y = moe.fp8_matmul %xq, %xs, %wq, %ws bias %b {act_scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>, weight_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<?x256xf8E4M3FN>, tensor<?x2xf32>, tensor<512x256xf8E4M3FN>, tensor<4x2xf32>, tensor<256xbf16> -> tensor<?x512xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// moe.add_rms_norm
//===----------------------------------------------------------------------===//

// moe.add_rms_norm: the operands need a last dimension to normalise.
func.func @add_rms_norm_rank0(%a: tensor<f32>, %b: tensor<f32>, %w: tensor<64xbf16>) {
  // expected-error @+1 {{'moe.add_rms_norm' op expected `lhs` to have rank >= 1, but got rank 0}}
  %s, %n = moe.add_rms_norm %a, %b, %w {epsilon = 1.0e-06 : f64} : tensor<f32>, tensor<64xbf16> -> tensor<f32>
  return
}

// -----

// moe.add_rms_norm: the weight matches the last dimension.
func.func @add_rms_norm_weight(%a: tensor<?x64xf32>, %b: tensor<?x64xf32>, %w: tensor<32xbf16>) {
  // expected-error @+1 {{'moe.add_rms_norm' op expected `weight` of shape [64], but got [32]}}
  %s, %n = moe.add_rms_norm %a, %b, %w {epsilon = 1.0e-06 : f64} : tensor<?x64xf32>, tensor<32xbf16> -> tensor<?x64xf32>
  return
}

// -----

// moe.add_rms_norm: the normalised result has the operands' shape.
func.func @add_rms_norm_result(%a: tensor<?x64xf32>, %b: tensor<?x64xf32>, %w: tensor<64xbf16>) {
  // expected-error @+1 {{'moe.add_rms_norm' op expected `result` of shape [?, 64], but got [?, 32]}}
  %s, %n = moe.add_rms_norm %a, %b, %w {epsilon = 1.0e-06 : f64} : tensor<?x64xf32>, tensor<64xbf16> -> tensor<?x32xf32>
  return
}

// -----

// moe.add_rms_norm: `epsilon` must be positive.
func.func @add_rms_norm_epsilon(%a: tensor<?x64xf32>, %b: tensor<?x64xf32>, %w: tensor<64xbf16>) {
  // expected-error @+1 {{'moe.add_rms_norm' op expected `epsilon` > 0, but got 0.000000e+00}}
  %s, %n = moe.add_rms_norm %a, %b, %w {epsilon = 0.0 : f64} : tensor<?x64xf32>, tensor<64xbf16> -> tensor<?x64xf32>
  return
}

// -----

// moe.add_rms_norm: both addends and the sum have one type.
func.func @add_rms_norm_types(%a: tensor<?x64xf32>, %b: tensor<?x64xbf16>, %w: tensor<64xbf16>) {
  // expected-error @+1 {{'moe.add_rms_norm' op failed to verify that all of {lhs, rhs, sum} have same type}}
  %s, %n = "moe.add_rms_norm"(%a, %b, %w) {epsilon = 1.0e-06 : f64, resultSegmentSizes = array<i32: 1, 1, 0, 0>} : (tensor<?x64xf32>, tensor<?x64xbf16>, tensor<64xbf16>) -> (tensor<?x64xf32>, tensor<?x64xf32>)
  return
}

// -----

//===----------------------------------------------------------------------===//
// moe.sigmoid_gate
//===----------------------------------------------------------------------===//

// moe.sigmoid_gate: `x` is a [T, K] activation.
func.func @sigmoid_gate_x_rank(%x: tensor<?x4x16xf32>, %g: tensor<1x64xbf16>, %y: tensor<?x32xf32>) {
  // expected-error @+1 {{'moe.sigmoid_gate' op expected `x` to have rank 2, but got rank 3}}
  %r = moe.sigmoid_gate %x, %g, %y : tensor<?x4x16xf32>, tensor<1x64xbf16>, tensor<?x32xf32>
  return
}

// -----

// moe.sigmoid_gate: `y` is a [T, N] activation.
func.func @sigmoid_gate_y_rank(%x: tensor<?x64xf32>, %g: tensor<1x64xbf16>, %y: tensor<?x4x8xf32>) {
  // expected-error @+1 {{'moe.sigmoid_gate' op expected `y` to have rank 2, but got rank 3}}
  %r = moe.sigmoid_gate %x, %g, %y : tensor<?x64xf32>, tensor<1x64xbf16>, tensor<?x4x8xf32>
  return
}

// -----

// moe.sigmoid_gate: the gate is one row of K.
func.func @sigmoid_gate_gate_shape(%x: tensor<?x64xf32>, %g: tensor<2x64xbf16>, %y: tensor<?x32xf32>) {
  // expected-error @+1 {{'moe.sigmoid_gate' op expected `gate` of shape [1, 64], but got [2, 64]}}
  %r = moe.sigmoid_gate %x, %g, %y : tensor<?x64xf32>, tensor<2x64xbf16>, tensor<?x32xf32>
  return
}

// -----

// moe.sigmoid_gate: `x` and `y` have the same tokens.
func.func @sigmoid_gate_tokens(%x: tensor<4x64xf32>, %g: tensor<1x64xbf16>, %y: tensor<8x32xf32>) {
  // expected-error @+1 {{'moe.sigmoid_gate' op expected `y` of shape [4, 32], but got [8, 32]}}
  %r = moe.sigmoid_gate %x, %g, %y : tensor<4x64xf32>, tensor<1x64xbf16>, tensor<8x32xf32>
  return
}

// -----

// moe.sigmoid_gate: the result has the type of `y`.
func.func @sigmoid_gate_result(%x: tensor<?x64xf32>, %g: tensor<1x64xbf16>, %y: tensor<?x32xf32>) {
  // expected-error @+1 {{'moe.sigmoid_gate' op failed to verify that all of {y, result} have same type}}
  %r = "moe.sigmoid_gate"(%x, %g, %y) : (tensor<?x64xf32>, tensor<1x64xbf16>, tensor<?x32xf32>) -> tensor<?x32xbf16>
  return
}

// -----

//===----------------------------------------------------------------------===//
// #moe.block_scale with `format = u8` and `zero_point`
//===----------------------------------------------------------------------===//

// #moe.block_scale: a u8 zero point lies in [0, 255].
// expected-error @+1 {{expected `zero_point` in [0, 255] for format u8, but got 256}}
#scheme = #moe.block_scale<format = u8, block = [1, 128], zero_point = 256>

// -----

// #moe.block_scale: a u4 zero point lies in [0, 15].
// expected-error @+1 {{expected `zero_point` in [0, 15] for format u4, but got 16}}
#scheme = #moe.block_scale<format = u4, block = [1, 128], zero_point = 16>

// -----

// moe.weight: packed u4 bytes pair elements of the last dimension, so they
// cannot be transposed.
func.func @weight_transpose_u4() {
  // expected-error @+1 {{'moe.weight' op expected no `#moe.transpose` of packed u4 data (its bytes pair elements of the last dimension)}}
  %0:2 = moe.weight [#moe.tensor_ref<"m.onnx", "w">] stored tensor<64x64xi8> scales [#moe.tensor_ref<"m.onnx", "s">] {stored_scheme = #moe.block_scale<format = u4, block = [1, 128], zero_point = 8>, transforms = [#moe.transpose]} : tensor<64x64xi8>, tensor<64x1xf32>
  return
}

// -----

// moe.dequantize: u4 data of 64 bytes per row dequantizes to 128 columns.
func.func @dequantize_u4_result(%q: tensor<64x64xi8>, %s: tensor<64x1xf32>) {
  // expected-error @+1 {{'moe.dequantize' op expected `result` of shape [64, 128], but got [64, 64]}}
  %0 = moe.dequantize %q, %s {scheme = #moe.block_scale<format = u4, block = [1, 128], zero_point = 8>} : tensor<64x64xi8>, tensor<64x1xf32> -> tensor<64x64xf32>
  return
}

// -----

// moe.dequantize: u4 scales count the unpacked columns.
func.func @dequantize_u4_scales(%q: tensor<64x64xi8>, %s: tensor<64x1xf32>) {
  // expected-error @+1 {{'moe.dequantize' op expected `scale` of shape [64, 2], but got [64, 1]}}
  %0 = moe.dequantize %q, %s {scheme = #moe.block_scale<format = u4, block = [1, 64], zero_point = 8>} : tensor<64x64xi8>, tensor<64x1xf32> -> tensor<64x128xf32>
  return
}

// -----

// #moe.block_scale: FP8 formats have no zero point.
// expected-error @+1 {{expected `zero_point` = 0 for FP8 format e4m3fn, but got 3}}
#scheme = #moe.block_scale<format = e4m3fn, block = [128, 128], zero_point = 3>

// -----

// moe.weight: `#moe.quantize` quantizes to FP8 only, not to u8 codes.
func.func @weight_quantize_u8() {
  // expected-error @+1 {{'moe.weight' op expected an FP8 scheme in `#moe.quantize`, but got #moe.block_scale<format = u8, block = [1, 128], zero_point = 128>}}
  %0:2 = moe.weight [#moe.tensor_ref<"m.safetensors", "w">] stored tensor<64x128xbf16> {transforms = [#moe.quantize<#moe.block_scale<format = u8, block = [1, 128], zero_point = 128>>]} : tensor<64x128xi8>, tensor<64x1xf32>
  return
}
