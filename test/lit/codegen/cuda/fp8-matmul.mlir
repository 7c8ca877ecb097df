// Dense block-scaled FP8 GEMM with a bias; K = 320 ends in a partial scale
// block (3 blocks) and N = 192 in a partial column tile.
// RUN: moec %s --from=fp8 --compile-to=codegen --target=sm_89 | FileCheck %s
// RUN: moec %s --from=fp8 --compile-to=codegen --target=sm_80,sm_89,sm_90 --emit-ptx | FileCheck %s --check-prefix=PTX

// CHECK: // step 0: moec_step_0 grid (2, ceil(T/64), 1) block (128, 1, 1) smem 0
// CHECK-NOT: // step 0:
// CHECK-LABEL: // ---- step 0: moe.fp8_matmul ----
// CHECK: // moec_step_0: block-scaled FP8 GEMM, y[rows, 192] = x[rows, 320] * w[192, 320]^T + bias.
// CHECK-NEXT: // Grid (column tiles of 128, row tiles of 64), 128 threads.
// CHECK-NEXT: extern "C" __global__ void __launch_bounds__(128) moec_step_0(const moec_fp8 *__restrict__ a0, const float *__restrict__ a1, const moec_fp8 *__restrict__ a2, const float *__restrict__ a3, const float *__restrict__ a4, float *__restrict__ a5, void *__restrict__ workspace, long long tokens) {
// CHECK-NEXT:   moec_fp8_gemm<192, 320, 128, false, 0, true, float>(a0, a1, (const int *)nullptr /* dense */, a2, a3, a4, a5, tokens * 1LL);
// CHECK-NEXT: }

// PTX-LABEL: // ---- ptx sm_80 ----
// PTX-NOT: e4m3
// PTX-NOT: wgmma
// PTX: mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
// PTX-NOT: e4m3
// PTX-NOT: wgmma
// PTX-LABEL: // ---- ptx sm_89 ----
// PTX-NOT: wgmma
// PTX: mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32
// PTX-NOT: wgmma
// PTX-LABEL: // ---- ptx sm_90a ----
// PTX-NOT: mma.sync
// PTX: wgmma.mma_async.sync.aligned.m64n128k32.f32.e4m3.e4m3
// PTX-NOT: mma.sync

func.func @forward(%x: tensor<?x320xf8E4M3FN>, %xs: tensor<?x3xf32>,
                   %w: tensor<192x320xf8E4M3FN>, %ws: tensor<2x3xf32>,
                   %bias: tensor<192xf32>) -> tensor<?x192xf32> {
  %y = moe.fp8_matmul %x, %xs, %w, %ws bias %bias
      {act_scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>,
       weight_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>}
      : tensor<?x320xf8E4M3FN>, tensor<?x3xf32>, tensor<192x320xf8E4M3FN>,
        tensor<2x3xf32>, tensor<192xf32> -> tensor<?x192xf32>
  return %y : tensor<?x192xf32>
}
