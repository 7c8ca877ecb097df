//===- Fp8Test.cpp - Hand-picked FP8 cases and invariants ------*- C++ -*-===//
//
// Unit tests for runtime/fp8: the boundary values of both FP8 formats
// (saturation, rounding ties, subnormals, NaN, signed zero), decode/encode
// round trips over all 256 codes, the bf16/f16 widenings, and small block
// quantization examples. The bulk bit-exact comparison against ml_dtypes is
// check_fp8.py.
//
//===----------------------------------------------------------------------===//

#include "runtime/fp8/Fp8.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

using namespace moec::runtime::fp8;

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

uint32_t bitsOf(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof(bits));
  return bits;
}

//===----------------------------------------------------------------------===//
// E4M3FN
//===----------------------------------------------------------------------===//

TEST(Fp8E4M3FN, SaturatesAtMax) {
  EXPECT_EQ(floatToE4M3FN(448.0f), 0x7E);
  EXPECT_EQ(floatToE4M3FN(464.0f), 0x7E); // Tie between 448 and "480".
  EXPECT_EQ(floatToE4M3FN(465.0f), 0x7E);
  EXPECT_EQ(floatToE4M3FN(1e30f), 0x7E);
  EXPECT_EQ(floatToE4M3FN(-464.0f), 0xFE);
  EXPECT_EQ(floatToE4M3FN(kInf), 0x7E);
  EXPECT_EQ(floatToE4M3FN(-kInf), 0xFE);
  EXPECT_EQ(floatToE4M3FN(std::numeric_limits<float>::max()), 0x7E);
}

TEST(Fp8E4M3FN, NaNKeepsSign) {
  EXPECT_EQ(floatToE4M3FN(kNaN), 0x7F);
  EXPECT_EQ(floatToE4M3FN(-kNaN), 0xFF);
  EXPECT_TRUE(std::isnan(e4m3fnToFloat(0x7F)));
  EXPECT_TRUE(std::isnan(e4m3fnToFloat(0xFF)));
  EXPECT_TRUE(std::signbit(e4m3fnToFloat(0xFF)));
  EXPECT_EQ(bitsOf(e4m3fnToFloat(0x7F)), 0x7FC00000u);
}

TEST(Fp8E4M3FN, SignedZero) {
  EXPECT_EQ(floatToE4M3FN(0.0f), 0x00);
  EXPECT_EQ(floatToE4M3FN(-0.0f), 0x80);
  EXPECT_EQ(bitsOf(e4m3fnToFloat(0x80)), 0x80000000u);
}

TEST(Fp8E4M3FN, RoundsTiesToEven) {
  EXPECT_EQ(floatToE4M3FN(1.0f), 0x38);
  EXPECT_EQ(floatToE4M3FN(1.0625f), 0x38); // 1 | 1.125: even is 1.
  EXPECT_EQ(floatToE4M3FN(1.1875f), 0x3A); // 1.125 | 1.25: even is 1.25.
  EXPECT_EQ(floatToE4M3FN(std::nextafter(1.0625f, 2.0f)), 0x39);
  EXPECT_EQ(floatToE4M3FN(15.5f), 0x58); // 15 | 16: carries into exponent.
  EXPECT_EQ(floatToE4M3FN(-15.5f), 0xD8);
}

TEST(Fp8E4M3FN, Subnormals) {
  const float minSub = std::ldexp(1.0f, -9);
  EXPECT_EQ(floatToE4M3FN(minSub), 0x01);
  EXPECT_EQ(floatToE4M3FN(0.5f * minSub), 0x00); // Tie with 0: even is 0.
  EXPECT_EQ(floatToE4M3FN(std::nextafter(0.5f * minSub, 1.0f)), 0x01);
  EXPECT_EQ(floatToE4M3FN(-0.5f * minSub), 0x80);
  EXPECT_EQ(floatToE4M3FN(1.5f * minSub), 0x02);
  EXPECT_EQ(floatToE4M3FN(2.5f * minSub), 0x02);
  EXPECT_EQ(floatToE4M3FN(7.5f * minSub), 0x08); // Into the first normal.
  EXPECT_EQ(floatToE4M3FN(std::numeric_limits<float>::denorm_min()), 0x00);
  EXPECT_EQ(floatToE4M3FN(-std::numeric_limits<float>::denorm_min()), 0x80);
  EXPECT_EQ(e4m3fnToFloat(0x01), minSub);
  EXPECT_EQ(e4m3fnToFloat(0x07), 7.0f * minSub);
  EXPECT_EQ(e4m3fnToFloat(0x08), std::ldexp(1.0f, -6));
}

TEST(Fp8E4M3FN, RoundTripsAllCodes) {
  for (int code = 0; code < 256; ++code) {
    float value = e4m3fnToFloat(uint8_t(code));
    if ((code & 0x7F) == 0x7F) {
      EXPECT_TRUE(std::isnan(value)) << code;
      continue;
    }
    EXPECT_EQ(floatToE4M3FN(value), code) << "code " << code;
  }
}

TEST(Fp8E4M3FN, DecodeIsMonotonic) {
  for (int code = 1; code < 0x7F; ++code) {
    EXPECT_LT(e4m3fnToFloat(uint8_t(code - 1)), e4m3fnToFloat(uint8_t(code)));
    EXPECT_EQ(e4m3fnToFloat(uint8_t(code | 0x80)),
              -e4m3fnToFloat(uint8_t(code)));
  }
  EXPECT_EQ(e4m3fnToFloat(0x7E), kE4M3FNMax);
}

//===----------------------------------------------------------------------===//
// E5M2
//===----------------------------------------------------------------------===//

TEST(Fp8E5M2, SaturatesAtMax) {
  EXPECT_EQ(floatToE5M2(57344.0f), 0x7B);
  EXPECT_EQ(floatToE5M2(61440.0f), 0x7B); // Tie with 65536 (Inf).
  EXPECT_EQ(floatToE5M2(1e10f), 0x7B);
  EXPECT_EQ(floatToE5M2(kInf), 0x7B);
  EXPECT_EQ(floatToE5M2(-kInf), 0xFB);
}

TEST(Fp8E5M2, SpecialsAndSubnormals) {
  EXPECT_EQ(floatToE5M2(kNaN), 0x7E);
  EXPECT_EQ(floatToE5M2(-kNaN), 0xFE);
  EXPECT_EQ(floatToE5M2(-0.0f), 0x80);
  EXPECT_EQ(floatToE5M2(1.0f), 0x3C);
  EXPECT_EQ(floatToE5M2(std::ldexp(1.0f, -16)), 0x01);
  EXPECT_EQ(floatToE5M2(std::ldexp(1.0f, -17)), 0x00); // Tie with 0.
  EXPECT_EQ(floatToE5M2(std::ldexp(3.0f, -17)), 0x02); // Tie: even is 2.
  EXPECT_EQ(e5m2ToFloat(0x7C), kInf);
  EXPECT_EQ(e5m2ToFloat(0xFC), -kInf);
  EXPECT_EQ(e5m2ToFloat(0x7B), kE5M2Max);
  EXPECT_EQ(e5m2ToFloat(0x01), std::ldexp(1.0f, -16));
  EXPECT_TRUE(std::isnan(e5m2ToFloat(0x7D)));
  EXPECT_TRUE(std::signbit(e5m2ToFloat(0xFF)));
}

TEST(Fp8E5M2, RoundTripsAllCodes) {
  for (int code = 0; code < 256; ++code) {
    float value = e5m2ToFloat(uint8_t(code));
    if (std::isnan(value)) {
      EXPECT_GT(code & 0x7F, 0x7C) << code;
      continue;
    }
    // ±Inf codes saturate to ±max; every finite code is a fixed point.
    uint8_t want = std::isinf(value) ? uint8_t((code & 0x80) | 0x7B) : code;
    EXPECT_EQ(floatToE5M2(value), want) << "code " << code;
  }
}

//===----------------------------------------------------------------------===//
// bf16 / f16
//===----------------------------------------------------------------------===//

TEST(Fp8Widen, Bf16) {
  EXPECT_EQ(bf16ToFloat(0x3F80), 1.0f);
  EXPECT_EQ(bf16ToFloat(0xC000), -2.0f);
  EXPECT_EQ(bf16ToFloat(0x7F80), kInf);
  EXPECT_EQ(bitsOf(bf16ToFloat(0x7F81)), 0x7F810000u);
  EXPECT_EQ(bitsOf(bf16ToFloat(0x0001)), 0x00010000u);
}

TEST(Fp8Widen, Half) {
  EXPECT_EQ(halfToFloat(0x3C00), 1.0f);
  EXPECT_EQ(halfToFloat(0x7BFF), 65504.0f);
  EXPECT_EQ(halfToFloat(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(halfToFloat(0x03FF), std::ldexp(1023.0f, -24));
  EXPECT_EQ(halfToFloat(0x0400), std::ldexp(1.0f, -14));
  EXPECT_EQ(halfToFloat(0xFC00), -kInf);
  EXPECT_EQ(bitsOf(halfToFloat(0x8000)), 0x80000000u);
  EXPECT_EQ(bitsOf(halfToFloat(0x7C01)), 0x7F802000u); // sNaN not quieted.
}

TEST(Fp8Widen, HalfMatchesExhaustiveRoundTrip) {
  // Every non-NaN half is exactly representable in f32: check the value by
  // re-encoding it with plain arithmetic (mantissa * 2^exp).
  for (uint32_t bits = 0; bits < 0x10000; ++bits) {
    uint32_t exp = (bits >> 10) & 0x1F, man = bits & 0x3FF;
    float got = halfToFloat(uint16_t(bits));
    if (exp == 0x1F) {
      EXPECT_TRUE(man ? std::isnan(got) : std::isinf(got)) << bits;
      continue;
    }
    float want = exp ? std::ldexp(float(man | 0x400), int(exp) - 25)
                     : std::ldexp(float(man), -24);
    EXPECT_EQ(got, (bits & 0x8000) ? -want : want) << bits;
  }
}

//===----------------------------------------------------------------------===//
// Block quantization
//===----------------------------------------------------------------------===//

TEST(Fp8Blocks, PartialBlocksAndFloor) {
  // 2x3 with 1x2 blocks: scales are [2, 2], the last column is a 1x1 block.
  const std::vector<float> src = {448.0f, -224.0f, 1.0f, //
                                  0.0f,   0.0f,    kNaN};
  std::vector<uint8_t> q(6);
  std::vector<float> scales(4);
  quantizeBlocks(src.data(), 2, 3, 1, 2, false, q.data(), scales.data());
  EXPECT_EQ(scales[0], 1.0f);
  EXPECT_EQ(scales[1], 1.0f / 448.0f);
  EXPECT_EQ(scales[2], kAmaxFloor / 448.0f); // All zeros: clamped amax.
  EXPECT_EQ(scales[3], kAmaxFloor / 448.0f); // Only NaN: ignored, clamped.
  EXPECT_EQ(q[0], 0x7E);
  EXPECT_EQ(q[1], floatToE4M3FN(-224.0f));
  EXPECT_EQ(q[2], 0x7E);
  EXPECT_EQ(q[3], 0x00);
  EXPECT_EQ(q[5], 0x7F);
}

TEST(Fp8Blocks, InfIsIgnoredForAmaxAndSaturates) {
  const std::vector<float> src = {kInf, 2.0f, -kInf, -1.0f};
  std::vector<uint8_t> q(4);
  float scale = 0;
  quantizeBlocks(src.data(), 2, 2, 2, 2, false, q.data(), &scale);
  EXPECT_EQ(scale, 2.0f / 448.0f);
  EXPECT_EQ(q[0], 0x7E);
  EXPECT_EQ(q[1], 0x7E);
  EXPECT_EQ(q[2], 0xFE);
  EXPECT_EQ(q[3], floatToE4M3FN(-1.0f / (2.0f / 448.0f)));
}

TEST(Fp8Blocks, Pow2Scales) {
  // amax / 448 = 3 -> 4; amax / 448 = 0.25 stays 0.25. 1344 / 4 = 336 is the
  // tie between 320 and 352 and rounds to the even mantissa (320).
  const std::vector<float> src = {1344.0f, 1.0f, 112.0f, -56.0f};
  std::vector<uint8_t> q(4);
  std::vector<float> scales(2);
  quantizeBlocks(src.data(), 2, 2, 1, 2, true, q.data(), scales.data());
  EXPECT_EQ(scales[0], 4.0f);
  EXPECT_EQ(scales[1], 0.25f);
  EXPECT_EQ(e4m3fnToFloat(q[0]), 320.0f);
  EXPECT_EQ(e4m3fnToFloat(q[1]), 0.25f);
  EXPECT_EQ(e4m3fnToFloat(q[2]), 448.0f);
  EXPECT_EQ(e4m3fnToFloat(q[3]), -224.0f);
}

TEST(Fp8Blocks, DequantizeIsWithinHalfAnUlp) {
  const int64_t rows = 130, cols = 300;
  std::mt19937 gen(7);
  std::normal_distribution<float> dist(0.0f, 3.0f);
  std::vector<float> src(rows * cols), deq(rows * cols);
  for (float &v : src)
    v = dist(gen);
  std::vector<uint8_t> q(src.size());
  std::vector<float> scales(2 * 3);
  quantizeBlocks(src.data(), rows, cols, 128, 128, false, q.data(),
                 scales.data());
  dequantizeBlocks(q.data(), scales.data(), rows, cols, 128, 128, deq.data());
  for (int64_t i = 0; i < rows * cols; ++i) {
    float scale = scales[(i / cols / 128) * 3 + (i % cols) / 128];
    // Relative half-ulp of a 3-bit mantissa, or half the subnormal quantum.
    float tol =
        std::max(std::fabs(src[i]) / 16.0f, scale * std::ldexp(1.0f, -10));
    ASSERT_LE(std::fabs(deq[i] - src[i]), tol * 1.0001f) << "index " << i;
  }
}

TEST(Fp8Blocks, EmptyAndInvalidShapesWriteNothing) {
  const float src[1] = {1.0f};
  uint8_t q[1] = {0xAA};
  float scale[1] = {-1.0f};
  quantizeBlocks(src, 0, 5, 128, 128, false, q, scale);
  quantizeBlocks(src, 5, 0, 128, 128, false, q, scale);
  quantizeBlocks(src, 1, 1, 0, 128, false, q, scale);
  quantizeBlocks(src, 1, 1, 128, -1, false, q, scale);
  quantizeBlocks(nullptr, 0, 0, 128, 128, true, nullptr, nullptr);
  float out[1] = {-1.0f};
  dequantizeBlocks(q, scale, 0, 1, 1, 1, out);
  dequantizeBlocks(q, scale, 1, 1, 0, 1, out);
  EXPECT_EQ(q[0], 0xAA);
  EXPECT_EQ(scale[0], -1.0f);
  EXPECT_EQ(out[0], -1.0f);
}

} // namespace
