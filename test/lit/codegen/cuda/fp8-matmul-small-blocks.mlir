// Scale blocks the tensor-core FP8 kernel does not tile (not a multiple of
// 64, as in tiny test models) take the SIMT kernel: e4m3 codes decoded and
// scaled on load, f32 FMA, 256 threads, 64x64 tiles, on every target.
// RUN: moec %s --from=fp8 --compile-to=codegen --target=sm_89 | FileCheck %s
// RUN: moec %s --from=fp8 --compile-to=codegen --target=sm_80,sm_89,sm_90 --emit-ptx | FileCheck %s --check-prefix=PTX

// CHECK: // step 0: moec_step_0 grid (1, ceil(T/64), 1) block (256, 1, 1) smem 0
// CHECK: // step 1: moec_step_1 grid (1, ceil(T/64)+4, 1) block (256, 1, 1) smem 0
// CHECK-LABEL: // ---- step 0: moe.fp8_matmul ----
// CHECK: // moec_step_0: block-scaled FP8 (SIMT, small blocks) GEMM, y[rows, 64] = x[rows, 64] * w[64, 64]^T.
// CHECK: moec_simt_gemm<64, 64, 32, false, 0, false, moec_fp8, moec_fp8, float>(a0, a1, (const int *)nullptr /* dense */, a2, a3, (const float *)nullptr /* no bias */, a4, tokens * 1LL);
// CHECK-LABEL: // ---- step 1: moe.fp8_grouped_matmul ----
// CHECK: moec_simt_gemm<32, 16, 16, true, 4, false, moec_fp8, moec_fp8, float>(a0, a1, a2, a3, a4, (const float *)nullptr /* no bias */, a5, tokens * 1LL);

// PTX-COUNT-3: .entry moec_step_1(
// PTX-NOT: mma.sync
// PTX-NOT: wgmma

func.func @forward(%x: tensor<?x64xf8E4M3FN>, %xs: tensor<?x2xf32>,
                   %w: tensor<64x64xf8E4M3FN>, %ws: tensor<2x2xf32>,
                   %rows: tensor<?x16xf8E4M3FN>,
                   %rs: tensor<?x1xf32>, %offsets: tensor<5xi32>,
                   %ew: tensor<4x32x16xf8E4M3FN>, %ews: tensor<4x2x1xf32>)
    -> (tensor<?x64xf32>, tensor<?x16xf32>) {
  %y = moe.fp8_matmul %x, %xs, %w, %ws
      {act_scheme = #moe.block_scale<format = e4m3fn, block = [1, 32]>,
       weight_scheme = #moe.block_scale<format = e4m3fn, block = [32, 32]>}
      : tensor<?x64xf8E4M3FN>, tensor<?x2xf32>, tensor<64x64xf8E4M3FN>,
        tensor<2x2xf32> -> tensor<?x64xf32>
  %e = moe.fp8_grouped_matmul %rows, %rs, %offsets, %ew, %ews
      {act_scheme = #moe.block_scale<format = e4m3fn, block = [1, 16]>,
       weight_scheme = #moe.block_scale<format = e4m3fn, block = [16, 16]>,
       epilogue = #moe.epilogue<silu_mul>}
      : tensor<?x16xf8E4M3FN>, tensor<?x1xf32>, tensor<5xi32>,
        tensor<4x32x16xf8E4M3FN>, tensor<4x2x1xf32> -> tensor<?x16xf32>
  return %y, %e : tensor<?x64xf32>, tensor<?x16xf32>
}
