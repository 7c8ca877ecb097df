// Runs the emitted GEMM kernels on the host: the CUDA text of each step,
// compiled as C++ against a small emulation of the CUDA subset they use (one
// std::thread per CUDA thread, barriers for __syncthreads and warp
// collectives, cp.async as a plain copy), with the inline-PTX leaf functions
// replaced by models written from the PTX ISA tables: mma.sync m16n8k32 e4m3
// and m16n8k16 bf16 fragments, and wgmma m64n128k32 reading shared memory
// through the canonical K-major no-swizzle layout its descriptor names. Each
// instruction path (sm_80, sm_89, sm_90a, chosen by the kernels' own #if
// guards) is compared with a float64 reference of the CPU's semantics. This
// checks the kernels' indexing (tiles, expert scheduling, shared-memory
// layout, fragment addressing, scales, epilogues), not the hardware.
// RUN: rm -rf %t && split-file %s %t
// RUN: moec %t/fp8.mlir --from=fp8 --compile-to=codegen --target=sm_89 > %t/fp8.cu
// RUN: %python %t/build.py %t/fp8.cu %t/fp8_sm80.cpp sm80 %t/fp8_main.cpp %t/shim.h
// RUN: c++ -std=c++20 -O1 -w -pthread -I %t %t/fp8_sm80.cpp -o %t/fp8_sm80
// RUN: %t/fp8_sm80 | FileCheck %s --check-prefix=FP8
// RUN: %python %t/build.py %t/fp8.cu %t/fp8_sm89.cpp sm89 %t/fp8_main.cpp %t/shim.h
// RUN: c++ -std=c++20 -O1 -w -pthread -I %t %t/fp8_sm89.cpp -o %t/fp8_sm89
// RUN: %t/fp8_sm89 | FileCheck %s --check-prefix=FP8
// RUN: %python %t/build.py %t/fp8.cu %t/fp8_sm90.cpp sm90 %t/fp8_main.cpp %t/shim.h
// RUN: c++ -std=c++20 -O1 -w -pthread -I %t %t/fp8_sm90.cpp -o %t/fp8_sm90
// RUN: %t/fp8_sm90 | FileCheck %s --check-prefix=FP8
// RUN: moec %t/f32.mlir --from=fp8 --compile-to=codegen --target=sm_89 > %t/f32.cu
// RUN: %python %t/build.py %t/f32.cu %t/f32.cpp sm89 %t/f32_main.cpp %t/shim.h
// RUN: c++ -std=c++20 -O1 -w -pthread -I %t %t/f32.cpp -o %t/f32
// RUN: %t/f32 | FileCheck %s --check-prefix=F32

// FP8: PASS fp8 dense bias
// FP8: PASS fp8 grouped silu
// FP8: PASS fp8 grouped E=40
// F32: PASS f32 dense bf16 silu bias
// F32: PASS f32 grouped f32

//--- fp8.mlir
func.func @forward(%x: tensor<?x320xf8E4M3FN>, %xs: tensor<?x3xf32>,
                   %w: tensor<192x320xf8E4M3FN>, %ws: tensor<2x3xf32>,
                   %bias: tensor<192xf32>,
                   %rows: tensor<?x320xf8E4M3FN>, %rs: tensor<?x3xf32>,
                   %offsets: tensor<4xi32>, %w1: tensor<3x192x320xf8E4M3FN>,
                   %ws1: tensor<3x2x3xf32>,
                   %rows2: tensor<?x64xf8E4M3FN>, %rs2: tensor<?x1xf32>,
                   %offsets2: tensor<41xi32>, %w2: tensor<40x64x64xf8E4M3FN>,
                   %ws2: tensor<40x1x1xf32>)
    -> (tensor<?x192xf32>, tensor<?x96xf32>, tensor<?x64xf32>) {
  %y = moe.fp8_matmul %x, %xs, %w, %ws bias %bias
      {act_scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>,
       weight_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>}
      : tensor<?x320xf8E4M3FN>, tensor<?x3xf32>, tensor<192x320xf8E4M3FN>,
        tensor<2x3xf32>, tensor<192xf32> -> tensor<?x192xf32>
  %h = moe.fp8_grouped_matmul %rows, %rs, %offsets, %w1, %ws1
      {act_scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>,
       weight_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>,
       epilogue = #moe.epilogue<silu_mul>}
      : tensor<?x320xf8E4M3FN>, tensor<?x3xf32>, tensor<4xi32>,
        tensor<3x192x320xf8E4M3FN>, tensor<3x2x3xf32> -> tensor<?x96xf32>
  %z = moe.fp8_grouped_matmul %rows2, %rs2, %offsets2, %w2, %ws2
      {act_scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>,
       weight_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>}
      : tensor<?x64xf8E4M3FN>, tensor<?x1xf32>, tensor<41xi32>,
        tensor<40x64x64xf8E4M3FN>, tensor<40x1x1xf32> -> tensor<?x64xf32>
  return %y, %h, %z : tensor<?x192xf32>, tensor<?x96xf32>, tensor<?x64xf32>
}
//--- f32.mlir
func.func @forward(%x: tensor<?x72xf32>, %w: tensor<98x72xbf16>, %b: tensor<98xbf16>,
                   %rows: tensor<?x72xf32>, %offsets: tensor<4xi32>, %w2: tensor<3x70x72xf32>)
    -> (tensor<?x49xf32>, tensor<?x70xf32>) {
  %y = moe.matmul %x, %w bias %b {epilogue = #moe.epilogue<silu_mul>}
      : tensor<?x72xf32>, tensor<98x72xbf16>, tensor<98xbf16> -> tensor<?x49xf32>
  %z = moe.grouped_matmul %rows, %offsets, %w2
      : tensor<?x72xf32>, tensor<4xi32>, tensor<3x70x72xf32> -> tensor<?x70xf32>
  return %y, %z : tensor<?x49xf32>, tensor<?x70xf32>
}
//--- build.py
import re, sys, subprocess
src = open(sys.argv[1]).read()   # moec --compile-to=codegen output
out = sys.argv[2]; arch = sys.argv[3]; main = open(sys.argv[4]).read(); shim = sys.argv[5]
src = src.replace('asm volatile("fence.proxy.async.shared::cta;\\n" ::: "memory");', '')
lines = src.split('\n')
res = []; i = 0
while i < len(lines):
    l = lines[i]
    start = None
    if l.startswith('__device__'):
        start = i
        if res and res[-1].startswith('template'):
            res.pop(); hdr = [lines[i-1]]
        else:
            hdr = []
    if start is not None:
        j = i
        while lines[j] != '}':
            j += 1
        block = hdr + lines[i:j+1]
        text = '\n'.join(block)
        if 'asm' in text or 'moec_gemm_desc(' in lines[i] or 'moec_gemm_desc(' in (lines[i+1] if i+1 < len(lines) else ''):
            i = j + 1; continue
        res.extend(block); i = j + 1; continue
    res.append(l); i += 1
text = '\n'.join(res)
defs = {'sm80': '#define __CUDA_ARCH__ 800\n#define EMU_SM80 1\n',
        'sm89': '#define __CUDA_ARCH__ 890\n#define EMU_SM89 1\n',
        'sm90': '#define __CUDA_ARCH__ 900\n#define __CUDA_ARCH_FEAT_SM90_ALL 1\n#define EMU_SM90 1\n'}[arch]
open(out, 'w').write(defs + '#include "' + shim + '"\n' + text + '\n' + main)
//--- shim.h
// Host emulation of the CUDA subset the GEMM kernels use: one std::thread per
// CUDA thread, std::barrier for __syncthreads and per-warp collectives.
#pragma once
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <algorithm>
#include <functional>
#include <thread>
#include <vector>
#include <cstdio>
#include <cstdlib>
using std::min; using std::max;
struct dim3 { unsigned x = 1, y = 1, z = 1; };
inline thread_local dim3 threadIdx;
inline dim3 blockIdx, blockDim, gridDim;
#define __device__
#define __global__
#define __forceinline__ inline
#define __noinline__
#define __restrict__
#define __shared__ static
#define __align__(x) __attribute__((aligned(x)))
#define __launch_bounds__(x)
inline std::barrier<> *g_block_barrier;
inline std::vector<std::barrier<> *> g_warp_barriers;
inline void __syncthreads() { g_block_barrier->arrive_and_wait(); }
inline void warp_sync() { g_warp_barriers[threadIdx.x / 32]->arrive_and_wait(); }
inline unsigned __float_as_uint(float f) { unsigned u; memcpy(&u, &f, 4); return u; }
inline float __uint_as_float(unsigned u) { float f; memcpy(&f, &u, 4); return f; }
inline int __float_as_int(float f) { int u; memcpy(&u, &f, 4); return u; }
inline float __int_as_float(int u) { float f; memcpy(&f, &u, 4); return f; }
inline unsigned __byte_perm(unsigned x, unsigned y, unsigned s) {
  uint8_t b[8]; memcpy(b, &x, 4); memcpy(b + 4, &y, 4);
  unsigned r = 0;
  for (int i = 0; i < 4; ++i) r |= (unsigned)b[(s >> (4 * i)) & 7] << (8 * i);
  return r;
}
// Warp exchange slots (per warp, 32 lanes, 64-bit).
inline uint64_t g_xchg[64][32];
template <typename T> T shfl_impl(T v, int src) {
  const int w = threadIdx.x / 32, l = threadIdx.x % 32;
  uint64_t bits = 0; memcpy(&bits, &v, sizeof(T)); g_xchg[w][l] = bits;
  warp_sync();
  uint64_t got = g_xchg[w][src & 31];
  warp_sync();
  T r; memcpy(&r, &got, sizeof(T)); return r;
}
template <typename T> T __shfl_sync(unsigned, T v, int src) { return shfl_impl(v, src); }
template <typename T> T __shfl_xor_sync(unsigned, T v, int m) { return shfl_impl(v, (int)(threadIdx.x % 32) ^ m); }
template <typename T> T __shfl_up_sync(unsigned, T v, int d) {
  int l = threadIdx.x % 32; T r = shfl_impl(v, l >= d ? l - d : l); return r;
}
inline float fmaf_(float a, float b, float c) { return std::fma(a, b, c); }

// ---- replacements of the asm leaf functions ----
inline void moec_gemm_cp_async16(void *dst, const void *src, int n) {
  memset(dst, 0, 16); if (n) memcpy(dst, src, n);
}
inline void moec_gemm_cp_async_commit() {}
template <int P> inline void moec_gemm_cp_async_wait() {}
// Per-warp fragment exchange for mma emulation.
inline uint32_t g_fa[64][32][4], g_fb[64][32][2];
inline float e4m3(unsigned b) {
  unsigned s = (b & 0x80u) << 24, e = (b >> 3) & 15, m = b & 7;
  if ((b & 0x7f) == 0x7f) return NAN;
  float v = e == 0 ? m * 0.001953125f : __uint_as_float(((e + 120u) << 23) | (m << 20));
  return s ? -v : v;
}
#if defined(EMU_SM89) || defined(EMU_SM90)
// m16n8k32 e4m3 per the PTX ISA fragment tables.
inline void moec_gemm_mma(float *d, const unsigned *a, unsigned b0, unsigned b1) {
  const int w = threadIdx.x / 32, l = threadIdx.x % 32;
  for (int i = 0; i < 4; ++i) g_fa[w][l][i] = a[i];
  g_fb[w][l][0] = b0; g_fb[w][l][1] = b1;
  warp_sync();
  auto A = [&](int r, int k) { // A[r][k]
    int g = r % 8, hi = r / 8, t = (k % 16) / 4, reg = hi + 2 * (k / 16);
    return e4m3((g_fa[w][g * 4 + t][reg] >> (8 * (k % 4))) & 0xff);
  };
  auto B = [&](int k, int n) {
    int t = (k % 16) / 4;
    return e4m3((g_fb[w][n * 4 + t][k / 16] >> (8 * (k % 4))) & 0xff);
  };
  const int g = l / 4, t = l % 4;
  for (int j = 0; j < 4; ++j) {
    int r = g + 8 * (j / 2), c = 2 * t + (j % 2);
    double s = 0; for (int k = 0; k < 32; ++k) s += (double)A(r, k) * B(k, c);
    d[j] += (float)s;
  }
  warp_sync();
}
#endif
#if defined(EMU_SM80)
inline float moec_gemm_e4m3_to_f32(unsigned b) {
  return __uint_as_float(((b & 0x80u) << 24) | ((b & 0x7Fu) << 20)) * __uint_as_float(0x7B800000u);
}
inline float bf(unsigned h) { return __uint_as_float(h << 16); }
// m16n8k16 bf16 per the PTX ISA fragment tables.
inline void moec_gemm_mma_bf16(float *d, unsigned a0, unsigned a1, unsigned a2, unsigned a3, unsigned b0, unsigned b1) {
  const int w = threadIdx.x / 32, l = threadIdx.x % 32;
  g_fa[w][l][0] = a0; g_fa[w][l][1] = a1; g_fa[w][l][2] = a2; g_fa[w][l][3] = a3;
  g_fb[w][l][0] = b0; g_fb[w][l][1] = b1;
  warp_sync();
  auto A = [&](int r, int k) { int g = r % 8, t = (k % 8) / 2, reg = r / 8 + 2 * (k / 8);
    return bf((g_fa[w][g * 4 + t][reg] >> (16 * (k % 2))) & 0xffff); };
  auto B = [&](int k, int n) { int t = (k % 8) / 2;
    return bf((g_fb[w][n * 4 + t][k / 8] >> (16 * (k % 2))) & 0xffff); };
  const int g = l / 4, t = l % 4;
  for (int j = 0; j < 4; ++j) {
    int r = g + 8 * (j / 2), c = 2 * t + (j % 2);
    double s = 0; for (int k = 0; k < 16; ++k) s += (double)A(r, k) * B(k, c);
    d[j] += (float)s;
  }
  warp_sync();
}
#endif
#if defined(EMU_SM90)
struct EmuDesc { const unsigned char *p; unsigned lbo, sbo; };
inline thread_local std::vector<EmuDesc> g_descs;
inline unsigned long long moec_gemm_desc(const void *smem, unsigned lbo, unsigned sbo) {
  g_descs.push_back({(const unsigned char *)smem, lbo, sbo}); return g_descs.size() - 1;
}
inline void moec_gemm_wgmma_fence() {}
inline void moec_gemm_wgmma_commit() {}
inline void moec_gemm_wgmma_wait_all() {}
inline void moec_gemm_fence_regs(float (&)[64]) {}
// Canonical K-major no-swizzle layout: byte (m, k) of the operand at
// start + (m/8)*SBO + (m%8)*16 + (k/16)*LBO + k%16 (PTX ISA, wgmma shared
// memory layout). m64n128k32, every thread computes its own accumulators.
inline void moec_gemm_wgmma(float (&d)[64], unsigned long long da, unsigned long long db, int acc) {
  EmuDesc A = g_descs[da], B = g_descs[db];
  auto at = [](const EmuDesc &D, int m, int k) {
    return e4m3(D.p[(m / 8) * D.sbo + (m % 8) * 16 + (k / 16) * D.lbo + k % 16]); };
  const int w = threadIdx.x / 32, l = threadIdx.x % 32, g = l / 4, t = l % 4;
  for (int i = 0; i < 16; ++i) for (int j = 0; j < 4; ++j) {
    int r = 16 * w + g + 8 * (j / 2), c = 8 * i + 2 * t + (j % 2);
    double s = 0; for (int k = 0; k < 32; ++k) s += (double)at(A, r, k) * at(B, c, k);
    d[4 * i + j] = (acc ? d[4 * i + j] : 0.0f) + (float)s;
  }
  g_descs.clear();
}
#endif
//--- common.h
#include <random>
static void run_grid(int gx, int gy, int threads, std::function<void()> body) {
  for (int by = 0; by < gy; ++by)
    for (int bx = 0; bx < gx; ++bx) {
      blockIdx.x = bx; blockIdx.y = by; blockDim.x = threads;
      std::barrier<> bb(threads);
      std::vector<std::barrier<> *> wb;
      for (int w = 0; w < threads / 32; ++w) wb.push_back(new std::barrier<>(32));
      g_block_barrier = &bb; g_warp_barriers = wb;
      std::vector<std::thread> ts;
      for (int t = 0; t < threads; ++t)
        ts.emplace_back([t, &body] { threadIdx.x = t; body(); });
      for (auto &t : ts) t.join();
      for (auto *b : wb) delete b;
    }
}
static std::mt19937 rng(1234);
static unsigned char rand_fp8() { unsigned c; do { c = rng() & 0xff; } while ((c & 0x7f) == 0x7f || ((c >> 3) & 15) > 9); return c; }
static float rand_f(float lo, float hi) { return std::uniform_real_distribution<float>(lo, hi)(rng); }
static double silu(double x) { return x / (1 + std::exp(-x)); }
static int report(const char *name, const std::vector<float> &y, const std::vector<double> &ref) {
  double num = 0, den = 0; size_t bad = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    if (std::isnan(y[i]) || y[i] == -12345.0f) ++bad;
    num += (y[i] - ref[i]) * (y[i] - ref[i]); den += ref[i] * ref[i];
  }
  double rel = std::sqrt(num / (den > 0 ? den : 1));
  const bool ok = rel < 1e-5 && bad == 0;
  printf("%s %s: rel-L2 %.3g, unwritten/NaN %zu of %zu\n", ok ? "PASS" : "FAIL", name, rel, bad, y.size());
  return ok ? 0 : 1;
}
//--- fp8_main.cpp
#include "common.h"
// fp8 dense: N=192 K=320 bias, T rows.
static int dense() {
  const int N = 192, K = 320, KB = 3, NB = 2, T = 70;
  std::vector<unsigned char> x(T * K), w(N * K);
  std::vector<float> xs(T * KB), ws(NB * KB), bias(N), y(T * N, -12345.0f);
  for (auto &v : x) v = rand_fp8(); for (auto &v : w) v = rand_fp8();
  for (auto &v : xs) v = rand_f(0.01f, 1); for (auto &v : ws) v = rand_f(0.01f, 1);
  for (auto &v : bias) v = rand_f(-1, 1);
  run_grid((N + 127) / 128, (T + 63) / 64, 128, [&] {
    moec_step_0(x.data(), xs.data(), w.data(), ws.data(), bias.data(), y.data(), nullptr, T); });
  std::vector<double> ref(T * N);
  for (int r = 0; r < T; ++r) for (int n = 0; n < N; ++n) {
    double s = 0; for (int k = 0; k < K; ++k) s += (double)e4m3(x[r * K + k]) * xs[r * KB + k / 128] * e4m3(w[n * K + k]) * ws[(n / 128) * KB + k / 128];
    ref[r * N + n] = s + bias[n]; }
  return report("fp8 dense bias", y, ref);
}
// fp8 grouped silu: E=3 N=192 K=320; offsets leave rows unowned, one expert empty.
static int grouped_silu() {
  const int E = 3, N = 192, H = 96, K = 320, KB = 3, NB = 2, R = 150;
  int offsets[E + 1] = {5, 70, 70, 140};
  std::vector<unsigned char> x(R * K), w(E * N * K);
  std::vector<float> xs(R * KB), ws(E * NB * KB), y(R * H, -12345.0f);
  for (auto &v : x) v = rand_fp8(); for (auto &v : w) v = rand_fp8();
  for (auto &v : xs) v = rand_f(0.01f, 0.3f); for (auto &v : ws) v = rand_f(0.01f, 0.3f);
  run_grid((H + 63) / 64, (R + 63) / 64 + E, 128, [&] {
    moec_step_1(x.data(), xs.data(), offsets, w.data(), ws.data(), y.data(), nullptr, R); });
  std::vector<double> ref(R * H, 0.0);
  for (int e = 0; e < E; ++e) for (int r = offsets[e]; r < offsets[e + 1]; ++r) {
    auto dot = [&](int n) { double s = 0; for (int k = 0; k < K; ++k) s += (double)e4m3(x[r * K + k]) * xs[r * KB + k / 128] * e4m3(w[(e * N + n) * K + k]) * ws[(e * NB + n / 128) * KB + k / 128]; return s; };
    for (int n = 0; n < H; ++n) ref[r * H + n] = silu(dot(n)) * dot(H + n); }
  return report("fp8 grouped silu", y, ref);
}
static int grouped_e40() {
  const int E = 40, N = 64, K = 64, R = 300;
  int offsets[E + 1]; offsets[0] = 3;
  for (int e = 1; e <= E; ++e) offsets[e] = std::min(290, offsets[e - 1] + (int)(rng() % 3 == 0 ? 0 : rng() % 20));
  offsets[E] = 290;
  std::vector<unsigned char> x(R * K), w(E * N * K);
  std::vector<float> xs(R), ws(E), y(R * N, -12345.0f);
  for (auto &v : x) v = rand_fp8(); for (auto &v : w) v = rand_fp8();
  for (auto &v : xs) v = rand_f(0.01f, 0.3f); for (auto &v : ws) v = rand_f(0.01f, 0.3f);
  run_grid(1, (R + 63) / 64 + E, 128, [&] {
    moec_step_2(x.data(), xs.data(), offsets, w.data(), ws.data(), y.data(), nullptr, R); });
  std::vector<double> ref(R * N, 0.0);
  for (int e = 0; e < E; ++e) for (int r = offsets[e]; r < offsets[e + 1]; ++r) for (int n = 0; n < N; ++n) {
    double s = 0; for (int k = 0; k < K; ++k) s += (double)e4m3(x[r * K + k]) * xs[r] * e4m3(w[(e * N + n) * K + k]) * ws[e]; ref[r * N + n] = s; }
  return report("fp8 grouped E=40", y, ref);
}
int main() { return dense() | grouped_silu() | grouped_e40(); }
//--- f32_main.cpp
#include "common.h"
static unsigned short tobf(float f) { return (unsigned short)(__float_as_uint(f) >> 16); }
static float frombf(unsigned short h) { return __uint_as_float((unsigned)h << 16); }
int main() {
  const int N = 98, H = 49, K = 72, T = 70;
  std::vector<float> x(T * K), y(T * H, -12345.0f); std::vector<unsigned short> w(N * K), b(N);
  for (auto &v : x) v = rand_f(-1, 1); for (auto &v : w) v = tobf(rand_f(-1, 1)); for (auto &v : b) v = tobf(rand_f(-1, 1));
  const int E = 3, N2 = 70, R = 150; int offsets[E + 1] = {0, 64, 64, 131};
  std::vector<float> rows(R * K), w2(E * N2 * K), z(R * N2, -12345.0f);
  for (auto &v : rows) v = rand_f(-1, 1); for (auto &v : w2) v = rand_f(-1, 1);
  run_grid((H + 31) / 32, (T + 63) / 64, 256, [&] {
    moec_step_0(x.data(), w.data(), b.data(), y.data(), nullptr, T); });
  run_grid((N2 + 63) / 64, (R + 63) / 64 + E, 256, [&] {
    moec_step_1(rows.data(), offsets, w2.data(), z.data(), nullptr, R); });
  std::vector<double> ry(T * H), rz(R * N2, 0.0);
  for (int r = 0; r < T; ++r) {
    auto dot = [&](int n) { double s = 0; for (int k = 0; k < K; ++k) s += (double)x[r * K + k] * frombf(w[n * K + k]); return s + frombf(b[n]); };
    for (int n = 0; n < H; ++n) ry[r * H + n] = silu(dot(n)) * dot(H + n); }
  for (int e = 0; e < E; ++e) for (int r = offsets[e]; r < offsets[e + 1]; ++r) for (int n = 0; n < N2; ++n) {
    double s = 0; for (int k = 0; k < K; ++k) s += (double)rows[r * K + k] * w2[(e * N2 + n) * K + k]; rz[r * N2 + n] = s; }
  return report("f32 dense bf16 silu bias", y, ry) | report("f32 grouped f32", z, rz);
}
