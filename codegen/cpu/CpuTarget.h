//===- CpuTarget.h - The CPU target's options and facts ---------*- C++ -*-===//
//
// What the `cpu` target compiles for: the CPU this compiler runs on, or a
// named CPU variant (on x86-64 the psABI levels x86-64-v2, -v3 and -v4) that
// an artifact can carry next to others. `CpuTargetInfo` carries the facts the
// kernel builders and the object emitter read (triple, CPU name, features,
// vector width, register count, the features the code needs), so that
// neither of them queries the host on its own.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_CODEGEN_CPU_CPUTARGET_H
#define MOEC_CODEGEN_CPU_CPUTARGET_H

#include "llvm/Support/Error.h"

#include <cstdint>
#include <string>
#include <vector>

namespace mlir::moec::cpu {

/// How the `cpu` target is compiled.
struct CpuTargetOptions {
  /// The CPU to compile for: empty for the CPU this compiler runs on (LLVM's
  /// host CPU with all its features; code for this machine only), else one
  /// of `getCpuVariantNames()`.
  std::string cpu;
  /// LLVM optimisation level, 0 to 3.
  unsigned optLevel = 3;
};

/// The facts about a resolved CPU target.
struct CpuTargetInfo {
  /// LLVM target triple, e.g. `x86_64-pc-linux-gnu`.
  std::string triple;
  /// LLVM CPU name, e.g. `znver4` or `x86-64-v2`.
  std::string cpu;
  /// LLVM feature string, e.g. `+avx2,+fma,-avx512f`; empty when the CPU
  /// name implies them.
  std::string features;
  /// Width of the widest f32 vector register, in bits (128, 256 or 512).
  int64_t vectorBits = 128;
  /// Number of architectural vector registers (16 or 32).
  int64_t vectorRegisters = 16;
  /// Whether fused multiply-add is available in hardware.
  bool hasFma = false;
  /// Whether vectors of f16 convert to f32 in hardware (x86 F16C, AArch64):
  /// then `fpext` of an f16 vector is one instruction, not a library call.
  bool hasF16Convert = false;
  /// For a named variant: the features its code may use that the runtime
  /// detects (runtime/support/CpuFeatures.h), by LLVM name, sorted; the
  /// artifact records them and the runtime loads the code only on a CPU
  /// that has them all. Empty for the host CPU.
  std::vector<std::string> requiredFeatures;

  /// Number of f32 lanes in one vector register.
  int64_t f32Lanes() const { return vectorBits / 32; }
};

/// The CPU variants `CpuTargetOptions::cpu` accepts on this compiler's
/// architecture, least capable first: `x86-64-v2`, `x86-64-v3`,
/// `x86-64-v4` on x86-64, `generic` elsewhere.
std::vector<std::string> getCpuVariantNames();

/// The portable baseline: the first of `getCpuVariantNames()`.
std::string getPortableCpuVariant();

/// The most capable of `getCpuVariantNames()` whose features this machine
/// has, detected the way the runtime detects them (CPUID and XGETBV), so
/// that code for it runs here.
std::string getHostCpuVariant();

/// Resolves `options` against the host: the triple of this process, and the
/// host CPU and its features or the named variant. Fails for a CPU name
/// that is not one of `getCpuVariantNames()`, listing them.
llvm::Expected<CpuTargetInfo> getCpuTargetInfo(const CpuTargetOptions &options);

/// Registers LLVM's native target and asm printer (once per process).
void initializeNativeCpuTarget();

} // namespace mlir::moec::cpu

#endif // MOEC_CODEGEN_CPU_CPUTARGET_H
