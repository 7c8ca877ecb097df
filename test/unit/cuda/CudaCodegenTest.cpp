//===- CudaCodegenTest.cpp - CUDA registry, emitter, NVRTC ------*- C++ -*-===//
//
// Compiles the emitted block-scaled FP8 GEMM with NVRTC for sm_80, sm_89 and
// sm_90 and checks that the PTX uses e4m3 tensor cores exactly where the
// target has them. Runs without a GPU; skips when libnvrtc is missing.
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

/// Emits the GEMM for `arch` and returns its PTX, or fails the test.
std::string gemmPtx(llvm::StringRef arch) {
  const TargetInfo &info = target(arch);
  llvm::Expected<EmittedKernel> kernel = emitFp8BlockScaledGemm(
      "moec_fp8_gemm", Fp8GemmShape{/*n=*/256, /*k=*/512}, info);
  if (!kernel) {
    ADD_FAILURE() << llvm::toString(kernel.takeError());
    return "";
  }
  llvm::Expected<std::string> ptx =
      compileToPtx(kernel->source, kernel->name, info);
  if (!ptx) {
    ADD_FAILURE() << llvm::toString(ptx.takeError()) << "\nsource:\n"
                  << kernel->source;
    return "";
  }
  return *ptx;
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

TEST(CudaGemmEmitter, RejectsUntiledShape) {
  llvm::Expected<EmittedKernel> kernel = emitFp8BlockScaledGemm(
      "bad", Fp8GemmShape{/*n=*/12, /*k=*/128}, target("sm_89"));
  ASSERT_FALSE(static_cast<bool>(kernel));
  EXPECT_NE(llvm::toString(kernel.takeError()).find("but got N = 12"),
            std::string::npos);
}

TEST(CudaGemmEmitter, Sm80UsesBf16MmaOnly) {
  SKIP_WITHOUT_NVRTC();
  std::string ptx = gemmPtx("sm_80");
  EXPECT_NE(ptx.find(".target sm_80"), std::string::npos);
  EXPECT_NE(ptx.find(kBf16Mma), std::string::npos);
  EXPECT_EQ(ptx.find("e4m3"), std::string::npos);
}

TEST(CudaGemmEmitter, Sm89UsesFp8Mma) {
  SKIP_WITHOUT_NVRTC();
  std::string ptx = gemmPtx("sm_89");
  EXPECT_NE(ptx.find(".target sm_89"), std::string::npos);
  EXPECT_NE(ptx.find(kFp8Mma), std::string::npos);
  EXPECT_EQ(ptx.find(kBf16Mma), std::string::npos);
}

TEST(CudaGemmEmitter, Sm90UsesFp8MmaAsSm90a) {
  SKIP_WITHOUT_NVRTC();
  std::string ptx = gemmPtx("sm_90");
  EXPECT_NE(ptx.find(".target sm_90a"), std::string::npos);
  EXPECT_NE(ptx.find(kFp8Mma), std::string::npos);
}

TEST(CudaGemmEmitter, CompilesToCubin) {
  SKIP_WITHOUT_NVRTC();
  const TargetInfo &info = target("sm_89");
  llvm::Expected<EmittedKernel> kernel = emitFp8BlockScaledGemm(
      "moec_fp8_gemm", Fp8GemmShape{/*n=*/128, /*k=*/128}, info);
  ASSERT_TRUE(static_cast<bool>(kernel)) << llvm::toString(kernel.takeError());
  llvm::Expected<std::string> cubin =
      compileToCubin(kernel->source, kernel->name, info);
  ASSERT_TRUE(static_cast<bool>(cubin)) << llvm::toString(cubin.takeError());
  // A cubin is an ELF image.
  EXPECT_EQ(cubin->substr(0, 4), "\x7f"
                                 "ELF");
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
