// moe.dispatch as CUDA: four launches (count per chunk of 256 pairs, one-block
// scan, stable positions, row copy) sharing a workspace of one int per
// (chunk, expert) at max_tokens; the kernels compile with NVRTC for every
// CUDA target; too many experts for the shared-memory counters is a
// diagnostic.
// RUN: split-file %s %t
// RUN: moec %t/deepseek.mlir --from=fp8 --compile-to=codegen --target=sm_89 --max-tokens=4096 | FileCheck %s --check-prefix=DS
// RUN: moec %t/deepseek.mlir --from=fp8 --compile-to=codegen --target=sm_80,sm_89,sm_90 --emit-ptx | FileCheck %s --check-prefix=PTX
// RUN: moec %t/convert.mlir --from=fp8 --compile-to=codegen --target=sm_89 | FileCheck %s --check-prefix=CVT
// RUN: moec %t/convert.mlir --from=fp8 --compile-to=codegen --target=sm_80,sm_89,sm_90 --emit-ptx | FileCheck %s --check-prefix=PTX
// RUN: not moec %t/too-many-experts.mlir --from=fp8 --compile-to=codegen --target=sm_89 2>&1 | FileCheck %s --check-prefix=ERR

// DeepSeek-V3: 256 routed experts + 1 folded shared expert, k = 8 + 1.
// Workspace: ceil(4096 * 9 / 256) = 144 chunks x 257 experts x 4 bytes.
// DS:       // step 0: moec_step_0_count grid (ceil(9*T/256), 1, 1) block (256, 1, 1) smem 0
// DS-NEXT:  // step 0: moec_step_0_scan grid (1, 1, 1) block (1024, 1, 1) smem 0
// DS-NEXT:  // step 0: moec_step_0_positions grid (ceil(9*T/256), 1, 1) block (256, 1, 1) smem 0
// DS-NEXT:  // step 0: moec_step_0_rows grid (9*T, 1, 1) block (256, 1, 1) smem 0
// DS-NEXT:  // workspace 148032 bytes
// DS:       // ---- library routing_common ----
// DS:       // ---- library dispatch ----
// DS:       // moe.dispatch: 257 experts, k = 9, hidden 7168; chunks of 256 pairs.
// DS:       moec_step_0_count(const float *__restrict__ a0, const int *__restrict__ a1, float *__restrict__ a2, int *__restrict__ a3, int *__restrict__ a4, void *__restrict__ workspace, long long tokens) {
// DS-NEXT:    moec_dispatch_count<257, 9, 256>(a1, (int *)workspace, tokens);
// DS:       moec_step_0_scan(
// DS-NEXT:    moec_dispatch_scan<257, 9, 256, 1024>((int *)workspace, a3, tokens);
// DS:       moec_step_0_positions(
// DS-NEXT:    moec_dispatch_positions<257, 9, 256>(a1, (int *)workspace, a4, tokens);
// DS:       moec_step_0_rows(
// DS-NEXT:    moec_dispatch_rows<9, 7168, 256>(a0, a4, a2, tokens);

// i64 indices and f32 rows converted to bf16 (moec_routing_copy through f32).
// CVT:      // workspace 64 bytes
// CVT:      moec_step_0_count(const float *__restrict__ a0, const long long *__restrict__ a1, moec_bf16 *__restrict__ a2,
// CVT:      moec_dispatch_rows<3, 40, 256>(a0, a4, a2, tokens);

// PTX:      // ---- ptx sm_80 ----
// PTX:      .visible .entry moec_step_0_count(
// PTX:      .visible .entry moec_step_0_scan(
// PTX:      .visible .entry moec_step_0_positions(
// PTX:      .visible .entry moec_step_0_rows(
// PTX:      // ---- ptx sm_89 ----
// PTX:      .visible .entry moec_step_0_count(
// PTX:      .visible .entry moec_step_0_scan(
// PTX:      .visible .entry moec_step_0_positions(
// PTX:      .visible .entry moec_step_0_rows(
// PTX:      // ---- ptx sm_90a ----
// PTX:      .visible .entry moec_step_0_count(
// PTX:      .visible .entry moec_step_0_scan(
// PTX:      .visible .entry moec_step_0_positions(
// PTX:      .visible .entry moec_step_0_rows(

// ERR: error: cannot emit CUDA for step 0: too many experts for the dispatch kernels

//--- deepseek.mlir
func.func @forward(%x: tensor<?x7168xf32>, %idx: tensor<?x9xi32>) -> (tensor<?x7168xf32>, tensor<258xi32>, tensor<?xi32>) {
  %rows, %offsets, %pos = moe.dispatch %x, %idx
      : tensor<?x7168xf32>, tensor<?x9xi32> -> tensor<?x7168xf32>, tensor<258xi32>, tensor<?xi32>
  return %rows, %offsets, %pos : tensor<?x7168xf32>, tensor<258xi32>, tensor<?xi32>
}

//--- convert.mlir
func.func @forward(%x: tensor<?x40xf32>, %idx: tensor<?x3xi64>) -> (tensor<?x40xbf16>, tensor<9xi32>, tensor<?xi32>) {
  %rows, %offsets, %pos = moe.dispatch %x, %idx
      : tensor<?x40xf32>, tensor<?x3xi64> -> tensor<?x40xbf16>, tensor<9xi32>, tensor<?xi32>
  return %rows, %offsets, %pos : tensor<?x40xbf16>, tensor<9xi32>, tensor<?xi32>
}

//--- too-many-experts.mlir
func.func @forward(%x: tensor<?x8xf32>, %idx: tensor<?x2xi32>) -> (tensor<?x8xf32>, tensor<7001xi32>, tensor<?xi32>) {
  %rows, %offsets, %pos = moe.dispatch %x, %idx
      : tensor<?x8xf32>, tensor<?x2xi32> -> tensor<?x8xf32>, tensor<7001xi32>, tensor<?xi32>
  return %rows, %offsets, %pos : tensor<?x8xf32>, tensor<7001xi32>, tensor<?xi32>
}
