//===- Fp8.cpp - FP8 casts and block quantization ---------------*- C++ -*-===//
//
// Integer-only encoders for E4M3FN and E5M2 (round-to-nearest-even, then
// saturation), compile-time decode tables, bf16/f16 widening, and the block
// quantizer used for weights (128x128) and activations (1x128). The numeric
// contract is documented in Fp8.h and docs/fp8.md.
//
//===----------------------------------------------------------------------===//

#include "runtime/fp8/Fp8.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>

namespace moec::runtime::fp8 {
namespace {

uint32_t floatBits(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof(bits));
  return bits;
}

float bitsFloat(uint32_t bits) {
  float x;
  std::memcpy(&x, &bits, sizeof(x));
  return x;
}

constexpr uint32_t kF32AbsMask = 0x7FFFFFFFu;
constexpr uint32_t kF32Inf = 0x7F800000u;
constexpr uint32_t kF32QuietNaN = 0x7FC00000u;
constexpr uint32_t kE4M3FNMaxBits = 0x43E00000u; // 448.0f
constexpr uint32_t kE5M2MaxBits = 0x47600000u;   // 57344.0f

/// Shifts `v` right by `shift` (1..31) rounding to nearest, ties to even.
constexpr uint32_t shiftRightRNE(uint32_t v, unsigned shift) {
  uint32_t kept = v >> shift;
  uint32_t rest = v & ((1u << shift) - 1u);
  uint32_t half = 1u << (shift - 1);
  return kept + (rest > half || (rest == half && (kept & 1u)));
}

/// Rounds the f32 magnitude `abs` (finite, below the format's saturation
/// threshold) to the sign-less code of a minifloat with `ManBits` mantissa
/// bits and exponent bias `Bias`. A carry out of the mantissa moves into the
/// exponent field, which is exactly the next binade's first code.
template <unsigned ManBits, unsigned Bias>
uint32_t roundMagnitude(uint32_t abs) {
  // f32 biased exponent of the format's smallest normal, 2^(1 - Bias).
  constexpr uint32_t minNormalExp = 128 - Bias;
  uint32_t exp = abs >> 23;
  if (exp >= minNormalExp)
    return shiftRightRNE(abs - ((127u - Bias) << 23), 23 - ManBits);

  // Subnormal target: count quanta of 2^(1 - Bias - ManBits). The f32 value is
  // m * 2^(e - 150) with the implicit bit in `m` (e = 1 for f32 subnormals).
  uint32_t m = exp ? (abs & 0x007FFFFFu) | 0x00800000u : abs;
  uint32_t e = exp ? exp : 1u;
  uint32_t shift = 151u - Bias - ManBits - e;
  // m < 2^24, so beyond 25 bits it is below half a quantum and rounds to 0.
  if (shift > 25)
    return 0;
  return shiftRightRNE(m, shift);
}

/// Decodes a minifloat code with `ManBits` mantissa bits and bias `Bias` to
/// f32 bits, for codes that are finite (the callers handle Inf/NaN).
template <unsigned ManBits, unsigned Bias>
constexpr uint32_t decodeFiniteBits(uint8_t code) {
  uint32_t sign = uint32_t(code & 0x80u) << 24;
  uint32_t exp = (code & 0x7Fu) >> ManBits;
  uint32_t man = code & ((1u << ManBits) - 1u);
  if (exp == 0) {
    if (man == 0)
      return sign;
    // Normalise the subnormal: each left shift halves the binade.
    uint32_t e = 127u + 1u - Bias;
    while (!(man & (1u << ManBits))) {
      man <<= 1;
      --e;
    }
    return sign | e << 23 | (man & ((1u << ManBits) - 1u)) << (23 - ManBits);
  }
  return sign | (exp + 127u - Bias) << 23 | man << (23 - ManBits);
}

constexpr uint32_t decodeE4M3FNBits(uint8_t code) {
  if ((code & 0x7Fu) == 0x7Fu)
    return uint32_t(code & 0x80u) << 24 | kF32QuietNaN;
  return decodeFiniteBits<3, 7>(code);
}

constexpr uint32_t decodeE5M2Bits(uint8_t code) {
  uint32_t sign = uint32_t(code & 0x80u) << 24;
  if ((code & 0x7Cu) == 0x7Cu)
    return sign | ((code & 0x03u) ? kF32QuietNaN : kF32Inf);
  return decodeFiniteBits<2, 15>(code);
}

template <uint32_t (*Decode)(uint8_t)>
constexpr std::array<uint32_t, 256> buildTable() {
  std::array<uint32_t, 256> table{};
  for (unsigned i = 0; i < 256; ++i)
    table[i] = Decode(uint8_t(i));
  return table;
}

constexpr std::array<uint32_t, 256> kE4M3FNTable =
    buildTable<decodeE4M3FNBits>();
constexpr std::array<uint32_t, 256> kE5M2Table = buildTable<decodeE5M2Bits>();

/// Turns a block's amax into its scale, per the contract in Fp8.h.
float blockScale(float amax, bool pow2Scale) {
  float scale = std::max(amax, kAmaxFloor) / kE4M3FNMax;
  if (!pow2Scale)
    return scale;
  // scale = m * 2^e with m in [0.5, 1); only m == 0.5 is already a power of 2.
  int exp;
  float mant = std::frexp(scale, &exp);
  return std::ldexp(1.0f, mant == 0.5f ? exp - 1 : exp);
}

} // namespace

//===----------------------------------------------------------------------===//
// Scalar casts
//===----------------------------------------------------------------------===//

uint8_t floatToE4M3FN(float x) {
  uint32_t bits = floatBits(x);
  uint8_t sign = uint8_t((bits >> 24) & 0x80u);
  uint32_t abs = bits & kF32AbsMask;
  if (abs > kF32Inf)
    return sign | 0x7F;
  if (abs >= kE4M3FNMaxBits) // Also catches Inf.
    return sign | 0x7E;
  return sign | uint8_t(roundMagnitude<3, 7>(abs));
}

float e4m3fnToFloat(uint8_t b) { return bitsFloat(kE4M3FNTable[b]); }

uint8_t floatToE5M2(float x) {
  uint32_t bits = floatBits(x);
  uint8_t sign = uint8_t((bits >> 24) & 0x80u);
  uint32_t abs = bits & kF32AbsMask;
  if (abs > kF32Inf)
    return sign | 0x7E;
  // Plain RNE would send [61440, inf) to Inf; saturation pins it to the max.
  if (abs >= kE5M2MaxBits)
    return sign | 0x7B;
  return sign | uint8_t(roundMagnitude<2, 15>(abs));
}

float e5m2ToFloat(uint8_t b) { return bitsFloat(kE5M2Table[b]); }

float bf16ToFloat(uint16_t bits) { return bitsFloat(uint32_t(bits) << 16); }

float halfToFloat(uint16_t bits) {
  uint32_t sign = uint32_t(bits & 0x8000u) << 16;
  uint32_t exp = (bits >> 10) & 0x1Fu;
  uint32_t man = bits & 0x3FFu;
  if (exp == 0x1F) // Inf or NaN; the payload moves to the top mantissa bits.
    return bitsFloat(sign | kF32Inf | man << 13);
  if (exp != 0)
    return bitsFloat(sign | (exp + 112u) << 23 | man << 13);
  if (man == 0)
    return bitsFloat(sign);
  // Subnormal: man * 2^-24, normalised so the leading one becomes implicit.
  uint32_t e = 113u;
  while (!(man & 0x400u)) {
    man <<= 1;
    --e;
  }
  return bitsFloat(sign | e << 23 | (man & 0x3FFu) << 13);
}

//===----------------------------------------------------------------------===//
// Block quantization
//===----------------------------------------------------------------------===//

void quantizeBlocks(const float *src, int64_t rows, int64_t cols, int64_t br,
                    int64_t bc, bool pow2Scale, uint8_t *dst, float *scales) {
  if (rows <= 0 || cols <= 0 || br <= 0 || bc <= 0)
    return;
  int64_t blockCols = (cols + bc - 1) / bc;
  for (int64_t r0 = 0; r0 < rows; r0 += br) {
    int64_t r1 = std::min(rows, r0 + br);
    for (int64_t c0 = 0; c0 < cols; c0 += bc) {
      int64_t c1 = std::min(cols, c0 + bc);
      // For non-negative floats the bit patterns order like the values, so
      // the amax is an integer max over the finite magnitudes.
      uint32_t amaxBits = 0;
      for (int64_t r = r0; r < r1; ++r) {
        const float *row = src + r * cols;
        for (int64_t c = c0; c < c1; ++c) {
          uint32_t abs = floatBits(row[c]) & kF32AbsMask;
          amaxBits = std::max(amaxBits, abs < kF32Inf ? abs : 0u);
        }
      }
      float scale = blockScale(bitsFloat(amaxBits), pow2Scale);
      scales[(r0 / br) * blockCols + c0 / bc] = scale;
      for (int64_t r = r0; r < r1; ++r) {
        const float *row = src + r * cols;
        uint8_t *out = dst + r * cols;
        for (int64_t c = c0; c < c1; ++c)
          out[c] = floatToE4M3FN(row[c] / scale);
      }
    }
  }
}

void dequantizeBlocks(const uint8_t *q, const float *scales, int64_t rows,
                      int64_t cols, int64_t br, int64_t bc, float *dst) {
  if (rows <= 0 || cols <= 0 || br <= 0 || bc <= 0)
    return;
  int64_t blockCols = (cols + bc - 1) / bc;
  for (int64_t r = 0; r < rows; ++r) {
    const float *scaleRow = scales + (r / br) * blockCols;
    for (int64_t c0 = 0; c0 < cols; c0 += bc) {
      float scale = scaleRow[c0 / bc];
      int64_t c1 = std::min(cols, c0 + bc);
      for (int64_t c = c0; c < c1; ++c)
        dst[r * cols + c] = e4m3fnToFloat(q[r * cols + c]) * scale;
    }
  }
}

} // namespace moec::runtime::fp8
