// Runs the emitted GEMM kernels on the host: the CUDA text of each step,
// translated by test/emu/build_kernels.py --header for one #if path and
// compiled as C++ against test/emu/cuda_emu.h (fibers, poisoned shared
// memory, and the PTX models of cp.async, mma.sync m16n8k32 e4m3 and
// m16n8k16 bf16, wgmma m64n128k32 through swizzled descriptors, TMA tile
// copies and mbarriers; docs/cuda.md, "Host emulation of the kernels"). Each
// instruction path (sm_80, sm_89, sm_90a with TMA, sm_90a with cp.async) is
// compared with a float64 reference of the CPU's semantics, the threads of a
// block run in ascending and in descending order between barriers (a missing
// barrier reads poison in one of them). Activation rows between the row
// count and the map's capacity hold NaN codes, which must not reach any
// stored output. This checks the kernels' indexing (tiles, expert
// scheduling, shared-memory layout, fragment addressing, barrier phases,
// scales, epilogues), not the hardware.
// RUN: rm -rf %t && split-file %s %t
// RUN: mkdir %t/fp8_sm80 %t/fp8_sm89 %t/fp8_sm90 %t/fp8_sm90_cp %t/f32
// RUN: moec %t/fp8.mlir --from=fp8 --compile-to=codegen --target=sm_89 > %t/fp8.cu
// RUN: FileCheck %s --check-prefix=MAPS < %t/fp8.cu
// RUN: %python %moec_src/test/emu/build_kernels.py %t/fp8.cu --header %t/fp8_sm80/kernels.h --arch sm_80
// RUN: c++ -std=c++20 -O1 -w -fno-strict-aliasing -Wno-psabi -DTMA_MAPS=1 -I %t/fp8_sm80 %t/fp8_main.cpp -o %t/fp8_sm80/test
// RUN: %t/fp8_sm80/test | FileCheck %s --check-prefix=FP8
// RUN: env MOEC_EMU_ORDER=reverse %t/fp8_sm80/test | FileCheck %s --check-prefix=FP8
// RUN: %python %moec_src/test/emu/build_kernels.py %t/fp8.cu --header %t/fp8_sm89/kernels.h --arch sm_89
// RUN: c++ -std=c++20 -O1 -w -fno-strict-aliasing -Wno-psabi -DTMA_MAPS=1 -I %t/fp8_sm89 %t/fp8_main.cpp -o %t/fp8_sm89/test
// RUN: %t/fp8_sm89/test | FileCheck %s --check-prefix=FP8
// RUN: env MOEC_EMU_ORDER=reverse %t/fp8_sm89/test | FileCheck %s --check-prefix=FP8
// RUN: %python %moec_src/test/emu/build_kernels.py %t/fp8.cu --header %t/fp8_sm90/kernels.h --arch sm_90a
// RUN: c++ -std=c++20 -O1 -w -fno-strict-aliasing -Wno-psabi -DTMA_MAPS=1 -I %t/fp8_sm90 %t/fp8_main.cpp -o %t/fp8_sm90/test
// RUN: %t/fp8_sm90/test | FileCheck %s --check-prefix=FP8
// RUN: env MOEC_EMU_ORDER=reverse %t/fp8_sm90/test | FileCheck %s --check-prefix=FP8
// RUN: moec %t/fp8.mlir --from=fp8 --compile-to=codegen --target=sm_90 --cuda-tma=false > %t/fp8_cp.cu
// RUN: FileCheck %s --check-prefix=NOMAPS < %t/fp8_cp.cu
// RUN: %python %moec_src/test/emu/build_kernels.py %t/fp8_cp.cu --header %t/fp8_sm90_cp/kernels.h --arch sm_90a
// RUN: c++ -std=c++20 -O1 -w -fno-strict-aliasing -Wno-psabi -DTMA_MAPS=0 -I %t/fp8_sm90_cp %t/fp8_main.cpp -o %t/fp8_sm90_cp/test
// RUN: %t/fp8_sm90_cp/test | FileCheck %s --check-prefix=FP8
// RUN: env MOEC_EMU_ORDER=reverse %t/fp8_sm90_cp/test | FileCheck %s --check-prefix=FP8
// RUN: moec %t/f32.mlir --from=fp8 --compile-to=codegen --target=sm_89 > %t/f32.cu
// RUN: %python %moec_src/test/emu/build_kernels.py %t/f32.cu --header %t/f32/kernels.h --arch sm_89
// RUN: c++ -std=c++20 -O1 -w -fno-strict-aliasing -I %t/f32 %t/f32_main.cpp -o %t/f32/test
// RUN: %t/f32/test | FileCheck %s --check-prefix=F32
// RUN: env MOEC_EMU_ORDER=reverse %t/f32/test | FileCheck %s --check-prefix=F32

// The tensor maps fp8_main.cpp's make_map builds (x {K, capacity rows}, w
// {K, N, E}, innermost first, 64 x 64 (x 1) boxes, 64-byte swizzle):
// MAPS: moec_step_0 {{.*}} tma(a0 320x{{[0-9]+}} strides 320 box 64x64 sw64, a2 320x192x1 strides 320x61440 box 64x64x1 sw64)
// MAPS: moec_step_1 {{.*}} tma(a0 320x{{[0-9]+}} strides 320 box 64x64 sw64, a3 320x192x3 strides 320x61440 box 64x64x1 sw64)
// MAPS: moec_step_2 {{.*}} tma(a0 64x{{[0-9]+}} strides 64 box 64x64 sw64, a3 64x64x40 strides 64x4096 box 64x64x1 sw64)
// NOMAPS-NOT: tma(
// NOMAPS-NOT: moec_tensor_map tm0

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
//--- common.h
// What the tests share, then the kernels of one #if path (kernels.h:
// build_kernels.py --header, one folder per path on -I). The standard
// headers come first: cuda_emu.h defines CUDA's keywords as macros.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <new>
#include <random>
#include <vector>
#include "kernels.h"
static std::mt19937 rng(1234);
static unsigned char rand_fp8() { unsigned c; do { c = rng() & 0xff; } while ((c & 0x7f) == 0x7f || ((c >> 3) & 15) > 9); return c; }
static float rand_f(float lo, float hi) { return std::uniform_real_distribution<float>(lo, hi)(rng); }
static double silu(double x) { return x / (1 + std::exp(-x)); }
// The reference's e4m3 decoding, written apart from the emulation's.
static double e4m3(unsigned b) {
  unsigned e = (b >> 3) & 15, m = b & 7;
  if ((b & 0x7f) == 0x7f) return NAN;
  double v = e == 0 ? std::ldexp(m, -9) : std::ldexp(8 + m, (int)e - 10);
  return b & 0x80 ? -v : v;
}
// Storage at 128-byte aligned addresses, as cudaMalloc gives (TMA reads a
// swizzled tensor only there).
template <typename T> struct Aligned {
  using value_type = T;
  Aligned() = default;
  template <typename U> Aligned(const Aligned<U> &) {}
  T *allocate(size_t n) { return static_cast<T *>(::operator new(n * sizeof(T), std::align_val_t(128))); }
  void deallocate(T *p, size_t) { ::operator delete(p, std::align_val_t(128)); }
  bool operator==(const Aligned &) const { return true; }
};
using Bytes = std::vector<unsigned char, Aligned<unsigned char>>;
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
//--- maps.h
// The FP8 kernels' tensor maps, as FakeCudaDriver's cuTensorMapEncodeTiled
// encodes them (test/emu/tensor_map_image.h) from the launch lines (MAPS
// above): x as {K, capacity rows}, w as {K, N, E}, 1-byte elements, boxes
// 64 x 64 (x 1), 64-byte swizzle. With TMA_MAPS=0 (--cuda-tma=false) the
// kernels take none; on sm_80/sm_89 they take them unused.
#if TMA_MAPS
#define MAPS(a, b) , a, b
#else
#define MAPS(a, b)
#endif
static moec_tensor_map make_map(const Bytes &t, uint64_t d0, uint64_t d1, uint64_t d2) {
  moec_emu::TensorMapImage m{};
  m.magic = moec_emu::kTensorMapMagic; m.elementBytes = 1; m.rank = d2 ? 3 : 2; m.swizzleBytes = 64;
  m.address = (uintptr_t)t.data();
  m.dims[0] = d0; m.dims[1] = d1; m.dims[2] = d2; m.strides[0] = d0; m.strides[1] = d2 ? d0 * d1 : 0;
  m.box[0] = 64; m.box[1] = 64; m.box[2] = d2 ? 1 : 0;
  static_assert(sizeof m == sizeof(moec_tensor_map), "a CUtensorMap is 128 bytes");
  moec_tensor_map r; memcpy(&r, &m, sizeof m); return r;
}
// Activation rows [rows, capacity) of the arena hold stale data: NaN codes.
static void stale_rows(Bytes &x, size_t used) {
  for (size_t i = used; i < x.size(); ++i) x[i] = 0x7F;
}
//--- fp8_main.cpp
#include "common.h"
#include "maps.h"
// fp8 dense: N=192 K=320 bias, T rows (capacity C: the last row tile
// crosses it, and the second weight box of column tile 1 lies past N).
static int dense() {
  const int N = 192, K = 320, KB = 3, NB = 2, T = 70, C = 100;
  Bytes x(C * K), w(N * K);
  std::vector<float> xs(T * KB), ws(NB * KB), bias(N), y(T * N, -12345.0f);
  for (int i = 0; i < T * K; ++i) x[i] = rand_fp8(); for (auto &v : w) v = rand_fp8();
  stale_rows(x, T * K);
  for (auto &v : xs) v = rand_f(0.01f, 1); for (auto &v : ws) v = rand_f(0.01f, 1);
  for (auto &v : bias) v = rand_f(-1, 1);
  moec_tensor_map ma = make_map(x, K, C, 0), mb = make_map(w, K, N, 1);
  moec_step_0(dim3((N + 127) / 128, (T + 63) / 64), dim3(128),
              x.data(), xs.data(), w.data(), ws.data(), bias.data(), y.data(), nullptr, T MAPS(ma, mb));
  std::vector<double> ref(T * N);
  for (int r = 0; r < T; ++r) for (int n = 0; n < N; ++n) {
    double s = 0; for (int k = 0; k < K; ++k) s += e4m3(x[r * K + k]) * xs[r * KB + k / 128] * e4m3(w[n * K + k]) * ws[(n / 128) * KB + k / 128];
    ref[r * N + n] = s + bias[n]; }
  return report("fp8 dense bias", y, ref);
}
// fp8 grouped silu: E=3 N=192 K=320; offsets leave rows unowned, one expert empty.
static int grouped_silu() {
  const int E = 3, N = 192, H = 96, K = 320, KB = 3, NB = 2, R = 150, C = 190;
  int offsets[E + 1] = {5, 70, 70, 140};
  Bytes x(C * K), w(E * N * K);
  std::vector<float> xs(R * KB), ws(E * NB * KB), y(R * H, -12345.0f);
  for (int i = 0; i < R * K; ++i) x[i] = rand_fp8(); for (auto &v : w) v = rand_fp8();
  stale_rows(x, R * K);
  for (auto &v : xs) v = rand_f(0.01f, 0.3f); for (auto &v : ws) v = rand_f(0.01f, 0.3f);
  moec_tensor_map ma = make_map(x, K, C, 0), mb = make_map(w, K, N, E);
  moec_step_1(dim3((H + 63) / 64, (R + 63) / 64 + E), dim3(128),
              x.data(), xs.data(), offsets, w.data(), ws.data(), y.data(), nullptr, R MAPS(ma, mb));
  std::vector<double> ref(R * H, 0.0);
  for (int e = 0; e < E; ++e) for (int r = offsets[e]; r < offsets[e + 1]; ++r) {
    auto dot = [&](int n) { double s = 0; for (int k = 0; k < K; ++k) s += e4m3(x[r * K + k]) * xs[r * KB + k / 128] * e4m3(w[(e * N + n) * K + k]) * ws[(e * NB + n / 128) * KB + k / 128]; return s; };
    for (int n = 0; n < H; ++n) ref[r * H + n] = silu(dot(n)) * dot(H + n); }
  return report("fp8 grouped silu", y, ref);
}
static int grouped_e40() {
  const int E = 40, N = 64, K = 64, R = 300;
  int offsets[E + 1]; offsets[0] = 3;
  for (int e = 1; e <= E; ++e) offsets[e] = std::min(290, offsets[e - 1] + (int)(rng() % 3 == 0 ? 0 : rng() % 20));
  offsets[E] = 290;
  Bytes x(R * K), w(E * N * K);
  std::vector<float> xs(R), ws(E), y(R * N, -12345.0f);
  for (auto &v : x) v = rand_fp8(); for (auto &v : w) v = rand_fp8();
  for (auto &v : xs) v = rand_f(0.01f, 0.3f); for (auto &v : ws) v = rand_f(0.01f, 0.3f);
  moec_tensor_map ma = make_map(x, K, R, 0), mb = make_map(w, K, N, E);
  moec_step_2(dim3(1, (R + 63) / 64 + E), dim3(128),
              x.data(), xs.data(), offsets, w.data(), ws.data(), y.data(), nullptr, R MAPS(ma, mb));
  std::vector<double> ref(R * N, 0.0);
  for (int e = 0; e < E; ++e) for (int r = offsets[e]; r < offsets[e + 1]; ++r) for (int n = 0; n < N; ++n) {
    double s = 0; for (int k = 0; k < K; ++k) s += e4m3(x[r * K + k]) * xs[r] * e4m3(w[(e * N + n) * K + k]) * ws[e]; ref[r * N + n] = s; }
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
  moec_step_0(dim3((H + 31) / 32, (T + 63) / 64), dim3(256), x.data(), w.data(), b.data(), y.data(), nullptr, T);
  moec_step_1(dim3((N2 + 63) / 64, (R + 63) / 64 + E), dim3(256), rows.data(), offsets, w2.data(), z.data(), nullptr, R);
  std::vector<double> ry(T * H), rz(R * N2, 0.0);
  for (int r = 0; r < T; ++r) {
    auto dot = [&](int n) { double s = 0; for (int k = 0; k < K; ++k) s += (double)x[r * K + k] * frombf(w[n * K + k]); return s + frombf(b[n]); };
    for (int n = 0; n < H; ++n) ry[r * H + n] = silu(dot(n)) * dot(H + n); }
  for (int e = 0; e < E; ++e) for (int r = offsets[e]; r < offsets[e + 1]; ++r) for (int n = 0; n < N2; ++n) {
    double s = 0; for (int k = 0; k < K; ++k) s += (double)rows[r * K + k] * w2[(e * N2 + n) * K + k]; rz[r * N2 + n] = s; }
  return report("f32 dense bf16 silu bias", y, ry) | report("f32 grouped f32", z, rz);
}
