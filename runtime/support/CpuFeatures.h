//===- CpuFeatures.h - Host CPU features and CPU code selection -*- C++ -*-===//
//
// The x86 features compiled CPU code may need, by their LLVM names (`sse4.2`,
// `avx2`, `avx512f`, `amx-tile`), the host's set read with CPUID and XGETBV
// (a feature counts only when the OS saves its registers), and the rule that
// picks the best of several compiled variants of the CPU code for this host.
// Nothing here knows the manifest: callers pass each variant's name and
// feature names, so the rule outlives any one manifest encoding.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_RUNTIME_SUPPORT_CPUFEATURES_H
#define MOEC_RUNTIME_SUPPORT_CPUFEATURES_H

#include "runtime/support/Status.h"

#include <bitset>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace moec::runtime {

/// Most features the table can hold.
constexpr size_t kMaxCpuFeatures = 128;

/// The environment variable that masks the detected features (tests, and
/// checking the portable code on a capable machine): a comma-separated list
/// of x86-64 levels and feature names, e.g. `x86-64-v2` or
/// `x86-64-v3,avx512f`. It can only take features away.
constexpr const char *kCpuFeaturesEnv = "MOEC_CPU_FEATURES";

/// A set of the features in `cpuFeatureNames()`, by index.
class CpuFeatureSet {
public:
  /// Adds feature `index` (an index into `cpuFeatureNames()`).
  void insert(size_t index) { bits_.set(index); }
  /// True when feature `index` is in the set.
  bool contains(size_t index) const { return bits_.test(index); }
  /// True when every feature of `other` is in this set.
  bool containsAll(const CpuFeatureSet &other) const {
    return (other.bits_ & ~bits_).none();
  }
  /// The features in both sets.
  CpuFeatureSet intersect(const CpuFeatureSet &other) const {
    CpuFeatureSet result;
    result.bits_ = bits_ & other.bits_;
    return result;
  }
  /// The features of either set.
  CpuFeatureSet unite(const CpuFeatureSet &other) const {
    CpuFeatureSet result;
    result.bits_ = bits_ | other.bits_;
    return result;
  }
  /// Number of features in the set.
  size_t size() const { return bits_.count(); }
  /// The features' names in table order.
  std::vector<std::string> names() const;

  bool operator==(const CpuFeatureSet &other) const {
    return bits_ == other.bits_;
  }

private:
  std::bitset<kMaxCpuFeatures> bits_;
};

/// Every feature this runtime can detect, by LLVM name, in table order.
const std::vector<std::string_view> &cpuFeatureNames();

/// The index of feature `name` in `cpuFeatureNames()`, or -1 when this
/// runtime does not know it.
int findCpuFeature(std::string_view name);

/// The x86-64 micro-architecture levels of the psABI, lowest first:
/// "x86-64", "x86-64-v2", "x86-64-v3", "x86-64-v4".
const std::vector<std::string_view> &cpuLevelNames();

/// The features of level `level` (as LLVM's CPU of that name enables them),
/// or false when `level` is not one of `cpuLevelNames()`.
bool getCpuLevelFeatures(std::string_view level, CpuFeatureSet &features);

/// What CPUID and XGETBV report on this machine, detected once: AVX-class
/// features only when XCR0 enables the YMM state, AVX-512 only with the
/// opmask and ZMM states, AMX only with the tile states and (Linux) the
/// process's permission to use them. Empty off x86-64.
const CpuFeatureSet &detectCpuFeatures();

/// Parses a `MOEC_CPU_FEATURES` list (levels and feature names, commas
/// between); an unknown item is a `kInvalidArgument` error that lists the
/// valid ones.
StatusOr<CpuFeatureSet> parseCpuFeatureList(std::string_view list);

/// The features CPU code may use here.
struct HostCpuFeatures {
  /// Detected, masked by `override` when it is set.
  CpuFeatureSet features;
  /// The value of `MOEC_CPU_FEATURES`; empty when unset.
  std::string override;

  /// "this host" or "this host (MOEC_CPU_FEATURES=x86-64-v2)", for messages.
  std::string describe() const;
};

/// `detectCpuFeatures()` masked by `MOEC_CPU_FEATURES` (read here, once per
/// call); fails when the variable holds an unknown name.
StatusOr<HostCpuFeatures> getHostCpuFeatures();

/// One compiled variant of the CPU code, as selection sees it.
struct CpuCodeVariant {
  /// What holds it (the section name, e.g. `cpu.so.x86-64-v4`).
  std::string name;
  /// The CPU it was compiled for, e.g. `x86-64-v4` (for messages).
  std::string cpu;
  /// The feature names the code needs.
  std::vector<std::string> features;
};

/// The index of the variant to run on `host`: of those whose features the
/// host has, the one needing the most features; on a tie the first. When
/// none fits, a `kUnavailable` error names, for each variant, the features
/// the host lacks. A feature name this runtime does not know counts as
/// missing.
StatusOr<size_t>
selectCpuCodeVariant(const std::vector<CpuCodeVariant> &variants,
                     const HostCpuFeatures &host);

} // namespace moec::runtime

#endif // MOEC_RUNTIME_SUPPORT_CPUFEATURES_H
