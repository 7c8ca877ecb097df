//===- TestModel.cpp - A tiny artifact built from test kernels --*- C++ -*-===//
//
// Buffer and weight layouts of the test model and its host reference. The
// weights section is streamed to the writer in uneven chunks, like the
// compiler's weight streaming.
//
//===----------------------------------------------------------------------===//

#include "TestModel.h"

#include "runtime/artifact/Format.h"
#include <algorithm>
#include <array>

#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fstream>
#include <iterator>
#include <random>
#include <unistd.h>

namespace moec::runtime::test {

std::vector<uint8_t> readFile(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

bool writeFile(const std::string &path, const std::vector<uint8_t> &bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char *>(bytes.data()),
            std::streamsize(bytes.size()));
  return bool(out);
}

ScopedEnv::ScopedEnv(const char *name, const char *value) : name_(name) {
  if (const char *old = std::getenv(name))
    saved_ = old;
  if (value)
    setenv(name, value, 1);
  else
    unsetenv(name);
}

ScopedEnv::~ScopedEnv() {
  if (saved_)
    setenv(name_.c_str(), saved_->c_str(), 1);
  else
    unsetenv(name_.c_str());
}

TempDir::TempDir() {
  const char *base = std::getenv("TMPDIR");
  std::string tmpl =
      std::string(base && *base ? base : "/tmp") + "/moec-runtime-test-XXXXXX";
  std::vector<char> name(tmpl.begin(), tmpl.end());
  name.push_back('\0');
  if (mkdtemp(name.data()))
    path_ = name.data();
}

TempDir::~TempDir() {
  if (path_.empty())
    return;
  // Flat folders only: tests never create subfolders.
  for (const std::string &entry : list())
    ::unlink(file(entry).c_str());
  ::rmdir(path_.c_str());
}

std::string TempDir::file(const std::string &name) const {
  return path_ + "/" + name;
}

std::vector<std::string> TempDir::list() const {
  std::vector<std::string> names;
  if (DIR *dir = opendir(path_.c_str())) {
    while (dirent *e = readdir(dir)) {
      std::string n = e->d_name;
      if (n != "." && n != "..")
        names.push_back(n);
    }
    closedir(dir);
  }
  std::sort(names.begin(), names.end());
  return names;
}

void resealMetaDigest(std::vector<uint8_t> &bytes) {
  if (bytes.size() < kHeaderSize + kTrailerSize)
    return;
  uint64_t trailerAt = bytes.size() - kTrailerSize;
  Trailer t = decodeTrailer(bytes.data() + trailerAt);
  Sha256 meta;
  meta.update(bytes.data(), kHeaderSize);
  // The manifest, if the table still leads to one inside the file.
  bool tableInside = t.tableOffset <= trailerAt;
  for (uint32_t i = 0; tableInside && i < t.sectionCount; ++i) {
    uint64_t at = t.tableOffset + uint64_t(i) * kTableEntrySize;
    if (at < t.tableOffset || at + kTableEntrySize > trailerAt)
      break;
    SectionEntry e = decodeSectionEntry(bytes.data() + at);
    if (e.nameView() == "manifest" && e.offset <= trailerAt &&
        trailerAt - e.offset >= e.size) {
      meta.update(bytes.data() + e.offset, e.size);
      break;
    }
  }
  if (tableInside)
    meta.update(bytes.data() + t.tableOffset, trailerAt - t.tableOffset);
  meta.update(bytes.data() + trailerAt, kTrailerDigestOffset);
  Sha256Digest d = meta.finish();
  std::memcpy(bytes.data() + trailerAt + kTrailerDigestOffset, d.data(),
              d.size());
}

TestModel TestModel::random(uint32_t seed) {
  TestModel m;
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  auto fill = [&](std::vector<float> &v, size_t n) {
    v.resize(n);
    for (float &x : v)
      x = dist(rng);
  };
  fill(m.embed, size_t(m.vocab * m.hidden));
  fill(m.bias, size_t(m.hidden));
  fill(m.head, size_t(m.vocab * m.hidden));
  return m;
}

namespace {

uint64_t alignTo64(uint64_t x) { return (x + 63) / 64 * 64; }

} // namespace

std::vector<uint8_t> TestModel::weightsSection() const {
  std::vector<uint8_t> bytes;
  for (const std::vector<float> *w : {&embed, &bias, &head}) {
    bytes.resize(alignTo64(bytes.size()));
    const auto *p = reinterpret_cast<const uint8_t *>(w->data());
    bytes.insert(bytes.end(), p, p + w->size() * sizeof(float));
  }
  return bytes;
}

manifest::ManifestT TestModel::manifest() const {
  using namespace manifest;
  ManifestT m;
  m.compiler_version = "moec test 0.1";
  m.model_type = "test_embed_add_logits";
  m.source = "test/unit/runtime/TestModel.cpp";
  m.max_tokens = maxTokens;
  m.targets.push_back("cpu");

  // Buffers: tokens, x, y, logits, packed at 64-byte aligned offsets.
  uint64_t arena = 0;
  auto addBuffer = [&](uint32_t id, const char *name, DType dtype,
                       uint64_t perToken) {
    auto b = std::make_unique<BufferT>();
    b->id = id;
    b->name = name;
    b->dtype = dtype;
    setElementsPerToken(*b, perToken);
    b->offset = arena;
    b->bytes = perToken * uint64_t(maxTokens) * 4;
    arena = alignTo64(arena + b->bytes);
    m.buffers.push_back(std::move(b));
  };
  addBuffer(0, "tokens", DType::I32, 1);
  addBuffer(1, "x", DType::F32, uint64_t(hidden));
  addBuffer(2, "y", DType::F32, uint64_t(hidden));
  addBuffer(3, "logits", DType::F32, uint64_t(vocab));
  m.arena_bytes = arena;

  uint64_t offset = 0;
  auto addWeight = [&](uint32_t id, const char *name,
                       std::vector<int64_t> shape) {
    auto w = std::make_unique<WeightT>();
    w->id = id;
    w->name = name;
    w->dtype = DType::F32;
    uint64_t n = 1;
    for (int64_t d : shape)
      n *= uint64_t(d);
    w->shape = std::move(shape);
    w->offset = offset;
    w->bytes = n * 4;
    offset = alignTo64(offset + n * 4);
    m.weights.push_back(std::move(w));
  };
  addWeight(10, "embed", {vocab, hidden});
  addWeight(11, "bias", {hidden});
  addWeight(12, "head", {vocab, hidden});

  auto in = std::make_unique<TensorSpecT>();
  in->name = "tokens";
  in->dtype = DType::I32;
  in->shape = {-1};
  in->buffer = 0;
  in->index_bound = vocab;
  m.inputs.push_back(std::move(in));
  auto out = std::make_unique<TensorSpecT>();
  out->name = "logits";
  out->dtype = DType::F32;
  out->shape = {-1, vocab};
  out->buffer = 3;
  m.outputs.push_back(std::move(out));

  auto addStep = [&](const char *kernel, const char *op,
                     std::vector<std::pair<bool, uint32_t>> args,
                     std::vector<int64_t> params) {
    auto s = std::make_unique<StepT>();
    s->kernel = kernel;
    s->op = op;
    for (auto [isWeight, id] : args)
      s->args.emplace_back(
          isWeight ? ArgumentKind::WEIGHT : ArgumentKind::BUFFER, id);
    s->params = std::move(params);
    m.steps.push_back(std::move(s));
  };
  addStep("moec_test_embed", "moe.embed", {{false, 0}, {true, 10}, {false, 1}},
          {hidden});
  addStep("moec_test_add", "moe.add", {{false, 1}, {true, 11}, {false, 2}},
          {hidden});
  addStep("moec_test_logits", "moe.matmul",
          {{false, 2}, {true, 12}, {false, 3}}, {hidden, vocab});

  auto p = std::make_unique<PrecisionEntryT>();
  p->op_class = "dense_matmul";
  p->precision = Precision::F32;
  m.precision.push_back(std::move(p));
  return m;
}

Status
TestModel::write(const std::string &path, const std::vector<uint8_t> &cpuSo,
                 const std::function<void(manifest::ManifestT &)> &edit) const {
  manifest::ManifestT m = manifest();
  if (!cudaArch.empty())
    addCudaLaunches(m, cudaArch);
  if (edit)
    edit(m);
  MOEC_ASSIGN_OR_RETURN(std::unique_ptr<ArtifactWriter> writer,
                        ArtifactWriter::create(path));
  if (signingSeed)
    MOEC_RETURN_IF_ERROR(writer->setSigningKey(*signingSeed));
  MOEC_RETURN_IF_ERROR(writer->addManifest(m));
  MOEC_RETURN_IF_ERROR(
      writer->addSection(SectionSpec::forKind(SectionKind::kCpuSharedObject),
                         cpuSo.data(), cpuSo.size()));
  for (const auto &[spec, bytes] : extraSections)
    MOEC_RETURN_IF_ERROR(writer->addSection(spec, bytes.data(), bytes.size()));
  std::vector<uint8_t> weights = weightsSection();
  SectionSpec weightsSpec = SectionSpec::forKind(SectionKind::kWeights);
  if (weightsBlockSize)
    weightsSpec.blockSize = weightsBlockSize;
  MOEC_RETURN_IF_ERROR(writer->addStreamedSection(
      weightsSpec, [&](const ArtifactWriter::ChunkSink &sink) -> Status {
        // Uneven chunks, as a weight streamer would produce.
        for (size_t pos = 0, n = 1; pos < weights.size(); pos += n, n += 97) {
          n = std::min(n, weights.size() - pos);
          MOEC_RETURN_IF_ERROR(sink(weights.data() + pos, n));
        }
        return Status::ok();
      }));
  return writer->commit();
}

void TestModel::addCudaLaunches(manifest::ManifestT &m,
                                const std::string &arch) {
  using namespace manifest;
  m.targets.push_back(arch);
  m.cuda_workspace_bytes = uint64_t(m.max_tokens) * 37 * 4;
  auto launch = [](StepT &s, const char *kernel,
                   std::array<std::array<int64_t, 3>, 3> grid, uint32_t block) {
    auto l = std::make_unique<CudaLaunchT>();
    l->kernel = kernel;
    for (const auto &g : grid)
      l->grid.emplace_back(g[0], g[1], g[2]);
    l->block = {block, 1, 1};
    s.cuda.push_back(std::move(l));
  };
  const std::array<int64_t, 3> one = {0, 1, 1};
  launch(*m.steps[0], "moec_test_cuda_embed", {{{1, 1, 0}, one, one}}, 32);
  launch(*m.steps[1], "moec_test_cuda_add", {{{16, 64, 0}, one, one}}, 64);
  launch(*m.steps[2], "moec_test_cuda_logits", {{{1, 1, 0}, one, one}}, 32);
  launch(*m.steps[2], "moec_test_cuda_copy_out", {{{37, 64, 0}, one, one}}, 64);
}

void TestModel::enableFakeCuda(const std::string &kernelsSo,
                               const std::string &arch) {
  cudaArch = arch;
  extraSections.emplace_back(
      SectionSpec::forKind(SectionKind::kCubin, "cubin." + arch),
      "MOECFAKECUBIN " + kernelsSo + "\n");
}

void TestModel::enableJitCuda(const std::string &arch) {
  cudaArch = arch;
  extraSections.emplace_back(SectionSpec::forKind(SectionKind::kKernelsCu),
                             cudaSource());
}

std::string TestModel::cudaSource() {
  return R"cuda(// The runtime test model (TestCudaKernels.cpp) in CUDA: hidden 16,
// vocabulary 37. Params: step pointers, workspace, tokens.
extern "C" __global__ void moec_test_cuda_embed(const int *ids,
    const float *table, float *x, void *, long long tokens) {
  long long r = blockIdx.x;
  if (r >= tokens) return;
  for (int j = threadIdx.x; j < 16; j += blockDim.x)
    x[r * 16 + j] = table[ids[r] * 16 + j];
}
extern "C" __global__ void moec_test_cuda_add(const float *x,
    const float *bias, float *y, void *, long long tokens) {
  long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
  if (i < tokens * 16) y[i] = x[i] + bias[i % 16];
}
extern "C" __global__ void moec_test_cuda_logits(const float *y,
    const float *head, float *, float *workspace, long long tokens) {
  long long t = blockIdx.x;
  if (t >= tokens) return;
  for (int o = threadIdx.x; o < 37; o += blockDim.x) {
    float acc = 0.0f;
    for (int j = 0; j < 16; ++j)
      acc += y[t * 16 + j] * head[o * 16 + j];
    workspace[t * 37 + o] = acc;
  }
}
extern "C" __global__ void moec_test_cuda_copy_out(const float *,
    const float *, float *logits, const float *workspace, long long tokens) {
  long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
  if (i < tokens * 37) logits[i] = workspace[i];
}
)cuda";
}

namespace {

/// Logits [rows, vocab]: `model`'s head over the hidden rows that
/// `hiddenOf(t, y)` writes to `y`, accumulated in order as the kernel does.
std::vector<float>
headLogits(const TestModel &model, size_t rows,
           const std::function<void(size_t, std::vector<float> &)> &hiddenOf) {
  size_t vocab = size_t(model.vocab), hidden = size_t(model.hidden);
  std::vector<float> logits(rows * vocab);
  std::vector<float> y(hidden);
  for (size_t t = 0; t < rows; ++t) {
    hiddenOf(t, y);
    for (size_t o = 0; o < vocab; ++o) {
      float acc = 0.0f;
      for (size_t j = 0; j < hidden; ++j)
        acc += y[j] * model.head[o * hidden + j];
      logits[t * vocab + o] = acc;
    }
  }
  return logits;
}

} // namespace

std::vector<float> TestModel::reference(const std::vector<int32_t> &tokens,
                                        float biasScale) const {
  return headLogits(*this, tokens.size(), [&](size_t t, std::vector<float> &y) {
    for (int64_t j = 0; j < hidden; ++j)
      y[j] = embed[size_t(tokens[t] * hidden + j)] + biasScale * bias[j];
  });
}

void TestModel::addKvCache(manifest::ManifestT &m, const KvCache &cache) const {
  using namespace manifest;
  auto addBuffer = [&](uint32_t id, const char *name, uint64_t perToken,
                       uint64_t fixed) {
    auto b = std::make_unique<BufferT>();
    b->id = id;
    b->name = name;
    b->dtype = DType::I32;
    if (fixed)
      setFixedElements(*b, fixed);
    else
      setElementsPerToken(*b, perToken);
    b->offset = m.arena_bytes;
    b->bytes = (fixed ? fixed : perToken * uint64_t(m.max_tokens)) * 4;
    m.arena_bytes = alignTo64(m.arena_bytes + b->bytes);
    m.buffers.push_back(std::move(b));
  };
  uint64_t tableEntries = uint64_t(cache.maxSequences * cache.maxPages);
  addBuffer(4, "positions", 1, 0);
  addBuffer(5, "slots", 1, 0);
  addBuffer(6, "page_table", 0, tableEntries);
  auto addInput = [&](const char *name, uint32_t buffer,
                      std::vector<int64_t> shape, int64_t bound) {
    auto in = std::make_unique<TensorSpecT>();
    in->name = name;
    in->dtype = DType::I32;
    in->shape = std::move(shape);
    in->buffer = buffer;
    in->index_bound = bound;
    m.inputs.push_back(std::move(in));
  };
  addInput("positions", 4, {-1}, cache.maxPages * cache.pageTokens);
  addInput("slots", 5, {-1}, cache.maxSequences);
  addInput("page_table", 6, {cache.maxSequences, cache.maxPages}, 0);

  m.kv_cache = std::make_unique<KvCacheT>();
  m.kv_cache->page_tokens = cache.pageTokens;
  m.kv_cache->max_sequences = cache.maxSequences;
  m.kv_cache->max_pages = cache.maxPages;
  auto tensor = std::make_unique<KvCacheTensorT>();
  tensor->name = "kv_cache.0.k";
  tensor->layer = 0;
  tensor->dtype = DType::F32;
  tensor->page_shape = {cache.pageTokens, 1, hidden};
  m.kv_cache->tensors.push_back(std::move(tensor));

  auto s = std::make_unique<StepT>();
  s->kernel = "moec_test_kv_mean";
  s->op = "moe.paged_attention";
  s->args = {
      Argument(ArgumentKind::BUFFER, 4), Argument(ArgumentKind::BUFFER, 5),
      Argument(ArgumentKind::BUFFER, 6), Argument(ArgumentKind::KV_CACHE, 0),
      Argument(ArgumentKind::BUFFER, 1)};
  s->params = {hidden, cache.pageTokens, cache.maxPages};
  m.steps.insert(m.steps.begin() + 1, std::move(s));
}

std::vector<float>
TestModel::kvReference(const std::vector<int32_t> &tokens) const {
  return headLogits(*this, tokens.size(), [&](size_t t, std::vector<float> &y) {
    for (int64_t j = 0; j < hidden; ++j) {
      // The kernel's order: the sum over positions 0 .. t, then the mean.
      float acc = 0.0f;
      for (size_t s = 0; s <= t; ++s)
        acc += embed[size_t(tokens[s] * hidden + j)];
      y[j] = acc / float(t + 1) + bias[j];
    }
  });
}

std::vector<int32_t> TestModel::kvGreedy(std::vector<int32_t> prompt,
                                         int64_t n) const {
  std::vector<int32_t> out;
  for (int64_t i = 0; i < n; ++i) {
    std::vector<float> logits = kvReference(prompt);
    const float *last = logits.data() + (prompt.size() - 1) * size_t(vocab);
    int32_t best = int32_t(std::max_element(last, last + vocab) - last);
    out.push_back(best);
    prompt.push_back(best);
  }
  return out;
}

} // namespace moec::runtime::test
