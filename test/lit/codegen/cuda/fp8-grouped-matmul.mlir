// The gate/up GEMM of the routed experts: block-scaled FP8 grouped GEMM with
// the SwiGLU (silu_mul) epilogue and fused quantization of its result, as
// `moe.fp8_grouped_matmul` after --moec-fuse-quantize.
// RUN: moec %s --from=fp8 --compile-to=codegen --target=sm_89 | FileCheck %s
// RUN: moec %s --from=fp8 --compile-to=codegen --target=sm_80,sm_89,sm_90 --emit-ptx | FileCheck %s --check-prefix=PTX

// Row tiles: ceil(T/64) for the rows plus one partial tile per expert (8);
// column tiles: N/2 = 128 result columns in tiles of 64.
// CHECK: // step 0: moec_step_0 grid (2, ceil(T/64)+8, 1) block (128, 1, 1) smem 0
// CHECK-NEXT: // step 0: moec_step_0_quantize grid (T, 1, 1) block (32, 1, 1) smem 0
// CHECK: template <int BM, int E>
// CHECK-NEXT: __device__ __forceinline__ bool moec_gemm_row_tile(
// CHECK: #if defined(__CUDA_ARCH_FEAT_SM90_ALL)
// CHECK-NEXT: #define MOEC_GEMM_WGMMA 1
// CHECK-NEXT: #elif __CUDA_ARCH__ >= 890
// CHECK-NEXT: #define MOEC_GEMM_MMA_FP8 1
// CHECK: wgmma.mma_async.sync.aligned.m64n128k32.f32.e4m3.e4m3
// CHECK: template <int N, int K, int SB, bool SILU, int E, bool HAS_BIAS, typename BT>
// CHECK-NEXT: __device__ __forceinline__ void moec_fp8_gemm(
// CHECK-LABEL: // ---- step 0: moe.fp8_grouped_matmul ----
// CHECK: // moec_step_0: block-scaled FP8 GEMM per expert, y[rows, 128] = x[rows, 128] * w[8, 256, 128]^T, silu_mul epilogue.
// CHECK: extern "C" __global__ void __launch_bounds__(128) moec_step_0(const moec_fp8 *__restrict__ a0, const float *__restrict__ a1, const int *__restrict__ a2, const moec_fp8 *__restrict__ a3, const float *__restrict__ a4, float *__restrict__ a5, moec_fp8 *__restrict__ a6, float *__restrict__ a7, void *__restrict__ workspace, long long tokens) {
// CHECK-NEXT:   moec_fp8_gemm<256, 128, 128, true, 8, false, float>(a0, a1, a2, a3, a4, (const float *)nullptr /* no bias */, a5, tokens * 1LL);
// CHECK: moec_step_0_quantize(
// CHECK-NEXT: moec_quantize_rows<128, 128, false>(a5, a6, a7, tokens * 1LL);

// PTX-LABEL: // ---- ptx sm_80 ----
// PTX: .entry moec_step_0(
// PTX-NOT: e4m3
// PTX-NOT: wgmma
// PTX: mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
// PTX-NOT: e4m3
// PTX-NOT: wgmma
// PTX: .entry moec_step_0_quantize(
// PTX-LABEL: // ---- ptx sm_89 ----
// PTX: .entry moec_step_0(
// PTX-NOT: wgmma
// PTX-NOT: bf16.bf16
// PTX: mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32
// PTX-NOT: wgmma
// PTX-NOT: bf16.bf16
// PTX: .entry moec_step_0_quantize(
// PTX-LABEL: // ---- ptx sm_90a ----
// PTX: .entry moec_step_0(
// PTX-NOT: mma.sync
// PTX: fence.proxy.async.shared::cta
// PTX-NOT: mma.sync
// PTX: wgmma.fence.sync.aligned
// PTX-NOT: mma.sync
// PTX: wgmma.mma_async.sync.aligned.m64n128k32.f32.e4m3.e4m3
// PTX-NOT: mma.sync
// PTX: wgmma.commit_group.sync.aligned
// PTX-NOT: mma.sync
// PTX: wgmma.wait_group.sync.aligned 0
// PTX-NOT: mma.sync
// PTX: .entry moec_step_0_quantize(

func.func @forward(%rows: tensor<?x128xf8E4M3FN>, %rs: tensor<?x1xf32>,
                   %offsets: tensor<9xi32>, %w: tensor<8x256x128xf8E4M3FN>,
                   %ws: tensor<8x2x1xf32>)
    -> (tensor<?x128xf8E4M3FN>, tensor<?x1xf32>) {
  %y, %yq, %ys = moe.fp8_grouped_matmul %rows, %rs, %offsets, %w, %ws
      {act_scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>,
       weight_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>,
       epilogue = #moe.epilogue<silu_mul>,
       quantize = #moe.block_scale<format = e4m3fn, block = [1, 128]>}
      : tensor<?x128xf8E4M3FN>, tensor<?x1xf32>, tensor<9xi32>,
        tensor<8x256x128xf8E4M3FN>, tensor<8x2x1xf32>
      -> tensor<?x128xf32>, tensor<?x128xf8E4M3FN>, tensor<?x1xf32>
  return %yq, %ys : tensor<?x128xf8E4M3FN>, tensor<?x1xf32>
}
