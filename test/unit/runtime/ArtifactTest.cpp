//===- ArtifactTest.cpp - Artifact writer and reader ------------*- C++ -*-===//
//
// Round trips of artifacts with random sections (a large one streamed in
// uneven chunks), the writer's all-or-nothing behaviour, version handling,
// unknown sections, and one negative case per manifest consistency rule.
// Corruption sweeps are in CorruptionTest.cpp.
//
//===----------------------------------------------------------------------===//

#include "TestModel.h"

#include "runtime/artifact/Artifact.h"
#include "runtime/artifact/ArtifactWriter.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

using namespace moec::runtime;
using namespace moec::runtime::test;

namespace {

// Stand-in shared object: the reader never looks inside it.
std::vector<uint8_t> fakeSo() {
  std::vector<uint8_t> so = {0x7f, 'E', 'L', 'F'};
  for (int i = 0; i < 1000; ++i)
    so.push_back(uint8_t(i * 7));
  return so;
}

// Deterministic pseudo-random bytes [pos, pos + n) of stream `seed`, so that
// a large section can be produced and re-checked without keeping it.
void streamBytes(uint64_t seed, uint64_t pos, uint8_t *out, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    uint64_t x = (pos + i) * 0x9E3779B97F4A7C15ull ^ seed;
    x ^= x >> 29;
    x *= 0xBF58476D1CE4E5B9ull;
    out[i] = uint8_t(x >> 56);
  }
}

//===----------------------------------------------------------------------===//
// Round trip
//===----------------------------------------------------------------------===//

TEST(ArtifactTest, RoundTripRandomSectionsWithLargeStreamedWeights) {
  TempDir dir;
  std::string path = dir.file("model.moea");
  std::mt19937_64 rng(1234);
  TestModel model = TestModel::random(1);
  manifest::Manifest m = model.manifest();
  m.clear_weights();
  m.clear_steps();
  m.add_targets("sm_90a");

  // Random small sections, one unknown optional kind among them.
  struct Small {
    SectionSpec spec;
    std::vector<uint8_t> bytes;
  };
  std::vector<Small> smalls;
  auto addSmall = [&](SectionSpec spec, size_t n) {
    std::vector<uint8_t> bytes(n);
    for (uint8_t &b : bytes)
      b = uint8_t(rng());
    smalls.push_back({spec, bytes});
  };
  addSmall(SectionSpec::forKind(SectionKind::kCpuSharedObject), 12345);
  addSmall(SectionSpec::forKind(SectionKind::kKernelsCu), 777);
  addSmall(SectionSpec::forKind(SectionKind::kCubin, "cubin.sm_90a"), 5000);
  SectionSpec unknown;
  unknown.kind = 77;
  unknown.name = "future.extra";
  unknown.alignment = 256;
  unknown.required = false;
  addSmall(unknown, 0); // an empty section is legal

  // 40 MiB + 13 bytes of weights, streamed in random chunks of up to 3 MiB.
  const uint64_t kWeightBytes = (uint64_t(40) << 20) + 13;
  const uint64_t kSeed = 99;
  uint64_t maxChunk = 0;
  {
    auto writer = ArtifactWriter::create(path);
    ASSERT_TRUE(writer.isOk()) << writer.status().toString();
    ASSERT_TRUE((*writer)
                    ->addSection(smalls[0].spec, smalls[0].bytes.data(),
                                 smalls[0].bytes.size())
                    .isOk());
    Status s = (*writer)->addStreamedSection(
        SectionSpec::forKind(SectionKind::kWeights),
        [&](const ArtifactWriter::ChunkSink &sink) -> Status {
          std::vector<uint8_t> chunk;
          for (uint64_t pos = 0; pos < kWeightBytes;) {
            size_t n = size_t(
                std::min<uint64_t>(rng() % (3u << 20) + 1, kWeightBytes - pos));
            maxChunk = std::max<uint64_t>(maxChunk, n);
            chunk.resize(n);
            streamBytes(kSeed, pos, chunk.data(), n);
            MOEC_RETURN_IF_ERROR(sink(chunk.data(), n));
            pos += n;
          }
          return Status::ok();
        });
    ASSERT_TRUE(s.isOk()) << s.toString();
    for (size_t i = 1; i < smalls.size(); ++i)
      ASSERT_TRUE((*writer)
                      ->addSection(smalls[i].spec, smalls[i].bytes.data(),
                                   smalls[i].bytes.size())
                      .isOk());
    ASSERT_TRUE((*writer)->addManifest(m).isOk());
    Status c = (*writer)->commit();
    ASSERT_TRUE(c.isOk()) << c.toString();
  }
  EXPECT_GT(maxChunk, uint64_t(1) << 20); // chunks bigger than the buffer too
  EXPECT_EQ(dir.list(), std::vector<std::string>{"model.moea"});
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);

  auto artifact = Artifact::open(path);
  ASSERT_TRUE(artifact.isOk()) << artifact.status().toString();
  const Artifact &a = **artifact;
  EXPECT_EQ(a.majorVersion(), kArtifactMajor);
  EXPECT_EQ(a.minorVersion(), kArtifactMinor);
  EXPECT_EQ(a.fileSize(), uint64_t(st.st_size));
  EXPECT_EQ(a.sections().size(), smalls.size() + 2);
  for (const Small &small : smalls) {
    const SectionInfo *info = a.findSection(small.spec.name);
    ASSERT_NE(info, nullptr) << small.spec.name;
    EXPECT_EQ(info->kind, small.spec.kind);
    EXPECT_EQ(info->offset % small.spec.alignment, 0u);
    EXPECT_EQ(info->known, small.spec.kind != 77);
    EXPECT_EQ(info->required, small.spec.required);
    ByteSpan data = a.sectionData(*info);
    ASSERT_EQ(data.size, small.bytes.size());
    EXPECT_TRUE(std::equal(small.bytes.begin(), small.bytes.end(), data.data))
        << small.spec.name;
  }
  const SectionInfo *weights = a.findSection("weights");
  ASSERT_NE(weights, nullptr);
  EXPECT_EQ(weights->size, kWeightBytes);
  ByteSpan w = a.sectionData(*weights);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(w.data) % 4096, 0u);
  std::vector<uint8_t> expected(1 << 20);
  for (uint64_t pos = 0; pos < kWeightBytes; pos += expected.size()) {
    size_t n = size_t(std::min<uint64_t>(expected.size(), kWeightBytes - pos));
    streamBytes(kSeed, pos, expected.data(), n);
    ASSERT_EQ(std::memcmp(expected.data(), w.data + pos, n), 0)
        << "weights differ in the MiB at " << pos;
  }
  EXPECT_EQ(a.manifest().SerializeAsString(), m.SerializeAsString());
  EXPECT_NE(a.summary().find("future.extra"), std::string::npos);

  // The in-memory reader agrees with the mapped one.
  std::vector<uint8_t> bytes = readFile(path);
  auto fromBytes = Artifact::fromBytes("image", bytes.data(), bytes.size());
  ASSERT_TRUE(fromBytes.isOk()) << fromBytes.status().toString();
  EXPECT_EQ((*fromBytes)->digest(), a.digest());

  // Large enough that the digest is computed on a second thread while the
  // CRCs are checked: a flipped weight byte is still reported as the
  // section's CRC mismatch, and a flipped digest byte as the SHA-256's.
  std::vector<uint8_t> flipped = bytes;
  flipped[weights->offset + kWeightBytes / 2] ^= 0x10;
  auto badWeight = Artifact::fromBytes("image", flipped.data(), flipped.size());
  ASSERT_FALSE(badWeight.isOk());
  EXPECT_NE(
      badWeight.status().message().find("section 'weights': CRC-32 mismatch"),
      std::string::npos)
      << badWeight.status().toString();
  flipped = bytes;
  flipped[flipped.size() - kTrailerSize + kTrailerDigestOffset + 5] ^= 0x01;
  auto badDigest = Artifact::fromBytes("image", flipped.data(), flipped.size());
  ASSERT_FALSE(badDigest.isOk());
  EXPECT_NE(badDigest.status().message().find("SHA-256 mismatch"),
            std::string::npos)
      << badDigest.status().toString();
}

TEST(ArtifactTest, TestModelWeightsAreAddressable) {
  TempDir dir;
  TestModel model = TestModel::random(2);
  ASSERT_TRUE(model.write(dir.file("m.moea"), fakeSo()).isOk());
  auto a = Artifact::open(dir.file("m.moea"));
  ASSERT_TRUE(a.isOk()) << a.status().toString();
  ByteSpan bias = (*a)->weightData(11);
  ASSERT_EQ(bias.size, model.bias.size() * 4);
  EXPECT_EQ(std::memcmp(bias.data, model.bias.data(), bias.size), 0);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(bias.data) % 64, 0u);
  EXPECT_EQ((*a)->findBuffer(3)->name(), "logits");
  EXPECT_EQ((*a)->findBuffer(42), nullptr);
  std::string summary = (*a)->summary();
  for (const char *needle : {"format 1.0", "moec test 0.1", "targets:   cpu",
                             "tokens: i32 [T]", "logits: f32 [T, 37]",
                             "moec_test_logits(y, @head, logits) params "
                             "[16, 37]",
                             "dense_matmul=f32"})
    EXPECT_NE(summary.find(needle), std::string::npos) << needle << "\n"
                                                       << summary;
}

//===----------------------------------------------------------------------===//
// Writer failures leave nothing behind
//===----------------------------------------------------------------------===//

TEST(ArtifactWriterTest, ProducerFailureRemovesTempFile) {
  TempDir dir;
  std::string path = dir.file("model.moea");
  // A previous artifact at the target must survive a failed write.
  ASSERT_TRUE(writeFile(path, {1, 2, 3}));
  auto writer = ArtifactWriter::create(path);
  ASSERT_TRUE(writer.isOk());
  EXPECT_EQ(dir.list().size(), 2u); // target + temp
  ASSERT_TRUE((*writer)->addManifest(TestModel::random(3).manifest()).isOk());
  std::vector<uint8_t> chunk(3 << 20, 0xAB);
  Status s = (*writer)->addStreamedSection(
      SectionSpec::forKind(SectionKind::kWeights),
      [&](const ArtifactWriter::ChunkSink &sink) -> Status {
        MOEC_RETURN_IF_ERROR(sink(chunk.data(), chunk.size()));
        return Status(StatusCode::kNotFound, "tensor 'w13' is missing");
      });
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_NE(s.message().find("section 'weights': tensor 'w13' is missing"),
            std::string::npos)
      << s.message();
  EXPECT_EQ(dir.list(), std::vector<std::string>{"model.moea"});
  EXPECT_TRUE((*writer)->tempPath().empty());
  // Sticky: later calls report the same error and write nothing.
  EXPECT_EQ((*writer)->commit().message(), s.message());
  EXPECT_EQ(readFile(path), (std::vector<uint8_t>{1, 2, 3}));
}

TEST(ArtifactWriterTest, SinkErrorIgnoredByProducerStillFails) {
  TempDir dir;
  auto writer = ArtifactWriter::create(dir.file("m.moea"));
  ASSERT_TRUE(writer.isOk());
  Status s = (*writer)->addStreamedSection(
      SectionSpec::forKind(SectionKind::kWeights),
      [&](const ArtifactWriter::ChunkSink &sink) -> Status {
        (void)sink(nullptr, 16); // an error the producer drops
        return Status::ok();
      });
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(dir.list().empty());
}

TEST(ArtifactWriterTest, DestroyedWithoutCommitRemovesTempFile) {
  TempDir dir;
  {
    auto writer = ArtifactWriter::create(dir.file("m.moea"));
    ASSERT_TRUE(writer.isOk());
    ASSERT_TRUE((*writer)->addManifest(manifest::Manifest()).isOk());
    EXPECT_EQ(dir.list().size(), 1u);
  }
  EXPECT_TRUE(dir.list().empty());
}

TEST(ArtifactWriterTest, RejectsBadSectionsAndMissingManifest) {
  TempDir dir;
  auto expectFailure = [&](const std::function<Status(ArtifactWriter &)> &f,
                           const std::string &fragment) {
    auto writer = ArtifactWriter::create(dir.file("m.moea"));
    ASSERT_TRUE(writer.isOk());
    Status s = f(**writer);
    if (s.isOk())
      s = (*writer)->commit();
    EXPECT_FALSE(s.isOk()) << fragment;
    EXPECT_NE(s.message().find(fragment), std::string::npos) << s.message();
    EXPECT_TRUE(dir.list().empty()) << fragment;
  };
  uint8_t byte = 0;
  expectFailure([](ArtifactWriter &) { return Status::ok(); },
                "no 'manifest' section was added");
  expectFailure(
      [&](ArtifactWriter &w) {
        MOEC_RETURN_IF_ERROR(w.addSection(
            SectionSpec::forKind(SectionKind::kKernelsCu), &byte, 1));
        return w.addSection(SectionSpec::forKind(SectionKind::kKernelsCu),
                            &byte, 1);
      },
      "section 'kernels.cu': added twice");
  expectFailure(
      [&](ArtifactWriter &w) {
        return w.addSection(
            SectionSpec::forKind(SectionKind::kWeights, "weights2"), &byte, 1);
      },
      "a weights section must be named 'weights'");
  expectFailure(
      [&](ArtifactWriter &w) {
        SectionSpec spec = SectionSpec::forKind(SectionKind::kWeights);
        spec.alignment = 64;
        return w.addSection(spec, &byte, 1);
      },
      "alignment 64 is not a power of two in [4096");
  expectFailure(
      [&](ArtifactWriter &w) {
        return w.addSection(
            SectionSpec::forKind(SectionKind::kCubin, "cubin.gfx90"), &byte, 1);
      },
      "must be named 'cubin.sm_<NN>'");
  expectFailure(
      [&](ArtifactWriter &w) {
        return w.addSection(
            SectionSpec::forKind(SectionKind::kCpuSharedObject, "cpu.so."),
            &byte, 1);
      },
      "a cpu.so section must be named 'cpu.so' or 'cpu.so.<variant>'");
  expectFailure(
      [&](ArtifactWriter &w) {
        SectionSpec spec;
        spec.kind = 9;
        spec.name = "cpu.so.x86-64-v2";
        return w.addSection(spec, &byte, 1);
      },
      "the name 'cpu.so.x86-64-v2' is reserved for kind 2 (cpu.so)");
  expectFailure(
      [&](ArtifactWriter &w) {
        SectionSpec spec;
        spec.kind = 9;
        spec.name = "has space";
        return w.addSection(spec, &byte, 1);
      },
      "character outside");
}

TEST(ArtifactWriterTest, UnwritableTargetsFailCleanly) {
  TempDir dir;
  auto missing = ArtifactWriter::create(dir.file("no/such/dir/m.moea"));
  ASSERT_FALSE(missing.isOk());
  EXPECT_EQ(missing.status().code(), StatusCode::kIoError);
  EXPECT_NE(missing.status().message().find("cannot create a temp file in"),
            std::string::npos);
  // A folder is refused before a temp file is made.
  ASSERT_EQ(mkdir(dir.file("target").c_str(), 0755), 0);
  auto folder = ArtifactWriter::create(dir.file("target"));
  ASSERT_FALSE(folder.isOk());
  EXPECT_EQ(folder.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(folder.status().message().find("is a folder; an artifact is "
                                           "written only to a new or regular "
                                           "file"),
            std::string::npos)
      << folder.status().message();
  EXPECT_EQ(dir.list(), std::vector<std::string>{"target"});
  rmdir(dir.file("target").c_str());
}

/// Writes a minimal artifact to `path`; returns the commit status.
static Status writeMinimalArtifact(const std::string &path) {
  MOEC_ASSIGN_OR_RETURN(std::unique_ptr<ArtifactWriter> writer,
                        ArtifactWriter::create(path));
  MOEC_RETURN_IF_ERROR(writer->addManifest(manifest::Manifest()));
  return writer->commit();
}

/// True when `path` is (not following links) of the file type `type`.
static bool hasType(const std::string &path, mode_t type) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0 && (st.st_mode & S_IFMT) == type;
}

TEST(ArtifactWriterTest, FifoOutputIsRefusedAndKept) {
  TempDir dir;
  std::string fifo = dir.file("out.moea");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  Status s = writeMinimalArtifact(fifo);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find(fifo + ": is a FIFO; an artifact is written "
                                    "only to a new or regular file"),
            std::string::npos)
      << s.message();
  EXPECT_TRUE(hasType(fifo, S_IFIFO));
  EXPECT_EQ(dir.list(), std::vector<std::string>{"out.moea"});
}

TEST(ArtifactWriterTest, DeviceOutputIsRefusedAndKept) {
  // `moec ckpt -o /dev/null` as root once replaced the device node with a
  // regular file. A private node stands in for /dev/null.
  if (geteuid() != 0)
    GTEST_SKIP() << "needs root to create a character device node";
  TempDir dir;
  std::string node = dir.file("null");
  ASSERT_EQ(mknod(node.c_str(), S_IFCHR | 0666, makedev(1, 3)), 0)
      << std::strerror(errno);
  Status s = writeMinimalArtifact(node);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find(node + ": is a character device;"),
            std::string::npos)
      << s.message();
  EXPECT_TRUE(hasType(node, S_IFCHR));
  EXPECT_EQ(dir.list(), std::vector<std::string>{"null"});
}

TEST(ArtifactWriterTest, SymlinkOutputIsWrittenThroughToItsTarget) {
  TempDir dir;
  std::string target = dir.file("v1.moea"), link = dir.file("live.moea");
  ASSERT_TRUE(writeMinimalArtifact(target).isOk());
  struct stat before;
  ASSERT_EQ(stat(target.c_str(), &before), 0);
  ASSERT_EQ(symlink("v1.moea", link.c_str()), 0);
  ASSERT_TRUE(writeMinimalArtifact(link).isOk());
  EXPECT_TRUE(hasType(link, S_IFLNK)) << "the link was replaced";
  char pointee[64] = {};
  ASSERT_GT(readlink(link.c_str(), pointee, sizeof(pointee) - 1), 0);
  EXPECT_STREQ(pointee, "v1.moea");
  // The target was replaced (by rename), not the link.
  struct stat after;
  ASSERT_EQ(stat(target.c_str(), &after), 0);
  EXPECT_TRUE(S_ISREG(after.st_mode));
  EXPECT_NE(after.st_ino, before.st_ino);
  EXPECT_EQ(dir.list(), (std::vector<std::string>{"live.moea", "v1.moea"}));

  // A dangling link is refused, and nothing is created at either end.
  std::string dangling = dir.file("dangling.moea");
  ASSERT_EQ(symlink("missing.moea", dangling.c_str()), 0);
  Status s = writeMinimalArtifact(dangling);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("is a symbolic link that does not lead to an "
                             "existing file"),
            std::string::npos)
      << s.message();
  EXPECT_TRUE(hasType(dangling, S_IFLNK));
  EXPECT_EQ(dir.list(), (std::vector<std::string>{"dangling.moea", "live.moea",
                                                  "v1.moea"}));
}

//===----------------------------------------------------------------------===//
// Versions and unknown sections
//===----------------------------------------------------------------------===//

class ArtifactBytesTest : public ::testing::Test {
protected:
  void SetUp() override {
    ASSERT_TRUE(
        TestModel::random(4).write(dir.file("m.moea"), fakeSo()).isOk());
    bytes = readFile(dir.file("m.moea"));
    ASSERT_GT(bytes.size(), 4096u);
  }
  Status open(const std::vector<uint8_t> &image) {
    return Artifact::fromBytes("m.moea", image.data(), image.size()).status();
  }
  TempDir dir;
  std::vector<uint8_t> bytes;
};

TEST_F(ArtifactBytesTest, NewerMinorIsRefusedNamingBothVersions) {
  storeLE<uint16_t>(bytes.data() + 10, 3);
  resealDigest(bytes);
  Status s = open(bytes);
  EXPECT_EQ(s.code(), StatusCode::kUnsupportedVersion);
  EXPECT_EQ(s.message(),
            "m.moea: artifact version 1.3 is newer than this runtime (1.0)");
}

TEST_F(ArtifactBytesTest, OtherMajorIsRefusedNamingBothVersions) {
  for (uint16_t major : {0, 2, 65535}) {
    storeLE<uint16_t>(bytes.data() + 8, major);
    resealDigest(bytes);
    Status s = open(bytes);
    EXPECT_EQ(s.code(), StatusCode::kUnsupportedVersion);
    EXPECT_EQ(s.message(), "m.moea: artifact version " + std::to_string(major) +
                               ".0 is not readable by this runtime (1.0): the "
                               "major version differs");
  }
}

TEST_F(ArtifactBytesTest, VersionIsCheckedThroughTheFileToo) {
  storeLE<uint16_t>(bytes.data() + 10, 1);
  ASSERT_TRUE(writeFile(dir.file("newer.moea"), bytes));
  auto a = Artifact::open(dir.file("newer.moea"));
  ASSERT_FALSE(a.isOk());
  EXPECT_EQ(a.status().message(), dir.file("newer.moea") +
                                      ": artifact version 1.1 is newer than "
                                      "this runtime (1.0)");
}

TEST_F(ArtifactBytesTest, UnknownRequiredSectionIsRejected) {
  Trailer t = decodeTrailer(bytes.data() + bytes.size() - kTrailerSize);
  // Turn the cpu.so entry (table entry 1) into an unknown kind.
  uint8_t *entry = bytes.data() + t.tableOffset + kTableEntrySize;
  ASSERT_EQ(decodeSectionEntry(entry).nameView(), "cpu.so");
  storeLE<uint32_t>(entry, 1000);
  resealDigest(bytes);
  Status s = open(bytes);
  EXPECT_EQ(s.code(), StatusCode::kCorrupt);
  EXPECT_EQ(s.message(), "m.moea: section table entry 1 ('cpu.so'): kind 1000 "
                         "is unknown to this runtime but marked required");
  // Marked optional, it would be skipped, but it may not take a name that
  // belongs to a known kind.
  storeLE<uint16_t>(entry + 4, 0);
  resealDigest(bytes);
  s = open(bytes);
  EXPECT_EQ(s.message(), "m.moea: section table entry 1 ('cpu.so'): name "
                         "field: the name 'cpu.so' is reserved for kind 2 "
                         "(cpu.so)");
  // Renamed, it is skipped; the manifest's cpu target then lacks its code.
  std::memcpy(entry + 32, "cpu.sx", 6);
  resealDigest(bytes);
  s = open(bytes);
  EXPECT_EQ(s.message(), "m.moea: manifest: targets[0] ('cpu'): the file has "
                         "no 'cpu.so' section and no cpu_objects");
}

TEST_F(ArtifactBytesTest, MissingFileAndNonFiles) {
  auto a = Artifact::open(dir.file("absent.moea"));
  EXPECT_EQ(a.status().code(), StatusCode::kNotFound);
  EXPECT_NE(a.status().message().find("absent.moea: cannot open"),
            std::string::npos);
  auto d = Artifact::open(dir.path());
  EXPECT_EQ(d.status().code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(writeFile(dir.file("empty.moea"), {}));
  auto e = Artifact::open(dir.file("empty.moea"));
  EXPECT_EQ(e.status().message(),
            dir.file("empty.moea") +
                ": too small to be a moec artifact (0 bytes)");
  ASSERT_TRUE(writeFile(dir.file("text.moea"), {'h', 'e', 'l', 'l', 'o', ',',
                                                ' ', 'w', 'o', 'r', 'l', 'd'}));
  auto t = Artifact::open(dir.file("text.moea"));
  EXPECT_NE(t.status().message().find("not a moec artifact"),
            std::string::npos);
}

//===----------------------------------------------------------------------===//
// Manifest consistency: one case per rule
//===----------------------------------------------------------------------===//

struct ManifestCase {
  const char *what;
  std::function<void(manifest::Manifest &)> edit;
  const char *message; // after "<file>: manifest: "
};

class ManifestConsistencyTest : public ::testing::TestWithParam<ManifestCase> {
};

TEST_P(ManifestConsistencyTest, IsRejectedWithTheField) {
  const ManifestCase &c = GetParam();
  TempDir dir;
  std::string path = dir.file("m.moea");
  Status w = TestModel::random(5).write(path, fakeSo(), c.edit);
  ASSERT_TRUE(w.isOk()) << w.toString();
  auto a = Artifact::open(path);
  ASSERT_FALSE(a.isOk()) << c.what;
  EXPECT_EQ(a.status().code(), StatusCode::kCorrupt);
  EXPECT_EQ(a.status().message(), path + ": manifest: " + c.message);
}

using namespace manifest;
const uint64_t kHuge = ~uint64_t(0) - 63;

INSTANTIATE_TEST_SUITE_P(
    Rules, ManifestConsistencyTest,
    ::testing::Values(
        ManifestCase{"max_tokens", [](Manifest &m) { m.set_max_tokens(0); },
                     "max_tokens 0 is not in [1, 2147483647]"},
        ManifestCase{"buffer outside arena",
                     [](Manifest &m) { m.set_arena_bytes(1000); },
                     "buffers[2] (id 2, 'y'): offset 576 + 512 bytes exceeds "
                     "arena_bytes 1000"},
        ManifestCase{
            "buffer offset overflow",
            [](Manifest &m) { m.mutable_buffers(1)->set_offset(kHuge); },
            "buffers[1] (id 1, 'x'): offset 18446744073709551552 + "
            "512 bytes exceeds arena_bytes 2304"},
        ManifestCase{"buffer misaligned",
                     [](Manifest &m) { m.mutable_buffers(1)->set_offset(8); },
                     "buffers[1] (id 1, 'x'): offset 8 is not a multiple of "
                     "64"},
        ManifestCase{"buffer too small",
                     [](Manifest &m) { m.mutable_buffers(3)->set_bytes(100); },
                     "buffers[3] (id 3, 'logits'): bytes 100 is less than the "
                     "1184 bytes it needs at max_tokens 8"},
        ManifestCase{"buffer size overflow",
                     [](Manifest &m) {
                       m.mutable_buffers(1)->set_elements_per_token(uint64_t(1)
                                                                    << 62);
                     },
                     "buffers[1] (id 1, 'x'): elements_per_token "
                     "4611686018427387904 * max_tokens 8 overflows"},
        ManifestCase{
            "buffer without elements",
            [](Manifest &m) { m.mutable_buffers(0)->clear_elements(); },
            "buffers[0] (id 0, 'tokens'): has neither "
            "elements_per_token nor fixed_elements"},
        ManifestCase{"duplicate buffer id",
                     [](Manifest &m) { m.mutable_buffers(2)->set_id(1); },
                     "buffers[2] (id 1, 'y'): id 1 is used twice"},
        ManifestCase{
            "unknown dtype",
            [](Manifest &m) { m.mutable_buffers(1)->set_dtype(DType(99)); },
            "buffers[1] (id 1, 'x'): dtype 99 is not a known dtype"},
        ManifestCase{
            "weight outside section",
            [](Manifest &m) { m.mutable_weights(2)->set_offset(4096); },
            "weights[2] (id 12, 'head'): offset 4096 + 2368 bytes "
            "exceeds the weights section (4800 bytes)"},
        ManifestCase{
            "weight offset overflow",
            [](Manifest &m) { m.mutable_weights(0)->set_offset(kHuge); },
            "weights[0] (id 10, 'embed'): offset "
            "18446744073709551552 + 2368 bytes exceeds the weights "
            "section (4800 bytes)"},
        ManifestCase{"weight bytes",
                     [](Manifest &m) { m.mutable_weights(1)->set_bytes(60); },
                     "weights[1] (id 11, 'bias'): bytes 60 but shape [16] of "
                     "f32 needs 64"},
        ManifestCase{"weight shape",
                     [](Manifest &m) { m.mutable_weights(0)->set_shape(1, 0); },
                     "weights[0] (id 10, 'embed'): shape dimension 1 is 0, "
                     "expected > 0"},
        ManifestCase{"weight element overflow",
                     [](Manifest &m) {
                       m.mutable_weights(0)->set_shape(0, int64_t(1) << 40);
                       m.mutable_weights(0)->set_shape(1, int64_t(1) << 40);
                     },
                     "weights[0] (id 10, 'embed'): element count overflows"},
        ManifestCase{"scale unknown",
                     [](Manifest &m) {
                       m.mutable_weights(2)->set_scale(77);
                       m.mutable_weights(2)->add_block_shape(16);
                     },
                     "weights[2] (id 12, 'head'): scale refers to unknown "
                     "weight id 77"},
        ManifestCase{"scale shape",
                     [](Manifest &m) {
                       // head [37, 16] in 8x8 blocks needs a [5, 2] scale;
                       // bias [16] is no such thing.
                       m.mutable_weights(2)->set_scale(11);
                       m.mutable_weights(2)->add_block_shape(8);
                       m.mutable_weights(2)->add_block_shape(8);
                     },
                     "weights[2] (id 12, 'head'): scale 'bias' has rank 1, "
                     "expected 2"},
        ManifestCase{
            "block without scale",
            [](Manifest &m) { m.mutable_weights(2)->add_block_shape(128); },
            "weights[2] (id 12, 'head'): has block_shape but no "
            "scale"},
        ManifestCase{"input buffer",
                     [](Manifest &m) { m.mutable_inputs(0)->set_buffer(9); },
                     "inputs[0] ('tokens'): buffer refers to unknown buffer "
                     "id 9"},
        ManifestCase{
            "input dtype",
            [](Manifest &m) { m.mutable_inputs(0)->set_dtype(DTYPE_I64); },
            "inputs[0] ('tokens'): dtype i64 differs from buffer "
            "'tokens' (i32)"},
        ManifestCase{
            "output shape",
            [](Manifest &m) { m.mutable_outputs(0)->set_shape(1, 36); },
            "outputs[0] ('logits'): shape [T, 36] does not match "
            "buffer 'logits' (elements_per_token 37)"},
        ManifestCase{"token dim not first",
                     [](Manifest &m) {
                       m.mutable_outputs(0)->set_shape(0, 37);
                       m.mutable_outputs(0)->set_shape(1, -1);
                     },
                     "outputs[0] ('logits'): shape [37, T] has dimension 1 = "
                     "-1 (only dimension 0 may be -1, the tokens)"},
        ManifestCase{"step buffer",
                     [](Manifest &m) {
                       m.mutable_steps(1)->mutable_args(2)->set_buffer(40);
                     },
                     "steps[1] ('moec_test_add'): argument 2 refers to "
                     "unknown buffer id 40"},
        ManifestCase{"step weight",
                     [](Manifest &m) {
                       m.mutable_steps(2)->mutable_args(1)->set_weight(3);
                     },
                     "steps[2] ('moec_test_logits'): argument 1 refers to "
                     "unknown weight id 3"},
        ManifestCase{"step empty argument",
                     [](Manifest &m) { m.mutable_steps(0)->add_args(); },
                     "steps[0] ('moec_test_embed'): argument 3 is neither a "
                     "buffer nor a weight"},
        ManifestCase{
            "step kernel",
            [](Manifest &m) { m.mutable_steps(0)->set_kernel("rm -rf\n"); },
            "steps[0] ('rm -rf\\x0a'): kernel is not a C identifier"},
        ManifestCase{"unknown target",
                     [](Manifest &m) { m.add_targets("tpu"); },
                     "targets[1] ('tpu'): not 'cpu' or 'sm_<NN>[a]'"},
        ManifestCase{"gpu target without code",
                     [](Manifest &m) { m.add_targets("sm_89"); },
                     "targets[1] ('sm_89'): the file has neither "
                     "'kernels.cu' nor 'cubin.sm_89'"},
        ManifestCase{"precision",
                     [](Manifest &m) {
                       m.mutable_precision(0)->set_precision(Precision(9));
                     },
                     "precision[0] ('dense_matmul'): needs an op_class and a "
                     "known precision"}),
    [](const ::testing::TestParamInfo<ManifestCase> &info) {
      std::string name;
      for (const char *p = info.param.what; *p; ++p)
        name += std::isalnum(static_cast<unsigned char>(*p)) ? *p : '_';
      return name;
    });

TEST(ManifestTest, WeightsWithoutWeightsSection) {
  manifest::Manifest m = TestModel::random(6).manifest();
  ManifestContext context;
  context.sectionNames = {"manifest", "cpu.so"};
  auto index = verifyManifest(m, context);
  ASSERT_FALSE(index.isOk());
  EXPECT_EQ(index.status().message(),
            "the manifest lists 3 weights but the file has no 'weights' "
            "section");
}

// `cpu_objects`: each names an existing `cpu.so.<variant>` section once,
// with a CPU name and features this runtime can detect.
TEST(ManifestTest, CpuObjects) {
  auto withObjects = [](int count) {
    manifest::Manifest m = TestModel::random(8).manifest();
    for (int i = 0; i < count; ++i) {
      manifest::CpuObject *o = m.add_cpu_objects();
      o->set_section(i ? "cpu.so.x86-64-v4" : "cpu.so.x86-64-v2");
      o->set_cpu(i ? "x86-64-v4" : "x86-64-v2");
      o->add_features("sse4.2");
      o->add_features(i ? "avx512f" : "popcnt");
    }
    return m;
  };
  ManifestContext context;
  context.sectionNames = {"manifest", "cpu.so.x86-64-v2", "cpu.so.x86-64-v4",
                          "weights"};
  context.weightsSectionSize = 4800;
  manifest::Manifest good = withObjects(2);
  auto index = verifyManifest(good, context);
  ASSERT_TRUE(index.isOk()) << index.status().toString();
  std::vector<CpuCodeVariant> variants = getCpuCodeVariants(good);
  ASSERT_EQ(variants.size(), 2u);
  EXPECT_EQ(variants[1].name, "cpu.so.x86-64-v4");
  EXPECT_EQ(variants[1].cpu, "x86-64-v4");
  EXPECT_EQ(variants[1].features,
            (std::vector<std::string>{"sse4.2", "avx512f"}));
  EXPECT_TRUE(getCpuCodeVariants(TestModel::random(8).manifest()).empty());

  struct Case {
    std::function<void(manifest::Manifest &)> edit;
    const char *message;
  };
  const Case cases[] = {
      {[](manifest::Manifest &m) { m.clear_targets(); },
       "cpu_objects: listed, but the targets do not include 'cpu'"},
      {[](manifest::Manifest &m) {
         m.mutable_cpu_objects(1)->set_section("cpu.so");
       },
       "cpu_objects[1] ('cpu.so'): the section is not named "
       "'cpu.so.<variant>' (at most 31 characters of [A-Za-z0-9._-])"},
      {[](manifest::Manifest &m) {
         m.mutable_cpu_objects(1)->set_section(
             "cpu.so.a-variant-name-far-too-long");
       },
       "cpu_objects[1] ('cpu.so.a-variant-name-far-too-long'): the section "
       "is not named 'cpu.so.<variant>' (at most 31 characters of "
       "[A-Za-z0-9._-])"},
      {[](manifest::Manifest &m) {
         m.mutable_cpu_objects(1)->set_section("weights");
       },
       "cpu_objects[1] ('weights'): the section is not named "
       "'cpu.so.<variant>' (at most 31 characters of [A-Za-z0-9._-])"},
      {[](manifest::Manifest &m) {
         m.mutable_cpu_objects(1)->set_section("cpu.so.x86-64-v2");
       },
       "cpu_objects[1] ('cpu.so.x86-64-v2'): listed twice"},
      {[](manifest::Manifest &m) {
         m.mutable_cpu_objects(1)->set_section("cpu.so.x86-64-v3");
       },
       "cpu_objects[1] ('cpu.so.x86-64-v3'): the file has no such section"},
      {[](manifest::Manifest &m) { m.mutable_cpu_objects(0)->set_cpu(""); },
       "cpu_objects[0] ('cpu.so.x86-64-v2'): cpu '' is not 1 to 64 "
       "characters of [A-Za-z0-9._-]"},
      {[](manifest::Manifest &m) {
         m.mutable_cpu_objects(0)->set_cpu("x86 64\n");
       },
       "cpu_objects[0] ('cpu.so.x86-64-v2'): cpu 'x86 64\\x0a' is not 1 to 64 "
       "characters of [A-Za-z0-9._-]"},
      {[](manifest::Manifest &m) {
         m.mutable_cpu_objects(1)->add_features("avx1024");
       },
       "cpu_objects[1] ('cpu.so.x86-64-v4'): feature 'avx1024' is not one "
       "this runtime can detect"},
      {[](manifest::Manifest &m) {
         m.mutable_cpu_objects(1)->add_features("sse4.2");
       },
       "cpu_objects[1] ('cpu.so.x86-64-v4'): feature 'sse4.2' is listed "
       "twice"},
  };
  for (const Case &c : cases) {
    manifest::Manifest m = withObjects(2);
    c.edit(m);
    auto bad = verifyManifest(m, context);
    ASSERT_FALSE(bad.isOk()) << c.message;
    EXPECT_EQ(bad.status().code(), StatusCode::kCorrupt);
    EXPECT_EQ(bad.status().message(), c.message);
  }
}

TEST(ManifestTest, BlockScaledWeightIsAccepted) {
  // A [300, 200] FP8 weight with 128x128 blocks needs a [3, 2] f32 scale.
  manifest::Manifest m = TestModel::random(7).manifest();
  manifest::Weight *w = m.add_weights();
  w->set_id(20);
  w->set_name("w_fp8");
  w->set_dtype(DTYPE_F8E4M3FN);
  w->add_shape(300);
  w->add_shape(200);
  w->set_offset(4864);
  w->set_bytes(60000);
  w->set_scale(21);
  w->add_block_shape(128);
  w->add_block_shape(128);
  manifest::Weight *s = m.add_weights();
  s->set_id(21);
  s->set_name("w_fp8.scale");
  s->set_dtype(DTYPE_F32);
  s->add_shape(3);
  s->add_shape(2);
  s->set_offset(64896);
  s->set_bytes(24);
  ManifestContext context;
  context.sectionNames = {"manifest", "cpu.so", "weights"};
  context.weightsSectionSize = 64920;
  auto index = verifyManifest(m, context);
  EXPECT_TRUE(index.isOk()) << index.status().toString();
  s->set_shape(1, 1);
  s->set_bytes(12);
  index = verifyManifest(m, context);
  EXPECT_EQ(index.status().message(),
            "weights[3] (id 20, 'w_fp8'): scale 'w_fp8.scale' has shape [3, "
            "1] but dimension 1 should be 2");
}

} // namespace
