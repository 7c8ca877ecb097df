// The gate/up GEMM of the routed experts: block-scaled FP8 grouped GEMM with
// the SwiGLU (silu_mul) epilogue and fused quantization of its result, as
// `moe.fp8_grouped_matmul` after --moec-fuse-quantize. On sm_90a the GEMM
// loads its tiles by TMA through two tensor maps; the quantize launch has
// none.
// RUN: moec %s --from=fp8 --compile-to=codegen --target=sm_89 --max-tokens=96 | FileCheck %s
// RUN: moec %s --from=fp8 --compile-to=codegen --target=sm_80,sm_89,sm_90 --emit-ptx | FileCheck %s --check-prefix=PTX
// RUN: moec %s --from=fp8 --compile-to=codegen --target=sm_90 --cuda-tma=false | FileCheck %s --check-prefix=NOTMA
// The artifact's manifest carries the maps (arg, dtype, dims, strides, box,
// swizzle) on the GEMM launch; the cubin is built by NVRTC (ptxas accepts the
// TMA and mbarrier PTX).
// RUN: rm -rf %t && mkdir -p %t
// RUN: moec %s --from=fp8 --target=sm_90 --max-tokens=96 -o %t/g.moea 2>&1
// RUN: %python -c "import json, sys; sys.path.insert(0, '%moec_src/test/e2e'); import moea; m = moea.decode_manifest(moea.read_sections('%t/g.moea')['manifest']); [print(json.dumps(l, separators=(',', ':'))) for l in m['steps'][0]['cuda']]" | FileCheck %s --check-prefix=MANIFEST

// Row tiles: ceil(T/64) for the rows plus one partial tile per expert (8);
// column tiles: N/2 = 128 result columns in tiles of 64. Maps: the rows
// [T, 128] as {K, 96 rows at --max-tokens=96}, the weights [8, 256, 128] as
// {K, N, E}.
// CHECK: // step 0: moec_step_0 grid (2, ceil(T/64)+8, 1) block (128, 1, 1) smem 0 tma(a0 128x96 strides 128 box 64x64 sw64, a3 128x256x8 strides 128x32768 box 64x64x1 sw64)
// CHECK-NEXT: // step 0: moec_step_0_quantize grid (T, 1, 1) block (32, 1, 1) smem 0{{$}}
// CHECK: template <int BM, int E>
// CHECK-NEXT: __device__ __forceinline__ bool moec_gemm_row_tile(
// CHECK: #if defined(__CUDA_ARCH_FEAT_SM90_ALL)
// CHECK-NEXT: #define MOEC_GEMM_WGMMA 1
// CHECK-NEXT: #elif __CUDA_ARCH__ >= 890
// CHECK-NEXT: #define MOEC_GEMM_MMA_FP8 1
// CHECK: wgmma.mma_async.sync.aligned.m64n128k32.f32.e4m3.e4m3
// CHECK: template <int N, int K, int SB, bool SILU, int E, bool HAS_BIAS, typename BT,
// CHECK-NEXT: bool TMA>
// CHECK-NEXT: __device__ __forceinline__ void moec_fp8_gemm(
// CHECK-LABEL: // ---- step 0: moe.fp8_grouped_matmul ----
// CHECK: // moec_step_0: block-scaled FP8 GEMM per expert, y[rows, 128] = x[rows, 128] * w[8, 256, 128]^T, silu_mul epilogue.
// CHECK-NEXT: // Grid (column tiles of 64, row tiles of 64 + one partial tile per expert), 128 threads, TMA loads on sm_90a (tm0: a0, tm1: a3).
// CHECK-NEXT: extern "C" __global__ void __launch_bounds__(128) moec_step_0(const moec_fp8 *__restrict__ a0, const float *__restrict__ a1, const int *__restrict__ a2, const moec_fp8 *__restrict__ a3, const float *__restrict__ a4, float *__restrict__ a5, moec_fp8 *__restrict__ a6, float *__restrict__ a7, void *__restrict__ workspace, long long tokens, const __grid_constant__ moec_tensor_map tm0, const __grid_constant__ moec_tensor_map tm1) {
// CHECK-NEXT:   moec_fp8_gemm<256, 128, 128, true, 8, false, float, true>(a0, a1, a2, a3, a4, (const float *)nullptr /* no bias */, a5, tokens * 1LL, &tm0, &tm1);
// CHECK: extern "C" __global__ void __launch_bounds__(32) moec_step_0_quantize(const moec_fp8 *__restrict__ a0, const float *__restrict__ a1, const int *__restrict__ a2, const moec_fp8 *__restrict__ a3, const float *__restrict__ a4, float *__restrict__ a5, moec_fp8 *__restrict__ a6, float *__restrict__ a7, void *__restrict__ workspace, long long tokens) {
// CHECK-NEXT: moec_quantize_rows<128, 128, false>(a5, a6, a7, tokens * 1LL);

// NOTMA: // step 0: moec_step_0 grid (2, ceil(T/64)+8, 1) block (128, 1, 1) smem 0{{$}}
// NOTMA: moec_fp8_gemm<256, 128, 128, true, 8, false, float, false>(a0, a1, a2, a3, a4, (const float *)nullptr /* no bias */, a5, tokens * 1LL, (const moec_tensor_map *)nullptr, (const moec_tensor_map *)nullptr /* no TMA */);

// MANIFEST: {"kernel":"moec_step_0","grid":[{{.*}}],"block":[128,1,1],"shared_bytes":0,"tensor_maps":[{"arg":0,"dtype":"F8E4M3FN","dims":[128,96],"strides":[128],"box":[64,64],"swizzle":"SWIZZLE_64B"},{"arg":3,"dtype":"F8E4M3FN","dims":[128,256,8],"strides":[128,32768],"box":[64,64,1],"swizzle":"SWIZZLE_64B"}]}
// MANIFEST-NEXT: {"kernel":"moec_step_0_quantize",{{.*}}"tensor_maps":[]}

// PTX-LABEL: // ---- ptx sm_80 ----
// PTX: .entry moec_step_0(
// PTX-NOT: e4m3
// PTX-NOT: wgmma
// PTX-NOT: cp.async.bulk
// PTX-NOT: mbarrier
// PTX: mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
// PTX-NOT: e4m3
// PTX-NOT: wgmma
// PTX-NOT: cp.async.bulk
// PTX-NOT: mbarrier
// PTX: .entry moec_step_0_quantize(
// PTX-LABEL: // ---- ptx sm_89 ----
// PTX: .entry moec_step_0(
// PTX-NOT: wgmma
// PTX-NOT: bf16.bf16
// PTX-NOT: cp.async.bulk
// PTX-NOT: mbarrier
// PTX: mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32
// PTX-NOT: wgmma
// PTX-NOT: bf16.bf16
// PTX-NOT: cp.async.bulk
// PTX-NOT: mbarrier
// PTX: .entry moec_step_0_quantize(
// PTX-LABEL: // ---- ptx sm_90a ----
// PTX: .entry moec_step_0(
// PTX-NOT: mma.sync
// PTX-NOT: cp.async.cg
// PTX: mbarrier.init.shared::cta.b64
// PTX: cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes
// PTX: cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes
// PTX: cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes
// PTX-NOT: mma.sync
// PTX-NOT: fence.proxy.async
// PTX: mbarrier.try_wait.parity.shared::cta.b64
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
