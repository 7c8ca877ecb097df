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

void resealDigest(std::vector<uint8_t> &bytes) {
  if (bytes.size() < kTrailerSize)
    return;
  size_t digestAt = bytes.size() - kTrailerSize + kTrailerDigestOffset;
  Sha256Digest d = Sha256::hash(bytes.data(), digestAt);
  std::memcpy(bytes.data() + digestAt, d.data(), d.size());
}

void resealAll(std::vector<uint8_t> &bytes) {
  if (bytes.size() < kHeaderSize + kTrailerSize)
    return;
  Trailer t = decodeTrailer(bytes.data() + bytes.size() - kTrailerSize);
  uint64_t tableEnd = bytes.size() - kTrailerSize;
  for (uint32_t i = 0; i < t.sectionCount; ++i) {
    uint64_t at = t.tableOffset + uint64_t(i) * kTableEntrySize;
    if (at < t.tableOffset || at + kTableEntrySize > tableEnd)
      break;
    SectionEntry e = decodeSectionEntry(bytes.data() + at);
    if (e.offset > tableEnd || tableEnd - e.offset < e.size)
      continue;
    uint32_t crc = crc32Update(0, bytes.data() + e.offset, e.size);
    storeLE<uint32_t>(bytes.data() + at + 28, crc);
  }
  resealDigest(bytes);
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

manifest::Manifest TestModel::manifest() const {
  using namespace manifest;
  Manifest m;
  m.set_compiler_version("moec test 0.1");
  m.set_model_type("test_embed_add_logits");
  m.set_source("test/unit/runtime/TestModel.cpp");
  m.set_max_tokens(maxTokens);
  m.add_targets("cpu");

  // Buffers: tokens, x, y, logits, packed at 64-byte aligned offsets.
  uint64_t arena = 0;
  auto addBuffer = [&](uint32_t id, const char *name, DType dtype,
                       uint64_t perToken) {
    Buffer *b = m.add_buffers();
    b->set_id(id);
    b->set_name(name);
    b->set_dtype(dtype);
    b->set_elements_per_token(perToken);
    b->set_offset(arena);
    b->set_bytes(perToken * uint64_t(maxTokens) * 4);
    arena = alignTo64(arena + b->bytes());
  };
  addBuffer(0, "tokens", DTYPE_I32, 1);
  addBuffer(1, "x", DTYPE_F32, uint64_t(hidden));
  addBuffer(2, "y", DTYPE_F32, uint64_t(hidden));
  addBuffer(3, "logits", DTYPE_F32, uint64_t(vocab));
  m.set_arena_bytes(arena);

  uint64_t offset = 0;
  auto addWeight = [&](uint32_t id, const char *name,
                       std::vector<int64_t> shape) {
    Weight *w = m.add_weights();
    w->set_id(id);
    w->set_name(name);
    w->set_dtype(DTYPE_F32);
    uint64_t n = 1;
    for (int64_t d : shape) {
      w->add_shape(d);
      n *= uint64_t(d);
    }
    w->set_offset(offset);
    w->set_bytes(n * 4);
    offset = alignTo64(offset + n * 4);
  };
  addWeight(10, "embed", {vocab, hidden});
  addWeight(11, "bias", {hidden});
  addWeight(12, "head", {vocab, hidden});

  TensorSpec *in = m.add_inputs();
  in->set_name("tokens");
  in->set_dtype(DTYPE_I32);
  in->add_shape(-1);
  in->set_buffer(0);
  in->set_index_bound(vocab);
  TensorSpec *out = m.add_outputs();
  out->set_name("logits");
  out->set_dtype(DTYPE_F32);
  out->add_shape(-1);
  out->add_shape(vocab);
  out->set_buffer(3);

  auto addStep = [&](const char *kernel, const char *op,
                     std::vector<std::pair<bool, uint32_t>> args,
                     std::vector<int64_t> params) {
    Step *s = m.add_steps();
    s->set_kernel(kernel);
    s->set_op(op);
    for (auto [isWeight, id] : args) {
      Argument *a = s->add_args();
      if (isWeight)
        a->set_weight(id);
      else
        a->set_buffer(id);
    }
    for (int64_t p : params)
      s->add_params(p);
  };
  addStep("moec_test_embed", "moe.embed", {{false, 0}, {true, 10}, {false, 1}},
          {hidden});
  addStep("moec_test_add", "moe.add", {{false, 1}, {true, 11}, {false, 2}},
          {hidden});
  addStep("moec_test_logits", "moe.matmul",
          {{false, 2}, {true, 12}, {false, 3}}, {hidden, vocab});

  PrecisionEntry *p = m.add_precision();
  p->set_op_class("dense_matmul");
  p->set_precision(PRECISION_F32);
  return m;
}

Status
TestModel::write(const std::string &path, const std::vector<uint8_t> &cpuSo,
                 const std::function<void(manifest::Manifest &)> &edit) const {
  manifest::Manifest m = manifest();
  if (!cudaArch.empty())
    addCudaLaunches(m, cudaArch);
  if (edit)
    edit(m);
  MOEC_ASSIGN_OR_RETURN(std::unique_ptr<ArtifactWriter> writer,
                        ArtifactWriter::create(path));
  MOEC_RETURN_IF_ERROR(writer->addManifest(m));
  MOEC_RETURN_IF_ERROR(
      writer->addSection(SectionSpec::forKind(SectionKind::kCpuSharedObject),
                         cpuSo.data(), cpuSo.size()));
  for (const auto &[spec, bytes] : extraSections)
    MOEC_RETURN_IF_ERROR(writer->addSection(spec, bytes.data(), bytes.size()));
  std::vector<uint8_t> weights = weightsSection();
  MOEC_RETURN_IF_ERROR(writer->addStreamedSection(
      SectionSpec::forKind(SectionKind::kWeights),
      [&](const ArtifactWriter::ChunkSink &sink) -> Status {
        // Uneven chunks, as a weight streamer would produce.
        for (size_t pos = 0, n = 1; pos < weights.size(); pos += n, n += 97) {
          n = std::min(n, weights.size() - pos);
          MOEC_RETURN_IF_ERROR(sink(weights.data() + pos, n));
        }
        return Status::ok();
      }));
  return writer->commit();
}

void TestModel::addCudaLaunches(manifest::Manifest &m,
                                const std::string &arch) {
  using namespace manifest;
  m.add_targets(arch);
  m.set_cuda_workspace_bytes(uint64_t(m.max_tokens()) * 37 * 4);
  auto launch = [](Step *s, const char *kernel,
                   std::array<std::array<int64_t, 3>, 3> grid, uint32_t block) {
    CudaLaunch *l = s->add_cuda();
    l->set_kernel(kernel);
    for (const auto &g : grid) {
      GridExtent *e = l->add_grid();
      e->set_per_token(g[0]);
      e->set_divisor(g[1]);
      e->set_constant(g[2]);
    }
    l->add_block(block);
    l->add_block(1);
    l->add_block(1);
  };
  const std::array<int64_t, 3> one = {0, 1, 1};
  launch(m.mutable_steps(0), "moec_test_cuda_embed", {{{1, 1, 0}, one, one}},
         32);
  launch(m.mutable_steps(1), "moec_test_cuda_add", {{{16, 64, 0}, one, one}},
         64);
  launch(m.mutable_steps(2), "moec_test_cuda_logits", {{{1, 1, 0}, one, one}},
         32);
  launch(m.mutable_steps(2), "moec_test_cuda_copy_out",
         {{{37, 64, 0}, one, one}}, 64);
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

std::vector<float> TestModel::reference(const std::vector<int32_t> &tokens,
                                        float biasScale) const {
  std::vector<float> logits(tokens.size() * size_t(vocab));
  std::vector<float> y(static_cast<size_t>(hidden));
  for (size_t t = 0; t < tokens.size(); ++t) {
    for (int64_t j = 0; j < hidden; ++j)
      y[j] = embed[size_t(tokens[t] * hidden + j)] + biasScale * bias[j];
    for (int64_t o = 0; o < vocab; ++o) {
      float acc = 0.0f;
      for (int64_t j = 0; j < hidden; ++j)
        acc += y[j] * head[size_t(o * hidden + j)];
      logits[t * size_t(vocab) + size_t(o)] = acc;
    }
  }
  return logits;
}

} // namespace moec::runtime::test
