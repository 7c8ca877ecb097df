//===- ChecksumTest.cpp - CRC-32 and SHA-256 vectors ------------*- C++ -*-===//
//
// The FIPS 180-4 / NIST example vectors for SHA-256 and the standard check
// values of CRC-32, plus incremental-vs-one-shot agreement at every split
// point. Random data is compared with Python's zlib and hashlib by
// check_format.py.
//
//===----------------------------------------------------------------------===//

#include "runtime/support/Checksum.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

using namespace moec::runtime;

namespace {

std::string sha(const std::string &s) {
  return toHex(Sha256::hash(s.data(), s.size()));
}

uint32_t crc(const std::string &s) {
  return crc32Update(0, s.data(), s.size());
}

TEST(Sha256Test, KnownVectors) {
  EXPECT_EQ(sha(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(
      sha("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmno"
          "ijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu"),
      "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
  EXPECT_EQ(sha(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256Test, PaddingBoundaries) {
  // Lengths around the 55/56/64-byte padding edges, from hashlib.
  EXPECT_EQ(sha(std::string(55, 'a')),
            "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318");
  EXPECT_EQ(sha(std::string(56, 'a')),
            "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a");
  EXPECT_EQ(sha(std::string(64, 'a')),
            "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb");
}

TEST(Sha256Test, IncrementalEqualsOneShot) {
  std::mt19937 rng(7);
  std::vector<uint8_t> data(300);
  for (uint8_t &b : data)
    b = uint8_t(rng());
  Sha256Digest whole = Sha256::hash(data.data(), data.size());
  for (size_t split = 0; split <= data.size(); ++split) {
    Sha256 h;
    h.update(data.data(), split);
    h.update(data.data() + split, data.size() - split);
    EXPECT_EQ(h.finish(), whole) << "split at " << split;
  }
  // Byte by byte, then reuse after reset.
  Sha256 h;
  for (uint8_t b : data)
    h.update(&b, 1);
  EXPECT_EQ(h.finish(), whole);
  h.reset();
  h.update("abc", 3);
  EXPECT_EQ(toHex(h.finish()),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

// The SHA-extension path (where the CPU has it) and the portable code agree
// on random messages of every length up to a few blocks and a large one, and
// both give the NIST vectors (run here with the portable code forced).
TEST(Sha256Test, HardwareAndPortableAgree) {
  std::mt19937 rng(11);
  std::vector<uint8_t> data(64 * 1024 + 17);
  for (uint8_t &b : data)
    b = uint8_t(rng());
  auto both = [&](size_t size) {
    Sha256::forcePortableForTesting(true);
    Sha256Digest portable = Sha256::hash(data.data(), size);
    Sha256::forcePortableForTesting(false);
    return std::make_pair(portable, Sha256::hash(data.data(), size));
  };
  for (size_t size = 0; size <= 300; ++size) {
    auto [portable, detected] = both(size);
    EXPECT_EQ(portable, detected) << size << " bytes";
  }
  auto [portable, detected] = both(data.size());
  EXPECT_EQ(portable, detected) << data.size() << " bytes";

  Sha256::forcePortableForTesting(true);
  EXPECT_EQ(sha("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  Sha256::forcePortableForTesting(false);
  if (!Sha256::usesHardware())
    GTEST_LOG_(INFO) << "no SHA extensions here: only the portable path ran";
}

// The carry-less-multiplication path (where the CPU has it) and the tables
// agree at every length up to 1 KiB from every alignment, on a large
// buffer, and when continued from a running CRC.
TEST(Crc32Test, HardwareAndPortableAgree) {
  std::mt19937 rng(13);
  std::vector<uint8_t> data(256 * 1024 + 31);
  for (uint8_t &b : data)
    b = uint8_t(rng());
  auto both = [&](uint32_t seed, size_t offset, size_t size) {
    crc32ForcePortableForTesting(true);
    uint32_t portable = crc32Update(seed, data.data() + offset, size);
    crc32ForcePortableForTesting(false);
    return std::make_pair(portable,
                          crc32Update(seed, data.data() + offset, size));
  };
  for (size_t offset = 0; offset < 16; ++offset)
    for (size_t size = 0; size <= 1024; ++size) {
      auto [portable, detected] = both(0, offset, size);
      ASSERT_EQ(portable, detected) << size << " bytes at " << offset;
    }
  auto [portable, detected] = both(0x12345678, 3, data.size() - 3);
  EXPECT_EQ(portable, detected);
  crc32ForcePortableForTesting(true);
  EXPECT_EQ(crc("123456789"), 0xCBF43926u);
  crc32ForcePortableForTesting(false);
  EXPECT_EQ(crc("123456789"), 0xCBF43926u);
  if (!crc32UsesHardware())
    GTEST_LOG_(INFO) << "no PCLMULQDQ here: only the table path ran";
}

TEST(Crc32Test, KnownVectors) {
  EXPECT_EQ(crc(""), 0u);
  EXPECT_EQ(crc("123456789"), 0xCBF43926u);
  EXPECT_EQ(crc("a"), 0xE8B7BE43u);
  EXPECT_EQ(crc("The quick brown fox jumps over the lazy dog"), 0x414FA339u);
  EXPECT_EQ(crc(std::string(32, '\0')), 0x190A55ADu);
  EXPECT_EQ(crc(std::string(32, '\xff')), 0xFF6CAB0Bu);
}

TEST(Crc32Test, IncrementalEqualsOneShot) {
  std::mt19937 rng(11);
  std::vector<uint8_t> data(200);
  for (uint8_t &b : data)
    b = uint8_t(rng());
  uint32_t whole = crc32Update(0, data.data(), data.size());
  for (size_t split = 0; split <= data.size(); ++split) {
    uint32_t c = crc32Update(0, data.data(), split);
    c = crc32Update(c, data.data() + split, data.size() - split);
    EXPECT_EQ(c, whole) << "split at " << split;
  }
  // Unaligned starts go through the same slicing-by-8 path.
  for (size_t start = 1; start < 9; ++start) {
    uint32_t bytewise = 0;
    for (size_t i = start; i < data.size(); ++i)
      bytewise = crc32Update(bytewise, &data[i], 1);
    EXPECT_EQ(crc32Update(0, data.data() + start, data.size() - start),
              bytewise);
  }
}

} // namespace
