//===- CudaCodegenTest.cpp - CUDA registry, emitter, NVRTC ------*- C++ -*-===//
//
// Compiles the emitted GEMM kernels (GemmEmitter.h) with NVRTC for sm_80,
// sm_89 and sm_90a and checks the instruction path of each: bf16 mma.sync
// only on sm_80, e4m3 mma.sync on sm_89, e4m3 wgmma on sm_90a, f32 FMA for
// the f32 GEMM everywhere. Runs without a GPU; skips when libnvrtc is
// missing.
//
//===----------------------------------------------------------------------===//

#include "codegen/cuda/GemmEmitter.h"
#include "codegen/cuda/Nvrtc.h"
#include "codegen/cuda/TargetInfo.h"

#include "llvm/Support/Error.h"

#include <gtest/gtest.h>

using namespace mlir::moec::cuda;

namespace {

constexpr const char *kFp8Mma =
    "mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32";
constexpr const char *kBf16Mma =
    "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32";
constexpr const char *kWgmma =
    "wgmma.mma_async.sync.aligned.m64n128k32.f32.e4m3.e4m3";

#define SKIP_WITHOUT_NVRTC()                                                   \
  do {                                                                         \
    std::string why;                                                           \
    if (!isNvrtcAvailable(&why))                                               \
      GTEST_SKIP() << "NVRTC unavailable: " << why;                            \
  } while (false)

/// A registered target; every name used here is one (the unknown-name error
/// has its own test).
const TargetInfo &target(llvm::StringRef name) {
  return llvm::cantFail(lookupCudaTarget(name));
}

/// The PTX of the standalone GEMM kernel for `config` on `arch`, or "" after
/// failing the test (with the source and NVRTC's log).
std::string gemmPtx(llvm::StringRef arch, const GemmConfig &config) {
  const TargetInfo &info = target(arch);
  llvm::Expected<std::string> source =
      emitStandaloneGemm("moec_test_gemm", config);
  if (!source) {
    ADD_FAILURE() << llvm::toString(source.takeError());
    return "";
  }
  llvm::Expected<std::string> ptx =
      compileToPtx(*source, "moec_test_gemm", info);
  if (!ptx) {
    ADD_FAILURE() << llvm::toString(ptx.takeError()) << "\nsource:\n"
                  << *source;
    return "";
  }
  return *ptx;
}

GemmConfig fp8Dense() {
  GemmConfig c;
  c.fp8 = true;
  c.n = 256;
  c.k = 512;
  c.biasCType = "float";
  return c;
}

GemmConfig fp8GroupedSwiglu() {
  GemmConfig c;
  c.fp8 = true;
  c.n = 192; // N/2 = 96: a partial column tile
  c.k = 320; // a partial last scale block and K stage
  c.experts = 8;
  c.siluMul = true;
  return c;
}

GemmConfig f32Config(llvm::StringRef weight, int64_t experts, bool silu) {
  GemmConfig c;
  c.n = 96;
  c.k = 72;
  c.experts = experts;
  c.siluMul = silu;
  c.weightCType = weight.str();
  if (!experts)
    c.biasCType = "moec_bf16";
  return c;
}

bool contains(const std::string &text, llvm::StringRef what) {
  return text.find(what.str()) != std::string::npos;
}

TEST(CudaTargetInfo, KnownTargets) {
  EXPECT_EQ(target("sm_90").gpuArchitecture, "sm_90a");
  EXPECT_FALSE(target("sm_80").hasFp8TensorCores);
  EXPECT_TRUE(target("sm_89").hasFp8TensorCores);
  EXPECT_EQ(target("sm_89").mmaShape.k, 32u);
  EXPECT_EQ(target("sm_80").mmaShape.k, 16u);
}

TEST(CudaTargetInfo, UnknownTargetListsKnownOnes) {
  llvm::Expected<const TargetInfo &> info = lookupCudaTarget("sm_75");
  ASSERT_FALSE(static_cast<bool>(info));
  EXPECT_EQ(llvm::toString(info.takeError()),
            "unknown CUDA target 'sm_75'; known targets: sm_80, sm_89, sm_90");
}

TEST(CudaGemmEmitter, RejectsUnsupportedConfigs) {
  GemmConfig c = fp8Dense();
  c.k = 40;
  std::string message = llvm::toString(checkGemmConfig(c));
  EXPECT_TRUE(contains(message, "K a multiple of 16")) << message;
  c = fp8Dense();
  c.scaleBlock = 32;
  message = llvm::toString(checkGemmConfig(c));
  EXPECT_TRUE(contains(message, "multiple of 64")) << message;
  c = f32Config("float", 0, true);
  c.n = 7;
  message = llvm::toString(checkGemmConfig(c));
  EXPECT_TRUE(contains(message, "silu_mul needs N")) << message;
  c = f32Config("moec_fp8", 0, false);
  message = llvm::toString(checkGemmConfig(c));
  EXPECT_TRUE(contains(message, "f32 or bf16 weights")) << message;
}

TEST(CudaGemmEmitter, Geometry) {
  GemmGeometry fp8 = getGemmGeometry(fp8GroupedSwiglu());
  EXPECT_EQ(fp8.threads, 128u);
  EXPECT_EQ(fp8.tileRows, 64);
  EXPECT_EQ(fp8.tileCols, 64);   // 64 gate + 64 up weight rows
  EXPECT_EQ(fp8.columnTiles, 2); // ceil(96 / 64)
  GemmGeometry f32 = getGemmGeometry(f32Config("float", 0, false));
  EXPECT_EQ(f32.threads, 256u);
  EXPECT_EQ(f32.tileCols, 64);
  EXPECT_EQ(f32.columnTiles, 2); // ceil(96 / 64)
}

TEST(CudaGemmEmitter, Sm80UsesBf16MmaOnly) {
  SKIP_WITHOUT_NVRTC();
  for (const GemmConfig &c : {fp8Dense(), fp8GroupedSwiglu()}) {
    std::string ptx = gemmPtx("sm_80", c);
    EXPECT_TRUE(contains(ptx, ".target sm_80"));
    EXPECT_TRUE(contains(ptx, kBf16Mma));
    EXPECT_TRUE(contains(ptx, "cp.async.cg.shared.global"));
    EXPECT_FALSE(contains(ptx, "e4m3"));
    EXPECT_FALSE(contains(ptx, "wgmma"));
  }
}

TEST(CudaGemmEmitter, Sm89UsesFp8Mma) {
  SKIP_WITHOUT_NVRTC();
  for (const GemmConfig &c : {fp8Dense(), fp8GroupedSwiglu()}) {
    std::string ptx = gemmPtx("sm_89", c);
    EXPECT_TRUE(contains(ptx, ".target sm_89"));
    EXPECT_TRUE(contains(ptx, kFp8Mma));
    EXPECT_FALSE(contains(ptx, kBf16Mma));
    EXPECT_FALSE(contains(ptx, "wgmma"));
  }
}

TEST(CudaGemmEmitter, Sm90aUsesWgmma) {
  SKIP_WITHOUT_NVRTC();
  for (const GemmConfig &c : {fp8Dense(), fp8GroupedSwiglu()}) {
    std::string ptx = gemmPtx("sm_90", c);
    EXPECT_TRUE(contains(ptx, ".target sm_90a"));
    EXPECT_TRUE(contains(ptx, kWgmma));
    EXPECT_TRUE(contains(ptx, "wgmma.fence.sync.aligned"));
    EXPECT_TRUE(contains(ptx, "wgmma.commit_group.sync.aligned"));
    EXPECT_TRUE(contains(ptx, "wgmma.wait_group.sync.aligned"));
    EXPECT_TRUE(contains(ptx, "fence.proxy.async.shared::cta"));
    EXPECT_FALSE(contains(ptx, kFp8Mma));
    EXPECT_FALSE(contains(ptx, kBf16Mma));
  }
}

TEST(CudaGemmEmitter, F32GemmCompilesEverywhereWithoutTensorCores) {
  SKIP_WITHOUT_NVRTC();
  for (llvm::StringRef arch : {"sm_80", "sm_89", "sm_90"})
    for (const GemmConfig &c :
         {f32Config("float", 0, false), f32Config("moec_bf16", 0, true),
          f32Config("float", 16, true), f32Config("moec_bf16", 16, false)}) {
      std::string ptx = gemmPtx(arch, c);
      EXPECT_TRUE(contains(ptx, ".entry moec_test_gemm")) << arch.str();
      EXPECT_TRUE(contains(ptx, "fma.rn.f32")) << arch.str();
      EXPECT_FALSE(contains(ptx, "mma")) << arch.str();
    }
}

TEST(CudaGemmEmitter, CompilesToCubin) {
  SKIP_WITHOUT_NVRTC();
  for (llvm::StringRef arch : {"sm_80", "sm_89", "sm_90"}) {
    llvm::Expected<std::string> source =
        emitStandaloneGemm("moec_test_gemm", fp8GroupedSwiglu());
    ASSERT_TRUE(static_cast<bool>(source))
        << llvm::toString(source.takeError());
    llvm::Expected<std::string> cubin =
        compileToCubin(*source, "moec_test_gemm", target(arch));
    ASSERT_TRUE(static_cast<bool>(cubin)) << llvm::toString(cubin.takeError());
    // A cubin is an ELF image.
    EXPECT_EQ(cubin->substr(0, 4), "\x7f"
                                   "ELF");
  }
}

TEST(CudaNvrtc, CompileErrorNamesKernelAndCarriesLog) {
  SKIP_WITHOUT_NVRTC();
  llvm::Expected<std::string> ptx = compileToPtx(
      "extern \"C\" __global__ void broken_kernel() { undeclared_thing = 1; }",
      "broken_kernel", target("sm_89"));
  ASSERT_FALSE(static_cast<bool>(ptx));
  std::string message = llvm::toString(ptx.takeError());
  EXPECT_NE(message.find("kernel 'broken_kernel'"), std::string::npos)
      << message;
  EXPECT_NE(message.find("undeclared_thing"), std::string::npos) << message;
  EXPECT_NE(message.find("sm_89"), std::string::npos) << message;
}

} // namespace
