//===- WeightFill.h - Weights of benchmark artifacts ------------*- C++ -*-===//
//
// A benchmark artifact (`weights_device_filled`) carries no weight bytes; the
// runtime fills every weight from `weights_fill_seed` and the weight's id.
// The values come from WeightFill.inc, which is compiled here for the host
// (the CPU executor) and handed to NVRTC as the CUDA fill kernel's source,
// so that both devices see the same bytes.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_RUNTIME_EXECUTOR_WEIGHTFILL_H
#define MOEC_RUNTIME_EXECUTOR_WEIGHTFILL_H

#include "runtime/artifact/Manifest.h"

#include <cstdint>

namespace moec::runtime {

/// How one weight is filled (the MOEC_FILL_* values of WeightFill.inc).
enum class FillKind : int {
  kZero = 0,
  kF32 = 1,
  kBf16 = 2,
  kF16 = 3,
  kE4m3 = 4,
  kE5m2 = 5,
  kScale = 6,
};

/// The fill of weight `w` of `m`: e4m3/e5m2 as random finite bytes of
/// moderate magnitude, f32 weights that are another weight's `scale` as
/// 2^-8 * U[0.5, 1.5), other f32/bf16 as U[-0.05, 0.05), f16 as random
/// values below 0.125 in magnitude, integer weights as zeros.
FillKind fillKindFor(const manifest::Manifest &m, const manifest::Weight &w);

/// The number of elements `moecFillElement` is called for to fill `w` with
/// `kind` (bytes for `kZero`, elements otherwise).
uint64_t fillElementCount(const manifest::Weight &w, FillKind kind);

/// Fills weight `w` (at `out`, `w.bytes()` bytes) on the host with the
/// values the device fill kernel produces.
void fillWeightOnHost(const manifest::Manifest &m, const manifest::Weight &w,
                      uint8_t *out);

/// Fills elements `[0, count)` of one weight at `out` with fill `kind`,
/// `seed` and weight id `id` (what the device kernel does per element).
void fillElementsOnHost(uint8_t *out, uint64_t count, uint64_t seed,
                        uint32_t id, FillKind kind);

/// The CUDA C++ source of the fill kernel `moec_fill_weight(unsigned char
/// *out, unsigned long long count, unsigned long long seed, unsigned id, int
/// kind)`, a grid-stride loop over WeightFill.inc's `moecFillElement`.
const char *weightFillKernelSource();

/// The fill kernel's symbol.
constexpr const char *kWeightFillKernel = "moec_fill_weight";

} // namespace moec::runtime

#endif // MOEC_RUNTIME_EXECUTOR_WEIGHTFILL_H
