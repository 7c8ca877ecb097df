//===- Fp8.h - FP8 casts and block quantization -----------------*- C++ -*-===//
//
// Scalar conversions between f32 and the two OCP FP8 formats (E4M3FN, E5M2),
// bf16/f16 widening, and the DeepSeek-V3 block quantization scheme
// (DESIGN.md §4). Plain C++17, shared by the artifact writer and the CPU
// runtime; every function is bit-exact against ml_dtypes (see docs/fp8.md and
// test/unit/fp8/check_fp8.py).
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_RUNTIME_FP8_FP8_H
#define MOEC_RUNTIME_FP8_FP8_H

#include <cstdint>

namespace moec::runtime::fp8 {

/// Largest finite E4M3FN value (code 0x7E); casts saturate to it.
constexpr float kE4M3FNMax = 448.0f;
/// Largest finite E5M2 value (code 0x7B); casts saturate to it.
constexpr float kE5M2Max = 57344.0f;
/// Lower bound on a block's amax before it becomes a scale (DeepGEMM's clamp),
/// so that all-zero or all-non-finite blocks get a finite, non-zero scale.
constexpr float kAmaxFloor = 1e-4f;

//===----------------------------------------------------------------------===//
// Scalar casts
//===----------------------------------------------------------------------===//

/// Converts `x` to E4M3FN with round-to-nearest-even, saturating: every value
/// whose magnitude is >= 448 (±Inf included) becomes ±448 (0x7E / 0xFE). NaN
/// becomes 0x7F, or 0xFF when the sign bit of `x` is set. -0 becomes 0x80;
/// f32 subnormals and the E4M3FN subnormal range (2^-9 steps below 2^-6) are
/// rounded exactly. Equals ml_dtypes'
/// `np.clip(x, -448, 448).astype(float8_e4m3fn)`.
uint8_t floatToE4M3FN(float x);

/// Decodes the E4M3FN byte `b` exactly. The two NaN codes (0x7F, 0xFF) decode
/// to the canonical quiet NaN 0x7FC00000 with the sign of `b`.
float e4m3fnToFloat(uint8_t b);

/// Converts `x` to E5M2 with round-to-nearest-even, saturating: finite values
/// that would round beyond 57344, and ±Inf, become ±57344 (0x7B / 0xFB). NaN
/// becomes 0x7E, or 0xFE when the sign bit of `x` is set. Equals ml_dtypes'
/// `np.clip(x, -57344, 57344).astype(float8_e5m2)`.
uint8_t floatToE5M2(float x);

/// Decodes the E5M2 byte `b` exactly. ±Inf (0x7C / 0xFC) decode to ±Inf; the
/// NaN codes (0x7D..0x7F and their negatives) decode to the canonical quiet
/// NaN 0x7FC00000 with the sign of `b`.
float e5m2ToFloat(uint8_t b);

/// Widens the bf16 bit pattern `bits` to f32 exactly (NaN payloads kept).
float bf16ToFloat(uint16_t bits);

/// Widens the IEEE binary16 bit pattern `bits` to f32 exactly: subnormals are
/// normalised, ±Inf stay ±Inf, NaN payloads are kept (no quieting).
float halfToFloat(uint16_t bits);

//===----------------------------------------------------------------------===//
// Block quantization
//===----------------------------------------------------------------------===//

/// Quantizes the row-major `[rows, cols]` f32 matrix `src` to E4M3FN in
/// blocks of `[br, bc]` (weights: 128x128; activations: 1x128). Blocks tile
/// the matrix from (0, 0); the last block row / column may be partial.
///
/// For each block B, all arithmetic in f32:
///   amax  = max |x| over the finite x in B (NaN and ±Inf ignored; 0 if none)
///   amax  = max(amax, kAmaxFloor)
///   scale = amax / 448
///   if `pow2Scale`: scale = 2^ceil(log2(scale)), computed exactly (a scale
///                   that is already a power of two is kept)
///   q     = floatToE4M3FN(x / scale) for each x in B
/// so `dequant = q * scale` (the checkpoint's `weight_scale_inv`). Inf inputs
/// saturate to ±448 and NaN inputs stay NaN through the cast.
///
/// `dst` receives `rows * cols` codes in the layout of `src`; `scales`
/// receives `ceil(rows / br) * ceil(cols / bc)` scales, row-major over blocks.
/// Nothing is written when `rows`, `cols`, `br` or `bc` is not positive.
void quantizeBlocks(const float *src, int64_t rows, int64_t cols, int64_t br,
                    int64_t bc, bool pow2Scale, uint8_t *dst, float *scales);

/// Inverse of `quantizeBlocks`: `dst[i][j] = e4m3fnToFloat(q[i][j]) *
/// scales[i / br][j / bc]`, one f32 multiplication. `scales` has the layout
/// produced by `quantizeBlocks`. Nothing is written when `rows`, `cols`, `br`
/// or `bc` is not positive.
void dequantizeBlocks(const uint8_t *q, const float *scales, int64_t rows,
                      int64_t cols, int64_t br, int64_t bc, float *dst);

} // namespace moec::runtime::fp8

#endif // MOEC_RUNTIME_FP8_FP8_H
