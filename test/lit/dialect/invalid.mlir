// Every verifier branch of the moe ops rejects bad IR with its whole message.
// RUN: moec-opt %s --split-input-file --verify-diagnostics

//===----------------------------------------------------------------------===//
// moe.weight
//===----------------------------------------------------------------------===//

// moe.weight: an empty `sources` list is rejected.
func.func @weight_no_sources() {
  // expected-error @+1 {{'moe.weight' op expected at least one entry in `sources`}}
  %0 = moe.weight [] stored tensor<64xbf16> : tensor<64xbf16>
  return
}

// -----

// moe.weight: `stored_scheme` on a bf16 stored tensor is rejected.
func.func @weight_scheme_without_fp8() {
  // expected-error @+1 {{'moe.weight' op expected `stored_scheme` exactly when `stored_type` has an FP8 element type}}
  %0:2 = moe.weight [#moe.tensor_ref<"m.safetensors", "w">] stored tensor<256x128xbf16> scales [#moe.tensor_ref<"m.safetensors", "s">] {stored_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<256x128xbf16>, tensor<2x1xf32>
  return
}

// -----

// moe.weight: an FP8 stored tensor without `stored_scheme` is rejected.
func.func @weight_fp8_without_scheme() {
  // expected-error @+1 {{'moe.weight' op expected `stored_scheme` exactly when `stored_type` has an FP8 element type}}
  %0 = moe.weight [#moe.tensor_ref<"m.safetensors", "w">] stored tensor<256x128xf8E4M3FN> : tensor<256x128xf8E4M3FN>
  return
}

// -----

// moe.weight: the FP8 format of `stored_type` must be the one of `stored_scheme`.
func.func @weight_stored_format_mismatch() {
  // expected-error @+1 {{'moe.weight' op expected `stored_type` element type 'f8E4M3FN', but got 'f8E5M2'}}
  %0:2 = moe.weight [#moe.tensor_ref<"m.safetensors", "w">] stored tensor<256x128xf8E5M2> scales [#moe.tensor_ref<"m.safetensors", "s">] {stored_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<256x128xf8E5M2>, tensor<2x1xf32>
  return
}

// -----

// moe.weight: an FP8 weight with `stored_scheme` but no `scale_sources` is rejected.
func.func @weight_scheme_without_scale_sources() {
  // expected-error @+1 {{'moe.weight' op expected `scale_sources` exactly when `stored_scheme` is set}}
  %0:2 = moe.weight [#moe.tensor_ref<"m.safetensors", "w">] stored tensor<256x128xf8E4M3FN> {stored_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<256x128xf8E4M3FN>, tensor<2x1xf32>
  return
}

// -----

// moe.weight: `scale_sources` on an unquantized weight is rejected.
func.func @weight_scale_sources_without_scheme() {
  // expected-error @+1 {{'moe.weight' op expected `scale_sources` exactly when `stored_scheme` is set}}
  %0 = moe.weight [#moe.tensor_ref<"m.safetensors", "w">] stored tensor<256x128xbf16> scales [#moe.tensor_ref<"m.safetensors", "s">] : tensor<256x128xbf16>
  return
}

// -----

// moe.weight: `scale_sources` must have one entry per source.
func.func @weight_scale_sources_count() {
  // expected-error @+1 {{'moe.weight' op expected as many `scale_sources` as `sources` (1), but got 2}}
  %0:2 = moe.weight [#moe.tensor_ref<"m.safetensors", "w">] stored tensor<256x128xf8E4M3FN> scales [#moe.tensor_ref<"m.safetensors", "s0">, #moe.tensor_ref<"m.safetensors", "s1">] {stored_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<256x128xf8E4M3FN>, tensor<2x1xf32>
  return
}

// -----

// moe.weight: #moe.stack after another transform is rejected.
func.func @weight_stack_not_first() {
  // expected-error @+1 {{'moe.weight' op expected `#moe.stack` only as the first transform}}
  %0 = moe.weight [#moe.tensor_ref<"m.safetensors", "e.0.w1">, #moe.tensor_ref<"m.safetensors", "e.1.w1">] stored tensor<32x64xbf16> {transforms = [#moe.transpose, #moe.stack]} : tensor<2x64x32xbf16>
  return
}

// -----

// moe.weight: a builtin attribute in `transforms` is rejected.
func.func @weight_unknown_transform_builtin() {
  // expected-error @+1 {{'moe.weight' op expected `transforms` to hold `#moe.stack`, `#moe.transpose` or `#moe.quantize`, but got unit}}
  %0 = moe.weight [#moe.tensor_ref<"m.safetensors", "w">] stored tensor<32x64xbf16> {transforms = [unit]} : tensor<32x64xbf16>
  return
}

// -----

// moe.weight: a moe attribute that is not a transform is rejected in `transforms`.
func.func @weight_unknown_transform_moe() {
  // expected-error @+1 {{'moe.weight' op expected `transforms` to hold `#moe.stack`, `#moe.transpose` or `#moe.quantize`, but got #moe.epilogue<none>}}
  %0 = moe.weight [#moe.tensor_ref<"m.safetensors", "w">] stored tensor<32x64xbf16> {transforms = [#moe.epilogue<none>]} : tensor<32x64xbf16>
  return
}

// -----

// moe.weight: #moe.transpose needs at least two dimensions.
func.func @weight_transpose_rank_1() {
  // expected-error @+1 {{'moe.weight' op expected rank >= 2 for #moe.transpose, but got rank 1}}
  %0 = moe.weight [#moe.tensor_ref<"m.safetensors", "w">] stored tensor<64xbf16> {transforms = [#moe.transpose]} : tensor<64xbf16>
  return
}

// -----

// moe.weight: #moe.quantize needs at least two dimensions.
func.func @weight_quantize_rank_1() {
  // expected-error @+1 {{'moe.weight' op expected rank >= 2 for #moe.quantize<#moe.block_scale<format = e4m3fn, block = [128, 128]>>, but got rank 1}}
  %0:2 = moe.weight [#moe.tensor_ref<"m.safetensors", "w">] stored tensor<64xbf16> {transforms = [#moe.quantize<#moe.block_scale<format = e4m3fn, block = [128, 128]>>]} : tensor<64xf8E4M3FN>, tensor<1xf32>
  return
}

// -----

// moe.weight: #moe.quantize on a weight stored in FP8 is rejected.
func.func @weight_quantize_fp8_stored() {
  // expected-error @+1 {{'moe.weight' op expected `#moe.quantize` only on an unquantized weight}}
  %0:2 = moe.weight [#moe.tensor_ref<"m.safetensors", "w">] stored tensor<256x128xf8E4M3FN> scales [#moe.tensor_ref<"m.safetensors", "s">] {stored_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>, transforms = [#moe.quantize<#moe.block_scale<format = e4m3fn, block = [128, 128]>>]} : tensor<256x128xf8E4M3FN>, tensor<2x1xf32>
  return
}

// -----

// moe.weight: a second #moe.quantize is rejected as well.
func.func @weight_quantize_twice() {
  // expected-error @+1 {{'moe.weight' op expected `#moe.quantize` only on an unquantized weight}}
  %0:2 = moe.weight [#moe.tensor_ref<"m.safetensors", "w">] stored tensor<256x128xbf16> {transforms = [#moe.quantize<#moe.block_scale<format = e4m3fn, block = [128, 128]>>, #moe.quantize<#moe.block_scale<format = e4m3fn, block = [128, 128]>>]} : tensor<256x128xf8E4M3FN>, tensor<2x1xf32>
  return
}

// -----

// moe.weight: several sources without #moe.stack are rejected.
func.func @weight_sources_without_stack() {
  // expected-error @+1 {{'moe.weight' op expected `#moe.stack` first when `sources` has 2 entries}}
  %0 = moe.weight [#moe.tensor_ref<"m.safetensors", "e.0.w1">, #moe.tensor_ref<"m.safetensors", "e.1.w1">] stored tensor<32x64xbf16> : tensor<32x64xbf16>
  return
}

// -----

// moe.weight: the result type must be the stored type after the transforms.
func.func @weight_result_type() {
  // expected-error @+1 {{'moe.weight' op expected result type 'tensor<64x32xbf16>' after the transforms, but got 'tensor<32x64xbf16>'}}
  %0 = moe.weight [#moe.tensor_ref<"m.safetensors", "w">] stored tensor<32x64xbf16> {transforms = [#moe.transpose]} : tensor<32x64xbf16>
  return
}

// -----

// moe.weight: an unquantized weight has no `scale` result.
func.func @weight_unexpected_scale() {
  // expected-error @+1 {{'moe.weight' op expected a `scale` result exactly when the weight is quantized}}
  %0:2 = moe.weight [#moe.tensor_ref<"m.safetensors", "w">] stored tensor<32x64xbf16> : tensor<32x64xbf16>, tensor<1x1xf32>
  return
}

// -----

// moe.weight: a quantized weight must have a `scale` result.
func.func @weight_missing_scale() {
  // expected-error @+1 {{'moe.weight' op expected a `scale` result exactly when the weight is quantized}}
  %0 = moe.weight [#moe.tensor_ref<"m.safetensors", "w">] stored tensor<256x128xbf16> {transforms = [#moe.quantize<#moe.block_scale<format = e4m3fn, block = [128, 128]>>]} : tensor<256x128xf8E4M3FN>
  return
}

// -----

// moe.weight: the `scale` result has one entry per block (256x128 in 128x128 blocks is 2x1).
func.func @weight_scale_shape() {
  // expected-error @+1 {{'moe.weight' op expected `scale` of shape [2, 1], but got [1, 2]}}
  %0:2 = moe.weight [#moe.tensor_ref<"m.safetensors", "w">] stored tensor<256x128xbf16> {transforms = [#moe.quantize<#moe.block_scale<format = e4m3fn, block = [128, 128]>>]} : tensor<256x128xf8E4M3FN>, tensor<1x2xf32>
  return
}

// -----

// moe.weight: the scales of a stored FP8 weight follow #moe.transpose (300x200 -> 200x300 has 2x3 scales).
func.func @weight_transposed_scale_shape() {
  // expected-error @+1 {{'moe.weight' op expected `scale` of shape [2, 3], but got [3, 2]}}
  %0:2 = moe.weight [#moe.tensor_ref<"m.safetensors", "w">] stored tensor<300x200xf8E4M3FN> scales [#moe.tensor_ref<"m.safetensors", "s">] {stored_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>, transforms = [#moe.transpose]} : tensor<200x300xf8E4M3FN>, tensor<3x2xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// moe.embed
//===----------------------------------------------------------------------===//

// moe.embed: `table` must be 2-d.
func.func @embed_table_rank(%table: tensor<256xbf16>, %ids: tensor<?xi32>) {
  // expected-error @+1 {{'moe.embed' op expected `table` to have rank 2, but got rank 1}}
  %0 = moe.embed %table, %ids : tensor<256xbf16>, tensor<?xi32> -> tensor<?x64xf32>
  return
}

// -----

// moe.embed: `ids` must be 1-d.
func.func @embed_ids_rank(%table: tensor<256x64xbf16>, %ids: tensor<?x1xi32>) {
  // expected-error @+1 {{'moe.embed' op expected `ids` to have rank 1, but got rank 2}}
  %0 = moe.embed %table, %ids : tensor<256x64xbf16>, tensor<?x1xi32> -> tensor<?x64xf32>
  return
}

// -----

// moe.embed: the result has one row of the table's width per id.
func.func @embed_result_shape(%table: tensor<256x64xbf16>, %ids: tensor<?xi32>) {
  // expected-error @+1 {{'moe.embed' op expected `result` of shape [?, 64], but got [?, 32]}}
  %0 = moe.embed %table, %ids : tensor<256x64xbf16>, tensor<?xi32> -> tensor<?x32xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// moe.matmul
//===----------------------------------------------------------------------===//

// moe.matmul: `x` must be 2-d.
func.func @matmul_x_rank(%x: tensor<64xf32>, %w: tensor<128x64xbf16>) {
  // expected-error @+1 {{'moe.matmul' op expected `x` to have rank 2, but got rank 1}}
  %0 = moe.matmul %x, %w : tensor<64xf32>, tensor<128x64xbf16> -> tensor<?x128xf32>
  return
}

// -----

// moe.matmul: `w` must be 2-d.
func.func @matmul_w_rank(%x: tensor<?x64xf32>, %w: tensor<2x128x64xbf16>) {
  // expected-error @+1 {{'moe.matmul' op expected `w` to have rank 2, but got rank 3}}
  %0 = moe.matmul %x, %w : tensor<?x64xf32>, tensor<2x128x64xbf16> -> tensor<?x128xf32>
  return
}

// -----

// moe.matmul: `x` and `w` must agree on K.
func.func @matmul_k_mismatch(%x: tensor<?x64xf32>, %w: tensor<128x32xbf16>) {
  // expected-error @+1 {{'moe.matmul' op expected the K dimension of `x` (64) and `w` (32) to be equal}}
  %0 = moe.matmul %x, %w : tensor<?x64xf32>, tensor<128x32xbf16> -> tensor<?x128xf32>
  return
}

// -----

// moe.matmul: the silu_mul epilogue splits N in halves, so N must be even.
func.func @matmul_silu_mul_odd_n(%x: tensor<?x64xf32>, %w: tensor<127x64xbf16>) {
  // expected-error @+1 {{'moe.matmul' op expected an even N for the silu_mul epilogue, but got N = 127}}
  %0 = moe.matmul %x, %w {epilogue = #moe.epilogue<silu_mul>} : tensor<?x64xf32>, tensor<127x64xbf16> -> tensor<?x63xf32>
  return
}

// -----

// moe.matmul: the result is [tokens, N].
func.func @matmul_result_shape(%x: tensor<?x64xf32>, %w: tensor<128x64xbf16>) {
  // expected-error @+1 {{'moe.matmul' op expected `result` of shape [?, 128], but got [?, 64]}}
  %0 = moe.matmul %x, %w : tensor<?x64xf32>, tensor<128x64xbf16> -> tensor<?x64xf32>
  return
}

// -----

// moe.matmul: `bias` has one entry per output column.
func.func @matmul_bias_shape(%x: tensor<?x64xf32>, %w: tensor<128x64xbf16>, %b: tensor<64xbf16>) {
  // expected-error @+1 {{'moe.matmul' op expected `bias` of shape [128], but got [64]}}
  %0 = moe.matmul %x, %w bias %b : tensor<?x64xf32>, tensor<128x64xbf16>, tensor<64xbf16> -> tensor<?x128xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// moe.rms_norm
//===----------------------------------------------------------------------===//

// moe.rms_norm: a 0-d `x` has no dimension to normalise.
func.func @rms_norm_rank_0(%x: tensor<f32>, %w: tensor<64xbf16>) {
  // expected-error @+1 {{'moe.rms_norm' op expected `x` to have rank >= 1, but got rank 0}}
  %0 = moe.rms_norm %x, %w {epsilon = 1.0e-06 : f64} : tensor<f32>, tensor<64xbf16> -> tensor<f32>
  return
}

// -----

// moe.rms_norm: `weight` has the size of the last dimension of `x`.
func.func @rms_norm_weight_shape(%x: tensor<?x64xf32>, %w: tensor<32xbf16>) {
  // expected-error @+1 {{'moe.rms_norm' op expected `weight` of shape [64], but got [32]}}
  %0 = moe.rms_norm %x, %w {epsilon = 1.0e-06 : f64} : tensor<?x64xf32>, tensor<32xbf16> -> tensor<?x64xf32>
  return
}

// -----

// moe.rms_norm: the result has the shape of `x`.
func.func @rms_norm_result_shape(%x: tensor<?x64xf32>, %w: tensor<64xbf16>) {
  // expected-error @+1 {{'moe.rms_norm' op expected `result` of shape [?, 64], but got [?, 32]}}
  %0 = moe.rms_norm %x, %w {epsilon = 1.0e-06 : f64} : tensor<?x64xf32>, tensor<64xbf16> -> tensor<?x32xf32>
  return
}

// -----

// moe.rms_norm: `epsilon` must be positive.
func.func @rms_norm_epsilon(%x: tensor<?x64xf32>, %w: tensor<64xbf16>) {
  // expected-error @+1 {{'moe.rms_norm' op expected `epsilon` > 0, but got 0.000000e+00}}
  %0 = moe.rms_norm %x, %w {epsilon = 0.0 : f64} : tensor<?x64xf32>, tensor<64xbf16> -> tensor<?x64xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// moe.rope
//===----------------------------------------------------------------------===//

// moe.rope: `x` must be [tokens, heads, head_dim].
func.func @rope_x_rank(%x: tensor<?x64xf32>, %pos: tensor<?xi32>) {
  // expected-error @+1 {{'moe.rope' op expected `x` to have rank 3, but got rank 2}}
  %0 = moe.rope %x, %pos {theta = 10000.0 : f64} : tensor<?x64xf32>, tensor<?xi32>
  return
}

// -----

// moe.rope: `positions` has one entry per token.
func.func @rope_positions_shape(%x: tensor<8x4x16xf32>, %pos: tensor<4xi32>) {
  // expected-error @+1 {{'moe.rope' op expected `positions` of shape [8], but got [4]}}
  %0 = moe.rope %x, %pos {theta = 10000.0 : f64} : tensor<8x4x16xf32>, tensor<4xi32>
  return
}

// -----

// moe.rope: rotation pairs elements, so the head dimension must be even.
func.func @rope_odd_head_dim(%x: tensor<?x4x15xf32>, %pos: tensor<?xi32>) {
  // expected-error @+1 {{'moe.rope' op expected an even last dimension, but got 15}}
  %0 = moe.rope %x, %pos {theta = 10000.0 : f64} : tensor<?x4x15xf32>, tensor<?xi32>
  return
}

// -----

// moe.rope: `theta` must be positive.
func.func @rope_theta(%x: tensor<?x4x16xf32>, %pos: tensor<?xi32>) {
  // expected-error @+1 {{'moe.rope' op expected `theta` > 0, but got -1.000000e+00}}
  %0 = moe.rope %x, %pos {theta = -1.0 : f64} : tensor<?x4x16xf32>, tensor<?xi32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// moe.attention
//===----------------------------------------------------------------------===//

// moe.attention: `q` must be 3-d.
func.func @attention_q_rank(%q: tensor<?x64xf32>, %k: tensor<?x4x16xf32>, %v: tensor<?x4x16xf32>) {
  // expected-error @+1 {{'moe.attention' op expected `q` to have rank 3, but got rank 2}}
  %0 = moe.attention %q, %k, %v {scale = 0.25 : f64} : tensor<?x64xf32>, tensor<?x4x16xf32>, tensor<?x4x16xf32> -> tensor<?x4x16xf32>
  return
}

// -----

// moe.attention: `k` must be 3-d.
func.func @attention_k_rank(%q: tensor<?x4x16xf32>, %k: tensor<?x64xf32>, %v: tensor<?x4x16xf32>) {
  // expected-error @+1 {{'moe.attention' op expected `k` to have rank 3, but got rank 2}}
  %0 = moe.attention %q, %k, %v {scale = 0.25 : f64} : tensor<?x4x16xf32>, tensor<?x64xf32>, tensor<?x4x16xf32> -> tensor<?x4x16xf32>
  return
}

// -----

// moe.attention: `v` must be 3-d.
func.func @attention_v_rank(%q: tensor<?x4x16xf32>, %k: tensor<?x4x16xf32>, %v: tensor<?x64xf32>) {
  // expected-error @+1 {{'moe.attention' op expected `v` to have rank 3, but got rank 2}}
  %0 = moe.attention %q, %k, %v {scale = 0.25 : f64} : tensor<?x4x16xf32>, tensor<?x4x16xf32>, tensor<?x64xf32> -> tensor<?x4x16xf32>
  return
}

// -----

// moe.attention: `k` has the tokens and head dimension of `q`.
func.func @attention_k_shape(%q: tensor<?x4x16xf32>, %k: tensor<?x2x8xf32>, %v: tensor<?x2x16xf32>) {
  // expected-error @+1 {{'moe.attention' op expected `k` of shape [?, 2, 16], but got [?, 2, 8]}}
  %0 = moe.attention %q, %k, %v {scale = 0.25 : f64} : tensor<?x4x16xf32>, tensor<?x2x8xf32>, tensor<?x2x16xf32> -> tensor<?x4x16xf32>
  return
}

// -----

// moe.attention: `v` has the tokens and heads of `k`.
func.func @attention_v_shape(%q: tensor<?x4x16xf32>, %k: tensor<?x2x16xf32>, %v: tensor<?x1x16xf32>) {
  // expected-error @+1 {{'moe.attention' op expected `v` of shape [?, 2, 16], but got [?, 1, 16]}}
  %0 = moe.attention %q, %k, %v {scale = 0.25 : f64} : tensor<?x4x16xf32>, tensor<?x2x16xf32>, tensor<?x1x16xf32> -> tensor<?x4x16xf32>
  return
}

// -----

// moe.attention: grouped-query attention needs the query heads to be a multiple of the key/value heads.
func.func @attention_heads_multiple(%q: tensor<?x4x16xf32>, %k: tensor<?x3x16xf32>, %v: tensor<?x3x16xf32>) {
  // expected-error @+1 {{'moe.attention' op expected the query heads (4) to be a multiple of the key/value heads (3)}}
  %0 = moe.attention %q, %k, %v {scale = 0.25 : f64} : tensor<?x4x16xf32>, tensor<?x3x16xf32>, tensor<?x3x16xf32> -> tensor<?x4x16xf32>
  return
}

// -----

// moe.attention: the result is [tokens, query heads, value head dim].
func.func @attention_result_shape(%q: tensor<?x4x16xf32>, %k: tensor<?x2x16xf32>, %v: tensor<?x2x16xf32>) {
  // expected-error @+1 {{'moe.attention' op expected `result` of shape [?, 4, 16], but got [?, 4, 8]}}
  %0 = moe.attention %q, %k, %v {scale = 0.25 : f64} : tensor<?x4x16xf32>, tensor<?x2x16xf32>, tensor<?x2x16xf32> -> tensor<?x4x8xf32>
  return
}

// -----

// moe.attention: `scale` must be positive.
func.func @attention_scale(%q: tensor<?x4x16xf32>, %k: tensor<?x2x16xf32>, %v: tensor<?x2x16xf32>) {
  // expected-error @+1 {{'moe.attention' op expected `scale` > 0, but got 0.000000e+00}}
  %0 = moe.attention %q, %k, %v {scale = 0.0 : f64} : tensor<?x4x16xf32>, tensor<?x2x16xf32>, tensor<?x2x16xf32> -> tensor<?x4x16xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// moe.paged_attention
//===----------------------------------------------------------------------===//

// moe.paged_attention: the checks of moe.attention hold (`q` is 3-d).
func.func @paged_q_rank(%q: tensor<?x64xf32>, %k: tensor<?x2x16xf32>, %v: tensor<?x2x16xf32>, %pos: tensor<?xi32>, %slots: tensor<?xi32>, %table: tensor<8x64xi32>, %kc: tensor<?x16x2x16xf32> {moe.kv_cache}, %vc: tensor<?x16x2x16xf32> {moe.kv_cache}) {
  // expected-error @+1 {{'moe.paged_attention' op expected `q` to have rank 3, but got rank 2}}
  %0 = moe.paged_attention %q, %k, %v, %pos, %slots, %table, %kc, %vc {scale = 0.25 : f64, layer = 0 : i64} : tensor<?x64xf32>, tensor<?x2x16xf32>, tensor<?x2x16xf32>, tensor<?xi32>, tensor<?xi32>, tensor<8x64xi32>, tensor<?x16x2x16xf32>, tensor<?x16x2x16xf32> -> tensor<?x64xf32>
  return
}

// -----

// moe.paged_attention: the query heads are a multiple of the key/value heads.
func.func @paged_heads_multiple(%q: tensor<?x4x16xf32>, %k: tensor<?x3x16xf32>, %v: tensor<?x3x16xf32>, %pos: tensor<?xi32>, %slots: tensor<?xi32>, %table: tensor<8x64xi32>, %kc: tensor<?x16x3x16xf32> {moe.kv_cache}, %vc: tensor<?x16x3x16xf32> {moe.kv_cache}) {
  // expected-error @+1 {{'moe.paged_attention' op expected the query heads (4) to be a multiple of the key/value heads (3)}}
  %0 = moe.paged_attention %q, %k, %v, %pos, %slots, %table, %kc, %vc {scale = 0.25 : f64, layer = 0 : i64} : tensor<?x4x16xf32>, tensor<?x3x16xf32>, tensor<?x3x16xf32>, tensor<?xi32>, tensor<?xi32>, tensor<8x64xi32>, tensor<?x16x3x16xf32>, tensor<?x16x3x16xf32> -> tensor<?x4x16xf32>
  return
}

// -----

// moe.paged_attention: `scale` must be positive.
func.func @paged_scale(%q: tensor<?x4x16xf32>, %k: tensor<?x2x16xf32>, %v: tensor<?x2x16xf32>, %pos: tensor<?xi32>, %slots: tensor<?xi32>, %table: tensor<8x64xi32>, %kc: tensor<?x16x2x16xf32> {moe.kv_cache}, %vc: tensor<?x16x2x16xf32> {moe.kv_cache}) {
  // expected-error @+1 {{'moe.paged_attention' op expected `scale` > 0, but got -1.000000e+00}}
  %0 = moe.paged_attention %q, %k, %v, %pos, %slots, %table, %kc, %vc {scale = -1.0 : f64, layer = 0 : i64} : tensor<?x4x16xf32>, tensor<?x2x16xf32>, tensor<?x2x16xf32>, tensor<?xi32>, tensor<?xi32>, tensor<8x64xi32>, tensor<?x16x2x16xf32>, tensor<?x16x2x16xf32> -> tensor<?x4x16xf32>
  return
}

// -----

// moe.paged_attention: one position per row.
func.func @paged_positions_shape(%q: tensor<?x4x16xf32>, %k: tensor<?x2x16xf32>, %v: tensor<?x2x16xf32>, %pos: tensor<?x2xi32>, %slots: tensor<?xi32>, %table: tensor<8x64xi32>, %kc: tensor<?x16x2x16xf32> {moe.kv_cache}, %vc: tensor<?x16x2x16xf32> {moe.kv_cache}) {
  // expected-error @+1 {{'moe.paged_attention' op expected `positions` of shape [?], but got [?, 2]}}
  %0 = moe.paged_attention %q, %k, %v, %pos, %slots, %table, %kc, %vc {scale = 0.25 : f64, layer = 0 : i64} : tensor<?x4x16xf32>, tensor<?x2x16xf32>, tensor<?x2x16xf32>, tensor<?x2xi32>, tensor<?xi32>, tensor<8x64xi32>, tensor<?x16x2x16xf32>, tensor<?x16x2x16xf32> -> tensor<?x4x16xf32>
  return
}

// -----

// moe.paged_attention: one slot per row.
func.func @paged_slots_shape(%q: tensor<?x4x16xf32>, %k: tensor<?x2x16xf32>, %v: tensor<?x2x16xf32>, %pos: tensor<?xi32>, %slots: tensor<?x1xi32>, %table: tensor<8x64xi32>, %kc: tensor<?x16x2x16xf32> {moe.kv_cache}, %vc: tensor<?x16x2x16xf32> {moe.kv_cache}) {
  // expected-error @+1 {{'moe.paged_attention' op expected `slots` of shape [?], but got [?, 1]}}
  %0 = moe.paged_attention %q, %k, %v, %pos, %slots, %table, %kc, %vc {scale = 0.25 : f64, layer = 0 : i64} : tensor<?x4x16xf32>, tensor<?x2x16xf32>, tensor<?x2x16xf32>, tensor<?xi32>, tensor<?x1xi32>, tensor<8x64xi32>, tensor<?x16x2x16xf32>, tensor<?x16x2x16xf32> -> tensor<?x4x16xf32>
  return
}

// -----

// moe.paged_attention: the page table is [sequences, pages].
func.func @paged_table_rank(%q: tensor<?x4x16xf32>, %k: tensor<?x2x16xf32>, %v: tensor<?x2x16xf32>, %pos: tensor<?xi32>, %slots: tensor<?xi32>, %table: tensor<64xi32>, %kc: tensor<?x16x2x16xf32> {moe.kv_cache}, %vc: tensor<?x16x2x16xf32> {moe.kv_cache}) {
  // expected-error @+1 {{'moe.paged_attention' op expected `page_table` to have rank 2, but got rank 1}}
  %0 = moe.paged_attention %q, %k, %v, %pos, %slots, %table, %kc, %vc {scale = 0.25 : f64, layer = 0 : i64} : tensor<?x4x16xf32>, tensor<?x2x16xf32>, tensor<?x2x16xf32>, tensor<?xi32>, tensor<?xi32>, tensor<64xi32>, tensor<?x16x2x16xf32>, tensor<?x16x2x16xf32> -> tensor<?x4x16xf32>
  return
}

// -----

// moe.paged_attention: the page table has an entry.
func.func @paged_table_empty(%q: tensor<?x4x16xf32>, %k: tensor<?x2x16xf32>, %v: tensor<?x2x16xf32>, %pos: tensor<?xi32>, %slots: tensor<?xi32>, %table: tensor<0x64xi32>, %kc: tensor<?x16x2x16xf32> {moe.kv_cache}, %vc: tensor<?x16x2x16xf32> {moe.kv_cache}) {
  // expected-error @+1 {{'moe.paged_attention' op expected a `page_table` with at least one entry}}
  %0 = moe.paged_attention %q, %k, %v, %pos, %slots, %table, %kc, %vc {scale = 0.25 : f64, layer = 0 : i64} : tensor<?x4x16xf32>, tensor<?x2x16xf32>, tensor<?x2x16xf32>, tensor<?xi32>, tensor<?xi32>, tensor<0x64xi32>, tensor<?x16x2x16xf32>, tensor<?x16x2x16xf32> -> tensor<?x4x16xf32>
  return
}

// -----

// moe.paged_attention: a cache is 4-d.
func.func @paged_k_cache_rank(%q: tensor<?x4x16xf32>, %k: tensor<?x2x16xf32>, %v: tensor<?x2x16xf32>, %pos: tensor<?xi32>, %slots: tensor<?xi32>, %table: tensor<8x64xi32>, %kc: tensor<?x16x32xf32>, %vc: tensor<?x16x2x16xf32> {moe.kv_cache}) {
  // expected-error @+1 {{'moe.paged_attention' op expected `k_cache` to have rank 4, but got rank 3}}
  %0 = moe.paged_attention %q, %k, %v, %pos, %slots, %table, %kc, %vc {scale = 0.25 : f64, layer = 0 : i64} : tensor<?x4x16xf32>, tensor<?x2x16xf32>, tensor<?x2x16xf32>, tensor<?xi32>, tensor<?xi32>, tensor<8x64xi32>, tensor<?x16x32xf32>, tensor<?x16x2x16xf32> -> tensor<?x4x16xf32>
  return
}

// -----

// moe.paged_attention: the page count is the runtime's: dimension 0 is dynamic.
func.func @paged_k_cache_static_pages(%q: tensor<?x4x16xf32>, %k: tensor<?x2x16xf32>, %v: tensor<?x2x16xf32>, %pos: tensor<?xi32>, %slots: tensor<?xi32>, %table: tensor<8x64xi32>, %kc: tensor<4x16x2x16xf32>, %vc: tensor<?x16x2x16xf32> {moe.kv_cache}) {
  // expected-error @+1 {{'moe.paged_attention' op expected `k_cache` of shape [?, P, heads, dim] with P >= 1, but got [4, 16, 2, 16]}}
  %0 = moe.paged_attention %q, %k, %v, %pos, %slots, %table, %kc, %vc {scale = 0.25 : f64, layer = 0 : i64} : tensor<?x4x16xf32>, tensor<?x2x16xf32>, tensor<?x2x16xf32>, tensor<?xi32>, tensor<?xi32>, tensor<8x64xi32>, tensor<4x16x2x16xf32>, tensor<?x16x2x16xf32> -> tensor<?x4x16xf32>
  return
}

// -----

// moe.paged_attention: a page holds at least one position.
func.func @paged_k_cache_no_page_tokens(%q: tensor<?x4x16xf32>, %k: tensor<?x2x16xf32>, %v: tensor<?x2x16xf32>, %pos: tensor<?xi32>, %slots: tensor<?xi32>, %table: tensor<8x64xi32>, %kc: tensor<?x0x2x16xf32>, %vc: tensor<?x16x2x16xf32> {moe.kv_cache}) {
  // expected-error @+1 {{'moe.paged_attention' op expected `k_cache` of shape [?, P, heads, dim] with P >= 1, but got [?, 0, 2, 16]}}
  %0 = moe.paged_attention %q, %k, %v, %pos, %slots, %table, %kc, %vc {scale = 0.25 : f64, layer = 0 : i64} : tensor<?x4x16xf32>, tensor<?x2x16xf32>, tensor<?x2x16xf32>, tensor<?xi32>, tensor<?xi32>, tensor<8x64xi32>, tensor<?x0x2x16xf32>, tensor<?x16x2x16xf32> -> tensor<?x4x16xf32>
  return
}

// -----

// moe.paged_attention: a cache holds its projection's heads and head dim.
func.func @paged_v_cache_heads(%q: tensor<?x4x16xf32>, %k: tensor<?x2x16xf32>, %v: tensor<?x2x16xf32>, %pos: tensor<?xi32>, %slots: tensor<?xi32>, %table: tensor<8x64xi32>, %kc: tensor<?x16x2x16xf32> {moe.kv_cache}, %vc: tensor<?x16x2x8xf32> {moe.kv_cache}) {
  // expected-error @+1 {{'moe.paged_attention' op expected `v_cache` of shape [?, 16, 2, 16], but got [?, 16, 2, 8]}}
  %0 = moe.paged_attention %q, %k, %v, %pos, %slots, %table, %kc, %vc {scale = 0.25 : f64, layer = 0 : i64} : tensor<?x4x16xf32>, tensor<?x2x16xf32>, tensor<?x2x16xf32>, tensor<?xi32>, tensor<?xi32>, tensor<8x64xi32>, tensor<?x16x2x16xf32>, tensor<?x16x2x8xf32> -> tensor<?x4x16xf32>
  return
}

// -----

// moe.paged_attention: a cache is the runtime's state, an argument marked moe.kv_cache.
func.func @paged_k_cache_unmarked(%q: tensor<?x4x16xf32>, %k: tensor<?x2x16xf32>, %v: tensor<?x2x16xf32>, %pos: tensor<?xi32>, %slots: tensor<?xi32>, %table: tensor<8x64xi32>, %kc: tensor<?x16x2x16xf32>, %vc: tensor<?x16x2x16xf32> {moe.kv_cache}) {
  // expected-error @+1 {{'moe.paged_attention' op expected `k_cache` to be a function argument marked `moe.kv_cache`}}
  %0 = moe.paged_attention %q, %k, %v, %pos, %slots, %table, %kc, %vc {scale = 0.25 : f64, layer = 0 : i64} : tensor<?x4x16xf32>, tensor<?x2x16xf32>, tensor<?x2x16xf32>, tensor<?xi32>, tensor<?xi32>, tensor<8x64xi32>, tensor<?x16x2x16xf32>, tensor<?x16x2x16xf32> -> tensor<?x4x16xf32>
  return
}

// -----

// moe.paged_attention: both caches have the same pages.
func.func @paged_page_tokens(%q: tensor<?x4x16xf32>, %k: tensor<?x2x16xf32>, %v: tensor<?x2x16xf32>, %pos: tensor<?xi32>, %slots: tensor<?xi32>, %table: tensor<8x64xi32>, %kc: tensor<?x16x2x16xf32> {moe.kv_cache}, %vc: tensor<?x8x2x16xf32> {moe.kv_cache}) {
  // expected-error @+1 {{'moe.paged_attention' op expected `k_cache` and `v_cache` to have the same page tokens, but got 16 and 8}}
  %0 = moe.paged_attention %q, %k, %v, %pos, %slots, %table, %kc, %vc {scale = 0.25 : f64, layer = 0 : i64} : tensor<?x4x16xf32>, tensor<?x2x16xf32>, tensor<?x2x16xf32>, tensor<?xi32>, tensor<?xi32>, tensor<8x64xi32>, tensor<?x16x2x16xf32>, tensor<?x8x2x16xf32> -> tensor<?x4x16xf32>
  return
}

// -----

// moe.paged_attention: the keys and the values are two caches.
func.func @paged_same_cache(%q: tensor<?x4x16xf32>, %k: tensor<?x2x16xf32>, %v: tensor<?x2x16xf32>, %pos: tensor<?xi32>, %slots: tensor<?xi32>, %table: tensor<8x64xi32>, %kc: tensor<?x16x2x16xf32> {moe.kv_cache}) {
  // expected-error @+1 {{'moe.paged_attention' op expected distinct `k_cache` and `v_cache`}}
  %0 = moe.paged_attention %q, %k, %v, %pos, %slots, %table, %kc, %kc {scale = 0.25 : f64, layer = 0 : i64} : tensor<?x4x16xf32>, tensor<?x2x16xf32>, tensor<?x2x16xf32>, tensor<?xi32>, tensor<?xi32>, tensor<8x64xi32>, tensor<?x16x2x16xf32>, tensor<?x16x2x16xf32> -> tensor<?x4x16xf32>
  return
}

// -----

// moe.paged_attention: layers count from 0.
func.func @paged_layer(%q: tensor<?x4x16xf32>, %k: tensor<?x2x16xf32>, %v: tensor<?x2x16xf32>, %pos: tensor<?xi32>, %slots: tensor<?xi32>, %table: tensor<8x64xi32>, %kc: tensor<?x16x2x16xf32> {moe.kv_cache}, %vc: tensor<?x16x2x16xf32> {moe.kv_cache}) {
  // expected-error @+1 {{'moe.paged_attention' op expected `layer` >= 0, but got -1}}
  %0 = moe.paged_attention %q, %k, %v, %pos, %slots, %table, %kc, %vc {scale = 0.25 : f64, layer = -1 : i64} : tensor<?x4x16xf32>, tensor<?x2x16xf32>, tensor<?x2x16xf32>, tensor<?xi32>, tensor<?xi32>, tensor<8x64xi32>, tensor<?x16x2x16xf32>, tensor<?x16x2x16xf32> -> tensor<?x4x16xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// moe.reshape
//===----------------------------------------------------------------------===//

// moe.reshape: the element type is kept.
func.func @reshape_element_type(%x: tensor<?x64xf32>) {
  // expected-error @+1 {{'moe.reshape' op expected `result` element type 'f32', but got 'bf16'}}
  %0 = moe.reshape %x : tensor<?x64xf32> -> tensor<?x4x16xbf16>
  return
}

// -----

// moe.reshape: the leading (token) dimension is kept.
func.func @reshape_token_dim(%x: tensor<8x64xf32>) {
  // expected-error @+1 {{'moe.reshape' op expected the leading (token) dimension to be kept, but got [8, 64] -> [4, 128]}}
  %0 = moe.reshape %x : tensor<8x64xf32> -> tensor<4x128xf32>
  return
}

// -----

// moe.reshape: a 0-d tensor has no token dimension to keep.
func.func @reshape_rank_0(%x: tensor<f32>) {
  // expected-error @+1 {{'moe.reshape' op expected the leading (token) dimension to be kept, but got [] -> [1]}}
  %0 = moe.reshape %x : tensor<f32> -> tensor<1xf32>
  return
}

// -----

// moe.reshape: the non-token dimensions hold the same number of elements.
func.func @reshape_element_count(%x: tensor<?x64xf32>) {
  // expected-error @+1 {{'moe.reshape' op expected the non-token dimensions to hold the same number of elements, but got [?, 64] -> [?, 4, 8]}}
  %0 = moe.reshape %x : tensor<?x64xf32> -> tensor<?x4x8xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// moe.slice
//===----------------------------------------------------------------------===//

// moe.slice: the element type is kept.
func.func @slice_element_type(%x: tensor<?x4x24xf32>) {
  // expected-error @+1 {{'moe.slice' op expected `result` element type 'f32', but got 'bf16'}}
  %0 = moe.slice %x {offset = 0 : i64} : tensor<?x4x24xf32> -> tensor<?x4x8xbf16>
  return
}

// -----

// moe.slice: only the last dimension may change.
func.func @slice_leading_dims(%x: tensor<?x4x24xf32>) {
  // expected-error @+1 {{'moe.slice' op expected the result to differ from `x` only in the last dimension, but got [?, 4, 24] -> [?, 2, 8]}}
  %0 = moe.slice %x {offset = 0 : i64} : tensor<?x4x24xf32> -> tensor<?x2x8xf32>
  return
}

// -----

// moe.slice: a 0-d tensor has no last dimension to slice.
func.func @slice_rank_0(%x: tensor<f32>) {
  // expected-error @+1 {{'moe.slice' op expected the result to differ from `x` only in the last dimension, but got [] -> []}}
  %0 = moe.slice %x {offset = 0 : i64} : tensor<f32> -> tensor<f32>
  return
}

// -----

// moe.slice: the slice must end inside `x`.
func.func @slice_past_end(%x: tensor<?x4x24xf32>) {
  // expected-error @+1 {{'moe.slice' op expected `offset` + result size <= 24, but got 20 + 8}}
  %0 = moe.slice %x {offset = 20 : i64} : tensor<?x4x24xf32> -> tensor<?x4x8xf32>
  return
}

// -----

// moe.slice: a negative `offset` is rejected.
func.func @slice_negative_offset(%x: tensor<?x4x24xf32>) {
  // expected-error @+1 {{'moe.slice' op expected `offset` + result size <= 24, but got -1 + 8}}
  %0 = moe.slice %x {offset = -1 : i64} : tensor<?x4x24xf32> -> tensor<?x4x8xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// moe.concat
//===----------------------------------------------------------------------===//

// moe.concat: zero inputs are rejected (the custom form cannot spell them; the generic form can).
func.func @concat_no_inputs() {
  // expected-error @+1 {{'moe.concat' op expected at least one input}}
  %0 = "moe.concat"() : () -> tensor<?x4xf32>
  return
}

// -----

// moe.concat: every input has the result's element type.
func.func @concat_element_type(%a: tensor<?x4x16xbf16>, %b: tensor<?x4x8xf32>) {
  // expected-error @+1 {{'moe.concat' op expected `inputs` element type 'f32', but got 'bf16'}}
  %0 = moe.concat %a, %b : tensor<?x4x16xbf16>, tensor<?x4x8xf32> -> tensor<?x4x24xf32>
  return
}

// -----

// moe.concat: every input matches the result except in the last dimension.
func.func @concat_leading_dims(%a: tensor<?x4x16xf32>, %b: tensor<?x2x8xf32>) {
  // expected-error @+1 {{'moe.concat' op expected every input to match the result except in the last dimension, but got [?, 2, 8] and [?, 4, 24]}}
  %0 = moe.concat %a, %b : tensor<?x4x16xf32>, tensor<?x2x8xf32> -> tensor<?x4x24xf32>
  return
}

// -----

// moe.concat: the last dimensions of the inputs add up to the result's.
func.func @concat_last_dim_sum(%a: tensor<?x4x16xf32>, %b: tensor<?x4x8xf32>) {
  // expected-error @+1 {{'moe.concat' op expected the last dimensions to add up to 32, but got 24}}
  %0 = moe.concat %a, %b : tensor<?x4x16xf32>, tensor<?x4x8xf32> -> tensor<?x4x32xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// moe.expand
//===----------------------------------------------------------------------===//

// moe.expand: the element type is kept.
func.func @expand_element_type(%x: tensor<?x1x8xf32>) {
  // expected-error @+1 {{'moe.expand' op expected `result` element type 'f32', but got 'bf16'}}
  %0 = moe.expand %x : tensor<?x1x8xf32> -> tensor<?x4x8xbf16>
  return
}

// -----

// moe.expand: only dimensions of size 1 may grow.
func.func @expand_non_unit_dim(%x: tensor<?x2x8xf32>) {
  // expected-error @+1 {{'moe.expand' op expected every dimension of `x` to be 1 or equal to the result's, but got [?, 2, 8] -> [?, 4, 8]}}
  %0 = moe.expand %x : tensor<?x2x8xf32> -> tensor<?x4x8xf32>
  return
}

// -----

// moe.expand: the rank is kept.
func.func @expand_rank(%x: tensor<?x8xf32>) {
  // expected-error @+1 {{'moe.expand' op expected every dimension of `x` to be 1 or equal to the result's, but got [?, 8] -> [?, 4, 8]}}
  %0 = moe.expand %x : tensor<?x8xf32> -> tensor<?x4x8xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// moe.router
//===----------------------------------------------------------------------===//

// moe.router: `x` must be 2-d.
func.func @router_x_rank(%x: tensor<64xf32>, %gate: tensor<8x64xbf16>) {
  // expected-error @+1 {{'moe.router' op expected `x` to have rank 2, but got rank 1}}
  %w, %i = moe.router %x, %gate {routing = #moe.routing<scoring = softmax, k = 2>} : tensor<64xf32>, tensor<8x64xbf16> -> tensor<?x2xf32>, tensor<?x2xi32>
  return
}

// -----

// moe.router: `gate` must be 2-d.
func.func @router_gate_rank(%x: tensor<?x64xf32>, %gate: tensor<8x64x1xbf16>) {
  // expected-error @+1 {{'moe.router' op expected `gate` to have rank 2, but got rank 3}}
  %w, %i = moe.router %x, %gate {routing = #moe.routing<scoring = softmax, k = 2>} : tensor<?x64xf32>, tensor<8x64x1xbf16> -> tensor<?x2xf32>, tensor<?x2xi32>
  return
}

// -----

// moe.router: `gate` is [experts, hidden].
func.func @router_gate_shape(%x: tensor<?x64xf32>, %gate: tensor<8x32xbf16>) {
  // expected-error @+1 {{'moe.router' op expected `gate` of shape [8, 64], but got [8, 32]}}
  %w, %i = moe.router %x, %gate {routing = #moe.routing<scoring = softmax, k = 2>} : tensor<?x64xf32>, tensor<8x32xbf16> -> tensor<?x2xf32>, tensor<?x2xi32>
  return
}

// -----

// moe.router: `bias` has one entry per expert.
func.func @router_bias_shape(%x: tensor<?x64xf32>, %gate: tensor<8x64xbf16>, %bias: tensor<4xf32>) {
  // expected-error @+1 {{'moe.router' op expected `bias` of shape [8], but got [4]}}
  %w, %i = moe.router %x, %gate bias %bias {routing = #moe.routing<scoring = sigmoid, k = 2>} : tensor<?x64xf32>, tensor<8x64xbf16>, tensor<4xf32> -> tensor<?x2xf32>, tensor<?x2xi32>
  return
}

// -----

// moe.router: `k` cannot exceed the number of experts.
func.func @router_k_above_experts(%x: tensor<?x64xf32>, %gate: tensor<8x64xbf16>) {
  // expected-error @+1 {{'moe.router' op expected `k` <= number of experts (8), but got k = 16}}
  %w, %i = moe.router %x, %gate {routing = #moe.routing<scoring = softmax, k = 16>} : tensor<?x64xf32>, tensor<8x64xbf16> -> tensor<?x16xf32>, tensor<?x16xi32>
  return
}

// -----

// moe.router: the experts split evenly into `n_group` groups.
func.func @router_groups_divide(%x: tensor<?x64xf32>, %gate: tensor<8x64xbf16>) {
  // expected-error @+1 {{'moe.router' op expected the number of experts (8) to be divisible by n_group = 3}}
  %w, %i = moe.router %x, %gate {routing = #moe.routing<scoring = softmax, k = 2, n_group = 3, topk_group = 1, group_score = max>} : tensor<?x64xf32>, tensor<8x64xbf16> -> tensor<?x2xf32>, tensor<?x2xi32>
  return
}

// -----

// moe.router: top2_sum group scoring needs two experts in every group.
func.func @router_top2_sum_group_size(%x: tensor<?x64xf32>, %gate: tensor<8x64xbf16>) {
  // expected-error @+1 {{'moe.router' op expected at least 2 experts per group for top2_sum, but got 1}}
  %w, %i = moe.router %x, %gate {routing = #moe.routing<scoring = sigmoid, k = 1, n_group = 8, topk_group = 1, group_score = top2_sum>} : tensor<?x64xf32>, tensor<8x64xbf16> -> tensor<?x1xf32>, tensor<?x1xi32>
  return
}

// -----

// moe.router: the `topk_group` kept groups must hold at least `k` experts.
func.func @router_k_above_kept_groups(%x: tensor<?x64xf32>, %gate: tensor<8x64xbf16>) {
  // expected-error @+1 {{'moe.router' op expected `k` <= topk_group * experts per group = 2, but got k = 4}}
  %w, %i = moe.router %x, %gate {routing = #moe.routing<scoring = sigmoid, k = 4, n_group = 4, topk_group = 1, group_score = top2_sum>} : tensor<?x64xf32>, tensor<8x64xbf16> -> tensor<?x4xf32>, tensor<?x4xi32>
  return
}

// -----

// moe.router: `weights` is [tokens, k].
func.func @router_weights_shape(%x: tensor<?x64xf32>, %gate: tensor<8x64xbf16>) {
  // expected-error @+1 {{'moe.router' op expected `weights` of shape [?, 2], but got [?, 4]}}
  %w, %i = moe.router %x, %gate {routing = #moe.routing<scoring = softmax, k = 2>} : tensor<?x64xf32>, tensor<8x64xbf16> -> tensor<?x4xf32>, tensor<?x2xi32>
  return
}

// -----

// moe.router: `indices` is [tokens, k].
func.func @router_indices_shape(%x: tensor<?x64xf32>, %gate: tensor<8x64xbf16>) {
  // expected-error @+1 {{'moe.router' op expected `indices` of shape [?, 2], but got [?, 4]}}
  %w, %i = moe.router %x, %gate {routing = #moe.routing<scoring = softmax, k = 2>} : tensor<?x64xf32>, tensor<8x64xbf16> -> tensor<?x2xf32>, tensor<?x4xi32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// moe.dispatch
//===----------------------------------------------------------------------===//

// moe.dispatch: `x` must be 2-d.
func.func @dispatch_x_rank(%x: tensor<64xf32>, %idx: tensor<?x2xi32>) {
  // expected-error @+1 {{'moe.dispatch' op expected `x` to have rank 2, but got rank 1}}
  %rows, %off, %pos = moe.dispatch %x, %idx : tensor<64xf32>, tensor<?x2xi32> -> tensor<?x64xf32>, tensor<9xi32>, tensor<?xi32>
  return
}

// -----

// moe.dispatch: `indices` must be 2-d.
func.func @dispatch_indices_rank(%x: tensor<?x64xf32>, %idx: tensor<?xi32>) {
  // expected-error @+1 {{'moe.dispatch' op expected `indices` to have rank 2, but got rank 1}}
  %rows, %off, %pos = moe.dispatch %x, %idx : tensor<?x64xf32>, tensor<?xi32> -> tensor<?x64xf32>, tensor<9xi32>, tensor<?xi32>
  return
}

// -----

// moe.dispatch: `offsets` must be 1-d.
func.func @dispatch_offsets_rank(%x: tensor<?x64xf32>, %idx: tensor<?x2xi32>) {
  // expected-error @+1 {{'moe.dispatch' op expected `offsets` to have rank 1, but got rank 2}}
  %rows, %off, %pos = moe.dispatch %x, %idx : tensor<?x64xf32>, tensor<?x2xi32> -> tensor<?x64xf32>, tensor<9x1xi32>, tensor<?xi32>
  return
}

// -----

// moe.dispatch: `indices` has one row per token of `x`.
func.func @dispatch_indices_shape(%x: tensor<8x64xf32>, %idx: tensor<4x2xi32>) {
  // expected-error @+1 {{'moe.dispatch' op expected `indices` of shape [8, 2], but got [4, 2]}}
  %rows, %off, %pos = moe.dispatch %x, %idx : tensor<8x64xf32>, tensor<4x2xi32> -> tensor<?x64xf32>, tensor<9xi32>, tensor<?xi32>
  return
}

// -----

// moe.dispatch: `offsets` must have a static size (the number of experts + 1).
func.func @dispatch_offsets_dynamic(%x: tensor<?x64xf32>, %idx: tensor<?x2xi32>) {
  // expected-error @+1 {{'moe.dispatch' op expected a static `offsets` of size E + 1 >= 2, but got [?]}}
  %rows, %off, %pos = moe.dispatch %x, %idx : tensor<?x64xf32>, tensor<?x2xi32> -> tensor<?x64xf32>, tensor<?xi32>, tensor<?xi32>
  return
}

// -----

// moe.dispatch: `offsets` needs at least one expert.
func.func @dispatch_offsets_too_small(%x: tensor<?x64xf32>, %idx: tensor<?x2xi32>) {
  // expected-error @+1 {{'moe.dispatch' op expected a static `offsets` of size E + 1 >= 2, but got [1]}}
  %rows, %off, %pos = moe.dispatch %x, %idx : tensor<?x64xf32>, tensor<?x2xi32> -> tensor<?x64xf32>, tensor<1xi32>, tensor<?xi32>
  return
}

// -----

// moe.dispatch: `rows` has the hidden size of `x`.
func.func @dispatch_rows_shape(%x: tensor<?x64xf32>, %idx: tensor<?x2xi32>) {
  // expected-error @+1 {{'moe.dispatch' op expected `rows` of shape [?, 64], but got [?, 32]}}
  %rows, %off, %pos = moe.dispatch %x, %idx : tensor<?x64xf32>, tensor<?x2xi32> -> tensor<?x32xf32>, tensor<9xi32>, tensor<?xi32>
  return
}

// -----

// moe.dispatch: `positions` must be 1-d.
func.func @dispatch_positions_rank(%x: tensor<?x64xf32>, %idx: tensor<?x2xi32>) {
  // expected-error @+1 {{'moe.dispatch' op expected `positions` to have rank 1, but got rank 2}}
  %rows, %off, %pos = moe.dispatch %x, %idx : tensor<?x64xf32>, tensor<?x2xi32> -> tensor<?x64xf32>, tensor<9xi32>, tensor<?x2xi32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// moe.grouped_matmul
//===----------------------------------------------------------------------===//

// moe.grouped_matmul: `rows` must be 2-d.
func.func @grouped_matmul_rows_rank(%rows: tensor<64xf32>, %off: tensor<9xi32>, %w: tensor<8x32x64xbf16>) {
  // expected-error @+1 {{'moe.grouped_matmul' op expected `rows` to have rank 2, but got rank 1}}
  %0 = moe.grouped_matmul %rows, %off, %w : tensor<64xf32>, tensor<9xi32>, tensor<8x32x64xbf16> -> tensor<?x32xf32>
  return
}

// -----

// moe.grouped_matmul: `w` must be [experts, N, K].
func.func @grouped_matmul_w_rank(%rows: tensor<?x64xf32>, %off: tensor<9xi32>, %w: tensor<32x64xbf16>) {
  // expected-error @+1 {{'moe.grouped_matmul' op expected `w` to have rank 3, but got rank 2}}
  %0 = moe.grouped_matmul %rows, %off, %w : tensor<?x64xf32>, tensor<9xi32>, tensor<32x64xbf16> -> tensor<?x32xf32>
  return
}

// -----

// moe.grouped_matmul: `rows` and `w` must agree on K.
func.func @grouped_matmul_k_mismatch(%rows: tensor<?x64xf32>, %off: tensor<9xi32>, %w: tensor<8x32x32xbf16>) {
  // expected-error @+1 {{'moe.grouped_matmul' op expected the K dimension of `rows` (64) and `w` (32) to be equal}}
  %0 = moe.grouped_matmul %rows, %off, %w : tensor<?x64xf32>, tensor<9xi32>, tensor<8x32x32xbf16> -> tensor<?x32xf32>
  return
}

// -----

// moe.grouped_matmul: the silu_mul epilogue needs an even N.
func.func @grouped_matmul_silu_mul_odd_n(%rows: tensor<?x64xf32>, %off: tensor<9xi32>, %w: tensor<8x63x64xbf16>) {
  // expected-error @+1 {{'moe.grouped_matmul' op expected an even N for the silu_mul epilogue, but got N = 63}}
  %0 = moe.grouped_matmul %rows, %off, %w {epilogue = #moe.epilogue<silu_mul>} : tensor<?x64xf32>, tensor<9xi32>, tensor<8x63x64xbf16> -> tensor<?x31xf32>
  return
}

// -----

// moe.grouped_matmul: with silu_mul the result has half of N.
func.func @grouped_matmul_result_shape(%rows: tensor<?x64xf32>, %off: tensor<9xi32>, %w: tensor<8x64x64xbf16>) {
  // expected-error @+1 {{'moe.grouped_matmul' op expected `result` of shape [?, 32], but got [?, 64]}}
  %0 = moe.grouped_matmul %rows, %off, %w {epilogue = #moe.epilogue<silu_mul>} : tensor<?x64xf32>, tensor<9xi32>, tensor<8x64x64xbf16> -> tensor<?x64xf32>
  return
}

// -----

// moe.grouped_matmul: `offsets` has one entry per expert plus one.
func.func @grouped_matmul_offsets_shape(%rows: tensor<?x64xf32>, %off: tensor<8xi32>, %w: tensor<8x32x64xbf16>) {
  // expected-error @+1 {{'moe.grouped_matmul' op expected `offsets` of shape [9], but got [8]}}
  %0 = moe.grouped_matmul %rows, %off, %w : tensor<?x64xf32>, tensor<8xi32>, tensor<8x32x64xbf16> -> tensor<?x32xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// moe.combine
//===----------------------------------------------------------------------===//

// moe.combine: `rows` must be 2-d.
func.func @combine_rows_rank(%rows: tensor<64xf32>, %pos: tensor<?xi32>, %w: tensor<?x2xf32>) {
  // expected-error @+1 {{'moe.combine' op expected `rows` to have rank 2, but got rank 1}}
  %0 = moe.combine %rows, %pos, %w : tensor<64xf32>, tensor<?xi32>, tensor<?x2xf32> -> tensor<?x64xf32>
  return
}

// -----

// moe.combine: `positions` must be 1-d.
func.func @combine_positions_rank(%rows: tensor<?x64xf32>, %pos: tensor<?x2xi32>, %w: tensor<?x2xf32>) {
  // expected-error @+1 {{'moe.combine' op expected `positions` to have rank 1, but got rank 2}}
  %0 = moe.combine %rows, %pos, %w : tensor<?x64xf32>, tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x64xf32>
  return
}

// -----

// moe.combine: `weights` must be 2-d.
func.func @combine_weights_rank(%rows: tensor<?x64xf32>, %pos: tensor<?xi32>, %w: tensor<?xf32>) {
  // expected-error @+1 {{'moe.combine' op expected `weights` to have rank 2, but got rank 1}}
  %0 = moe.combine %rows, %pos, %w : tensor<?x64xf32>, tensor<?xi32>, tensor<?xf32> -> tensor<?x64xf32>
  return
}

// -----

// moe.combine: `residual` is [tokens, hidden].
func.func @combine_residual_shape(%rows: tensor<?x64xf32>, %pos: tensor<?xi32>, %w: tensor<?x2xf32>, %res: tensor<?x32xf32>) {
  // expected-error @+1 {{'moe.combine' op expected `residual` of shape [?, 64], but got [?, 32]}}
  %0 = moe.combine %rows, %pos, %w residual %res : tensor<?x64xf32>, tensor<?xi32>, tensor<?x2xf32>, tensor<?x32xf32> -> tensor<?x64xf32>
  return
}

// -----

// moe.combine: the result is [tokens, hidden].
func.func @combine_result_shape(%rows: tensor<?x64xf32>, %pos: tensor<?xi32>, %w: tensor<8x2xf32>) {
  // expected-error @+1 {{'moe.combine' op expected `result` of shape [8, 64], but got [4, 64]}}
  %0 = moe.combine %rows, %pos, %w : tensor<?x64xf32>, tensor<?xi32>, tensor<8x2xf32> -> tensor<4x64xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// moe.moe
//===----------------------------------------------------------------------===//

// moe.moe: `x` must be 2-d.
func.func @moe_x_rank(%x: tensor<64xf32>, %gate: tensor<8x64xbf16>, %w1: tensor<8x32x64xbf16>, %w3: tensor<8x32x64xbf16>, %w2: tensor<8x64x32xbf16>) {
  // expected-error @+1 {{'moe.moe' op expected `x` to have rank 2, but got rank 1}}
  %0 = moe.moe %x router %gate experts %w1, %w3, %w2 {routing = #moe.routing<scoring = softmax, k = 2>} : (tensor<64xf32>, tensor<8x64xbf16>, tensor<8x32x64xbf16>, tensor<8x32x64xbf16>, tensor<8x64x32xbf16>) -> tensor<?x64xf32>
  return
}

// -----

// moe.moe: `gate` must be 2-d.
func.func @moe_gate_rank(%x: tensor<?x64xf32>, %gate: tensor<512xbf16>, %w1: tensor<8x32x64xbf16>, %w3: tensor<8x32x64xbf16>, %w2: tensor<8x64x32xbf16>) {
  // expected-error @+1 {{'moe.moe' op expected `gate` to have rank 2, but got rank 1}}
  %0 = moe.moe %x router %gate experts %w1, %w3, %w2 {routing = #moe.routing<scoring = softmax, k = 2>} : (tensor<?x64xf32>, tensor<512xbf16>, tensor<8x32x64xbf16>, tensor<8x32x64xbf16>, tensor<8x64x32xbf16>) -> tensor<?x64xf32>
  return
}

// -----

// moe.moe: `gate_proj` must be 3-d.
func.func @moe_gate_proj_rank(%x: tensor<?x64xf32>, %gate: tensor<8x64xbf16>, %w1: tensor<32x64xbf16>, %w3: tensor<8x32x64xbf16>, %w2: tensor<8x64x32xbf16>) {
  // expected-error @+1 {{'moe.moe' op expected `gate_proj` to have rank 3, but got rank 2}}
  %0 = moe.moe %x router %gate experts %w1, %w3, %w2 {routing = #moe.routing<scoring = softmax, k = 2>} : (tensor<?x64xf32>, tensor<8x64xbf16>, tensor<32x64xbf16>, tensor<8x32x64xbf16>, tensor<8x64x32xbf16>) -> tensor<?x64xf32>
  return
}

// -----

// moe.moe: `gate` is [experts, hidden].
func.func @moe_gate_shape(%x: tensor<?x64xf32>, %gate: tensor<8x32xbf16>, %w1: tensor<8x32x64xbf16>, %w3: tensor<8x32x64xbf16>, %w2: tensor<8x64x32xbf16>) {
  // expected-error @+1 {{'moe.moe' op expected `gate` of shape [8, 64], but got [8, 32]}}
  %0 = moe.moe %x router %gate experts %w1, %w3, %w2 {routing = #moe.routing<scoring = softmax, k = 2>} : (tensor<?x64xf32>, tensor<8x32xbf16>, tensor<8x32x64xbf16>, tensor<8x32x64xbf16>, tensor<8x64x32xbf16>) -> tensor<?x64xf32>
  return
}

// -----

// moe.moe: `bias` has one entry per expert.
func.func @moe_bias_shape(%x: tensor<?x64xf32>, %gate: tensor<8x64xbf16>, %bias: tensor<4xf32>, %w1: tensor<8x32x64xbf16>, %w3: tensor<8x32x64xbf16>, %w2: tensor<8x64x32xbf16>) {
  // expected-error @+1 {{'moe.moe' op expected `bias` of shape [8], but got [4]}}
  %0 = moe.moe %x router %gate bias %bias experts %w1, %w3, %w2 {routing = #moe.routing<scoring = sigmoid, k = 2>} : (tensor<?x64xf32>, tensor<8x64xbf16>, tensor<4xf32>, tensor<8x32x64xbf16>, tensor<8x32x64xbf16>, tensor<8x64x32xbf16>) -> tensor<?x64xf32>
  return
}

// -----

// moe.moe: `gate_proj` is [experts, intermediate, hidden].
func.func @moe_gate_proj_shape(%x: tensor<?x64xf32>, %gate: tensor<8x64xbf16>, %w1: tensor<4x32x64xbf16>, %w3: tensor<8x32x64xbf16>, %w2: tensor<8x64x32xbf16>) {
  // expected-error @+1 {{'moe.moe' op expected `gate_proj` of shape [8, 32, 64], but got [4, 32, 64]}}
  %0 = moe.moe %x router %gate experts %w1, %w3, %w2 {routing = #moe.routing<scoring = softmax, k = 2>} : (tensor<?x64xf32>, tensor<8x64xbf16>, tensor<4x32x64xbf16>, tensor<8x32x64xbf16>, tensor<8x64x32xbf16>) -> tensor<?x64xf32>
  return
}

// -----

// moe.moe: `up_proj` has the shape of `gate_proj`.
func.func @moe_up_proj_shape(%x: tensor<?x64xf32>, %gate: tensor<8x64xbf16>, %w1: tensor<8x32x64xbf16>, %w3: tensor<8x16x64xbf16>, %w2: tensor<8x64x32xbf16>) {
  // expected-error @+1 {{'moe.moe' op expected `up_proj` of shape [8, 32, 64], but got [8, 16, 64]}}
  %0 = moe.moe %x router %gate experts %w1, %w3, %w2 {routing = #moe.routing<scoring = softmax, k = 2>} : (tensor<?x64xf32>, tensor<8x64xbf16>, tensor<8x32x64xbf16>, tensor<8x16x64xbf16>, tensor<8x64x32xbf16>) -> tensor<?x64xf32>
  return
}

// -----

// moe.moe: `down_proj` is [experts, hidden, intermediate].
func.func @moe_down_proj_shape(%x: tensor<?x64xf32>, %gate: tensor<8x64xbf16>, %w1: tensor<8x32x64xbf16>, %w3: tensor<8x32x64xbf16>, %w2: tensor<8x32x64xbf16>) {
  // expected-error @+1 {{'moe.moe' op expected `down_proj` of shape [8, 64, 32], but got [8, 32, 64]}}
  %0 = moe.moe %x router %gate experts %w1, %w3, %w2 {routing = #moe.routing<scoring = softmax, k = 2>} : (tensor<?x64xf32>, tensor<8x64xbf16>, tensor<8x32x64xbf16>, tensor<8x32x64xbf16>, tensor<8x32x64xbf16>) -> tensor<?x64xf32>
  return
}

// -----

// moe.moe: a shared expert needs all three projections (the custom form always has three; the generic form can give one).
func.func @moe_shared_incomplete(%x: tensor<?x64xf32>, %gate: tensor<8x64xbf16>, %w1: tensor<8x32x64xbf16>, %w3: tensor<8x32x64xbf16>, %w2: tensor<8x64x32xbf16>, %s1: tensor<48x64xbf16>) {
  // expected-error @+1 {{'moe.moe' op expected all three shared expert projections or none, but got 1}}
  %0 = "moe.moe"(%x, %gate, %w1, %w3, %w2, %s1) <{operandSegmentSizes = array<i32: 1, 1, 0, 1, 1, 1, 1, 0, 0, 0>, routing = #moe.routing<scoring = softmax, k = 2>}> : (tensor<?x64xf32>, tensor<8x64xbf16>, tensor<8x32x64xbf16>, tensor<8x32x64xbf16>, tensor<8x64x32xbf16>, tensor<48x64xbf16>) -> tensor<?x64xf32>
  return
}

// -----

// moe.moe: `shared_gate_proj` must be 2-d.
func.func @moe_shared_gate_proj_rank(%x: tensor<?x64xf32>, %gate: tensor<8x64xbf16>, %w1: tensor<8x32x64xbf16>, %w3: tensor<8x32x64xbf16>, %w2: tensor<8x64x32xbf16>, %s1: tensor<1x48x64xbf16>, %s3: tensor<48x64xbf16>, %s2: tensor<64x48xbf16>) {
  // expected-error @+1 {{'moe.moe' op expected `shared_gate_proj` to have rank 2, but got rank 3}}
  %0 = moe.moe %x router %gate experts %w1, %w3, %w2 shared %s1, %s3, %s2 {routing = #moe.routing<scoring = softmax, k = 2>} : (tensor<?x64xf32>, tensor<8x64xbf16>, tensor<8x32x64xbf16>, tensor<8x32x64xbf16>, tensor<8x64x32xbf16>, tensor<1x48x64xbf16>, tensor<48x64xbf16>, tensor<64x48xbf16>) -> tensor<?x64xf32>
  return
}

// -----

// moe.moe: `shared_gate_proj` is [shared intermediate, hidden].
func.func @moe_shared_gate_proj_shape(%x: tensor<?x64xf32>, %gate: tensor<8x64xbf16>, %w1: tensor<8x32x64xbf16>, %w3: tensor<8x32x64xbf16>, %w2: tensor<8x64x32xbf16>, %s1: tensor<48x32xbf16>, %s3: tensor<48x64xbf16>, %s2: tensor<64x48xbf16>) {
  // expected-error @+1 {{'moe.moe' op expected `shared_gate_proj` of shape [48, 64], but got [48, 32]}}
  %0 = moe.moe %x router %gate experts %w1, %w3, %w2 shared %s1, %s3, %s2 {routing = #moe.routing<scoring = softmax, k = 2>} : (tensor<?x64xf32>, tensor<8x64xbf16>, tensor<8x32x64xbf16>, tensor<8x32x64xbf16>, tensor<8x64x32xbf16>, tensor<48x32xbf16>, tensor<48x64xbf16>, tensor<64x48xbf16>) -> tensor<?x64xf32>
  return
}

// -----

// moe.moe: `shared_up_proj` has the shape of `shared_gate_proj`.
func.func @moe_shared_up_proj_shape(%x: tensor<?x64xf32>, %gate: tensor<8x64xbf16>, %w1: tensor<8x32x64xbf16>, %w3: tensor<8x32x64xbf16>, %w2: tensor<8x64x32xbf16>, %s1: tensor<48x64xbf16>, %s3: tensor<32x64xbf16>, %s2: tensor<64x48xbf16>) {
  // expected-error @+1 {{'moe.moe' op expected `shared_up_proj` of shape [48, 64], but got [32, 64]}}
  %0 = moe.moe %x router %gate experts %w1, %w3, %w2 shared %s1, %s3, %s2 {routing = #moe.routing<scoring = softmax, k = 2>} : (tensor<?x64xf32>, tensor<8x64xbf16>, tensor<8x32x64xbf16>, tensor<8x32x64xbf16>, tensor<8x64x32xbf16>, tensor<48x64xbf16>, tensor<32x64xbf16>, tensor<64x48xbf16>) -> tensor<?x64xf32>
  return
}

// -----

// moe.moe: `shared_down_proj` is [hidden, shared intermediate].
func.func @moe_shared_down_proj_shape(%x: tensor<?x64xf32>, %gate: tensor<8x64xbf16>, %w1: tensor<8x32x64xbf16>, %w3: tensor<8x32x64xbf16>, %w2: tensor<8x64x32xbf16>, %s1: tensor<48x64xbf16>, %s3: tensor<48x64xbf16>, %s2: tensor<48x64xbf16>) {
  // expected-error @+1 {{'moe.moe' op expected `shared_down_proj` of shape [64, 48], but got [48, 64]}}
  %0 = moe.moe %x router %gate experts %w1, %w3, %w2 shared %s1, %s3, %s2 {routing = #moe.routing<scoring = softmax, k = 2>} : (tensor<?x64xf32>, tensor<8x64xbf16>, tensor<8x32x64xbf16>, tensor<8x32x64xbf16>, tensor<8x64x32xbf16>, tensor<48x64xbf16>, tensor<48x64xbf16>, tensor<48x64xbf16>) -> tensor<?x64xf32>
  return
}

// -----

// moe.moe: `shared_expert_gate` without a shared expert is rejected.
func.func @moe_shared_gate_without_shared(%x: tensor<?x64xf32>, %gate: tensor<8x64xbf16>, %w1: tensor<8x32x64xbf16>, %w3: tensor<8x32x64xbf16>, %w2: tensor<8x64x32xbf16>, %sg: tensor<1x64xbf16>) {
  // expected-error @+1 {{'moe.moe' op expected `shared_expert_gate` only with shared experts}}
  %0 = moe.moe %x router %gate experts %w1, %w3, %w2 shared_gate %sg {routing = #moe.routing<scoring = softmax, k = 2>} : (tensor<?x64xf32>, tensor<8x64xbf16>, tensor<8x32x64xbf16>, tensor<8x32x64xbf16>, tensor<8x64x32xbf16>, tensor<1x64xbf16>) -> tensor<?x64xf32>
  return
}

// -----

// moe.moe: `shared_expert_gate` is [1, hidden].
func.func @moe_shared_expert_gate_shape(%x: tensor<?x64xf32>, %gate: tensor<8x64xbf16>, %w1: tensor<8x32x64xbf16>, %w3: tensor<8x32x64xbf16>, %w2: tensor<8x64x32xbf16>, %s1: tensor<48x64xbf16>, %s3: tensor<48x64xbf16>, %s2: tensor<64x48xbf16>, %sg: tensor<2x64xbf16>) {
  // expected-error @+1 {{'moe.moe' op expected `shared_expert_gate` of shape [1, 64], but got [2, 64]}}
  %0 = moe.moe %x router %gate experts %w1, %w3, %w2 shared %s1, %s3, %s2 shared_gate %sg {routing = #moe.routing<scoring = softmax, k = 2>} : (tensor<?x64xf32>, tensor<8x64xbf16>, tensor<8x32x64xbf16>, tensor<8x32x64xbf16>, tensor<8x64x32xbf16>, tensor<48x64xbf16>, tensor<48x64xbf16>, tensor<64x48xbf16>, tensor<2x64xbf16>) -> tensor<?x64xf32>
  return
}

// -----

// moe.moe: the routing is checked against the number of experts (the other routing branches are covered on moe.router).
func.func @moe_routing_k(%x: tensor<?x64xf32>, %gate: tensor<8x64xbf16>, %w1: tensor<8x32x64xbf16>, %w3: tensor<8x32x64xbf16>, %w2: tensor<8x64x32xbf16>) {
  // expected-error @+1 {{'moe.moe' op expected `k` <= number of experts (8), but got k = 16}}
  %0 = moe.moe %x router %gate experts %w1, %w3, %w2 {routing = #moe.routing<scoring = softmax, k = 16>} : (tensor<?x64xf32>, tensor<8x64xbf16>, tensor<8x32x64xbf16>, tensor<8x32x64xbf16>, tensor<8x64x32xbf16>) -> tensor<?x64xf32>
  return
}

// -----

// moe.moe: the result has the shape of `x`.
func.func @moe_result_shape(%x: tensor<?x64xf32>, %gate: tensor<8x64xbf16>, %w1: tensor<8x32x64xbf16>, %w3: tensor<8x32x64xbf16>, %w2: tensor<8x64x32xbf16>) {
  // expected-error @+1 {{'moe.moe' op expected `result` of shape [?, 64], but got [?, 32]}}
  %0 = moe.moe %x router %gate experts %w1, %w3, %w2 {routing = #moe.routing<scoring = softmax, k = 2>} : (tensor<?x64xf32>, tensor<8x64xbf16>, tensor<8x32x64xbf16>, tensor<8x32x64xbf16>, tensor<8x64x32xbf16>) -> tensor<?x32xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// moe.quantize
//===----------------------------------------------------------------------===//

// moe.quantize: the result has the shape of `x`.
func.func @quantize_result_shape(%x: tensor<?x256xf32>) {
  // expected-error @+1 {{'moe.quantize' op expected `result` of shape [?, 256], but got [?, 128]}}
  %q, %s = moe.quantize %x {scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>} : tensor<?x256xf32> -> tensor<?x128xf8E4M3FN>, tensor<?x2xf32>
  return
}

// -----

// moe.quantize: the result has the FP8 format of `scheme`.
func.func @quantize_result_format(%x: tensor<?x256xf32>) {
  // expected-error @+1 {{'moe.quantize' op expected `result` element type 'f8E4M3FN', but got 'f8E5M2'}}
  %q, %s = moe.quantize %x {scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>} : tensor<?x256xf32> -> tensor<?x256xf8E5M2>, tensor<?x2xf32>
  return
}

// -----

// moe.quantize: `scale` has one entry per block.
func.func @quantize_scale_shape(%x: tensor<?x256xf32>) {
  // expected-error @+1 {{'moe.quantize' op expected `scale` of shape [?, 2], but got [?, 1]}}
  %q, %s = moe.quantize %x {scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>} : tensor<?x256xf32> -> tensor<?x256xf8E4M3FN>, tensor<?x1xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// moe.dequantize
//===----------------------------------------------------------------------===//

// moe.dequantize: `x` has the FP8 format of `scheme`.
func.func @dequantize_x_format(%x: tensor<512x256xf8E5M2>, %s: tensor<4x2xf32>) {
  // expected-error @+1 {{'moe.dequantize' op expected `x` element type 'f8E4M3FN', but got 'f8E5M2'}}
  %0 = moe.dequantize %x, %s {scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<512x256xf8E5M2>, tensor<4x2xf32> -> tensor<512x256xf32>
  return
}

// -----

// moe.dequantize: `scale` has one entry per block.
func.func @dequantize_scale_shape(%x: tensor<512x256xf8E4M3FN>, %s: tensor<2x4xf32>) {
  // expected-error @+1 {{'moe.dequantize' op expected `scale` of shape [4, 2], but got [2, 4]}}
  %0 = moe.dequantize %x, %s {scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<512x256xf8E4M3FN>, tensor<2x4xf32> -> tensor<512x256xf32>
  return
}

// -----

// moe.dequantize: the result has the shape of `x`.
func.func @dequantize_result_shape(%x: tensor<512x256xf8E4M3FN>, %s: tensor<4x2xf32>) {
  // expected-error @+1 {{'moe.dequantize' op expected `result` of shape [512, 256], but got [256, 512]}}
  %0 = moe.dequantize %x, %s {scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<512x256xf8E4M3FN>, tensor<4x2xf32> -> tensor<256x512xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// moe.fp8_matmul
//===----------------------------------------------------------------------===//

// moe.fp8_matmul: activations are scaled per row, so `act_scheme` blocks have one row.
func.func @fp8_matmul_act_block_rows(%x: tensor<?x256xf8E4M3FN>, %xs: tensor<?x2xf32>, %w: tensor<512x256xf8E4M3FN>, %ws: tensor<4x2xf32>) {
  // expected-error @+1 {{'moe.fp8_matmul' op expected `act_scheme` blocks of one row, but got [128, 128]}}
  %0 = moe.fp8_matmul %x, %xs, %w, %ws {act_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>, weight_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<?x256xf8E4M3FN>, tensor<?x2xf32>, tensor<512x256xf8E4M3FN>, tensor<4x2xf32> -> tensor<?x512xf32>
  return
}

// -----

// moe.fp8_matmul: both schemes block K the same way.
func.func @fp8_matmul_k_block(%x: tensor<?x256xf8E4M3FN>, %xs: tensor<?x4xf32>, %w: tensor<512x256xf8E4M3FN>, %ws: tensor<4x2xf32>) {
  // expected-error @+1 {{'moe.fp8_matmul' op expected the K block of `act_scheme` (64) and `weight_scheme` (128) to be equal}}
  %0 = moe.fp8_matmul %x, %xs, %w, %ws {act_scheme = #moe.block_scale<format = e4m3fn, block = [1, 64]>, weight_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<?x256xf8E4M3FN>, tensor<?x4xf32>, tensor<512x256xf8E4M3FN>, tensor<4x2xf32> -> tensor<?x512xf32>
  return
}

// -----

// moe.fp8_matmul: `x` must be 2-d.
func.func @fp8_matmul_x_rank(%x: tensor<256xf8E4M3FN>, %xs: tensor<2xf32>, %w: tensor<512x256xf8E4M3FN>, %ws: tensor<4x2xf32>) {
  // expected-error @+1 {{'moe.fp8_matmul' op expected `x` to have rank 2, but got rank 1}}
  %0 = moe.fp8_matmul %x, %xs, %w, %ws {act_scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>, weight_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<256xf8E4M3FN>, tensor<2xf32>, tensor<512x256xf8E4M3FN>, tensor<4x2xf32> -> tensor<?x512xf32>
  return
}

// -----

// moe.fp8_matmul: `w` must be 2-d.
func.func @fp8_matmul_w_rank(%x: tensor<?x256xf8E4M3FN>, %xs: tensor<?x2xf32>, %w: tensor<2x512x256xf8E4M3FN>, %ws: tensor<2x4x2xf32>) {
  // expected-error @+1 {{'moe.fp8_matmul' op expected `w` to have rank 2, but got rank 3}}
  %0 = moe.fp8_matmul %x, %xs, %w, %ws {act_scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>, weight_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<?x256xf8E4M3FN>, tensor<?x2xf32>, tensor<2x512x256xf8E4M3FN>, tensor<2x4x2xf32> -> tensor<?x512xf32>
  return
}

// -----

// moe.fp8_matmul: `x` and `w` must agree on K.
func.func @fp8_matmul_k_mismatch(%x: tensor<?x256xf8E4M3FN>, %xs: tensor<?x2xf32>, %w: tensor<512x128xf8E4M3FN>, %ws: tensor<4x1xf32>) {
  // expected-error @+1 {{'moe.fp8_matmul' op expected the K dimension of `x` (256) and `w` (128) to be equal}}
  %0 = moe.fp8_matmul %x, %xs, %w, %ws {act_scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>, weight_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<?x256xf8E4M3FN>, tensor<?x2xf32>, tensor<512x128xf8E4M3FN>, tensor<4x1xf32> -> tensor<?x512xf32>
  return
}

// -----

// moe.fp8_matmul: the silu_mul epilogue needs an even N.
func.func @fp8_matmul_silu_mul_odd_n(%x: tensor<?x256xf8E4M3FN>, %xs: tensor<?x2xf32>, %w: tensor<511x256xf8E4M3FN>, %ws: tensor<4x2xf32>) {
  // expected-error @+1 {{'moe.fp8_matmul' op expected an even N for the silu_mul epilogue, but got N = 511}}
  %0 = moe.fp8_matmul %x, %xs, %w, %ws {act_scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>, weight_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>, epilogue = #moe.epilogue<silu_mul>} : tensor<?x256xf8E4M3FN>, tensor<?x2xf32>, tensor<511x256xf8E4M3FN>, tensor<4x2xf32> -> tensor<?x255xf32>
  return
}

// -----

// moe.fp8_matmul: the result is [tokens, N].
func.func @fp8_matmul_result_shape(%x: tensor<?x256xf8E4M3FN>, %xs: tensor<?x2xf32>, %w: tensor<512x256xf8E4M3FN>, %ws: tensor<4x2xf32>) {
  // expected-error @+1 {{'moe.fp8_matmul' op expected `result` of shape [?, 512], but got [?, 256]}}
  %0 = moe.fp8_matmul %x, %xs, %w, %ws {act_scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>, weight_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<?x256xf8E4M3FN>, tensor<?x2xf32>, tensor<512x256xf8E4M3FN>, tensor<4x2xf32> -> tensor<?x256xf32>
  return
}

// -----

// moe.fp8_matmul: `x` has the FP8 format of `act_scheme`.
func.func @fp8_matmul_x_format(%x: tensor<?x256xf8E5M2>, %xs: tensor<?x2xf32>, %w: tensor<512x256xf8E4M3FN>, %ws: tensor<4x2xf32>) {
  // expected-error @+1 {{'moe.fp8_matmul' op expected `x` element type 'f8E4M3FN', but got 'f8E5M2'}}
  %0 = moe.fp8_matmul %x, %xs, %w, %ws {act_scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>, weight_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<?x256xf8E5M2>, tensor<?x2xf32>, tensor<512x256xf8E4M3FN>, tensor<4x2xf32> -> tensor<?x512xf32>
  return
}

// -----

// moe.fp8_matmul: `x_scale` has one entry per block of `x`.
func.func @fp8_matmul_x_scale_shape(%x: tensor<?x256xf8E4M3FN>, %xs: tensor<?x1xf32>, %w: tensor<512x256xf8E4M3FN>, %ws: tensor<4x2xf32>) {
  // expected-error @+1 {{'moe.fp8_matmul' op expected `x_scale` of shape [?, 2], but got [?, 1]}}
  %0 = moe.fp8_matmul %x, %xs, %w, %ws {act_scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>, weight_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<?x256xf8E4M3FN>, tensor<?x1xf32>, tensor<512x256xf8E4M3FN>, tensor<4x2xf32> -> tensor<?x512xf32>
  return
}

// -----

// moe.fp8_matmul: `w` has the FP8 format of `weight_scheme`.
func.func @fp8_matmul_w_format(%x: tensor<?x256xf8E4M3FN>, %xs: tensor<?x2xf32>, %w: tensor<512x256xf8E5M2>, %ws: tensor<4x2xf32>) {
  // expected-error @+1 {{'moe.fp8_matmul' op expected `w` element type 'f8E4M3FN', but got 'f8E5M2'}}
  %0 = moe.fp8_matmul %x, %xs, %w, %ws {act_scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>, weight_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<?x256xf8E4M3FN>, tensor<?x2xf32>, tensor<512x256xf8E5M2>, tensor<4x2xf32> -> tensor<?x512xf32>
  return
}

// -----

// moe.fp8_matmul: `w_scale` has one entry per block of `w`.
func.func @fp8_matmul_w_scale_shape(%x: tensor<?x256xf8E4M3FN>, %xs: tensor<?x2xf32>, %w: tensor<512x256xf8E4M3FN>, %ws: tensor<2x4xf32>) {
  // expected-error @+1 {{'moe.fp8_matmul' op expected `w_scale` of shape [4, 2], but got [2, 4]}}
  %0 = moe.fp8_matmul %x, %xs, %w, %ws {act_scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>, weight_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<?x256xf8E4M3FN>, tensor<?x2xf32>, tensor<512x256xf8E4M3FN>, tensor<2x4xf32> -> tensor<?x512xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// moe.fp8_grouped_matmul
//===----------------------------------------------------------------------===//

// moe.fp8_grouped_matmul: `act_scheme` blocks have one row.
func.func @fp8_grouped_matmul_act_block_rows(%r: tensor<?x256xf8E4M3FN>, %rs: tensor<?x2xf32>, %off: tensor<9xi32>, %w: tensor<8x256x256xf8E4M3FN>, %ws: tensor<8x2x2xf32>) {
  // expected-error @+1 {{'moe.fp8_grouped_matmul' op expected `act_scheme` blocks of one row, but got [2, 128]}}
  %0 = moe.fp8_grouped_matmul %r, %rs, %off, %w, %ws {act_scheme = #moe.block_scale<format = e4m3fn, block = [2, 128]>, weight_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<?x256xf8E4M3FN>, tensor<?x2xf32>, tensor<9xi32>, tensor<8x256x256xf8E4M3FN>, tensor<8x2x2xf32> -> tensor<?x256xf32>
  return
}

// -----

// moe.fp8_grouped_matmul: both schemes block K the same way.
func.func @fp8_grouped_matmul_k_block(%r: tensor<?x256xf8E4M3FN>, %rs: tensor<?x2xf32>, %off: tensor<9xi32>, %w: tensor<8x256x256xf8E4M3FN>, %ws: tensor<8x4x4xf32>) {
  // expected-error @+1 {{'moe.fp8_grouped_matmul' op expected the K block of `act_scheme` (128) and `weight_scheme` (64) to be equal}}
  %0 = moe.fp8_grouped_matmul %r, %rs, %off, %w, %ws {act_scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>, weight_scheme = #moe.block_scale<format = e4m3fn, block = [64, 64]>} : tensor<?x256xf8E4M3FN>, tensor<?x2xf32>, tensor<9xi32>, tensor<8x256x256xf8E4M3FN>, tensor<8x4x4xf32> -> tensor<?x256xf32>
  return
}

// -----

// moe.fp8_grouped_matmul: `rows` must be 2-d.
func.func @fp8_grouped_matmul_rows_rank(%r: tensor<256xf8E4M3FN>, %rs: tensor<2xf32>, %off: tensor<9xi32>, %w: tensor<8x256x256xf8E4M3FN>, %ws: tensor<8x2x2xf32>) {
  // expected-error @+1 {{'moe.fp8_grouped_matmul' op expected `rows` to have rank 2, but got rank 1}}
  %0 = moe.fp8_grouped_matmul %r, %rs, %off, %w, %ws {act_scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>, weight_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<256xf8E4M3FN>, tensor<2xf32>, tensor<9xi32>, tensor<8x256x256xf8E4M3FN>, tensor<8x2x2xf32> -> tensor<?x256xf32>
  return
}

// -----

// moe.fp8_grouped_matmul: `w` must be [experts, N, K].
func.func @fp8_grouped_matmul_w_rank(%r: tensor<?x256xf8E4M3FN>, %rs: tensor<?x2xf32>, %off: tensor<9xi32>, %w: tensor<256x256xf8E4M3FN>, %ws: tensor<2x2xf32>) {
  // expected-error @+1 {{'moe.fp8_grouped_matmul' op expected `w` to have rank 3, but got rank 2}}
  %0 = moe.fp8_grouped_matmul %r, %rs, %off, %w, %ws {act_scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>, weight_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<?x256xf8E4M3FN>, tensor<?x2xf32>, tensor<9xi32>, tensor<256x256xf8E4M3FN>, tensor<2x2xf32> -> tensor<?x256xf32>
  return
}

// -----

// moe.fp8_grouped_matmul: `rows` and `w` must agree on K.
func.func @fp8_grouped_matmul_k_mismatch(%r: tensor<?x256xf8E4M3FN>, %rs: tensor<?x2xf32>, %off: tensor<9xi32>, %w: tensor<8x256x128xf8E4M3FN>, %ws: tensor<8x2x1xf32>) {
  // expected-error @+1 {{'moe.fp8_grouped_matmul' op expected the K dimension of `rows` (256) and `w` (128) to be equal}}
  %0 = moe.fp8_grouped_matmul %r, %rs, %off, %w, %ws {act_scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>, weight_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<?x256xf8E4M3FN>, tensor<?x2xf32>, tensor<9xi32>, tensor<8x256x128xf8E4M3FN>, tensor<8x2x1xf32> -> tensor<?x256xf32>
  return
}

// -----

// moe.fp8_grouped_matmul: the silu_mul epilogue needs an even N.
func.func @fp8_grouped_matmul_silu_mul_odd_n(%r: tensor<?x256xf8E4M3FN>, %rs: tensor<?x2xf32>, %off: tensor<9xi32>, %w: tensor<8x255x256xf8E4M3FN>, %ws: tensor<8x2x2xf32>) {
  // expected-error @+1 {{'moe.fp8_grouped_matmul' op expected an even N for the silu_mul epilogue, but got N = 255}}
  %0 = moe.fp8_grouped_matmul %r, %rs, %off, %w, %ws {act_scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>, weight_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>, epilogue = #moe.epilogue<silu_mul>} : tensor<?x256xf8E4M3FN>, tensor<?x2xf32>, tensor<9xi32>, tensor<8x255x256xf8E4M3FN>, tensor<8x2x2xf32> -> tensor<?x127xf32>
  return
}

// -----

// moe.fp8_grouped_matmul: with silu_mul the result has half of N.
func.func @fp8_grouped_matmul_result_shape(%r: tensor<?x256xf8E4M3FN>, %rs: tensor<?x2xf32>, %off: tensor<9xi32>, %w: tensor<8x256x256xf8E4M3FN>, %ws: tensor<8x2x2xf32>) {
  // expected-error @+1 {{'moe.fp8_grouped_matmul' op expected `result` of shape [?, 128], but got [?, 256]}}
  %0 = moe.fp8_grouped_matmul %r, %rs, %off, %w, %ws {act_scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>, weight_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>, epilogue = #moe.epilogue<silu_mul>} : tensor<?x256xf8E4M3FN>, tensor<?x2xf32>, tensor<9xi32>, tensor<8x256x256xf8E4M3FN>, tensor<8x2x2xf32> -> tensor<?x256xf32>
  return
}

// -----

// moe.fp8_grouped_matmul: `offsets` has one entry per expert plus one.
func.func @fp8_grouped_matmul_offsets_shape(%r: tensor<?x256xf8E4M3FN>, %rs: tensor<?x2xf32>, %off: tensor<8xi32>, %w: tensor<8x256x256xf8E4M3FN>, %ws: tensor<8x2x2xf32>) {
  // expected-error @+1 {{'moe.fp8_grouped_matmul' op expected `offsets` of shape [9], but got [8]}}
  %0 = moe.fp8_grouped_matmul %r, %rs, %off, %w, %ws {act_scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>, weight_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<?x256xf8E4M3FN>, tensor<?x2xf32>, tensor<8xi32>, tensor<8x256x256xf8E4M3FN>, tensor<8x2x2xf32> -> tensor<?x256xf32>
  return
}

// -----

// moe.fp8_grouped_matmul: `rows` has the FP8 format of `act_scheme`.
func.func @fp8_grouped_matmul_rows_format(%r: tensor<?x256xf8E5M2>, %rs: tensor<?x2xf32>, %off: tensor<9xi32>, %w: tensor<8x256x256xf8E4M3FN>, %ws: tensor<8x2x2xf32>) {
  // expected-error @+1 {{'moe.fp8_grouped_matmul' op expected `rows` element type 'f8E4M3FN', but got 'f8E5M2'}}
  %0 = moe.fp8_grouped_matmul %r, %rs, %off, %w, %ws {act_scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>, weight_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<?x256xf8E5M2>, tensor<?x2xf32>, tensor<9xi32>, tensor<8x256x256xf8E4M3FN>, tensor<8x2x2xf32> -> tensor<?x256xf32>
  return
}

// -----

// moe.fp8_grouped_matmul: `rows_scale` has one entry per block of `rows`.
func.func @fp8_grouped_matmul_rows_scale_shape(%r: tensor<?x256xf8E4M3FN>, %rs: tensor<?x1xf32>, %off: tensor<9xi32>, %w: tensor<8x256x256xf8E4M3FN>, %ws: tensor<8x2x2xf32>) {
  // expected-error @+1 {{'moe.fp8_grouped_matmul' op expected `rows_scale` of shape [?, 2], but got [?, 1]}}
  %0 = moe.fp8_grouped_matmul %r, %rs, %off, %w, %ws {act_scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>, weight_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<?x256xf8E4M3FN>, tensor<?x1xf32>, tensor<9xi32>, tensor<8x256x256xf8E4M3FN>, tensor<8x2x2xf32> -> tensor<?x256xf32>
  return
}

// -----

// moe.fp8_grouped_matmul: `w` has the FP8 format of `weight_scheme`.
func.func @fp8_grouped_matmul_w_format(%r: tensor<?x256xf8E4M3FN>, %rs: tensor<?x2xf32>, %off: tensor<9xi32>, %w: tensor<8x256x256xf8E5M2>, %ws: tensor<8x2x2xf32>) {
  // expected-error @+1 {{'moe.fp8_grouped_matmul' op expected `w` element type 'f8E4M3FN', but got 'f8E5M2'}}
  %0 = moe.fp8_grouped_matmul %r, %rs, %off, %w, %ws {act_scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>, weight_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<?x256xf8E4M3FN>, tensor<?x2xf32>, tensor<9xi32>, tensor<8x256x256xf8E5M2>, tensor<8x2x2xf32> -> tensor<?x256xf32>
  return
}

// -----

// moe.fp8_grouped_matmul: `w_scale` has one entry per block of each expert's `w`.
func.func @fp8_grouped_matmul_w_scale_shape(%r: tensor<?x256xf8E4M3FN>, %rs: tensor<?x2xf32>, %off: tensor<9xi32>, %w: tensor<8x256x256xf8E4M3FN>, %ws: tensor<2x2xf32>) {
  // expected-error @+1 {{'moe.fp8_grouped_matmul' op expected `w_scale` of shape [8, 2, 2], but got [2, 2]}}
  %0 = moe.fp8_grouped_matmul %r, %rs, %off, %w, %ws {act_scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>, weight_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<?x256xf8E4M3FN>, tensor<?x2xf32>, tensor<9xi32>, tensor<8x256x256xf8E4M3FN>, tensor<2x2xf32> -> tensor<?x256xf32>
  return
}

// -----

// Dialect-wide: only the leading (token) dimension of a tensor may be dynamic.
func.func @dynamic_feature_dim(%x: tensor<?x?xf32>, %w: tensor<32x64xbf16>) {
  // expected-error @+1 {{'moe.matmul' op expected only the leading (token) dimension to be dynamic, but operand #0 has type 'tensor<?x?xf32>'}}
  %0 = moe.matmul %x, %w : tensor<?x?xf32>, tensor<32x64xbf16> -> tensor<?x32xf32>
  return
}

// -----

// Dialect-wide: results are held to the same rule.
func.func @dynamic_result_dim(%x: tensor<?x64xf32>, %w: tensor<32x64xbf16>) {
  // expected-error @+1 {{'moe.matmul' op expected only the leading (token) dimension to be dynamic, but result #0 has type 'tensor<?x?xf32>'}}
  %0 = moe.matmul %x, %w : tensor<?x64xf32>, tensor<32x64xbf16> -> tensor<?x?xf32>
  return
}

// -----

// moe.weight: checkpoint tensors have static shapes.
func.func @weight_dynamic_stored() {
  // expected-error @+1 {{'moe.weight' op expected a static `stored_type`, but got 'tensor<?xbf16>'}}
  %0 = moe.weight [#moe.tensor_ref<"m.safetensors", "w">] stored tensor<?xbf16> : tensor<8xbf16>
  return
}

// -----

// moe.attention: zero key/value heads are rejected (not divided by).
func.func @attention_zero_kv_heads(%q: tensor<?x4x16xf32>, %k: tensor<?x0x16xf32>, %v: tensor<?x0x16xf32>) {
  // expected-error @+1 {{'moe.attention' op expected at least one key/value head, but got 0}}
  %0 = moe.attention %q, %k, %v {scale = 0.25 : f64, causal} : tensor<?x4x16xf32>, tensor<?x0x16xf32>, tensor<?x0x16xf32> -> tensor<?x4x16xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// moe.paged_mla_attention
//===----------------------------------------------------------------------===//

// moe.paged_mla_attention: a `q_nope` of rank 2 is rejected.
func.func @paged_mla_rank_q_nope(%qn: tensor<?x128xf32>, %qr: tensor<?x4x16xf32>, %c: tensor<?x32xf32>, %kr: tensor<?x1x16xf32>, %w: tensor<224x32xbf16>, %pos: tensor<?xi32>, %slots: tensor<?xi32>, %table: tensor<8x64xi32>, %cache: tensor<?x16x1x48xf32> {moe.kv_cache}) -> tensor<?x4x24xf32> {
  // expected-error @+1 {{'moe.paged_mla_attention' op expected `q_nope` to have rank 3, but got rank 2}}
  %o = moe.paged_mla_attention %qn, %qr, %c, %kr, %w, %pos, %slots, %table, %cache {scale = 0.25 : f64, layer = 0 : i64} : tensor<?x128xf32>, tensor<?x4x16xf32>, tensor<?x32xf32>, tensor<?x1x16xf32>, tensor<224x32xbf16>, tensor<?xi32>, tensor<?xi32>, tensor<8x64xi32>, tensor<?x16x1x48xf32> -> tensor<?x4x24xf32>
  return %o : tensor<?x4x24xf32>
}

// -----

// moe.paged_mla_attention: a `k_rope` without its head dimension is rejected.
func.func @paged_mla_rank_k_rope(%qn: tensor<?x4x32xf32>, %qr: tensor<?x4x16xf32>, %c: tensor<?x32xf32>, %kr: tensor<?x16xf32>, %w: tensor<224x32xbf16>, %pos: tensor<?xi32>, %slots: tensor<?xi32>, %table: tensor<8x64xi32>, %cache: tensor<?x16x1x48xf32> {moe.kv_cache}) -> tensor<?x4x24xf32> {
  // expected-error @+1 {{'moe.paged_mla_attention' op expected `k_rope` to have rank 3, but got rank 2}}
  %o = moe.paged_mla_attention %qn, %qr, %c, %kr, %w, %pos, %slots, %table, %cache {scale = 0.25 : f64, layer = 0 : i64} : tensor<?x4x32xf32>, tensor<?x4x16xf32>, tensor<?x32xf32>, tensor<?x16xf32>, tensor<224x32xbf16>, tensor<?xi32>, tensor<?xi32>, tensor<8x64xi32>, tensor<?x16x1x48xf32> -> tensor<?x4x24xf32>
  return %o : tensor<?x4x24xf32>
}

// -----

// moe.paged_mla_attention: an empty rotary part is rejected.
func.func @paged_mla_empty_rope(%qn: tensor<?x4x32xf32>, %qr: tensor<?x4x0xf32>, %c: tensor<?x32xf32>, %kr: tensor<?x1x0xf32>, %w: tensor<224x32xbf16>, %pos: tensor<?xi32>, %slots: tensor<?xi32>, %table: tensor<8x64xi32>, %cache: tensor<?x16x1x32xf32> {moe.kv_cache}) -> tensor<?x4x24xf32> {
  // expected-error @+1 {{'moe.paged_mla_attention' op expected static heads, head dims and latent rank >= 1, but got heads 4, nope 32, rope 0, rank 32 and value dim 24}}
  %o = moe.paged_mla_attention %qn, %qr, %c, %kr, %w, %pos, %slots, %table, %cache {scale = 0.25 : f64, layer = 0 : i64} : tensor<?x4x32xf32>, tensor<?x4x0xf32>, tensor<?x32xf32>, tensor<?x1x0xf32>, tensor<224x32xbf16>, tensor<?xi32>, tensor<?xi32>, tensor<8x64xi32>, tensor<?x16x1x32xf32> -> tensor<?x4x24xf32>
  return %o : tensor<?x4x24xf32>
}

// -----

// moe.paged_mla_attention: `q_rope` must have the heads of `q_nope`.
func.func @paged_mla_q_rope_heads(%qn: tensor<?x4x32xf32>, %qr: tensor<?x2x16xf32>, %c: tensor<?x32xf32>, %kr: tensor<?x1x16xf32>, %w: tensor<224x32xbf16>, %pos: tensor<?xi32>, %slots: tensor<?xi32>, %table: tensor<8x64xi32>, %cache: tensor<?x16x1x48xf32> {moe.kv_cache}) -> tensor<?x4x24xf32> {
  // expected-error @+1 {{'moe.paged_mla_attention' op expected `q_rope` of shape [?, 4, 16], but got [?, 2, 16]}}
  %o = moe.paged_mla_attention %qn, %qr, %c, %kr, %w, %pos, %slots, %table, %cache {scale = 0.25 : f64, layer = 0 : i64} : tensor<?x4x32xf32>, tensor<?x2x16xf32>, tensor<?x32xf32>, tensor<?x1x16xf32>, tensor<224x32xbf16>, tensor<?xi32>, tensor<?xi32>, tensor<8x64xi32>, tensor<?x16x1x48xf32> -> tensor<?x4x24xf32>
  return %o : tensor<?x4x24xf32>
}

// -----

// moe.paged_mla_attention: the latents of a static step must be its rows.
func.func @paged_mla_latent_rows(%qn: tensor<3x4x32xf32>, %qr: tensor<3x4x16xf32>, %c: tensor<2x32xf32>, %kr: tensor<3x1x16xf32>, %w: tensor<224x32xbf16>, %pos: tensor<3xi32>, %slots: tensor<3xi32>, %table: tensor<8x64xi32>, %cache: tensor<?x16x1x48xf32> {moe.kv_cache}) -> tensor<3x4x24xf32> {
  // expected-error @+1 {{'moe.paged_mla_attention' op expected `latent` of shape [3, 32], but got [2, 32]}}
  %o = moe.paged_mla_attention %qn, %qr, %c, %kr, %w, %pos, %slots, %table, %cache {scale = 0.25 : f64, layer = 0 : i64} : tensor<3x4x32xf32>, tensor<3x4x16xf32>, tensor<2x32xf32>, tensor<3x1x16xf32>, tensor<224x32xbf16>, tensor<3xi32>, tensor<3xi32>, tensor<8x64xi32>, tensor<?x16x1x48xf32> -> tensor<3x4x24xf32>
  return %o : tensor<3x4x24xf32>
}

// -----

// moe.paged_mla_attention: the rotary key is shared by all heads: one head.
func.func @paged_mla_k_rope_heads(%qn: tensor<?x4x32xf32>, %qr: tensor<?x4x16xf32>, %c: tensor<?x32xf32>, %kr: tensor<?x2x16xf32>, %w: tensor<224x32xbf16>, %pos: tensor<?xi32>, %slots: tensor<?xi32>, %table: tensor<8x64xi32>, %cache: tensor<?x16x1x48xf32> {moe.kv_cache}) -> tensor<?x4x24xf32> {
  // expected-error @+1 {{'moe.paged_mla_attention' op expected `k_rope` of shape [?, 1, 16], but got [?, 2, 16]}}
  %o = moe.paged_mla_attention %qn, %qr, %c, %kr, %w, %pos, %slots, %table, %cache {scale = 0.25 : f64, layer = 0 : i64} : tensor<?x4x32xf32>, tensor<?x4x16xf32>, tensor<?x32xf32>, tensor<?x2x16xf32>, tensor<224x32xbf16>, tensor<?xi32>, tensor<?xi32>, tensor<8x64xi32>, tensor<?x16x1x48xf32> -> tensor<?x4x24xf32>
  return %o : tensor<?x4x24xf32>
}

// -----

// moe.paged_mla_attention: `kv_b` must hold every head's key and value rows of the latent.
func.func @paged_mla_kv_b_rows(%qn: tensor<?x4x32xf32>, %qr: tensor<?x4x16xf32>, %c: tensor<?x32xf32>, %kr: tensor<?x1x16xf32>, %w: tensor<192x32xbf16>, %pos: tensor<?xi32>, %slots: tensor<?xi32>, %table: tensor<8x64xi32>, %cache: tensor<?x16x1x48xf32> {moe.kv_cache}) -> tensor<?x4x24xf32> {
  // expected-error @+1 {{'moe.paged_mla_attention' op expected `kv_b` of shape [224, 32], but got [192, 32]}}
  %o = moe.paged_mla_attention %qn, %qr, %c, %kr, %w, %pos, %slots, %table, %cache {scale = 0.25 : f64, layer = 0 : i64} : tensor<?x4x32xf32>, tensor<?x4x16xf32>, tensor<?x32xf32>, tensor<?x1x16xf32>, tensor<192x32xbf16>, tensor<?xi32>, tensor<?xi32>, tensor<8x64xi32>, tensor<?x16x1x48xf32> -> tensor<?x4x24xf32>
  return %o : tensor<?x4x24xf32>
}

// -----

// moe.paged_mla_attention: the result has the query heads.
func.func @paged_mla_result_heads(%qn: tensor<?x4x32xf32>, %qr: tensor<?x4x16xf32>, %c: tensor<?x32xf32>, %kr: tensor<?x1x16xf32>, %w: tensor<224x32xbf16>, %pos: tensor<?xi32>, %slots: tensor<?xi32>, %table: tensor<8x64xi32>, %cache: tensor<?x16x1x48xf32> {moe.kv_cache}) -> tensor<?x2x24xf32> {
  // expected-error @+1 {{'moe.paged_mla_attention' op expected `result` of shape [?, 4, 24], but got [?, 2, 24]}}
  %o = moe.paged_mla_attention %qn, %qr, %c, %kr, %w, %pos, %slots, %table, %cache {scale = 0.25 : f64, layer = 0 : i64} : tensor<?x4x32xf32>, tensor<?x4x16xf32>, tensor<?x32xf32>, tensor<?x1x16xf32>, tensor<224x32xbf16>, tensor<?xi32>, tensor<?xi32>, tensor<8x64xi32>, tensor<?x16x1x48xf32> -> tensor<?x2x24xf32>
  return %o : tensor<?x2x24xf32>
}

// -----

// moe.paged_mla_attention: a zero scale is rejected.
func.func @paged_mla_scale(%qn: tensor<?x4x32xf32>, %qr: tensor<?x4x16xf32>, %c: tensor<?x32xf32>, %kr: tensor<?x1x16xf32>, %w: tensor<224x32xbf16>, %pos: tensor<?xi32>, %slots: tensor<?xi32>, %table: tensor<8x64xi32>, %cache: tensor<?x16x1x48xf32> {moe.kv_cache}) -> tensor<?x4x24xf32> {
  // expected-error @+1 {{'moe.paged_mla_attention' op expected `scale` > 0, but got 0.000000e+00}}
  %o = moe.paged_mla_attention %qn, %qr, %c, %kr, %w, %pos, %slots, %table, %cache {scale = 0.0 : f64, layer = 0 : i64} : tensor<?x4x32xf32>, tensor<?x4x16xf32>, tensor<?x32xf32>, tensor<?x1x16xf32>, tensor<224x32xbf16>, tensor<?xi32>, tensor<?xi32>, tensor<8x64xi32>, tensor<?x16x1x48xf32> -> tensor<?x4x24xf32>
  return %o : tensor<?x4x24xf32>
}

// -----

// moe.paged_mla_attention: one position per row.
func.func @paged_mla_positions(%qn: tensor<?x4x32xf32>, %qr: tensor<?x4x16xf32>, %c: tensor<?x32xf32>, %kr: tensor<?x1x16xf32>, %w: tensor<224x32xbf16>, %pos: tensor<?x2xi32>, %slots: tensor<?xi32>, %table: tensor<8x64xi32>, %cache: tensor<?x16x1x48xf32> {moe.kv_cache}) -> tensor<?x4x24xf32> {
  // expected-error @+1 {{'moe.paged_mla_attention' op expected `positions` of shape [?], but got [?, 2]}}
  %o = moe.paged_mla_attention %qn, %qr, %c, %kr, %w, %pos, %slots, %table, %cache {scale = 0.25 : f64, layer = 0 : i64} : tensor<?x4x32xf32>, tensor<?x4x16xf32>, tensor<?x32xf32>, tensor<?x1x16xf32>, tensor<224x32xbf16>, tensor<?x2xi32>, tensor<?xi32>, tensor<8x64xi32>, tensor<?x16x1x48xf32> -> tensor<?x4x24xf32>
  return %o : tensor<?x4x24xf32>
}

// -----

// moe.paged_mla_attention: the page table is rank 2.
func.func @paged_mla_table_rank(%qn: tensor<?x4x32xf32>, %qr: tensor<?x4x16xf32>, %c: tensor<?x32xf32>, %kr: tensor<?x1x16xf32>, %w: tensor<224x32xbf16>, %pos: tensor<?xi32>, %slots: tensor<?xi32>, %table: tensor<64xi32>, %cache: tensor<?x16x1x48xf32> {moe.kv_cache}) -> tensor<?x4x24xf32> {
  // expected-error @+1 {{'moe.paged_mla_attention' op expected `page_table` to have rank 2, but got rank 1}}
  %o = moe.paged_mla_attention %qn, %qr, %c, %kr, %w, %pos, %slots, %table, %cache {scale = 0.25 : f64, layer = 0 : i64} : tensor<?x4x32xf32>, tensor<?x4x16xf32>, tensor<?x32xf32>, tensor<?x1x16xf32>, tensor<224x32xbf16>, tensor<?xi32>, tensor<?xi32>, tensor<64xi32>, tensor<?x16x1x48xf32> -> tensor<?x4x24xf32>
  return %o : tensor<?x4x24xf32>
}

// -----

// moe.paged_mla_attention: an empty page table is rejected.
func.func @paged_mla_table_empty(%qn: tensor<?x4x32xf32>, %qr: tensor<?x4x16xf32>, %c: tensor<?x32xf32>, %kr: tensor<?x1x16xf32>, %w: tensor<224x32xbf16>, %pos: tensor<?xi32>, %slots: tensor<?xi32>, %table: tensor<8x0xi32>, %cache: tensor<?x16x1x48xf32> {moe.kv_cache}) -> tensor<?x4x24xf32> {
  // expected-error @+1 {{'moe.paged_mla_attention' op expected a `page_table` with at least one entry}}
  %o = moe.paged_mla_attention %qn, %qr, %c, %kr, %w, %pos, %slots, %table, %cache {scale = 0.25 : f64, layer = 0 : i64} : tensor<?x4x32xf32>, tensor<?x4x16xf32>, tensor<?x32xf32>, tensor<?x1x16xf32>, tensor<224x32xbf16>, tensor<?xi32>, tensor<?xi32>, tensor<8x0xi32>, tensor<?x16x1x48xf32> -> tensor<?x4x24xf32>
  return %o : tensor<?x4x24xf32>
}

// -----

// moe.paged_mla_attention: a negative layer is rejected.
func.func @paged_mla_layer(%qn: tensor<?x4x32xf32>, %qr: tensor<?x4x16xf32>, %c: tensor<?x32xf32>, %kr: tensor<?x1x16xf32>, %w: tensor<224x32xbf16>, %pos: tensor<?xi32>, %slots: tensor<?xi32>, %table: tensor<8x64xi32>, %cache: tensor<?x16x1x48xf32> {moe.kv_cache}) -> tensor<?x4x24xf32> {
  // expected-error @+1 {{'moe.paged_mla_attention' op expected `layer` >= 0, but got -1}}
  %o = moe.paged_mla_attention %qn, %qr, %c, %kr, %w, %pos, %slots, %table, %cache {scale = 0.25 : f64, layer = -1 : i64} : tensor<?x4x32xf32>, tensor<?x4x16xf32>, tensor<?x32xf32>, tensor<?x1x16xf32>, tensor<224x32xbf16>, tensor<?xi32>, tensor<?xi32>, tensor<8x64xi32>, tensor<?x16x1x48xf32> -> tensor<?x4x24xf32>
  return %o : tensor<?x4x24xf32>
}

// -----

// moe.paged_mla_attention: the cache is [pages, P, 1, R + Dr]: rank 4.
func.func @paged_mla_cache_rank(%qn: tensor<?x4x32xf32>, %qr: tensor<?x4x16xf32>, %c: tensor<?x32xf32>, %kr: tensor<?x1x16xf32>, %w: tensor<224x32xbf16>, %pos: tensor<?xi32>, %slots: tensor<?xi32>, %table: tensor<8x64xi32>, %cache: tensor<?x16x48xf32>) -> tensor<?x4x24xf32> {
  // expected-error @+1 {{'moe.paged_mla_attention' op expected `cache` to have rank 4, but got rank 3}}
  %o = moe.paged_mla_attention %qn, %qr, %c, %kr, %w, %pos, %slots, %table, %cache {scale = 0.25 : f64, layer = 0 : i64} : tensor<?x4x32xf32>, tensor<?x4x16xf32>, tensor<?x32xf32>, tensor<?x1x16xf32>, tensor<224x32xbf16>, tensor<?xi32>, tensor<?xi32>, tensor<8x64xi32>, tensor<?x16x48xf32> -> tensor<?x4x24xf32>
  return %o : tensor<?x4x24xf32>
}

// -----

// moe.paged_mla_attention: the cache's page count is the runtime's: dynamic.
func.func @paged_mla_cache_static_pages(%qn: tensor<?x4x32xf32>, %qr: tensor<?x4x16xf32>, %c: tensor<?x32xf32>, %kr: tensor<?x1x16xf32>, %w: tensor<224x32xbf16>, %pos: tensor<?xi32>, %slots: tensor<?xi32>, %table: tensor<8x64xi32>, %cache: tensor<4x16x1x48xf32>) -> tensor<?x4x24xf32> {
  // expected-error @+1 {{'moe.paged_mla_attention' op expected `cache` of shape [?, P, heads, dim] with P >= 1, but got [4, 16, 1, 48]}}
  %o = moe.paged_mla_attention %qn, %qr, %c, %kr, %w, %pos, %slots, %table, %cache {scale = 0.25 : f64, layer = 0 : i64} : tensor<?x4x32xf32>, tensor<?x4x16xf32>, tensor<?x32xf32>, tensor<?x1x16xf32>, tensor<224x32xbf16>, tensor<?xi32>, tensor<?xi32>, tensor<8x64xi32>, tensor<4x16x1x48xf32> -> tensor<?x4x24xf32>
  return %o : tensor<?x4x24xf32>
}

// -----

// moe.paged_mla_attention: a cache position holds the latent and the rotary key.
func.func @paged_mla_cache_width(%qn: tensor<?x4x32xf32>, %qr: tensor<?x4x16xf32>, %c: tensor<?x32xf32>, %kr: tensor<?x1x16xf32>, %w: tensor<224x32xbf16>, %pos: tensor<?xi32>, %slots: tensor<?xi32>, %table: tensor<8x64xi32>, %cache: tensor<?x16x1x32xf32> {moe.kv_cache}) -> tensor<?x4x24xf32> {
  // expected-error @+1 {{'moe.paged_mla_attention' op expected `cache` of shape [?, 16, 1, 48], but got [?, 16, 1, 32]}}
  %o = moe.paged_mla_attention %qn, %qr, %c, %kr, %w, %pos, %slots, %table, %cache {scale = 0.25 : f64, layer = 0 : i64} : tensor<?x4x32xf32>, tensor<?x4x16xf32>, tensor<?x32xf32>, tensor<?x1x16xf32>, tensor<224x32xbf16>, tensor<?xi32>, tensor<?xi32>, tensor<8x64xi32>, tensor<?x16x1x32xf32> -> tensor<?x4x24xf32>
  return %o : tensor<?x4x24xf32>
}

// -----

// moe.paged_mla_attention: the cache must be a function argument marked moe.kv_cache.
func.func @paged_mla_cache_unmarked(%qn: tensor<?x4x32xf32>, %qr: tensor<?x4x16xf32>, %c: tensor<?x32xf32>, %kr: tensor<?x1x16xf32>, %w: tensor<224x32xbf16>, %pos: tensor<?xi32>, %slots: tensor<?xi32>, %table: tensor<8x64xi32>, %cache: tensor<?x16x1x48xf32>) -> tensor<?x4x24xf32> {
  // expected-error @+1 {{'moe.paged_mla_attention' op expected `cache` to be a function argument marked `moe.kv_cache`}}
  %o = moe.paged_mla_attention %qn, %qr, %c, %kr, %w, %pos, %slots, %table, %cache {scale = 0.25 : f64, layer = 0 : i64} : tensor<?x4x32xf32>, tensor<?x4x16xf32>, tensor<?x32xf32>, tensor<?x1x16xf32>, tensor<224x32xbf16>, tensor<?xi32>, tensor<?xi32>, tensor<8x64xi32>, tensor<?x16x1x48xf32> -> tensor<?x4x24xf32>
  return %o : tensor<?x4x24xf32>
}

// -----

// moe.select_rows: `rows` is one dynamic list of row indices.
func.func @select_rows_static_rows(%x: tensor<?x64xf32>, %rows: tensor<4xi32>) -> tensor<?x64xf32> {
  // expected-error @+1 {{'moe.select_rows' op expected `rows` of shape [?]}}
  %h = moe.select_rows %x, %rows : tensor<?x64xf32>, tensor<4xi32> -> tensor<?x64xf32>
  return %h : tensor<?x64xf32>
}

// -----

// moe.select_rows: the result keeps the row width.
func.func @select_rows_width(%x: tensor<?x64xf32>, %rows: tensor<?xi32>) -> tensor<?x32xf32> {
  // expected-error @+1 {{'moe.select_rows' op expected `result` of shape [?, 64], but got [?, 32]}}
  %h = moe.select_rows %x, %rows : tensor<?x64xf32>, tensor<?xi32> -> tensor<?x32xf32>
  return %h : tensor<?x32xf32>
}
