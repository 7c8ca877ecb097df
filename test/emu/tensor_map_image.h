//===- test/emu/tensor_map_image.h - FakeCudaDriver's CUtensorMap ---------===//
//
// What FakeCudaDriver's cuTensorMapEncodeTiled writes into the 128 opaque
// bytes of a CUtensorMap, and what the host emulation's TMA copy
// (cuda_emu.h, `cp.async.bulk.tensor`) reads back. The real driver's format
// is undocumented; kernels only pass the object's address to PTX, so any
// self-consistent layout serves the emulation. docs/cuda.md, "Host emulation
// of the kernels".
//
//===----------------------------------------------------------------------===//
#pragma once

#include <stdint.h>

namespace moec_emu {

/// The 128 bytes of a fake-encoded tensor map.
struct TensorMapImage {
  /// `kTensorMapMagic` once encoded (a zeroed map has 0).
  uint32_t magic;
  /// Bytes per element (1, 2, 4 or 8).
  uint32_t elementBytes;
  /// 1..5.
  uint32_t rank;
  /// Swizzle span in bytes: 0 (none), 32, 64 or 128.
  uint32_t swizzleBytes;
  /// The global (here: host) address of element 0.
  uint64_t address;
  /// Elements per dimension, innermost first; unused entries 0.
  uint64_t dims[5];
  /// Byte strides of dims[1..rank-1]; unused entries 0.
  uint64_t strides[4];
  /// Box elements per dimension; unused entries 0.
  uint32_t box[5];
  uint32_t reserved[3];
};
static_assert(sizeof(TensorMapImage) == 128, "a CUtensorMap is 128 bytes");

constexpr uint32_t kTensorMapMagic = 0x4D414D54u; // "TMAM"

} // namespace moec_emu
