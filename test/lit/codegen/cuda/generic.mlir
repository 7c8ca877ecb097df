// Every generic token-wise op as one step of one function, in program order:
// unary (0), binary with a per-row divisor (1), a scalar exponent (2) and a
// weight row (3), compare of i64 indices (4), select (5), casts i1->f32 (6),
// f32->i32 (7), f32->bf16 (8), softmax (9), reduce: mean of 16 (10, one thread
// per result element), sum of 100 (11, one block per result element), max
// of 2 (12), topk (13), transpose (14), batch_matmul with 4 matrices per
// token (15), gather_elements (16), scatter_elements (17, copy then scatter),
// one_hot (18). Flat kernels use one thread per element, 256 per block.
// RUN: moec %s --from=fp8 --compile-to=codegen --target=sm_89 | FileCheck %s
// RUN: moec %s --from=fp8 --compile-to=codegen --target=sm_80,sm_89,sm_90 --emit-ptx | FileCheck %s --check-prefix=PTX

// CHECK: // step 0: moec_step_0 grid (ceil(64*T/256), 1, 1) block (256, 1, 1) smem 0
// CHECK-NEXT: // step 1: moec_step_1 grid (ceil(64*T/256), 1, 1) block (256, 1, 1) smem 0
// CHECK-NEXT: // step 2: moec_step_2 grid (ceil(64*T/256), 1, 1) block (256, 1, 1) smem 0
// CHECK-NEXT: // step 3: moec_step_3 grid (ceil(64*T/256), 1, 1) block (256, 1, 1) smem 0
// CHECK-NEXT: // step 4: moec_step_4 grid (ceil(2*T/256), 1, 1) block (256, 1, 1) smem 0
// CHECK-NEXT: // step 5: moec_step_5 grid (ceil(8*T/256), 1, 1) block (256, 1, 1) smem 0
// CHECK-NEXT: // step 6: moec_step_6 grid (ceil(8*T/256), 1, 1) block (256, 1, 1) smem 0
// CHECK-NEXT: // step 7: moec_step_7 grid (ceil(8*T/256), 1, 1) block (256, 1, 1) smem 0
// CHECK-NEXT: // step 8: moec_step_8 grid (ceil(8*T/256), 1, 1) block (256, 1, 1) smem 0
// CHECK-NEXT: // step 9: moec_step_9 grid (T, 1, 1) block (32, 1, 1) smem 0
// CHECK-NEXT: // step 10: moec_step_10 grid (ceil(4*T/256), 1, 1) block (256, 1, 1) smem 0
// CHECK-NEXT: // step 11: moec_step_11 grid (2*T, 1, 1) block (32, 1, 1) smem 0
// CHECK-NEXT: // step 12: moec_step_12 grid (ceil(100*T/256), 1, 1) block (256, 1, 1) smem 0
// CHECK-NEXT: // step 13: moec_step_13 grid (T, 1, 1) block (32, 1, 1) smem 0
// CHECK-NEXT: // step 14: moec_step_14 grid (ceil(64*T/256), 1, 1) block (256, 1, 1) smem 0
// CHECK-NEXT: // step 15: moec_step_15 grid (4*T, 1, 1) block (256, 1, 1) smem 0
// CHECK-NEXT: // step 16: moec_step_16 grid (ceil(2*T/256), 1, 1) block (256, 1, 1) smem 0
// CHECK-NEXT: // step 17: moec_step_17_copy grid (ceil(8*T/256), 1, 1) block (256, 1, 1) smem 0
// CHECK-NEXT: // step 17: moec_step_17_scatter grid (ceil(T/256), 1, 1) block (256, 1, 1) smem 0
// CHECK-NEXT: // step 18: moec_step_18 grid (ceil(16*T/256), 1, 1) block (256, 1, 1) smem 0
// CHECK-NOT: // step

// The shared library text is emitted once.
// CHECK: // ---- library generic ----
// CHECK: __device__ __forceinline__ float moec_generic_pow(float a, float e) {
// CHECK: __device__ __forceinline__ void moec_topk_row(
// CHECK: acc = __fadd_rn(acc, __fmul_rn(as[ty][kk], bs[kk][tx]));
// CHECK-NOT: // ---- library generic ----

// CHECK-LABEL: // ---- step 0: moe.unary ----
// CHECK: const long long n = tokens * 64LL;
// CHECK: moec_store_float(a1, i, moec_generic_unary<2>(moec_load(a0, i)));

// [?, 4, 16] / [?, 4, 1]: the divisor's column coordinate is dropped.
// CHECK-LABEL: // ---- step 1: moe.binary ----
// CHECK: const long long s0 = i;
// CHECK-NEXT: long long s1 = 0;
// CHECK-NEXT: {
// CHECK-NEXT: long long rest = i;
// CHECK-NEXT: rest /= 16; // dimension 2
// CHECK-NEXT: const long long c1 = rest % 4; // dimension 1
// CHECK-NEXT: rest /= 4;
// CHECK-NEXT: s1 += c1 * 1;
// CHECK-NEXT: // dimension 0
// CHECK-NEXT: s1 += rest * 4;
// CHECK-NEXT: }
// CHECK-NEXT: moec_store_float(a2, i, moec_generic_binary<3>(moec_load(a0, s0), moec_load(a1, s1)));

// A scalar reads element 0.
// CHECK-LABEL: // ---- step 2: moe.binary ----
// CHECK: long long s1 = 0;
// CHECK-NEXT: moec_store_float(a2, i, moec_generic_binary<4>(moec_load(a0, s0), moec_load(a1, s1)));

// CHECK-LABEL: // ---- step 3: moe.binary ----
// CHECK: const long long c2 = rest % 16; // dimension 2
// CHECK-NEXT: s1 += c2 * 1;

// CHECK-LABEL: // ---- step 4: moe.compare ----
// CHECK: moec_step_4(const long long *__restrict__ a0, const long long *__restrict__ a1, bool *__restrict__ a2,
// CHECK: a2[i] = moec_generic_compare<0>(moec_load_int(a0, s0), moec_load_int(a1, s1));

// CHECK-LABEL: // ---- step 5: moe.select ----
// CHECK: a3[i] = moec_load_int(a0, s0) != 0 ? a1[s1] : a2[s2];

// CHECK-LABEL: // ---- step 6: moe.cast ----
// CHECK: moec_store_float(a1, i, (float)moec_load_int(a0, i));
// CHECK-LABEL: // ---- step 7: moe.cast ----
// CHECK: moec_store_int(a1, i, moec_float_to_int(moec_load(a0, i)));
// CHECK-LABEL: // ---- step 8: moe.cast ----
// CHECK: moec_step_8(const float *__restrict__ a0, moec_bf16 *__restrict__ a1,
// CHECK: moec_store_float(a1, i, moec_load(a0, i));

// CHECK-LABEL: // ---- step 9: moe.softmax ----
// CHECK: extern "C" __global__ void __launch_bounds__(32) moec_step_9(
// CHECK-NEXT: moec_softmax_row<8>(a0, a1, tokens * 1LL);

// 16 elements per result element: one thread each, in index order.
// CHECK-LABEL: // ---- step 10: moe.reduce ----
// CHECK: base += c1 * 16;
// CHECK: base += rest * 64;
// CHECK: float acc = moec_reduce_init<1>();
// CHECK-NEXT: for (int r = 0; r < 16; ++r) {
// CHECK: acc = moec_reduce_combine<1>(acc, moec_load(a0, base + at));
// CHECK: moec_store_float(a1, o, acc / 0x1p+4f);

// 100 elements: a block of 32 threads per result element.
// CHECK-LABEL: // ---- step 11: moe.reduce ----
// CHECK: extern "C" __global__ void __launch_bounds__(32) moec_step_11(
// CHECK-NEXT: const long long o = blockIdx.x;
// CHECK-NEXT: if (o >= tokens * 2LL)
// CHECK: for (int r = threadIdx.x; r < 100; r += blockDim.x) {
// CHECK: acc = moec_block_reduce<0>(acc);
// CHECK-NEXT: if (threadIdx.x == 0)
// CHECK-NEXT: moec_store_float(a1, o, acc);

// Reducing dimension 1 of [?, 2, 100]: stride 100.
// CHECK-LABEL: // ---- step 12: moe.reduce ----
// CHECK: at += c1 * 100;
// CHECK: acc = moec_reduce_combine<2>(acc, moec_load(a0, base + at));

// CHECK-LABEL: // ---- step 13: moe.topk ----
// CHECK: moec_step_13(const float *__restrict__ a0, float *__restrict__ a1, int *__restrict__ a2,
// CHECK-NEXT: moec_topk_row<8, 2>(a0, a1, a2, tokens * 1LL);

// Result [?, 16, 4] of x [?, 4, 16]: coordinate 2 steps x by 16.
// CHECK-LABEL: // ---- step 14: moe.transpose ----
// CHECK: const long long c2 = rest % 4; // dimension 2
// CHECK-NEXT: rest /= 4;
// CHECK-NEXT: src += c2 * 16;
// CHECK-NEXT: const long long c1 = rest % 16; // dimension 1
// CHECK-NEXT: rest /= 16;
// CHECK-NEXT: src += c1 * 1;
// CHECK-NEXT: // dimension 0
// CHECK-NEXT: src += rest * 64;
// CHECK: a1[i] = a0[src];

// CHECK-LABEL: // ---- step 15: moe.batch_matmul ----
// CHECK: moec_batch_matmul_tile<2, 3, 8>(a0, a1, a2, tokens * 4LL);

// CHECK-LABEL: // ---- step 16: moe.gather_elements ----
// CHECK: long long at = (long long)a1[i];
// CHECK-NEXT: if (at < 0)
// CHECK-NEXT: at += 8;
// CHECK-NEXT: at = at < 0 ? 0 : (at > 7 ? 7 : at);
// CHECK-NEXT: a2[i] = a0[base + at * 1];

// CHECK-LABEL: // ---- step 17: moe.scatter_elements ----
// CHECK: moec_step_17_copy(
// CHECK: a3[i] = a0[i];
// CHECK: one thread per line of 2 updates, in order
// CHECK-NEXT: moec_step_17_scatter(
// CHECK: for (int j = 0; j < 2; ++j) {
// CHECK-NEXT: const long long p = line + (long long)j * 1;
// CHECK: a3[base + at * 1] = a2[p];

// CHECK-LABEL: // ---- step 18: moe.one_hot ----
// CHECK: const long long row = i / 8;
// CHECK: moec_store_float(a1, i, at == i - row * 8 ? 0x1p+0f : -0x1p-1f);

// Every kernel compiles for the three targets.
// PTX-LABEL: // ---- ptx sm_80 ----
// PTX-DAG: .entry moec_step_0(
// PTX-DAG: .entry moec_step_1(
// PTX-DAG: .entry moec_step_2(
// PTX-DAG: .entry moec_step_3(
// PTX-DAG: .entry moec_step_4(
// PTX-DAG: .entry moec_step_5(
// PTX-DAG: .entry moec_step_6(
// PTX-DAG: .entry moec_step_7(
// PTX-DAG: .entry moec_step_8(
// PTX-DAG: .entry moec_step_9(
// PTX-DAG: .entry moec_step_10(
// PTX-DAG: .entry moec_step_11(
// PTX-DAG: .entry moec_step_12(
// PTX-DAG: .entry moec_step_13(
// PTX-DAG: .entry moec_step_14(
// PTX-DAG: .entry moec_step_15(
// PTX-DAG: .entry moec_step_16(
// PTX-DAG: .entry moec_step_17_copy(
// PTX-DAG: .entry moec_step_17_scatter(
// PTX-DAG: .entry moec_step_18(
// PTX-LABEL: // ---- ptx sm_89 ----
// PTX-DAG: .entry moec_step_0(
// PTX-DAG: .entry moec_step_1(
// PTX-DAG: .entry moec_step_2(
// PTX-DAG: .entry moec_step_3(
// PTX-DAG: .entry moec_step_4(
// PTX-DAG: .entry moec_step_5(
// PTX-DAG: .entry moec_step_6(
// PTX-DAG: .entry moec_step_7(
// PTX-DAG: .entry moec_step_8(
// PTX-DAG: .entry moec_step_9(
// PTX-DAG: .entry moec_step_10(
// PTX-DAG: .entry moec_step_11(
// PTX-DAG: .entry moec_step_12(
// PTX-DAG: .entry moec_step_13(
// PTX-DAG: .entry moec_step_14(
// PTX-DAG: .entry moec_step_15(
// PTX-DAG: .entry moec_step_16(
// PTX-DAG: .entry moec_step_17_copy(
// PTX-DAG: .entry moec_step_17_scatter(
// PTX-DAG: .entry moec_step_18(
// PTX-LABEL: // ---- ptx sm_90a ----
// PTX-DAG: .entry moec_step_0(
// PTX-DAG: .entry moec_step_1(
// PTX-DAG: .entry moec_step_2(
// PTX-DAG: .entry moec_step_3(
// PTX-DAG: .entry moec_step_4(
// PTX-DAG: .entry moec_step_5(
// PTX-DAG: .entry moec_step_6(
// PTX-DAG: .entry moec_step_7(
// PTX-DAG: .entry moec_step_8(
// PTX-DAG: .entry moec_step_9(
// PTX-DAG: .entry moec_step_10(
// PTX-DAG: .entry moec_step_11(
// PTX-DAG: .entry moec_step_12(
// PTX-DAG: .entry moec_step_13(
// PTX-DAG: .entry moec_step_14(
// PTX-DAG: .entry moec_step_15(
// PTX-DAG: .entry moec_step_16(
// PTX-DAG: .entry moec_step_17_copy(
// PTX-DAG: .entry moec_step_17_scatter(
// PTX-DAG: .entry moec_step_18(
func.func @forward(%x: tensor<?x4x16xf32>, %n: tensor<?x4x1xf32>, %two: tensor<f32>,
                   %w: tensor<16xf32>, %idx: tensor<?x2xi64>, %e: tensor<1xi64>,
                   %m: tensor<?x8xi1>, %p: tensor<?x8xf32>, %ninf: tensor<f32>,
                   %big: tensor<?x2x100xf32>, %a: tensor<?x4x2x8xf32>, %b: tensor<?x4x8x3xf32>,
                   %i32: tensor<?x2xi32>, %u: tensor<?x2xf32>)
    -> (tensor<?x4x16xf32>, tensor<?x4x16xf32>, tensor<?x4x16xf32>, tensor<?x2xi1>,
        tensor<?x8xf32>, tensor<?x8xf32>, tensor<?x8xi32>, tensor<?x8xbf16>, tensor<?x8xf32>,
        tensor<?x4x1xf32>, tensor<?x100xf32>, tensor<?x2xf32>, tensor<?x2xf32>, tensor<?x2xi32>,
        tensor<?x16x4xf32>, tensor<?x4x2x3xf32>, tensor<?x2xf32>, tensor<?x8xf32>,
        tensor<?x2x8xf32>) {
  %u0 = moe.unary <sqrt> %x : tensor<?x4x16xf32>
  %b0 = moe.binary <div> %x, %n : tensor<?x4x16xf32>, tensor<?x4x1xf32> -> tensor<?x4x16xf32>
  %b1 = moe.binary <pow> %x, %two : tensor<?x4x16xf32>, tensor<f32> -> tensor<?x4x16xf32>
  %b2 = moe.binary <mul> %b1, %w : tensor<?x4x16xf32>, tensor<16xf32> -> tensor<?x4x16xf32>
  %c0 = moe.compare <eq> %idx, %e : tensor<?x2xi64>, tensor<1xi64> -> tensor<?x2xi1>
  %s0 = moe.select %m, %p, %ninf : tensor<?x8xi1>, tensor<?x8xf32>, tensor<f32> -> tensor<?x8xf32>
  %k0 = moe.cast %m : tensor<?x8xi1> -> tensor<?x8xf32>
  %k1 = moe.cast %p : tensor<?x8xf32> -> tensor<?x8xi32>
  %k2 = moe.cast %p : tensor<?x8xf32> -> tensor<?x8xbf16>
  %sm = moe.softmax %p : tensor<?x8xf32>
  %r0 = moe.reduce <mean> %x {dims = array<i64: 2>} : tensor<?x4x16xf32> -> tensor<?x4x1xf32>
  %r2 = moe.reduce <sum> %big {dims = array<i64: 2>} : tensor<?x2x100xf32> -> tensor<?x2xf32>
  %r1 = moe.reduce <max> %big {dims = array<i64: 1>} : tensor<?x2x100xf32> -> tensor<?x100xf32>
  %tv, %ti = moe.topk %p {k = 2 : i64} : tensor<?x8xf32> -> tensor<?x2xf32>, tensor<?x2xi32>
  %t0 = moe.transpose %x {permutation = array<i64: 0, 2, 1>} : tensor<?x4x16xf32> -> tensor<?x16x4xf32>
  %mm = moe.batch_matmul %a, %b : tensor<?x4x2x8xf32>, tensor<?x4x8x3xf32> -> tensor<?x4x2x3xf32>
  %g0 = moe.gather_elements %p, %i32 {dim = 1 : i64} : tensor<?x8xf32>, tensor<?x2xi32> -> tensor<?x2xf32>
  %sc = moe.scatter_elements %p, %idx, %u {dim = 1 : i64} : tensor<?x8xf32>, tensor<?x2xi64>, tensor<?x2xf32> -> tensor<?x8xf32>
  %oh = moe.one_hot %i32 {on_value = 1.0 : f64, off_value = -0.5 : f64} : tensor<?x2xi32> -> tensor<?x2x8xf32>
  return %u0, %b2, %b0, %c0, %s0, %k0, %k1, %k2, %sm, %r0, %r1, %r2, %tv, %ti, %t0, %mm, %g0, %sc, %oh : tensor<?x4x16xf32>, tensor<?x4x16xf32>, tensor<?x4x16xf32>, tensor<?x2xi1>, tensor<?x8xf32>, tensor<?x8xf32>, tensor<?x8xi32>, tensor<?x8xbf16>, tensor<?x8xf32>, tensor<?x4x1xf32>, tensor<?x100xf32>, tensor<?x2xf32>, tensor<?x2xf32>, tensor<?x2xi32>, tensor<?x16x4xf32>, tensor<?x4x2x3xf32>, tensor<?x2xf32>, tensor<?x8xf32>, tensor<?x2x8xf32>
}
