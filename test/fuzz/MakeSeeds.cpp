//===- MakeSeeds.cpp - Write the generated seeds of the fuzz targets ------===//
//
// `fuzz-make-seeds <dir>` writes the seeds that test/data does not hold:
// artifacts of the runtime test model (test/unit/runtime/TestModel.cpp)
// with and without CUDA launches, written by the real ArtifactWriter, their
// manifest sections as `fuzz-manifest` wraps them (recording the digests of
// ManifestWrap.h's sections), and small `.npy` files of every accepted
// dtype. The build runs it into build-fuzz/; nothing generated enters the
// repo.
//
//===----------------------------------------------------------------------===//

#include "ManifestWrap.h"
#include "TestModel.h"

#include "runtime/artifact/Artifact.h"

#include <cstdio>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

using namespace moec::runtime;

namespace {

bool writeBytes(const std::string &path, const std::string &bytes) {
  return test::writeFile(path,
                         std::vector<uint8_t>(bytes.begin(), bytes.end()));
}

/// The manifest section of an artifact holding `m` and the sections
/// `fuzz-manifest` puts beside it, written by the real ArtifactWriter (which
/// records their digests in the manifest's `sections`) to `scratch` and
/// read back.
StatusOr<std::vector<uint8_t>> wrappedManifest(const manifest::ManifestT &m,
                                               const std::string &scratch) {
  MOEC_ASSIGN_OR_RETURN(std::unique_ptr<ArtifactWriter> writer,
                        ArtifactWriter::create(scratch));
  for (const moec::fuzz::WrappedSection &s : moec::fuzz::wrappedSections())
    MOEC_RETURN_IF_ERROR(
        writer->addSection(s.spec, s.bytes.data(), s.bytes.size()));
  MOEC_RETURN_IF_ERROR(writer->addManifest(m));
  MOEC_RETURN_IF_ERROR(writer->commit());
  OpenOptions options;
  options.verify = VerifyLevel::kFull;
  StatusOr<std::unique_ptr<Artifact>> artifact =
      Artifact::open(scratch, options);
  ::unlink(scratch.c_str());
  MOEC_RETURN_IF_ERROR(artifact.status());
  const Artifact &a = **artifact;
  ByteSpan bytes = a.sectionData(*a.findSection("manifest"));
  return std::vector<uint8_t>(bytes.data, bytes.data + bytes.size);
}

/// A .npy image of format `major`.0: magic, version, header length, the
/// header dict padded to 64 bytes and ending in a newline, then `data`.
std::string npy(int major, const std::string &descr, const std::string &shape,
                const std::string &data) {
  std::string header = "{'descr': '" + descr +
                       "', 'fortran_order': False, 'shape': " + shape + ", }";
  size_t lengthBytes = major == 1 ? 2 : 4;
  size_t preamble = 6 + 2 + lengthBytes;
  while ((preamble + header.size() + 1) % 64 != 0)
    header += ' ';
  header += '\n';
  std::string out = "\x93NUMPY";
  out += char(major);
  out += char(0);
  for (size_t i = 0; i < lengthBytes; ++i)
    out += char((header.size() >> (8 * i)) & 0xff);
  return out + header + data;
}

} // namespace

int main(int argc, char **argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT-DIR\n", argv[0]);
    return 2;
  }
  const std::string out = argv[1];
  for (const char *sub : {"", "/artifact", "/manifest", "/npy"})
    ::mkdir((out + sub).c_str(), 0755);

  // The cpu.so is never loaded by the readers under test.
  const std::string soText = "placeholder cpu.so of the fuzz seeds";
  const std::vector<uint8_t> cpuSo(soText.begin(), soText.end());
  test::TestModel cpu = test::TestModel::random(1);
  test::TestModel cuda = test::TestModel::random(2);
  cuda.enableJitCuda("sm_90a");
  // The CUDA artifact's weights come in two 4 KiB hash blocks, the CPU
  // one's in the writer's default 16 MiB (one partial block).
  cuda.weightsBlockSize = kMinWeightsBlockSize;
  // The CPU seeds carry generation facts and an embedded checkpoint file.
  cpu.extraSections.emplace_back(
      SectionSpec::forKind(SectionKind::kEmbeddedFile,
                           "file.generation_config.json"),
      R"({"eos_token_id": [1, 2], "temperature": 0.6})");
  auto addGeneration = [](manifest::ManifestT &m) {
    m.generation = std::make_unique<manifest::GenerationT>();
    m.generation->eos_token_ids = {1, 2};
    m.generation->bos_token_id = 0;
    m.generation->temperature = 0.6;
  };
  for (const auto &[name, model] :
       {std::pair<const char *, test::TestModel *>{"test-model", &cpu},
        {"test-model-cuda", &cuda}}) {
    bool withGeneration = model == &cpu;
    Status status = model->write(out + "/artifact/" + name + ".moea", cpuSo,
                                 [&](manifest::ManifestT &m) {
                                   if (withGeneration)
                                     addGeneration(m);
                                 });
    if (!status.isOk()) {
      std::fprintf(stderr, "fuzz-make-seeds: %s\n", status.toString().c_str());
      return 1;
    }
    manifest::ManifestT m = model->manifest();
    if (withGeneration)
      addGeneration(m);
    if (!model->cudaArch.empty())
      test::TestModel::addCudaLaunches(m, model->cudaArch);
    StatusOr<std::vector<uint8_t>> bytes =
        wrappedManifest(m, out + "/" + name + ".wrapped.moea");
    if (!bytes.isOk()) {
      std::fprintf(stderr, "fuzz-make-seeds: %s\n",
                   bytes.status().toString().c_str());
      return 1;
    }
    if (!test::writeFile(out + "/manifest/" + name + ".fb", *bytes))
      return 1;
  }

  const std::vector<std::pair<std::string, std::string>> arrays = {
      {"i32-3.npy",
       npy(1, "<i4", "(3,)", std::string("\1\0\0\0\2\0\0\0\3\0\0\0", 12))},
      {"f32-2x2-v2.npy", npy(2, "<f4", "(2, 2)", std::string(16, '\0'))},
      {"f16-scalar-v3.npy", npy(3, "<f2", "()", std::string("\0\x3c", 2))},
      {"i64-1.npy", npy(1, "<i8", "(1,)", std::string("\7\0\0\0\0\0\0\0", 8))},
      {"i8-2x0.npy", npy(1, "|i1", "(2, 0)", "")},
      {"u8-4.npy", npy(1, "|u1", "(4,)", "abcd")},
  };
  for (const auto &[name, bytes] : arrays)
    if (!writeBytes(out + "/npy/" + name, bytes))
      return 1;
  return 0;
}
