//===- RuntimeTestDriver.cpp - Helper for the Python checks -----*- C++ -*-===//
//
// `runtime-test-driver hash FILE...` prints "<crc32 hex> <sha256 hex>" per
// file (compared with zlib and hashlib by check_format.py);
// `runtime-test-driver write-test-model OUT.moea WEIGHTS_DIR` writes the
// TestModel artifact with the real test kernels and its weights as raw f32
// files (embed.f32, bias.f32, head.f32) for check_moec_run.py, signed with
// the private key in KEY.pem when one is given after WEIGHTS_DIR;
// `runtime-test-driver write-cuda-models DIR` writes the CUDA test models
// for check_gpu_check.py; `runtime-test-driver write-big OUT.moea GIB`
// writes an artifact with GIB GiB of pseudo-random weights (not a hole) to
// measure loading (docs/artifact.md, "Verification levels").
//
//===----------------------------------------------------------------------===//

#include "TestModel.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

using namespace moec::runtime;
using namespace moec::runtime::test;

namespace {

bool writeFloats(const std::string &path, const std::vector<float> &v) {
  const auto *p = reinterpret_cast<const uint8_t *>(v.data());
  return writeFile(path, std::vector<uint8_t>(p, p + v.size() * 4));
}

int hashFiles(int argc, char **argv) {
  for (int i = 2; i < argc; ++i) {
    std::vector<uint8_t> bytes = readFile(argv[i]);
    std::printf("%08x %s\n", crc32Update(0, bytes.data(), bytes.size()),
                toHex(Sha256::hash(bytes.data(), bytes.size())).c_str());
  }
  return 0;
}

int writeTestModel(const std::string &out, const std::string &weightsDir,
                   const std::string &keyFile = "") {
  TestModel model = TestModel::random(2024);
  Status s = Status::ok();
  if (!keyFile.empty()) {
    StatusOr<std::string> text = readKeyFile(keyFile);
    StatusOr<Ed25519Seed> seed = text.isOk()
                                     ? parseEd25519PrivateKey(*text, keyFile)
                                     : StatusOr<Ed25519Seed>(text.status());
    if (seed.isOk())
      model.signingSeed = *seed;
    s = seed.status();
  }
  if (s.isOk())
    s = model.write(out, readFile(MOEC_TEST_KERNELS_SO));
  if (!s.isOk()) {
    std::fprintf(stderr, "runtime-test-driver: %s\n", s.toString().c_str());
    return 1;
  }
  if (!writeFloats(weightsDir + "/embed.f32", model.embed) ||
      !writeFloats(weightsDir + "/bias.f32", model.bias) ||
      !writeFloats(weightsDir + "/head.f32", model.head)) {
    std::fprintf(stderr, "runtime-test-driver: cannot write weights\n");
    return 1;
  }
  std::printf("vocab %lld hidden %lld max_tokens %lld\n",
              (long long)model.vocab, (long long)model.hidden,
              (long long)model.maxTokens);
  return 0;
}

// Writes DIR/model.moea (cpu.so + real kernels.cu, stored weights, raw
// weights beside it) and DIR/bench.moea (the same with device-filled
// weights) for check_gpu_check.py.
int writeCudaModels(const std::string &dir) {
  TestModel model = TestModel::random(2025);
  model.enableJitCuda();
  std::vector<uint8_t> so = readFile(MOEC_TEST_KERNELS_SO);
  Status s = model.write(dir + "/model.moea", so);
  if (s.isOk())
    s = model.write(dir + "/bench.moea", so, [](manifest::ManifestT &m) {
      m.weights_device_filled = true;
      m.weights_fill_seed = 7;
    });
  if (!s.isOk()) {
    std::fprintf(stderr, "runtime-test-driver: %s\n", s.toString().c_str());
    return 1;
  }
  if (!writeFloats(dir + "/embed.f32", model.embed) ||
      !writeFloats(dir + "/bias.f32", model.bias) ||
      !writeFloats(dir + "/head.f32", model.head))
    return 1;
  std::printf("vocab %lld hidden %lld max_tokens %lld\n",
              (long long)model.vocab, (long long)model.hidden,
              (long long)model.maxTokens);
  return 0;
}

// OUT: the test model with one extra u8 weight of `gib` GiB of xorshift
// bytes, written through the streaming writer.
int writeBig(const std::string &out, uint64_t gib) {
  const uint64_t bytes = gib << 30;
  TestModel model = TestModel::random(2026);
  std::vector<uint8_t> small = model.weightsSection();
  uint64_t bigAt = (small.size() + 4095) / 4096 * 4096;
  auto writer = ArtifactWriter::create(out);
  Status s = writer.status();
  if (s.isOk()) {
    manifest::ManifestT m = model.manifest();
    auto w = std::make_unique<manifest::WeightT>();
    w->id = 99;
    w->name = "big";
    w->dtype = manifest::DType::U8;
    w->shape = {int64_t(bytes)};
    w->offset = bigAt;
    w->bytes = bytes;
    m.weights.push_back(std::move(w));
    s = (*writer)->addManifest(m);
  }
  std::vector<uint8_t> so = readFile(MOEC_TEST_KERNELS_SO);
  if (s.isOk())
    s = (*writer)->addSection(
        SectionSpec::forKind(SectionKind::kCpuSharedObject), so.data(),
        so.size());
  if (s.isOk())
    s = (*writer)->addStreamedSection(
        SectionSpec::forKind(SectionKind::kWeights),
        [&](const ArtifactWriter::ChunkSink &sink) -> Status {
          MOEC_RETURN_IF_ERROR(sink(small.data(), small.size()));
          MOEC_RETURN_IF_ERROR(sink.zeros(bigAt - small.size()));
          std::vector<uint64_t> chunk(uint64_t(1) << 17); // 1 MiB
          uint64_t x = 0x9E3779B97F4A7C15ull;
          for (uint64_t done = 0; done < bytes; done += 8 * chunk.size()) {
            for (uint64_t &v : chunk) {
              x ^= x << 13;
              x ^= x >> 7;
              x ^= x << 17;
              v = x;
            }
            MOEC_RETURN_IF_ERROR(sink(chunk.data(), 8 * chunk.size()));
          }
          return Status::ok();
        });
  if (s.isOk())
    s = (*writer)->commit();
  if (!s.isOk()) {
    std::fprintf(stderr, "runtime-test-driver: %s\n", s.toString().c_str());
    return 1;
  }
  return 0;
}

} // namespace

int main(int argc, char **argv) {
  if (argc >= 2 && std::strcmp(argv[1], "hash") == 0)
    return hashFiles(argc, argv);
  if (argc == 4 && std::strcmp(argv[1], "write-test-model") == 0)
    return writeTestModel(argv[2], argv[3]);
  if (argc == 5 && std::strcmp(argv[1], "write-test-model") == 0)
    return writeTestModel(argv[2], argv[3], argv[4]);
  if (argc == 3 && std::strcmp(argv[1], "write-cuda-models") == 0)
    return writeCudaModels(argv[2]);
  if (argc == 4 && std::strcmp(argv[1], "write-big") == 0)
    return writeBig(argv[2], std::strtoull(argv[3], nullptr, 10));
  std::fprintf(stderr, "usage: runtime-test-driver hash FILE... | "
                       "write-test-model OUT.moea WEIGHTS_DIR | "
                       "write-cuda-models DIR | write-big OUT.moea GIB\n");
  return 2;
}
