//===- CpuFeaturesTest.cpp - CPU features and code selection ----*- C++ -*-===//
//
// The feature table and the psABI levels, CPUID/XGETBV detection against
// GCC's own detection (`__builtin_cpu_supports`, which reads CPUID and XCR0
// independently), the `MOEC_CPU_FEATURES` mask and its errors, and the rule
// that picks a CPU code variant, including the message when none fits.
//
//===----------------------------------------------------------------------===//

#include "TestModel.h"

#include "runtime/support/CpuFeatures.h"

#include <gtest/gtest.h>

using namespace moec::runtime;

namespace {

/// Sets `MOEC_CPU_FEATURES` (or unsets it) for one scope.
class ScopedCpuFeaturesEnv : public test::ScopedEnv {
public:
  explicit ScopedCpuFeaturesEnv(const char *value)
      : ScopedEnv(kCpuFeaturesEnv, value) {}
};

CpuFeatureSet level(const char *name) {
  CpuFeatureSet set;
  EXPECT_TRUE(getCpuLevelFeatures(name, set)) << name;
  return set;
}

std::vector<std::string> levelNames(const char *name) {
  return level(name).names();
}

TEST(CpuFeatures, TableIsSortedAndUnique) {
  const std::vector<std::string_view> &names = cpuFeatureNames();
  ASSERT_GT(names.size(), 40u);
  for (size_t i = 1; i < names.size(); ++i)
    EXPECT_LT(names[i - 1], names[i]);
  for (size_t i = 0; i < names.size(); ++i)
    EXPECT_EQ(findCpuFeature(names[i]), int(i));
  EXPECT_EQ(findCpuFeature("avx512"), -1);
  EXPECT_EQ(findCpuFeature(""), -1);
}

TEST(CpuFeatures, LevelsNestAndAddThePsAbiFeatures) {
  EXPECT_EQ(cpuLevelNames(),
            (std::vector<std::string_view>{"x86-64", "x86-64-v2", "x86-64-v3",
                                           "x86-64-v4"}));
  EXPECT_TRUE(level("x86-64-v2").containsAll(level("x86-64")));
  EXPECT_TRUE(level("x86-64-v3").containsAll(level("x86-64-v2")));
  EXPECT_TRUE(level("x86-64-v4").containsAll(level("x86-64-v3")));
  EXPECT_EQ(
      levelNames("x86-64-v2"),
      (std::vector<std::string>{"64bit", "cmov", "crc32", "cx16", "cx8", "fxsr",
                                "mmx", "popcnt", "sahf", "sse", "sse2", "sse3",
                                "sse4.1", "sse4.2", "ssse3", "x87"}));
  EXPECT_EQ(level("x86-64-v3").size(), 25u);
  EXPECT_EQ(level("x86-64-v4").size(), 30u);
  EXPECT_FALSE(level("x86-64-v3").contains(size_t(findCpuFeature("avx512f"))));
  CpuFeatureSet unused;
  EXPECT_FALSE(getCpuLevelFeatures("x86-64-v5", unused));
}

#if defined(__x86_64__) && defined(__GNUC__)
// GCC's detection (libgcc's __cpu_indicator_init) is independent of ours:
// it reads CPUID and, for AVX and AVX-512, XCR0 itself.
TEST(CpuFeatures, DetectionAgreesWithTheCompilersOwn) {
  const CpuFeatureSet &detected = detectCpuFeatures();
  auto has = [&](const char *name) {
    int index = findCpuFeature(name);
    return index >= 0 && detected.contains(size_t(index));
  };
  __builtin_cpu_init();
  EXPECT_TRUE(detected.containsAll(level("x86-64")));
  EXPECT_EQ(has("sse4.2"), bool(__builtin_cpu_supports("sse4.2")));
  EXPECT_EQ(has("popcnt"), bool(__builtin_cpu_supports("popcnt")));
  EXPECT_EQ(has("avx"), bool(__builtin_cpu_supports("avx")));
  EXPECT_EQ(has("avx2"), bool(__builtin_cpu_supports("avx2")));
  EXPECT_EQ(has("fma"), bool(__builtin_cpu_supports("fma")));
  EXPECT_EQ(has("bmi2"), bool(__builtin_cpu_supports("bmi2")));
  EXPECT_EQ(has("avx512f"), bool(__builtin_cpu_supports("avx512f")));
  EXPECT_EQ(has("avx512bw"), bool(__builtin_cpu_supports("avx512bw")));
  EXPECT_EQ(has("avx512vl"), bool(__builtin_cpu_supports("avx512vl")));
  EXPECT_EQ(has("avx512vnni"), bool(__builtin_cpu_supports("avx512vnni")));
  EXPECT_EQ(detected.containsAll(level("x86-64-v3")),
            bool(__builtin_cpu_supports("x86-64-v3")));
  EXPECT_EQ(detected.containsAll(level("x86-64-v4")),
            bool(__builtin_cpu_supports("x86-64-v4")));
}
#endif

TEST(CpuFeatures, ParsesLevelsAndNames) {
  StatusOr<CpuFeatureSet> set = parseCpuFeatureList(" x86-64-v2 ,avx2,,fma ");
  ASSERT_TRUE(set.isOk()) << set.status().toString();
  CpuFeatureSet want = level("x86-64-v2");
  want.insert(size_t(findCpuFeature("avx2")));
  want.insert(size_t(findCpuFeature("fma")));
  EXPECT_EQ(*set, want);
  StatusOr<CpuFeatureSet> empty = parseCpuFeatureList("");
  ASSERT_TRUE(empty.isOk());
  EXPECT_EQ(empty->size(), 0u);

  StatusOr<CpuFeatureSet> bad = parseCpuFeatureList("x86-64-v2,avx-512");
  ASSERT_FALSE(bad.isOk());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message().rfind(
                "unknown CPU feature 'avx-512'; expected a level (x86-64, "
                "x86-64-v2, x86-64-v3, x86-64-v4) or a feature name (64bit, "
                "adx, aes, ",
                0),
            0u)
      << bad.status().message();
}

TEST(CpuFeatures, TheEnvironmentOnlyTakesFeaturesAway) {
  {
    ScopedCpuFeaturesEnv env(nullptr);
    StatusOr<HostCpuFeatures> host = getHostCpuFeatures();
    ASSERT_TRUE(host.isOk());
    EXPECT_EQ(host->features, detectCpuFeatures());
    EXPECT_EQ(host->describe(), "this host");
  }
  {
    ScopedCpuFeaturesEnv env("x86-64-v2");
    StatusOr<HostCpuFeatures> host = getHostCpuFeatures();
    ASSERT_TRUE(host.isOk());
    EXPECT_EQ(host->features,
              detectCpuFeatures().intersect(level("x86-64-v2")));
    EXPECT_EQ(host->describe(), "this host (MOEC_CPU_FEATURES=x86-64-v2)");
  }
  {
    // Naming every feature cannot add one the CPU lacks.
    std::string all;
    for (std::string_view name : cpuFeatureNames())
      all += std::string(name) + ",";
    ScopedCpuFeaturesEnv env(all.c_str());
    StatusOr<HostCpuFeatures> host = getHostCpuFeatures();
    ASSERT_TRUE(host.isOk());
    EXPECT_EQ(host->features, detectCpuFeatures());
  }
  {
    ScopedCpuFeaturesEnv env("x86-64-v9");
    StatusOr<HostCpuFeatures> host = getHostCpuFeatures();
    ASSERT_FALSE(host.isOk());
    EXPECT_EQ(host.status().message().rfind(
                  "MOEC_CPU_FEATURES: unknown CPU feature 'x86-64-v9'", 0),
              0u)
        << host.status().message();
  }
}

CpuCodeVariant variant(const std::string &name, const char *levelName,
                       std::vector<std::string> extra = {}) {
  CpuCodeVariant v{name, levelName, levelNames(levelName)};
  for (std::string &f : extra)
    v.features.push_back(std::move(f));
  return v;
}

HostCpuFeatures hostWith(const char *levelName) {
  HostCpuFeatures host;
  host.features = level(levelName);
  return host;
}

TEST(CpuFeatures, PicksTheVariantNeedingTheMostFeaturesTheHostHas) {
  std::vector<CpuCodeVariant> variants = {
      variant("cpu.so.x86-64-v2", "x86-64-v2"),
      variant("cpu.so.x86-64-v4", "x86-64-v4"),
      variant("cpu.so.x86-64-v3", "x86-64-v3")};
  auto pick = [&](const char *host) {
    StatusOr<size_t> chosen = selectCpuCodeVariant(variants, hostWith(host));
    EXPECT_TRUE(chosen.isOk()) << chosen.status().toString();
    return chosen.isOk() ? variants[*chosen].name : std::string();
  };
  EXPECT_EQ(pick("x86-64-v2"), "cpu.so.x86-64-v2");
  EXPECT_EQ(pick("x86-64-v3"), "cpu.so.x86-64-v3");
  EXPECT_EQ(pick("x86-64-v4"), "cpu.so.x86-64-v4");

  // Equally many features: the first listed wins.
  std::vector<CpuCodeVariant> tie = {variant("cpu.so.a", "x86-64-v3", {"aes"}),
                                     variant("cpu.so.b", "x86-64-v3", {"sha"})};
  HostCpuFeatures both = hostWith("x86-64-v3");
  both.features.insert(size_t(findCpuFeature("aes")));
  both.features.insert(size_t(findCpuFeature("sha")));
  StatusOr<size_t> chosen = selectCpuCodeVariant(tie, both);
  ASSERT_TRUE(chosen.isOk());
  EXPECT_EQ(*chosen, 0u);
}

TEST(CpuFeatures, RefusesNamingTheMissingFeaturesWhenNoneFits) {
  std::vector<CpuCodeVariant> variants = {
      variant("cpu.so.x86-64-v4", "x86-64-v4"),
      variant("cpu.so.amx", "x86-64-v4", {"amx-tile", "no-such-feature"})};
  HostCpuFeatures host = hostWith("x86-64-v3");
  host.override = "x86-64-v3";
  StatusOr<size_t> chosen = selectCpuCodeVariant(variants, host);
  ASSERT_FALSE(chosen.isOk());
  EXPECT_EQ(chosen.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(chosen.status().message(),
            "no CPU code in the artifact runs on this host "
            "(MOEC_CPU_FEATURES=x86-64-v3), which lacks features the code "
            "needs: cpu.so.x86-64-v4 (x86-64-v4): avx512bw, avx512cd, "
            "avx512dq, avx512f, avx512vl; cpu.so.amx (x86-64-v4): amx-tile, "
            "avx512bw, avx512cd, avx512dq, avx512f, avx512vl, "
            "no-such-feature");
  StatusOr<size_t> none = selectCpuCodeVariant({}, host);
  ASSERT_FALSE(none.isOk());
  EXPECT_EQ(none.status().message(), "the artifact carries no CPU code");
}

} // namespace
