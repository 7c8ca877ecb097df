// RMSNorm kernels: one block per row, the row in registers, 4-wide accesses
// when the row length is a multiple of 4. rms_norm with a bf16 weight and
// fused quantization (0), per-head rows of [?, 4, 16] (1: 4 rows per token),
// a row length of 50 (2: scalar accesses), add_rms_norm with fused pow2
// quantization (3), add_rms_norm on bf16 (4: the norm reads the sum rounded
// to bf16), a 7168-wide row (5: 224 threads, 8 groups each) and a static
// [8, 64] tensor (6: 8 blocks).
// RUN: moec %s --from=fp8 --compile-to=codegen --target=sm_89 | FileCheck %s
// RUN: moec %s --from=fp8 --compile-to=codegen --target=sm_80,sm_89,sm_90 --emit-ptx | FileCheck %s --check-prefix=PTX

// CHECK: // step 0: moec_step_0 grid (T, 1, 1) block (32, 1, 1) smem 0
// CHECK-NEXT: // step 0: moec_step_0_quantize grid (T, 2, 1) block (32, 1, 1) smem 0
// CHECK-NEXT: // step 1: moec_step_1 grid (4*T, 1, 1) block (32, 1, 1) smem 0
// CHECK-NEXT: // step 2: moec_step_2 grid (T, 1, 1) block (32, 1, 1) smem 0
// CHECK-NEXT: // step 3: moec_step_3 grid (T, 1, 1) block (64, 1, 1) smem 0
// CHECK-NEXT: // step 3: moec_step_3_quantize grid (T, 16, 1) block (32, 1, 1) smem 0
// CHECK-NEXT: // step 4: moec_step_4 grid (T, 1, 1) block (32, 1, 1) smem 0
// CHECK-NEXT: // step 5: moec_step_5 grid (T, 1, 1) block (224, 1, 1) smem 0
// CHECK-NEXT: // step 6: moec_step_6 grid (8, 1, 1) block (32, 1, 1) smem 0
// CHECK-NOT: // step

// CHECK: // ---- library vector_access ----
// CHECK: __device__ __forceinline__ void moec_load_vec(const float *__restrict__ p,
// CHECK: // ---- library rms_norm ----
// CHECK: __device__ __forceinline__ void
// CHECK-NEXT: moec_rms_norm_row(
// CHECK: squares = moec_block_sum(squares);
// CHECK-NEXT: const float inv = 1.0f / sqrtf(squares / (float)D + eps);
// CHECK: y[k] = w[k] * (x[j][k] * inv);
// CHECK-NOT: // ---- library rms_norm ----

// CHECK-LABEL: // ---- step 0: moe.rms_norm ----
// CHECK: extern "C" __global__ void __launch_bounds__(32) moec_step_0(const float *__restrict__ a0, const moec_bf16 *__restrict__ a1, float *__restrict__ a2, moec_fp8 *__restrict__ a3, float *__restrict__ a4, void *__restrict__ workspace, long long tokens) {
// CHECK-NEXT: moec_rms_norm_row<256, 32, 4, false>(a0, a0, (float *)nullptr, a1, a2, 9.999999975e-07f, tokens * 1LL);
// CHECK: extern "C" __global__ void __launch_bounds__(32) moec_step_0_quantize(
// CHECK-NEXT: moec_quantize_rows<256, 128, false>(a2, a3, a4, tokens * 1LL);

// CHECK-LABEL: // ---- step 1: moe.rms_norm ----
// CHECK: moec_rms_norm_row<16, 32, 4, false>(a0, a0, (float *)nullptr, a1, a2, 9.999999747e-06f, tokens * 4LL);

// CHECK-LABEL: // ---- step 2: moe.rms_norm ----
// CHECK: moec_rms_norm_row<50, 32, 1, false>(a0, a0, (float *)nullptr, a1, a2, 9.999999975e-07f, tokens * 1LL);

// lhs a0, rhs a1, weight a2; sum a3, result a4, then the quantization of a4.
// CHECK-LABEL: // ---- step 3: moe.add_rms_norm ----
// CHECK: extern "C" __global__ void __launch_bounds__(64) moec_step_3(
// CHECK-NEXT: moec_rms_norm_row<2048, 64, 4, true>(a0, a1, a3, a2, a4, 9.999999975e-07f, tokens * 1LL);
// CHECK: moec_quantize_rows<2048, 128, true>(a4, a5, a6, tokens * 1LL);

// CHECK-LABEL: // ---- step 4: moe.add_rms_norm ----
// CHECK: moec_step_4(const moec_bf16 *__restrict__ a0, const moec_bf16 *__restrict__ a1, const moec_bf16 *__restrict__ a2, moec_bf16 *__restrict__ a3, moec_bf16 *__restrict__ a4,
// CHECK-NEXT: moec_rms_norm_row<64, 32, 4, true>(a0, a1, a3, a2, a4, 9.999999975e-07f, tokens * 1LL);

// CHECK-LABEL: // ---- step 5: moe.rms_norm ----
// CHECK: extern "C" __global__ void __launch_bounds__(224) moec_step_5(
// CHECK-NEXT: moec_rms_norm_row<7168, 224, 4, false>(

// CHECK-LABEL: // ---- step 6: moe.rms_norm ----
// CHECK: moec_rms_norm_row<64, 32, 4, false>(a0, a0, (float *)nullptr, a1, a2, 9.999999975e-07f, 8LL);

// Every kernel compiles for the three targets, with IEEE sqrt and division,
// and keeps the rows in registers (no local memory).
// PTX-LABEL: // ---- ptx sm_80 ----
// PTX-NOT: .local
// PTX-DAG: .entry moec_step_0(
// PTX-DAG: .entry moec_step_0_quantize(
// PTX-DAG: .entry moec_step_1(
// PTX-DAG: .entry moec_step_2(
// PTX-DAG: .entry moec_step_3(
// PTX-DAG: .entry moec_step_3_quantize(
// PTX-DAG: .entry moec_step_4(
// PTX-DAG: .entry moec_step_5(
// PTX-DAG: .entry moec_step_6(
// PTX-DAG: sqrt.rn.f32
// PTX-DAG: ld.global.nc.v4.f32
// PTX-DAG: st.global.v4.f32
// PTX-NOT: .local
// PTX-LABEL: // ---- ptx sm_89 ----
// PTX-NOT: .local
// PTX-DAG: .entry moec_step_0(
// PTX-DAG: .entry moec_step_0_quantize(
// PTX-DAG: .entry moec_step_1(
// PTX-DAG: .entry moec_step_2(
// PTX-DAG: .entry moec_step_3(
// PTX-DAG: .entry moec_step_3_quantize(
// PTX-DAG: .entry moec_step_4(
// PTX-DAG: .entry moec_step_5(
// PTX-DAG: .entry moec_step_6(
// PTX-NOT: .local
// PTX-LABEL: // ---- ptx sm_90a ----
// PTX-NOT: .local
// PTX-DAG: .entry moec_step_0(
// PTX-DAG: .entry moec_step_0_quantize(
// PTX-DAG: .entry moec_step_1(
// PTX-DAG: .entry moec_step_2(
// PTX-DAG: .entry moec_step_3(
// PTX-DAG: .entry moec_step_3_quantize(
// PTX-DAG: .entry moec_step_4(
// PTX-DAG: .entry moec_step_5(
// PTX-DAG: .entry moec_step_6(
// PTX-NOT: .local

func.func @forward(%x: tensor<?x256xf32>, %g: tensor<256xbf16>,
                   %hx: tensor<?x4x16xf32>, %hg: tensor<16xf32>,
                   %ox: tensor<?x50xf32>, %og: tensor<50xbf16>,
                   %ra: tensor<?x2048xf32>, %rb: tensor<?x2048xf32>, %rg: tensor<2048xbf16>,
                   %ba: tensor<?x64xbf16>, %bb: tensor<?x64xbf16>, %bg: tensor<64xbf16>,
                   %wx: tensor<?x7168xf32>, %wg: tensor<7168xbf16>,
                   %sx: tensor<8x64xf32>)
    -> (tensor<?x256xf32>, tensor<?x256xf8E4M3FN>, tensor<?x2xf32>,
        tensor<?x4x16xf32>, tensor<?x50xf32>,
        tensor<?x2048xf32>, tensor<?x2048xf32>, tensor<?x2048xf8E4M3FN>, tensor<?x16xf32>,
        tensor<?x64xbf16>, tensor<?x64xbf16>, tensor<?x7168xf32>, tensor<8x64xf32>) {
  %n0, %q0, %s0 = moe.rms_norm %x, %g {epsilon = 1.0e-06 : f64, quantize = #moe.block_scale<format = e4m3fn, block = [1, 128]>} : tensor<?x256xf32>, tensor<256xbf16> -> tensor<?x256xf32>, tensor<?x256xf8E4M3FN>, tensor<?x2xf32>
  %n1 = moe.rms_norm %hx, %hg {epsilon = 1.0e-05 : f64} : tensor<?x4x16xf32>, tensor<16xf32> -> tensor<?x4x16xf32>
  %n2 = moe.rms_norm %ox, %og {epsilon = 1.0e-06 : f64} : tensor<?x50xf32>, tensor<50xbf16> -> tensor<?x50xf32>
  %h3, %n3, %q3, %s3 = moe.add_rms_norm %ra, %rb, %rg {epsilon = 1.0e-06 : f64, quantize = #moe.block_scale<format = e4m3fn, block = [1, 128], pow2 = true>} : tensor<?x2048xf32>, tensor<2048xbf16> -> tensor<?x2048xf32>, tensor<?x2048xf8E4M3FN>, tensor<?x16xf32>
  %h4, %n4 = moe.add_rms_norm %ba, %bb, %bg {epsilon = 1.0e-06 : f64} : tensor<?x64xbf16>, tensor<64xbf16> -> tensor<?x64xbf16>
  %n5 = moe.rms_norm %wx, %wg {epsilon = 1.0e-06 : f64} : tensor<?x7168xf32>, tensor<7168xbf16> -> tensor<?x7168xf32>
  %n6 = moe.rms_norm %sx, %bg {epsilon = 1.0e-06 : f64} : tensor<8x64xf32>, tensor<64xbf16> -> tensor<8x64xf32>
  return %n0, %q0, %s0, %n1, %n2, %h3, %n3, %q3, %s3, %h4, %n4, %n5, %n6 : tensor<?x256xf32>, tensor<?x256xf8E4M3FN>, tensor<?x2xf32>, tensor<?x4x16xf32>, tensor<?x50xf32>, tensor<?x2048xf32>, tensor<?x2048xf32>, tensor<?x2048xf8E4M3FN>, tensor<?x16xf32>, tensor<?x64xbf16>, tensor<?x64xbf16>, tensor<?x7168xf32>, tensor<8x64xf32>
}
