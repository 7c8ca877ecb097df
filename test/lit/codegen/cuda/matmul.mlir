// f32-activation GEMMs: bf16 weights with a bf16 bias (step 0), and f32
// weights with the silu_mul epilogue and fused quantization (step 1). Both
// use the f32 SIMT kernel on every target (no tensor cores: f32 accuracy).
// RUN: moec %s --from=fp8 --compile-to=codegen --target=sm_89 | FileCheck %s
// RUN: moec %s --from=fp8 --compile-to=codegen --target=sm_80,sm_89,sm_90 --emit-ptx | FileCheck %s --check-prefix=PTX

// CHECK: // step 0: moec_step_0 grid (2, ceil(T/64), 1) block (256, 1, 1) smem 0
// CHECK-NEXT: // step 1: moec_step_1 grid (3, ceil(T/64), 1) block (256, 1, 1) smem 0
// CHECK-NEXT: // step 1: moec_step_1_quantize grid (T, 3, 1) block (32, 1, 1) smem 0
// CHECK: template <int N, int K, bool SILU, int E, bool HAS_BIAS, typename WT,
// CHECK-NEXT:          typename BT>
// CHECK-NEXT: __device__ __forceinline__ void moec_f32_gemm(
// CHECK-LABEL: // ---- step 0: moe.matmul ----
// CHECK: // moec_step_0: f32 GEMM, y[rows, 128] = x[rows, 64] * w[128, 64]^T + bias.
// CHECK: moec_f32_gemm<128, 64, false, 0, true, moec_bf16, moec_bf16>(a0, (const int *)nullptr /* dense */, a1, a2, a3, tokens * 1LL);
// CHECK-LABEL: // ---- step 1: moe.matmul ----
// CHECK: // moec_step_1: f32 GEMM, y[rows, 96] = x[rows, 128] * w[192, 128]^T, silu_mul epilogue.
// CHECK: moec_f32_gemm<192, 128, true, 0, false, float, float>(a0, (const int *)nullptr /* dense */, a1, (const float *)nullptr /* no bias */, a2, tokens * 1LL);
// CHECK: moec_quantize_rows<96, 32, false>(a2, a3, a4, tokens * 1LL);

// PTX-LABEL: // ---- ptx sm_80 ----
// PTX-NOT: mma
// PTX: .entry moec_step_0(
// PTX-NOT: mma
// PTX: fma.rn.f32
// PTX-NOT: mma
// PTX: .entry moec_step_1(
// PTX-NOT: mma
// PTX-LABEL: // ---- ptx sm_89 ----
// PTX-NOT: mma
// PTX: .entry moec_step_1(
// PTX-NOT: mma
// PTX-LABEL: // ---- ptx sm_90a ----
// PTX-NOT: mma
// PTX: .entry moec_step_1(
// PTX-NOT: mma

func.func @forward(%x: tensor<?x64xf32>, %w0: tensor<128x64xbf16>,
                   %b0: tensor<128xbf16>, %w1: tensor<192x128xf32>)
    -> (tensor<?x96xf8E4M3FN>, tensor<?x3xf32>) {
  %h = moe.matmul %x, %w0 bias %b0
      : tensor<?x64xf32>, tensor<128x64xbf16>, tensor<128xbf16>
      -> tensor<?x128xf32>
  %y, %yq, %ys = moe.matmul %h, %w1
      {epilogue = #moe.epilogue<silu_mul>,
       quantize = #moe.block_scale<format = e4m3fn, block = [1, 32]>}
      : tensor<?x128xf32>, tensor<192x128xf32>
      -> tensor<?x96xf32>, tensor<?x96xf8E4M3FN>, tensor<?x3xf32>
  return %yq, %ys : tensor<?x96xf8E4M3FN>, tensor<?x3xf32>
}
