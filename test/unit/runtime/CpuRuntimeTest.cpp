//===- CpuRuntimeTest.cpp - CPU executor and C API end to end ---*- C++ -*-===//
//
// Artifacts carrying a real shared object (TestKernels.cpp, built by CMake)
// are loaded through memfd + dlopen and run; logits are compared with the
// host reference of TestModel. Also: load errors (missing symbols, a symbol
// from libc, a non-ELF cpu.so), input validation, two different models in
// one process, and the C API including its device handling and errors and
// its refusal of calls from two threads at once on one model.
//
//===----------------------------------------------------------------------===//

#include "TestModel.h"

#include "runtime/artifact/Artifact.h"
#include "runtime/capi/ModelTesting.h"
#include "runtime/capi/moec.h"
#include "runtime/cpu/CpuExecutor.h"
#include "runtime/support/CpuFeatures.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <random>
#include <thread>

using namespace moec::runtime;
using namespace moec::runtime::test;

namespace {

const std::vector<uint8_t> &kernelsSo() {
  static const std::vector<uint8_t> so = readFile(MOEC_TEST_KERNELS_SO);
  return so;
}

const std::vector<uint8_t> &kernels2So() {
  static const std::vector<uint8_t> so = readFile(MOEC_TEST_KERNELS2_SO);
  return so;
}

std::vector<int32_t> randomTokens(std::mt19937 &rng, size_t n, int64_t vocab) {
  std::vector<int32_t> tokens(n);
  for (int32_t &t : tokens)
    t = int32_t(rng() % uint32_t(vocab));
  return tokens;
}

// Max |a - b| / (1 + |b|): the logits are sums of 16 products of values in
// [-1, 1), so 1e-5 leaves room only for reassociation.
void expectClose(const float *got, const std::vector<float> &want,
                 const std::string &context) {
  double worst = 0;
  for (size_t i = 0; i < want.size(); ++i)
    worst = std::max(worst, std::abs(double(got[i]) - want[i]) /
                                (1.0 + std::abs(double(want[i]))));
  EXPECT_LE(worst, 1e-5) << context;
}

class CpuRuntimeTest : public ::testing::Test {
protected:
  void SetUp() override {
    ASSERT_GT(kernelsSo().size(), 1000u) << MOEC_TEST_KERNELS_SO;
    model = TestModel::random(21);
  }

  StatusOr<std::unique_ptr<CpuExecutor>>
  load(const std::string &name, const std::vector<uint8_t> &so,
       const std::function<void(manifest::ManifestT &)> &edit = {}) {
    std::string path = dir.file(name);
    MOEC_RETURN_IF_ERROR(model.write(path, so, edit));
    MOEC_ASSIGN_OR_RETURN(std::unique_ptr<Artifact> artifact,
                          Artifact::open(path));
    return CpuExecutor::create(std::move(artifact));
  }

  // Runs `tokens` and checks the logits against the reference.
  void runAndCheck(CpuExecutor &ex, const std::vector<int32_t> &tokens,
                   float biasScale) {
    int64_t n = int64_t(tokens.size());
    Status s = ex.setInput(0, tokens.data(), tokens.size() * 4, n);
    ASSERT_TRUE(s.isOk()) << s.toString();
    s = ex.run(n);
    ASSERT_TRUE(s.isOk()) << s.toString();
    auto out = ex.tensor(/*output=*/true, 0, n);
    ASSERT_TRUE(out.isOk()) << out.status().toString();
    EXPECT_EQ(out->shape, (std::vector<int64_t>{n, model.vocab}));
    EXPECT_EQ(out->bytes, uint64_t(n * model.vocab * 4));
    expectClose(reinterpret_cast<const float *>(out->data),
                model.reference(tokens, biasScale), "T = " + std::to_string(n));
  }

  TempDir dir;
  TestModel model;
};

TEST_F(CpuRuntimeTest, RunsAllStepsForEveryTokenCount) {
  auto ex = load("m.moea", kernelsSo());
  ASSERT_TRUE(ex.isOk()) << ex.status().toString();
  EXPECT_EQ((*ex)->maxTokens(), 8);
  std::mt19937 rng(5);
  for (int64_t n = 1; n <= 8; ++n)
    runAndCheck(**ex, randomTokens(rng, size_t(n), model.vocab), 1.0f);
  // The largest and smallest ids, repeated.
  runAndCheck(**ex, {0, 36, 36, 0}, 1.0f);
}

TEST_F(CpuRuntimeTest, TwoModelsInOneProcessKeepTheirOwnKernels) {
  // Regression: glibc matches loaded libraries by path, so a memfd number
  // reused by the second load must not return the first library.
  auto first = load("a.moea", kernelsSo());
  ASSERT_TRUE(first.isOk()) << first.status().toString();
  auto second = load("b.moea", kernels2So());
  ASSERT_TRUE(second.isOk()) << second.status().toString();
  std::vector<int32_t> tokens = {3, 1, 4, 1, 5};
  runAndCheck(**first, tokens, 1.0f);
  runAndCheck(**second, tokens, 2.0f);
  // And after the first is gone, a third load gets its own library again.
  first->reset();
  auto third = load("c.moea", kernelsSo());
  ASSERT_TRUE(third.isOk());
  runAndCheck(**third, tokens, 1.0f);
  runAndCheck(**second, tokens, 2.0f);
}

TEST_F(CpuRuntimeTest, MissingSymbolIsALoadErrorNamingIt) {
  auto ex = load("m.moea", kernelsSo(), [](manifest::ManifestT &m) {
    m.steps[1]->kernel = "moec_test_missing";
  });
  ASSERT_FALSE(ex.isOk());
  EXPECT_EQ(ex.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(ex.status().message(),
            dir.file("m.moea") +
                ": step 1: cpu.so: kernel symbol 'moec_test_missing' is not "
                "exported");
}

TEST_F(CpuRuntimeTest, SymbolsOutsideTheLibraryAreRefused) {
  auto ex = load("m.moea", kernelsSo(),
                 [](manifest::ManifestT &m) { m.steps[0]->kernel = "free"; });
  ASSERT_FALSE(ex.isOk());
  EXPECT_NE(ex.status().message().find(
                "step 0: cpu.so: kernel symbol 'free' is not defined by this "
                "library"),
            std::string::npos)
      << ex.status().message();
}

TEST_F(CpuRuntimeTest, BrokenSharedObjectIsALoadError) {
  std::vector<uint8_t> notElf(4096, 0x90);
  auto ex = load("m.moea", notElf);
  ASSERT_FALSE(ex.isOk());
  EXPECT_EQ(ex.status().message(),
            dir.file("m.moea") + ": cpu.so: not an ELF shared object");
  std::vector<uint8_t> truncated(kernelsSo().begin(),
                                 kernelsSo().begin() + 200);
  ex = load("t.moea", truncated);
  ASSERT_FALSE(ex.isOk());
  EXPECT_NE(ex.status().message().find("cpu.so: dlopen failed: "),
            std::string::npos)
      << ex.status().message();
}

TEST_F(CpuRuntimeTest, InputsAreValidated) {
  auto ex = load("m.moea", kernelsSo());
  ASSERT_TRUE(ex.isOk());
  std::vector<int32_t> tokens = {1, 2, 37};
  Status s = (*ex)->setInput(0, tokens.data(), 12, 3);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "input 'tokens': element 2 is 37, outside [0, 37)");
  tokens[2] = -1;
  s = (*ex)->setInput(0, tokens.data(), 12, 3);
  EXPECT_EQ(s.message(), "input 'tokens': element 2 is -1, outside [0, 37)");
  s = (*ex)->setInput(0, tokens.data(), 8, 3);
  EXPECT_EQ(s.message(), "input 'tokens': got 8 bytes, expected 12 for 3 "
                         "tokens");
  for (int64_t n : {int64_t(0), int64_t(9), int64_t(-1)}) {
    s = (*ex)->run(n);
    EXPECT_EQ(s.message(), dir.file("m.moea") + ": token count " +
                               std::to_string(n) + " is not in [1, 8]");
  }
  EXPECT_FALSE((*ex)->tensor(true, 1, 1).isOk());
}

TEST_F(CpuRuntimeTest, PositionsInputIsFilledUnlessSet) {
  // A `positions` input in a region of its own, past the model's buffers, so
  // that no kernel writes over it and its contents stay visible after a run.
  int64_t maxTokens = model.maxTokens;
  auto ex = load("m.moea", kernelsSo(), [&](manifest::ManifestT &m) {
    auto b = std::make_unique<manifest::BufferT>();
    b->id = 4;
    b->name = "positions";
    b->dtype = manifest::DType::I32;
    setElementsPerToken(*b, 1);
    b->offset = m.arena_bytes;
    b->bytes = uint64_t(maxTokens) * 4;
    m.buffers.push_back(std::move(b));
    m.arena_bytes += 64;
    auto in = std::make_unique<manifest::TensorSpecT>();
    in->name = "positions";
    in->dtype = manifest::DType::I32;
    in->shape = {-1};
    in->buffer = 4;
    m.inputs.push_back(std::move(in));
  });
  ASSERT_TRUE(ex.isOk()) << ex.status().toString();
  auto positions = [&](int64_t n) {
    auto view = (*ex)->tensor(/*output=*/false, 1, n);
    const int32_t *data = reinterpret_cast<const int32_t *>(view->data);
    return std::vector<int32_t>(data, data + n);
  };
  std::vector<int32_t> tokens = {3, 1, 4, 1, 5};
  ASSERT_TRUE((*ex)->setInput(0, tokens.data(), 20, 5).isOk());
  ASSERT_TRUE((*ex)->run(5).isOk());
  EXPECT_EQ(positions(5), (std::vector<int32_t>{0, 1, 2, 3, 4}));
  // Set explicitly, they are used as given for that run only.
  std::vector<int32_t> given = {7, 9, 11};
  ASSERT_TRUE((*ex)->setInput(0, tokens.data(), 12, 3).isOk());
  ASSERT_TRUE((*ex)->setInput(1, given.data(), 12, 3).isOk());
  ASSERT_TRUE((*ex)->run(3).isOk());
  EXPECT_EQ(positions(3), given);
  ASSERT_TRUE((*ex)->setInput(0, tokens.data(), 8, 2).isOk());
  ASSERT_TRUE((*ex)->run(2).isOk());
  EXPECT_EQ(positions(3), (std::vector<int32_t>{0, 1, 11}));
  // The logits are still the model's.
  runAndCheck(**ex, tokens, 1.0f);
}

TEST_F(CpuRuntimeTest, StepsRunOneAtATimeAndTheArenaIsReadable) {
  auto ex = load("m.moea", kernelsSo());
  ASSERT_TRUE(ex.isOk()) << ex.status().toString();
  const Artifact &a = (*ex)->artifact();
  std::vector<int32_t> tokens = {3, 1, 4, 1, 5};
  ASSERT_TRUE((*ex)->setInput(0, tokens.data(), 20, 5).isOk());
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE((*ex)->runStep(i, 5).isOk()) << i;
  // Steps 0 .. n-1 alone are a run: the logits buffer holds the reference.
  const manifest::Buffer &logits = *a.findBuffer(3);
  std::vector<float> got(size_t(5 * model.vocab));
  ASSERT_TRUE(
      (*ex)->readArena(logits.offset(), got.size() * 4, got.data()).isOk());
  expectClose(got.data(), model.reference(tokens), "steps one by one");

  // Write y back changed and run only the last step: logits follow.
  const manifest::Buffer &y = *a.findBuffer(2);
  std::vector<float> ys(size_t(5 * model.hidden), 0.0f);
  ASSERT_TRUE((*ex)->writeArena(y.offset(), ys.size() * 4, ys.data()).isOk());
  ASSERT_TRUE((*ex)->runStep(2, 5).isOk());
  ASSERT_TRUE(
      (*ex)->readArena(logits.offset(), got.size() * 4, got.data()).isOk());
  EXPECT_EQ(got, std::vector<float>(got.size(), 0.0f));

  // Errors name what is wrong.
  uint64_t arena = a.manifest().arena_bytes();
  EXPECT_EQ((*ex)->runStep(3, 5).message(),
            dir.file("m.moea") + ": has 3 steps, no #3");
  EXPECT_EQ((*ex)->runStep(0, 9).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ((*ex)->readArena(arena - 4, 8, got.data()).message(),
            strCat(dir.file("m.moea"), ": arena range [", arena - 4,
                   ", +8) exceeds arena_bytes ", arena));
  EXPECT_EQ((*ex)->writeArena(0, 4, nullptr).code(),
            StatusCode::kInvalidArgument);
  EXPECT_TRUE((*ex)->readArena(arena, 0, nullptr).isOk());
}

TEST_F(CpuRuntimeTest, AbsurdArenaIsRefusedNotWrapped) {
  // Consistent as far as the manifest goes, but rounding 2^64 - 1 up to
  // the arena alignment would wrap to a tiny allocation.
  auto ex = load("m.moea", kernelsSo(),
                 [](manifest::ManifestT &m) { m.arena_bytes = ~uint64_t(0); });
  ASSERT_FALSE(ex.isOk());
  EXPECT_EQ(ex.status().code(), StatusCode::kOutOfMemory);
  EXPECT_EQ(ex.status().message(),
            dir.file("m.moea") + ": arena_bytes 18446744073709551615 exceeds "
                                 "the runtime's limit of 281474976710656");
}

TEST_F(CpuRuntimeTest, ArtifactWithoutCpuCodeIsUnavailable) {
  std::string path = dir.file("gpu-only.moea");
  auto writer = ArtifactWriter::create(path);
  ASSERT_TRUE(writer.isOk());
  manifest::ManifestT m = model.manifest();
  m.targets.clear();
  m.weights.clear();
  m.steps.clear();
  ASSERT_TRUE((*writer)->addManifest(m).isOk());
  ASSERT_TRUE((*writer)->commit().isOk());
  auto a = Artifact::open(path);
  ASSERT_TRUE(a.isOk()) << a.status().toString();
  auto ex = CpuExecutor::create(std::move(a).value());
  EXPECT_EQ(ex.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(ex.status().message(),
            path + ": has no code for the cpu target (no 'cpu.so' section)");
}

//===----------------------------------------------------------------------===//
// CPU code variants
//===----------------------------------------------------------------------===//

// Makes `model.write` add the test kernels as variant `x86-64-v2` and the
// kernels with the doubled bias as variant `x86-64-v4` (so that the logits
// show which one ran); `edit` lists them in `cpu_objects` with the features
// of their level.
void addVariants(TestModel &model, bool withV2) {
  auto section = [](const char *name, const std::vector<uint8_t> &bytes) {
    return std::make_pair(
        SectionSpec::forKind(SectionKind::kCpuSharedObject, name),
        std::string(bytes.begin(), bytes.end()));
  };
  if (withV2)
    model.extraSections.push_back(section("cpu.so.x86-64-v2", kernelsSo()));
  model.extraSections.push_back(section("cpu.so.x86-64-v4", kernels2So()));
}

void listVariants(manifest::ManifestT &m, bool withV2) {
  for (const char *level : {"x86-64-v2", "x86-64-v4"}) {
    if (!withV2 && std::string(level) == "x86-64-v2")
      continue;
    auto o = std::make_unique<manifest::CpuObjectT>();
    o->section = std::string("cpu.so.") + level;
    o->cpu = level;
    CpuFeatureSet features;
    ASSERT_TRUE(getCpuLevelFeatures(level, features));
    o->features = features.names();
    m.cpu_objects.push_back(std::move(o));
  }
}

TEST_F(CpuRuntimeTest, RunsTheBestVariantTheCpuHas) {
  CpuFeatureSet v4;
  ASSERT_TRUE(getCpuLevelFeatures("x86-64-v4", v4));
  bool hasV4 = detectCpuFeatures().containsAll(v4);
  addVariants(model, /*withV2=*/true);
  std::vector<int32_t> tokens = {3, 1, 4, 1, 5};
  {
    ScopedEnv env(kCpuFeaturesEnv, nullptr);
    auto ex = load("detected.moea", kernelsSo(),
                   [](manifest::ManifestT &m) { listVariants(m, true); });
    ASSERT_TRUE(ex.isOk()) << ex.status().toString();
    EXPECT_EQ((*ex)->cpuCode(),
              hasV4 ? "cpu.so.x86-64-v4" : "cpu.so.x86-64-v2");
    runAndCheck(**ex, tokens, hasV4 ? 2.0f : 1.0f);
  }
  {
    // Forced down, the same file runs its portable code.
    ScopedEnv env(kCpuFeaturesEnv, "x86-64-v2");
    auto ex = load("forced.moea", kernelsSo(),
                   [](manifest::ManifestT &m) { listVariants(m, true); });
    ASSERT_TRUE(ex.isOk()) << ex.status().toString();
    EXPECT_EQ((*ex)->cpuCode(), "cpu.so.x86-64-v2");
    runAndCheck(**ex, tokens, 1.0f);
  }
}

TEST_F(CpuRuntimeTest, NoFittingVariantIsUnavailableNamingTheFeatures) {
  addVariants(model, /*withV2=*/false);
  ScopedEnv env(kCpuFeaturesEnv, "x86-64-v3");
  auto ex = load("v4-only.moea", kernelsSo(),
                 [](manifest::ManifestT &m) { listVariants(m, false); });
  ASSERT_FALSE(ex.isOk());
  EXPECT_EQ(ex.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(ex.status().message(),
            dir.file("v4-only.moea") +
                ": no CPU code in the artifact runs on this host "
                "(MOEC_CPU_FEATURES=x86-64-v3), which lacks features the "
                "code needs: cpu.so.x86-64-v4 (x86-64-v4): avx512bw, "
                "avx512cd, avx512dq, avx512f, avx512vl");

  // The C API says the same, and "auto" does not hide it.
  moec_model *m = nullptr;
  EXPECT_EQ(moec_model_load(dir.file("v4-only.moea").c_str(), "auto", &m),
            MOEC_UNAVAILABLE);
  EXPECT_EQ(m, nullptr);
  EXPECT_NE(std::string(moec_last_error()).find("avx512f"), std::string::npos)
      << moec_last_error();

  ScopedEnv bad(kCpuFeaturesEnv, "avx-512");
  auto refused = load("v4-only.moea", kernelsSo(),
                      [](manifest::ManifestT &m) { listVariants(m, false); });
  ASSERT_FALSE(refused.isOk());
  EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(refused.status().message().rfind(
                "MOEC_CPU_FEATURES: unknown CPU feature 'avx-512'", 0),
            0u)
      << refused.status().message();
}

TEST_F(CpuRuntimeTest, CApiNamesTheCpuCodeThatRuns) {
  addVariants(model, /*withV2=*/true);
  std::string path = dir.file("variants.moea");
  ASSERT_TRUE(model
                  .write(path, kernelsSo(),
                         [](manifest::ManifestT &m) { listVariants(m, true); })
                  .isOk());
  ScopedEnv env(kCpuFeaturesEnv, "x86-64-v2,avx2");
  moec_model *m = nullptr;
  ASSERT_EQ(moec_model_load(path.c_str(), "cpu", &m), MOEC_OK)
      << moec_last_error();
  EXPECT_STREQ(moec_model_cpu_code(m), "cpu.so.x86-64-v2");
  moec_model_free(m);
  EXPECT_STREQ(moec_model_cpu_code(nullptr), "");

  // A file without `cpu_objects` runs its one `cpu.so`.
  std::string legacy = dir.file("legacy.moea");
  TestModel plain = TestModel::random(21);
  ASSERT_TRUE(plain.write(legacy, kernelsSo()).isOk());
  ASSERT_EQ(moec_model_load(legacy.c_str(), "cpu", &m), MOEC_OK)
      << moec_last_error();
  EXPECT_STREQ(moec_model_cpu_code(m), "cpu.so");
  moec_model_free(m);
}

//===----------------------------------------------------------------------===//
// C API
//===----------------------------------------------------------------------===//

TEST_F(CpuRuntimeTest, CApiLoadsRunsAndReturnsLogits) {
  std::string path = dir.file("m.moea");
  ASSERT_TRUE(model.write(path, kernelsSo()).isOk());
  for (const char *device :
       {"cpu", "auto", static_cast<const char *>(nullptr)}) {
    moec_model *m = nullptr;
    ASSERT_EQ(moec_model_load(path.c_str(), device, &m), MOEC_OK)
        << moec_last_error();
    EXPECT_STREQ(moec_model_device(m), "cpu");
    EXPECT_EQ(moec_model_max_tokens(m), 8);
    const float *logits = nullptr;
    int64_t rows = -1, cols = -1;
    EXPECT_EQ(moec_model_logits(m, &logits, &rows, &cols),
              MOEC_INVALID_ARGUMENT);
    EXPECT_STREQ(moec_last_error(),
                 "moec_model_logits: the model has not run successfully");
    std::vector<int32_t> tokens = {7, 0, 36, 12, 12, 5};
    ASSERT_EQ(moec_model_run(m, tokens.data(), int64_t(tokens.size())), MOEC_OK)
        << moec_last_error();
    ASSERT_EQ(moec_model_logits(m, &logits, &rows, &cols), MOEC_OK);
    EXPECT_EQ(rows, 6);
    EXPECT_EQ(cols, 37);
    expectClose(logits, model.reference(tokens), "C API");
    moec_model_free(m);
  }
  moec_model_free(nullptr);
}

// The embedded checkpoint files and the EOS ids, read through the C API.
TEST_F(CpuRuntimeTest, CApiReadsEosIdsAndEmbeddedFiles) {
  std::string path = dir.file("gen.moea");
  const std::string config = R"({"eos_token_id": [3, 36]})";
  model.extraSections.emplace_back(
      SectionSpec::forKind(SectionKind::kEmbeddedFile,
                           "file.generation_config.json"),
      config);
  ASSERT_TRUE(model
                  .write(path, kernelsSo(),
                         [](manifest::ManifestT &m) {
                           m.generation =
                               std::make_unique<manifest::GenerationT>();
                           m.generation->eos_token_ids = {3, 36};
                         })
                  .isOk());
  moec_model *m = nullptr;
  ASSERT_EQ(moec_model_load(path.c_str(), "cpu", &m), MOEC_OK)
      << moec_last_error();
  const int64_t *ids = nullptr;
  int64_t count = -1;
  ASSERT_EQ(moec_model_eos_ids(m, &ids, &count), MOEC_OK);
  ASSERT_EQ(count, 2);
  EXPECT_EQ(ids[0], 3);
  EXPECT_EQ(ids[1], 36);
  const void *data = nullptr;
  int64_t size = -1;
  ASSERT_EQ(moec_model_embedded_file(m, "generation_config.json", &data, &size),
            MOEC_OK);
  EXPECT_EQ(std::string(static_cast<const char *>(data), size_t(size)), config);
  EXPECT_EQ(moec_model_embedded_file(m, "tokenizer.json", &data, &size),
            MOEC_NOT_FOUND);
  EXPECT_EQ(std::string(moec_last_error()),
            path + ": no embedded file 'tokenizer.json'");
  EXPECT_EQ(moec_model_eos_ids(m, nullptr, &count), MOEC_INVALID_ARGUMENT);
  moec_model_free(m);

  // An artifact without generation facts has no EOS ids.
  std::string plainPath = dir.file("plain.moea");
  ASSERT_TRUE(TestModel::random(22).write(plainPath, kernelsSo()).isOk());
  ASSERT_EQ(moec_model_load(plainPath.c_str(), "cpu", &m), MOEC_OK);
  ASSERT_EQ(moec_model_eos_ids(m, &ids, &count), MOEC_OK);
  EXPECT_EQ(count, 0);
  EXPECT_EQ(ids, nullptr);
  moec_model_free(m);
}

TEST_F(CpuRuntimeTest, CApiReportsErrors) {
  std::string path = dir.file("m.moea");
  ASSERT_TRUE(model.write(path, kernelsSo()).isOk());
  moec_model *m = reinterpret_cast<moec_model *>(0x1);
  EXPECT_EQ(moec_model_load(path.c_str(), "cuda", &m), MOEC_UNAVAILABLE);
  EXPECT_EQ(m, nullptr);
  EXPECT_EQ(std::string(moec_last_error()),
            "device 'cuda' is unavailable: " + path +
                ": has no CUDA code (targets: cpu) (use --device cpu or auto)");
  EXPECT_EQ(moec_model_load(path.c_str(), "tpu", &m), MOEC_INVALID_ARGUMENT);
  EXPECT_STREQ(moec_last_error(),
               "unknown device 'tpu' (expected cpu, cuda or auto)");
  EXPECT_EQ(moec_model_load(dir.file("nope.moea").c_str(), "cpu", &m),
            MOEC_NOT_FOUND);
  EXPECT_EQ(moec_model_load(nullptr, "cpu", &m), MOEC_INVALID_ARGUMENT);
  EXPECT_EQ(moec_model_load(path.c_str(), "cpu", nullptr),
            MOEC_INVALID_ARGUMENT);

  std::vector<uint8_t> bytes = readFile(path);
  bytes[bytes.size() / 2] ^= 0x40;
  ASSERT_TRUE(writeFile(dir.file("bad.moea"), bytes));
  EXPECT_EQ(moec_model_load(dir.file("bad.moea").c_str(), "cpu", &m),
            MOEC_CORRUPT);
  EXPECT_NE(std::string(moec_last_error()).find("bad.moea: "),
            std::string::npos);
  EXPECT_STREQ(moec_status_string(MOEC_CORRUPT), "corrupt artifact");

  ASSERT_EQ(moec_model_load(path.c_str(), "cpu", &m), MOEC_OK);
  int32_t tokens[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  EXPECT_EQ(moec_model_run(m, tokens, 9), MOEC_INVALID_ARGUMENT);
  EXPECT_STREQ(moec_last_error(),
               "moec_model_run: token count 9 is not in [1, 8]");
  EXPECT_EQ(moec_model_run(m, tokens, 0), MOEC_INVALID_ARGUMENT);
  EXPECT_EQ(moec_model_run(m, nullptr, 2), MOEC_INVALID_ARGUMENT);
  tokens[0] = 100;
  EXPECT_EQ(moec_model_run(m, tokens, 2), MOEC_INVALID_ARGUMENT);
  EXPECT_STREQ(moec_last_error(),
               "input 'tokens': element 0 is 100, outside [0, 37)");

  // The last error is per thread.
  std::string other;
  std::thread([&] { other = moec_last_error(); }).join();
  EXPECT_EQ(other, "");
  moec_model_free(m);
}

TEST_F(CpuRuntimeTest, CApiTokenCallsRefuseModelsWithoutLogits) {
  std::string path = dir.file("m.moea");
  ASSERT_TRUE(model
                  .write(path, kernelsSo(),
                         [](manifest::ManifestT &m) {
                           m.outputs[0]->name = "hidden";
                           m.outputs[0]->dtype = manifest::DType::I32;
                           m.buffers[3]->dtype = manifest::DType::I32;
                         })
                  .isOk());
  // Such a model loads for the generic calls; the token calls say why they
  // do not fit it.
  moec_model *m = nullptr;
  ASSERT_EQ(moec_model_load(path.c_str(), "cpu", &m), MOEC_OK)
      << moec_last_error();
  int32_t tokens[2] = {1, 2};
  ASSERT_EQ(moec_model_run(m, tokens, 2), MOEC_OK) << moec_last_error();
  const float *logits = nullptr;
  int64_t rows = 0, cols = 0;
  EXPECT_EQ(moec_model_logits(m, &logits, &rows, &cols), MOEC_INVALID_ARGUMENT);
  EXPECT_EQ(std::string(moec_last_error()),
            path + ": output 'hidden' is not f32 logits of shape [T, vocab] "
                   "(use moec_model_output)");
  const void *data = nullptr;
  moec_dtype dtype = MOEC_DTYPE_F32;
  const int64_t *shape = nullptr;
  int64_t rank = 0;
  ASSERT_EQ(moec_model_output(m, 0, &data, &dtype, &shape, &rank), MOEC_OK)
      << moec_last_error();
  EXPECT_EQ(dtype, MOEC_DTYPE_I32);
  EXPECT_EQ(std::vector<int64_t>(shape, shape + rank),
            (std::vector<int64_t>{2, 37}));
  moec_model_free(m);
}

TEST_F(CpuRuntimeTest, CApiGenericCallsSetInputsAndReadOutputs) {
  std::string path = dir.file("m.moea");
  ASSERT_TRUE(model.write(path, kernelsSo()).isOk());
  moec_model *m = nullptr;
  ASSERT_EQ(moec_model_load(path.c_str(), "cpu", &m), MOEC_OK)
      << moec_last_error();
  ASSERT_EQ(moec_model_tensor_count(m, 0), 1);
  ASSERT_EQ(moec_model_tensor_count(m, 1), 1);
  EXPECT_EQ(moec_model_tensor_count(nullptr, 0), 0);
  const char *name = nullptr;
  moec_dtype dtype = MOEC_DTYPE_U8;
  const int64_t *shape = nullptr;
  int64_t rank = 0;
  ASSERT_EQ(moec_model_tensor_info(m, 0, 0, &name, &dtype, &shape, &rank),
            MOEC_OK);
  EXPECT_STREQ(name, "tokens");
  EXPECT_EQ(dtype, MOEC_DTYPE_I32);
  EXPECT_EQ(std::vector<int64_t>(shape, shape + rank),
            (std::vector<int64_t>{-1}));
  ASSERT_EQ(moec_model_tensor_info(m, 1, 0, &name, &dtype, &shape, &rank),
            MOEC_OK);
  EXPECT_STREQ(name, "logits");
  EXPECT_EQ(dtype, MOEC_DTYPE_F32);
  EXPECT_EQ(std::vector<int64_t>(shape, shape + rank),
            (std::vector<int64_t>{-1, 37}));

  // Two runs with different token counts: each output matches the
  // reference and has the token dimension resolved.
  std::mt19937 rng(5);
  for (size_t n : {6u, 3u}) {
    std::vector<int32_t> tokens = randomTokens(rng, n, model.vocab);
    ASSERT_EQ(moec_model_set_input(m, 0, MOEC_DTYPE_I32, tokens.data(),
                                   int64_t(n * 4), int64_t(n)),
              MOEC_OK)
        << moec_last_error();
    ASSERT_EQ(moec_model_run_tokens(m, int64_t(n)), MOEC_OK)
        << moec_last_error();
    const void *data = nullptr;
    ASSERT_EQ(moec_model_output(m, 0, &data, &dtype, &shape, &rank), MOEC_OK)
        << moec_last_error();
    EXPECT_EQ(dtype, MOEC_DTYPE_F32);
    EXPECT_EQ(std::vector<int64_t>(shape, shape + rank),
              (std::vector<int64_t>{int64_t(n), 37}));
    expectClose(static_cast<const float *>(data), model.reference(tokens),
                "generic C API, T = " + std::to_string(n));
  }
  moec_model_free(m);
}

TEST_F(CpuRuntimeTest, CApiGenericCallsReportErrors) {
  std::string path = dir.file("m.moea");
  ASSERT_TRUE(model.write(path, kernelsSo()).isOk());
  moec_model *m = nullptr;
  ASSERT_EQ(moec_model_load(path.c_str(), "cpu", &m), MOEC_OK)
      << moec_last_error();
  int32_t tokens[4] = {1, 2, 3, 4};
  const void *data = nullptr;
  moec_dtype dtype;
  const int64_t *shape = nullptr;
  int64_t rank = 0;
  const char *name = nullptr;

  // Bad index.
  for (int64_t index : {int64_t(1), int64_t(-1)}) {
    EXPECT_EQ(moec_model_set_input(m, index, MOEC_DTYPE_I32, tokens, 16, 4),
              MOEC_INVALID_ARGUMENT);
    EXPECT_EQ(std::string(moec_last_error()),
              "moec_model_set_input: index " + std::to_string(index) +
                  " is not in [0, 1) (the model has 1 inputs)");
  }
  EXPECT_EQ(moec_model_tensor_info(m, 1, 2, &name, &dtype, &shape, &rank),
            MOEC_INVALID_ARGUMENT);
  EXPECT_STREQ(moec_last_error(), "moec_model_tensor_info: index 2 is not in "
                                  "[0, 1) (the model has 1 outputs)");

  // Wrong byte count, for the token count given.
  EXPECT_EQ(moec_model_set_input(m, 0, MOEC_DTYPE_I32, tokens, 15, 4),
            MOEC_INVALID_ARGUMENT);
  EXPECT_STREQ(moec_last_error(), "moec_model_set_input: input 'tokens': got "
                                  "15 bytes, expected 16 for 4 tokens");
  EXPECT_EQ(moec_model_set_input(m, 0, MOEC_DTYPE_I32, tokens, 16, 3),
            MOEC_INVALID_ARGUMENT);
  EXPECT_EQ(moec_model_set_input(m, 0, MOEC_DTYPE_I32, tokens, -4, 4),
            MOEC_INVALID_ARGUMENT);

  // Wrong dtype: i64 data (same bytes for 2 tokens) and f32 for i32 ids.
  EXPECT_EQ(moec_model_set_input(m, 0, MOEC_DTYPE_I64, tokens, 16, 2),
            MOEC_INVALID_ARGUMENT);
  EXPECT_STREQ(moec_last_error(), "moec_model_set_input: input 'tokens' is "
                                  "i32, but got i64 data (moec_dtype 7)");
  EXPECT_EQ(moec_model_set_input(m, 0, MOEC_DTYPE_F32, tokens, 16, 4),
            MOEC_INVALID_ARGUMENT);
  EXPECT_STREQ(moec_last_error(), "moec_model_set_input: input 'tokens' is "
                                  "i32, but got f32 data (moec_dtype 1)");

  // Token count, null pointers, ids out of range, output before a run.
  EXPECT_EQ(moec_model_set_input(m, 0, MOEC_DTYPE_I32, nullptr, 16, 4),
            MOEC_INVALID_ARGUMENT);
  tokens[2] = 37;
  EXPECT_EQ(moec_model_set_input(m, 0, MOEC_DTYPE_I32, tokens, 16, 4),
            MOEC_INVALID_ARGUMENT);
  EXPECT_STREQ(moec_last_error(), "moec_model_set_input: input 'tokens': "
                                  "element 2 is 37, outside [0, 37)");
  EXPECT_EQ(moec_model_run_tokens(m, 9), MOEC_INVALID_ARGUMENT);
  EXPECT_EQ(std::string(moec_last_error()),
            "moec_model_run_tokens: " + path +
                ": token count 9 is not in [1, 8]");
  EXPECT_EQ(moec_model_run_tokens(nullptr, 1), MOEC_INVALID_ARGUMENT);
  EXPECT_EQ(moec_model_output(m, 0, &data, &dtype, &shape, &rank),
            MOEC_INVALID_ARGUMENT);
  EXPECT_STREQ(moec_last_error(),
               "moec_model_output: the model has not run successfully");
  EXPECT_EQ(moec_model_output(m, 0, nullptr, &dtype, &shape, &rank),
            MOEC_INVALID_ARGUMENT);
  tokens[2] = 3;
  ASSERT_EQ(moec_model_set_input(m, 0, MOEC_DTYPE_I32, tokens, 16, 4), MOEC_OK);
  ASSERT_EQ(moec_model_run_tokens(m, 4), MOEC_OK);
  EXPECT_EQ(moec_model_output(m, 1, &data, &dtype, &shape, &rank),
            MOEC_INVALID_ARGUMENT);
  EXPECT_STREQ(moec_last_error(), "moec_model_output: index 1 is not in "
                                  "[0, 1) (the model has 1 outputs)");
  // A failed set invalidates the last run's outputs.
  EXPECT_EQ(moec_model_set_input(m, 0, MOEC_DTYPE_I32, tokens, 15, 4),
            MOEC_INVALID_ARGUMENT);
  EXPECT_EQ(moec_model_output(m, 0, &data, &dtype, &shape, &rank),
            MOEC_INVALID_ARGUMENT);
  moec_model_free(m);
}

//===----------------------------------------------------------------------===//
// One model, two threads
//===----------------------------------------------------------------------===//

/// What moec.h promises a call gets while another thread uses the model.
const char kBusyMessage[] =
    "model is already running on another thread; a model may be used from "
    "one thread at a time \u2014 load it once per thread";

TEST_F(CpuRuntimeTest, CApiConcurrentCallsFailWhileAnotherThreadRuns) {
  std::string path = dir.file("m.moea");
  ASSERT_TRUE(model.write(path, kernelsSo()).isOk());
  moec_model *m = nullptr;
  ASSERT_EQ(moec_model_load(path.c_str(), "cpu", &m), MOEC_OK)
      << moec_last_error();
  std::vector<int32_t> tokens = {7, 0, 36, 12};
  int64_t n = int64_t(tokens.size());
  // The hook holds the runner inside its run until this thread has made
  // every call: the overlap is certain, not a matter of timing. Only the
  // first run is held, so that a runtime without the check fails the test
  // (this thread's run would succeed) instead of hanging in the hook.
  std::mutex mutex;
  std::condition_variable changed;
  bool inside = false, release = false;
  setModelRunHookForTesting(m, [&] {
    std::unique_lock<std::mutex> lock(mutex);
    if (inside)
      return;
    inside = true;
    changed.notify_all();
    changed.wait(lock, [&] { return release; });
  });
  moec_status runnerStatus = MOEC_INTERNAL;
  std::thread runner(
      [&] { runnerStatus = moec_model_run(m, tokens.data(), n); });
  {
    std::unique_lock<std::mutex> lock(mutex);
    changed.wait(lock, [&] { return inside; });
  }
  const float *logits = nullptr;
  int64_t rows = 0, cols = 0;
  const void *data = nullptr;
  moec_dtype dtype;
  const int64_t *shape = nullptr;
  int64_t rank = 0;
  EXPECT_EQ(moec_model_run(m, tokens.data(), n), MOEC_INVALID_ARGUMENT);
  EXPECT_STREQ(moec_last_error(), kBusyMessage);
  EXPECT_EQ(moec_model_run_tokens(m, n), MOEC_INVALID_ARGUMENT);
  EXPECT_STREQ(moec_last_error(), kBusyMessage);
  EXPECT_EQ(moec_model_set_input(m, 0, MOEC_DTYPE_I32, tokens.data(), n * 4, n),
            MOEC_INVALID_ARGUMENT);
  EXPECT_STREQ(moec_last_error(), kBusyMessage);
  EXPECT_EQ(moec_model_logits(m, &logits, &rows, &cols), MOEC_INVALID_ARGUMENT);
  EXPECT_STREQ(moec_last_error(), kBusyMessage);
  EXPECT_EQ(moec_model_output(m, 0, &data, &dtype, &shape, &rank),
            MOEC_INVALID_ARGUMENT);
  EXPECT_STREQ(moec_last_error(), kBusyMessage);
  EXPECT_EQ(moec_model_set_threads(m, 1), MOEC_INVALID_ARGUMENT);
  EXPECT_STREQ(moec_last_error(), kBusyMessage);
  // What the manifest says stays readable.
  EXPECT_EQ(moec_model_tensor_count(m, 1), 1);
  EXPECT_EQ(moec_model_max_tokens(m), 8);
  {
    std::lock_guard<std::mutex> lock(mutex);
    release = true;
  }
  changed.notify_all();
  runner.join();
  EXPECT_EQ(runnerStatus, MOEC_OK);
  setModelRunHookForTesting(m, {});
  // The refused calls changed nothing: the runner's run is intact, and the
  // model is free again for this thread.
  ASSERT_EQ(moec_model_logits(m, &logits, &rows, &cols), MOEC_OK)
      << moec_last_error();
  EXPECT_EQ(rows, n);
  expectClose(logits, model.reference(tokens), "after the refused calls");
  EXPECT_EQ(moec_model_run(m, tokens.data(), n), MOEC_OK) << moec_last_error();
  moec_model_free(m);
}

TEST_F(CpuRuntimeTest, CApiConcurrentRunsFromTwoThreadsFailOrSucceed) {
  std::string path = dir.file("m.moea");
  ASSERT_TRUE(model.write(path, kernelsSo()).isOk());
  moec_model *m = nullptr;
  ASSERT_EQ(moec_model_load(path.c_str(), "cpu", &m), MOEC_OK)
      << moec_last_error();
  std::vector<int32_t> tokens = {3, 1, 4, 1, 5, 9, 2, 6};
  int64_t n = int64_t(tokens.size());
  // Until the first refusal, a run waits inside (model busy) for the other
  // thread to be refused, and each thread keeps calling until one was: at
  // least one overlap is certain, whatever the scheduling. (An unexpected
  // status, or a minute without a refusal, which only a runtime without the
  // check can take, ends the waiting too: a failure cannot hang the test.)
  std::atomic<int> refused{0}, succeeded{0}, wrong{0};
  auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(1);
  auto waiting = [&] {
    return refused.load() == 0 && wrong.load() == 0 &&
           std::chrono::steady_clock::now() < deadline;
  };
  setModelRunHookForTesting(m, [&] {
    while (waiting())
      std::this_thread::yield();
  });
  auto check = [&](moec_status status, const char *call) {
    if (status == MOEC_OK) {
      ++succeeded;
    } else if (status == MOEC_INVALID_ARGUMENT &&
               std::string(moec_last_error()) == kBusyMessage) {
      ++refused;
    } else {
      ++wrong;
      ADD_FAILURE() << call << ": " << moec_status_string(status) << ": "
                    << moec_last_error();
    }
  };
  constexpr int kIterations = 500;
  auto worker = [&] {
    for (int i = 0; i < kIterations || waiting(); ++i) {
      check(moec_model_run(m, tokens.data(), n), "moec_model_run");
      const float *logits = nullptr;
      int64_t rows = 0, cols = 0;
      // Only the status is looked at: the data belongs to whichever thread
      // runs the model next.
      check(moec_model_logits(m, &logits, &rows, &cols), "moec_model_logits");
      const void *data = nullptr;
      moec_dtype dtype;
      const int64_t *shape = nullptr;
      int64_t rank = 0;
      check(moec_model_output(m, 0, &data, &dtype, &shape, &rank),
            "moec_model_output");
      if (wrong.load() > 0)
        return;
    }
  };
  std::thread first(worker), second(worker);
  first.join();
  second.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_GE(refused.load(), 1);
  EXPECT_GT(succeeded.load(), 0);
  setModelRunHookForTesting(m, {});
  // The model still computes the right logits.
  ASSERT_EQ(moec_model_run(m, tokens.data(), n), MOEC_OK) << moec_last_error();
  const float *logits = nullptr;
  int64_t rows = 0, cols = 0;
  ASSERT_EQ(moec_model_logits(m, &logits, &rows, &cols), MOEC_OK);
  expectClose(logits, model.reference(tokens), "after the concurrent runs");
  moec_model_free(m);
}

//===----------------------------------------------------------------------===//
// Weights are verified before the first run that reads them
//===----------------------------------------------------------------------===//

TEST_F(CpuRuntimeTest, FlippedWeightFailsTheFirstRunThatUsesIt) {
  // One byte of `head` (read by step 2 only) flipped, in the second of two
  // 4 KiB hash blocks (embed and bias are in the first): the default load
  // succeeds, steps 0 and 1 run, step 2 and every whole run refuse with the
  // file, the weight, the block and both digests; a full-verify load, or
  // the C API with MOEC_VERIFY_FULL, refuses at once.
  model.weightsBlockSize = 4096;
  std::string path = dir.file("m.moea");
  ASSERT_TRUE(model.write(path, kernelsSo()).isOk());
  std::vector<uint8_t> bytes = readFile(path);
  uint64_t headAt = 0;
  {
    auto a = Artifact::open(path);
    ASSERT_TRUE(a.isOk());
    // head is [2432, 4800) of the section.
    ASSERT_EQ((*a)->findWeight(12)->offset(), 2432u);
    headAt = (*a)->findSection("weights")->offset + 4500;
  }
  bytes[headAt] ^= 0x01;
  ASSERT_TRUE(writeFile(path, bytes));

  auto artifact = Artifact::open(path);
  ASSERT_TRUE(artifact.isOk()) << artifact.status().toString();
  auto ex = CpuExecutor::create(std::move(artifact).value());
  ASSERT_TRUE(ex.isOk()) << ex.status().toString();
  std::vector<int32_t> tokens = {3, 1, 4};
  ASSERT_TRUE((*ex)->setInput(0, tokens.data(), 12, 3).isOk());
  EXPECT_TRUE((*ex)->runStep(0, 3).isOk());
  EXPECT_TRUE((*ex)->runStep(1, 3).isOk());
  std::string prefix = path + ": weight 'head' (id 12): section 'weights': "
                              "block 1 (bytes [4096, 4800)): SHA-256 mismatch "
                              "(expected ";
  Status step = (*ex)->runStep(2, 3);
  EXPECT_EQ(step.code(), StatusCode::kCorrupt);
  EXPECT_EQ(step.message().rfind(prefix, 0), 0u) << step.message();
  EXPECT_NE(step.message().find("): the weights are corrupted"),
            std::string::npos);
  Status run = (*ex)->run(3);
  EXPECT_EQ(run.message(), step.message());

  auto full = Artifact::open(path, OpenOptions{VerifyLevel::kFull});
  ASSERT_FALSE(full.isOk());
  EXPECT_EQ(full.status().code(), StatusCode::kCorrupt);

  moec_model *m = nullptr;
  ASSERT_EQ(moec_model_load_ex(path.c_str(), "cpu", MOEC_VERIFY_DEFAULT, &m),
            MOEC_OK)
      << moec_last_error();
  EXPECT_EQ(moec_model_run(m, tokens.data(), 3), MOEC_CORRUPT);
  EXPECT_EQ(std::string(moec_last_error()).rfind(prefix, 0), 0u)
      << moec_last_error();
  moec_model_free(m);
  m = nullptr;
  EXPECT_EQ(moec_model_load_ex(path.c_str(), "cpu", MOEC_VERIFY_FULL, &m),
            MOEC_CORRUPT);
  EXPECT_EQ(m, nullptr);
  EXPECT_EQ(std::string(moec_last_error())
                .rfind(path + ": section 'weights': "
                              "block 1 (bytes [4096, "
                              "4800)): SHA-256 "
                              "mismatch",
                       0),
            0u)
      << moec_last_error();
  EXPECT_EQ(moec_model_load_ex(path.c_str(), "cpu", moec_verify(7), &m),
            MOEC_INVALID_ARGUMENT);
}

TEST_F(CpuRuntimeTest, IntactWeightsAreVerifiedOnceByTheFirstRun) {
  std::string path = dir.file("m.moea");
  ASSERT_TRUE(model.write(path, kernelsSo()).isOk());
  auto artifact = Artifact::open(path);
  ASSERT_TRUE(artifact.isOk());
  std::shared_ptr<const Artifact> shared(std::move(artifact).value().release());
  auto ex = CpuExecutor::create(shared);
  ASSERT_TRUE(ex.isOk()) << ex.status().toString();
  EXPECT_EQ(shared->weightsBlocksVerified(), 0u);
  runAndCheck(**ex, {3, 1, 4}, 1.0f);
  EXPECT_EQ(shared->weightsBlocksVerified(), shared->weightsBlockCount());
  runAndCheck(**ex, {2, 7}, 1.0f);
}

} // namespace
