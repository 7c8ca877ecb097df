//===- ArtifactTest.cpp - Artifact writer and reader ------------*- C++ -*-===//
//
// Round trips of artifacts with random sections (a large one streamed in
// uneven chunks), the writer's all-or-nothing behaviour, version handling,
// unknown sections, one negative case per manifest consistency rule, and
// the verification levels: weight blocks checked on use, not at open (a
// multi-GB sparse artifact opens without reading a weight byte), or all at
// open with kFull. Corruption sweeps are in CorruptionTest.cpp.
//
//===----------------------------------------------------------------------===//

#include "TestModel.h"

#include "runtime/artifact/Artifact.h"
#include "runtime/artifact/ArtifactWriter.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <fcntl.h>
#include <future>
#include <random>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <thread>
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
  manifest::ManifestT m = model.manifest();
  m.weights.clear();
  m.steps.clear();
  m.targets.push_back("sm_90a");

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
  // The manifest reads back as written, plus the writer's section records:
  // one per section but the manifest, in table order, the weights in
  // 16 MiB blocks (the last one partial).
  manifest::ManifestT back;
  a.manifest().UnPackTo(&back);
  ASSERT_EQ(back.sections.size(), smalls.size() + 1);
  EXPECT_EQ(back.sections[0]->name, "cpu.so");
  EXPECT_EQ(back.sections[1]->name, "weights");
  EXPECT_EQ(back.sections[1]->size, kWeightBytes);
  EXPECT_EQ(back.sections[1]->block_size, kDefaultWeightsBlockSize);
  EXPECT_EQ(back.sections[1]->blocks.size(), 3u);
  EXPECT_EQ(fromHash(*back.sections[0]->sha256),
            Sha256::hash(smalls[0].bytes.data(), smalls[0].bytes.size()));
  back.sections.clear();
  EXPECT_EQ(packManifest(back), packManifest(m));
  EXPECT_EQ(a.sections().back().name, "manifest"); // written last
  EXPECT_NE(a.summary().find("future.extra"), std::string::npos);

  // The in-memory reader agrees with the mapped one.
  std::vector<uint8_t> bytes = readFile(path);
  auto fromBytes = Artifact::fromBytes("image", bytes.data(), bytes.size());
  ASSERT_TRUE(fromBytes.isOk()) << fromBytes.status().toString();
  EXPECT_EQ((*fromBytes)->metaDigest(), a.metaDigest());

  // A flipped weight byte passes the default open and is found by the full
  // one, in its block; a flipped meta digest byte fails both.
  std::vector<uint8_t> flipped = bytes;
  flipped[weights->offset + kWeightBytes / 2] ^= 0x10;
  ASSERT_TRUE(
      Artifact::fromBytes("image", flipped.data(), flipped.size()).isOk());
  auto badWeight = Artifact::fromBytes("image", flipped.data(), flipped.size(),
                                       OpenOptions{VerifyLevel::kFull});
  ASSERT_FALSE(badWeight.isOk());
  EXPECT_NE(badWeight.status().message().find(
                "image: section 'weights': block 1 (bytes [16777216, "
                "33554432)): SHA-256 mismatch (expected "),
            std::string::npos)
      << badWeight.status().toString();
  flipped = bytes;
  flipped[flipped.size() - kTrailerSize + kTrailerDigestOffset + 5] ^= 0x01;
  auto badDigest = Artifact::fromBytes("image", flipped.data(), flipped.size());
  ASSERT_FALSE(badDigest.isOk());
  EXPECT_NE(badDigest.status().message().find("image: meta digest mismatch"),
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
  EXPECT_EQ(text((*a)->findBuffer(3)->name()), "logits");
  EXPECT_EQ((*a)->findBuffer(42), nullptr);
  std::string summary = (*a)->summary();
  for (const char *needle : {"format 2.1", "moec test 0.1", "targets:   cpu",
                             "tokens: i32 [T]", "logits: f32 [T, 37]",
                             "moec_test_logits(y, @head, logits) params "
                             "[16, 37]",
                             "dense_matmul=f32",
                             "weights: offset 8192, 4.7 KiB, align 4096, "
                             "sha256 of 1 blocks of 16.0 MiB (0 verified)"})
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
    ASSERT_TRUE((*writer)->addManifest(manifest::ManifestT()).isOk());
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
  MOEC_RETURN_IF_ERROR(writer->addManifest(manifest::ManifestT()));
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
  resealMetaDigest(bytes);
  Status s = open(bytes);
  EXPECT_EQ(s.code(), StatusCode::kUnsupportedVersion);
  EXPECT_EQ(s.message(),
            "m.moea: artifact version 2.3 is newer than this runtime (2.1)");
}

TEST_F(ArtifactBytesTest, OtherMajorIsRefusedNamingBothVersions) {
  for (uint16_t major : {0, 1, 3, 65535}) {
    storeLE<uint16_t>(bytes.data() + 8, major);
    resealMetaDigest(bytes);
    Status s = open(bytes);
    EXPECT_EQ(s.code(), StatusCode::kUnsupportedVersion);
    EXPECT_EQ(s.message(),
              "m.moea: artifact version " + std::to_string(major) +
                  ".1 is not readable by this runtime (2.1): the major "
                  "version differs; " +
                  (major < 2 ? "recompile it with this moec"
                             : "it needs a newer runtime"));
  }
}

TEST_F(ArtifactBytesTest, FormatOneFileIsRefusedWithAClearMessage) {
  // The start of a 1.0 file as the 1.0 writer made it: the version is read
  // before anything whose layout changed.
  std::vector<uint8_t> v1(512, 0);
  encodeHeader(v1.data(), 1, 0);
  ASSERT_TRUE(writeFile(dir.file("old.moea"), v1));
  auto a = Artifact::open(dir.file("old.moea"));
  ASSERT_FALSE(a.isOk());
  EXPECT_EQ(a.status().code(), StatusCode::kUnsupportedVersion);
  EXPECT_EQ(a.status().message(),
            dir.file("old.moea") +
                ": artifact version 1.0 is not readable by this runtime "
                "(2.1): the major version differs; recompile it with this "
                "moec");
}

TEST_F(ArtifactBytesTest, VersionIsCheckedThroughTheFileToo) {
  storeLE<uint16_t>(bytes.data() + 10, 2);
  ASSERT_TRUE(writeFile(dir.file("newer.moea"), bytes));
  auto a = Artifact::open(dir.file("newer.moea"));
  ASSERT_FALSE(a.isOk());
  EXPECT_EQ(a.status().message(), dir.file("newer.moea") +
                                      ": artifact version 2.2 is newer than "
                                      "this runtime (2.1)");
}

TEST_F(ArtifactBytesTest, UnknownRequiredSectionIsRejected) {
  Trailer t = decodeTrailer(bytes.data() + bytes.size() - kTrailerSize);
  // Turn the cpu.so entry (table entry 0) into an unknown kind.
  uint8_t *entry = bytes.data() + t.tableOffset;
  ASSERT_EQ(decodeSectionEntry(entry).nameView(), "cpu.so");
  storeLE<uint32_t>(entry, 1000);
  resealMetaDigest(bytes);
  Status s = open(bytes);
  EXPECT_EQ(s.code(), StatusCode::kCorrupt);
  EXPECT_EQ(s.message(), "m.moea: section table entry 0 ('cpu.so'): kind 1000 "
                         "is unknown to this runtime but marked required");
  // Marked optional, it would be skipped, but it may not take a name that
  // belongs to a known kind.
  storeLE<uint16_t>(entry + 4, 0);
  resealMetaDigest(bytes);
  s = open(bytes);
  EXPECT_EQ(s.message(), "m.moea: section table entry 0 ('cpu.so'): name "
                         "field: the name 'cpu.so' is reserved for kind 2 "
                         "(cpu.so)");
  // Renamed, it no longer matches its record in the manifest.
  std::memcpy(entry + 32, "cpu.sx", 6);
  resealMetaDigest(bytes);
  s = open(bytes);
  EXPECT_EQ(s.message(), "m.moea: manifest: sections[0] ('cpu.so'): names no "
                         "section of the table");
}

TEST_F(ArtifactBytesTest, FlippedCodeByteIsCaughtAtOpen) {
  // Code is verified before use at every level: a flipped cpu.so byte
  // fails the default open, naming both digests.
  auto a = Artifact::fromBytes("m.moea", bytes.data(), bytes.size());
  ASSERT_TRUE(a.isOk());
  const SectionInfo *so = (*a)->findSection("cpu.so");
  std::string expected = toHex(fromHash(*so->digest->sha256()));
  std::vector<uint8_t> image = bytes;
  image[so->offset + 100] ^= 0x04;
  Sha256Digest actual = Sha256::hash(image.data() + so->offset, so->size);
  Status s = open(image);
  EXPECT_EQ(s.code(), StatusCode::kCorrupt);
  EXPECT_EQ(s.message(), "m.moea: section 'cpu.so': SHA-256 mismatch "
                         "(expected " +
                             expected + ", computed " + toHex(actual) +
                             "): the section is corrupted");
}

TEST_F(ArtifactBytesTest, SignatureFieldsAreOutsideTheMetaDigest) {
  // Room for an Ed25519 signature and its key: filling them in does not
  // change the digest they would sign.
  auto a = Artifact::fromBytes("m.moea", bytes.data(), bytes.size());
  ASSERT_TRUE(a.isOk());
  EXPECT_EQ((*a)->signature(), (std::array<uint8_t, kSignatureSize>{}));
  std::vector<uint8_t> image = bytes;
  uint8_t *trailerAt = image.data() + image.size() - kTrailerSize;
  for (uint64_t i = 0; i < kSignatureSize + kPublicKeySize; ++i)
    trailerAt[kTrailerSignatureOffset + i] = uint8_t(i + 1);
  auto b = Artifact::fromBytes("m.moea", image.data(), image.size());
  ASSERT_TRUE(b.isOk()) << b.status().toString();
  EXPECT_EQ((*b)->metaDigest(), (*a)->metaDigest());
  EXPECT_EQ((*b)->signature()[0], 1);
  EXPECT_EQ((*b)->signerPublicKey()[31], 96);
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

TEST_F(ArtifactBytesTest, FifoIsRefusedWithoutBlocking) {
  // A plain open(2) of a FIFO waits for a writer. Should Artifact::open
  // block, a writer opens and closes the FIFO after 10 s so that it returns,
  // and the test fails instead of hanging.
  std::string fifo = dir.file("pipe.moea");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0) << std::strerror(errno);
  auto opened = std::async(std::launch::async,
                           [&] { return Artifact::open(fifo).status(); });
  if (opened.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
    ADD_FAILURE() << "Artifact::open blocked on the FIFO " << fifo;
    int fd = ::open(fifo.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd >= 0)
      ::close(fd);
  }
  Status status = opened.get();
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), fifo + ": is a FIFO, not a regular file");
}

TEST_F(ArtifactBytesTest, DevicesAreRefusedNamingTheirKind) {
  if (::access("/dev/zero", R_OK) != 0)
    GTEST_SKIP() << "no readable /dev/zero";
  auto a = Artifact::open("/dev/zero");
  EXPECT_EQ(a.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(a.status().message(),
            "/dev/zero: is a character device, not a regular file");
  EXPECT_EQ(Artifact::open(dir.path()).status().message(),
            dir.path() + ": is a folder, not a regular file");
}

//===----------------------------------------------------------------------===//
// Manifest consistency: one case per rule
//===----------------------------------------------------------------------===//

struct ManifestCase {
  const char *what;
  std::function<void(manifest::ManifestT &)> edit;
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
        ManifestCase{"max_tokens", [](ManifestT &m) { m.max_tokens = 0; },
                     "max_tokens 0 is not in [1, 2147483647]"},
        ManifestCase{"buffer outside arena",
                     [](ManifestT &m) { m.arena_bytes = 1000; },
                     "buffers[2] (id 2, 'y'): offset 576 + 512 bytes exceeds "
                     "arena_bytes 1000"},
        ManifestCase{"buffer offset overflow",
                     [](ManifestT &m) { m.buffers[1]->offset = kHuge; },
                     "buffers[1] (id 1, 'x'): offset 18446744073709551552 + "
                     "512 bytes exceeds arena_bytes 2304"},
        ManifestCase{"buffer misaligned",
                     [](ManifestT &m) { m.buffers[1]->offset = 8; },
                     "buffers[1] (id 1, 'x'): offset 8 is not a multiple of "
                     "64"},
        ManifestCase{"buffer too small",
                     [](ManifestT &m) { m.buffers[3]->bytes = 100; },
                     "buffers[3] (id 3, 'logits'): bytes 100 is less than the "
                     "1184 bytes it needs at max_tokens 8"},
        ManifestCase{"buffer size overflow",
                     [](ManifestT &m) {
                       setElementsPerToken(*m.buffers[1], uint64_t(1) << 62);
                     },
                     "buffers[1] (id 1, 'x'): elements_per_token "
                     "4611686018427387904 * max_tokens 8 overflows"},
        ManifestCase{"buffer without elements",
                     [](ManifestT &m) { m.buffers[0]->elements.Reset(); },
                     "buffers[0] (id 0, 'tokens'): has neither "
                     "elements_per_token nor fixed_elements"},
        ManifestCase{"duplicate buffer id",
                     [](ManifestT &m) { m.buffers[2]->id = 1; },
                     "buffers[2] (id 1, 'y'): id 1 is used twice"},
        ManifestCase{"unknown dtype",
                     [](ManifestT &m) { m.buffers[1]->dtype = DType(99); },
                     "buffers[1] (id 1, 'x'): dtype 99 is not a known dtype"},
        ManifestCase{"weight outside section",
                     [](ManifestT &m) { m.weights[2]->offset = 4096; },
                     "weights[2] (id 12, 'head'): offset 4096 + 2368 bytes "
                     "exceeds the weights section (4800 bytes)"},
        ManifestCase{"weight offset overflow",
                     [](ManifestT &m) { m.weights[0]->offset = kHuge; },
                     "weights[0] (id 10, 'embed'): offset "
                     "18446744073709551552 + 2368 bytes exceeds the weights "
                     "section (4800 bytes)"},
        ManifestCase{"weight bytes",
                     [](ManifestT &m) { m.weights[1]->bytes = 60; },
                     "weights[1] (id 11, 'bias'): bytes 60 but shape [16] of "
                     "f32 needs 64"},
        ManifestCase{"weight shape",
                     [](ManifestT &m) { m.weights[0]->shape[1] = 0; },
                     "weights[0] (id 10, 'embed'): shape dimension 1 is 0, "
                     "expected > 0"},
        ManifestCase{
            "weight element overflow",
            [](ManifestT &m) {
              m.weights[0]->shape = {int64_t(1) << 40, int64_t(1) << 40};
            },
            "weights[0] (id 10, 'embed'): element count overflows"},
        ManifestCase{"scale unknown",
                     [](ManifestT &m) {
                       m.weights[2]->scale = 77;
                       m.weights[2]->block_shape = {16};
                     },
                     "weights[2] (id 12, 'head'): scale refers to unknown "
                     "weight id 77"},
        ManifestCase{"scale shape",
                     [](ManifestT &m) {
                       // head [37, 16] in 8x8 blocks needs a [5, 2] scale;
                       // bias [16] is no such thing.
                       m.weights[2]->scale = 11;
                       m.weights[2]->block_shape = {8, 8};
                     },
                     "weights[2] (id 12, 'head'): scale 'bias' has rank 1, "
                     "expected 2"},
        ManifestCase{"block without scale",
                     [](ManifestT &m) { m.weights[2]->block_shape = {128}; },
                     "weights[2] (id 12, 'head'): has block_shape but no "
                     "scale"},
        ManifestCase{"input buffer",
                     [](ManifestT &m) { m.inputs[0]->buffer = 9; },
                     "inputs[0] ('tokens'): buffer refers to unknown buffer "
                     "id 9"},
        ManifestCase{"input dtype",
                     [](ManifestT &m) { m.inputs[0]->dtype = DType::I64; },
                     "inputs[0] ('tokens'): dtype i64 differs from buffer "
                     "'tokens' (i32)"},
        ManifestCase{"output shape",
                     [](ManifestT &m) { m.outputs[0]->shape[1] = 36; },
                     "outputs[0] ('logits'): shape [T, 36] does not match "
                     "buffer 'logits' (elements_per_token 37)"},
        ManifestCase{"token dim not first",
                     [](ManifestT &m) {
                       m.outputs[0]->shape = {37, -1};
                     },
                     "outputs[0] ('logits'): shape [37, T] has dimension 1 = "
                     "-1 (only dimension 0 may be -1, the tokens)"},
        ManifestCase{"step buffer",
                     [](ManifestT &m) {
                       m.steps[1]->args[2] = Argument(ArgumentKind::BUFFER, 40);
                     },
                     "steps[1] ('moec_test_add'): argument 2 refers to "
                     "unknown buffer id 40"},
        ManifestCase{"step weight",
                     [](ManifestT &m) {
                       m.steps[2]->args[1] = Argument(ArgumentKind::WEIGHT, 3);
                     },
                     "steps[2] ('moec_test_logits'): argument 1 refers to "
                     "unknown weight id 3"},
        ManifestCase{"step empty argument",
                     [](ManifestT &m) { m.steps[0]->args.emplace_back(); },
                     "steps[0] ('moec_test_embed'): argument 3 is neither a "
                     "buffer, a weight nor a KV cache tensor"},
        ManifestCase{"step kernel",
                     [](ManifestT &m) { m.steps[0]->kernel = "rm -rf\n"; },
                     "steps[0] ('rm -rf\\x0a'): kernel is not a C identifier"},
        ManifestCase{"unknown target",
                     [](ManifestT &m) { m.targets.push_back("tpu"); },
                     "targets[1] ('tpu'): not 'cpu' or 'sm_<NN>[a]'"},
        ManifestCase{"gpu target without code",
                     [](ManifestT &m) { m.targets.push_back("sm_89"); },
                     "targets[1] ('sm_89'): the file has neither "
                     "'kernels.cu' nor 'cubin.sm_89'"},
        ManifestCase{
            "precision",
            [](ManifestT &m) { m.precision[0]->precision = Precision(9); },
            "precision[0] ('dense_matmul'): needs an op_class and a "
            "known precision"}),
    [](const ::testing::TestParamInfo<ManifestCase> &info) {
      std::string name;
      for (const char *p = info.param.what; *p; ++p)
        name += std::isalnum(static_cast<unsigned char>(*p)) ? *p : '_';
      return name;
    });

// Embedded checkpoint files (`file.<name>`, optional kind 6) and the
// `generation` table round trip; the summary shows both.
TEST(ArtifactTest, EmbeddedFilesAndGenerationRoundTrip) {
  TempDir dir;
  std::string path = dir.file("gen.moea");
  TestModel model = TestModel::random(30);
  const std::string generation = R"({"eos_token_id": [1, 2]})";
  const std::string tokenizer(100000, 't');
  model.extraSections.emplace_back(
      SectionSpec::forKind(SectionKind::kEmbeddedFile,
                           "file.generation_config.json"),
      generation);
  model.extraSections.emplace_back(
      SectionSpec::forKind(SectionKind::kEmbeddedFile, "file.tokenizer.json"),
      tokenizer);
  Status written = model.write(path, fakeSo(), [](manifest::ManifestT &m) {
    m.generation = std::make_unique<manifest::GenerationT>();
    m.generation->eos_token_ids = {1, 2};
    m.generation->bos_token_id = 0;
    m.generation->temperature = 0.5;
    m.generation->top_k = 4;
  });
  ASSERT_TRUE(written.isOk()) << written.toString();
  auto a = Artifact::open(path);
  ASSERT_TRUE(a.isOk()) << a.status().toString();
  EXPECT_EQ(
      (*a)->embeddedFileNames(),
      (std::vector<std::string>{"generation_config.json", "tokenizer.json"}));
  ByteSpan file = (*a)->embeddedFile("tokenizer.json");
  ASSERT_NE(file.data, nullptr);
  EXPECT_EQ(std::string(reinterpret_cast<const char *>(file.data), file.size),
            tokenizer);
  EXPECT_EQ((*a)->embeddedFile("tokenizer_config.json").data, nullptr);
  const SectionInfo *section = (*a)->findSection("file.tokenizer.json");
  ASSERT_NE(section, nullptr);
  EXPECT_TRUE(section->known);
  EXPECT_FALSE(section->required); // an older runtime skips it
  const manifest::Generation *g = (*a)->generation();
  ASSERT_NE(g, nullptr);
  EXPECT_EQ(std::vector<int64_t>(g->eos_token_ids()->begin(),
                                 g->eos_token_ids()->end()),
            (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(g->bos_token_id(), 0);
  EXPECT_FALSE(g->pad_token_id().has_value());
  EXPECT_EQ(g->temperature(), 0.5);
  EXPECT_EQ(g->top_k(), 4);
  EXPECT_FALSE(g->top_p().has_value());
  std::string summary = (*a)->summary();
  EXPECT_NE(summary.find("generation: eos_token_ids [1, 2], bos_token_id 0, "
                         "temperature 0.5, top_k 4\n"),
            std::string::npos)
      << summary;
  EXPECT_NE(summary.find("files:     generation_config.json (24 B), "
                         "tokenizer.json (97.7 KiB)\n"),
            std::string::npos)
      << summary;

  // A file without the table has none.
  std::string plain = dir.file("plain.moea");
  ASSERT_TRUE(TestModel::random(31).write(plain, fakeSo()).isOk());
  auto b = Artifact::open(plain);
  ASSERT_TRUE(b.isOk());
  EXPECT_EQ((*b)->generation(), nullptr);
  EXPECT_TRUE((*b)->embeddedFileNames().empty());
}

TEST(ArtifactTest, EmbeddedFileSectionNames) {
  EXPECT_EQ(checkSectionName(uint32_t(SectionKind::kEmbeddedFile),
                             "file.tokenizer.json"),
            "");
  EXPECT_EQ(checkSectionName(uint32_t(SectionKind::kEmbeddedFile), "file."),
            "an embedded file's section must be named 'file.<name>'");
  EXPECT_EQ(checkSectionName(uint32_t(SectionKind::kEmbeddedFile), "tok.json"),
            "an embedded file's section must be named 'file.<name>'");
  // An unknown kind may not take an embedded file's name.
  EXPECT_EQ(checkSectionName(99, "file.x"),
            "the name 'file.x' is reserved for kind 6 (file)");
}

// Token ids in the `generation` table lie in the vocabulary of input
// `tokens`; the sampling defaults in their ranges.
TEST(ManifestTest, GenerationFactsAreChecked) {
  ManifestContext context;
  context.sectionNames = {"manifest", "cpu.so", "weights"};
  context.weightsSectionSize = 4800;
  auto check = [&](const std::function<void(manifest::GenerationT &)> &edit) {
    manifest::ManifestT m = TestModel::random(32).manifest();
    m.generation = std::make_unique<manifest::GenerationT>();
    edit(*m.generation);
    StatusOr<ManifestIndex> index = verifyManifest(m, context);
    return index.isOk() ? std::string() : index.status().message();
  };
  EXPECT_EQ(check([](manifest::GenerationT &g) {
              g.eos_token_ids = {0, 36};
              g.pad_token_id = 36;
              g.top_p = 1;
            }),
            "");
  EXPECT_EQ(
      check([](manifest::GenerationT &g) {
        g.eos_token_ids = {1, 37};
      }),
      "generation: eos_token_ids[1] 37 is not in [0, 37) (the vocabulary of "
      "input 'tokens')");
  EXPECT_EQ(check([](manifest::GenerationT &g) { g.bos_token_id = -1; }),
            "generation: bos_token_id -1 is not in [0, 37) (the vocabulary of "
            "input 'tokens')");
  EXPECT_EQ(check([](manifest::GenerationT &g) { g.pad_token_id = 100; }),
            "generation: pad_token_id 100 is not in [0, 37) (the vocabulary "
            "of input 'tokens')");
  EXPECT_EQ(check([](manifest::GenerationT &g) { g.temperature = -1; }),
            "generation: temperature -1 is not finite and >= 0");
  EXPECT_EQ(check([](manifest::GenerationT &g) { g.top_k = -2; }),
            "generation: top_k -2 is not >= 0");
  EXPECT_EQ(check([](manifest::GenerationT &g) { g.top_p = 0; }),
            "generation: top_p 0 is not in (0, 1]");
  EXPECT_EQ(check([](manifest::GenerationT &g) { g.repetition_penalty = 0; }),
            "generation: repetition_penalty 0 is not finite and > 0");
}

TEST(ManifestTest, WeightsWithoutWeightsSection) {
  manifest::ManifestT m = TestModel::random(6).manifest();
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
    manifest::ManifestT m = TestModel::random(8).manifest();
    for (int i = 0; i < count; ++i) {
      auto o = std::make_unique<manifest::CpuObjectT>();
      o->section = i ? "cpu.so.x86-64-v4" : "cpu.so.x86-64-v2";
      o->cpu = i ? "x86-64-v4" : "x86-64-v2";
      o->features = {"sse4.2", i ? "avx512f" : "popcnt"};
      m.cpu_objects.push_back(std::move(o));
    }
    return m;
  };
  ManifestContext context;
  context.sectionNames = {"manifest", "cpu.so.x86-64-v2", "cpu.so.x86-64-v4",
                          "weights"};
  context.weightsSectionSize = 4800;
  PackedManifest good(withObjects(2));
  auto index = verifyManifest(*good, context);
  ASSERT_TRUE(index.isOk()) << index.status().toString();
  std::vector<CpuCodeVariant> variants = getCpuCodeVariants(*good);
  ASSERT_EQ(variants.size(), 2u);
  EXPECT_EQ(variants[1].name, "cpu.so.x86-64-v4");
  EXPECT_EQ(variants[1].cpu, "x86-64-v4");
  EXPECT_EQ(variants[1].features,
            (std::vector<std::string>{"sse4.2", "avx512f"}));
  EXPECT_TRUE(
      getCpuCodeVariants(*PackedManifest(TestModel::random(8).manifest()))
          .empty());

  struct Case {
    std::function<void(manifest::ManifestT &)> edit;
    const char *message;
  };
  const Case cases[] = {
      {[](manifest::ManifestT &m) { m.targets.clear(); },
       "cpu_objects: listed, but the targets do not include 'cpu'"},
      {[](manifest::ManifestT &m) { m.cpu_objects[1]->section = "cpu.so"; },
       "cpu_objects[1] ('cpu.so'): the section is not named "
       "'cpu.so.<variant>' (at most 31 characters of [A-Za-z0-9._-])"},
      {[](manifest::ManifestT &m) {
         m.cpu_objects[1]->section = "cpu.so.a-variant-name-far-too-long";
       },
       "cpu_objects[1] ('cpu.so.a-variant-name-far-too-long'): the section "
       "is not named 'cpu.so.<variant>' (at most 31 characters of "
       "[A-Za-z0-9._-])"},
      {[](manifest::ManifestT &m) { m.cpu_objects[1]->section = "weights"; },
       "cpu_objects[1] ('weights'): the section is not named "
       "'cpu.so.<variant>' (at most 31 characters of [A-Za-z0-9._-])"},
      {[](manifest::ManifestT &m) {
         m.cpu_objects[1]->section = "cpu.so.x86-64-v2";
       },
       "cpu_objects[1] ('cpu.so.x86-64-v2'): listed twice"},
      {[](manifest::ManifestT &m) {
         m.cpu_objects[1]->section = "cpu.so.x86-64-v3";
       },
       "cpu_objects[1] ('cpu.so.x86-64-v3'): the file has no such section"},
      {[](manifest::ManifestT &m) { m.cpu_objects[0]->cpu = ""; },
       "cpu_objects[0] ('cpu.so.x86-64-v2'): cpu '' is not 1 to 64 "
       "characters of [A-Za-z0-9._-]"},
      {[](manifest::ManifestT &m) { m.cpu_objects[0]->cpu = "x86 64\n"; },
       "cpu_objects[0] ('cpu.so.x86-64-v2'): cpu 'x86 64\\x0a' is not 1 to 64 "
       "characters of [A-Za-z0-9._-]"},
      {[](manifest::ManifestT &m) {
         m.cpu_objects[1]->features.push_back("avx1024");
       },
       "cpu_objects[1] ('cpu.so.x86-64-v4'): feature 'avx1024' is not one "
       "this runtime can detect"},
      {[](manifest::ManifestT &m) {
         m.cpu_objects[1]->features.push_back("sse4.2");
       },
       "cpu_objects[1] ('cpu.so.x86-64-v4'): feature 'sse4.2' is listed "
       "twice"},
  };
  for (const Case &c : cases) {
    manifest::ManifestT m = withObjects(2);
    c.edit(m);
    auto bad = verifyManifest(m, context);
    ASSERT_FALSE(bad.isOk()) << c.message;
    EXPECT_EQ(bad.status().code(), StatusCode::kCorrupt);
    EXPECT_EQ(bad.status().message(), c.message);
  }
}

TEST(ManifestTest, MisalignedEightByteVectorIsRefused) {
  // FlatBuffers' verifier checks only that a vector's length is 4-byte
  // aligned (google/flatbuffers#8397). Moving `steps[0].params` = {1, 7} 4
  // bytes on makes a vector that it accepts: length 1 (the low half of 1)
  // and one int64 (the high half of 1, the low half of 7), 4 bytes off.
  manifest::ManifestT m = TestModel::random(8).manifest();
  m.steps[0]->params = {1, 7};
  std::vector<uint8_t> packed = packManifest(m);
  std::vector<uint64_t> storage((packed.size() + 7) / 8); // 8-byte aligned
  auto *bytes = reinterpret_cast<uint8_t *>(storage.data());
  std::memcpy(bytes, packed.data(), packed.size());
  ASSERT_TRUE(readManifest(bytes, packed.size()).isOk());
  const manifest::Step *step = manifest::GetManifest(bytes)->steps()->Get(0);
  ASSERT_EQ(uintptr_t(step->params()->Data()) % 8, 0u);
  uint64_t dataOffset = uint64_t(step->params()->Data() - bytes);
  // The step's field is the one uoffset that leads to the vector's length.
  std::vector<uint64_t> fields;
  for (uint64_t at = 0; at + 4 <= packed.size(); at += 4)
    if (at + loadLE<uint32_t>(bytes + at) == dataOffset - 4)
      fields.push_back(at);
  ASSERT_EQ(fields.size(), 1u);
  storeLE<uint32_t>(bytes + fields[0], loadLE<uint32_t>(bytes + fields[0]) + 4);

  auto read = readManifest(bytes, packed.size());
  ASSERT_FALSE(read.isOk());
  EXPECT_EQ(read.status().code(), StatusCode::kCorrupt);
  EXPECT_EQ(read.status().message(),
            strCat("not a valid FlatBuffers Manifest: steps[0].params: its "
                   "8-byte elements start at offset ",
                   dataOffset + 4, ", not a multiple of 8"));
}

/// Adds to `m` a [300, 200] FP8 weight (id 20, 'w_fp8') with blocks of
/// [128, `innerBlock`] and a [3, 2] f32 scale (id 21), laid out after the
/// test model's weights; returns both.
std::pair<WeightT *, WeightT *> addBlockScaledWeight(manifest::ManifestT &m,
                                                     int64_t innerBlock) {
  auto weight = std::make_unique<WeightT>();
  WeightT *w = weight.get();
  w->id = 20;
  w->name = "w_fp8";
  w->dtype = DType::F8E4M3FN;
  w->shape = {300, 200};
  w->offset = 4864;
  w->bytes = 60000;
  w->scale = 21;
  w->block_shape = {128, innerBlock};
  m.weights.push_back(std::move(weight));
  auto scale = std::make_unique<WeightT>();
  WeightT *s = scale.get();
  s->id = 21;
  s->name = "w_fp8.scale";
  s->dtype = DType::F32;
  s->shape = {3, 2};
  s->offset = 64896;
  s->bytes = 24;
  m.weights.push_back(std::move(scale));
  return {w, s};
}

/// The file around `addBlockScaledWeight`'s manifest.
ManifestContext blockScaledContext() {
  ManifestContext context;
  context.sectionNames = {"manifest", "cpu.so", "weights"};
  context.weightsSectionSize = 64920;
  return context;
}

TEST(ManifestTest, BlockScaledWeightIsAccepted) {
  // A [300, 200] FP8 weight with 128x128 blocks needs a [3, 2] f32 scale.
  manifest::ManifestT m = TestModel::random(7).manifest();
  auto [w, s] = addBlockScaledWeight(m, 128);
  ManifestContext context = blockScaledContext();
  auto index = verifyManifest(m, context);
  EXPECT_TRUE(index.isOk()) << index.status().toString();
  s->shape[1] = 1;
  s->bytes = 12;
  index = verifyManifest(m, context);
  EXPECT_EQ(index.status().message(),
            "weights[3] (id 20, 'w_fp8'): scale 'w_fp8.scale' has shape [3, "
            "1] but dimension 1 should be 2");
}

TEST(ManifestTest, BlockShapeNearInt64MaxIsOneBlockWithoutOverflow) {
  // ceil(200 / block) for a block of 2^63 - 1 is 1; computing it as
  // (200 + block - 1) / block overflows int64 (UBSan: signed overflow) and,
  // wrapped, gives 0. The scale must then be [3, 1], and a [3, 2] scale is
  // refused naming the dimension.
  manifest::ManifestT m = TestModel::random(7).manifest();
  auto [w, s] = addBlockScaledWeight(m, INT64_MAX);
  ManifestContext context = blockScaledContext();
  auto index = verifyManifest(m, context);
  ASSERT_FALSE(index.isOk());
  EXPECT_EQ(index.status().code(), StatusCode::kCorrupt);
  EXPECT_EQ(index.status().message(),
            "weights[3] (id 20, 'w_fp8'): scale 'w_fp8.scale' has shape [3, "
            "2] but dimension 1 should be 1");
  s->shape[1] = 1;
  s->bytes = 12;
  index = verifyManifest(m, context);
  EXPECT_TRUE(index.isOk()) << index.status().toString();
  // Both dimensions in one huge block: a [1, 1] scale.
  w->block_shape[0] = INT64_MAX - 1;
  index = verifyManifest(m, context);
  EXPECT_EQ(index.status().message(),
            "weights[3] (id 20, 'w_fp8'): scale 'w_fp8.scale' has shape [3, "
            "1] but dimension 0 should be 1");
}

//===----------------------------------------------------------------------===//
// Verification levels: weights are verified per block, on use
//===----------------------------------------------------------------------===//

/// Writes an artifact at `path` whose weights section is `bytes` bytes of
/// `streamBytes(seed)`, except `[holeBegin, holeEnd)`, which is streamed as
/// zeros through `ChunkSink::zeros` (a hole in the file).
static Status writeWeightsArtifact(const std::string &path, uint64_t bytes,
                                   uint64_t seed, uint64_t holeBegin = 0,
                                   uint64_t holeEnd = 0) {
  MOEC_ASSIGN_OR_RETURN(std::unique_ptr<ArtifactWriter> writer,
                        ArtifactWriter::create(path));
  manifest::ManifestT m = TestModel::random(9).manifest();
  m.targets.clear();
  m.steps.clear();
  m.weights.clear();
  // One f32 weight over the whole section.
  auto w = std::make_unique<manifest::WeightT>();
  w->id = 1;
  w->name = "everything";
  w->dtype = manifest::DType::U8;
  w->shape = {int64_t(bytes)};
  w->bytes = bytes;
  m.weights.push_back(std::move(w));
  MOEC_RETURN_IF_ERROR(writer->addManifest(m));
  MOEC_RETURN_IF_ERROR(writer->addStreamedSection(
      SectionSpec::forKind(SectionKind::kWeights),
      [&](const ArtifactWriter::ChunkSink &sink) -> Status {
        std::vector<uint8_t> chunk(uint64_t(1) << 20);
        for (uint64_t pos = 0; pos < bytes;) {
          if (pos >= holeBegin && pos < holeEnd) {
            MOEC_RETURN_IF_ERROR(sink.zeros(holeEnd - pos));
            pos = holeEnd;
            continue;
          }
          uint64_t limit = pos < holeBegin ? std::min(holeBegin, bytes) : bytes;
          size_t n = size_t(std::min<uint64_t>(chunk.size(), limit - pos));
          streamBytes(seed, pos, chunk.data(), n);
          MOEC_RETURN_IF_ERROR(sink(chunk.data(), n));
          pos += n;
        }
        return Status::ok();
      }));
  return writer->commit();
}

/// Pages of `[data, data + size)` resident in memory (mincore), for a
/// page-aligned `data`.
static uint64_t residentPages(const uint8_t *data, uint64_t size) {
  const uint64_t page = uint64_t(sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> flags((size + page - 1) / page);
  if (mincore(const_cast<uint8_t *>(data), size, flags.data()) != 0)
    return ~uint64_t(0);
  uint64_t count = 0;
  for (unsigned char f : flags)
    count += f & 1;
  return count;
}

TEST(VerifyLevelTest, FlippedWeightIsFoundOnUseNotAtOpen) {
  TempDir dir;
  std::string path = dir.file("w.moea");
  // Three blocks: 16 MiB, 16 MiB, 1 MiB + 5.
  const uint64_t kBytes = (uint64_t(33) << 20) + 5;
  ASSERT_TRUE(writeWeightsArtifact(path, kBytes, 7).isOk());
  std::vector<uint8_t> bytes = readFile(path);
  uint64_t weightsAt = 0;
  {
    auto a = Artifact::open(path);
    ASSERT_TRUE(a.isOk()) << a.status().toString();
    weightsAt = (*a)->findSection("weights")->offset;
    EXPECT_EQ((*a)->weightsBlockCount(), 3u);
    EXPECT_EQ((*a)->weightsBlocksVerified(), 0u);
    EXPECT_TRUE((*a)->verifyWeight(1).isOk());
    EXPECT_EQ((*a)->weightsBlocksVerified(), 3u);
  }
  // Flip one byte of block 1.
  const uint64_t flippedAt = (uint64_t(20) << 20) + 3;
  bytes[weightsAt + flippedAt] ^= 0x20;
  ASSERT_TRUE(writeFile(path, bytes));
  Sha256Digest actual =
      Sha256::hash(bytes.data() + weightsAt + (16u << 20), size_t(16) << 20);

  auto a = Artifact::open(path);
  ASSERT_TRUE(a.isOk()) << "the default open reads no weight: "
                        << a.status().toString();
  const Artifact &art = **a;
  Sha256Digest expected =
      fromHash(*art.findSection("weights")->digest->blocks()->Get(1));
  // Blocks 0 and 2 are fine; a range that touches block 1 is not, every
  // time it is asked, and block 1 stays unverified.
  EXPECT_TRUE(art.verifyWeights(0, 16u << 20).isOk());
  EXPECT_TRUE(art.verifyWeights(32u << 20, (1u << 20) + 5).isOk());
  EXPECT_EQ(art.weightsBlocksVerified(), 2u);
  std::string message = path +
                        ": section 'weights': block 1 (bytes [16777216, "
                        "33554432)): SHA-256 mismatch (expected " +
                        toHex(expected) + ", computed " + toHex(actual) +
                        "): the weights are corrupted";
  for (int round = 0; round < 2; ++round) {
    Status s = art.verifyWeights((16u << 20) - 1, 2);
    EXPECT_EQ(s.code(), StatusCode::kCorrupt);
    EXPECT_EQ(s.message(), message);
  }
  EXPECT_EQ(art.weightsBlocksVerified(), 2u);
  Status w = art.verifyWeight(1);
  EXPECT_EQ(w.message(), path + ": weight 'everything' (id 1): " +
                             message.substr(path.size() + 2));
  // Ranges outside the section are the caller's mistake.
  EXPECT_EQ(art.verifyWeights(kBytes, 1).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(art.verifyWeights(1, ~uint64_t(0)).code(),
            StatusCode::kInvalidArgument);
  EXPECT_TRUE(art.verifyWeights(kBytes, 0).isOk());

  // The full open reads every block and reports the same one.
  auto full = Artifact::open(path, OpenOptions{VerifyLevel::kFull});
  ASSERT_FALSE(full.isOk());
  EXPECT_EQ(full.status().message(), message);
}

TEST(VerifyLevelTest, ConcurrentVerificationHashesEachBlockOnce) {
  TempDir dir;
  std::string path = dir.file("w.moea");
  const uint64_t kBytes = uint64_t(80) << 20; // 5 blocks
  ASSERT_TRUE(writeWeightsArtifact(path, kBytes, 11).isOk());
  auto a = Artifact::open(path);
  ASSERT_TRUE(a.isOk()) << a.status().toString();
  const Artifact &art = **a;
  std::vector<std::thread> threads;
  std::vector<Status> results(8);
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      // Overlapping ranges: all of it, and single blocks.
      results[size_t(t)] =
          t % 2 ? art.verifyWeights(0, kBytes)
                : art.verifyWeights(uint64_t(t / 2) << 24, uint64_t(1) << 24);
    });
  for (std::thread &t : threads)
    t.join();
  for (const Status &s : results)
    EXPECT_TRUE(s.isOk()) << s.toString();
  EXPECT_EQ(art.weightsBlocksVerified(), 5u);
}

TEST(VerifyLevelTest, MultiGigabyteArtifactOpensWithoutReadingWeights) {
  // 4 GiB + 1 MiB of weights, all but the first and last MiB a hole:
  // written in moments, and a default open must not fault in any weight
  // page. mincore on the mapping counts the pages the open made resident
  // (hole pages become resident only when read).
  TempDir dir;
  std::string path = dir.file("big.moea");
  const uint64_t kBytes = (uint64_t(4) << 30) + (uint64_t(1) << 20);
  auto writeStart = std::chrono::steady_clock::now();
  ASSERT_TRUE(writeWeightsArtifact(path, kBytes, 3, uint64_t(1) << 20,
                                   kBytes - (uint64_t(1) << 20))
                  .isOk());
  double writeSeconds = std::chrono::duration<double>(
                            std::chrono::steady_clock::now() - writeStart)
                            .count();
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_GT(uint64_t(st.st_size), kBytes);
  EXPECT_LT(uint64_t(st.st_blocks) * 512, uint64_t(64) << 20)
      << "the zeros were not skipped";
  EXPECT_LT(writeSeconds, 10.0);
  // Out of the page cache, as after a reboot or a copy from elsewhere.
  {
    int fd = ::open(path.c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    EXPECT_EQ(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
    ::close(fd);
  }

  auto openStart = std::chrono::steady_clock::now();
  auto a = Artifact::open(path);
  double openMs = std::chrono::duration<double, std::milli>(
                      std::chrono::steady_clock::now() - openStart)
                      .count();
  ASSERT_TRUE(a.isOk()) << a.status().toString();
  ByteSpan weights = (*a)->sectionData(*(*a)->findSection("weights"));
  uint64_t pages = weights.size / uint64_t(sysconf(_SC_PAGESIZE));
  uint64_t resident = residentPages(weights.data, weights.size);
  std::cout << "open of a " << (st.st_size >> 20) << " MiB artifact: " << openMs
            << " ms, " << resident << " of " << pages
            << " weight pages resident\n";
  // 4 GiB would be over a million; the open reads none (not even by the
  // kernel's read-around: Artifact::open advises against it).
  EXPECT_LT(resident, uint64_t(16)) << "the open read weight bytes";
  EXPECT_LT(openMs, 2000.0);
  EXPECT_EQ((*a)->weightsBlocksVerified(), 0u);

  // Using one weight range verifies (and reads) only its blocks: the
  // sixth block of the hole.
  uint64_t before = residentPages(weights.data, weights.size);
  ASSERT_TRUE((*a)->verifyWeights(uint64_t(5) << 24, 4096).isOk());
  EXPECT_EQ((*a)->weightsBlocksVerified(), 1u);
  uint64_t after = residentPages(weights.data, weights.size);
  EXPECT_GE(after - before, uint64_t(4096)) << "block 5 was not read";
  // Plus at most the read-ahead window (read_ahead_kb) past it.
  EXPECT_LT(after - before, uint64_t(4096) * 2);
}

TEST(VerifyLevelTest, FullOpenReadsEveryWeightBlock) {
  TempDir dir;
  std::string path = dir.file("full.moea");
  const uint64_t kBytes = uint64_t(256) << 20;
  ASSERT_TRUE(
      writeWeightsArtifact(path, kBytes, 5, uint64_t(1) << 20, kBytes).isOk());
  auto a = Artifact::open(path, OpenOptions{VerifyLevel::kFull});
  ASSERT_TRUE(a.isOk()) << a.status().toString();
  ByteSpan weights = (*a)->sectionData(*(*a)->findSection("weights"));
  EXPECT_EQ((*a)->weightsBlocksVerified(), 16u);
  EXPECT_EQ(residentPages(weights.data, weights.size),
            weights.size / uint64_t(sysconf(_SC_PAGESIZE)));
}

TEST(VerifyLevelTest, WriterRefusesBadBlockSizes) {
  TempDir dir;
  auto expectRefused = [&](SectionSpec spec, const std::string &fragment) {
    auto writer = ArtifactWriter::create(dir.file("m.moea"));
    ASSERT_TRUE(writer.isOk());
    uint8_t byte = 0;
    Status s = (*writer)->addSection(spec, &byte, 1);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find(fragment), std::string::npos) << s.message();
  };
  SectionSpec weights = SectionSpec::forKind(SectionKind::kWeights);
  weights.blockSize = 3 << 20;
  expectRefused(weights, "block size 3145728 is not a power of two in [4096, "
                         "1073741824]");
  weights.blockSize = 0;
  expectRefused(weights, "block size 0 is not a power of two");
  SectionSpec so = SectionSpec::forKind(SectionKind::kCpuSharedObject);
  so.blockSize = 1 << 20;
  expectRefused(so, "only the weights section is hashed in blocks");
  expectRefused(SectionSpec::forKind(SectionKind::kManifest),
                "the manifest is added with addManifest");
}

} // namespace
