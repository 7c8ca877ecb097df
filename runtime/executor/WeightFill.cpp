//===- WeightFill.cpp - Weights of benchmark artifacts ----------*- C++ -*-===//
//
// The host side of the weight fill: WeightFill.inc compiled as plain C++,
// the choice of fill per weight, and the CUDA kernel's source text built
// around the same file.
//
//===----------------------------------------------------------------------===//

#include "runtime/executor/WeightFill.h"

#include "WeightFillSource.h"

#include <string>
#include <unordered_set>

namespace moec::runtime {

namespace {
#define MOEC_FILL_FN static inline
#include "runtime/executor/WeightFill.inc"
#undef MOEC_FILL_FN
} // namespace

FillKind fillKindFor(const manifest::Manifest &m, const manifest::Weight &w) {
  switch (w.dtype()) {
  case manifest::DType::F32:
    for (const manifest::Weight *other : *m.weights())
      if (other->scale() && *other->scale() == w.id())
        return FillKind::kScale;
    return FillKind::kF32;
  case manifest::DType::BF16:
    return FillKind::kBf16;
  case manifest::DType::F16:
    return FillKind::kF16;
  case manifest::DType::F8E4M3FN:
    return FillKind::kE4m3;
  case manifest::DType::F8E5M2:
    return FillKind::kE5m2;
  default:
    return FillKind::kZero;
  }
}

uint64_t fillElementCount(const manifest::Weight &w, FillKind kind) {
  return kind == FillKind::kZero ? w.bytes() : w.bytes() / dtypeSize(w.dtype());
}

void fillElementsOnHost(uint8_t *out, uint64_t count, uint64_t seed,
                        uint32_t id, FillKind kind) {
  for (uint64_t i = 0; i < count; ++i)
    moecFillElement(out, i, seed, id, int(kind));
}

void fillWeightOnHost(const manifest::Manifest &m, const manifest::Weight &w,
                      uint8_t *out) {
  FillKind kind = fillKindFor(m, w);
  fillElementsOnHost(out, fillElementCount(w, kind), m.weights_fill_seed(),
                     w.id(), kind);
}

const char *weightFillKernelSource() {
  static const std::string source =
      std::string("#define MOEC_FILL_FN __device__ __forceinline__\n") +
      kWeightFillInc +
      "\nextern \"C\" __global__ void moec_fill_weight(unsigned char *out, "
      "unsigned long long count, unsigned long long seed, unsigned id, int "
      "kind) {\n"
      "  unsigned long long stride = (unsigned long long)gridDim.x * "
      "blockDim.x;\n"
      "  for (unsigned long long i = (unsigned long long)blockIdx.x * "
      "blockDim.x + threadIdx.x; i < count; i += stride)\n"
      "    moecFillElement(out, i, seed, id, kind);\n"
      "}\n";
  return source.c_str();
}

} // namespace moec::runtime
