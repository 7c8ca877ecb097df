// Dense block-scaled FP8 GEMM with a bias; K = 320 ends in a partial scale
// block (3 blocks) and N = 192 in a partial column tile. The launch passes
// two tensor maps (TMA loads on sm_90a; the other targets ignore them);
// --cuda-tma=false keeps the cp.async path on sm_90a too.
// RUN: moec %s --from=fp8 --compile-to=codegen --target=sm_89 | FileCheck %s
// RUN: moec %s --from=fp8 --compile-to=codegen --target=sm_80,sm_89,sm_90 --emit-ptx | FileCheck %s --check-prefix=PTX
// RUN: moec %s --from=fp8 --compile-to=codegen --target=sm_90 --cuda-tma=false | FileCheck %s --check-prefix=NOTMA
// RUN: moec %s --from=fp8 --compile-to=codegen --target=sm_90 --cuda-tma=false --emit-ptx | FileCheck %s --check-prefix=NOTMA-PTX

// x [T, 320] as {K, rows at max_tokens = 128}; w [192, 320] as {K, N, E = 1}.
// CHECK: // step 0: moec_step_0 grid (2, ceil(T/64), 1) block (128, 1, 1) smem 0 tma(a0 320x128 strides 320 box 64x64 sw64, a2 320x192x1 strides 320x61440 box 64x64x1 sw64)
// CHECK-NOT: // step 0:
// CHECK: struct __align__(64) moec_tensor_map {
// CHECK-NEXT: unsigned long long opaque[16];
// CHECK: __device__ __forceinline__ void moec_gemm_mbar_init(unsigned long long *bar,
// CHECK: __device__ __forceinline__ void moec_gemm_mbar_init_fence() {
// CHECK: moec_gemm_mbar_arrive_expect_tx(unsigned long long *bar, unsigned int bytes) {
// CHECK: __device__ __forceinline__ int moec_gemm_mbar_try_wait(unsigned long long *bar,
// CHECK: __device__ __forceinline__ void moec_gemm_tma_load_2d(void *dst,
// CHECK: __device__ __forceinline__ void moec_gemm_tma_load_3d(void *dst,
// CHECK-LABEL: // ---- step 0: moe.fp8_matmul ----
// CHECK: // moec_step_0: block-scaled FP8 GEMM, y[rows, 192] = x[rows, 320] * w[192, 320]^T + bias.
// CHECK-NEXT: // Grid (column tiles of 128, row tiles of 64), 128 threads, TMA loads on sm_90a (tm0: a0, tm1: a2).
// CHECK-NEXT: extern "C" __global__ void __launch_bounds__(128) moec_step_0(const moec_fp8 *__restrict__ a0, const float *__restrict__ a1, const moec_fp8 *__restrict__ a2, const float *__restrict__ a3, const float *__restrict__ a4, float *__restrict__ a5, void *__restrict__ workspace, long long tokens, const __grid_constant__ moec_tensor_map tm0, const __grid_constant__ moec_tensor_map tm1) {
// CHECK-NEXT:   moec_fp8_gemm<192, 320, 128, false, 0, true, float, true>(a0, a1, (const int *)nullptr /* dense */, a2, a3, a4, a5, tokens * 1LL, &tm0, &tm1);
// CHECK-NEXT: }

// sm_90a: TMA boxes (A 2-d, B 3-d) completing on mbarriers, no cp.async;
// the other targets keep cp.async and have no TMA or mbarrier.
// PTX-LABEL: // ---- ptx sm_80 ----
// PTX: .param .align 64 .b8 moec_step_0_param_8[128],
// PTX-NOT: e4m3
// PTX-NOT: wgmma
// PTX-NOT: cp.async.bulk
// PTX-NOT: mbarrier
// PTX: cp.async.cg.shared.global
// PTX-NOT: cp.async.bulk
// PTX-NOT: mbarrier
// PTX: mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
// PTX-NOT: e4m3
// PTX-NOT: wgmma
// PTX-NOT: cp.async.bulk
// PTX-NOT: mbarrier
// PTX-LABEL: // ---- ptx sm_89 ----
// PTX-NOT: wgmma
// PTX-NOT: cp.async.bulk
// PTX-NOT: mbarrier
// PTX: cp.async.cg.shared.global
// PTX-NOT: cp.async.bulk
// PTX-NOT: mbarrier
// PTX: mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32
// PTX-NOT: wgmma
// PTX-NOT: cp.async.bulk
// PTX-NOT: mbarrier
// PTX-LABEL: // ---- ptx sm_90a ----
// PTX-NOT: cp.async.cg
// PTX-NOT: mma.sync
// PTX: mbarrier.init.shared::cta.b64
// PTX: fence.mbarrier_init.release.cluster
// PTX: mbarrier.arrive.expect_tx.shared::cta.b64
// PTX: cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes
// PTX: cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes
// PTX: mbarrier.try_wait.parity.shared::cta.b64
// PTX: wgmma.mma_async.sync.aligned.m64n128k32.f32.e4m3.e4m3
// PTX-NOT: cp.async.cg
// PTX-NOT: fence.proxy.async
// PTX-NOT: mma.sync

// NOTMA: // step 0: moec_step_0 grid (2, ceil(T/64), 1) block (128, 1, 1) smem 0{{$}}
// NOTMA: // Grid (column tiles of 128, row tiles of 64), 128 threads.
// NOTMA-NEXT: extern "C" __global__ void __launch_bounds__(128) moec_step_0(const moec_fp8 *__restrict__ a0, const float *__restrict__ a1, const moec_fp8 *__restrict__ a2, const float *__restrict__ a3, const float *__restrict__ a4, float *__restrict__ a5, void *__restrict__ workspace, long long tokens) {
// NOTMA-NEXT:   moec_fp8_gemm<192, 320, 128, false, 0, true, float, false>(a0, a1, (const int *)nullptr /* dense */, a2, a3, a4, a5, tokens * 1LL, (const moec_tensor_map *)nullptr, (const moec_tensor_map *)nullptr /* no TMA */);

// NOTMA-PTX-LABEL: // ---- ptx sm_90a ----
// NOTMA-PTX-NOT: cp.async.bulk
// NOTMA-PTX-NOT: mbarrier
// NOTMA-PTX: cp.async.cg.shared.global
// NOTMA-PTX: fence.proxy.async.shared::cta
// NOTMA-PTX: wgmma.mma_async.sync.aligned.m64n128k32.f32.e4m3.e4m3
// NOTMA-PTX-NOT: cp.async.bulk
// NOTMA-PTX-NOT: mbarrier

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
