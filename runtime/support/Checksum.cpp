//===- Checksum.cpp - CRC-32 and SHA-256 ------------------------*- C++ -*-===//
//
// CRC-32 with the reflected polynomial 0xEDB88320, computed slicing-by-8
// from tables built at compile time (on x86 CPUs with PCLMULQDQ, the bulk
// by carry-less multiplication folding), and SHA-256 following FIPS 180-4
// section 6.2: straightforward C++ that reads its input bytewise (any
// alignment, any byte order), or on x86 CPUs with the SHA extensions the
// same rounds through SHA256RNDS2 / SHA256MSG1 / SHA256MSG2.
//
//===----------------------------------------------------------------------===//

#include "runtime/support/Checksum.h"

#include <algorithm>
#include <atomic>
#include <cstring>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>
#define MOEC_CHECKSUM_X86 1
#endif

namespace moec::runtime {

namespace {

// An instruction-set path detected once at first use, which tests may turn
// off to run the portable code on the same machine.
class CpuPath {
public:
  explicit CpuPath(bool available) : available_(available) {}
  bool use() const {
    return available_ && !forcePortable_.load(std::memory_order_relaxed);
  }
  void forcePortable(bool portable) {
    forcePortable_.store(portable, std::memory_order_relaxed);
  }

private:
  const bool available_;
  std::atomic<bool> forcePortable_{false};
};

// PCLMULQDQ (CPUID.1:ECX[1]) and SSE4.1 (PEXTRD), for the CRC-32 folding.
bool cpuHasPclmul() {
#if defined(MOEC_CHECKSUM_X86)
  unsigned a = 0, b = 0, c = 0, d = 0;
  return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_PCLMUL) && (c & bit_SSE4_1);
#else
  return false;
#endif
}

// SSSE3 (PSHUFB), SSE4.1 (PBLENDW) and SHA (CPUID.7.0:EBX[29]), for SHA-NI.
bool cpuHasShaExtensions() {
#if defined(MOEC_CHECKSUM_X86)
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_SSSE3) || !(c & bit_SSE4_1))
    return false;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
    return false;
  return (b & (1u << 29)) != 0;
#else
  return false;
#endif
}

CpuPath &crcPath() {
  static CpuPath path(cpuHasPclmul());
  return path;
}

CpuPath &shaPath() {
  static CpuPath path(cpuHasShaExtensions());
  return path;
}

} // namespace

//===----------------------------------------------------------------------===//
// CRC-32
//===----------------------------------------------------------------------===//

namespace {

using CrcTables = std::array<std::array<uint32_t, 256>, 8>;

constexpr CrcTables makeCrcTables() {
  CrcTables t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k)
      c = (c & 1) ? (c >> 1) ^ 0xEDB88320u : c >> 1;
    t[0][i] = c;
  }
  // Table k advances a byte that still has k more zero bytes to pass through.
  for (uint32_t i = 0; i < 256; ++i)
    for (int k = 1; k < 8; ++k)
      t[k][i] = (t[k - 1][i] >> 8) ^ t[0][t[k - 1][i] & 0xFF];
  return t;
}

constexpr CrcTables kCrcTables = makeCrcTables();

} // namespace

#if defined(MOEC_CHECKSUM_X86)
namespace {

// x * k.lo + x.hi * k.hi in GF(2)[x], plus `data`: one 128-bit lane of the
// running remainder moved `distance` bits ahead (the distance the constants
// in `k` encode) and the next 16 bytes added.
__attribute__((target("pclmul,sse4.1"))) inline __m128i
crcFold(__m128i x, __m128i k, __m128i data) {
  return _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x00),
                                     _mm_clmulepi64_si128(x, k, 0x11)),
                       data);
}

// The reflected CRC-32 state `c` over `size` bytes at `p` (size >= 64, a
// multiple of 16) by carry-less multiplication (Intel, "Fast CRC Computation
// for Generic Polynomials Using PCLMULQDQ", reflected form): four 128-bit
// lanes folded 512 bits at a time, then into one lane, then reduced 128 ->
// 64 -> 32 bits and by Barrett reduction. The constants are x^n mod P for
// the fold distances, bit-reflected and shifted as the reflected form
// needs, with P' = P and mu = x^64 / P.
__attribute__((target("pclmul,sse4.1"))) uint32_t
crc32Pclmul(uint32_t c, const uint8_t *p, size_t size) {
  const __m128i fold512 = _mm_set_epi64x(0x1c6e41596, 0x154442bd4);
  const __m128i fold128 = _mm_set_epi64x(0x0ccaa009e, 0x1751997d0);
  const __m128i fold64 = _mm_set_epi64x(0, 0x163cd6124);
  const __m128i barrett = _mm_set_epi64x(0x1f7011641, 0x1db710641);
  const __m128i low32 = _mm_set_epi32(0, 0, 0, -1);
  auto load = [](const uint8_t *q) {
    return _mm_loadu_si128(reinterpret_cast<const __m128i *>(q));
  };
  __m128i x1 = _mm_xor_si128(load(p), _mm_cvtsi32_si128(int(c)));
  __m128i x2 = load(p + 16), x3 = load(p + 32), x4 = load(p + 48);
  for (p += 64, size -= 64; size >= 64; p += 64, size -= 64) {
    x1 = crcFold(x1, fold512, load(p));
    x2 = crcFold(x2, fold512, load(p + 16));
    x3 = crcFold(x3, fold512, load(p + 32));
    x4 = crcFold(x4, fold512, load(p + 48));
  }
  x1 = crcFold(x1, fold128, x2);
  x1 = crcFold(x1, fold128, x3);
  x1 = crcFold(x1, fold128, x4);
  for (; size >= 16; p += 16, size -= 16)
    x1 = crcFold(x1, fold128, load(p));
  // 128 -> 64 bits.
  x1 = _mm_xor_si128(_mm_clmulepi64_si128(x1, fold128, 0x10),
                     _mm_srli_si128(x1, 8));
  // 64 -> 32 bits.
  x1 = _mm_xor_si128(
      _mm_clmulepi64_si128(_mm_and_si128(x1, low32), fold64, 0x00),
      _mm_srli_si128(x1, 4));
  // Barrett reduction to the 32-bit remainder.
  __m128i t = _mm_clmulepi64_si128(_mm_and_si128(x1, low32), barrett, 0x10);
  t = _mm_clmulepi64_si128(_mm_and_si128(t, low32), barrett, 0x00);
  return uint32_t(_mm_extract_epi32(_mm_xor_si128(t, x1), 1));
}

} // namespace
#endif

bool crc32UsesHardware() { return crcPath().use(); }

void crc32ForcePortableForTesting(bool portable) {
  crcPath().forcePortable(portable);
}

uint32_t crc32Update(uint32_t crc, const void *data, size_t size) {
  const auto *p = static_cast<const uint8_t *>(data);
  uint32_t c = ~crc;
#if defined(MOEC_CHECKSUM_X86)
  if (size >= 64 && crc32UsesHardware()) {
    size_t bulk = size & ~size_t(15);
    c = crc32Pclmul(c, p, bulk);
    p += bulk;
    size -= bulk;
  }
#endif
  while (size >= 8) {
    uint32_t lo = c ^ (uint32_t(p[0]) | uint32_t(p[1]) << 8 |
                       uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24);
    c = kCrcTables[7][lo & 0xFF] ^ kCrcTables[6][(lo >> 8) & 0xFF] ^
        kCrcTables[5][(lo >> 16) & 0xFF] ^ kCrcTables[4][lo >> 24] ^
        kCrcTables[3][p[4]] ^ kCrcTables[2][p[5]] ^ kCrcTables[1][p[6]] ^
        kCrcTables[0][p[7]];
    p += 8;
    size -= 8;
  }
  while (size--)
    c = (c >> 8) ^ kCrcTables[0][(c ^ *p++) & 0xFF];
  return ~c;
}

//===----------------------------------------------------------------------===//
// SHA-256
//===----------------------------------------------------------------------===//

namespace {

constexpr uint32_t kRoundConstants[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
    0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
    0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
    0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
    0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

constexpr uint32_t rotr(uint32_t x, int n) {
  return (x >> n) | (x << (32 - n));
}

} // namespace

Sha256::Sha256() { reset(); }

void Sha256::reset() {
  state_ = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
            0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  buffered_ = 0;
  totalBytes_ = 0;
}

namespace {

// One block, FIPS 180-4 section 6.2.2, bytewise.
void compressPortable(std::array<uint32_t, 8> &state, const uint8_t *block) {
  uint32_t w[64];
  for (int i = 0; i < 16; ++i)
    w[i] = uint32_t(block[4 * i]) << 24 | uint32_t(block[4 * i + 1]) << 16 |
           uint32_t(block[4 * i + 2]) << 8 | uint32_t(block[4 * i + 3]);
  for (int i = 16; i < 64; ++i) {
    uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
    uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
  uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
  for (int i = 0; i < 64; ++i) {
    uint32_t s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
    uint32_t ch = (e & f) ^ (~e & g);
    uint32_t t1 = h + s1 + ch + kRoundConstants[i] + w[i];
    uint32_t s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
    uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
    uint32_t t2 = s0 + maj;
    h = g;
    g = f;
    f = e;
    e = d + t1;
    d = c;
    c = b;
    b = a;
    a = t1 + t2;
  }
  state[0] += a;
  state[1] += b;
  state[2] += c;
  state[3] += d;
  state[4] += e;
  state[5] += f;
  state[6] += g;
  state[7] += h;
}

#if defined(MOEC_CHECKSUM_X86)
// FIPS 180-4's 64 rounds, four at a time. The SHA instructions keep the
// working variables as {A, B, E, F} and {C, D, G, H} (lane 3 first) and
// take the message words plus round constants, W[t] + K[t], two rounds per
// SHA256RNDS2 in the low half of their operand. Message words 16..63 come
// from SHA256MSG1 (W[t-16] + sigma0(W[t-15])), the W[t-7] terms (PALIGNR)
// and SHA256MSG2 (+ sigma1(W[t-2])).
__attribute__((target("sha,sse4.1,ssse3"))) void
compressShaNi(std::array<uint32_t, 8> &state, const uint8_t *data,
              size_t blocks) {
  // Big-endian words: reverse the bytes of each 32-bit lane.
  const __m128i byteSwap =
      _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
  __m128i dcba = _mm_loadu_si128(reinterpret_cast<const __m128i *>(&state[0]));
  __m128i hgfe = _mm_loadu_si128(reinterpret_cast<const __m128i *>(&state[4]));
  __m128i cdab = _mm_shuffle_epi32(dcba, 0xB1);
  __m128i efgh = _mm_shuffle_epi32(hgfe, 0x1B);
  __m128i abef = _mm_alignr_epi8(cdab, efgh, 8);
  __m128i cdgh = _mm_blend_epi16(efgh, cdab, 0xF0);
  for (; blocks > 0; --blocks, data += 64) {
    const __m128i abefStart = abef, cdghStart = cdgh;
    __m128i w[4]; // W[4i..4i+3] for the last four groups, ring-indexed
    for (int i = 0; i < 16; ++i) {
      __m128i &wi = w[i % 4];
      if (i < 4) {
        wi = _mm_shuffle_epi8(
            _mm_loadu_si128(reinterpret_cast<const __m128i *>(data + 16 * i)),
            byteSwap);
      } else {
        // w[i % 4] still holds group i-4; groups i-3, i-2, i-1 follow.
        __m128i t = _mm_sha256msg1_epu32(wi, w[(i - 3) % 4]);
        t = _mm_add_epi32(t,
                          _mm_alignr_epi8(w[(i - 1) % 4], w[(i - 2) % 4], 4));
        wi = _mm_sha256msg2_epu32(t, w[(i - 1) % 4]);
      }
      __m128i wk =
          _mm_add_epi32(wi, _mm_loadu_si128(reinterpret_cast<const __m128i *>(
                                &kRoundConstants[4 * i])));
      cdgh = _mm_sha256rnds2_epu32(cdgh, abef, wk);
      abef = _mm_sha256rnds2_epu32(abef, cdgh, _mm_shuffle_epi32(wk, 0x0E));
    }
    abef = _mm_add_epi32(abef, abefStart);
    cdgh = _mm_add_epi32(cdgh, cdghStart);
  }
  __m128i feba = _mm_shuffle_epi32(abef, 0x1B);
  __m128i dchg = _mm_shuffle_epi32(cdgh, 0xB1);
  dcba = _mm_blend_epi16(feba, dchg, 0xF0);
  hgfe = _mm_alignr_epi8(dchg, feba, 8);
  _mm_storeu_si128(reinterpret_cast<__m128i *>(&state[0]), dcba);
  _mm_storeu_si128(reinterpret_cast<__m128i *>(&state[4]), hgfe);
}
#endif

} // namespace

bool Sha256::usesHardware() { return shaPath().use(); }

void Sha256::forcePortableForTesting(bool portable) {
  shaPath().forcePortable(portable);
}

void Sha256::compress(const uint8_t *data, size_t blocks) {
#if defined(MOEC_CHECKSUM_X86)
  if (usesHardware()) {
    compressShaNi(state_, data, blocks);
    return;
  }
#endif
  for (; blocks > 0; --blocks, data += 64)
    compressPortable(state_, data);
}

void Sha256::update(const void *data, size_t size) {
  // An empty update may come with a null pointer, which memcpy must not see.
  if (size == 0)
    return;
  const auto *p = static_cast<const uint8_t *>(data);
  totalBytes_ += size;
  if (buffered_ > 0) {
    size_t take = std::min(size, buffer_.size() - buffered_);
    std::memcpy(buffer_.data() + buffered_, p, take);
    buffered_ += take;
    p += take;
    size -= take;
    if (buffered_ < buffer_.size())
      return;
    compress(buffer_.data(), 1);
    buffered_ = 0;
  }
  // Whole blocks straight from the input, no copy.
  size_t blocks = size / 64;
  if (blocks > 0) {
    compress(p, blocks);
    p += 64 * blocks;
    size -= 64 * blocks;
  }
  if (size > 0) {
    std::memcpy(buffer_.data(), p, size);
    buffered_ = size;
  }
}

Sha256Digest Sha256::finish() {
  uint64_t bitLength = totalBytes_ * 8;
  uint8_t pad[72] = {0x80};
  // Pad to 56 mod 64, then the 64-bit big-endian message length.
  size_t padBytes = (buffered_ < 56 ? 56 : 120) - buffered_;
  for (int i = 0; i < 8; ++i)
    pad[padBytes + i] = uint8_t(bitLength >> (56 - 8 * i));
  update(pad, padBytes + 8);
  Sha256Digest digest;
  for (int i = 0; i < 8; ++i)
    for (int j = 0; j < 4; ++j)
      digest[4 * i + j] = uint8_t(state_[i] >> (24 - 8 * j));
  return digest;
}

Sha256Digest Sha256::hash(const void *data, size_t size) {
  Sha256 h;
  h.update(data, size);
  return h.finish();
}

std::string toHex(const Sha256Digest &digest) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(64);
  for (uint8_t b : digest) {
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 15]);
  }
  return out;
}

} // namespace moec::runtime
