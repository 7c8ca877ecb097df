// Every elementwise op as one step of one function, in program order: embed
// (0), add (1), mul (2), silu_mul with fused quantization (3), slice (4),
// expand (5), concat (6), quantize (7), dequantize of e4m3fn activations (8),
// of a static 3-d e4m3fn tensor in [128, 128] blocks (9) and of u8 codes with
// a zero point (10), sigmoid_gate (11). Flat ops use 256 threads per 1024
// elements; row ops one block per row.
// RUN: moec %s --from=fp8 --compile-to=codegen --target=sm_89 | FileCheck %s
// RUN: moec %s --from=fp8 --compile-to=codegen --target=sm_80,sm_89,sm_90 --emit-ptx | FileCheck %s --check-prefix=PTX

// CHECK: // step 0: moec_step_0 grid (T, 1, 1) block (32, 1, 1) smem 0
// CHECK-NEXT: // step 1: moec_step_1 grid (ceil(64*T/1024), 1, 1) block (256, 1, 1) smem 0
// CHECK-NEXT: // step 2: moec_step_2 grid (ceil(64*T/1024), 1, 1) block (256, 1, 1) smem 0
// CHECK-NEXT: // step 3: moec_step_3 grid (ceil(256*T/1024), 1, 1) block (256, 1, 1) smem 0
// CHECK-NEXT: // step 3: moec_step_3_quantize grid (T, 2, 1) block (32, 1, 1) smem 0
// CHECK-NEXT: // step 4: moec_step_4 grid (ceil(32*T/1024), 1, 1) block (256, 1, 1) smem 0
// CHECK-NEXT: // step 5: moec_step_5 grid (ceil(32*T/1024), 1, 1) block (256, 1, 1) smem 0
// CHECK-NEXT: // step 6: moec_step_6 grid (ceil(128*T/1024), 1, 1) block (256, 1, 1) smem 0
// CHECK-NEXT: // step 7: moec_step_7 grid (T, 2, 1) block (32, 1, 1) smem 0
// CHECK-NEXT: // step 8: moec_step_8 grid (ceil(256*T/1024), 1, 1) block (256, 1, 1) smem 0
// CHECK-NEXT: // step 9: moec_step_9 grid (128, 1, 1) block (256, 1, 1) smem 0
// CHECK-NEXT: // step 10: moec_step_10 grid (ceil(256*T/1024), 1, 1) block (256, 1, 1) smem 0
// CHECK-NEXT: // step 11: moec_step_11 grid (T, 1, 1) block (32, 1, 1) smem 0
// CHECK-NOT: // step

// The shared library text is emitted once.
// CHECK: // ---- library elementwise ----
// CHECK: __device__ __forceinline__ long long moec_flat_index(int j) {
// CHECK: return x / (1.0f + expf(-x)) * y;
// CHECK-NOT: // ---- library elementwise ----

// CHECK-LABEL: // ---- step 0: moe.embed ----
// CHECK: extern "C" __global__ void __launch_bounds__(32) moec_step_0(const moec_bf16 *__restrict__ a0, const int *__restrict__ a1, float *__restrict__ a2, void *__restrict__ workspace, long long tokens) {
// CHECK-NEXT: moec_embed_row<320, 64>(a0, a1, a2, tokens * 1LL);

// CHECK-LABEL: // ---- step 1: moe.add ----
// CHECK: extern "C" __global__ void __launch_bounds__(256) moec_step_1(
// CHECK: const long long n = tokens * 64LL;
// CHECK: moec_store(a2, i, moec_binary<0>(moec_load(a0, i), moec_load(a1, i)));

// CHECK-LABEL: // ---- step 2: moe.mul ----
// CHECK: moec_store(a2, i, moec_binary<1>(moec_load(a0, i), moec_load(a1, i)));

// silu_mul writes the f32 result, then quantizes it per [1, 128] block.
// CHECK-LABEL: // ---- step 3: moe.silu_mul ----
// CHECK: const long long n = tokens * 256LL;
// CHECK: moec_store(a2, i, moec_binary<2>(moec_load(a0, i), moec_load(a1, i)));
// CHECK: extern "C" __global__ void __launch_bounds__(32) moec_step_3_quantize(
// CHECK-NEXT: moec_quantize_rows<256, 128, false>(a2, a3, a4, tokens * 1LL);

// CHECK-LABEL: // ---- step 4: moe.slice ----
// CHECK: const long long n = tokens * 32LL;
// CHECK: moec_slice_element<24, 8, 16>(a0, a1, i);

// [?, 1, 8] -> [?, 4, 8]: the head coordinate is dropped from the source.
// CHECK-LABEL: // ---- step 5: moe.expand ----
// CHECK: long long rest = i, src = 0;
// CHECK-NEXT: src += rest % 8 * 1; // dimension 2
// CHECK-NEXT: rest /= 8;
// CHECK-NEXT: rest /= 4; // dimension 1: broadcast
// CHECK-NEXT: src += rest * 8; // dimension 0
// CHECK-NEXT: a1[i] = a0[src];

// CHECK-LABEL: // ---- step 6: moe.concat ----
// CHECK: const long long r = i / 32;
// CHECK-NEXT: const long long c = i - r * 32;
// CHECK-NEXT: if (c < 24)
// CHECK-NEXT: a2[i] = a0[r * 24 + (c - 0)];
// CHECK-NEXT: else
// CHECK-NEXT: a2[i] = a1[r * 8 + (c - 24)];

// CHECK-LABEL: // ---- step 7: moe.quantize ----
// CHECK: extern "C" __global__ void __launch_bounds__(32) moec_step_7(
// CHECK-NEXT: moec_quantize_rows<256, 128, true>(a0, a1, a2, tokens * 1LL);

// Per-token scales of [1, 128] blocks; the result is bf16.
// CHECK-LABEL: // ---- step 8: moe.dequantize ----
// CHECK: moec_step_8(const moec_fp8 *__restrict__ a0, const float *__restrict__ a1, moec_bf16 *__restrict__ a2,
// CHECK: moec_dequantize_element<0, 256, 1, 128, false, 0>(a0, a1, a2, i);

// A static [4, 256, 128] tensor: 4 batches of 256 rows, 131072 elements.
// CHECK-LABEL: // ---- step 9: moe.dequantize ----
// CHECK: const long long n = 131072LL;
// CHECK: moec_dequantize_element<256, 128, 128, 128, false, 0>(a0, a1, a2, i);

// u8 codes arrive as unsigned bytes; (code - 128) * scale.
// CHECK-LABEL: // ---- step 10: moe.dequantize ----
// CHECK: moec_step_10(const unsigned char *__restrict__ a0,
// CHECK: moec_dequantize_element<0, 256, 1, 256, true, 128>(a0, a1, a2, i);

// CHECK-LABEL: // ---- step 11: moe.sigmoid_gate ----
// CHECK: extern "C" __global__ void __launch_bounds__(32) moec_step_11(
// CHECK-NEXT: moec_sigmoid_gate_row<64, 32>(a0, a1, a2, a3, tokens * 1LL);

// Every kernel compiles for the three targets.
// PTX-LABEL: // ---- ptx sm_80 ----
// PTX-DAG: .entry moec_step_0(
// PTX-DAG: .entry moec_step_1(
// PTX-DAG: .entry moec_step_2(
// PTX-DAG: .entry moec_step_3(
// PTX-DAG: .entry moec_step_3_quantize(
// PTX-DAG: .entry moec_step_4(
// PTX-DAG: .entry moec_step_5(
// PTX-DAG: .entry moec_step_6(
// PTX-DAG: .entry moec_step_7(
// PTX-DAG: .entry moec_step_8(
// PTX-DAG: .entry moec_step_9(
// PTX-DAG: .entry moec_step_10(
// PTX-DAG: .entry moec_step_11(
// PTX-LABEL: // ---- ptx sm_89 ----
// PTX-DAG: .entry moec_step_0(
// PTX-DAG: .entry moec_step_1(
// PTX-DAG: .entry moec_step_2(
// PTX-DAG: .entry moec_step_3(
// PTX-DAG: .entry moec_step_3_quantize(
// PTX-DAG: .entry moec_step_4(
// PTX-DAG: .entry moec_step_5(
// PTX-DAG: .entry moec_step_6(
// PTX-DAG: .entry moec_step_7(
// PTX-DAG: .entry moec_step_8(
// PTX-DAG: .entry moec_step_9(
// PTX-DAG: .entry moec_step_10(
// PTX-DAG: .entry moec_step_11(
// PTX-LABEL: // ---- ptx sm_90a ----
// PTX-DAG: .entry moec_step_0(
// PTX-DAG: .entry moec_step_1(
// PTX-DAG: .entry moec_step_2(
// PTX-DAG: .entry moec_step_3(
// PTX-DAG: .entry moec_step_3_quantize(
// PTX-DAG: .entry moec_step_4(
// PTX-DAG: .entry moec_step_5(
// PTX-DAG: .entry moec_step_6(
// PTX-DAG: .entry moec_step_7(
// PTX-DAG: .entry moec_step_8(
// PTX-DAG: .entry moec_step_9(
// PTX-DAG: .entry moec_step_10(
// PTX-DAG: .entry moec_step_11(
func.func @forward(%table: tensor<320x64xbf16>, %ids: tensor<?xi32>,
                   %a: tensor<?x64xf32>, %b: tensor<?x64xf32>,
                   %g: tensor<?x256xf32>, %u: tensor<?x256xf32>,
                   %x: tensor<?x4x24xf32>, %k: tensor<?x1x8xf32>,
                   %q: tensor<?x256xf8E4M3FN>, %qs: tensor<?x2xf32>,
                   %w: tensor<4x256x128xf8E4M3FN>, %ws: tensor<4x2x1xf32>,
                   %c: tensor<?x256xi8>, %cs: tensor<?x1xf32>,
                   %gate: tensor<1x64xbf16>, %y: tensor<?x32xf32>)
    -> (tensor<?x64xf32>, tensor<?x64xf32>, tensor<?x64xf32>,
        tensor<?x256xf32>, tensor<?x256xf8E4M3FN>, tensor<?x2xf32>,
        tensor<?x4x8xf32>, tensor<?x4x32xf32>, tensor<?x4x8xf32>,
        tensor<?x256xf8E4M3FN>, tensor<?x2xf32>, tensor<?x256xbf16>,
        tensor<4x256x128xf32>, tensor<?x256xf32>, tensor<?x32xf32>) {
  %e = moe.embed %table, %ids : tensor<320x64xbf16>, tensor<?xi32> -> tensor<?x64xf32>
  %s = moe.add %a, %b : tensor<?x64xf32>
  %m = moe.mul %a, %b : tensor<?x64xf32>
  %h, %hq, %hs = moe.silu_mul %g, %u {quantize = #moe.block_scale<format = e4m3fn, block = [1, 128]>} : tensor<?x256xf32>, tensor<?x256xf8E4M3FN>, tensor<?x2xf32>
  %sl = moe.slice %x {offset = 16 : i64} : tensor<?x4x24xf32> -> tensor<?x4x8xf32>
  %ex = moe.expand %k : tensor<?x1x8xf32> -> tensor<?x4x8xf32>
  %cat = moe.concat %x, %ex : tensor<?x4x24xf32>, tensor<?x4x8xf32> -> tensor<?x4x32xf32>
  %gq, %gs = moe.quantize %g {scheme = #moe.block_scale<format = e4m3fn, block = [1, 128], pow2 = true>} : tensor<?x256xf32> -> tensor<?x256xf8E4M3FN>, tensor<?x2xf32>
  %dq = moe.dequantize %q, %qs {scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>} : tensor<?x256xf8E4M3FN>, tensor<?x2xf32> -> tensor<?x256xbf16>
  %dw = moe.dequantize %w, %ws {scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<4x256x128xf8E4M3FN>, tensor<4x2x1xf32> -> tensor<4x256x128xf32>
  %du = moe.dequantize %c, %cs {scheme = #moe.block_scale<format = u8, block = [1, 256], zero_point = 128>} : tensor<?x256xi8>, tensor<?x1xf32> -> tensor<?x256xf32>
  %sg = moe.sigmoid_gate %a, %gate, %y : tensor<?x64xf32>, tensor<1x64xbf16>, tensor<?x32xf32>
  return %e, %s, %m, %h, %hq, %hs, %sl, %cat, %ex, %gq, %gs, %dq, %dw, %du, %sg : tensor<?x64xf32>, tensor<?x64xf32>, tensor<?x64xf32>, tensor<?x256xf32>, tensor<?x256xf8E4M3FN>, tensor<?x2xf32>, tensor<?x4x8xf32>, tensor<?x4x32xf32>, tensor<?x4x8xf32>, tensor<?x256xf8E4M3FN>, tensor<?x2xf32>, tensor<?x256xbf16>, tensor<4x256x128xf32>, tensor<?x256xf32>, tensor<?x32xf32>
}
