//===- CpuTarget.cpp - The CPU target's options and facts -------*- C++ -*-===//
//
// Resolves `CpuTargetOptions` to a `CpuTargetInfo`: the host CPU name and
// features from LLVM's host detection, or a named variant whose features
// come from LLVM's own subtarget for that CPU, plus the vector facts derived
// from the features. The runtime's feature table decides which features an
// artifact records, and its CPUID detection which variant the host runs.
//
//===----------------------------------------------------------------------===//

#include "codegen/cpu/CpuTarget.h"

#include "runtime/support/CpuFeatures.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/MC/MCSubtargetInfo.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/TargetParser/Host.h"
#include "llvm/TargetParser/Triple.h"

#include <algorithm>
#include <memory>
#include <mutex>

using namespace mlir::moec::cpu;
namespace rt = ::moec::runtime;

namespace {

/// True on x86-64, where the variants are the psABI levels.
bool isX86_64(const llvm::Triple &triple) {
  return triple.getArch() == llvm::Triple::x86_64;
}

/// Fills the vector facts of `info` from `has(feature)`.
void setVectorFacts(CpuTargetInfo &info, const llvm::Triple &triple,
                    llvm::function_ref<bool(llvm::StringRef)> has) {
  if (triple.isX86()) {
    info.vectorBits = has("avx512f") ? 512 : has("avx") ? 256 : 128;
    info.vectorRegisters = has("avx512f") ? 32 : 16;
    info.hasFma = has("fma");
    info.hasF16Convert = has("f16c");
    return;
  }
  info.vectorBits = 128;
  info.vectorRegisters = triple.isAArch64() ? 32 : 16;
  info.hasFma = triple.isAArch64();
  info.hasF16Convert = triple.isAArch64();
}

/// The features LLVM's subtarget for `cpu` enables, by name.
llvm::Expected<llvm::StringMap<bool>>
getSubtargetFeatures(const llvm::Triple &triple, llvm::StringRef cpu) {
  initializeNativeCpuTarget();
  std::string error;
  const llvm::Target *target =
      llvm::TargetRegistry::lookupTarget(triple, error);
  if (!target)
    return llvm::createStringError(error);
  std::unique_ptr<llvm::MCSubtargetInfo> subtarget(
      target->createMCSubtargetInfo(triple, cpu, ""));
  if (!subtarget)
    return llvm::createStringError("cannot describe the CPU '" + cpu.str() +
                                   "' for " + triple.str());
  llvm::StringMap<bool> features;
  for (const llvm::SubtargetFeatureKV &kv :
       subtarget->getAllProcessorFeatures())
    if (subtarget->getFeatureBits()[kv.Value])
      features[kv.Key] = true;
  return features;
}

} // namespace

void mlir::moec::cpu::initializeNativeCpuTarget() {
  static std::once_flag initialized;
  std::call_once(initialized, [] {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
  });
}

std::vector<std::string> mlir::moec::cpu::getCpuVariantNames() {
  if (isX86_64(llvm::Triple(llvm::sys::getProcessTriple())))
    return {"x86-64-v2", "x86-64-v3", "x86-64-v4"};
  return {"generic"};
}

std::string mlir::moec::cpu::getPortableCpuVariant() {
  return getCpuVariantNames().front();
}

std::string mlir::moec::cpu::getHostCpuVariant() {
  std::vector<std::string> names = getCpuVariantNames();
  // The runtime's levels and detection: the host variant must be the one
  // the runtime picks here.
  for (auto it = names.rbegin(); it != names.rend(); ++it) {
    rt::CpuFeatureSet level;
    if (rt::getCpuLevelFeatures(*it, level) &&
        rt::detectCpuFeatures().containsAll(level))
      return *it;
  }
  return names.front();
}

llvm::Expected<CpuTargetInfo>
mlir::moec::cpu::getCpuTargetInfo(const CpuTargetOptions &options) {
  CpuTargetInfo info;
  info.triple = llvm::sys::getProcessTriple();
  llvm::Triple triple(info.triple);

  if (!options.cpu.empty()) {
    std::vector<std::string> names = getCpuVariantNames();
    if (!llvm::is_contained(names, options.cpu))
      return llvm::createStringError("unknown CPU variant '" + options.cpu +
                                     "'; expected one of " +
                                     llvm::join(names, ", "));
    info.cpu = options.cpu;
    llvm::Expected<llvm::StringMap<bool>> features =
        getSubtargetFeatures(triple, info.cpu);
    if (!features)
      return features.takeError();
    // What the code may use and the runtime can check; tuning flags and
    // features every CPU of the architecture has fall out here.
    for (const auto &feature : *features)
      if (rt::findCpuFeature(feature.getKey().str()) >= 0)
        info.requiredFeatures.push_back(feature.getKey().str());
    llvm::sort(info.requiredFeatures);
    setVectorFacts(info, triple, [&](llvm::StringRef name) {
      return features->lookup(name);
    });
    return info;
  }

  info.cpu = llvm::sys::getHostCPUName().str();
  if (info.cpu.empty())
    info.cpu = "generic";
  llvm::StringMap<bool> features = llvm::sys::getHostCPUFeatures();
  // Sorted, so that the feature string (and the object) is deterministic.
  std::vector<std::string> names;
  for (const auto &feature : features)
    names.push_back((feature.getValue() ? "+" : "-") + feature.getKey().str());
  std::sort(names.begin(), names.end());
  info.features = llvm::join(names, ",");
  setVectorFacts(info, triple,
                 [&](llvm::StringRef name) { return features.lookup(name); });
  return info;
}
