//===- Mix.h - The 64-bit mixing function of runtime/generate ---*- C++ -*-===//
//
// splitmix64's finalizer (Steele, Lea and Flood), shared by the sampler's
// counter-based random numbers and the prefix cache's page hashes.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_RUNTIME_GENERATE_MIX_H
#define MOEC_RUNTIME_GENERATE_MIX_H

#include <cstdint>

namespace moec::runtime {

/// One splitmix64 step: adds the golden-ratio increment to `x` and mixes.
inline uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

} // namespace moec::runtime

#endif // MOEC_RUNTIME_GENERATE_MIX_H
