// Every verifier message of the fused `quantize` results (FusedQuantizeOpInterface) rejects bad IR with its whole message.
// RUN: moec-opt %s --split-input-file --verify-diagnostics

// moe.rms_norm: `quantize` without the two FP8 results.
func.func @scheme_without_results(%x: tensor<?x128xf32>, %w: tensor<128xbf16>) {
  // expected-error @+1 {{'moe.rms_norm' op expected the `quantized` and `quantized_scale` results exactly when `quantize` is set}}
  %n = moe.rms_norm %x, %w {epsilon = 1.0e-06 : f64, quantize = #moe.block_scale<format = e4m3fn, block = [1, 128]>} : tensor<?x128xf32>, tensor<128xbf16> -> tensor<?x128xf32>
  return
}

// -----

// moe.silu_mul: the two FP8 results without `quantize`.
func.func @results_without_scheme(%g: tensor<?x128xf32>, %u: tensor<?x128xf32>) {
  // expected-error @+1 {{'moe.silu_mul' op expected the `quantized` and `quantized_scale` results exactly when `quantize` is set}}
  %h, %q, %s = moe.silu_mul %g, %u : tensor<?x128xf32>, tensor<?x128xf8E4M3FN>, tensor<?x1xf32>
  return
}

// -----

// moe.matmul: blocks of several rows span tokens, which a producer cannot quantize.
func.func @blocks_of_rows(%x: tensor<?x128xf32>, %w: tensor<128x128xbf16>) {
  // expected-error @+1 {{'moe.matmul' op expected `quantize` blocks of one row, but got [128, 128]}}
  %y, %q, %s = moe.matmul %x, %w {quantize = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<?x128xf32>, tensor<128x128xbf16> -> tensor<?x128xf32>, tensor<?x128xf8E4M3FN>, tensor<?x1xf32>
  return
}

// -----

// moe.add_rms_norm: the FP8 data has the shape of the normalised result.
func.func @data_shape(%a: tensor<?x128xf32>, %b: tensor<?x128xf32>, %w: tensor<128xbf16>) {
  // expected-error @+1 {{'moe.add_rms_norm' op expected `quantized` of shape [?, 128], but got [?, 64]}}
  %sum, %n, %q, %s = moe.add_rms_norm %a, %b, %w {epsilon = 1.0e-06 : f64, quantize = #moe.block_scale<format = e4m3fn, block = [1, 128]>} : tensor<?x128xf32>, tensor<128xbf16> -> tensor<?x128xf32>, tensor<?x64xf8E4M3FN>, tensor<?x1xf32>
  return
}

// -----

// moe.grouped_matmul: the FP8 data has the scheme's format.
func.func @data_format(%rows: tensor<?x128xf32>, %off: tensor<3xi32>, %w: tensor<2x256x128xbf16>) {
  // expected-error @+1 {{'moe.grouped_matmul' op expected `quantized` element type 'f8E4M3FN', but got 'f8E5M2'}}
  %y, %q, %s = moe.grouped_matmul %rows, %off, %w {epilogue = #moe.epilogue<silu_mul>, quantize = #moe.block_scale<format = e4m3fn, block = [1, 128]>} : tensor<?x128xf32>, tensor<3xi32>, tensor<2x256x128xbf16> -> tensor<?x128xf32>, tensor<?x128xf8E5M2>, tensor<?x1xf32>
  return
}

// -----

// moe.fp8_grouped_matmul: one scale per row and block of channels.
func.func @scale_shape(%rq: tensor<?x128xf8E4M3FN>, %rs: tensor<?x1xf32>, %off: tensor<3xi32>, %wq: tensor<2x512x128xf8E4M3FN>, %ws: tensor<2x4x1xf32>) {
  // expected-error @+1 {{'moe.fp8_grouped_matmul' op expected `quantized_scale` of shape [?, 2], but got [?, 1]}}
  %h, %q, %s = moe.fp8_grouped_matmul %rq, %rs, %off, %wq, %ws {act_scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>, epilogue = #moe.epilogue<silu_mul>, quantize = #moe.block_scale<format = e4m3fn, block = [1, 128]>, weight_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<?x128xf8E4M3FN>, tensor<?x1xf32>, tensor<3xi32>, tensor<2x512x128xf8E4M3FN>, tensor<2x4x1xf32> -> tensor<?x256xf32>, tensor<?x256xf8E4M3FN>, tensor<?x1xf32>
  return
}
