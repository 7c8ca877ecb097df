//===- CudaManifestTest.cpp - CUDA fields of the manifest -------*- C++ -*-===//
//
// One negative case per CUDA rule of `verifyManifest` (launch counts, kernel
// names, grid extents and their overflow, block sizes, shared memory,
// workspace, device-filled weights, every field of a tensor map, none on a
// KV cache argument), the positive cases they start from, and the grid
// formula. The artifacts are the runtime test model with the CUDA launches
// of TestCudaKernels.cpp and a `kernels.cu` section.
//
//===----------------------------------------------------------------------===//

#include "TestModel.h"

#include "runtime/artifact/Artifact.h"

#include <gtest/gtest.h>

#include <functional>

using namespace moec::runtime;
using namespace moec::runtime::test;
using namespace moec::runtime::manifest;

namespace {

TestModel cudaModel() {
  TestModel model = TestModel::random(6);
  model.cudaArch = "sm_89";
  model.extraSections.emplace_back(
      SectionSpec::forKind(SectionKind::kKernelsCu),
      "extern \"C\" __global__ void k() {}\n");
  return model;
}

std::vector<uint8_t> fakeSo() { return std::vector<uint8_t>(64, 0x7f); }

StatusOr<std::unique_ptr<Artifact>>
writeAndOpen(const TempDir &dir, const TestModel &model,
             const std::function<void(ManifestT &)> &edit = {}) {
  std::string path = dir.file("m.moea");
  Status w = model.write(path, fakeSo(), edit);
  if (!w.isOk())
    return w;
  return Artifact::open(path);
}

TEST(CudaManifest, ValidLaunchesAreAccepted) {
  TempDir dir;
  auto a = writeAndOpen(dir, cudaModel());
  ASSERT_TRUE(a.isOk()) << a.status().toString();
  const Manifest &m = (*a)->manifest();
  EXPECT_TRUE(hasCudaTarget(m));
  EXPECT_EQ(m.steps()->Get(2)->cuda()->size(), 2u);
  // --info lists the launches and the code sections.
  std::string summary = (*a)->summary();
  EXPECT_NE(summary.find("cuda:      4 launches in 3 steps, workspace 1.2 KiB, "
                         "code kernels.cu"),
            std::string::npos)
      << summary;
  EXPECT_NE(summary.find("cuda moec_test_cuda_add grid [ceil(T*16/64), 1, 1] "
                         "block [64, 1, 1]"),
            std::string::npos)
      << summary;
}

TEST(CudaManifest, GridExtentFormula) {
  GridExtent g(16, 64, 0);
  EXPECT_EQ(gridExtentAt(g, 1), 1);
  EXPECT_EQ(gridExtentAt(g, 4), 1);
  EXPECT_EQ(gridExtentAt(g, 5), 2);
  EXPECT_EQ(gridExtentAt(g, 8), 2);
  g.mutate_constant(3);
  EXPECT_EQ(gridExtentAt(g, 5), 5);
  // max(0, 1): an axis that does not depend on T and has no constant.
  g = GridExtent(0, 64, 0);
  EXPECT_EQ(gridExtentAt(g, 7), 1);
}

TEST(CudaManifest, CpuOnlyManifestMayCarryLaunches) {
  // Launches are checked, but a manifest without a GPU target needs none.
  TempDir dir;
  TestModel model = TestModel::random(6);
  auto a = writeAndOpen(dir, model, [](ManifestT &m) {
    m.steps[0]->cuda.push_back(std::make_unique<CudaLaunchT>());
    m.steps[0]->cuda.back()->kernel = "k";
  });
  ASSERT_FALSE(a.isOk());
  EXPECT_NE(a.status().message().find(
                "steps[0] ('moec_test_embed'): cuda[0] ('k'): has 0 grid and "
                "0 block extents, expected 3 each"),
            std::string::npos)
      << a.status().message();
}

TEST(CudaManifest, DeviceFilledWeightsNeedNoBytes) {
  TempDir dir;
  TestModel model = cudaModel();
  // Every weight moved far beyond the (small) weights section.
  auto a = writeAndOpen(dir, model, [](ManifestT &m) {
    m.weights_device_filled = true;
    m.weights_fill_seed = 42;
    for (auto &w : m.weights)
      w->offset += uint64_t(1) << 32;
  });
  ASSERT_TRUE(a.isOk()) << a.status().toString();
  EXPECT_EQ(weightsExtent((*a)->manifest()), (uint64_t(1) << 32) + 4800);
  EXPECT_NE((*a)->summary().find("not stored: filled by the runtime from seed "
                                 "42"),
            std::string::npos);
}

struct CudaCase {
  const char *what;
  std::function<void(ManifestT &)> edit;
  const char *message; // after "<file>: manifest: "
};

class CudaManifestRules : public ::testing::TestWithParam<CudaCase> {};

TEST_P(CudaManifestRules, IsRejectedWithTheField) {
  const CudaCase &c = GetParam();
  TempDir dir;
  auto a = writeAndOpen(dir, cudaModel(), c.edit);
  ASSERT_FALSE(a.isOk()) << c.what;
  EXPECT_EQ(a.status().code(), StatusCode::kCorrupt);
  EXPECT_EQ(a.status().message(),
            dir.file("m.moea") + ": manifest: " + c.message);
}

CudaLaunchT *launch(ManifestT &m, int step, int l = 0) {
  return m.steps[size_t(step)]->cuda[size_t(l)].get();
}

/// Appends an empty tensor map to launch `l` of step `step`.
TensorMapT *newMap(ManifestT &m, int step, int l = 0) {
  auto &maps = launch(m, step, l)->tensor_maps;
  maps.push_back(std::make_unique<TensorMapT>());
  return maps.back().get();
}

// A valid map on step 1's launch: x (buffer id 1, f32 [T = 8, 16], 512
// bytes at arena offset 64) as {16, 8} with 64-byte rows, box {16, 8}, not
// swizzled (offset 64 is not 128-byte aligned).
TensorMapT *addMap(ManifestT &m) {
  TensorMapT *t = newMap(m, 1);
  t->arg = 0;
  t->dtype = DType::F32;
  t->dims = {16, 8};
  t->strides = {64};
  t->box = {16, 8};
  t->swizzle = TensorMapSwizzle::NONE;
  return t;
}

// A KV cache pool is the runtime's, allocated and resized at run time: no
// tensor map can describe it.
TEST(CudaManifest, KvCacheArgumentHasNoTensorMap) {
  TempDir dir;
  TestModel model = cudaModel();
  auto a = writeAndOpen(dir, model, [&](ManifestT &m) {
    model.addKvCache(m, {});
    // The KV cache step (1) gets a launch like the bias add's (now step 2)
    // and a map of its cache argument, a [16, 4] f32 page.
    m.steps[1]->cuda.push_back(std::make_unique<CudaLaunchT>(*launch(m, 2)));
    TensorMapT *map = newMap(m, 1);
    map->arg = 3;
    map->dtype = DType::F32;
    map->dims = {16, 4};
    map->strides = {64};
    map->box = {16, 4};
  });
  ASSERT_FALSE(a.isOk());
  EXPECT_EQ(a.status().message(),
            dir.file("m.moea") +
                ": manifest: steps[1] ('moec_test_kv_mean'): cuda[0] "
                "('moec_test_cuda_add'): tensor_maps[0]: arg 3 is a KV cache "
                "tensor, which has no tensor map");
}

TEST(CudaManifest, ValidTensorMapsAreAccepted) {
  TempDir dir;
  auto a = writeAndOpen(dir, cudaModel(), [](ManifestT &m) {
    addMap(m);
    // The bias (weight id 11, f32 [16], 64 bytes) as rank 1 with a partial
    // box, and embed ([37, 16], 2368 bytes at offset 0) as rank 3, swizzled,
    // with a box past the dims (TMA zero-fills), exactly covering the
    // weight.
    TensorMapT *bias = newMap(m, 1);
    bias->arg = 1;
    bias->dtype = DType::F32;
    bias->dims = {16};
    bias->box = {4};
    TensorMapT *embed = newMap(m, 0);
    embed->arg = 1;
    embed->dtype = DType::F32;
    embed->dims = {16, 37, 1};
    embed->strides = {64, 37 * 64};
    embed->box = {32, 256, 2};
    embed->swizzle = TensorMapSwizzle::SWIZZLE_128B;
    // Eight maps on one launch are allowed.
    for (int j = 0; j < 8; ++j)
      *newMap(m, 2, 1) = *launch(m, 1)->tensor_maps[1];
    launch(m, 2, 1)->tensor_maps[0]->arg = 2;
  });
  ASSERT_TRUE(a.isOk()) << a.status().toString();
  EXPECT_EQ(
      (*a)->manifest().steps()->Get(2)->cuda()->Get(1)->tensor_maps()->size(),
      8u);
  EXPECT_NE((*a)->summary().find("block [64, 1, 1] tensor maps 8\n"),
            std::string::npos)
      << (*a)->summary();
}

TEST(CudaManifest, TensorMapSwizzleSpans) {
  EXPECT_EQ(tensorMapSwizzleBytes(TensorMapSwizzle::NONE), 0u);
  EXPECT_EQ(tensorMapSwizzleBytes(TensorMapSwizzle::SWIZZLE_32B), 32u);
  EXPECT_EQ(tensorMapSwizzleBytes(TensorMapSwizzle::SWIZZLE_64B), 64u);
  EXPECT_EQ(tensorMapSwizzleBytes(TensorMapSwizzle::SWIZZLE_128B), 128u);
  EXPECT_EQ(tensorMapSwizzleBytes(TensorMapSwizzle(9)), 0u);
}

// The prefix of every tensor map error below.
#define MAP0                                                                   \
  "steps[1] ('moec_test_add'): cuda[0] ('moec_test_cuda_add'): "               \
  "tensor_maps[0] (arg 0, buffer 'x'): "

INSTANTIATE_TEST_SUITE_P(
    TensorMaps, CudaManifestRules,
    ::testing::Values(
        CudaCase{"too many maps",
                 [](ManifestT &m) {
                   for (int j = 0; j < 9; ++j)
                     addMap(m);
                 },
                 "steps[1] ('moec_test_add'): cuda[0] ('moec_test_cuda_add'): "
                 "9 tensor maps, at most 8 allowed"},
        CudaCase{"map arg", [](ManifestT &m) { addMap(m)->arg = 3; },
                 "steps[1] ('moec_test_add'): cuda[0] ('moec_test_cuda_add'): "
                 "tensor_maps[0]: arg 3 is not an argument (3 arguments)"},
        CudaCase{"map dtype differs",
                 [](ManifestT &m) { addMap(m)->dtype = DType::BF16; },
                 MAP0 "dtype bf16 differs from the argument's (f32)"},
        CudaCase{"map dtype unknown",
                 [](ManifestT &m) { addMap(m)->dtype = DType(99); },
                 MAP0 "dtype 99 is not a known dtype"},
        CudaCase{"map rank 0",
                 [](ManifestT &m) {
                   TensorMapT *t = addMap(m);
                   t->dims.clear();
                   t->strides.clear();
                   t->box.clear();
                 },
                 MAP0 "rank 0, expected 1..5"},
        CudaCase{"map rank 6",
                 [](ManifestT &m) {
                   TensorMapT *t = addMap(m);
                   for (int d = 0; d < 4; ++d) {
                     t->dims.push_back(1);
                     t->strides.push_back(512);
                     t->box.push_back(1);
                   }
                 },
                 MAP0 "rank 6, expected 1..5"},
        CudaCase{"map stride count",
                 [](ManifestT &m) { addMap(m)->strides.push_back(512); },
                 MAP0 "2 dims need 1 strides and 2 box extents, got 2 and 2"},
        CudaCase{"map box count",
                 [](ManifestT &m) { addMap(m)->box.pop_back(); },
                 MAP0 "2 dims need 1 strides and 2 box extents, got 1 and 1"},
        CudaCase{"map dim zero", [](ManifestT &m) { addMap(m)->dims[1] = 0; },
                 MAP0 "dims[1] is 0, expected 1..2^32"},
        CudaCase{
            "map dim too large",
            [](ManifestT &m) { addMap(m)->dims[1] = (uint64_t(1) << 32) + 1; },
            MAP0 "dims[1] is 4294967297, expected 1..2^32"},
        CudaCase{"map stride alignment",
                 [](ManifestT &m) { addMap(m)->strides[0] = 72; },
                 MAP0 "strides[0] is 72, expected a multiple of 16 below 2^40"},
        CudaCase{
            "map stride too large",
            [](ManifestT &m) { addMap(m)->strides[0] = uint64_t(1) << 40; },
            MAP0 "strides[0] is 1099511627776, expected a multiple of 16 "
                 "below 2^40"},
        CudaCase{"map rows overlap",
                 [](ManifestT &m) { addMap(m)->strides[0] = 48; },
                 MAP0 "strides[0] 48 is less than the 64 bytes of dimension "
                      "0"},
        CudaCase{"map planes overlap",
                 [](ManifestT &m) {
                   TensorMapT *t = addMap(m);
                   t->dims = {16, 2, 4};
                   t->strides = {64, 64};
                   t->box = {16, 8, 1};
                 },
                 MAP0 "strides[1] 64 is less than the 128 bytes of dimension "
                      "1"},
        CudaCase{"map box zero", [](ManifestT &m) { addMap(m)->box[1] = 0; },
                 MAP0 "box[1] is 0, expected 1..256"},
        CudaCase{"map box too large",
                 [](ManifestT &m) { addMap(m)->box[1] = 257; },
                 MAP0 "box[1] is 257, expected 1..256"},
        CudaCase{"map box row bytes",
                 [](ManifestT &m) { addMap(m)->box[0] = 2; },
                 MAP0 "box[0] 2 x 4 bytes is not a multiple of 16"},
        CudaCase{"map swizzle unknown",
                 [](ManifestT &m) { addMap(m)->swizzle = TensorMapSwizzle(4); },
                 MAP0 "swizzle 4 is not a known swizzle"},
        CudaCase{"map box wider than swizzle",
                 [](ManifestT &m) {
                   addMap(m)->swizzle = TensorMapSwizzle::SWIZZLE_32B;
                 },
                 MAP0 "box[0] 16 x 4 bytes exceeds the 32-byte swizzle span"},
        CudaCase{"map swizzled base unaligned",
                 [](ManifestT &m) {
                   addMap(m)->swizzle = TensorMapSwizzle::SWIZZLE_64B;
                 },
                 MAP0 "a swizzled map needs a 128-byte aligned argument, but "
                      "its offset is 64"},
        CudaCase{"map past the buffer",
                 [](ManifestT &m) { addMap(m)->dims[1] = 9; },
                 MAP0 "addresses 576 bytes, but the argument has 512"},
        CudaCase{"map past the weight",
                 [](ManifestT &m) {
                   TensorMapT *t = newMap(m, 1);
                   t->arg = 1;
                   t->dtype = DType::F32;
                   t->dims = {17};
                   t->box = {4};
                 },
                 "steps[1] ('moec_test_add'): cuda[0] ('moec_test_cuda_add'): "
                 "tensor_maps[0] (arg 1, weight 'bias'): addresses 68 bytes, "
                 "but the argument has 64"},
        CudaCase{"map extent overflow",
                 [](ManifestT &m) {
                   TensorMapT *t = addMap(m);
                   t->dims = {uint64_t(1) << 32, uint64_t(1) << 32};
                   t->strides = {(uint64_t(1) << 40) - 16};
                 },
                 MAP0 "addresses more than 2^64 bytes, but the argument has "
                      "512"}),
    [](const ::testing::TestParamInfo<CudaCase> &info) {
      std::string name = info.param.what;
      for (char &c : name)
        if (!std::isalnum(static_cast<unsigned char>(c)))
          c = '_';
      return name;
    });

INSTANTIATE_TEST_SUITE_P(
    Rules, CudaManifestRules,
    ::testing::Values(
        CudaCase{"step without launches",
                 [](ManifestT &m) { m.steps[1]->cuda.clear(); },
                 "steps[1] ('moec_test_add'): has no CUDA launches, but the "
                 "manifest targets a GPU"},
        CudaCase{"kernel name",
                 [](ManifestT &m) { launch(m, 0)->kernel = "1bad"; },
                 "steps[0] ('moec_test_embed'): cuda[0] ('1bad'): kernel is "
                 "not a C identifier"},
        CudaCase{"grid rank",
                 [](ManifestT &m) { launch(m, 0)->grid.pop_back(); },
                 "steps[0] ('moec_test_embed'): cuda[0] "
                 "('moec_test_cuda_embed'): has 2 grid and 3 block extents, "
                 "expected 3 each"},
        CudaCase{"block rank",
                 [](ManifestT &m) { launch(m, 0)->block.push_back(1); },
                 "steps[0] ('moec_test_embed'): cuda[0] "
                 "('moec_test_cuda_embed'): has 3 grid and 4 block extents, "
                 "expected 3 each"},
        CudaCase{"block zero", [](ManifestT &m) { launch(m, 1)->block[1] = 0; },
                 "steps[1] ('moec_test_add'): cuda[0] ('moec_test_cuda_add'): "
                 "block y is 0, expected 1..1024"},
        CudaCase{"block too wide",
                 [](ManifestT &m) { launch(m, 1)->block[0] = 2048; },
                 "steps[1] ('moec_test_add'): cuda[0] ('moec_test_cuda_add'): "
                 "block x is 2048, expected 1..1024"},
        CudaCase{"block threads",
                 [](ManifestT &m) {
                   launch(m, 1)->block = {64, 32, 1};
                 },
                 "steps[1] ('moec_test_add'): cuda[0] ('moec_test_cuda_add'): "
                 "block 64x32x1 has 2048 threads, at most 1024 allowed"},
        CudaCase{
            "grid divisor",
            [](ManifestT &m) { launch(m, 2, 1)->grid[0].mutate_divisor(0); },
            "steps[2] ('moec_test_logits'): cuda[1] "
            "('moec_test_cuda_copy_out'): grid x: per_token 37, divisor "
            "0, constant 0 (expected per_token >= 0, divisor >= 1, "
            "constant >= 0)"},
        CudaCase{
            "grid negative",
            [](ManifestT &m) { launch(m, 0)->grid[2].mutate_constant(-1); },
            "steps[0] ('moec_test_embed'): cuda[0] "
            "('moec_test_cuda_embed'): grid z: per_token 0, divisor 1, "
            "constant -1 (expected per_token >= 0, divisor >= 1, "
            "constant >= 0)"},
        CudaCase{"grid overflow",
                 [](ManifestT &m) {
                   launch(m, 0)->grid[0].mutate_per_token(int64_t(1) << 62);
                 },
                 "steps[0] ('moec_test_embed'): cuda[0] "
                 "('moec_test_cuda_embed'): grid x: extent at max_tokens 8 "
                 "exceeds the CUDA limit 2147483647"},
        CudaCase{"grid x limit",
                 [](ManifestT &m) {
                   launch(m, 0)->grid[0].mutate_constant(2147483647);
                 },
                 "steps[0] ('moec_test_embed'): cuda[0] "
                 "('moec_test_cuda_embed'): grid x: extent at max_tokens 8 "
                 "exceeds the CUDA limit 2147483647"},
        CudaCase{
            "grid y limit",
            [](ManifestT &m) { launch(m, 0)->grid[1].mutate_per_token(8192); },
            "steps[0] ('moec_test_embed'): cuda[0] "
            "('moec_test_cuda_embed'): grid y: extent at max_tokens 8 "
            "exceeds the CUDA limit 65535"},
        CudaCase{
            "shared memory",
            [](ManifestT &m) { launch(m, 2)->shared_bytes = 227 * 1024 + 1; },
            "steps[2] ('moec_test_logits'): cuda[0] "
            "('moec_test_cuda_logits'): shared_bytes 232449 exceeds "
            "232448"},
        CudaCase{"too many launches",
                 [](ManifestT &m) {
                   for (int i = 0; i < 64; ++i)
                     m.steps[0]->cuda.push_back(
                         std::make_unique<CudaLaunchT>(*launch(m, 0)));
                 },
                 "steps[0] ('moec_test_embed'): 65 CUDA launches, at most 64 "
                 "allowed"},
        CudaCase{
            "workspace",
            [](ManifestT &m) { m.cuda_workspace_bytes = uint64_t(1) << 60; },
            "cuda_workspace_bytes 1152921504606846976 exceeds the limit "
            "281474976710656"},
        CudaCase{"filled weight overflow",
                 [](ManifestT &m) {
                   m.weights_device_filled = true;
                   m.weights[0]->offset = ~uint64_t(0) - 63;
                 },
                 "weights[0] (id 10, 'embed'): offset 18446744073709551552 + "
                 "2368 bytes exceeds the limit 281474976710656"},
        CudaCase{"unfilled weight outside section",
                 [](ManifestT &m) { m.weights[2]->offset = uint64_t(1) << 32; },
                 "weights[2] (id 12, 'head'): offset 4294967296 + 2368 bytes "
                 "exceeds the weights section (4800 bytes)"}),
    [](const ::testing::TestParamInfo<CudaCase> &info) {
      std::string name = info.param.what;
      for (char &c : name)
        if (!std::isalnum(static_cast<unsigned char>(c)))
          c = '_';
      return name;
    });

} // namespace
