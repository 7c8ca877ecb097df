//===- WeightTransforms.h - Host arithmetic of moe.weight -------*- C++ -*-===//
//
// What a `moe.weight` means, computed on the host: its sources read through
// a `WeightSource` and its layout transforms (stack, transpose, FP8
// quantization) applied, on tensors that keep the bytes of their element
// type. The reference interpreter (reference/) and the artifact writer's
// weight folder (codegen/WeightFolder.h) both evaluate weights with it, so
// that the two cannot disagree; the block quantization is also the one the
// interpreter applies to activations.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_DIALECTS_WEIGHTTRANSFORMS_H
#define MOEC_DIALECTS_WEIGHTTRANSFORMS_H

#include "dialects/MoEDialect.h"
#include "dialects/WeightSource.h"

#include "mlir/Support/LLVM.h"
#include "llvm/ADT/SmallVector.h"

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

namespace mlir::moec {

/// A dense row-major host tensor, stored as the little-endian bytes of its
/// element type (bf16 stays bf16, FP8 stays one byte per element, `i1` one
/// byte per element).
struct HostTensor {
  /// The concrete shape.
  llvm::SmallVector<int64_t, 4> shape;
  /// The element type the bytes encode.
  Type elementType;
  /// `product(shape) * elementBytes(elementType)` bytes.
  std::vector<uint8_t> bytes;
};

/// The number of elements of `shape`, the product of its dimensions.
int64_t numElementsOf(ArrayRef<int64_t> shape);

/// Bytes per stored element of `type` (1 for `i1`); 0 for types that have no
/// whole-byte storage.
int64_t elementBytes(Type type);

/// True for the float element types `decodeFloats` and `encodeFloats`
/// handle.
bool isHostFloat(Type type);

/// The elements of the float tensor `t` as f32, exactly where f32 holds
/// them.
std::vector<float> decodeFloats(const HostTensor &t);

/// The elements of the integer tensor `t`, sign-extended (`i1` as 0 or 1).
std::vector<int64_t> decodeIntegers(const HostTensor &t);

/// `values` encoded as the float type `type`, rounding to nearest even; FP8
/// casts saturate (DESIGN.md §4).
std::vector<uint8_t> encodeFloats(ArrayRef<float> values, Type type);

/// The `[rows, cols]` matrices that block scaling and transposition work on:
/// the last two dimensions, a 1-d shape being a single row.
struct MatrixView {
  int64_t batches, rows, cols;
};
/// The matrices of `shape`.
MatrixView matrixView(ArrayRef<int64_t> shape);

/// Swaps the last two dimensions of `t` (rank >= 2).
void transposeLastTwo(HostTensor &t);

/// Concatenates `inputs` (same element type and rank) along `axis`.
HostTensor concatTensors(ArrayRef<HostTensor> inputs, int64_t axis);

/// Quantizes `values` of `shape` to the FP8 format of `scheme`, block by
/// block in each matrix (moec::runtime::fp8::quantizeBlocks for E4M3FN, the
/// same recipe with the E5M2 maximum otherwise): `codes` receives one FP8
/// byte per value, `scales` the f32 block scales of `scheme.getScaleShape`.
void quantizeBlockwise(ArrayRef<float> values, ArrayRef<int64_t> shape,
                       moe::BlockScaleAttr scheme, std::vector<uint8_t> &codes,
                       std::vector<float> &scales);

/// The float tensor `x` quantized under `scheme`: its FP8 data and its f32
/// block scales.
std::pair<HostTensor, HostTensor>
quantizeHostTensor(const HostTensor &x, moe::BlockScaleAttr scheme);

/// Reads `op`'s sources from `source` and applies its transforms: the data,
/// then the f32 block scales when the weight is stored or quantized in FP8.
/// With `slice`, only expert `*slice` of a stacked weight is read, without
/// the leading dimension. Errors are emitted on `op`.
FailureOr<SmallVector<HostTensor, 2>>
readWeight(moe::WeightOp op, WeightSource &source,
           std::optional<int64_t> slice = std::nullopt);

} // namespace mlir::moec

#endif // MOEC_DIALECTS_WEIGHTTRANSFORMS_H
