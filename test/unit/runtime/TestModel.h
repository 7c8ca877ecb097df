//===- TestModel.h - A tiny artifact built from test kernels ----*- C++ -*-===//
//
// Builds the manifest and sections of a three-step test model (embedding,
// bias add, logits; see TestKernels.cpp) with seeded random weights, writes
// it as an artifact with a given cpu.so, and computes its logits
// independently on the host. Shared by the runtime unit tests and the
// `make-test-artifact` tool.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_TEST_UNIT_RUNTIME_TESTMODEL_H
#define MOEC_TEST_UNIT_RUNTIME_TESTMODEL_H

#include "runtime/artifact/ArtifactWriter.h"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace moec::runtime::test {

/// Reads the whole file at `path` (empty on failure).
std::vector<uint8_t> readFile(const std::string &path);
/// Writes `bytes` to `path`; false on failure.
bool writeFile(const std::string &path, const std::vector<uint8_t> &bytes);

/// A fresh folder under $TMPDIR (or /tmp), removed with its files at the end
/// of the scope.
class TempDir {
public:
  TempDir();
  ~TempDir();
  /// The folder.
  const std::string &path() const { return path_; }
  /// `path()/name`.
  std::string file(const std::string &name) const;
  /// Names of the entries in the folder, sorted.
  std::vector<std::string> list() const;

private:
  std::string path_;
};

/// Recomputes the meta digest of the artifact image `bytes` in place (after
/// a deliberate edit of the header, table, trailer or manifest), so that
/// the edit reaches the later checks. Finds the manifest through the table;
/// when the table no longer leads to one, hashes the other parts alone.
void resealMetaDigest(std::vector<uint8_t> &bytes);

/// A manifest packed into its FlatBuffer, read through the accessors as the
/// runtime reads it (for functions that take `const manifest::Manifest &`).
class PackedManifest {
public:
  explicit PackedManifest(const manifest::ManifestT &m)
      : bytes_(packManifest(m)) {}
  const manifest::Manifest &operator*() const {
    return *manifest::GetManifest(bytes_.data());
  }
  const manifest::Manifest *operator->() const { return &**this; }

private:
  std::vector<uint8_t> bytes_;
};

/// Sets the environment variable `name` to `value` (unsets it for null)
/// until the end of the scope, then restores it.
class ScopedEnv {
public:
  ScopedEnv(const char *name, const char *value);
  ~ScopedEnv();
  ScopedEnv(const ScopedEnv &) = delete;
  ScopedEnv &operator=(const ScopedEnv &) = delete;

private:
  std::string name_;
  std::optional<std::string> saved_;
};

/// The test model: weights, manifest, artifact writer and reference.
struct TestModel {
  int64_t vocab = 37;
  int64_t hidden = 16;
  int64_t maxTokens = 8;
  std::vector<float> embed; // [vocab, hidden]
  std::vector<float> bias;  // [hidden]
  std::vector<float> head;  // [vocab, hidden]
  /// Sections `write` adds besides the manifest, cpu.so and weights (e.g.
  /// kernels.cu and cubins for CUDA tests).
  std::vector<std::pair<SectionSpec, std::string>> extraSections;

  /// Random weights in [-1, 1) from `seed`.
  static TestModel random(uint32_t seed);

  /// The manifest: 4 buffers, 3 weights, 3 steps, target cpu.
  manifest::ManifestT manifest() const;

  /// Adds CUDA to `m` for the kernels of TestCudaKernels.cpp: target
  /// `arch`, one or two launches per step, a workspace for the logits.
  static void addCudaLaunches(manifest::ManifestT &m,
                              const std::string &arch = "sm_89");
  /// Makes `write` add CUDA launches (`addCudaLaunches`) and a fake cubin
  /// for `arch` naming the host kernels `kernelsSo` (FakeCudaDriver.cpp).
  void enableFakeCuda(const std::string &kernelsSo,
                      const std::string &arch = "sm_89");
  /// Makes `write` add CUDA launches and a `kernels.cu` with real CUDA
  /// versions of TestCudaKernels.cpp (`cudaSource`), JIT-compiled by the
  /// runtime on a GPU.
  void enableJitCuda(const std::string &arch = "sm_89");
  /// The CUDA C++ of the test model's kernels (the CUDA kernel ABI).
  static std::string cudaSource();
  /// Whether `write` adds CUDA launches, and for which arch.
  std::string cudaArch;
  /// The weights section's hash block size (0: the writer's 16 MiB, which
  /// puts every weight of this model in one block).
  uint64_t weightsBlockSize = 0;
  /// When set, `write` signs the artifact with the key of this seed.
  std::optional<Ed25519Seed> signingSeed;
  /// The bytes of the weights section (weights at 64-byte aligned offsets).
  std::vector<uint8_t> weightsSection() const;

  /// Writes the artifact to `path` with `cpuSo` as its shared object,
  /// after letting `edit` change the manifest (for negative tests).
  Status
  write(const std::string &path, const std::vector<uint8_t> &cpuSo,
        const std::function<void(manifest::ManifestT &)> &edit = {}) const;

  /// Logits [tokens.size(), vocab] computed here, in the same order as the
  /// kernels, with the bias scaled by `biasScale`.
  std::vector<float> reference(const std::vector<int32_t> &tokens,
                               float biasScale = 1.0f) const;

  /// The KV cache `addKvCache` gives the model.
  struct KvCache {
    int64_t pageTokens = 4;
    int64_t maxSequences = 4;
    int64_t maxPages = 16;
  };
  /// Makes `m` (this model's manifest) a KV-cache artifact of format 2.1:
  /// the inputs `positions`, `slots` and `page_table` (buffers 4, 5, 6), a
  /// `kv_cache` of one f32 tensor `kv_cache.0.k` with pages of
  /// [pageTokens, 1, hidden], and after the embedding a step
  /// `moec_test_kv_mean` (TestKernels.cpp) that writes each row's embedding
  /// into its slot's pages and replaces it by the mean of its slot's cached
  /// rows at positions 0 .. its position.
  void addKvCache(manifest::ManifestT &m, const KvCache &cache) const;
  /// Logits [tokens.size(), vocab] of one sequence `tokens` from position 0
  /// through the KV-cache model, computed here in the kernels' order.
  std::vector<float> kvReference(const std::vector<int32_t> &tokens) const;
  /// `n` greedy tokens after `prompt` through the KV-cache model.
  std::vector<int32_t> kvGreedy(std::vector<int32_t> prompt, int64_t n) const;
};

/// A test key pair written by `openssl genpkey -algorithm ed25519` and
/// `openssl pkey -pubout`, shared by the Ed25519 and signature tests.
inline constexpr char kTestPrivatePem[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VwBCIEIJUsHJoInxyq9aaFoecsg0+aFGmMwobG9Qtm+dmwiYFH\n"
    "-----END PRIVATE KEY-----\n";
inline constexpr char kTestPublicPem[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MCowBQYDK2VwAyEAD2O7kRpsmQ/P9FhUCTf1kF+fzoXxaMFEgiNyhqBJlQo=\n"
    "-----END PUBLIC KEY-----\n";

} // namespace moec::runtime::test

#endif // MOEC_TEST_UNIT_RUNTIME_TESTMODEL_H
