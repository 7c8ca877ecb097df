//===- CudaRuntimeTest.cpp - The CUDA executor without a GPU ----*- C++ -*-===//
//
// The CUDA path as far as it runs on a machine without a GPU: the driver
// table against a missing library and the toolkit's stub (unavailable, with
// the reason), the C API falling back to the CPU, and the whole executor on
// FakeCudaDriver.cpp (a host-memory driver): code selection per arch,
// kernels resolved up front, the kernel ABI (the test model's logits are
// exact), grids, workspace, sticky errors, resource release, the JIT path
// through the kernel cache, device-filled weights equal to the CPU's, and
// tensor maps (encoded at load with TMA, zero without; the fake's encode
// against cuda.h's rules). Also the deterministic weight fill itself.
//
//===----------------------------------------------------------------------===//

#include "TestModel.h"

#include "runtime/capi/moec.h"
#include "runtime/check/GpuCheck.h"
#include "runtime/cpu/CpuExecutor.h"
#include "runtime/cuda/CudaExecutor.h"
#include "runtime/executor/WeightFill.h"
#include "runtime/nvrtc/Nvrtc.h"
#include "test/emu/tensor_map_image.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <dlfcn.h>
#include <sys/stat.h>

#ifdef MOEC_HAVE_CUDA_H
#include <cuda.h>
#include <type_traits>
#endif

using namespace moec::runtime;
using namespace moec::runtime::test;

namespace {

//===----------------------------------------------------------------------===//
// The driver table against cuda.h (compile time, where the toolkit is)
//===----------------------------------------------------------------------===//

#ifdef MOEC_HAVE_CUDA_H
// Enums (CUresult, attributes) are compared as the int the table uses.
template <typename T, bool = std::is_enum_v<T>> struct Norm { using type = T; };
template <typename T> struct Norm<T, true> {
  using type = std::make_signed_t<std::underlying_type_t<T>>;
};
// CUtensorMap is declared as the runtime's own cu::TensorMap.
template <> struct Norm<CUtensorMap *, false> { using type = cu::TensorMap *; };
template <typename F> struct NormFn;
template <typename R, typename... A> struct NormFn<R (*)(A...)> {
  using type = typename Norm<R>::type (*)(typename Norm<A>::type...);
};
#define MOEC_CHECK_SIGNATURE(member, api)                                      \
  static_assert(std::is_same_v<NormFn<decltype(CudaDriver::member)>::type,     \
                               NormFn<decltype(&api)>::type>,                  \
                #api " differs from CudaDriver::" #member)
MOEC_CHECK_SIGNATURE(init, cuInit);
MOEC_CHECK_SIGNATURE(driverGetVersion, cuDriverGetVersion);
MOEC_CHECK_SIGNATURE(getErrorName, cuGetErrorName);
MOEC_CHECK_SIGNATURE(getErrorString, cuGetErrorString);
MOEC_CHECK_SIGNATURE(deviceGetCount, cuDeviceGetCount);
MOEC_CHECK_SIGNATURE(deviceGet, cuDeviceGet);
MOEC_CHECK_SIGNATURE(deviceGetName, cuDeviceGetName);
MOEC_CHECK_SIGNATURE(deviceGetAttribute, cuDeviceGetAttribute);
MOEC_CHECK_SIGNATURE(deviceTotalMem, cuDeviceTotalMem);
MOEC_CHECK_SIGNATURE(devicePrimaryCtxRetain, cuDevicePrimaryCtxRetain);
MOEC_CHECK_SIGNATURE(devicePrimaryCtxRelease, cuDevicePrimaryCtxRelease);
MOEC_CHECK_SIGNATURE(ctxPushCurrent, cuCtxPushCurrent);
MOEC_CHECK_SIGNATURE(ctxPopCurrent, cuCtxPopCurrent);
MOEC_CHECK_SIGNATURE(moduleLoadData, cuModuleLoadData);
MOEC_CHECK_SIGNATURE(moduleUnload, cuModuleUnload);
MOEC_CHECK_SIGNATURE(moduleGetFunction, cuModuleGetFunction);
MOEC_CHECK_SIGNATURE(funcGetAttribute, cuFuncGetAttribute);
MOEC_CHECK_SIGNATURE(funcSetAttribute, cuFuncSetAttribute);
MOEC_CHECK_SIGNATURE(memAlloc, cuMemAlloc);
MOEC_CHECK_SIGNATURE(memFree, cuMemFree);
MOEC_CHECK_SIGNATURE(memGetInfo, cuMemGetInfo);
MOEC_CHECK_SIGNATURE(memcpyHtoDAsync, cuMemcpyHtoDAsync);
MOEC_CHECK_SIGNATURE(memcpyDtoHAsync, cuMemcpyDtoHAsync);
MOEC_CHECK_SIGNATURE(memsetD8Async, cuMemsetD8Async);
MOEC_CHECK_SIGNATURE(streamCreate, cuStreamCreate);
MOEC_CHECK_SIGNATURE(streamDestroy, cuStreamDestroy);
MOEC_CHECK_SIGNATURE(streamSynchronize, cuStreamSynchronize);
MOEC_CHECK_SIGNATURE(launchKernel, cuLaunchKernel);
MOEC_CHECK_SIGNATURE(eventCreate, cuEventCreate);
MOEC_CHECK_SIGNATURE(eventDestroy, cuEventDestroy);
MOEC_CHECK_SIGNATURE(eventRecord, cuEventRecord);
MOEC_CHECK_SIGNATURE(eventElapsedTime, cuEventElapsedTime);
MOEC_CHECK_SIGNATURE(tensorMapEncodeTiled, cuTensorMapEncodeTiled);
// The enum parameters are passed as int: cuda.h's enums are int-sized.
static_assert(sizeof(CUtensorMapDataType) == sizeof(int) &&
              sizeof(CUtensorMapSwizzle) == sizeof(int) &&
              sizeof(CUtensorMapInterleave) == sizeof(int) &&
              sizeof(CUtensorMapL2promotion) == sizeof(int) &&
              sizeof(CUtensorMapFloatOOBfill) == sizeof(int));
static_assert(sizeof(cu::TensorMap) == sizeof(CUtensorMap));
static_assert(sizeof(cu::TensorMap) == 128);
// At least cuda.h's alignment (64 in CUDA 12, 128 in 13); the driver
// requires 64.
static_assert(alignof(cu::TensorMap) >= alignof(CUtensorMap) &&
              alignof(cu::TensorMap) % 64 == 0);
static_assert(sizeof(cu::TensorMap::opaque) / sizeof(uint64_t) ==
              CU_TENSOR_MAP_NUM_QWORDS);
static_assert(cu::kTensorMapDataTypeUint8 == CU_TENSOR_MAP_DATA_TYPE_UINT8);
static_assert(cu::kTensorMapDataTypeUint16 == CU_TENSOR_MAP_DATA_TYPE_UINT16);
static_assert(cu::kTensorMapDataTypeInt32 == CU_TENSOR_MAP_DATA_TYPE_INT32);
static_assert(cu::kTensorMapDataTypeInt64 == CU_TENSOR_MAP_DATA_TYPE_INT64);
static_assert(cu::kTensorMapDataTypeFloat32 == CU_TENSOR_MAP_DATA_TYPE_FLOAT32);
static_assert(cu::kTensorMapInterleaveNone == CU_TENSOR_MAP_INTERLEAVE_NONE);
static_assert(cu::kTensorMapL2Promotion128B ==
              CU_TENSOR_MAP_L2_PROMOTION_L2_128B);
static_assert(cu::kTensorMapFloatOobFillNone ==
              CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
static_assert(cu::kTensorMapSwizzleNone == CU_TENSOR_MAP_SWIZZLE_NONE);
static_assert(cu::kTensorMapSwizzle32B == CU_TENSOR_MAP_SWIZZLE_32B);
static_assert(cu::kTensorMapSwizzle64B == CU_TENSOR_MAP_SWIZZLE_64B);
static_assert(cu::kTensorMapSwizzle128B == CU_TENSOR_MAP_SWIZZLE_128B);
// The manifest's TensorMapSwizzle is passed through unchanged.
static_assert(
    int(manifest::TensorMapSwizzle::NONE) == CU_TENSOR_MAP_SWIZZLE_NONE &&
    int(manifest::TensorMapSwizzle::SWIZZLE_32B) == CU_TENSOR_MAP_SWIZZLE_32B &&
    int(manifest::TensorMapSwizzle::SWIZZLE_64B) == CU_TENSOR_MAP_SWIZZLE_64B &&
    int(manifest::TensorMapSwizzle::SWIZZLE_128B) ==
        CU_TENSOR_MAP_SWIZZLE_128B);
static_assert(cu::kErrorOutOfMemory == CUDA_ERROR_OUT_OF_MEMORY);
static_assert(cu::kErrorStubLibrary == CUDA_ERROR_STUB_LIBRARY);
static_assert(cu::kErrorNoDevice == CUDA_ERROR_NO_DEVICE);
static_assert(cu::kErrorNotFound == CUDA_ERROR_NOT_FOUND);
static_assert(cu::kDeviceAttrMultiprocessorCount ==
              CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT);
static_assert(cu::kDeviceAttrComputeCapabilityMajor ==
              CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR);
static_assert(cu::kDeviceAttrComputeCapabilityMinor ==
              CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR);
static_assert(cu::kDeviceAttrMaxSharedMemoryPerBlockOptin ==
              CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN);
static_assert(cu::kFuncAttrMaxThreadsPerBlock ==
              CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK);
static_assert(cu::kFuncAttrMaxDynamicSharedSizeBytes ==
              CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES);
static_assert(cu::kStreamNonBlocking == CU_STREAM_NON_BLOCKING);
static_assert(std::is_same_v<cu::DevicePtr, CUdeviceptr>);
static_assert(std::is_same_v<cu::Context, CUcontext>);
#endif

TEST(CudaDriver, ArchForComputeCapability) {
  EXPECT_EQ(cudaArchFor(8, 0), "sm_80");
  EXPECT_EQ(cudaArchFor(8, 9), "sm_89");
  EXPECT_EQ(cudaArchFor(9, 0), "sm_90a");
  EXPECT_EQ(cudaArchFor(10, 0), "sm_100");
}

TEST(CudaDriver, MissingLibraryIsUnavailable) {
  auto d = CudaDriver::load("libmoec-no-such-driver.so.1");
  ASSERT_FALSE(d.isOk());
  EXPECT_EQ(d.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(d.status().message().rfind("CUDA unavailable: "
                                       "libmoec-no-such-driver.so.1: cannot "
                                       "load the CUDA driver (",
                                       0),
            0u)
      << d.status().message();
}

TEST(CudaDriver, StubLibraryIsUnavailable) {
  const char *stub = "/usr/local/cuda/lib64/stubs/libcuda.so";
  struct stat st;
  if (stat(stub, &st) != 0)
    GTEST_SKIP() << "no CUDA toolkit stub at " << stub;
  // Every symbol the table needs resolves in CUDA's own libcuda; only
  // cuInit then refuses.
  auto d = CudaDriver::load(stub);
  ASSERT_FALSE(d.isOk());
  EXPECT_EQ(d.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(d.status().message().find("cuInit failed: CUDA_ERROR_STUB_LIBRARY"),
            std::string::npos)
      << d.status().message();
  EXPECT_NE(d.status().message().find("the CUDA toolkit's stub library"),
            std::string::npos);
}

//===----------------------------------------------------------------------===//
// The fake driver
//===----------------------------------------------------------------------===//

const CudaDriver &fake() {
  static const CudaDriver *driver = [] {
    auto d = CudaDriver::load(MOEC_FAKE_CUDA_SO);
    if (!d.isOk()) {
      ADD_FAILURE() << d.status().toString();
      std::abort();
    }
    return std::move(d).value().release();
  }();
  return *driver;
}

template <typename Fn> Fn fakeControl(const char *name) {
  void *symbol = dlsym(fake().handle, name);
  if (!symbol)
    std::abort();
  return reinterpret_cast<Fn>(symbol);
}
void fakeFail(const char *call, int after, int code) {
  fakeControl<void (*)(const char *, int, int)>("moecFakeFail")(call, after,
                                                                code);
}
void fakeReset() { fakeControl<void (*)()>("moecFakeReset")(); }
int fakeCounter(const char *name) { return fakeControl<int (*)()>(name)(); }

class FakeCudaTest : public ::testing::Test {
protected:
  void SetUp() override {
    fakeReset();
    fakeControl<void (*)(int)>("moecFakeSetMaxThreads")(1024);
    model.enableFakeCuda(MOEC_TEST_CUDA_KERNELS_SO);
    options.driver = &fake();
    options.cache.directory = dir.file("cache");
  }
  void TearDown() override {
    fakeReset();
    unsetenv("MOEC_FAKE_CUDA_CC");
    // Nothing leaks, whatever the test did.
    EXPECT_EQ(fakeCounter("moecFakeAllocations"), 0);
    EXPECT_EQ(fakeCounter("moecFakeRetainedContexts"), 0);
    EXPECT_EQ(fakeCounter("moecFakeContextDepth"), 0);
    std::string rm = "rm -rf '" + dir.file("cache") + "'";
    if (std::system(rm.c_str()) != 0)
      ADD_FAILURE() << rm;
  }
  std::shared_ptr<const Artifact>
  write(const std::function<void(manifest::ManifestT &)> &edit = {}) {
    std::string path = dir.file("m.moea");
    Status s = model.write(path, readFile(MOEC_TEST_KERNELS_SO), edit);
    EXPECT_TRUE(s.isOk()) << s.toString();
    auto a = Artifact::open(path);
    EXPECT_TRUE(a.isOk()) << a.status().toString();
    return a.isOk()
               ? std::shared_ptr<const Artifact>(std::move(a).value().release())
               : nullptr;
  }
  // Runs `tokens` and returns the logits (empty on failure, with the
  // failure recorded).
  std::vector<float> logits(Executor &ex, const std::vector<int32_t> &tokens) {
    int64_t n = int64_t(tokens.size());
    Status s = ex.setInput(0, tokens.data(), uint64_t(n) * 4, n);
    if (s.isOk())
      s = ex.run(n);
    if (!s.isOk()) {
      ADD_FAILURE() << s.toString();
      return {};
    }
    auto view = ex.tensor(true, 0, n);
    if (!view.isOk()) {
      ADD_FAILURE() << view.status().toString();
      return {};
    }
    const float *p = reinterpret_cast<const float *>(view->data);
    return std::vector<float>(p, p + view->bytes / 4);
  }

  TempDir dir;
  TestModel model = TestModel::random(77);
  CudaOptions options;
};

TEST_F(FakeCudaTest, RunsTheTestModelExactly) {
  auto artifact = write();
  auto ex = CudaExecutor::create(artifact, options);
  ASSERT_TRUE(ex.isOk()) << ex.status().toString();
  EXPECT_STREQ((*ex)->device(), "cuda");
  EXPECT_EQ((*ex)->arch(), "sm_89");
  EXPECT_EQ((*ex)->description(),
            "moec fake GPU (sm_89, 4 SMs, 1 GiB), code: cubin.sm_89");
  for (std::vector<int32_t> tokens :
       {std::vector<int32_t>{5}, {1, 2, 3}, {36, 0, 7, 7, 12, 3, 9, 1}}) {
    int before = fakeCounter("moecFakeLaunches");
    EXPECT_EQ(logits(**ex, tokens), model.reference(tokens));
    EXPECT_EQ(fakeCounter("moecFakeLaunches") - before, 4);
  }
  // Inputs are checked before they reach the device.
  std::vector<int32_t> bad = {1, 99};
  Status s = (*ex)->setInput(0, bad.data(), 8, 2);
  EXPECT_EQ(s.message(), "input 'tokens': element 1 is 99, outside [0, 37)");
  EXPECT_FALSE((*ex)->failed());
  EXPECT_EQ((*ex)->run(9).code(), StatusCode::kInvalidArgument);
  // Outputs exist only for the last run's token count.
  EXPECT_EQ((*ex)->tensor(true, 0, 3).status().message(),
            artifact->path() +
                ": output 'logits' for 3 tokens: the last run had 8 tokens");
}

TEST_F(FakeCudaTest, NoCodeForTheDeviceArchIsUnavailable) {
  setenv("MOEC_FAKE_CUDA_CC", "9.0", 1);
  auto ex = CudaExecutor::create(write(), options);
  ASSERT_FALSE(ex.isOk());
  EXPECT_EQ(ex.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(ex.status().message(),
            dir.file("m.moea") + ": no CUDA code for this device (sm_90a): "
                                 "the artifact has cubin.sm_89 and no "
                                 "kernels.cu");
}

TEST_F(FakeCudaTest, ArtifactWithoutCudaCodeIsUnavailable) {
  TestModel cpuOnly = TestModel::random(1);
  std::string path = dir.file("cpu.moea");
  ASSERT_TRUE(cpuOnly.write(path, readFile(MOEC_TEST_KERNELS_SO)).isOk());
  auto ex = CudaExecutor::create(
      std::shared_ptr<const Artifact>(Artifact::open(path).value().release()),
      options);
  ASSERT_FALSE(ex.isOk());
  EXPECT_EQ(ex.status().message(), path + ": has no CUDA code (targets: cpu)");
}

TEST_F(FakeCudaTest, MissingKernelNamesStepAndKernel) {
  auto ex = CudaExecutor::create(write([](manifest::ManifestT &m) {
                                   m.steps[1]->cuda[0]->kernel =
                                       "moec_test_cuda_missing";
                                 }),
                                 options);
  ASSERT_FALSE(ex.isOk());
  EXPECT_EQ(ex.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(ex.status().message(), dir.file("m.moea") +
                                       ": step 1 (moe.add), launch 0: kernel "
                                       "'moec_test_cuda_missing' is not in "
                                       "cubin.sm_89");
}

TEST_F(FakeCudaTest, BlockLargerThanTheKernelAllowsIsRefused) {
  fakeControl<void (*)(int)>("moecFakeSetMaxThreads")(32);
  auto ex = CudaExecutor::create(write(), options);
  ASSERT_FALSE(ex.isOk());
  EXPECT_EQ(ex.status().message(),
            dir.file("m.moea") + ": step 1 (moe.add), launch 0: kernel "
                                 "'moec_test_cuda_add' is launched with 64 "
                                 "threads per block, but allows at most 32 "
                                 "on sm_89");
}

TEST_F(FakeCudaTest, LargeSharedMemoryIsOptedIn) {
  auto ex = CudaExecutor::create(write([](manifest::ManifestT &m) {
                                   m.steps[2]->cuda[0]->shared_bytes = 100000;
                                 }),
                                 options);
  ASSERT_TRUE(ex.isOk()) << ex.status().toString();
  auto optIn = fakeControl<int (*)(const char *)>("moecFakeSharedOptIn");
  EXPECT_EQ(optIn("moec_test_cuda_logits"), 100000);
  EXPECT_EQ(logits(**ex, {1, 2}), model.reference({1, 2}));
}

TEST_F(FakeCudaTest, FailedLaunchIsStickyAndNamed) {
  auto ex = CudaExecutor::create(write(), options);
  ASSERT_TRUE(ex.isOk()) << ex.status().toString();
  EXPECT_EQ(logits(**ex, {1, 2}), model.reference({1, 2}));
  fakeFail("cuLaunchKernel", 2, 700);
  std::vector<int32_t> tokens = {3, 4, 5};
  ASSERT_TRUE((*ex)->setInput(0, tokens.data(), 12, 3).isOk());
  Status s = (*ex)->run(3);
  ASSERT_FALSE(s.isOk());
  EXPECT_EQ(s.message().rfind(
                dir.file("m.moea") +
                    ": CUDA: cuLaunchKernel failed at step 2 (launch 0, "
                    "kernel 'moec_test_cuda_logits'): "
                    "CUDA_ERROR_ILLEGAL_ADDRESS (an illegal memory access "
                    "was encountered) [CudaExecutor.cpp:",
                0),
            0u)
      << s.message();
  EXPECT_TRUE((*ex)->failed());
  // Every later call says so, naming the first failure.
  const std::string later = "the CUDA executor failed earlier and cannot be "
                            "used any more; first failure: " +
                            s.message();
  EXPECT_EQ((*ex)->run(3).message(), later);
  EXPECT_EQ((*ex)->setInput(0, tokens.data(), 12, 3).message(), later);
  EXPECT_EQ((*ex)->tensor(true, 0, 3).status().message(), later);
  EXPECT_EQ((*ex)->timeLaunches(3, 0, 1).status().message(), later);
}

TEST_F(FakeCudaTest, FaultAtTheSynchronisationSuggestsSyncSteps) {
  auto ex = CudaExecutor::create(write(), options);
  ASSERT_TRUE(ex.isOk());
  fakeFail("cuStreamSynchronize", 0, 700);
  std::vector<int32_t> tokens = {3};
  ASSERT_TRUE((*ex)->setInput(0, tokens.data(), 4, 1).isOk());
  Status s = (*ex)->run(1);
  EXPECT_NE(s.message().find("cuStreamSynchronize failed: "
                             "CUDA_ERROR_ILLEGAL_ADDRESS"),
            std::string::npos)
      << s.message();
  EXPECT_NE(s.message().find("(a kernel of this run failed; "
                             "CudaOptions::syncEachStep / gpu-check "
                             "--sync-steps names the step)"),
            std::string::npos);
  EXPECT_EQ((*ex)->failure().message(), s.message());
}

TEST_F(FakeCudaTest, SyncEachStepNamesTheFaultingStep) {
  options.syncEachStep = true;
  auto ex = CudaExecutor::create(write(), options);
  ASSERT_TRUE(ex.isOk());
  fakeFail("cuStreamSynchronize", 1, 700);
  std::vector<int32_t> tokens = {3};
  ASSERT_TRUE((*ex)->setInput(0, tokens.data(), 4, 1).isOk());
  Status s = (*ex)->run(1);
  EXPECT_NE(s.message().find("cuStreamSynchronize failed at step 1: "
                             "CUDA_ERROR_ILLEGAL_ADDRESS"),
            std::string::npos)
      << s.message();
}

TEST_F(FakeCudaTest, OutOfDeviceMemoryAtLoadReleasesEverything) {
  fakeFail("cuMemAlloc", 1, 2);
  auto ex = CudaExecutor::create(write(), options);
  ASSERT_FALSE(ex.isOk());
  EXPECT_EQ(ex.status().code(), StatusCode::kOutOfMemory);
  EXPECT_NE(ex.status().message().find(
                "allocating the 1184-byte workspace: " + dir.file("m.moea") +
                ": CUDA: cuMemAlloc failed: CUDA_ERROR_OUT_OF_MEMORY (out of "
                "memory)"),
            std::string::npos)
      << ex.status().message();
}

TEST_F(FakeCudaTest, TimesLaunchesAlone) {
  auto ex = CudaExecutor::create(write(), options);
  ASSERT_TRUE(ex.isOk());
  std::vector<int32_t> tokens = {3, 1, 4, 1, 5};
  ASSERT_TRUE((*ex)->setInput(0, tokens.data(), 20, 5).isOk());
  int before = fakeCounter("moecFakeLaunches");
  auto ms = (*ex)->timeLaunches(5, 2, 3);
  ASSERT_TRUE(ms.isOk()) << ms.status().toString();
  EXPECT_EQ(ms->size(), 3u);
  for (float t : *ms)
    EXPECT_GE(t, 0.0f);
  EXPECT_EQ(fakeCounter("moecFakeLaunches") - before, 5 * 4);
  // An input not set for that count is refused.
  EXPECT_EQ((*ex)->timeLaunches(4, 0, 1).status().message(),
            dir.file("m.moea") + ": input 'tokens' was not set for 4 tokens");
  // A normal run still works afterwards.
  EXPECT_EQ(logits(**ex, tokens), model.reference(tokens));
}

TEST_F(FakeCudaTest, JitCompilesKernelsCuThroughTheCache) {
  if (!Nvrtc::get().isOk())
    GTEST_SKIP() << Nvrtc::get().status().message();
  // No cubin; kernels.cu holds CUDA stand-ins that NVRTC compiles, and the
  // fake runs the host kernels of the same names.
  model.extraSections.clear();
  model.extraSections.emplace_back(
      SectionSpec::forKind(SectionKind::kKernelsCu),
      "extern \"C\" __global__ void moec_test_cuda_embed(int *, float *, "
      "float *, void *, long long) {}\n"
      "extern \"C\" __global__ void moec_test_cuda_add(float *, float *, "
      "float *, void *, long long) {}\n"
      "extern \"C\" __global__ void moec_test_cuda_logits(float *, float *, "
      "float *, void *, long long) {}\n"
      "extern \"C\" __global__ void moec_test_cuda_copy_out(float *, float *, "
      "float *, void *, long long) {}\n");
  setenv("MOEC_FAKE_CUDA_KERNELS", MOEC_TEST_CUDA_KERNELS_SO, 1);
  auto artifact = write();
  {
    auto ex = CudaExecutor::create(artifact, options);
    ASSERT_TRUE(ex.isOk()) << ex.status().toString();
    EXPECT_EQ((*ex)->description(), "moec fake GPU (sm_89, 4 SMs, 1 GiB), "
                                    "code: kernels.cu JIT for sm_89 "
                                    "(compiled, cached)");
    EXPECT_EQ(logits(**ex, {2, 3}), model.reference({2, 3}));
  }
  auto again = CudaExecutor::create(artifact, options);
  ASSERT_TRUE(again.isOk());
  EXPECT_NE((*again)->description().find("(cache hit)"), std::string::npos);
  unsetenv("MOEC_FAKE_CUDA_KERNELS");
}

TEST_F(FakeCudaTest, WeightsAreVerifiedBeforeTheUpload) {
  // The upload reads every weight, so it verifies every block first: intact
  // weights end up all verified; a flipped byte in the second of two 4 KiB
  // blocks fails the load (not a later run), naming the block.
  model.weightsBlockSize = 4096;
  auto artifact = write();
  ASSERT_TRUE(artifact);
  EXPECT_EQ(artifact->weightsBlocksVerified(), 0u);
  {
    auto ex = CudaExecutor::create(artifact, options);
    ASSERT_TRUE(ex.isOk()) << ex.status().toString();
    EXPECT_EQ(artifact->weightsBlocksVerified(), 2u);
    EXPECT_EQ(logits(**ex, {1, 2}), model.reference({1, 2}));
  }
  std::string path = dir.file("m.moea");
  std::vector<uint8_t> bytes = readFile(path);
  bytes[artifact->findSection("weights")->offset + 4500] ^= 0x40;
  ASSERT_TRUE(writeFile(path, bytes));
  auto flipped = Artifact::open(path);
  ASSERT_TRUE(flipped.isOk()) << flipped.status().toString();
  auto ex = CudaExecutor::create(std::move(flipped).value(), options);
  ASSERT_FALSE(ex.isOk());
  EXPECT_EQ(ex.status().code(), StatusCode::kCorrupt);
  EXPECT_EQ(ex.status().message().rfind(
                path + ": section 'weights': block 1 (bytes [4096, 4800)): "
                       "SHA-256 mismatch (expected ",
                0),
            0u)
      << ex.status().message();
}

TEST_F(FakeCudaTest, DeviceFilledWeightsMatchTheCpu) {
  if (!Nvrtc::get().isOk())
    GTEST_SKIP() << Nvrtc::get().status().message();
  auto artifact = write([](manifest::ManifestT &m) {
    m.weights_device_filled = true;
    m.weights_fill_seed = 1234;
  });
  auto cpu = CpuExecutor::create(artifact);
  ASSERT_TRUE(cpu.isOk()) << cpu.status().toString();
  auto gpu = CudaExecutor::create(artifact, options);
  ASSERT_TRUE(gpu.isOk()) << gpu.status().toString();
  std::vector<int32_t> tokens = {0, 5, 36, 2};
  std::vector<float> a = logits(**cpu, tokens), b = logits(**gpu, tokens);
  EXPECT_EQ(a, b);
  // Not the stored weights, and not degenerate.
  EXPECT_NE(a, model.reference(tokens));
  float sumSq = 0;
  for (float v : a) {
    ASSERT_TRUE(std::isfinite(v));
    sumSq += v * v;
  }
  EXPECT_GT(sumSq, 0.0f);
}

TEST_F(FakeCudaTest, StepsRunOneAtATimeOnTheCpuArena) {
  // gpu-check's per-step loop by hand: the CPU's arena copied to the GPU
  // before each step, then the step alone on both.
  auto artifact = write();
  auto cpu = CpuExecutor::create(artifact);
  ASSERT_TRUE(cpu.isOk()) << cpu.status().toString();
  auto gpu = CudaExecutor::create(artifact, options);
  ASSERT_TRUE(gpu.isOk()) << gpu.status().toString();
  std::vector<int32_t> tokens = {36, 0, 7, 12};
  ASSERT_TRUE((*cpu)->setInput(0, tokens.data(), 16, 4).isOk());
  ASSERT_TRUE((*gpu)->setInput(0, tokens.data(), 16, 4).isOk());
  uint64_t arenaBytes = artifact->manifest().arena_bytes();
  std::vector<uint8_t> arena(arenaBytes), onGpu(arenaBytes);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE((*cpu)->readArena(0, arenaBytes, arena.data()).isOk());
    ASSERT_TRUE((*gpu)->writeArena(0, arenaBytes, arena.data()).isOk());
    int before = fakeCounter("moecFakeLaunches");
    ASSERT_TRUE((*cpu)->runStep(i, 4).isOk());
    Status s = (*gpu)->runStep(i, 4);
    ASSERT_TRUE(s.isOk()) << s.toString();
    EXPECT_EQ(fakeCounter("moecFakeLaunches") - before, i == 2 ? 2 : 1);
    // Same kernels, same inputs: the whole arena agrees after each step.
    ASSERT_TRUE((*cpu)->readArena(0, arenaBytes, arena.data()).isOk());
    ASSERT_TRUE((*gpu)->readArena(0, arenaBytes, onGpu.data()).isOk());
    EXPECT_EQ(arena, onGpu) << "step " << i;
  }
  std::vector<float> got(4 * size_t(model.vocab));
  ASSERT_TRUE((*gpu)
                  ->readArena(artifact->findBuffer(3)->offset(), got.size() * 4,
                              got.data())
                  .isOk());
  EXPECT_EQ(got, model.reference(tokens));
  // Steps alone without the CPU: the GPU's own steps make a run too.
  ASSERT_TRUE((*gpu)->setInput(0, tokens.data(), 16, 4).isOk());
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE((*gpu)->runStep(i, 4).isOk());
  std::fill(got.begin(), got.end(), 0.0f);
  ASSERT_TRUE((*gpu)
                  ->readArena(artifact->findBuffer(3)->offset(), got.size() * 4,
                              got.data())
                  .isOk());
  EXPECT_EQ(got, model.reference(tokens));
  // Bad arguments are errors, not failures of the executor.
  EXPECT_EQ((*gpu)->runStep(-1, 4).message(),
            dir.file("m.moea") + ": has 3 steps, no #-1");
  EXPECT_EQ((*gpu)->readArena(arenaBytes, 1, got.data()).code(),
            StatusCode::kInvalidArgument);
  EXPECT_FALSE((*gpu)->failed());
  EXPECT_EQ(logits(**gpu, tokens), model.reference(tokens));
}

TEST_F(FakeCudaTest, StepFaultIsNamedAndSticky) {
  auto ex = CudaExecutor::create(write(), options);
  ASSERT_TRUE(ex.isOk());
  std::vector<int32_t> tokens = {3, 4};
  ASSERT_TRUE((*ex)->setInput(0, tokens.data(), 8, 2).isOk());
  ASSERT_TRUE((*ex)->runStep(0, 2).isOk());
  // A kernel fault surfaces at the step's own synchronisation.
  fakeFail("cuStreamSynchronize", 0, 700);
  Status s = (*ex)->runStep(1, 2);
  EXPECT_NE(s.message().find("cuStreamSynchronize failed at step 1: "
                             "CUDA_ERROR_ILLEGAL_ADDRESS"),
            std::string::npos)
      << s.message();
  EXPECT_TRUE((*ex)->failed());
  std::vector<uint8_t> bytes(16);
  const std::string later = "the CUDA executor failed earlier and cannot be "
                            "used any more; first failure: " +
                            s.message();
  EXPECT_EQ((*ex)->readArena(0, 16, bytes.data()).message(), later);
  EXPECT_EQ((*ex)->writeArena(0, 16, bytes.data()).message(), later);
  EXPECT_EQ((*ex)->runStep(2, 2).message(), later);
}

TEST_F(FakeCudaTest, FailedArenaCopyIsSticky) {
  auto ex = CudaExecutor::create(write(), options);
  ASSERT_TRUE(ex.isOk());
  fakeFail("cuMemcpyDtoHAsync", 0, 700);
  std::vector<uint8_t> bytes(16);
  Status s = (*ex)->readArena(0, 16, bytes.data());
  EXPECT_NE(s.message().find("CUDA: cuMemcpyDtoHAsync failed: "
                             "CUDA_ERROR_ILLEGAL_ADDRESS"),
            std::string::npos)
      << s.message();
  EXPECT_TRUE((*ex)->failed());
  EXPECT_EQ((*ex)->run(1).code(), s.code());
}

//===----------------------------------------------------------------------===//
// Tensor maps
//===----------------------------------------------------------------------===//

// A symbol of the test kernels: the fake dlopens the same file, so the test
// sees what the kernels recorded.
template <typename T> T *kernelsSymbol(const char *name) {
  static void *library = dlopen(MOEC_TEST_CUDA_KERNELS_SO, RTLD_NOW);
  void *symbol = library ? dlsym(library, name) : nullptr;
  if (!symbol)
    std::abort();
  return static_cast<T *>(symbol);
}

using MapBytes = unsigned char[128];

// Tensor maps on three launches: step 0 (tokens, i32, swizzled: arena
// offset 0), step 1 (x and the bias; the kernel records them) and step 2's
// second launch (the head weight, swizzled: weights offset 2432); step 2's
// first launch has none.
void addTestMaps(manifest::ManifestT &m) {
  using namespace manifest;
  auto add = [](CudaLaunchT &l, uint32_t arg, DType dtype,
                std::vector<uint64_t> dims, std::vector<uint64_t> strides,
                std::vector<uint32_t> box, TensorMapSwizzle swizzle) {
    auto t = std::make_unique<TensorMapT>();
    t->arg = arg;
    t->dtype = dtype;
    t->dims = std::move(dims);
    t->strides = std::move(strides);
    t->box = std::move(box);
    t->swizzle = swizzle;
    l.tensor_maps.push_back(std::move(t));
  };
  add(*m.steps[0]->cuda[0], 0, DType::I32, {8}, {}, {8},
      TensorMapSwizzle::SWIZZLE_32B);
  CudaLaunchT &addMaps = *m.steps[1]->cuda[0];
  addMaps.kernel = "moec_test_cuda_add_maps";
  add(addMaps, 0, DType::F32, {16, 8}, {64}, {16, 4}, TensorMapSwizzle::NONE);
  add(addMaps, 1, DType::F32, {16}, {}, {8}, TensorMapSwizzle::NONE);
  add(*m.steps[2]->cuda[1], 1, DType::F32, {16, 37}, {64}, {8, 8},
      TensorMapSwizzle::SWIZZLE_32B);
}

long long encodeField(int call, const char *field, int index = 0) {
  return fakeControl<long long (*)(int, const char *, int)>(
      "moecFakeTensorMapEncodeField")(call, field, index);
}

TEST_F(FakeCudaTest, TensorMapsAreEncodedAtLoadAndPassedAfterTokens) {
  setenv("MOEC_FAKE_CUDA_CC", "9.0", 1);
  model.extraSections.clear();
  model.enableFakeCuda(MOEC_TEST_CUDA_KERNELS_SO, "sm_90a");
  auto artifact = write(addTestMaps);
  *kernelsSymbol<int>("moec_test_cuda_map_count") = 2;
  auto ex = CudaExecutor::create(artifact, options);
  ASSERT_TRUE(ex.isOk()) << ex.status().toString();
  EXPECT_EQ((*ex)->arch(), "sm_90a");
  // Encoded once, at load, in step and launch order.
  ASSERT_EQ(fakeCounter("moecFakeTensorMapEncodes"), 4);
  auto *pointers = kernelsSymbol<uintptr_t>("moec_test_cuda_pointers_seen");
  auto *params = kernelsSymbol<uintptr_t>("moec_test_cuda_map_params_seen");
  auto *maps = kernelsSymbol<MapBytes>("moec_test_cuda_maps_seen");
  std::memset(maps, 0xCD, 2 * sizeof(MapBytes));
  std::vector<int32_t> tokens = {36, 0, 7};
  EXPECT_EQ(logits(**ex, tokens), model.reference(tokens));
  EXPECT_EQ(fakeCounter("moecFakeTensorMapEncodes"), 4);

  // Addresses: the pointers the kernel got (exact logits say they are
  // right), arena base + buffer offset and weights base + weight offset for
  // the others.
  const manifest::Manifest &m = artifact->manifest();
  uintptr_t arena = pointers[0] - m.buffers()->Get(1)->offset();
  uintptr_t weights = pointers[1] - m.weights()->Get(1)->offset();
  EXPECT_EQ(uintptr_t(encodeField(0, "address")),
            arena + m.buffers()->Get(0)->offset());
  EXPECT_EQ(uintptr_t(encodeField(1, "address")), pointers[0]);
  EXPECT_EQ(uintptr_t(encodeField(2, "address")), pointers[1]);
  EXPECT_EQ(uintptr_t(encodeField(3, "address")),
            weights + m.weights()->Get(2)->offset());
  // Types, shapes and the fixed choices.
  EXPECT_EQ(encodeField(0, "dataType"), 3); // INT32
  for (int call = 0; call < 4; ++call) {
    EXPECT_EQ(encodeField(call, "result"), 0);
    if (call > 0)
      EXPECT_EQ(encodeField(call, "dataType"), 7); // FLOAT32
    EXPECT_EQ(encodeField(call, "interleave"), 0);
    EXPECT_EQ(encodeField(call, "l2Promotion"), 2); // L2_128B
    EXPECT_EQ(encodeField(call, "oobFill"), 0);
    EXPECT_EQ(encodeField(call, "map") % 64, 0);
    for (int d = 0; d < encodeField(call, "rank"); ++d)
      EXPECT_EQ(encodeField(call, "elementStrides", d), 1);
  }
  EXPECT_EQ(encodeField(1, "rank"), 2);
  EXPECT_EQ(encodeField(1, "dims", 0), 16);
  EXPECT_EQ(encodeField(1, "dims", 1), 8);
  EXPECT_EQ(encodeField(1, "strides", 0), 64);
  EXPECT_EQ(encodeField(1, "box", 0), 16);
  EXPECT_EQ(encodeField(1, "box", 1), 4);
  EXPECT_EQ(encodeField(1, "swizzle"), 0);
  EXPECT_EQ(encodeField(2, "rank"), 1);
  EXPECT_EQ(encodeField(2, "box", 0), 8);
  EXPECT_EQ(encodeField(2, "swizzle"), 0);
  EXPECT_EQ(encodeField(0, "swizzle"), 1); // 32B
  EXPECT_EQ(encodeField(0, "box", 0), 8);
  EXPECT_EQ(encodeField(3, "swizzle"), 1);
  EXPECT_EQ(encodeField(3, "rank"), 2);
  EXPECT_EQ(encodeField(3, "dims", 1), 37);
  EXPECT_EQ(encodeField(3, "strides", 0), 64);
  EXPECT_EQ(encodeField(3, "box", 1), 8);

  // The kernel got each map by value after `tokens`: the encoded objects,
  // 64-byte aligned, with the fake's image of the map.
  for (int j = 0; j < 2; ++j) {
    EXPECT_EQ(params[j], uintptr_t(encodeField(1 + j, "map")));
    EXPECT_EQ(params[j] % 64, 0u);
  }
  moec_emu::TensorMapImage x, bias;
  std::memcpy(&x, maps[0], sizeof(x));
  std::memcpy(&bias, maps[1], sizeof(bias));
  EXPECT_EQ(x.magic, moec_emu::kTensorMapMagic);
  EXPECT_EQ(x.elementBytes, 4u);
  EXPECT_EQ(x.rank, 2u);
  EXPECT_EQ(x.swizzleBytes, 0u);
  EXPECT_EQ(x.address, pointers[0]);
  EXPECT_EQ(x.dims[0], 16u);
  EXPECT_EQ(x.dims[1], 8u);
  EXPECT_EQ(x.dims[2], 0u);
  EXPECT_EQ(x.strides[0], 64u);
  EXPECT_EQ(x.strides[1], 0u);
  EXPECT_EQ(x.box[0], 16u);
  EXPECT_EQ(x.box[1], 4u);
  EXPECT_EQ(bias.magic, moec_emu::kTensorMapMagic);
  EXPECT_EQ(bias.rank, 1u);
  EXPECT_EQ(bias.swizzleBytes, 0u);
  EXPECT_EQ(bias.address, pointers[1]);
  EXPECT_EQ(bias.dims[0], 16u);
  EXPECT_EQ(bias.box[0], 8u);

  // The same storage every run, and runStep passes it too.
  std::vector<uintptr_t> before(params, params + 2);
  std::memset(maps, 0, 2 * sizeof(MapBytes));
  ASSERT_TRUE((*ex)->setInput(0, tokens.data(), 12, 3).isOk());
  ASSERT_TRUE((*ex)->runStep(0, 3).isOk());
  ASSERT_TRUE((*ex)->runStep(1, 3).isOk());
  EXPECT_EQ(std::vector<uintptr_t>(params, params + 2), before);
  EXPECT_EQ(std::memcmp(maps[0], &x, sizeof(x)), 0);
  EXPECT_EQ(logits(**ex, {5}), model.reference({5}));
  *kernelsSymbol<int>("moec_test_cuda_map_count") = 0;
}

TEST_F(FakeCudaTest, TensorMapsAreZeroWithoutTma) {
  // sm_89: the driver is not asked; the kernel gets 128 zero bytes per map.
  auto artifact = write(addTestMaps);
  *kernelsSymbol<int>("moec_test_cuda_map_count") = 2;
  auto *maps = kernelsSymbol<MapBytes>("moec_test_cuda_maps_seen");
  auto *params = kernelsSymbol<uintptr_t>("moec_test_cuda_map_params_seen");
  std::memset(maps, 0xCD, 2 * sizeof(MapBytes));
  auto ex = CudaExecutor::create(artifact, options);
  ASSERT_TRUE(ex.isOk()) << ex.status().toString();
  EXPECT_EQ((*ex)->arch(), "sm_89");
  std::vector<int32_t> tokens = {1, 2, 3, 4, 5, 6, 7, 8};
  EXPECT_EQ(logits(**ex, tokens), model.reference(tokens));
  EXPECT_EQ(fakeCounter("moecFakeTensorMapEncodes"), 0);
  const MapBytes zero = {};
  for (int j = 0; j < 2; ++j) {
    EXPECT_EQ(std::memcmp(maps[j], zero, sizeof(zero)), 0) << j;
    EXPECT_EQ(params[j] % 64, 0u);
  }
  *kernelsSymbol<int>("moec_test_cuda_map_count") = 0;
}

TEST_F(FakeCudaTest, FailedTensorMapEncodeIsALoadError) {
  setenv("MOEC_FAKE_CUDA_CC", "9.0", 1);
  model.extraSections.clear();
  model.enableFakeCuda(MOEC_TEST_CUDA_KERNELS_SO, "sm_90a");
  auto artifact = write(addTestMaps);
  fakeFail("cuTensorMapEncodeTiled", 2, 1);
  auto ex = CudaExecutor::create(artifact, options);
  ASSERT_FALSE(ex.isOk());
  EXPECT_EQ(ex.status().code(), StatusCode::kInternal);
  std::string path = dir.file("m.moea");
  EXPECT_EQ(ex.status().message().rfind(
                path +
                    ": step 1 (moe.add), launch 0: kernel "
                    "'moec_test_cuda_add_maps': tensor_maps[1]: " +
                    path +
                    ": CUDA: cuTensorMapEncodeTiled failed: "
                    "CUDA_ERROR_INVALID_VALUE (fake error) [CudaExecutor.cpp:",
                0),
            0u)
      << ex.status().message();
}

TEST_F(FakeCudaTest, MissingEncodeSymbolMattersOnlyForMapsWithTma) {
  auto loaded = CudaDriver::load(MOEC_FAKE_CUDA_SO);
  ASSERT_TRUE(loaded.isOk()) << loaded.status().toString();
  EXPECT_NE(fake().tensorMapEncodeTiled, nullptr);
  std::unique_ptr<CudaDriver> old = std::move(loaded).value();
  old->tensorMapEncodeTiled = nullptr;
  options.driver = old.get();
  // sm_89 with maps, and sm_90a without: fine.
  auto withMaps = write(addTestMaps);
  EXPECT_TRUE(CudaExecutor::create(withMaps, options).isOk());
  setenv("MOEC_FAKE_CUDA_CC", "9.0", 1);
  model.extraSections.clear();
  model.enableFakeCuda(MOEC_TEST_CUDA_KERNELS_SO, "sm_90a");
  {
    auto ex = CudaExecutor::create(write(), options);
    ASSERT_TRUE(ex.isOk()) << ex.status().toString();
    EXPECT_EQ(logits(**ex, {4, 2}), model.reference({4, 2}));
  }
  // sm_90a with maps: unavailable, naming the first map.
  auto refused = CudaExecutor::create(write(addTestMaps), options);
  ASSERT_FALSE(refused.isOk());
  EXPECT_EQ(refused.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(refused.status().message(),
            dir.file("m.moea") +
                ": step 0 (moe.embed), launch 0: kernel "
                "'moec_test_cuda_embed': tensor_maps[0]: the CUDA driver (" +
                MOEC_FAKE_CUDA_SO +
                ") lacks 'cuTensorMapEncodeTiled', which a device of compute "
                "capability >= 9.0 needs for tensor maps (CUDA 12.0+ driver)");
}

TEST_F(FakeCudaTest, FakeEncodeFollowsCudaHRules) {
  // The fake stands in for the real driver in the emulated kernel tests, so
  // it must refuse what the real one refuses (cuda.h's documented rules).
  const CudaDriver &d = fake();
  cu::Context ctx = nullptr;
  ASSERT_EQ(d.devicePrimaryCtxRetain(&ctx, 0), 0);
  ASSERT_EQ(d.ctxPushCurrent(ctx), 0);
  alignas(128) static uint8_t memory[4096];
  struct Args {
    int dataType = 7;
    uint32_t rank = 2;
    uintptr_t address = 0;
    uint64_t dims[5] = {16, 8, 1, 1, 1}, strides[4] = {64, 512, 512, 512};
    uint32_t box[5] = {16, 4, 1, 1, 1}, elementStrides[5] = {1, 1, 1, 1, 1};
    int interleave = 0, swizzle = 2, l2 = 2, oob = 0;
  };
  cu::TensorMap map;
  auto encode = [&](const Args &a, cu::TensorMap *out) {
    return d.tensorMapEncodeTiled(
        out, a.dataType, a.rank,
        reinterpret_cast<void *>(a.address ? a.address : uintptr_t(memory)),
        a.dims, a.strides, a.box, a.elementStrides, a.interleave, a.swizzle,
        a.l2, a.oob);
  };
  auto with = [](std::function<void(Args &)> edit) {
    Args a;
    edit(a);
    return a;
  };
  // Outside TMA: refused as unsupported.
  EXPECT_EQ(encode(Args(), &map), 801);
  setenv("MOEC_FAKE_CUDA_CC", "9.0", 1);
  ASSERT_EQ(encode(Args(), &map), 0);
  moec_emu::TensorMapImage image;
  std::memcpy(&image, &map, sizeof(image));
  EXPECT_EQ(image.magic, moec_emu::kTensorMapMagic);
  EXPECT_EQ(image.address, uintptr_t(memory));
  EXPECT_EQ(image.swizzleBytes, 64u);
  // Each rule, broken once.
  const std::vector<std::pair<const char *, Args>> invalid = {
      {"data type", with([](Args &a) { a.dataType = 16; })},
      {"rank 0", with([](Args &a) { a.rank = 0; })},
      {"rank 6", with([](Args &a) { a.rank = 6; })},
      {"address", with([](Args &a) {
         a.swizzle = 0;
         a.address = uintptr_t(memory) + 8;
       })},
      // CUDA Programming Guide, TMA swizzle patterns: 128-byte aligned
      // global memory when swizzled (not in cuda.h's list).
      {"swizzled address",
       with([](Args &a) { a.address = uintptr_t(memory) + 64; })},
      {"dim 0", with([](Args &a) { a.dims[1] = 0; })},
      {"dim > 2^32",
       with([](Args &a) { a.dims[1] = (uint64_t(1) << 32) + 1; })},
      {"stride % 16", with([](Args &a) { a.strides[0] = 72; })},
      {"stride >= 2^40",
       with([](Args &a) { a.strides[0] = uint64_t(1) << 40; })},
      {"stride overlap", with([](Args &a) { a.strides[0] = 48; })},
      {"box 0", with([](Args &a) { a.box[1] = 0; })},
      {"box 257", with([](Args &a) { a.box[1] = 257; })},
      {"box bytes", with([](Args &a) { a.box[0] = 2; })},
      {"element stride 0", with([](Args &a) { a.elementStrides[1] = 0; })},
      {"element stride 9", with([](Args &a) { a.elementStrides[1] = 9; })},
      {"interleave", with([](Args &a) { a.interleave = 3; })},
      {"swizzle", with([](Args &a) { a.swizzle = 7; })},
      {"swizzle span", with([](Args &a) { a.swizzle = 1; })},
      {"l2 promotion", with([](Args &a) { a.l2 = 4; })},
      {"oob fill", with([](Args &a) { a.oob = 2; })},
      {"nan fill on ints", with([](Args &a) {
         a.dataType = 3;
         a.oob = 1;
       })},
  };
  for (const auto &[what, args] : invalid)
    EXPECT_EQ(encode(args, &map), 1) << what;
  // A map object that is not 64-byte aligned.
  alignas(64) static uint8_t raw[256];
  EXPECT_EQ(encode(Args(), reinterpret_cast<cu::TensorMap *>(raw + 16)), 1);
  // Valid, but beyond what the emulation's image describes.
  EXPECT_EQ(encode(with([](Args &a) { a.elementStrides[1] = 2; }), &map), 801);
  EXPECT_EQ(encode(with([](Args &a) { a.swizzle = 4; }), &map), 801);
  EXPECT_EQ(encode(with([](Args &a) { a.oob = 1; }), &map), 801);
  // Without a current context.
  cu::Context popped = nullptr;
  ASSERT_EQ(d.ctxPopCurrent(&popped), 0);
  EXPECT_EQ(encode(Args(), &map), 201);
  ASSERT_EQ(d.devicePrimaryCtxRelease(0), 0);
}

TEST(CudaTensorMaps, DataTypeFollowsElementSize) {
  using namespace manifest;
  EXPECT_EQ(tensorMapDataTypeFor(DType::F32), cu::kTensorMapDataTypeFloat32);
  EXPECT_EQ(tensorMapDataTypeFor(DType::I32), cu::kTensorMapDataTypeInt32);
  EXPECT_EQ(tensorMapDataTypeFor(DType::I64), cu::kTensorMapDataTypeInt64);
  for (DType t : {DType::BF16, DType::F16})
    EXPECT_EQ(tensorMapDataTypeFor(t), cu::kTensorMapDataTypeUint16);
  for (DType t : {DType::F8E4M3FN, DType::F8E5M2, DType::I8, DType::U8})
    EXPECT_EQ(tensorMapDataTypeFor(t), cu::kTensorMapDataTypeUint8);
}

//===----------------------------------------------------------------------===//
// The C API on this machine's real driver
//===----------------------------------------------------------------------===//

TEST(CudaCApi, AutoFallsBackToTheCpuWhenCudaIsUnavailable) {
  if (cudaDeviceAvailable().isOk())
    GTEST_SKIP() << "a CUDA device is usable here";
  TempDir dir;
  TestModel model = TestModel::random(3);
  model.enableFakeCuda(MOEC_TEST_CUDA_KERNELS_SO);
  std::string path = dir.file("m.moea");
  ASSERT_TRUE(model.write(path, readFile(MOEC_TEST_KERNELS_SO)).isOk());
  moec_model *m = nullptr;
  ASSERT_EQ(moec_model_load(path.c_str(), "auto", &m), MOEC_OK)
      << moec_last_error();
  EXPECT_STREQ(moec_model_device(m), "cpu");
  std::vector<int32_t> tokens = {4, 5};
  ASSERT_EQ(moec_model_run(m, tokens.data(), 2), MOEC_OK);
  moec_model_free(m);
  ASSERT_EQ(moec_model_load(path.c_str(), nullptr, &m), MOEC_OK);
  EXPECT_STREQ(moec_model_device(m), "cpu");
  moec_model_free(m);

  EXPECT_EQ(moec_model_load(path.c_str(), "cuda", &m), MOEC_UNAVAILABLE);
  EXPECT_EQ(m, nullptr);
  std::string error = moec_last_error();
  EXPECT_EQ(error.rfind("device 'cuda' is unavailable: CUDA unavailable: ", 0),
            0u)
      << error;
  EXPECT_NE(error.find("(use --device cpu or auto)"), std::string::npos);
  // Direct creation says the same.
  auto ex = CudaExecutor::create(
      std::shared_ptr<const Artifact>(Artifact::open(path).value().release()));
  EXPECT_EQ(ex.status().code(), StatusCode::kUnavailable);
}

//===----------------------------------------------------------------------===//
// The weight fill
//===----------------------------------------------------------------------===//

std::vector<uint8_t> fill(FillKind kind, uint64_t count, uint64_t seed,
                          uint32_t id, size_t elementSize) {
  std::vector<uint8_t> out(size_t(count) * elementSize, 0xEE);
  fillElementsOnHost(out.data(), count, seed, id, kind);
  return out;
}

TEST(WeightFill, IsDeterministicPerSeedAndId) {
  auto a = fill(FillKind::kF32, 1000, 7, 3, 4);
  EXPECT_EQ(a, fill(FillKind::kF32, 1000, 7, 3, 4));
  EXPECT_NE(a, fill(FillKind::kF32, 1000, 8, 3, 4));
  EXPECT_NE(a, fill(FillKind::kF32, 1000, 7, 4, 4));
  // Element i does not depend on the count.
  auto shorter = fill(FillKind::kF32, 10, 7, 3, 4);
  EXPECT_TRUE(std::equal(shorter.begin(), shorter.end(), a.begin()));
}

TEST(WeightFill, ValuesHaveTheDocumentedRanges) {
  const int n = 20000;
  auto f = fill(FillKind::kF32, n, 1, 1, 4);
  double sum = 0, maxAbs = 0;
  for (int i = 0; i < n; ++i) {
    float v;
    std::memcpy(&v, &f[size_t(i) * 4], 4);
    ASSERT_TRUE(v >= -0.05f && v < 0.05f) << v;
    sum += v;
    maxAbs = std::max(maxAbs, double(std::fabs(v)));
  }
  EXPECT_LT(std::fabs(sum / n), 0.002);
  EXPECT_GT(maxAbs, 0.049);

  auto s = fill(FillKind::kScale, n, 1, 2, 4);
  for (int i = 0; i < n; ++i) {
    float v;
    std::memcpy(&v, &s[size_t(i) * 4], 4);
    ASSERT_TRUE(v >= 0.5f / 256 && v <= 1.5f / 256) << v;
  }

  auto b = fill(FillKind::kBf16, n, 1, 3, 2);
  for (int i = 0; i < n; ++i) {
    uint32_t bits = uint32_t(b[size_t(i) * 2] | b[size_t(i) * 2 + 1] << 8)
                    << 16;
    float v;
    std::memcpy(&v, &bits, 4);
    ASSERT_TRUE(std::fabs(v) <= 0.0502f) << v;
  }

  // e4m3: finite (0x7f / 0xff are NaN), 0.125 <= |x| <= 15, both signs,
  // every exponent of the range used.
  auto e = fill(FillKind::kE4m3, n, 1, 4, 1);
  int negative = 0, exponents = 0;
  for (uint8_t byte : e) {
    int exponent = (byte >> 3) & 15, mantissa = byte & 7;
    ASSERT_NE(byte & 0x7f, 0x7f);
    double v = std::ldexp(1.0 + mantissa / 8.0, exponent - 7);
    ASSERT_TRUE(v >= 0.125 && v <= 15.0) << int(byte);
    negative += byte >> 7;
    exponents |= 1 << exponent;
  }
  EXPECT_GT(negative, n / 3);
  EXPECT_LT(negative, 2 * n / 3);
  EXPECT_EQ(exponents, 0x7f0); // exponents 4 .. 10

  auto z = fill(FillKind::kZero, 64, 1, 5, 1);
  EXPECT_EQ(z, std::vector<uint8_t>(64, 0));
}

TEST(WeightFill, KindsFollowDtypeAndScaleRole) {
  manifest::ManifestT t;
  auto weight = [&](uint32_t id, manifest::DType dtype) {
    t.weights.push_back(std::make_unique<manifest::WeightT>());
    t.weights.back()->id = id;
    t.weights.back()->dtype = dtype;
    return t.weights.back().get();
  };
  weight(1, manifest::DType::F8E4M3FN)->scale = 2;
  weight(2, manifest::DType::F32);
  weight(3, manifest::DType::BF16);
  weight(4, manifest::DType::I32)->bytes = 16;
  PackedManifest m(t);
  const auto &w = *m->weights();
  EXPECT_EQ(fillKindFor(*m, *w[0]), FillKind::kE4m3);
  EXPECT_EQ(fillKindFor(*m, *w[1]), FillKind::kScale);
  EXPECT_EQ(fillKindFor(*m, *w[2]), FillKind::kBf16);
  EXPECT_EQ(fillKindFor(*m, *w[3]), FillKind::kZero);
  EXPECT_EQ(fillElementCount(*w[3], FillKind::kZero), 16u);
}

} // namespace

//===----------------------------------------------------------------------===//
// gpu-check's work estimate
//===----------------------------------------------------------------------===//

namespace {

TEST(GpuCheckWork, GroupedGemmRowsComeFromTopK) {
  using manifest::Argument;
  using manifest::ArgumentKind;
  manifest::ManifestT t;
  auto buffer = [&](uint32_t id, uint64_t perToken) {
    auto b = std::make_unique<manifest::BufferT>();
    b->id = id;
    b->dtype = manifest::DType::F32;
    setElementsPerToken(*b, perToken);
    t.buffers.push_back(std::move(b));
  };
  buffer(1, 2 * 16); // dispatched rows: top-2 of K = 16
  buffer(2, 2 * 8);
  auto w = std::make_unique<manifest::WeightT>(); // [E = 4, N = 8, K = 16]
  w->id = 10;                                     // e4m3, scaled
  w->dtype = manifest::DType::F8E4M3FN;
  w->shape = {4, 8, 16};
  w->bytes = 4 * 8 * 16;
  w->scale = 11;
  t.weights.push_back(std::move(w));
  auto s = std::make_unique<manifest::WeightT>();
  s->id = 11;
  s->dtype = manifest::DType::F32;
  s->shape = {4, 1, 1};
  s->bytes = 16;
  t.weights.push_back(std::move(s));
  auto step = std::make_unique<manifest::StepT>();
  step->op = "moe.fp8_grouped_matmul";
  step->args = {
      Argument(ArgumentKind::BUFFER, 1), Argument(ArgumentKind::WEIGHT, 10),
      Argument(ArgumentKind::WEIGHT, 11), Argument(ArgumentKind::BUFFER, 2)};
  t.steps.push_back(std::move(step));
  PackedManifest m(t);

  // T = 3: 6 rows, all 4 experts touched.
  WorkEstimate e = estimateWork(*m, 3);
  EXPECT_EQ(e.flops, 2.0 * 6 * 8 * 16);
  EXPECT_EQ(e.bytes, 512.0 + 16 + 3 * 32 * 4 + 3 * 16 * 4);
  // T = 1: 2 rows touch at most 2 of the 4 experts.
  e = estimateWork(*m, 1);
  EXPECT_EQ(e.flops, 2.0 * 2 * 8 * 16);
  EXPECT_EQ(e.bytes, (512.0 + 16) / 2 + 32 * 4 + 16 * 4);
}

TEST(GpuCheckPerStep, ResultsAreTrailingBuffersFirstDefinedThere) {
  // The test model: every step's last argument is its one result.
  PackedManifest tm(TestModel::random(1).manifest());
  EXPECT_EQ(stepResultArgs(*tm),
            (std::vector<std::vector<int>>{{2}, {2}, {2}}));

  // input 0 -> router(x=0, gate w10) -> (weights 1, indices 2);
  // dispatch(x=0, indices=2) -> (rows 3, offsets 4, positions 5);
  // an in-place update of 3 (no result); a step passing x twice whose
  // result is 6; a new buffer passed twice (malformed: not a result).
  manifest::ManifestT t;
  t.inputs.push_back(std::make_unique<manifest::TensorSpecT>());
  t.inputs[0]->buffer = 0;
  auto step = [&](std::vector<int> args) {
    auto s = std::make_unique<manifest::StepT>();
    for (int a : args)
      s->args.emplace_back(a >= 10 ? manifest::ArgumentKind::WEIGHT
                                   : manifest::ArgumentKind::BUFFER,
                           uint32_t(a));
    t.steps.push_back(std::move(s));
  };
  step({0, 10, 1, 2});
  step({0, 2, 3, 4, 5});
  step({3, 1});
  step({0, 0, 6});
  step({6, 7, 7});
  EXPECT_EQ(stepResultArgs(*PackedManifest(t)),
            (std::vector<std::vector<int>>{{2, 3}, {2, 3, 4}, {}, {2}, {}}));
}

} // namespace
