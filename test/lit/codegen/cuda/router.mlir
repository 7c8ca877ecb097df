// The fused router as CUDA: blocks of up to 8 tokens instantiating `moec_router`
// with the routing attribute as template constants; every kernel compiles
// with NVRTC for sm_80, sm_89 and sm_90a; an unsupported shape is a
// diagnostic naming the step.
// RUN: split-file %s %t
// RUN: moec %t/deepseek.mlir --from=fp8 --compile-to=codegen --target=sm_89 | FileCheck %s --check-prefix=DS
// RUN: moec %t/deepseek.mlir --from=fp8 --compile-to=codegen --target=sm_80,sm_89,sm_90 --emit-ptx | FileCheck %s --check-prefix=PTX
// RUN: moec %t/mixtral.mlir --from=fp8 --compile-to=codegen --target=sm_89 | FileCheck %s --check-prefix=MIX
// RUN: moec %t/mixtral.mlir --from=fp8 --compile-to=codegen --target=sm_80,sm_89,sm_90 --emit-ptx | FileCheck %s --check-prefix=PTX
// RUN: not moec %t/too-many-experts.mlir --from=fp8 --compile-to=codegen --target=sm_89 2>&1 | FileCheck %s --check-prefix=ERR

// DeepSeek-V3 scale: sigmoid, bias, 8 groups keep 4 by top-2 sum, top-8,
// renormalised, x2.5, one folded shared expert; 256 threads for 8 tokens.
// DS:       // step 0: moec_step_0 grid (ceil(T/8), 1, 1) block (256, 1, 1) smem 0
// DS:       // ---- library routing_common ----
// DS:       // ---- library router ----
// DS:       __device__ __forceinline__ bool moec_router_before(
// DS:       __device__ __forceinline__ void
// DS-NEXT:  moec_router_argbest(
// DS:       // moe.router: 256 experts, top-8 (+1 shared), 8 groups keep 4.
// DS-NEXT:  // Blocks of 256 threads for 8 tokens each (see moec_router).
// DS:       extern "C" __global__ void __launch_bounds__(256) moec_step_0(const float *__restrict__ a0, const moec_bf16 *__restrict__ a1, const float *__restrict__ a2, float *__restrict__ a3, int *__restrict__ a4, void *__restrict__ workspace, long long tokens) {
// DS-NEXT:    moec_router<256, 7168, 8, 1, 8, 4, false, true, true, true, 256, 8>(
// DS-NEXT:        a0, a1, a2, a3, a4, tokens, 0x1.4p+1f, 0x1.79ca1p-67f);

// Mixtral: softmax top-2 renormalised, no groups, no bias (a null pointer),
// an f32 gate; 8 experts need one warp, one token per block.
// MIX:      // step 0: moec_step_0 grid (T, 1, 1) block (32, 1, 1) smem 0
// MIX:      extern "C" __global__ void __launch_bounds__(32) moec_step_0(const moec_bf16 *__restrict__ a0, const float *__restrict__ a1, float *__restrict__ a2, int *__restrict__ a3, void *__restrict__ workspace, long long tokens) {
// MIX-NEXT:   moec_router<8, 64, 2, 0, 1, 1, true, false, true, false, 32, 1>(
// MIX-NEXT:       a0, a1, (const float *)nullptr, a2, a3, tokens, 0x1p+0f, 0x1.79ca1p-67f);

// PTX:      // ---- ptx sm_80 ----
// PTX:      .target sm_80
// PTX:      .visible .entry moec_step_0(
// PTX:      // ---- ptx sm_89 ----
// PTX:      .target sm_89
// PTX:      .visible .entry moec_step_0(
// PTX:      // ---- ptx sm_90a ----
// PTX:      .target sm_90a
// PTX:      .visible .entry moec_step_0(

// ERR: error: cannot emit CUDA for step 0: the router needs {{[0-9]+}} bytes of shared memory for 4096 experts (at most 48128)

//--- deepseek.mlir
func.func @forward(%x: tensor<?x7168xf32>, %gate: tensor<256x7168xbf16>, %bias: tensor<256xf32>) -> (tensor<?x9xf32>, tensor<?x9xi32>) {
  %w, %i = moe.router %x, %gate bias %bias
      {routing = #moe.routing<scoring = sigmoid, k = 8, n_group = 8,
                              topk_group = 4, group_score = top2_sum,
                              norm_topk_prob = true, routed_scaling_factor = 2.5>,
       shared_experts = 1 : i64}
      : tensor<?x7168xf32>, tensor<256x7168xbf16>, tensor<256xf32>
      -> tensor<?x9xf32>, tensor<?x9xi32>
  return %w, %i : tensor<?x9xf32>, tensor<?x9xi32>
}

//--- mixtral.mlir
func.func @forward(%x: tensor<?x64xbf16>, %gate: tensor<8x64xf32>) -> (tensor<?x2xf32>, tensor<?x2xi32>) {
  %w, %i = moe.router %x, %gate
      {routing = #moe.routing<scoring = softmax, k = 2, norm_topk_prob = true>}
      : tensor<?x64xbf16>, tensor<8x64xf32> -> tensor<?x2xf32>, tensor<?x2xi32>
  return %w, %i : tensor<?x2xf32>, tensor<?x2xi32>
}

//--- too-many-experts.mlir
func.func @forward(%x: tensor<?x8xf32>, %gate: tensor<4096x8xf32>) -> (tensor<?x1xf32>, tensor<?x1xi32>) {
  %w, %i = moe.router %x, %gate
      {routing = #moe.routing<scoring = softmax, k = 1>}
      : tensor<?x8xf32>, tensor<4096x8xf32> -> tensor<?x1xf32>, tensor<?x1xi32>
  return %w, %i : tensor<?x1xf32>, tensor<?x1xi32>
}
