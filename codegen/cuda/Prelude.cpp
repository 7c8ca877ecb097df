//===- Prelude.cpp - CUDA C++ every kernel of a model can use -------------===//
//
// Device twins of `runtime/fp8` (same rounding, saturation and NaN rules, so
// host and device agree bit for bit) and the reductions the row kernels
// share. Names start with `moec_` so they cannot clash with emitted kernels.
//
//===----------------------------------------------------------------------===//

#include "codegen/cuda/Prelude.h"

static const char kPrelude[] = R"cuda(// ---- moec prelude ----
typedef unsigned char moec_fp8;   // e4m3fn code
typedef unsigned short moec_bf16; // bf16 bit pattern
// A TMA descriptor (cuda.h's CUtensorMap: 128 opaque bytes, 64-byte
// aligned) that the runtime encodes and passes by value after `tokens` as
// `const __grid_constant__ moec_tensor_map tm<j>`; kernels only hand its
// address to cp.async.bulk.tensor (docs/artifact.md, "CUDA kernel ABI").
struct __align__(64) moec_tensor_map {
  unsigned long long opaque[16];
};

// ---- conversions (bit-exact with runtime/fp8) ----
__device__ __forceinline__ float moec_bf16_to_float(moec_bf16 b) {
  return __uint_as_float((unsigned int)b << 16);
}

// Round to nearest even; NaN stays a quiet NaN with its sign.
__device__ __forceinline__ moec_bf16 moec_float_to_bf16(float x) {
  unsigned int bits = __float_as_uint(x);
  if ((bits & 0x7FFFFFFFu) > 0x7F800000u)
    return (moec_bf16)((bits >> 16) | 0x40u);
  bits += 0x7FFFu + ((bits >> 16) & 1u);
  return (moec_bf16)(bits >> 16);
}

__device__ __forceinline__ float moec_fp8_to_float(moec_fp8 b) {
  const unsigned int sign = (unsigned int)(b & 0x80u) << 24;
  const unsigned int exp = (b >> 3) & 0xFu, man = b & 0x7u;
  if ((b & 0x7Fu) == 0x7Fu)
    return __uint_as_float(sign | 0x7FC00000u);
  if (exp == 0) // subnormal: man * 2^-9
    return __uint_as_float(sign | __float_as_uint((float)man * 0.001953125f));
  return __uint_as_float(sign | ((exp + 120u) << 23) | (man << 20));
}

__device__ __forceinline__ unsigned int moec_shift_rne(unsigned int v,
                                                       unsigned int shift) {
  const unsigned int kept = v >> shift;
  const unsigned int rest = v & ((1u << shift) - 1u);
  const unsigned int half = 1u << (shift - 1);
  return kept + (rest > half || (rest == half && (kept & 1u)));
}

// Saturating round-to-nearest-even: |x| >= 448 and +-Inf give +-448, NaN
// gives 0x7F with the sign of x.
__device__ __forceinline__ moec_fp8 moec_float_to_fp8(float x) {
  const unsigned int bits = __float_as_uint(x);
  const unsigned int sign = (bits >> 24) & 0x80u;
  const unsigned int abs = bits & 0x7FFFFFFFu;
  if (abs > 0x7F800000u)
    return (moec_fp8)(sign | 0x7Fu);
  if (abs >= 0x43E00000u) // 448.0f, and Inf
    return (moec_fp8)(sign | 0x7Eu);
  const unsigned int exp = abs >> 23;
  if (exp >= 121u) // normal e4m3 (>= 2^-6)
    return (moec_fp8)(sign | moec_shift_rne(abs - (120u << 23), 20));
  const unsigned int m = exp ? (abs & 0x007FFFFFu) | 0x00800000u : abs;
  const unsigned int shift = 141u - (exp ? exp : 1u);
  if (shift > 25u)
    return (moec_fp8)sign;
  return (moec_fp8)(sign | moec_shift_rne(m, shift));
}

// ---- element access by type: every activation is computed in f32 ----
__device__ __forceinline__ float moec_load(const float *p, long long i) {
  return p[i];
}
__device__ __forceinline__ float moec_load(const moec_bf16 *p, long long i) {
  return moec_bf16_to_float(p[i]);
}
__device__ __forceinline__ float moec_load(const moec_fp8 *p, long long i) {
  return moec_fp8_to_float(p[i]);
}
__device__ __forceinline__ void moec_store(float *p, long long i, float v) {
  p[i] = v;
}
__device__ __forceinline__ void moec_store(moec_bf16 *p, long long i,
                                           float v) {
  p[i] = moec_float_to_bf16(v);
}
__device__ __forceinline__ void moec_store(moec_fp8 *p, long long i, float v) {
  p[i] = moec_float_to_fp8(v);
}

// ---- reductions (blockDim.x a multiple of 32, at most 1024) ----
__device__ __forceinline__ float moec_warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1)
    v += __shfl_xor_sync(0xFFFFFFFFu, v, o);
  return v;
}
__device__ __forceinline__ float moec_warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1)
    v = fmaxf(v, __shfl_xor_sync(0xFFFFFFFFu, v, o));
  return v;
}
// Every thread of the block gets the result. Uses 32 floats of shared memory.
__device__ __forceinline__ float moec_block_sum(float v) {
  __shared__ float partial[32];
  v = moec_warp_sum(v);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  __syncthreads();
  if (lane == 0)
    partial[warp] = v;
  __syncthreads();
  v = lane < (int)(blockDim.x >> 5) ? partial[lane] : 0.0f;
  return moec_warp_sum(v);
}
__device__ __forceinline__ float moec_block_max(float v) {
  __shared__ float partial[32];
  v = moec_warp_max(v);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  __syncthreads();
  if (lane == 0)
    partial[warp] = v;
  __syncthreads();
  v = lane < (int)(blockDim.x >> 5) ? partial[lane] : -__int_as_float(0x7F800000);
  return moec_warp_max(v);
}

// ---- FP8 block scales (runtime/fp8 blockScale) ----
// The scale of a block whose largest finite magnitude is `amax`.
__device__ __forceinline__ float moec_block_scale(float amax, bool pow2) {
  const float scale = fmaxf(amax, 1e-4f) / 448.0f;
  if (!pow2)
    return scale;
  const unsigned int bits = __float_as_uint(scale);
  // Normal positive scale: round up to a power of two unless it is one.
  const unsigned int up = (bits & 0x007FFFFFu) ? (bits & 0x7F800000u) + 0x00800000u
                                               : bits;
  return __uint_as_float(up);
}
// ---- end of prelude ----
)cuda";

llvm::StringRef mlir::moec::cuda::getCudaPrelude() { return kPrelude; }
