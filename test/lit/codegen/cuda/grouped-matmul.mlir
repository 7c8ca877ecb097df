// f32-activation grouped GEMM over bf16 expert weights with the SwiGLU
// (silu_mul) epilogue: the f32 SIMT kernel, grid sized for the worst case.
// RUN: moec %s --from=fp8 --compile-to=codegen --target=sm_89 | FileCheck %s
// RUN: moec %s --from=fp8 --compile-to=codegen --target=sm_80,sm_89,sm_90 --emit-ptx | FileCheck %s --check-prefix=PTX

// CHECK: // step 0: moec_step_0 grid (1, ceil(T/64)+4, 1) block (256, 1, 1) smem 0
// CHECK: __device__ __forceinline__ void moec_gemm_zero_unowned(
// CHECK-LABEL: // ---- step 0: moe.grouped_matmul ----
// CHECK: // moec_step_0: f32 GEMM per expert, y[rows, 32] = x[rows, 64] * w[4, 64, 64]^T, silu_mul epilogue.
// CHECK-NEXT: // Grid (column tiles of 32, row tiles of 64 + one partial tile per expert), 256 threads.
// CHECK: moec_f32_gemm<64, 64, true, 4, false, moec_bf16, float>(a0, a1, a2, (const float *)nullptr /* no bias */, a3, tokens * 1LL);

// PTX-LABEL: // ---- ptx sm_80 ----
// PTX: .entry moec_step_0(
// PTX-LABEL: // ---- ptx sm_89 ----
// PTX: .entry moec_step_0(
// PTX-LABEL: // ---- ptx sm_90a ----
// PTX: .entry moec_step_0(

func.func @forward(%rows: tensor<?x64xf32>, %offsets: tensor<5xi32>,
                   %w: tensor<4x64x64xbf16>) -> tensor<?x32xf32> {
  %y = moe.grouped_matmul %rows, %offsets, %w {epilogue = #moe.epilogue<silu_mul>}
      : tensor<?x64xf32>, tensor<5xi32>, tensor<4x64x64xbf16> -> tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}
