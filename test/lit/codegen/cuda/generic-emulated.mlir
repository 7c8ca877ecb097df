// Runs the generic kernels of generic.mlir on the host: the CUDA text,
// translated by test/emu/build_kernels.py --header and compiled as C++
// against test/emu/cuda_emu.h (fibers for the threads, block barriers and
// warp shuffles, shared memory poisoned at every block, threads run in
// ascending and in descending order between barriers; docs/cuda.md, "Host
// emulation of the kernels"), on random inputs and on edge cases (topk ties
// and NaN rows, pow's special exponents, negative and out-of-range indices,
// duplicate scatter indices: the last update wins), against references
// written here from the CPU kernels' semantics. Checks the kernels'
// indexing, reductions and tie rules, not the hardware.
// RUN: rm -rf %t && split-file %s %t
// RUN: moec %S/generic.mlir --from=fp8 --compile-to=codegen --target=sm_89 > %t/generic.cu
// RUN: %python %moec_src/test/emu/build_kernels.py %t/generic.cu --header %t/kernels.h --arch sm_89
// RUN: c++ -std=c++20 -O1 -w -fno-strict-aliasing -I %t %t/emu.cpp -o %t/emu
// RUN: %t/emu | FileCheck %s
// RUN: env MOEC_EMU_ORDER=reverse %t/emu | FileCheck %s
// CHECK: PASS: 0 failures

//--- emu.cpp
// The standard headers first: cuda_emu.h defines CUDA's keywords as macros.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>
// generic.mlir's kernels for sm_89 (build_kernels.py --header).
#include "kernels.h"
static std::mt19937 rng(1234);
static float rand_f(float lo, float hi) { return std::uniform_real_distribution<float>(lo, hi)(rng); }
static int fails = 0;
#define CHECK(cond, ...) do { if (!(cond)) { ++fails; if (fails < 20) { printf("FAIL %s:%d ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); } } } while (0)
static bool same(float a, float b) { return (std::isnan(a) && std::isnan(b)) || (a == b); }
static bool near(float a, double b) { return (std::isnan(a) && std::isnan(b)) || (std::isinf(b) && a == b) || std::fabs(a - b) <= 1e-5 * (1 + std::fabs(b)); }
const long long T = 5;
static int flat(long long n) { return (int)((n + 255) / 256); }
int main() {
  // step 1: [T,4,16] / [T,4,1]
  { std::vector<float> x(T*64), n(T*4), y(T*64, -12345.f);
    for (auto &v : x) v = rand_f(-1, 1); for (auto &v : n) v = rand_f(0.5, 2);
    moec_step_1(dim3(flat(T*64)), dim3(256), x.data(), n.data(), y.data(), nullptr, T);
    for (int t = 0; t < T; ++t) for (int h = 0; h < 4; ++h) for (int c = 0; c < 16; ++c) {
      int i = (t*4+h)*16+c; CHECK(same(y[i], x[i] / n[t*4+h]), "binary div %d", i); } }
  // step 3: [T,4,16] * [16]
  { std::vector<float> x(T*64), w(16), y(T*64, -12345.f);
    for (auto &v : x) v = rand_f(-1, 1); for (auto &v : w) v = rand_f(-1, 1);
    moec_step_3(dim3(flat(T*64)), dim3(256), x.data(), w.data(), y.data(), nullptr, T);
    for (int i = 0; i < T*64; ++i) CHECK(same(y[i], x[i] * w[i % 16]), "binary mul %d", i); }
  // step 2: pow
  { float xs[] = {-2.f, -1.5f, 0.f, -0.f, 3.f, NAN, 2.5f, -8.f};
    float es[] = {0.f, 1.f, 2.f, 0.5f, 3.f, -1.f, 2.5f, 1.f/3};
    for (float e : es) { std::vector<float> x(T*64), y(T*64); for (int i = 0; i < T*64; ++i) x[i] = xs[i % 8];
      moec_step_2(dim3(flat(T*64)), dim3(256), x.data(), &e, y.data(), nullptr, T);
      for (int i = 0; i < 8; ++i) { float a = xs[i]; double r;
        if (e == 0) r = 1; else if (e == 1) r = a; else if (e == 2) r = (double)a*a; else if (e == 0.5f) r = std::sqrt(a);
        else { double g = std::exp(e * std::log(std::fabs(a))); bool isint = std::floor(e) == e;
          if (a < 0) r = isint ? (std::fmod(std::fabs(e), 2) == 1 ? -g : g) : NAN; else r = g; }
        CHECK(near(y[i], r), "pow(%g, %g) = %g want %g", a, e, y[i], r); } } }
  // step 9: softmax rows of 8, a row with -inf, a row with NaN
  { std::vector<float> x(T*8), y(T*8);
    for (auto &v : x) v = rand_f(-3, 3); x[8] = -INFINITY; x[17] = NAN;
    moec_step_9(dim3(T), dim3(32), x.data(), y.data(), nullptr, T);
    for (int t = 0; t < T; ++t) { float m = -INFINITY; for (int c = 0; c < 8; ++c) { float v = x[t*8+c]; m = m < v ? v : m; }
      double s = 0; for (int c = 0; c < 8; ++c) s += std::exp((double)x[t*8+c] - m);
      for (int c = 0; c < 8; ++c) CHECK(near(y[t*8+c], std::exp((double)x[t*8+c] - m) / s), "softmax %d %d", t, c); } }
  // step 11: sum over dim 2 of [T,2,100] (block); step 12: max over dim 1 (serial)
  { std::vector<float> x(T*200), s(T*2), m(T*100);
    for (auto &v : x) v = rand_f(-1, 1); x[5] = NAN;
    moec_step_11(dim3(T*2), dim3(32), x.data(), s.data(), nullptr, T);
    moec_step_12(dim3(flat(T*100)), dim3(256), x.data(), m.data(), nullptr, T);
    for (int t = 0; t < T; ++t) for (int j = 0; j < 2; ++j) { double r = 0; for (int c = 0; c < 100; ++c) r += x[(t*2+j)*100+c];
      CHECK(near(s[t*2+j], r), "reduce sum %d %d: %g vs %g", t, j, s[t*2+j], r); }
    for (int t = 0; t < T; ++t) for (int c = 0; c < 100; ++c) { float a = x[t*200+c], b = x[t*200+100+c];
      float r = (std::isnan(a) || std::isnan(b)) ? NAN : std::max(a, b); CHECK(same(m[t*100+c], r), "reduce max %d %d", t, c); } }
  // step 13: topk k=2 of 8, ties, NaN, all-NaN row
  { std::vector<float> x(T*8), v(T*2); std::vector<int> ix(T*2);
    float rows[5][8] = {{1, 3, 3, 2, 0, 3, -1, 0}, {NAN, 1, NAN, 1, 0, 0, 0, 0}, {NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN},
                        {-0.f, 0.f, -1, -2, -3, -4, -5, -6}, {0.1f, 0.7f, 0.3f, 0.9f, 0.2f, 0.8f, 0.5f, 0.6f}};
    for (int i = 0; i < 40; ++i) x[i] = rows[i/8][i%8];
    moec_step_13(dim3(T), dim3(32), x.data(), v.data(), ix.data(), nullptr, T);
    int want[5][2] = {{1, 2}, {1, 3}, {0, 1}, {0, 1}, {3, 5}};
    for (int t = 0; t < T; ++t) for (int j = 0; j < 2; ++j) { CHECK(ix[t*2+j] == want[t][j], "topk idx %d %d got %d", t, j, ix[t*2+j]);
      CHECK(same(v[t*2+j], x[t*8+want[t][j]]), "topk val %d %d", t, j); } }
  // step 14: transpose [T,4,16] -> [T,16,4]
  { std::vector<float> x(T*64), y(T*64); for (auto &v : x) v = rand_f(-1, 1);
    moec_step_14(dim3(flat(T*64)), dim3(256), x.data(), y.data(), nullptr, T);
    for (int t = 0; t < T; ++t) for (int a = 0; a < 16; ++a) for (int b = 0; b < 4; ++b)
      CHECK(same(y[(t*16+a)*4+b], x[(t*4+b)*16+a]), "transpose"); }
  // step 15: batch_matmul [T,4,2,8] x [T,4,8,3]
  { std::vector<float> a(T*64), b(T*96), y(T*24, -12345.f); for (auto &v : a) v = rand_f(-1, 1); for (auto &v : b) v = rand_f(-1, 1);
    moec_step_15(dim3(T*4), dim3(256), a.data(), b.data(), y.data(), nullptr, T);
    for (int bt = 0; bt < T*4; ++bt) for (int m = 0; m < 2; ++m) for (int n = 0; n < 3; ++n) { float acc = 0;
      for (int k = 0; k < 8; ++k) acc = acc + a[(bt*2+m)*8+k] * b[(bt*8+k)*3+n];
      CHECK(same(y[(bt*2+m)*3+n], acc), "bmm %d %d %d", bt, m, n); } }
  // step 16: gather [T,8] by [T,2] i32 with negative and out-of-range
  { std::vector<float> p(T*8), y(T*2); std::vector<int> ix = {0, 7, -1, -8, 9, -9, 3, 3, 5, 2};
    for (auto &v : p) v = rand_f(-1, 1);
    moec_step_16(dim3(flat(T*2)), dim3(256), p.data(), ix.data(), y.data(), nullptr, T);
    for (int i = 0; i < T*2; ++i) { long long at = ix[i]; if (at < 0) at += 8; at = std::clamp(at, 0LL, 7LL);
      CHECK(same(y[i], p[(i/2)*8+at]), "gather %d", i); } }
  // step 17: scatter [T,8] with [T,2] i64 duplicates: the last wins
  { std::vector<float> p(T*8), u(T*2), y(T*8); std::vector<long long> ix = {1, 1, 0, 7, -1, 7, 3, -5, 2, 6};
    for (auto &v : p) v = rand_f(-1, 1); for (auto &v : u) v = rand_f(2, 3);
    moec_step_17_copy(dim3(flat(T*8)), dim3(256), p.data(), ix.data(), u.data(), y.data(), nullptr, T);
    moec_step_17_scatter(dim3(flat(T)), dim3(256), p.data(), ix.data(), u.data(), y.data(), nullptr, T);
    std::vector<float> r = p; for (int i = 0; i < T*2; ++i) { long long at = ix[i]; if (at < 0) at += 8; r[(i/2)*8+at] = u[i]; }
    for (int i = 0; i < T*8; ++i) CHECK(same(y[i], r[i]), "scatter %d", i); }
  // step 18: one_hot depth 8 of [T,2] i32
  { std::vector<int> ix = {0, 7, -1, -8, 8, -9, 3, 3, 5, 2}; std::vector<float> y(T*16);
    moec_step_18(dim3(flat(T*16)), dim3(256), ix.data(), y.data(), nullptr, T);
    for (int i = 0; i < T*2; ++i) for (int c = 0; c < 8; ++c) { long long at = ix[i]; if (at < 0) at += 8;
      CHECK(y[i*8+c] == (at == c ? 1.f : -0.5f), "one_hot %d %d", i, c); } }
  // step 4: compare i64 eq; step 5 select; step 6/7 casts
  { std::vector<long long> a = {0, 1, 2, -1, 1, 1, 5, 1, 0, 0}; long long e = 1; std::vector<unsigned char> c(T*2);
    moec_step_4(dim3(flat(T*2)), dim3(256), a.data(), &e, (bool *)c.data(), nullptr, T);
    for (int i = 0; i < T*2; ++i) CHECK(c[i] == (a[i] == 1), "compare %d", i);
    std::vector<unsigned char> m(T*8); std::vector<float> p(T*8), y(T*8), f(T*8); std::vector<int> k(T*8); float ninf = -INFINITY;
    for (int i = 0; i < T*8; ++i) { m[i] = i % 3 == 0; p[i] = rand_f(-5, 5); } p[3] = NAN;
    moec_step_5(dim3(flat(T*8)), dim3(256), (bool *)m.data(), p.data(), &ninf, y.data(), nullptr, T);
    moec_step_6(dim3(flat(T*8)), dim3(256), (bool *)m.data(), f.data(), nullptr, T);
    moec_step_7(dim3(flat(T*8)), dim3(256), p.data(), k.data(), nullptr, T);
    for (int i = 0; i < T*8; ++i) { CHECK(same(y[i], m[i] ? p[i] : ninf), "select %d", i); CHECK(f[i] == m[i], "cast i1 %d", i);
      CHECK(k[i] == (std::isnan(p[i]) ? 0 : (int)p[i]), "cast i32 %d", i); } }
  // step 10: mean of 16
  { std::vector<float> x(T*64), y(T*4); for (auto &v : x) v = rand_f(-1, 1);
    moec_step_10(dim3(flat(T*4)), dim3(256), x.data(), y.data(), nullptr, T);
    for (int r = 0; r < T*4; ++r) { float acc = 0; for (int c = 0; c < 16; ++c) acc = acc + x[r*16+c]; CHECK(same(y[r], acc / 16.f), "mean %d", r); } }
  printf("%s: %d failures\n", fails ? "FAIL" : "PASS", fails);
  return fails != 0;
}
