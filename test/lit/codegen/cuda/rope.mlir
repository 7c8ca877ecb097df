// RoPE kernels: one block per token, cos/sin of the row's position computed
// once per frequency with accurate sincosf into shared memory, the inverse
// frequencies a per-step device table computed at compile time. Rotate-half
// with i32 positions (0), interleaved bf16 with i64 positions and linear
// scaling (1), interleaved with YaRN (2: blended frequencies and the
// attention factor 0.1 * ln(40) + 1).
// RUN: moec %s --from=fp8 --compile-to=codegen --target=sm_89 | FileCheck %s
// RUN: moec %s --from=fp8 --compile-to=codegen --target=sm_80,sm_89,sm_90 --emit-ptx | FileCheck %s --check-prefix=PTX

// CHECK: // step 0: moec_step_0 grid (T, 1, 1) block (32, 1, 1) smem 0
// CHECK-NEXT: // step 1: moec_step_1 grid (T, 1, 1) block (32, 1, 1) smem 0
// CHECK-NEXT: // step 2: moec_step_2 grid (T, 1, 1) block (32, 1, 1) smem 0
// CHECK-NOT: // step

// CHECK: // ---- library rope ----
// CHECK: __shared__ float cosines[kHalf], sines[kHalf];
// CHECK: sincosf(invFreq[i] * position, &s, &c);
// CHECK: const int b = INTERLEAVED ? a + 1 : a + kHalf;
// CHECK: moec_store(out, base + a, x1 * c - x2 * s);
// CHECK-NEXT: moec_store(out, base + b, x2 * c + x1 * s);
// CHECK-NOT: // ---- library rope ----

// theta^(-2i/16) for i < 8.
// CHECK-LABEL: // ---- step 0: moe.rope ----
// CHECK: // moe.rope: theta 10000.00, scaling none, rotate-half pairs; inverse frequencies
// CHECK: static __device__ const float moec_step_0_inv_freq[8] = {
// CHECK-NEXT: 1.000000000e+00f, 3.162277639e-01f, 1.000000015e-01f, 3.162277862e-02f,
// CHECK-NEXT: 9.999999776e-03f, 3.162277862e-03f, 1.000000047e-03f, 3.162277862e-04f,
// CHECK-NEXT: };
// CHECK: extern "C" __global__ void __launch_bounds__(32) moec_step_0(const float *__restrict__ a0, const int *__restrict__ a1, float *__restrict__ a2, void *__restrict__ workspace, long long tokens) {
// CHECK-NEXT: moec_rope_row<4, 16, false>(a0, a1, a2, moec_step_0_inv_freq, 1.000000000e+00f, tokens * 1LL);

// 500000^(-2i/8) / 4.
// CHECK-LABEL: // ---- step 1: moe.rope ----
// CHECK: // moe.rope: theta 500000.00, scaling linear x4.00, interleaved pairs; inverse frequencies
// CHECK: static __device__ const float moec_step_1_inv_freq[4] = {
// CHECK-NEXT: 2.500000000e-01f, 9.401507676e-03f, 3.535533615e-04f,
// CHECK: extern "C" __global__ void __launch_bounds__(32) moec_step_1(const moec_bf16 *__restrict__ a0, const long long *__restrict__ a1, moec_bf16 *__restrict__ a2,
// CHECK-NEXT: moec_rope_row<2, 8, true>(a0, a1, a2, moec_step_1_inv_freq, 1.000000000e+00f, tokens * 1LL);

// YaRN: the first frequencies extrapolate (unchanged), the last interpolate
// (divided by 40), the middle ones blend.
// CHECK-LABEL: // ---- step 2: moe.rope ----
// CHECK: // moe.rope: theta 10000.00, scaling yarn x40.00, interleaved pairs; inverse frequencies
// CHECK: static __device__ const float moec_step_2_inv_freq[32] = {
// CHECK-NEXT: 1.000000000e+00f, 7.498942018e-01f, 5.623413324e-01f, 4.216965139e-01f,
// CHECK: 7.905694474e-06f, 5.928434348e-06f, 4.445698323e-06f, 3.333803534e-06f,
// CHECK-NEXT: };
// CHECK: moec_rope_row<1, 64, true>(a0, a1, a2, moec_step_2_inv_freq, 1.368887901e+00f, tokens * 1LL);

// Every kernel compiles for the three targets, with the accurate sin/cos
// (no approximate instructions).
// PTX-LABEL: // ---- ptx sm_80 ----
// PTX-NOT: .approx
// PTX-DAG: .entry moec_step_0(
// PTX-DAG: .entry moec_step_1(
// PTX-DAG: .entry moec_step_2(
// PTX-NOT: .approx
// PTX-LABEL: // ---- ptx sm_89 ----
// PTX-NOT: .approx
// PTX-DAG: .entry moec_step_0(
// PTX-DAG: .entry moec_step_1(
// PTX-DAG: .entry moec_step_2(
// PTX-NOT: .approx
// PTX-LABEL: // ---- ptx sm_90a ----
// PTX-NOT: .approx
// PTX-DAG: .entry moec_step_0(
// PTX-DAG: .entry moec_step_1(
// PTX-DAG: .entry moec_step_2(
// PTX-NOT: .approx

func.func @forward(%q: tensor<?x4x16xf32>, %pos: tensor<?xi32>,
                   %k: tensor<?x2x8xbf16>, %pos64: tensor<?xi64>,
                   %pe: tensor<?x1x64xf32>)
    -> (tensor<?x4x16xf32>, tensor<?x2x8xbf16>, tensor<?x1x64xf32>) {
  %r0 = moe.rope %q, %pos {theta = 10000.0 : f64} : tensor<?x4x16xf32>, tensor<?xi32>
  %r1 = moe.rope %k, %pos64 {theta = 500000.0 : f64, interleaved, scaling = #moe.rope_scaling<kind = linear, factor = 4.0>} : tensor<?x2x8xbf16>, tensor<?xi64>
  %r2 = moe.rope %pe, %pos {theta = 10000.0 : f64, interleaved, scaling = #moe.rope_scaling<kind = yarn, factor = 40.0, original_max_position_embeddings = 4096, beta_fast = 32.0, beta_slow = 1.0, mscale = 1.0, mscale_all_dim = 0.0>} : tensor<?x1x64xf32>, tensor<?xi32>
  return %r0, %r1, %r2 : tensor<?x4x16xf32>, tensor<?x2x8xbf16>, tensor<?x1x64xf32>
}
