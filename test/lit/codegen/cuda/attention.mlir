// moe.attention as a flash-style CUDA kernel: one block of 8 warps per
// (8 queries, query head), key/value tiles sized to stay within 40 KiB of
// static shared memory (32 keys, or 16 for 256-wide heads); compiles with
// NVRTC for every CUDA target; head dims above 256 are a diagnostic.
// RUN: split-file %s %t
// RUN: moec %t/mla.mlir --from=fp8 --compile-to=codegen --target=sm_89 | FileCheck %s --check-prefix=MLA
// RUN: moec %t/mla.mlir --from=fp8 --compile-to=codegen --target=sm_80,sm_89,sm_90 --emit-ptx | FileCheck %s --check-prefix=PTX
// RUN: moec %t/gqa.mlir --from=fp8 --compile-to=codegen --target=sm_89 | FileCheck %s --check-prefix=GQA
// RUN: moec %t/gqa.mlir --from=fp8 --compile-to=codegen --target=sm_80,sm_89,sm_90 --emit-ptx | FileCheck %s --check-prefix=PTX
// RUN: not moec %t/wide.mlir --from=fp8 --compile-to=codegen --target=sm_89 2>&1 | FileCheck %s --check-prefix=ERR

// DeepSeek-V3 MLA, expanded: 128 heads, q/k head dim 192, v head dim 128.
// MLA:      // step 0: moec_step_0 grid (ceil(T/8), 128, 1) block (256, 1, 1) smem 0
// MLA:      // ---- library attention ----
// MLA:      moec_attention(const Q *__restrict__ q, const KT *__restrict__ k,
// MLA:      // moe.attention: 128 query heads, 128 kv heads, head dims 192/128, causal.
// MLA-NEXT: // Grid (ceil(T / 8), 128); 8 warps, one query row each; key tiles of 32.
// MLA-NEXT: extern "C" __global__ void __launch_bounds__(256) moec_step_0(const float *__restrict__ a0, const float *__restrict__ a1, const float *__restrict__ a2, float *__restrict__ a3, void *__restrict__ workspace, long long tokens) {
// MLA-NEXT:   moec_attention<128, 128, 192, 128, true, 8, 32>(
// MLA-NEXT:       a0, a1, a2, a3, tokens, 0x1.279a74p-4f);

// GQA with bf16 activations, 256-wide heads: 16-key tiles, bf16 result.
// GQA:      // step 0: moec_step_0 grid (ceil(T/8), 8, 1) block (256, 1, 1) smem 0
// GQA:      // moe.attention: 8 query heads, 2 kv heads, head dims 256/256.
// GQA:      moec_step_0(const moec_bf16 *__restrict__ a0, const moec_bf16 *__restrict__ a1, const moec_bf16 *__restrict__ a2, moec_bf16 *__restrict__ a3, void *__restrict__ workspace, long long tokens) {
// GQA-NEXT:   moec_attention<8, 2, 256, 256, false, 8, 16>(
// GQA-NEXT:       a0, a1, a2, a3, tokens, 0x1p-4f);

// PTX:      // ---- ptx sm_80 ----
// PTX:      .visible .entry moec_step_0(
// PTX:      // ---- ptx sm_89 ----
// PTX:      .visible .entry moec_step_0(
// PTX:      // ---- ptx sm_90a ----
// PTX:      .visible .entry moec_step_0(

// ERR: error: cannot emit CUDA for step 0: head dimensions above 256 are not supported (q/k 512, v 512)

//--- mla.mlir
func.func @forward(%q: tensor<?x128x192xf32>, %k: tensor<?x128x192xf32>, %v: tensor<?x128x128xf32>) -> tensor<?x128x128xf32> {
  %o = moe.attention %q, %k, %v {scale = 0.07216878364870322 : f64, causal}
      : tensor<?x128x192xf32>, tensor<?x128x192xf32>, tensor<?x128x128xf32> -> tensor<?x128x128xf32>
  return %o : tensor<?x128x128xf32>
}

//--- gqa.mlir
func.func @forward(%q: tensor<?x8x256xbf16>, %k: tensor<?x2x256xbf16>, %v: tensor<?x2x256xbf16>) -> tensor<?x8x256xbf16> {
  %o = moe.attention %q, %k, %v {scale = 0.0625 : f64}
      : tensor<?x8x256xbf16>, tensor<?x2x256xbf16>, tensor<?x2x256xbf16> -> tensor<?x8x256xbf16>
  return %o : tensor<?x8x256xbf16>
}

//--- wide.mlir
func.func @forward(%q: tensor<?x2x512xf32>, %k: tensor<?x2x512xf32>, %v: tensor<?x2x512xf32>) -> tensor<?x2x512xf32> {
  %o = moe.attention %q, %k, %v {scale = 0.04 : f64, causal}
      : tensor<?x2x512xf32>, tensor<?x2x512xf32>, tensor<?x2x512xf32> -> tensor<?x2x512xf32>
  return %o : tensor<?x2x512xf32>
}
