//===- CpuCodegenTest.cpp - CPU kernels through the shared object -*- C++
//-*-===//
//
// Builds the cpu target's kernels, compiles them with `emitSharedObject`,
// loads the shared object from memory (memfd + dlopen) and calls the kernels
// through the runtime ABI on random inputs, comparing against naive C++
// loops in double precision, for the host CPU and every CPU variant this
// machine runs. Also checks that the shared object is self-contained, that
// unsupported kernels are rejected with a message, and what each variant
// records as needed.
//
//===----------------------------------------------------------------------===//

#include "codegen/cpu/Kernels.h"
#include "codegen/cpu/ObjectEmitter.h"
#include "codegen/cpu/Passes.h"
#include "dialects/MoEDialect.h"
#include "runtime/fp8/Fp8.h"
#include "runtime/support/CpuFeatures.h"
#include "test/unit/cpu/LoadedObject.h"

#include "mlir/AsmParser/AsmParser.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/BinaryFormat/ELF.h"
#include "llvm/Object/ELFObjectFile.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

using namespace mlir;
using namespace mlir::moec::cpu;
namespace fp8 = ::moec::runtime::fp8;
using ::moec::test::KernelFn;
using ::moec::test::LoadedObject;

namespace {

/// Relative L2 error bound for f32 results against a double reference.
constexpr double kTolerance = 1e-5;

//===----------------------------------------------------------------------===//
// Reference data
//===----------------------------------------------------------------------===//

std::vector<float> randomFloats(size_t count, uint32_t seed, float lo = -1.0f,
                                float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> values(count);
  for (float &v : values)
    v = dist(rng);
  return values;
}

/// Rounds `x` to bf16 (nearest even) and returns the bit pattern.
uint16_t toBf16(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, 4);
  bits += 0x7fff + ((bits >> 16) & 1);
  return static_cast<uint16_t>(bits >> 16);
}

double relativeL2(const std::vector<float> &actual,
                  const std::vector<double> &expected) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < expected.size(); ++i) {
    double d = actual[i] - expected[i];
    diff += d * d;
    norm += expected[i] * expected[i];
  }
  return std::sqrt(diff / norm);
}

/// `y[t][n] = Σ_k x[t][k] · w[n][k]` in double over f32 operands.
std::vector<double> referenceGemm(const std::vector<float> &x,
                                  const std::vector<float> &w, int64_t tokens,
                                  int64_t n, int64_t k) {
  std::vector<double> y(tokens * n);
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t j = 0; j < n; ++j) {
      double sum = 0;
      for (int64_t c = 0; c < k; ++c)
        sum += double(x[t * k + c]) * double(w[j * k + c]);
      y[t * n + j] = sum;
    }
  return y;
}

int64_t ceilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

//===----------------------------------------------------------------------===//
// Fixture: one shared object with every kernel, per target
//===----------------------------------------------------------------------===//

/// GEMM shapes under test: K and N that are and are not multiples of the
/// vector width, the micro-tile and the FP8 block.
struct GemmCase {
  const char *name;
  int64_t n, k;
  GemmElementType weights, activations;
};

const GemmCase kGemmCases[] = {
    {"gemm_f32_ragged", 70, 200, GemmElementType::F32, GemmElementType::F32},
    {"gemm_f32_even", 64, 256, GemmElementType::F32, GemmElementType::F32},
    {"gemm_f32_tiny", 3, 5, GemmElementType::F32, GemmElementType::F32},
    {"gemm_bf16", 70, 200, GemmElementType::BF16, GemmElementType::F32},
    {"gemm_fp8_w", 200, 300, GemmElementType::F8E4M3FN, GemmElementType::F32},
    {"gemm_fp8_wx", 200, 300, GemmElementType::F8E4M3FN,
     GemmElementType::F8E4M3FN},
};

/// Token counts: 1, below/at/above the micro-tile (6 rows on AVX-512, 3 on
/// the portable target; fewer rows stream the weights without packing), and
/// beyond one block of dequantized FP8 activations (216 rows for K = 300),
/// with a last block below and above the micro-tile.
const int64_t kTokenCounts[] = {1, 3, 4, 5, 6, 7, 17, 64, 219, 230};

constexpr int64_t kWidth = 100;
constexpr double kRmsEps = 1e-6;

/// `math.sin` and `math.cos` of each row of 8 angles, on scalars (`s`, `c`)
/// and on `vector<8xf32>` (`vs`, `vc`): the two forms the math expansion
/// rewrites.
constexpr const char *kSinCosKernel = R"mlir(
  func.func @sin_cos(%x: memref<?x8xf32>, %s: memref<?x8xf32>, %c: memref<?x8xf32>,
                     %vs: memref<?x8xf32>, %vc: memref<?x8xf32>) {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c8 = arith.constant 8 : index
    %rows = memref.dim %x, %c0 : memref<?x8xf32>
    scf.for %t = %c0 to %rows step %c1 {
      scf.for %j = %c0 to %c8 step %c1 {
        %a = memref.load %x[%t, %j] : memref<?x8xf32>
        %sa = math.sin %a : f32
        %ca = math.cos %a : f32
        memref.store %sa, %s[%t, %j] : memref<?x8xf32>
        memref.store %ca, %c[%t, %j] : memref<?x8xf32>
      }
      %v = vector.load %x[%t, %c0] : memref<?x8xf32>, vector<8xf32>
      %sv = math.sin %v : vector<8xf32>
      %cv = math.cos %v : vector<8xf32>
      vector.store %sv, %vs[%t, %c0] : memref<?x8xf32>, vector<8xf32>
      vector.store %cv, %vc[%t, %c0] : memref<?x8xf32>, vector<8xf32>
    }
    return
  }
)mlir";

/// Builds every test kernel for `target` and compiles it. Returns the
/// shared object's bytes, or an empty string with `error` set.
std::string compileKernels(MLIRContext &ctx, const CpuTargetOptions &target,
                           std::string &error) {
  OwningOpRef<ModuleOp> module = ModuleOp::create(UnknownLoc::get(&ctx));
  llvm::Expected<CpuTargetInfo> info = getCpuTargetInfo(target);
  if (!info) {
    error = llvm::toString(info.takeError());
    return {};
  }
  CpuKernelOptions options = CpuKernelOptions::forTarget(*info);
  bool ok = true;
  for (const GemmCase &c : kGemmCases) {
    GemmKernelSpec spec;
    spec.name = c.name;
    spec.n = c.n;
    spec.k = c.k;
    spec.weightType = c.weights;
    spec.activationType = c.activations;
    ok &= succeeded(buildGemmKernel(*module, spec, options));
  }
  // Every E4M3FN code through the weight path: y[0][n] = decode(n) · 1 · 1.
  GemmKernelSpec decode;
  decode.name = "fp8_decode";
  decode.n = 256;
  decode.k = 1;
  decode.weightType = GemmElementType::F8E4M3FN;
  ok &= succeeded(buildGemmKernel(*module, decode, options));
  ok &= succeeded(buildAddKernel(*module, "add", kWidth));
  ok &= succeeded(buildSiluMulKernel(*module, "silu_mul", kWidth));
  ok &= succeeded(
      buildRmsNormKernel(*module, "rms_norm", kWidth, kRmsEps, options));
  ok &= succeeded(
      buildRmsNormKernel(*module, "rms_norm_wide", 2048, kRmsEps, options));
  OwningOpRef<ModuleOp> sinCos =
      parseSourceString<ModuleOp>(kSinCosKernel, &ctx);
  ok &= bool(sinCos);
  if (sinCos)
    module->getBody()->getOperations().splice(
        module->getBody()->end(), sinCos->getBody()->getOperations());
  if (!ok) {
    error = "building the kernels failed";
    return {};
  }
  FailureOr<std::string> object = emitSharedObject(*module, target);
  if (failed(object)) {
    error = "emitSharedObject failed";
    return {};
  }
  return *object;
}

/// A context with the CPU codegen dialects, printing diagnostics to stderr.
std::unique_ptr<MLIRContext> makeContext() {
  DialectRegistry registry;
  registerCpuCodegenDialects(registry);
  auto ctx = std::make_unique<MLIRContext>(registry);
  loadCpuKernelDialects(*ctx);
  return ctx;
}

/// True when this machine has every feature the variant `cpu` needs (the
/// host CPU, "", always).
bool runsHere(const std::string &cpu) {
  if (cpu.empty())
    return true;
  ::moec::runtime::CpuFeatureSet level;
  return !::moec::runtime::getCpuLevelFeatures(cpu, level) ||
         ::moec::runtime::detectCpuFeatures().containsAll(level);
}

/// The host CPU ("") and every CPU variant.
std::vector<std::string> targetsUnderTest() {
  std::vector<std::string> targets = {""};
  for (const std::string &variant : getCpuVariantNames())
    targets.push_back(variant);
  return targets;
}

class CpuCodegenTest : public ::testing::TestWithParam<std::string> {
protected:
  /// One compiled object per target (`CpuTargetOptions::cpu`), shared by the
  /// tests.
  struct Compiled {
    std::unique_ptr<MLIRContext> ctx;
    std::string bytes, error;
    std::unique_ptr<LoadedObject> object;
  };

  static Compiled &compiled(const std::string &cpu) {
    static std::map<std::string, Compiled> targets;
    Compiled &c = targets[cpu];
    if (!c.ctx) {
      c.ctx = makeContext();
      CpuTargetOptions target;
      target.cpu = cpu;
      c.bytes = compileKernels(*c.ctx, target, c.error);
      if (!c.bytes.empty()) {
        c.object = std::make_unique<LoadedObject>(c.bytes);
        if (!c.object->handle)
          c.error = c.object->error;
      }
    }
    return c;
  }

  void SetUp() override {
    if (!runsHere(GetParam()))
      GTEST_SKIP() << "this CPU lacks features of " << GetParam();
    Compiled &c = compiled(GetParam());
    ASSERT_TRUE(c.error.empty()) << c.error;
    object = c.object.get();
    bytes = &c.bytes;
  }

  KernelFn kernel(const char *name) {
    KernelFn fn = object->kernel(name);
    EXPECT_NE(fn, nullptr) << "missing kernel " << name;
    return fn;
  }

  LoadedObject *object = nullptr;
  const std::string *bytes = nullptr;
};

//===----------------------------------------------------------------------===//
// The shared object itself
//===----------------------------------------------------------------------===//

TEST_P(CpuCodegenTest, SharedObjectIsSelfContained) {
  auto file = llvm::object::ObjectFile::createObjectFile(
      llvm::MemoryBufferRef(*bytes, "kernels.so"));
  ASSERT_TRUE(static_cast<bool>(file)) << llvm::toString(file.takeError());
  auto *elf = llvm::dyn_cast<llvm::object::ELF64LEObjectFile>(file->get());
  ASSERT_NE(elf, nullptr);
  EXPECT_EQ(elf->getELFFile().getHeader().e_type, llvm::ELF::ET_DYN);

  auto dynamic = elf->getELFFile().dynamicEntries();
  ASSERT_TRUE(static_cast<bool>(dynamic))
      << llvm::toString(dynamic.takeError());
  for (const auto &entry : *dynamic)
    EXPECT_NE(entry.getTag(), llvm::ELF::DT_NEEDED) << "unexpected DT_NEEDED";

  std::set<std::string> exported;
  for (const llvm::object::ELFSymbolRef &symbol :
       elf->getDynamicSymbolIterators()) {
    auto name = symbol.getName();
    auto flags = symbol.getFlags();
    ASSERT_TRUE(name && flags);
    if (name->empty())
      continue;
    EXPECT_FALSE(*flags & llvm::object::SymbolRef::SF_Undefined)
        << "undefined symbol " << name->str();
    exported.insert(name->str());
  }
  std::set<std::string> expected = {"add",           "silu_mul",   "rms_norm",
                                    "rms_norm_wide", "fp8_decode", "sin_cos"};
  for (const GemmCase &c : kGemmCases)
    expected.insert(c.name);
  EXPECT_EQ(exported, expected);
}

//===----------------------------------------------------------------------===//
// GEMM
//===----------------------------------------------------------------------===//

TEST_P(CpuCodegenTest, GemmMatchesReference) {
  uint32_t seed = 1;
  for (const GemmCase &c : kGemmCases) {
    KernelFn fn = kernel(c.name);
    ASSERT_NE(fn, nullptr);
    int64_t n = c.n, k = c.k, blocksK = ceilDiv(k, 128);
    for (int64_t tokens : kTokenCounts) {
      SCOPED_TRACE(std::string(c.name) + " T=" + std::to_string(tokens));
      // Dequantized operands (what the reference multiplies) and their
      // stored forms (what the kernel reads).
      std::vector<float> x = randomFloats(tokens * k, seed++, -2.0f, 2.0f);
      std::vector<float> w = randomFloats(n * k, seed++);
      std::vector<uint8_t> xq, wq;
      std::vector<float> xScale, wScale;
      std::vector<uint16_t> wBf16;
      std::vector<void *> args;

      if (c.activations == GemmElementType::F8E4M3FN) {
        xq.resize(x.size());
        xScale.resize(tokens * blocksK);
        fp8::quantizeBlocks(x.data(), tokens, k, 1, 128, false, xq.data(),
                            xScale.data());
        fp8::dequantizeBlocks(xq.data(), xScale.data(), tokens, k, 1, 128,
                              x.data());
        args = {xq.data(), xScale.data()};
      } else {
        args = {x.data()};
      }
      switch (c.weights) {
      case GemmElementType::F32:
        args.push_back(w.data());
        break;
      case GemmElementType::BF16:
        for (float &v : w) {
          wBf16.push_back(toBf16(v));
          v = fp8::bf16ToFloat(wBf16.back());
        }
        args.push_back(wBf16.data());
        break;
      case GemmElementType::F8E4M3FN:
        wq.resize(w.size());
        wScale.resize(ceilDiv(n, 128) * blocksK);
        fp8::quantizeBlocks(w.data(), n, k, 128, 128, false, wq.data(),
                            wScale.data());
        fp8::dequantizeBlocks(wq.data(), wScale.data(), n, k, 128, 128,
                              w.data());
        args.push_back(wq.data());
        args.push_back(wScale.data());
        break;
      }
      std::vector<float> y(tokens * n, std::nanf(""));
      args.push_back(y.data());

      fn(args.data(), tokens);
      EXPECT_LE(relativeL2(y, referenceGemm(x, w, tokens, n, k)), kTolerance);
    }
  }
}

TEST_P(CpuCodegenTest, Fp8DecodeIsExactForEveryCode) {
  KernelFn fn = kernel("fp8_decode");
  ASSERT_NE(fn, nullptr);
  float x = 1.0f;
  std::vector<uint8_t> codes(256);
  for (int i = 0; i < 256; ++i)
    codes[i] = static_cast<uint8_t>(i);
  float scales[2] = {1.0f, 1.0f};
  std::vector<float> y(256);
  void *args[] = {&x, codes.data(), scales, y.data()};
  fn(args, 1);
  for (int i = 0; i < 256; ++i) {
    float expected = fp8::e4m3fnToFloat(static_cast<uint8_t>(i));
    if (std::isnan(expected))
      EXPECT_TRUE(std::isnan(y[i])) << "code " << i;
    else
      EXPECT_EQ(y[i], expected) << "code " << i;
  }
}

TEST_P(CpuCodegenTest, ZeroTokensWriteNothing) {
  KernelFn fn = kernel("gemm_fp8_wx");
  ASSERT_NE(fn, nullptr);
  std::vector<uint8_t> w(200 * 300, 0x38);
  std::vector<float> wScale(2 * 3, 1.0f), y(200, 42.0f);
  // x and its scales are never read for zero tokens.
  void *args[] = {nullptr, nullptr, w.data(), wScale.data(), y.data()};
  fn(args, 0);
  for (float v : y)
    EXPECT_EQ(v, 42.0f);
}

//===----------------------------------------------------------------------===//
// Non-GEMM kernels
//===----------------------------------------------------------------------===//

TEST_P(CpuCodegenTest, ElementwiseKernelsMatchReference) {
  KernelFn add = kernel("add"), siluMul = kernel("silu_mul");
  ASSERT_TRUE(add && siluMul);
  for (int64_t tokens : {1, 7}) {
    SCOPED_TRACE("T=" + std::to_string(tokens));
    std::vector<float> a = randomFloats(tokens * kWidth, 11, -8.0f, 8.0f);
    std::vector<float> b = randomFloats(tokens * kWidth, 12, -8.0f, 8.0f);
    std::vector<double> sum(a.size()), swiglu(a.size());
    for (size_t i = 0; i < a.size(); ++i) {
      sum[i] = double(a[i]) + double(b[i]);
      swiglu[i] = a[i] / (1.0 + std::exp(-double(a[i]))) * b[i];
    }
    std::vector<float> y(a.size());
    void *args[] = {a.data(), b.data(), y.data()};
    add(args, tokens);
    EXPECT_LE(relativeL2(y, sum), kTolerance);
    siluMul(args, tokens);
    EXPECT_LE(relativeL2(y, swiglu), kTolerance);
  }
}

TEST_P(CpuCodegenTest, RmsNormMatchesReference) {
  for (auto [name, hidden] :
       {std::pair<const char *, int64_t>{"rms_norm", kWidth},
        {"rms_norm_wide", 2048}}) {
    KernelFn fn = kernel(name);
    ASSERT_NE(fn, nullptr);
    for (int64_t tokens : {1, 5}) {
      SCOPED_TRACE(std::string(name) + " T=" + std::to_string(tokens));
      std::vector<float> x = randomFloats(tokens * hidden, 21, -3.0f, 3.0f);
      std::vector<float> weight = randomFloats(hidden, 22, 0.5f, 1.5f);
      std::vector<double> expected(x.size());
      for (int64_t t = 0; t < tokens; ++t) {
        double squares = 0;
        for (int64_t h = 0; h < hidden; ++h)
          squares += double(x[t * hidden + h]) * x[t * hidden + h];
        double inverse = 1.0 / std::sqrt(squares / hidden + kRmsEps);
        for (int64_t h = 0; h < hidden; ++h)
          expected[t * hidden + h] = x[t * hidden + h] * inverse * weight[h];
      }
      std::vector<float> y(x.size());
      void *args[] = {x.data(), weight.data(), y.data()};
      fn(args, tokens);
      EXPECT_LE(relativeL2(y, expected), kTolerance);
    }
  }
}

//===----------------------------------------------------------------------===//
// sin and cos (RoPE angles)
//===----------------------------------------------------------------------===//

/// Error of `got` in units in the last place of the f32 result nearest to
/// the exact value `want`: 0.5 at most for a correctly rounded result.
double ulpError(float got, double want) {
  if (std::isnan(want) || std::isnan(got))
    return std::isnan(want) && std::isnan(got) ? 0 : INFINITY;
  int exponent = want == 0 ? FLT_MIN_EXP - 1 : std::ilogb(want);
  double ulp = std::ldexp(1.0, std::max(exponent, FLT_MIN_EXP - 1) - 23);
  return std::fabs(double(got) - want) / ulp;
}

/// The f32 angles `position × inv_freq` of RoPE, computed as transformers
/// does (both factors f32, one rounding), for positions up to 131072 and the
/// inverse frequencies of each scaling: none (theta 10⁴, D = 128), linear
/// (Llama 3: theta 5·10⁵, factor 8) and YaRN (DeepSeek-V3's rope: D = 64,
/// factor 40 over 4096 positions). Interleaving changes the channel pairs,
/// not the angles.
std::vector<float> ropeAngles(MLIRContext &ctx) {
  ctx.getOrLoadDialect<moe::MoEDialect>();
  std::vector<std::pair<int64_t, std::vector<float>>> flavours = {
      {128, moe::getRopeInverseFrequencies(128, 1e4, {})}};
  for (auto [dim, theta, scaling] :
       {std::tuple<int64_t, double, const char *>{
            128, 5e5, "#moe.rope_scaling<kind = linear, factor = 8.0>"},
        {64, 1e4,
         "#moe.rope_scaling<kind = yarn, factor = 40.0, "
         "original_max_position_embeddings = 4096, beta_fast = 32.0, "
         "beta_slow = 1.0, mscale = 1.0, mscale_all_dim = 1.0>"}}) {
    auto attr =
        dyn_cast_or_null<moe::RopeScalingAttr>(parseAttribute(scaling, &ctx));
    EXPECT_TRUE(attr) << scaling;
    flavours.push_back({dim, moe::getRopeInverseFrequencies(dim, theta, attr)});
  }
  std::vector<int64_t> positions;
  for (int64_t p = 0; p < 4096; ++p)
    positions.push_back(p);
  for (int64_t p = 4096; p < 131072 - 64; p += 61)
    positions.push_back(p);
  for (int64_t p = 131072 - 64; p <= 131072; ++p)
    positions.push_back(p);
  std::vector<float> angles;
  for (const auto &flavour : flavours)
    for (int64_t p : positions)
      for (float inv : flavour.second)
        angles.push_back(inv * float(p));
  return angles;
}

/// Angles hard to reduce: the f32 values nearest to multiples of π/2 up to
/// 2^17, and their neighbours, where sin or cos is tiny and every bit of the
/// reduction shows; random magnitudes from 2^-30 to 2^27; and ±0, ±∞, NaN.
std::vector<float> hardAngles() {
  std::vector<float> angles;
  for (int64_t k = 1; k * M_PI_2 < 131072.0 * 1.05; ++k) {
    float x = float(double(k) * M_PI_2);
    for (float v : {x, std::nextafter(x, 0.0f), std::nextafter(x, INFINITY)})
      angles.insert(angles.end(), {v, -v});
  }
  std::mt19937 rng(99);
  std::uniform_real_distribution<double> exponent(-30.0, 27.0);
  for (int i = 0; i < 100000; ++i)
    angles.push_back(float((i % 2 ? -1 : 1) * std::exp2(exponent(rng))));
  angles.insert(angles.end(), {0.0f, -0.0f, INFINITY, -INFINITY, NAN, FLT_MIN,
                               -FLT_TRUE_MIN, float(M_PI_4)});
  return angles;
}

// sin and cos of every f32 angle RoPE computes at positions up to 131072,
// scalar and vector, within 2 ulp of sin and cos of that f32 angle in double.
TEST_P(CpuCodegenTest, SinCosAreAccurateAtLongPositions) {
  KernelFn fn = kernel("sin_cos");
  ASSERT_NE(fn, nullptr);
  MLIRContext ctx;
  for (auto [name, angles] : {std::pair<const char *, std::vector<float>>{
                                  "RoPE angles", ropeAngles(ctx)},
                              {"hard angles", hardAngles()}}) {
    SCOPED_TRACE(name);
    angles.resize((angles.size() + 7) / 8 * 8, 0.0f);
    int64_t rows = int64_t(angles.size() / 8);
    std::vector<float> s(angles.size()), c(s.size()), vs(s.size()),
        vc(s.size());
    void *args[] = {angles.data(), s.data(), c.data(), vs.data(), vc.data()};
    fn(args, rows);
    struct Worst {
      const char *what;
      const std::vector<float> &got;
      bool sine;
      double ulps = 0;
      float angle = 0;
    } worst[] = {{"sin", s, true},
                 {"cos", c, false},
                 {"vector sin", vs, true},
                 {"vector cos", vc, false}};
    for (size_t i = 0; i < angles.size(); ++i) {
      double x = angles[i];
      double sine = std::sin(x), cosine = std::cos(x);
      for (Worst &w : worst) {
        double e = ulpError(w.got[i], w.sine ? sine : cosine);
        if (!(e <= w.ulps)) {
          w.ulps = e;
          w.angle = angles[i];
        }
      }
      // sin(-0) is -0.
      if (x == 0)
        EXPECT_TRUE(std::signbit(s[i]) == std::signbit(x) &&
                    std::signbit(vs[i]) == std::signbit(x));
    }
    for (const Worst &w : worst)
      EXPECT_LE(w.ulps, 2.0)
          << w.what << " is " << w.ulps << " ulp off at " << std::hexfloat
          << w.angle << " (" << std::defaultfloat << w.angle << ")";
  }
}

INSTANTIATE_TEST_SUITE_P(Targets, CpuCodegenTest,
                         ::testing::ValuesIn(targetsUnderTest()),
                         [](const ::testing::TestParamInfo<std::string> &info) {
                           std::string name =
                               info.param.empty() ? "Host" : info.param;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

//===----------------------------------------------------------------------===//
// CPU variants
//===----------------------------------------------------------------------===//

// What a variant records as needed is what LLVM's CPU of that name enables
// among the runtime's features, and equals the runtime's psABI level.
TEST(CpuTarget, VariantsNeedTheRuntimesLevelFeatures) {
  for (const std::string &cpu : getCpuVariantNames()) {
    CpuTargetOptions options;
    options.cpu = cpu;
    llvm::Expected<CpuTargetInfo> info = getCpuTargetInfo(options);
    ASSERT_TRUE(static_cast<bool>(info)) << llvm::toString(info.takeError());
    EXPECT_EQ(info->cpu, cpu);
    EXPECT_TRUE(info->features.empty());
    ::moec::runtime::CpuFeatureSet level;
    if (!::moec::runtime::getCpuLevelFeatures(cpu, level)) {
      EXPECT_TRUE(info->requiredFeatures.empty()) << cpu;
      continue;
    }
    EXPECT_EQ(info->requiredFeatures, level.names()) << cpu;
    EXPECT_TRUE(std::is_sorted(info->requiredFeatures.begin(),
                               info->requiredFeatures.end()));
  }
}

TEST(CpuTarget, VariantsSetTheKernelsVectorFacts) {
  if (getCpuVariantNames().front() != "x86-64-v2")
    GTEST_SKIP() << "not x86-64";
  auto facts = [](const char *cpu) {
    CpuTargetOptions options;
    options.cpu = cpu;
    return llvm::cantFail(getCpuTargetInfo(options));
  };
  CpuTargetInfo v2 = facts("x86-64-v2"), v3 = facts("x86-64-v3"),
                v4 = facts("x86-64-v4");
  EXPECT_EQ(std::make_tuple(v2.vectorBits, v2.vectorRegisters, v2.hasFma,
                            v2.hasF16Convert),
            std::make_tuple(int64_t(128), int64_t(16), false, false));
  EXPECT_EQ(std::make_tuple(v3.vectorBits, v3.vectorRegisters, v3.hasFma,
                            v3.hasF16Convert),
            std::make_tuple(int64_t(256), int64_t(16), true, true));
  EXPECT_EQ(std::make_tuple(v4.vectorBits, v4.vectorRegisters, v4.hasFma,
                            v4.hasF16Convert),
            std::make_tuple(int64_t(512), int64_t(32), true, true));
  EXPECT_EQ(CpuKernelOptions::forTarget(v4).tileRows, 6);
  EXPECT_EQ(CpuKernelOptions::forTarget(v2).tileRows, 3);
}

TEST(CpuTarget, HostVariantIsTheBestThatRunsHere) {
  std::vector<std::string> names = getCpuVariantNames();
  std::string host = getHostCpuVariant();
  auto at = std::find(names.begin(), names.end(), host);
  ASSERT_NE(at, names.end()) << host;
  EXPECT_TRUE(runsHere(host));
  if (at + 1 != names.end())
    EXPECT_FALSE(runsHere(*(at + 1)));
  EXPECT_EQ(getPortableCpuVariant(), names.front());
}

TEST(CpuTarget, UnknownVariantIsRefusedListingTheValidOnes) {
  CpuTargetOptions options;
  options.cpu = "x86-64-v5";
  llvm::Expected<CpuTargetInfo> info = getCpuTargetInfo(options);
  ASSERT_FALSE(static_cast<bool>(info));
  std::vector<std::string> names = getCpuVariantNames();
  EXPECT_EQ(llvm::toString(info.takeError()),
            "unknown CPU variant 'x86-64-v5'; expected one of " +
                llvm::join(names, ", "));
}

TEST(CpuCodegen, EmissionIsDeterministic) {
  // The same kernels give the same bytes (artifacts and caches rely on it).
  std::string first, second;
  for (std::string *out : {&first, &second}) {
    std::unique_ptr<MLIRContext> ctx = makeContext();
    OwningOpRef<ModuleOp> module = ModuleOp::create(UnknownLoc::get(ctx.get()));
    GemmKernelSpec spec;
    spec.name = "gemm";
    spec.n = 20;
    spec.k = 40;
    spec.weightType = GemmElementType::BF16;
    ASSERT_TRUE(succeeded(buildGemmKernel(*module, spec, CpuKernelOptions())));
    ASSERT_TRUE(succeeded(buildAddKernel(*module, "add", 8)));
    FailureOr<std::string> bytes =
        emitSharedObject(*module, CpuTargetOptions());
    ASSERT_TRUE(succeeded(bytes));
    *out = *bytes;
  }
  EXPECT_FALSE(first.empty());
  EXPECT_TRUE(first == second);
}

//===----------------------------------------------------------------------===//
// Rejected kernels
//===----------------------------------------------------------------------===//

/// Compiles the kernel module `source`, expecting failure; returns the
/// diagnostics.
std::string expectRejected(const char *source) {
  std::unique_ptr<MLIRContext> ctx = makeContext();
  std::string messages;
  ScopedDiagnosticHandler handler(ctx.get(), [&](Diagnostic &diag) {
    messages += diag.str() + "\n";
    return success();
  });
  OwningOpRef<ModuleOp> module = parseSourceString<ModuleOp>(source, ctx.get());
  EXPECT_TRUE(module) << messages;
  if (!module)
    return messages;
  EXPECT_TRUE(failed(emitSharedObject(*module, CpuTargetOptions())));
  return messages;
}

TEST(CpuCodegenErrors, RejectsNonMemrefArgument) {
  std::string messages = expectRejected(R"mlir(
    func.func @bad(%n: i32) { return }
  )mlir");
  EXPECT_NE(messages.find("expected CPU kernel argument #0 to be a memref, "
                          "but got 'i32'"),
            std::string::npos)
      << messages;
}

TEST(CpuCodegenErrors, RejectsDynamicInnerDimension) {
  std::string messages = expectRejected(R"mlir(
    func.func @bad(%x: memref<4x?xf32>) { return }
  )mlir");
  EXPECT_NE(messages.find("expected only the leading (token) dimension of "
                          "CPU kernel argument #0 to be dynamic, but got "
                          "'memref<4x?xf32>'"),
            std::string::npos)
      << messages;
}

TEST(CpuCodegenErrors, RejectsLibmDependency) {
  // exp on f64 has no polynomial approximation: it would need libm's `exp`.
  std::string messages = expectRejected(R"mlir(
    func.func @f64_exp(%x: memref<?xf64>) {
      %c0 = arith.constant 0 : index
      %v = memref.load %x[%c0] : memref<?xf64>
      %e = math.exp %v : f64
      memref.store %e, %x[%c0] : memref<?xf64>
      return
    }
  )mlir");
  EXPECT_NE(messages.find("CPU kernels need external symbols `exp`, but the "
                          "shared object links no libraries"),
            std::string::npos)
      << messages;
}

} // namespace
