// moe.combine as CUDA after a dispatch (so `rows` and `positions` hold k rows
// per token): grid (T, ceil(H / 256)), one thread per (token, channel)
// summing the k slots then the residual; compiles with NVRTC for every CUDA
// target.
// RUN: moec %s --from=fp8 --compile-to=codegen --target=sm_89 | FileCheck %s
// RUN: moec %s --from=fp8 --compile-to=codegen --target=sm_80,sm_89,sm_90 --emit-ptx | FileCheck %s --check-prefix=PTX

// CHECK:      // step 1: moec_step_1 grid (T, 2, 1) block (256, 1, 1) smem 0
// CHECK:      // ---- library combine ----
// CHECK:      // moe.combine: k = 3, hidden 300; grid (tokens, ceil(300 / 256)).
// CHECK-NEXT: extern "C" __global__ void __launch_bounds__(256) moec_step_1(const float *__restrict__ a0, const int *__restrict__ a1, const float *__restrict__ a2, const moec_bf16 *__restrict__ a3, moec_bf16 *__restrict__ a4, void *__restrict__ workspace, long long tokens) {
// CHECK-NEXT:   moec_combine<3, 300, true, 256>(a0, a1, a2, a3, a4, tokens, tokens * 3LL);

// PTX:      // ---- ptx sm_80 ----
// PTX:      .visible .entry moec_step_1(
// PTX:      // ---- ptx sm_89 ----
// PTX:      .visible .entry moec_step_1(
// PTX:      // ---- ptx sm_90a ----
// PTX:      .visible .entry moec_step_1(

func.func @forward(%x: tensor<?x300xf32>, %idx: tensor<?x3xi32>, %w: tensor<?x3xf32>, %res: tensor<?x300xbf16>) -> tensor<?x300xbf16> {
  %rows, %offsets, %pos = moe.dispatch %x, %idx
      : tensor<?x300xf32>, tensor<?x3xi32> -> tensor<?x300xf32>, tensor<9xi32>, tensor<?xi32>
  %y = moe.combine %rows, %pos, %w residual %res
      : tensor<?x300xf32>, tensor<?xi32>, tensor<?x3xf32>, tensor<?x300xbf16> -> tensor<?x300xbf16>
  return %y : tensor<?x300xbf16>
}
