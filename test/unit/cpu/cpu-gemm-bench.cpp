//===- cpu-gemm-bench.cpp - GFLOP/s of the CPU GEMM kernels -----*- C++ -*-===//
//
// Not a test: compiles the f32, bf16 and FP8 GEMM kernels for the host, runs
// them at T=128, K=2048, N=1408 (DeepSeek-V2-Lite expert shapes) and prints the
// median GFLOP/s (thread CPU time) beside a naive triple loop over the same
// data.
// Usage: cpu-gemm-bench [repeats] [tokens] [tileRows tileCols]
//
//===----------------------------------------------------------------------===//

#include "codegen/cpu/Kernels.h"
#include "codegen/cpu/ObjectEmitter.h"
#include "codegen/cpu/Passes.h"
#include "test/unit/cpu/LoadedObject.h"

#include "mlir/IR/MLIRContext.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <time.h>
#include <vector>

using namespace mlir;
using namespace mlir::moec::cpu;

namespace {

constexpr int64_t kN = 1408, kK = 2048;

/// CPU time of this thread, in seconds: on a shared machine it does not
/// count the time the thread waits for a core.
double threadSeconds() {
  timespec now;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return now.tv_sec + now.tv_nsec * 1e-9;
}

/// Median thread CPU time of `repeats` calls of `fn`, in seconds.
double medianSeconds(int repeats, const std::function<void()> &fn) {
  std::vector<double> times;
  fn(); // warm-up
  for (int i = 0; i < repeats; ++i) {
    double start = threadSeconds();
    fn();
    times.push_back(threadSeconds() - start);
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

float bf16ToFloat(uint16_t bits) {
  uint32_t wide = uint32_t(bits) << 16;
  float value;
  std::memcpy(&value, &wide, 4);
  return value;
}

} // namespace

int main(int argc, char **argv) {
  int repeats = argc > 1 ? std::atoi(argv[1]) : 10;
  int64_t tokens = argc > 2 ? std::atoll(argv[2]) : 128;

  DialectRegistry registry;
  registerCpuCodegenDialects(registry);
  MLIRContext ctx(registry);
  loadCpuKernelDialects(ctx);
  OwningOpRef<ModuleOp> module = ModuleOp::create(UnknownLoc::get(&ctx));
  // MOEC_BENCH_CPU=x86-64-v4 (any variant) instead of the host CPU.
  CpuTargetOptions target;
  if (const char *cpu = std::getenv("MOEC_BENCH_CPU"))
    target.cpu = cpu;
  llvm::Expected<CpuTargetInfo> info = getCpuTargetInfo(target);
  if (!info) {
    std::fprintf(stderr, "cpu-gemm-bench: %s\n",
                 llvm::toString(info.takeError()).c_str());
    return 1;
  }
  CpuKernelOptions options = CpuKernelOptions::forTarget(*info);
  if (argc > 4) {
    options.tileRows = std::atoll(argv[3]);
    options.tileCols = std::atoll(argv[4]);
  }
  // MOEC_BENCH_F16_DECODE=0/1 overrides how FP8 vectors are decoded.
  if (const char *f16 = std::getenv("MOEC_BENCH_F16_DECODE"))
    options.f16Decode = f16[0] == '1';
  struct Variant {
    const char *name;
    GemmElementType weights, activations;
  };
  const Variant variants[] = {
      {"f32", GemmElementType::F32, GemmElementType::F32},
      {"bf16", GemmElementType::BF16, GemmElementType::F32},
      {"fp8 w", GemmElementType::F8E4M3FN, GemmElementType::F32},
      {"fp8 w+x", GemmElementType::F8E4M3FN, GemmElementType::F8E4M3FN}};
  for (const Variant &variant : variants) {
    GemmKernelSpec spec;
    spec.name = variant.name;
    spec.n = kN;
    spec.k = kK;
    spec.weightType = variant.weights;
    spec.activationType = variant.activations;
    if (failed(buildGemmKernel(*module, spec, options)))
      return 1;
  }
  auto start = std::chrono::steady_clock::now();
  FailureOr<std::string> bytes = emitSharedObject(*module, target);
  if (failed(bytes))
    return 1;
  double compileSeconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  ::moec::test::LoadedObject object(*bytes);
  if (!object.handle) {
    std::fprintf(stderr, "dlopen: %s\n", object.error.c_str());
    return 1;
  }

  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> x(tokens * kK), w(kN * kK), y(tokens * kN);
  std::vector<uint16_t> wBf16(kN * kK);
  // FP8 codes without the NaN codes 0x7f/0xff, scales of one.
  std::vector<uint8_t> xFp8(tokens * kK), wFp8(kN * kK);
  std::vector<float> xScale(tokens * kK / 128, 1.0f),
      wScale(kN / 128 * kK / 128 + kK / 128, 1.0f);
  for (size_t i = 0; i < x.size(); ++i) {
    x[i] = dist(rng);
    xFp8[i] = static_cast<uint8_t>(rng() % 0x7f) | (rng() & 0x80);
  }
  for (size_t i = 0; i < w.size(); ++i) {
    w[i] = dist(rng);
    uint32_t bits;
    std::memcpy(&bits, &w[i], 4);
    wBf16[i] = static_cast<uint16_t>(bits >> 16);
    wFp8[i] = static_cast<uint8_t>(rng() % 0x7f) | (rng() & 0x80);
  }
  double flops = 2.0 * tokens * kN * kK;
  std::printf("cpu=%s lanes=%lld tile=%lldx%lld f16-decode=%d T=%lld K=%lld "
              "N=%lld (compile %.2f s, .so %zu bytes)\n",
              info->cpu.c_str(), (long long)options.lanes,
              (long long)options.tileRows, (long long)options.tileCols,
              int(options.f16Decode), (long long)tokens, (long long)kK,
              (long long)kN, compileSeconds, bytes->size());

  // The naive triple loops (scalar: no reassociation without -ffast-math).
  auto naive = [&](bool useBf16) {
    for (int64_t t = 0; t < tokens; ++t)
      for (int64_t n = 0; n < kN; ++n) {
        float sum = 0;
        for (int64_t k = 0; k < kK; ++k)
          sum += x[t * kK + k] *
                 (useBf16 ? bf16ToFloat(wBf16[n * kK + k]) : w[n * kK + k]);
        y[t * kN + n] = sum;
      }
  };
  int naiveRepeats = std::max(1, repeats / 5);
  double naiveF32 = medianSeconds(naiveRepeats, [&] { naive(false); });
  double naiveBf16 = medianSeconds(naiveRepeats, [&] { naive(true); });

  std::printf("%-10s %10s %10s %9s\n", "kernel", "ms", "GFLOP/s", "vs naive");
  std::vector<std::vector<void *>> args = {
      {x.data(), w.data(), y.data()},
      {x.data(), wBf16.data(), y.data()},
      {x.data(), wFp8.data(), wScale.data(), y.data()},
      {xFp8.data(), xScale.data(), wFp8.data(), wScale.data(), y.data()}};
  for (size_t i = 0; i < args.size(); ++i) {
    ::moec::test::KernelFn fn = object.kernel(variants[i].name);
    if (!fn)
      return 1;
    double seconds =
        medianSeconds(repeats, [&] { fn(args[i].data(), tokens); });
    double naiveSeconds = i == 1 ? naiveBf16 : naiveF32;
    std::printf("%-10s %10.2f %10.1f %8.1fx\n", variants[i].name, seconds * 1e3,
                flops / seconds / 1e9, naiveSeconds / seconds);
  }
  std::printf("%-10s %10.2f %10.1f\n", "naive f32", naiveF32 * 1e3,
              flops / naiveF32 / 1e9);
  std::printf("%-10s %10.2f %10.1f\n", "naive bf16", naiveBf16 * 1e3,
              flops / naiveBf16 / 1e9);
  return 0;
}
