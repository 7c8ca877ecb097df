//===- CudaManifestTest.cpp - CUDA fields of the manifest -------*- C++ -*-===//
//
// One negative case per CUDA rule of `verifyManifest` (launch counts, kernel
// names, grid extents and their overflow, block sizes, shared memory,
// workspace, device-filled weights, every field of a tensor map), the
// positive cases they start from, and the grid formula. The artifacts are
// the runtime test model with the CUDA launches of TestCudaKernels.cpp and a
// `kernels.cu` section.
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
             const std::function<void(Manifest &)> &edit = {}) {
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
  EXPECT_EQ(m.steps(2).cuda_size(), 2);
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
  GridExtent g;
  g.set_per_token(16);
  g.set_divisor(64);
  g.set_constant(0);
  EXPECT_EQ(gridExtentAt(g, 1), 1);
  EXPECT_EQ(gridExtentAt(g, 4), 1);
  EXPECT_EQ(gridExtentAt(g, 5), 2);
  EXPECT_EQ(gridExtentAt(g, 8), 2);
  g.set_constant(3);
  EXPECT_EQ(gridExtentAt(g, 5), 5);
  // max(0, 1): an axis that does not depend on T and has no constant.
  g.set_per_token(0);
  g.set_constant(0);
  EXPECT_EQ(gridExtentAt(g, 7), 1);
}

TEST(CudaManifest, CpuOnlyManifestMayCarryLaunches) {
  // Launches are checked, but a manifest without a GPU target needs none.
  TempDir dir;
  TestModel model = TestModel::random(6);
  auto a = writeAndOpen(dir, model, [](Manifest &m) {
    m.mutable_steps(0)->add_cuda()->set_kernel("k");
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
  auto a = writeAndOpen(dir, model, [](Manifest &m) {
    m.set_weights_device_filled(true);
    m.set_weights_fill_seed(42);
    for (Weight &w : *m.mutable_weights())
      w.set_offset(w.offset() + (uint64_t(1) << 32));
  });
  ASSERT_TRUE(a.isOk()) << a.status().toString();
  EXPECT_EQ(weightsExtent((*a)->manifest()), (uint64_t(1) << 32) + 4800);
  EXPECT_NE((*a)->summary().find("not stored: filled by the runtime from seed "
                                 "42"),
            std::string::npos);
}

struct CudaCase {
  const char *what;
  std::function<void(Manifest &)> edit;
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

CudaLaunch *launch(Manifest &m, int step, int l = 0) {
  return m.mutable_steps(step)->mutable_cuda(l);
}

// A valid map on step 1's launch: x (buffer id 1, f32 [T = 8, 16], 512
// bytes at arena offset 64) as {16, 8} with 64-byte rows, box {16, 8}, not
// swizzled (offset 64 is not 128-byte aligned).
TensorMap *addMap(Manifest &m) {
  TensorMap *t = launch(m, 1)->add_tensor_maps();
  t->set_arg(0);
  t->set_dtype(DTYPE_F32);
  t->add_dims(16);
  t->add_dims(8);
  t->add_strides(64);
  t->add_box(16);
  t->add_box(8);
  t->set_swizzle(TENSOR_MAP_SWIZZLE_NONE);
  return t;
}

TEST(CudaManifest, ValidTensorMapsAreAccepted) {
  TempDir dir;
  auto a = writeAndOpen(dir, cudaModel(), [](Manifest &m) {
    addMap(m);
    // The bias (weight id 11, f32 [16], 64 bytes) as rank 1 with a partial
    // box, and embed ([37, 16], 2368 bytes at offset 0) as rank 3, swizzled,
    // with a box past the dims (TMA zero-fills), exactly covering the
    // weight.
    TensorMap *bias = launch(m, 1)->add_tensor_maps();
    bias->set_arg(1);
    bias->set_dtype(DTYPE_F32);
    bias->add_dims(16);
    bias->add_box(4);
    TensorMap *embed = launch(m, 0)->add_tensor_maps();
    embed->set_arg(1);
    embed->set_dtype(DTYPE_F32);
    for (uint64_t d : {16, 37, 1})
      embed->add_dims(d);
    embed->add_strides(64);
    embed->add_strides(37 * 64);
    for (uint32_t b : {32, 256, 2})
      embed->add_box(b);
    embed->set_swizzle(TENSOR_MAP_SWIZZLE_128B);
    // Eight maps on one launch are allowed.
    for (int j = 0; j < 8; ++j)
      *launch(m, 2, 1)->add_tensor_maps() = launch(m, 1)->tensor_maps(1);
    launch(m, 2, 1)->mutable_tensor_maps(0)->set_arg(2);
  });
  ASSERT_TRUE(a.isOk()) << a.status().toString();
  EXPECT_EQ((*a)->manifest().steps(2).cuda(1).tensor_maps_size(), 8);
  EXPECT_NE((*a)->summary().find("block [64, 1, 1] tensor maps 8\n"),
            std::string::npos)
      << (*a)->summary();
}

TEST(CudaManifest, TensorMapSwizzleSpans) {
  EXPECT_EQ(tensorMapSwizzleBytes(TENSOR_MAP_SWIZZLE_NONE), 0u);
  EXPECT_EQ(tensorMapSwizzleBytes(TENSOR_MAP_SWIZZLE_32B), 32u);
  EXPECT_EQ(tensorMapSwizzleBytes(TENSOR_MAP_SWIZZLE_64B), 64u);
  EXPECT_EQ(tensorMapSwizzleBytes(TENSOR_MAP_SWIZZLE_128B), 128u);
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
                 [](Manifest &m) {
                   for (int j = 0; j < 9; ++j)
                     addMap(m);
                 },
                 "steps[1] ('moec_test_add'): cuda[0] ('moec_test_cuda_add'): "
                 "9 tensor maps, at most 8 allowed"},
        CudaCase{"map arg", [](Manifest &m) { addMap(m)->set_arg(3); },
                 "steps[1] ('moec_test_add'): cuda[0] ('moec_test_cuda_add'): "
                 "tensor_maps[0]: arg 3 is not an argument (3 arguments)"},
        CudaCase{"map dtype differs",
                 [](Manifest &m) { addMap(m)->set_dtype(DTYPE_BF16); },
                 MAP0 "dtype bf16 differs from the argument's (f32)"},
        CudaCase{"map dtype unknown",
                 [](Manifest &m) { addMap(m)->set_dtype(DType(99)); },
                 MAP0 "dtype 99 is not a known dtype"},
        CudaCase{"map rank 0",
                 [](Manifest &m) {
                   TensorMap *t = addMap(m);
                   t->clear_dims();
                   t->clear_strides();
                   t->clear_box();
                 },
                 MAP0 "rank 0, expected 1..5"},
        CudaCase{"map rank 6",
                 [](Manifest &m) {
                   TensorMap *t = addMap(m);
                   for (int d = 0; d < 4; ++d) {
                     t->add_dims(1);
                     t->add_strides(512);
                     t->add_box(1);
                   }
                 },
                 MAP0 "rank 6, expected 1..5"},
        CudaCase{"map stride count",
                 [](Manifest &m) { addMap(m)->add_strides(512); },
                 MAP0 "2 dims need 1 strides and 2 box extents, got 2 and 2"},
        CudaCase{"map box count",
                 [](Manifest &m) { addMap(m)->mutable_box()->RemoveLast(); },
                 MAP0 "2 dims need 1 strides and 2 box extents, got 1 and 1"},
        CudaCase{"map dim zero", [](Manifest &m) { addMap(m)->set_dims(1, 0); },
                 MAP0 "dims[1] is 0, expected 1..2^32"},
        CudaCase{"map dim too large",
                 [](Manifest &m) {
                   addMap(m)->set_dims(1, (uint64_t(1) << 32) + 1);
                 },
                 MAP0 "dims[1] is 4294967297, expected 1..2^32"},
        CudaCase{"map stride alignment",
                 [](Manifest &m) { addMap(m)->set_strides(0, 72); },
                 MAP0 "strides[0] is 72, expected a multiple of 16 below 2^40"},
        CudaCase{
            "map stride too large",
            [](Manifest &m) { addMap(m)->set_strides(0, uint64_t(1) << 40); },
            MAP0 "strides[0] is 1099511627776, expected a multiple of 16 "
                 "below 2^40"},
        CudaCase{"map rows overlap",
                 [](Manifest &m) { addMap(m)->set_strides(0, 48); },
                 MAP0 "strides[0] 48 is less than the 64 bytes of dimension "
                      "0"},
        CudaCase{"map planes overlap",
                 [](Manifest &m) {
                   TensorMap *t = addMap(m);
                   t->set_dims(1, 2);
                   t->add_dims(4);
                   t->add_strides(64);
                   t->add_box(1);
                 },
                 MAP0 "strides[1] 64 is less than the 128 bytes of dimension "
                      "1"},
        CudaCase{"map box zero", [](Manifest &m) { addMap(m)->set_box(1, 0); },
                 MAP0 "box[1] is 0, expected 1..256"},
        CudaCase{"map box too large",
                 [](Manifest &m) { addMap(m)->set_box(1, 257); },
                 MAP0 "box[1] is 257, expected 1..256"},
        CudaCase{"map box row bytes",
                 [](Manifest &m) { addMap(m)->set_box(0, 2); },
                 MAP0 "box[0] 2 x 4 bytes is not a multiple of 16"},
        CudaCase{
            "map swizzle unknown",
            [](Manifest &m) { addMap(m)->set_swizzle(TensorMapSwizzle(4)); },
            MAP0 "swizzle 4 is not a known swizzle"},
        CudaCase{
            "map box wider than swizzle",
            [](Manifest &m) { addMap(m)->set_swizzle(TENSOR_MAP_SWIZZLE_32B); },
            MAP0 "box[0] 16 x 4 bytes exceeds the 32-byte swizzle span"},
        CudaCase{
            "map swizzled base unaligned",
            [](Manifest &m) { addMap(m)->set_swizzle(TENSOR_MAP_SWIZZLE_64B); },
            MAP0 "a swizzled map needs a 128-byte aligned argument, but "
                 "its offset is 64"},
        CudaCase{"map past the buffer",
                 [](Manifest &m) { addMap(m)->set_dims(1, 9); },
                 MAP0 "addresses 576 bytes, but the argument has 512"},
        CudaCase{"map past the weight",
                 [](Manifest &m) {
                   TensorMap *t = launch(m, 1)->add_tensor_maps();
                   t->set_arg(1);
                   t->set_dtype(DTYPE_F32);
                   t->add_dims(17);
                   t->add_box(4);
                 },
                 "steps[1] ('moec_test_add'): cuda[0] ('moec_test_cuda_add'): "
                 "tensor_maps[0] (arg 1, weight 'bias'): addresses 68 bytes, "
                 "but the argument has 64"},
        CudaCase{"map extent overflow",
                 [](Manifest &m) {
                   TensorMap *t = addMap(m);
                   t->set_dims(0, uint64_t(1) << 32);
                   t->set_dims(1, uint64_t(1) << 32);
                   t->set_strides(0, (uint64_t(1) << 40) - 16);
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
                 [](Manifest &m) { m.mutable_steps(1)->clear_cuda(); },
                 "steps[1] ('moec_test_add'): has no CUDA launches, but the "
                 "manifest targets a GPU"},
        CudaCase{"kernel name",
                 [](Manifest &m) { launch(m, 0)->set_kernel("1bad"); },
                 "steps[0] ('moec_test_embed'): cuda[0] ('1bad'): kernel is "
                 "not a C identifier"},
        CudaCase{
            "grid rank",
            [](Manifest &m) { launch(m, 0)->mutable_grid()->RemoveLast(); },
            "steps[0] ('moec_test_embed'): cuda[0] "
            "('moec_test_cuda_embed'): has 2 grid and 3 block extents, "
            "expected 3 each"},
        CudaCase{"block rank", [](Manifest &m) { launch(m, 0)->add_block(1); },
                 "steps[0] ('moec_test_embed'): cuda[0] "
                 "('moec_test_cuda_embed'): has 3 grid and 4 block extents, "
                 "expected 3 each"},
        CudaCase{"block zero",
                 [](Manifest &m) { launch(m, 1)->set_block(1, 0); },
                 "steps[1] ('moec_test_add'): cuda[0] ('moec_test_cuda_add'): "
                 "block y is 0, expected 1..1024"},
        CudaCase{"block too wide",
                 [](Manifest &m) { launch(m, 1)->set_block(0, 2048); },
                 "steps[1] ('moec_test_add'): cuda[0] ('moec_test_cuda_add'): "
                 "block x is 2048, expected 1..1024"},
        CudaCase{"block threads",
                 [](Manifest &m) {
                   launch(m, 1)->set_block(0, 64);
                   launch(m, 1)->set_block(1, 32);
                 },
                 "steps[1] ('moec_test_add'): cuda[0] ('moec_test_cuda_add'): "
                 "block 64x32x1 has 2048 threads, at most 1024 allowed"},
        CudaCase{"grid divisor",
                 [](Manifest &m) {
                   launch(m, 2, 1)->mutable_grid(0)->set_divisor(0);
                 },
                 "steps[2] ('moec_test_logits'): cuda[1] "
                 "('moec_test_cuda_copy_out'): grid x: per_token 37, divisor "
                 "0, constant 0 (expected per_token >= 0, divisor >= 1, "
                 "constant >= 0)"},
        CudaCase{"grid negative",
                 [](Manifest &m) {
                   launch(m, 0)->mutable_grid(2)->set_constant(-1);
                 },
                 "steps[0] ('moec_test_embed'): cuda[0] "
                 "('moec_test_cuda_embed'): grid z: per_token 0, divisor 1, "
                 "constant -1 (expected per_token >= 0, divisor >= 1, "
                 "constant >= 0)"},
        CudaCase{"grid overflow",
                 [](Manifest &m) {
                   launch(m, 0)->mutable_grid(0)->set_per_token(int64_t(1)
                                                                << 62);
                 },
                 "steps[0] ('moec_test_embed'): cuda[0] "
                 "('moec_test_cuda_embed'): grid x: extent at max_tokens 8 "
                 "exceeds the CUDA limit 2147483647"},
        CudaCase{"grid x limit",
                 [](Manifest &m) {
                   launch(m, 0)->mutable_grid(0)->set_constant(2147483647);
                 },
                 "steps[0] ('moec_test_embed'): cuda[0] "
                 "('moec_test_cuda_embed'): grid x: extent at max_tokens 8 "
                 "exceeds the CUDA limit 2147483647"},
        CudaCase{"grid y limit",
                 [](Manifest &m) {
                   launch(m, 0)->mutable_grid(1)->set_per_token(8192);
                 },
                 "steps[0] ('moec_test_embed'): cuda[0] "
                 "('moec_test_cuda_embed'): grid y: extent at max_tokens 8 "
                 "exceeds the CUDA limit 65535"},
        CudaCase{
            "shared memory",
            [](Manifest &m) { launch(m, 2)->set_shared_bytes(227 * 1024 + 1); },
            "steps[2] ('moec_test_logits'): cuda[0] "
            "('moec_test_cuda_logits'): shared_bytes 232449 exceeds "
            "232448"},
        CudaCase{"too many launches",
                 [](Manifest &m) {
                   for (int i = 0; i < 64; ++i)
                     *m.mutable_steps(0)->add_cuda() = *launch(m, 0);
                 },
                 "steps[0] ('moec_test_embed'): 65 CUDA launches, at most 64 "
                 "allowed"},
        CudaCase{
            "workspace",
            [](Manifest &m) { m.set_cuda_workspace_bytes(uint64_t(1) << 60); },
            "cuda_workspace_bytes 1152921504606846976 exceeds the limit "
            "281474976710656"},
        CudaCase{"filled weight overflow",
                 [](Manifest &m) {
                   m.set_weights_device_filled(true);
                   m.mutable_weights(0)->set_offset(~uint64_t(0) - 63);
                 },
                 "weights[0] (id 10, 'embed'): offset 18446744073709551552 + "
                 "2368 bytes exceeds the limit 281474976710656"},
        CudaCase{"unfilled weight outside section",
                 [](Manifest &m) {
                   m.mutable_weights(2)->set_offset(uint64_t(1) << 32);
                 },
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
