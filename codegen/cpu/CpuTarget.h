//===- CpuTarget.h - The CPU target's options and facts ---------*- C++ -*-===//
//
// What the `cpu` target compiles for: the host CPU (default) or a portable
// x86-64-v2 baseline. `CpuTargetInfo` carries the facts the kernel builders
// and the object emitter read (triple, CPU name, features, vector width,
// register count), so that neither of them queries the host on its own.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_CODEGEN_CPU_CPUTARGET_H
#define MOEC_CODEGEN_CPU_CPUTARGET_H

#include <cstdint>
#include <string>

namespace mlir::moec::cpu {

/// How the `cpu` target is compiled.
struct CpuTargetOptions {
  /// Compile for a portable baseline (`x86-64-v2` on x86-64, `generic`
  /// elsewhere) instead of the CPU this compiler runs on.
  bool portable = false;
  /// LLVM optimisation level, 0 to 3.
  unsigned optLevel = 3;
};

/// The facts about a resolved CPU target.
struct CpuTargetInfo {
  /// LLVM target triple, e.g. `x86_64-pc-linux-gnu`.
  std::string triple;
  /// LLVM CPU name, e.g. `znver4` or `x86-64-v2`.
  std::string cpu;
  /// LLVM feature string, e.g. `+avx2,+fma,-avx512f`.
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

  /// Number of f32 lanes in one vector register.
  int64_t f32Lanes() const { return vectorBits / 32; }
};

/// Resolves `options` against the host: the triple of this process, and the
/// host CPU and its features or the portable baseline.
CpuTargetInfo getCpuTargetInfo(const CpuTargetOptions &options);

} // namespace mlir::moec::cpu

#endif // MOEC_CODEGEN_CPU_CPUTARGET_H
