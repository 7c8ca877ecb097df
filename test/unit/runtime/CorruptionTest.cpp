//===- CorruptionTest.cpp - Malformed artifacts are refused -----*- C++ -*-===//
//
// Issue 6's acceptance sweep: every single flipped byte over the header,
// section table, trailer (but its unsigned signature fields) and manifest is
// rejected with a clear message that names the file, never a crash; so is
// every truncation and extension. Resealed variants (meta digest recomputed
// after the flip) push the damage past the digest into the table checks,
// the FlatBuffers verifier, the section records and `verifyManifest`, which
// must hold on their own; also over a CUDA manifest with tensor maps.
//
//===----------------------------------------------------------------------===//

#include "TestModel.h"

#include "runtime/artifact/Artifact.h"

#include <gtest/gtest.h>

#include <random>

using namespace moec::runtime;
using namespace moec::runtime::test;

namespace {

class CorruptionTest : public ::testing::Test {
protected:
  void SetUp() override {
    std::vector<uint8_t> so = {0x7f, 'E', 'L', 'F', 2, 1, 1, 0};
    ASSERT_TRUE(TestModel::random(8).write(dir.file("m.moea"), so).isOk());
    bytes = readFile(dir.file("m.moea"));
    auto a = Artifact::fromBytes(kName, bytes.data(), bytes.size());
    ASSERT_TRUE(a.isOk()) << a.status().toString();
    original = std::move(a).value();
    trailer = decodeTrailer(bytes.data() + bytes.size() - kTrailerSize);
  }

  StatusOr<std::unique_ptr<Artifact>> open(const std::vector<uint8_t> &image) {
    return Artifact::fromBytes(kName, image.data(), image.size());
  }

  // A rejection must be a clear message about this file, not an internal
  // error.
  void expectClearRejection(const Status &s, const std::string &context) {
    EXPECT_FALSE(s.isOk()) << context;
    EXPECT_TRUE(s.code() == StatusCode::kCorrupt ||
                s.code() == StatusCode::kUnsupportedVersion)
        << context << ": " << s.toString();
    EXPECT_EQ(s.message().rfind(std::string(kName) + ": ", 0), 0u)
        << context << ": " << s.message();
    EXPECT_GT(s.message().size(), std::string(kName).size() + 12) << context;
  }

  // Byte ranges [begin, end) of the structures the sweep covers: header,
  // table and trailer up to the signature fields (which nothing checks
  // yet: an unsigned file's are ignored).
  std::vector<std::pair<uint64_t, uint64_t>> structuralRanges() const {
    uint64_t signatureAt =
        bytes.size() - kTrailerSize + kTrailerSignatureOffset;
    return {{0, kHeaderSize}, {trailer.tableOffset, signatureAt}};
  }
  std::pair<uint64_t, uint64_t> manifestRange() const {
    const SectionInfo *m = original->findSection("manifest");
    return {m->offset, m->offset + m->size};
  }

  static constexpr const char *kName = "sweep.moea";
  TempDir dir;
  std::vector<uint8_t> bytes;
  std::unique_ptr<Artifact> original;
  Trailer trailer;
};

TEST_F(CorruptionTest, EveryFlippedByteIsRejected) {
  auto ranges = structuralRanges();
  ranges.push_back(manifestRange());
  int checked = 0;
  for (auto [begin, end] : ranges)
    for (uint64_t at = begin; at < end; ++at)
      for (uint8_t mask : {0x01, 0x80, 0xFF}) {
        std::vector<uint8_t> image = bytes;
        image[at] ^= mask;
        expectClearRejection(open(image).status(),
                             "byte " + std::to_string(at) + " ^ " +
                                 std::to_string(mask));
        ++checked;
      }
  EXPECT_GT(checked, 1500);
}

TEST_F(CorruptionTest, FlippedVersionNamesBothVersions) {
  std::vector<uint8_t> image = bytes;
  image[10] ^= 0x02;
  Status s = open(image).status();
  EXPECT_EQ(s.code(), StatusCode::kUnsupportedVersion);
  EXPECT_EQ(
      s.message(),
      "sweep.moea: artifact version 2.3 is newer than this runtime (2.1)");
}

TEST_F(CorruptionTest, FlippedStructureWithResealedDigestIsStillCaught) {
  // With a valid digest, only the table/trailer checks stand between a flip
  // and the executor. The harmless flips are the `required` bit of a known
  // section, which changes nothing for this runtime, and the minor version
  // 1 -> 0 (a 2.0 file, which this runtime reads).
  for (auto [begin, end] : structuralRanges())
    for (uint64_t at = begin; at < end; ++at) {
      if (at >= bytes.size() - kTrailerSize + kTrailerDigestOffset)
        continue; // the digest itself
      for (uint8_t mask : {0x01, 0x80, 0xFF}) {
        std::vector<uint8_t> image = bytes;
        image[at] ^= mask;
        resealMetaDigest(image);
        auto a = open(image);
        std::string context =
            "byte " + std::to_string(at) + " ^ " + std::to_string(mask);
        if (!a.isOk()) {
          expectClearRejection(a.status(), context);
          continue;
        }
        uint64_t entry = (at - trailer.tableOffset) % kTableEntrySize;
        EXPECT_TRUE((at >= trailer.tableOffset && entry == 4 && mask == 0x01) ||
                    (at == 10 && mask == 0x01))
            << context << " was accepted";
        EXPECT_EQ((*a)->sections().size(), original->sections().size());
      }
    }
}

TEST_F(CorruptionTest, ManifestBytesPastTheDigestNeverCrash) {
  // Reseal the meta digest so that every flipped manifest reaches the
  // FlatBuffers verifier, the section records and the consistency checks;
  // each must be refused clearly or read as a manifest that passed every
  // check.
  auto [begin, end] = manifestRange();
  int accepted = 0, rejected = 0;
  for (uint64_t at = begin; at < end; ++at)
    for (uint8_t mask : {0x01, 0x02, 0x10, 0x80, 0xFF}) {
      std::vector<uint8_t> image = bytes;
      image[at] ^= mask;
      resealMetaDigest(image);
      auto a = open(image);
      if (a.isOk()) {
        ++accepted;
        continue;
      }
      ++rejected;
      expectClearRejection(a.status(), "manifest byte " + std::to_string(at));
      // Refused by the manifest checks, or, when the flip hit a section's
      // recorded SHA-256, by that section's digest check.
      const std::string &message = a.status().message();
      EXPECT_TRUE(message.find("manifest") != std::string::npos ||
                  message.find("SHA-256 mismatch (expected ") !=
                      std::string::npos)
          << message;
    }
  // Both outcomes occur: names can change harmlessly, sizes cannot.
  EXPECT_GT(rejected, 0);
  EXPECT_GT(accepted, 0);
  std::cout << "resealed manifest flips: " << rejected << " rejected, "
            << accepted << " accepted as consistent\n";
}

TEST(CorruptionTensorMaps, FlippedTensorMapsNeverCrash) {
  // The same resealed sweep over a CUDA manifest with tensor maps on a
  // buffer and a weight: the map checks index arguments and multiply
  // extents, so damaged ids, dims and strides must be refused, not trusted.
  TempDir dir;
  TestModel model = TestModel::random(8);
  model.enableJitCuda("sm_90a");
  std::vector<uint8_t> so = {0x7f, 'E', 'L', 'F', 2, 1, 1, 0};
  std::string path = dir.file("maps.moea");
  Status w = model.write(path, so, [](manifest::ManifestT &m) {
    manifest::CudaLaunchT &l = *m.steps[1]->cuda[0];
    auto x = std::make_unique<manifest::TensorMapT>(); // buffer x [T, 16] f32
    x->arg = 0;
    x->dtype = manifest::DType::F32;
    x->dims = {16, 8};
    x->strides = {64};
    x->box = {16, 8};
    l.tensor_maps.push_back(std::move(x));

    auto bias = std::make_unique<manifest::TensorMapT>(); // weight [16] f32
    bias->arg = 1;
    bias->dtype = manifest::DType::F32;
    bias->dims = {16};
    bias->box = {4};
    l.tensor_maps.push_back(std::move(bias));
  });
  ASSERT_TRUE(w.isOk()) << w.toString();
  std::vector<uint8_t> bytes = readFile(path);
  auto original = Artifact::fromBytes("maps.moea", bytes.data(), bytes.size());
  ASSERT_TRUE(original.isOk()) << original.status().toString();
  const SectionInfo *m = (*original)->findSection("manifest");
  int accepted = 0, rejected = 0, mapRejections = 0;
  for (uint64_t at = m->offset; at < m->offset + m->size; ++at)
    for (uint8_t mask : {0x01, 0x10, 0x80, 0xFF}) {
      std::vector<uint8_t> image = bytes;
      image[at] ^= mask;
      resealMetaDigest(image);
      auto a = Artifact::fromBytes("maps.moea", image.data(), image.size());
      if (a.isOk()) {
        ++accepted;
        continue;
      }
      ++rejected;
      EXPECT_EQ(a.status().code(), StatusCode::kCorrupt)
          << a.status().toString();
      EXPECT_EQ(a.status().message().rfind("maps.moea: ", 0), 0u);
      mapRejections +=
          a.status().message().find("tensor_maps") != std::string::npos;
    }
  EXPECT_GT(rejected, 0);
  EXPECT_GT(accepted, 0);
  EXPECT_GT(mapRejections, 10);
}

TEST_F(CorruptionTest, RandomManifestGarbageNeverCrashes) {
  const SectionInfo *m = original->findSection("manifest");
  std::mt19937 rng(42);
  for (int trial = 0; trial < 2000; ++trial) {
    std::vector<uint8_t> image = bytes;
    // Overwrite a random run of the manifest with random bytes.
    uint64_t start = m->offset + rng() % m->size;
    uint64_t len =
        1 + rng() % std::min<uint64_t>(64, m->offset + m->size - start);
    for (uint64_t i = 0; i < len; ++i)
      image[start + i] = uint8_t(rng());
    resealMetaDigest(image);
    auto a = open(image);
    if (!a.isOk())
      expectClearRejection(a.status(), "trial " + std::to_string(trial));
  }
}

TEST_F(CorruptionTest, EveryTruncationIsRejected) {
  for (uint64_t len = 0; len < bytes.size(); ++len) {
    // Every length near the ends, every 7th in between.
    if (len > 300 && len + 300 < bytes.size() && len % 7 != 0)
      continue;
    std::vector<uint8_t> image(bytes.begin(), bytes.begin() + len);
    expectClearRejection(open(image).status(),
                         "truncated to " + std::to_string(len));
  }
}

TEST_F(CorruptionTest, TruncatedFileOnDiskIsRejected) {
  for (uint64_t len :
       {uint64_t(0), uint64_t(5), uint64_t(16), uint64_t(100),
        uint64_t(bytes.size() / 2), uint64_t(bytes.size() - 1)}) {
    std::string path = dir.file("cut.moea");
    ASSERT_TRUE(writeFile(
        path, std::vector<uint8_t>(bytes.begin(), bytes.begin() + len)));
    auto a = Artifact::open(path);
    ASSERT_FALSE(a.isOk()) << len;
    EXPECT_EQ(a.status().code(), StatusCode::kCorrupt);
    EXPECT_EQ(a.status().message().rfind(path + ": ", 0), 0u);
  }
  std::vector<uint8_t> cut(bytes.begin(), bytes.end() - 1);
  Status s = open(cut).status();
  EXPECT_EQ(s.message(),
            "sweep.moea: trailer: end marker \"MOECEND\\0\" missing (the file "
            "is truncated, extended, or was not completely written)");
}

TEST_F(CorruptionTest, ExtendedFileIsRejected) {
  for (size_t extra : {1, 8, 64, 4096}) {
    std::vector<uint8_t> image = bytes;
    image.resize(image.size() + extra, 0);
    expectClearRejection(open(image).status(),
                         "extended by " + std::to_string(extra));
  }
}

TEST_F(CorruptionTest, TableEntriesNameTheirField) {
  struct Case {
    uint64_t field; // offset inside entry 0 (cpu.so, at 4096)
    int bytes;
    uint64_t value;
    const char *message;
  };
  const Case cases[] = {
      {8, 8, 20,
       "section table entry 0 ('cpu.so'): offset 20 is not a "
       "multiple of its alignment 4096"},
      {16, 8, ~uint64_t(0),
       "section table entry 0 ('cpu.so'): offset 4096 + size "
       "18446744073709551615 is outside the data area [16, "},
      {24, 4, 48,
       "section table entry 0 ('cpu.so'): alignment 48 is not a "
       "power of two <= 1048576"},
      {6, 1, 1,
       "section table entry 0 ('cpu.so'): checksum kind 1 is "
       "unknown (expected 2, SHA-256 in the manifest)"},
      {28, 4, 0xdeadbeef,
       "section table entry 0 ('cpu.so'): reserved bytes are not zero"},
      {4, 2, 0x8001,
       "section table entry 0 ('cpu.so'): unknown flags "
       "0x8001"},
      {0, 4, 3,
       "section table entry 0 ('cpu.so'): name field: a weights section must "
       "be named 'weights'"},
      {16, 8, 5000, "sections 'cpu.so' and 'weights' overlap"},
  };
  for (const Case &c : cases) {
    std::vector<uint8_t> image = bytes;
    uint8_t *p = image.data() + trailer.tableOffset + c.field;
    for (int i = 0; i < c.bytes; ++i)
      p[i] = uint8_t(c.value >> (8 * i));
    resealMetaDigest(image);
    Status s = open(image).status();
    EXPECT_EQ(s.message().rfind(std::string("sweep.moea: ") + c.message, 0), 0u)
        << s.message();
  }
}

} // namespace
