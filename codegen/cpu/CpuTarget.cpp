//===- CpuTarget.cpp - The CPU target's options and facts -------*- C++ -*-===//
//
// Resolves `CpuTargetOptions` to a `CpuTargetInfo`: the host CPU name and
// features from LLVM's host detection, or the portable baseline, plus the
// vector facts derived from the features.
//
//===----------------------------------------------------------------------===//

#include "codegen/cpu/CpuTarget.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/TargetParser/Host.h"
#include "llvm/TargetParser/Triple.h"

#include <algorithm>
#include <vector>

using namespace mlir::moec::cpu;

CpuTargetInfo
mlir::moec::cpu::getCpuTargetInfo(const CpuTargetOptions &options) {
  CpuTargetInfo info;
  info.triple = llvm::sys::getProcessTriple();
  llvm::Triple triple(info.triple);
  bool x86 = triple.isX86();

  if (options.portable) {
    // x86-64-v2: SSE4.2 and POPCNT, no AVX and no FMA.
    info.cpu = x86 ? "x86-64-v2" : "generic";
    info.vectorBits = 128;
    info.vectorRegisters = triple.isAArch64() ? 32 : 16;
    info.hasFma = triple.isAArch64();
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

  auto has = [&](llvm::StringRef name) { return features.lookup(name); };
  if (x86) {
    info.vectorBits = has("avx512f") ? 512 : has("avx") ? 256 : 128;
    info.vectorRegisters = has("avx512f") ? 32 : 16;
    info.hasFma = has("fma");
    info.hasF16Convert = has("f16c");
  } else {
    info.vectorBits = 128;
    info.vectorRegisters = triple.isAArch64() ? 32 : 16;
    info.hasFma = triple.isAArch64();
    info.hasF16Convert = triple.isAArch64();
  }
  return info;
}
