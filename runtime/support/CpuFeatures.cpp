//===- CpuFeatures.cpp - Host CPU features and code selection ---*- C++ -*-===//
//
// One table maps each LLVM feature name to its CPUID bit and to the register
// state the OS must enable for it (XCR0, read with XGETBV). Detection reads
// the table once; AMX also needs the process's permission from Linux
// (arch_prctl ARCH_REQ_XCOMP_PERM), without which its instructions fault.
// Selection is plain set arithmetic over the table's indices.
//
//===----------------------------------------------------------------------===//

#include "runtime/support/CpuFeatures.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#define MOEC_CPU_FEATURES_X86 1
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
#endif

namespace moec::runtime {

namespace {

/// The CPUID register a feature bit lives in.
enum class Reg { kEax, kEbx, kEcx, kEdx };

/// The register state a feature's instructions use, which the OS must save
/// (XCR0 bits): none, SSE+AVX (1, 2), + opmask and ZMM (5, 6, 7), tiles
/// (17, 18).
enum class State { kNone, kAvx, kAvx512, kAmx };

struct FeatureInfo {
  const char *name;
  uint32_t leaf;
  uint32_t subleaf;
  Reg reg;
  int bit;
  State state;
};

// LLVM's names, sorted. CPUID bits from the Intel SDM vol. 2A (CPUID) and
// the AMD APM vol. 3 (CPUID Fn8000_0001).
constexpr uint32_t kExt = 0x80000001;
const FeatureInfo kFeatures[] = {
    {"64bit", kExt, 0, Reg::kEdx, 29, State::kNone},
    {"adx", 7, 0, Reg::kEbx, 19, State::kNone},
    {"aes", 1, 0, Reg::kEcx, 25, State::kNone},
    {"amx-bf16", 7, 0, Reg::kEdx, 22, State::kAmx},
    {"amx-int8", 7, 0, Reg::kEdx, 25, State::kAmx},
    {"amx-tile", 7, 0, Reg::kEdx, 24, State::kAmx},
    {"avx", 1, 0, Reg::kEcx, 28, State::kAvx},
    {"avx2", 7, 0, Reg::kEbx, 5, State::kAvx},
    {"avx512bf16", 7, 1, Reg::kEax, 5, State::kAvx512},
    {"avx512bitalg", 7, 0, Reg::kEcx, 12, State::kAvx512},
    {"avx512bw", 7, 0, Reg::kEbx, 30, State::kAvx512},
    {"avx512cd", 7, 0, Reg::kEbx, 28, State::kAvx512},
    {"avx512dq", 7, 0, Reg::kEbx, 17, State::kAvx512},
    {"avx512f", 7, 0, Reg::kEbx, 16, State::kAvx512},
    {"avx512fp16", 7, 0, Reg::kEdx, 23, State::kAvx512},
    {"avx512ifma", 7, 0, Reg::kEbx, 21, State::kAvx512},
    {"avx512vbmi", 7, 0, Reg::kEcx, 1, State::kAvx512},
    {"avx512vbmi2", 7, 0, Reg::kEcx, 6, State::kAvx512},
    {"avx512vl", 7, 0, Reg::kEbx, 31, State::kAvx512},
    {"avx512vnni", 7, 0, Reg::kEcx, 11, State::kAvx512},
    {"avx512vpopcntdq", 7, 0, Reg::kEcx, 14, State::kAvx512},
    {"avxvnni", 7, 1, Reg::kEax, 4, State::kAvx},
    {"bmi", 7, 0, Reg::kEbx, 3, State::kNone},
    {"bmi2", 7, 0, Reg::kEbx, 8, State::kNone},
    {"clflushopt", 7, 0, Reg::kEbx, 23, State::kNone},
    {"clwb", 7, 0, Reg::kEbx, 24, State::kNone},
    {"cmov", 1, 0, Reg::kEdx, 15, State::kNone},
    // CRC32 is an SSE4.2 instruction; LLVM names it separately.
    {"crc32", 1, 0, Reg::kEcx, 20, State::kNone},
    {"cx16", 1, 0, Reg::kEcx, 13, State::kNone},
    {"cx8", 1, 0, Reg::kEdx, 8, State::kNone},
    {"f16c", 1, 0, Reg::kEcx, 29, State::kAvx},
    {"fma", 1, 0, Reg::kEcx, 12, State::kAvx},
    {"fsgsbase", 7, 0, Reg::kEbx, 0, State::kNone},
    {"fxsr", 1, 0, Reg::kEdx, 24, State::kNone},
    {"gfni", 7, 0, Reg::kEcx, 8, State::kNone},
    {"lzcnt", kExt, 0, Reg::kEcx, 5, State::kNone},
    {"mmx", 1, 0, Reg::kEdx, 23, State::kNone},
    {"movbe", 1, 0, Reg::kEcx, 22, State::kNone},
    {"pclmul", 1, 0, Reg::kEcx, 1, State::kNone},
    {"popcnt", 1, 0, Reg::kEcx, 23, State::kNone},
    {"prfchw", kExt, 0, Reg::kEcx, 8, State::kNone},
    {"rdpid", 7, 0, Reg::kEcx, 22, State::kNone},
    {"rdrnd", 1, 0, Reg::kEcx, 30, State::kNone},
    {"rdseed", 7, 0, Reg::kEbx, 18, State::kNone},
    {"sahf", kExt, 0, Reg::kEcx, 0, State::kNone},
    {"serialize", 7, 0, Reg::kEdx, 14, State::kNone},
    {"sha", 7, 0, Reg::kEbx, 29, State::kNone},
    {"sse", 1, 0, Reg::kEdx, 25, State::kNone},
    {"sse2", 1, 0, Reg::kEdx, 26, State::kNone},
    {"sse3", 1, 0, Reg::kEcx, 0, State::kNone},
    {"sse4.1", 1, 0, Reg::kEcx, 19, State::kNone},
    {"sse4.2", 1, 0, Reg::kEcx, 20, State::kNone},
    {"sse4a", kExt, 0, Reg::kEcx, 6, State::kNone},
    {"ssse3", 1, 0, Reg::kEcx, 9, State::kNone},
    {"vaes", 7, 0, Reg::kEcx, 9, State::kAvx},
    {"vpclmulqdq", 7, 0, Reg::kEcx, 10, State::kAvx},
    {"x87", 1, 0, Reg::kEdx, 0, State::kNone},
    {"xsave", 1, 0, Reg::kEcx, 26, State::kNone},
};
constexpr size_t kNumFeatures = sizeof(kFeatures) / sizeof(kFeatures[0]);
static_assert(kNumFeatures <= kMaxCpuFeatures, "raise kMaxCpuFeatures");

/// The psABI levels, each adding to the one before (LLVM's CPUs of these
/// names enable exactly these of the table's features; CpuCodegenTest
/// checks it).
struct Level {
  const char *name;
  std::vector<const char *> adds;
};
const Level kLevels[] = {
    {"x86-64", {"64bit", "cmov", "cx8", "fxsr", "mmx", "sse", "sse2", "x87"}},
    {"x86-64-v2",
     {"crc32", "cx16", "popcnt", "sahf", "sse3", "sse4.1", "sse4.2", "ssse3"}},
    {"x86-64-v3",
     {"avx", "avx2", "bmi", "bmi2", "f16c", "fma", "lzcnt", "movbe", "xsave"}},
    {"x86-64-v4", {"avx512bw", "avx512cd", "avx512dq", "avx512f", "avx512vl"}},
};

#if defined(MOEC_CPU_FEATURES_X86)
/// XCR0, or 0 when the OS has not enabled XSAVE (then XGETBV would fault).
uint64_t readXcr0() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) // OSXSAVE
    return 0;
  uint32_t lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (uint64_t(hi) << 32) | lo;
}

/// Asks Linux for the AMX tile data state (ARCH_REQ_XCOMP_PERM with
/// XFEATURE_XTILEDATA); without it the first tile instruction faults.
bool requestAmxPermission() {
#if defined(__linux__)
  constexpr long kArchReqXcompPerm = 0x1023;
  constexpr long kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
#else
  return false;
#endif
}

CpuFeatureSet detect() {
  CpuFeatureSet set;
  uint64_t xcr0 = readXcr0();
  auto enabled = [&](uint64_t mask) { return (xcr0 & mask) == mask; };
  bool avxState = enabled(0x6);
  bool avx512State = avxState && enabled(0xe0);
  bool amxState = enabled(0x60000);
  bool amxAllowed = false, amxAsked = false;
  for (size_t i = 0; i < kNumFeatures; ++i) {
    const FeatureInfo &f = kFeatures[i];
    unsigned r[4] = {0, 0, 0, 0};
    // __get_cpuid_count checks the leaf against the highest one supported.
    if (!__get_cpuid_count(f.leaf, f.subleaf, &r[0], &r[1], &r[2], &r[3]))
      continue;
    if (!(r[int(f.reg)] & (1u << f.bit)))
      continue;
    if ((f.state == State::kAvx && !avxState) ||
        (f.state == State::kAvx512 && !avx512State) ||
        (f.state == State::kAmx && !amxState))
      continue;
    if (f.state == State::kAmx) {
      if (!amxAsked) {
        amxAllowed = requestAmxPermission();
        amxAsked = true;
      }
      if (!amxAllowed)
        continue;
    }
    set.insert(i);
  }
  return set;
}
#else
CpuFeatureSet detect() { return CpuFeatureSet(); }
#endif

std::string joinNames(const std::vector<std::string> &names) {
  std::string out;
  for (const std::string &n : names)
    out += (out.empty() ? "" : ", ") + n;
  return out;
}

} // namespace

std::vector<std::string> CpuFeatureSet::names() const {
  std::vector<std::string> out;
  for (size_t i = 0; i < kNumFeatures; ++i)
    if (contains(i))
      out.push_back(kFeatures[i].name);
  return out;
}

const std::vector<std::string_view> &cpuFeatureNames() {
  static const std::vector<std::string_view> names = [] {
    std::vector<std::string_view> v;
    for (const FeatureInfo &f : kFeatures)
      v.push_back(f.name);
    return v;
  }();
  return names;
}

int findCpuFeature(std::string_view name) {
  for (size_t i = 0; i < kNumFeatures; ++i)
    if (name == kFeatures[i].name)
      return int(i);
  return -1;
}

const std::vector<std::string_view> &cpuLevelNames() {
  static const std::vector<std::string_view> names = [] {
    std::vector<std::string_view> v;
    for (const Level &level : kLevels)
      v.push_back(level.name);
    return v;
  }();
  return names;
}

bool getCpuLevelFeatures(std::string_view level, CpuFeatureSet &features) {
  CpuFeatureSet set;
  for (const Level &l : kLevels) {
    for (const char *name : l.adds)
      set.insert(size_t(findCpuFeature(name)));
    if (level == l.name) {
      features = set;
      return true;
    }
  }
  return false;
}

const CpuFeatureSet &detectCpuFeatures() {
  static const CpuFeatureSet features = detect();
  return features;
}

StatusOr<CpuFeatureSet> parseCpuFeatureList(std::string_view list) {
  CpuFeatureSet set;
  size_t start = 0;
  while (start <= list.size()) {
    size_t comma = std::min(list.find(',', start), list.size());
    std::string_view item = list.substr(start, comma - start);
    while (!item.empty() && item.front() == ' ')
      item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ')
      item.remove_suffix(1);
    start = comma + 1;
    if (item.empty())
      continue;
    CpuFeatureSet level;
    if (getCpuLevelFeatures(item, level)) {
      set = set.unite(level);
      continue;
    }
    int index = findCpuFeature(item);
    if (index < 0) {
      std::string levels;
      for (std::string_view l : cpuLevelNames())
        levels += (levels.empty() ? "" : ", ") + std::string(l);
      std::string features;
      for (std::string_view f : cpuFeatureNames())
        features += (features.empty() ? "" : ", ") + std::string(f);
      return makeError(StatusCode::kInvalidArgument, "unknown CPU feature '",
                       item, "'; expected a level (", levels,
                       ") or a feature name (", features, ")");
    }
    set.insert(size_t(index));
  }
  return set;
}

std::string HostCpuFeatures::describe() const {
  return override.empty()
             ? "this host"
             : strCat("this host (", kCpuFeaturesEnv, "=", override, ")");
}

StatusOr<HostCpuFeatures> getHostCpuFeatures() {
  HostCpuFeatures host;
  host.features = detectCpuFeatures();
  // The one place the variable is read.
  const char *value = std::getenv(kCpuFeaturesEnv);
  if (!value || !*value)
    return host;
  host.override = value;
  StatusOr<CpuFeatureSet> mask = parseCpuFeatureList(host.override);
  if (!mask.isOk())
    return mask.status().withPrefix(kCpuFeaturesEnv);
  // A mask: naming a feature the CPU lacks never makes it available.
  host.features = host.features.intersect(*mask);
  return host;
}

StatusOr<size_t>
selectCpuCodeVariant(const std::vector<CpuCodeVariant> &variants,
                     const HostCpuFeatures &host) {
  size_t best = variants.size(), bestCount = 0;
  std::string lacking;
  for (size_t i = 0; i < variants.size(); ++i) {
    const CpuCodeVariant &v = variants[i];
    std::vector<std::string> missing;
    for (const std::string &name : v.features) {
      int index = findCpuFeature(name);
      if (index < 0 || !host.features.contains(size_t(index)))
        missing.push_back(name);
    }
    if (missing.empty()) {
      if (best == variants.size() || v.features.size() > bestCount) {
        best = i;
        bestCount = v.features.size();
      }
      continue;
    }
    std::sort(missing.begin(), missing.end());
    lacking += strCat(lacking.empty() ? "" : "; ", v.name, " (", v.cpu,
                      "): ", joinNames(missing));
  }
  if (best != variants.size())
    return best;
  if (variants.empty())
    return makeError(StatusCode::kUnavailable,
                     "the artifact carries no CPU code");
  return makeError(StatusCode::kUnavailable, "no CPU code in the artifact ",
                   "runs on ", host.describe(),
                   ", which lacks features the code needs: ", lacking);
}

} // namespace moec::runtime
