//===- KvCacheTest.cpp - KV-cache artifacts and generation ------*- C++ -*-===//
//
// The runtime half of issue 15 on the test model with a KV cache
// (TestModel::addKvCache: a step that writes each row into its slot's pages
// and averages its slot's cached rows, so that every logit depends on what
// the cache holds): the manifest verifier's kv_cache rules, a plain run and
// a hostile page table, and generation through the Generator and the C API
// (a pool too small for one request, a pool smaller than one full-length
// sequence per slot, shared prompt prefixes, the threading contract, direct
// runs refused while a generator exists). Greedy tokens are checked against
// TestModel::kvGreedy, computed on the host.
//
//===----------------------------------------------------------------------===//

#include "TestModel.h"

#include "runtime/artifact/Artifact.h"
#include "runtime/capi/moec.h"
#include "runtime/cpu/CpuExecutor.h"
#include "runtime/generate/Generator.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <random>
#include <thread>

using namespace moec::runtime;
using namespace moec::runtime::test;

namespace {

const std::vector<uint8_t> &testKernels() {
  static const std::vector<uint8_t> so = readFile(MOEC_TEST_KERNELS_SO);
  return so;
}

// The test model with room for 16-row prefill chunks.
TestModel kvModel() {
  TestModel model = TestModel::random(41);
  model.maxTokens = 16;
  return model;
}

//===----------------------------------------------------------------------===//
// The manifest's kv_cache rules
//===----------------------------------------------------------------------===//

// One rule per case: the message of verifyManifest after `edit`.
std::string
kvManifestError(const std::function<void(manifest::ManifestT &)> &edit) {
  TestModel model = kvModel();
  manifest::ManifestT m = model.manifest();
  model.addKvCache(m, {});
  if (edit)
    edit(m);
  ManifestContext context;
  context.sectionNames = {"manifest", "cpu.so", "weights"};
  context.weightsSectionSize = 4800;
  StatusOr<ManifestIndex> index = verifyManifest(m, context);
  return index.isOk() ? std::string() : index.status().message();
}

manifest::TensorSpecT &input(manifest::ManifestT &m, const char *name) {
  for (auto &in : m.inputs)
    if (in->name == name)
      return *in;
  ADD_FAILURE() << "no input " << name;
  return *m.inputs[0];
}

TEST(KvCacheManifestTest, ValidCacheIsAccepted) {
  EXPECT_EQ(kvManifestError({}), "");
}

TEST(KvCacheManifestTest, CacheArgumentsNameAKvCacheTensor) {
  using namespace manifest;
  EXPECT_EQ(kvManifestError([](ManifestT &m) {
              m.steps[1]->args[3] = Argument(ArgumentKind::KV_CACHE, 1);
            }),
            "steps[1] ('moec_test_kv_mean'): argument 3 refers to unknown KV "
            "cache tensor 1");
  EXPECT_EQ(kvManifestError([](ManifestT &m) { m.kv_cache.reset(); }),
            "steps[1] ('moec_test_kv_mean'): argument 3 refers to unknown KV "
            "cache tensor 0");
  EXPECT_EQ(kvManifestError([](ManifestT &m) {
              m.steps[1]->args[3] = Argument(ArgumentKind(7), 0);
            }),
            "steps[1] ('moec_test_kv_mean'): argument 3 is neither a buffer, "
            "a weight nor a KV cache tensor");
}

TEST(KvCacheManifestTest, GeometryIsChecked) {
  using namespace manifest;
  EXPECT_EQ(kvManifestError([](ManifestT &m) { m.kv_cache->page_tokens = 0; }),
            "kv_cache: page_tokens 0, max_sequences 4 and max_pages 16 must "
            "each be in [1, 1048576]");
  EXPECT_EQ(
      kvManifestError([](ManifestT &m) { m.kv_cache->max_sequences = -1; }),
      "kv_cache: page_tokens 4, max_sequences -1 and max_pages 16 must "
      "each be in [1, 1048576]");
  EXPECT_EQ(kvManifestError(
                [](ManifestT &m) { m.kv_cache->max_pages = int64_t(1) << 40; }),
            "kv_cache: page_tokens 4, max_sequences 4 and max_pages "
            "1099511627776 must each be in [1, 1048576]");
  EXPECT_EQ(kvManifestError([](ManifestT &m) {
              m.kv_cache->tensors.clear();
              m.steps.erase(m.steps.begin() + 1);
            }),
            "kv_cache: has no tensors");
}

TEST(KvCacheManifestTest, TensorsAreChecked) {
  using namespace manifest;
  const std::string tensor0 = "kv_cache.tensors[0] ('kv_cache.0.k'): ";
  const std::string pageShape =
      "page_shape must be [page_tokens (4), heads, dim] with heads and dim "
      "in [1, 1048576]";
  EXPECT_EQ(kvManifestError([](ManifestT &m) {
              auto copy = std::make_unique<KvCacheTensorT>();
              copy->name = "kv_cache.0.k";
              copy->dtype = DType::F32;
              copy->page_shape = {4, 1, 16};
              m.kv_cache->tensors.push_back(std::move(copy));
            }),
            "kv_cache.tensors[1] ('kv_cache.0.k'): the name is empty or used "
            "twice");
  EXPECT_EQ(
      kvManifestError([](ManifestT &m) { m.kv_cache->tensors[0]->name = ""; }),
      "kv_cache.tensors[0] (''): the name is empty or used twice");
  EXPECT_EQ(kvManifestError([](ManifestT &m) {
              m.kv_cache->tensors[0]->dtype = DType::I32;
            }),
            tensor0 + "dtype i32 is not f32 or bf16");
  EXPECT_EQ(kvManifestError([](ManifestT &m) {
              m.kv_cache->tensors[0]->dtype = DType::F8E4M3FN;
            }),
            tensor0 + "dtype f8e4m3fn is not f32 or bf16");
  EXPECT_EQ(
      kvManifestError([](ManifestT &m) { m.kv_cache->tensors[0]->layer = -1; }),
      tensor0 + "layer -1 is negative");
  EXPECT_EQ(kvManifestError([](ManifestT &m) {
              m.kv_cache->tensors[0]->page_shape = {8, 1, 16};
            }),
            tensor0 + pageShape);
  EXPECT_EQ(kvManifestError([](ManifestT &m) {
              m.kv_cache->tensors[0]->page_shape = {4, 16};
            }),
            tensor0 + pageShape);
  EXPECT_EQ(kvManifestError([](ManifestT &m) {
              m.kv_cache->tensors[0]->page_shape = {4, 0, 16};
            }),
            tensor0 + pageShape);
  EXPECT_EQ(kvManifestError([](ManifestT &m) {
              m.kv_cache->tensors[0]->page_shape = {4, 1, int64_t(1) << 21};
            }),
            tensor0 + pageShape);
}

TEST(KvCacheManifestTest, PositionsSlotsAndPageTableAreInputs) {
  using namespace manifest;
  const std::string rows = "kv_cache: needs the inputs 'positions' ([-1], i32 "
                           "or i64) and 'slots' ([-1], i32)";
  const std::string table =
      "kv_cache: needs the input 'page_table' (i32 [4, 16])";
  const std::string bounds =
      "kv_cache: the index_bound of 'slots' must be max_sequences and that of "
      "'positions' max_pages * page_tokens";
  EXPECT_EQ(kvManifestError(
                [](ManifestT &m) { input(m, "positions").name = "position"; }),
            rows);
  EXPECT_EQ(
      kvManifestError([](ManifestT &m) { input(m, "slots").name = "slot"; }),
      rows);
  EXPECT_EQ(kvManifestError([](ManifestT &m) {
              // A fixed [4] slots input over the same 4 x max_tokens bytes
              // is no row input.
              setFixedElements(*m.buffers[5], 16);
              input(m, "slots").shape = {16};
            }),
            rows);
  EXPECT_EQ(kvManifestError(
                [](ManifestT &m) { input(m, "page_table").name = "pages"; }),
            table);
  EXPECT_EQ(kvManifestError([](ManifestT &m) {
              // 8 x 8 entries: the buffer's 64, the wrong geometry.
              input(m, "page_table").shape = {8, 8};
            }),
            table);
  EXPECT_EQ(kvManifestError(
                [](ManifestT &m) { input(m, "page_table").shape = {64}; }),
            table);
  EXPECT_EQ(
      kvManifestError([](ManifestT &m) { input(m, "slots").index_bound = 5; }),
      bounds);
  EXPECT_EQ(
      kvManifestError([](ManifestT &m) { input(m, "slots").index_bound = 0; }),
      bounds);
  EXPECT_EQ(kvManifestError(
                [](ManifestT &m) { input(m, "positions").index_bound = 63; }),
            bounds);
}

//===----------------------------------------------------------------------===//
// The CPU executor with a KV cache
//===----------------------------------------------------------------------===//

class KvCacheRunTest : public ::testing::Test {
protected:
  void SetUp() override {
    ASSERT_GT(testKernels().size(), 1000u) << MOEC_TEST_KERNELS_SO;
    path = dir.file("kv.moea");
    ASSERT_TRUE(
        model
            .write(path, testKernels(),
                   [&](manifest::ManifestT &m) { model.addKvCache(m, cache); })
            .isOk());
  }
  void TearDown() override {
    moec_generator_free(generator);
    moec_model_free(capi);
  }

  // Loads `path` through the C API into `capi`.
  void loadCApi() {
    ASSERT_EQ(moec_model_load(path.c_str(), "cpu", &capi), MOEC_OK)
        << moec_last_error();
  }
  // Creates `generator` over `capi` with `cacheBytes` of cache.
  void createGenerator(int64_t cacheBytes, int64_t maxSequences = 0) {
    moec_generator_options options = {};
    options.cache_bytes = cacheBytes;
    options.max_sequences = maxSequences;
    ASSERT_EQ(moec_generator_create(capi, &options, &generator), MOEC_OK)
        << moec_last_error();
  }
  // Bytes of `pages` pages of the cache: [4, 1, 16] f32.
  static int64_t pagesBytes(int64_t pages) { return pages * 4 * 16 * 4; }

  // Adds a greedy request for `n` new tokens, ignoring EOS.
  int64_t add(const std::vector<int32_t> &prompt, int64_t n) {
    moec_sampling sampling = {};
    sampling.max_new_tokens = n;
    sampling.ignore_eos = 1;
    int64_t id = -1;
    EXPECT_EQ(moec_generator_add(generator, prompt.data(),
                                 int64_t(prompt.size()), &sampling, &id),
              MOEC_OK)
        << moec_last_error();
    return id;
  }

  struct Outcome {
    std::vector<int32_t> tokens;
    moec_finish finish = MOEC_FINISH_NONE;
    std::string error;
    int ends = 0;
  };
  // Steps until no sequence is unfinished; what each sequence got.
  std::map<int64_t, Outcome> drain() {
    std::map<int64_t, Outcome> out;
    for (int step = 0; moec_generator_unfinished(generator) > 0; ++step) {
      if (step > 10000) {
        ADD_FAILURE() << "the generator does not finish";
        break;
      }
      const moec_generation_event *events = nullptr;
      int64_t count = 0;
      if (moec_generator_step(generator, &events, &count) != MOEC_OK) {
        ADD_FAILURE() << moec_last_error();
        break;
      }
      for (int64_t i = 0; i < count; ++i) {
        Outcome &o = out[events[i].sequence];
        if (events[i].token >= 0)
          o.tokens.push_back(events[i].token);
        if (events[i].finish != MOEC_FINISH_NONE) {
          o.finish = events[i].finish;
          o.error = events[i].error;
          ++o.ends;
        }
      }
    }
    return out;
  }

  static std::vector<int32_t> prompt(uint32_t seed, size_t n) {
    std::mt19937 rng(seed);
    std::vector<int32_t> tokens(n);
    for (int32_t &t : tokens)
      t = int32_t(rng() % 37);
    return tokens;
  }

  TempDir dir;
  TestModel model = kvModel();
  TestModel::KvCache cache;
  std::string path;
  moec_model *capi = nullptr;
  moec_generator *generator = nullptr;
};

// A plain run is one sequence from position 0 in slot 0 (the executor fills
// slots and the page table), so it computes the cached model's logits.
TEST_F(KvCacheRunTest, PlainRunIsOneSequence) {
  loadCApi();
  std::vector<int32_t> tokens = prompt(1, 16);
  ASSERT_EQ(moec_model_run(capi, tokens.data(), 16), MOEC_OK)
      << moec_last_error();
  const float *logits = nullptr;
  int64_t rows = 0, cols = 0;
  ASSERT_EQ(moec_model_logits(capi, &logits, &rows, &cols), MOEC_OK);
  std::vector<float> want = model.kvReference(tokens);
  for (size_t i = 0; i < want.size(); ++i)
    ASSERT_FLOAT_EQ(logits[i], want[i]) << i;
}

// A page table naming a page outside the pools is an error before any
// kernel indexes with it; so is a slot outside the page table.
TEST_F(KvCacheRunTest, HostilePageTableIsRefused) {
  loadCApi();
  // Room for one max_tokens sequence: ceil(16 / 4) = 4 pages.
  std::vector<int32_t> table(size_t(cache.maxSequences * cache.maxPages), 0);
  std::vector<int32_t> tokens = {1, 2, 3, 4, 5, 6};
  auto setTable = [&] {
    return moec_model_set_input(capi, 3, MOEC_DTYPE_I32, table.data(),
                                int64_t(table.size() * 4), 6);
  };
  for (int32_t bad : {4, -1, 1 << 30}) {
    table[1] = bad;
    ASSERT_EQ(setTable(), MOEC_OK) << moec_last_error();
    ASSERT_EQ(
        moec_model_set_input(capi, 0, MOEC_DTYPE_I32, tokens.data(), 24, 6),
        MOEC_OK);
    EXPECT_EQ(moec_model_run_tokens(capi, 6), MOEC_INVALID_ARGUMENT);
    EXPECT_EQ(moec_last_error(),
              "moec_model_run_tokens: " + path +
                  ": input 'page_table': slot 0 page 1 is page " +
                  std::to_string(bad) + ", outside the 4 pages of the KV cache")
        << bad;
  }
  // Pages past the rows' last position are not read, so not checked.
  table[1] = 1;
  table[2] = 99;
  ASSERT_EQ(setTable(), MOEC_OK);
  ASSERT_EQ(moec_model_set_input(capi, 0, MOEC_DTYPE_I32, tokens.data(), 24, 6),
            MOEC_OK);
  ASSERT_EQ(moec_model_run_tokens(capi, 6), MOEC_OK) << moec_last_error();
  // A slot outside the page table is the input's index bound.
  std::vector<int32_t> slots(6, 4);
  EXPECT_EQ(moec_model_set_input(capi, 2, MOEC_DTYPE_I32, slots.data(), 24, 6),
            MOEC_INVALID_ARGUMENT);
  EXPECT_NE(std::string(moec_last_error()).find("'slots'"), std::string::npos)
      << moec_last_error();
}

//===----------------------------------------------------------------------===//
// Generation
//===----------------------------------------------------------------------===//

TEST_F(KvCacheRunTest, GeneratorNeedsAKvCache) {
  std::string plain = dir.file("plain.moea");
  ASSERT_TRUE(model.write(plain, testKernels()).isOk());
  moec_model *m = nullptr;
  ASSERT_EQ(moec_model_load(plain.c_str(), "cpu", &m), MOEC_OK);
  moec_generator *g = nullptr;
  EXPECT_EQ(moec_generator_create(m, nullptr, &g), MOEC_INVALID_ARGUMENT);
  EXPECT_EQ(g, nullptr);
  EXPECT_EQ(std::string(moec_last_error()),
            plain + ": has no KV cache, so it cannot generate; compile it "
                    "with `moec --kv-cache=bf16` (or f32)");
  // The failed create leaves the model free to run.
  int32_t token = 3;
  EXPECT_EQ(moec_model_run(m, &token, 1), MOEC_OK) << moec_last_error();
  moec_model_free(m);
}

// While a generator owns the cache, direct runs are refused (they would
// overwrite it), and so is a second generator; freeing it lifts both.
TEST_F(KvCacheRunTest, DirectRunsWaitForTheGenerator) {
  loadCApi();
  createGenerator(0);
  int32_t tokens[2] = {1, 2};
  const std::string refused =
      "model is generating: a moec_generator owns its KV cache; free the "
      "generator before running the model directly";
  EXPECT_EQ(moec_model_run(capi, tokens, 2), MOEC_INVALID_ARGUMENT);
  EXPECT_EQ(moec_last_error(), refused);
  EXPECT_EQ(moec_model_run_tokens(capi, 2), MOEC_INVALID_ARGUMENT);
  EXPECT_EQ(moec_last_error(), refused);
  moec_generator *second = nullptr;
  EXPECT_EQ(moec_generator_create(capi, nullptr, &second),
            MOEC_INVALID_ARGUMENT);
  EXPECT_EQ(second, nullptr);
  // The generator still works after the refusals.
  int64_t id = add(prompt(2, 5), 3);
  std::map<int64_t, Outcome> out = drain();
  EXPECT_EQ(out[id].tokens, model.kvGreedy(prompt(2, 5), 3));
  moec_generator_free(generator);
  generator = nullptr;
  ASSERT_EQ(moec_model_run(capi, tokens, 2), MOEC_OK) << moec_last_error();
  const float *logits = nullptr;
  int64_t rows = 0, cols = 0;
  ASSERT_EQ(moec_model_logits(capi, &logits, &rows, &cols), MOEC_OK);
  std::vector<float> want = model.kvReference({1, 2});
  for (size_t i = 0; i < want.size(); ++i)
    ASSERT_FLOAT_EQ(logits[i], want[i]) << i;
}

// A request whose prompt alone needs more pages than the pool holds ends
// with a clear error; the other requests of the same steps finish with the
// host's greedy tokens.
TEST_F(KvCacheRunTest, RequestLargerThanThePoolFailsAlone) {
  loadCApi();
  createGenerator(pagesBytes(6)); // 24 positions
  std::vector<int32_t> small = prompt(3, 7), large = prompt(4, 30);
  int64_t a = add(small, 5);
  int64_t big = add(large, 2);
  int64_t b = add(prompt(5, 3), 6);
  std::map<int64_t, Outcome> out = drain();
  EXPECT_EQ(out[big].finish, MOEC_FINISH_ERROR);
  EXPECT_EQ(out[big].error,
            "KV cache too small: sequence " + std::to_string(big) +
                " needs 8 pages for 30 tokens, but the pool has 6 pages of "
                "4 tokens");
  EXPECT_TRUE(out[big].tokens.empty());
  EXPECT_EQ(out[a].finish, MOEC_FINISH_LENGTH);
  EXPECT_EQ(out[a].tokens, model.kvGreedy(small, 5));
  EXPECT_EQ(out[b].finish, MOEC_FINISH_LENGTH);
  EXPECT_EQ(out[b].tokens, model.kvGreedy(prompt(5, 3), 6));
  for (const auto &[id, o] : out)
    EXPECT_EQ(o.ends, 1) << id;
}

// A pool that holds what the running sequences need, but not one
// full-length sequence per slot (16 pages = 64 positions, 4 slots of up to
// 64 positions each): twenty sequences pass through it, 350 positions in
// all, so released pages are reused; each gets the host's greedy tokens.
TEST_F(KvCacheRunTest, SmallPoolServesManySequencesInTurn) {
  loadCApi();
  createGenerator(pagesBytes(16));
  std::map<int64_t, std::vector<int32_t>> want;
  int64_t positions = 0;
  for (uint32_t i = 0; i < 20; ++i) {
    std::vector<int32_t> p = prompt(100 + i, 6 + i % 5);
    int64_t n = 8 + i % 4;
    want[add(p, n)] = model.kvGreedy(p, n);
    positions += int64_t(p.size()) + n;
  }
  EXPECT_GT(positions, 64 * 5);
  std::map<int64_t, Outcome> out = drain();
  ASSERT_EQ(out.size(), want.size());
  for (const auto &[id, tokens] : want) {
    EXPECT_EQ(out[id].finish, MOEC_FINISH_LENGTH) << id << out[id].error;
    EXPECT_EQ(out[id].tokens, tokens) << id;
    EXPECT_EQ(out[id].ends, 1) << id;
  }
}

// Two requests with the same 32-token prompt: the second, added once the
// first's prompt is cached, shares its first 7 pages (full pages, leaving
// the last prompt token, whose logits it must compute, to a page of its
// own), computes only the 4 rows of its last page, and generates the same
// greedy tokens.
TEST_F(KvCacheRunTest, SharedPromptPrefixIsStoredOnce) {
  StatusOr<std::unique_ptr<Artifact>> artifact = Artifact::open(path);
  ASSERT_TRUE(artifact.isOk()) << artifact.status().toString();
  StatusOr<std::unique_ptr<CpuExecutor>> executor =
      CpuExecutor::create(std::move(artifact).value());
  ASSERT_TRUE(executor.isOk()) << executor.status().toString();
  GeneratorOptions options;
  options.cacheBytes = pagesBytes(32);
  StatusOr<std::unique_ptr<Generator>> created =
      Generator::create(**executor, options);
  ASSERT_TRUE(created.isOk()) << created.status().toString();
  Generator &g = **created;
  std::vector<int32_t> shared = prompt(6, 32);
  auto request = [&] {
    GenerationRequest r;
    r.prompt = shared;
    r.sampling.temperature = 0; // greedy
    r.stop.maxNewTokens = 4;
    return r;
  };
  std::map<SequenceId, std::vector<int32_t>> tokens;
  auto step = [&] {
    StatusOr<std::vector<SequenceUpdate>> updates = g.step();
    ASSERT_TRUE(updates.isOk()) << updates.status().toString();
    for (const SequenceUpdate &u : *updates) {
      ASSERT_NE(u.finish, FinishReason::kError) << u.error.toString();
      if (u.token >= 0)
        tokens[u.id].push_back(u.token);
    }
  };
  StatusOr<SequenceId> first = g.add(request());
  ASSERT_TRUE(first.isOk());
  // 32 prompt rows in chunks of 16, then the first token.
  step();
  step();
  ASSERT_EQ(tokens[*first].size(), 1u);
  int64_t prefillBefore = g.stats().prefillRows;
  StatusOr<SequenceId> second = g.add(request());
  ASSERT_TRUE(second.isOk());
  step();
  const PageTable *a = g.pool().pageTable(*first);
  const PageTable *b = g.pool().pageTable(*second);
  ASSERT_TRUE(a && b);
  ASSERT_EQ(b->pages.size(), 8u);
  for (size_t i = 0; i < 7; ++i) {
    EXPECT_EQ(b->pages[i], a->pages[i]) << i;
    EXPECT_EQ(g.pool().refCount(a->pages[i]), 2) << i;
  }
  EXPECT_NE(b->pages[7], a->pages[7]);
  EXPECT_EQ(g.pool().refCount(b->pages[7]), 1);
  EXPECT_EQ(g.stats().prefillRows - prefillBefore, 4);
  while (g.numUnfinished() > 0)
    step();
  std::vector<int32_t> want = model.kvGreedy(shared, 4);
  EXPECT_EQ(tokens[*first], want);
  EXPECT_EQ(tokens[*second], want);
}

// The threading contract of the C API: four threads add and cancel
// sequences (their own and others') while this thread steps until every
// sequence has ended. Each ends exactly once; the completed ones have the
// host's greedy tokens. Run under TSan by scripts/sanitizers.sh (the name
// matches its `Concurrent` filter).
TEST_F(KvCacheRunTest, ConcurrentAddAndCancelWhileOneThreadSteps) {
  loadCApi();
  createGenerator(pagesBytes(24));
  constexpr int kThreads = 4, kPerThread = 12;
  std::atomic<int> addersDone{0};
  std::vector<std::vector<std::pair<int64_t, std::vector<int32_t>>>> added(
      kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      std::mt19937 rng{uint32_t(t)};
      for (int i = 0; i < kPerThread; ++i) {
        std::vector<int32_t> p = prompt(rng(), 1 + rng() % 9);
        moec_sampling sampling = {};
        sampling.max_new_tokens = 1 + rng() % 6;
        sampling.ignore_eos = 1;
        int64_t id = -1;
        if (moec_generator_add(generator, p.data(), int64_t(p.size()),
                               &sampling, &id) != MOEC_OK)
          continue;
        added[size_t(t)].emplace_back(
            id, model.kvGreedy(p, sampling.max_new_tokens));
        if (rng() % 3 == 0)
          moec_generator_cancel(generator, id);
        // Ids of other threads' sequences, possibly finished or unknown.
        if (rng() % 4 == 0)
          moec_generator_cancel(generator, int64_t(rng() % 80));
        if (rng() % 4 == 0)
          std::this_thread::yield();
      }
      addersDone.fetch_add(1);
    });

  // As SchedulerTest's driver: until every adder is done and every
  // sequence has ended; the deadline only turns a hang into a failure.
  std::map<int64_t, Outcome> out;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(2);
  auto drive = [&] {
    for (;;) {
      ASSERT_LT(std::chrono::steady_clock::now(), deadline)
          << "the generator did not end every sequence";
      bool done = addersDone.load() == kThreads &&
                  moec_generator_unfinished(generator) == 0;
      const moec_generation_event *events = nullptr;
      int64_t count = 0;
      ASSERT_EQ(moec_generator_step(generator, &events, &count), MOEC_OK)
          << moec_last_error();
      for (int64_t i = 0; i < count; ++i) {
        Outcome &o = out[events[i].sequence];
        if (events[i].token >= 0)
          o.tokens.push_back(events[i].token);
        if (events[i].finish != MOEC_FINISH_NONE) {
          ASSERT_NE(events[i].finish, MOEC_FINISH_ERROR) << events[i].error;
          o.finish = events[i].finish;
          ++o.ends;
        }
      }
      if (done)
        return;
      if (count == 0)
        std::this_thread::yield();
    }
  };
  drive();
  for (std::thread &thread : threads)
    thread.join();
  size_t total = 0, completed = 0;
  for (const auto &list : added)
    for (const auto &[id, want] : list) {
      const Outcome &o = out[id];
      EXPECT_EQ(o.ends, 1) << "sequence " << id;
      if (o.finish == MOEC_FINISH_LENGTH) {
        EXPECT_EQ(o.tokens, want) << "sequence " << id;
        ++completed;
      } else {
        EXPECT_EQ(o.finish, MOEC_FINISH_CANCELLED) << "sequence " << id;
      }
      ++total;
    }
  EXPECT_EQ(total, size_t(kThreads * kPerThread));
  EXPECT_EQ(out.size(), total);
  EXPECT_GT(completed, 0u);
  EXPECT_EQ(moec_generator_unfinished(generator), 0);
}

} // namespace
