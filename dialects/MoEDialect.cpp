//===- MoEDialect.cpp - The moe dialect and its attributes ------*- C++ -*-===//
//
// Registers the `moe` dialect, its attributes and ops, and implements the
// attribute verifiers and helpers (routing, RoPE scaling, block scales).
//
//===----------------------------------------------------------------------===//

#include "dialects/MoEDialect.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

#include <algorithm>
#include <cmath>
#include <vector>

using namespace mlir;
using namespace mlir::moe;

#include "dialects/MoEDialect.cpp.inc"
#include "dialects/MoEEnums.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "dialects/MoEAttrs.cpp.inc"

void MoEDialect::initialize() {
  addAttributes<
#define GET_ATTRDEF_LIST
#include "dialects/MoEAttrs.cpp.inc"
      >();
  addOperations<
#define GET_OP_LIST
#include "dialects/MoEOps.cpp.inc"
      >();
}

//===----------------------------------------------------------------------===//
// #moe.role
//===----------------------------------------------------------------------===//

LogicalResult
WeightRoleAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                       WeightRoleKind kind, std::optional<int64_t> layer) {
  if (layer && *layer < 0)
    return emitError() << "expected `layer` >= 0, but got layer = " << *layer;
  return success();
}

//===----------------------------------------------------------------------===//
// #moe.routing
//===----------------------------------------------------------------------===//

LogicalResult RoutingAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                                  ScoringFunc scoring, int64_t k,
                                  int64_t nGroup, int64_t topkGroup,
                                  GroupScore groupScore, bool normTopkProb,
                                  APFloat routedScalingFactorValue) {
  double routedScalingFactor = routedScalingFactorValue.convertToDouble();
  if (k < 1)
    return emitError() << "expected `k` >= 1, but got k = " << k;
  if (nGroup < 1)
    return emitError() << "expected `n_group` >= 1, but got n_group = "
                       << nGroup;
  if (topkGroup < 1 || topkGroup > nGroup)
    return emitError() << "expected 1 <= `topk_group` <= n_group = " << nGroup
                       << ", but got topk_group = " << topkGroup;
  if ((nGroup > 1) != (groupScore != GroupScore::none))
    return emitError() << "expected `group_score` to be none exactly when "
                          "n_group = 1, but got n_group = "
                       << nGroup << " and group_score = "
                       << stringifyGroupScore(groupScore);
  if (!(routedScalingFactor > 0.0))
    return emitError() << "expected `routed_scaling_factor` > 0, but got "
                       << routedScalingFactor;
  return success();
}

//===----------------------------------------------------------------------===//
// #moe.rope_scaling
//===----------------------------------------------------------------------===//

LogicalResult
RopeScalingAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                        RopeScalingKind kind, APFloat factorValue,
                        int64_t originalMaxPositionEmbeddings,
                        APFloat betaFastValue, APFloat betaSlowValue,
                        APFloat mscale, APFloat mscaleAllDim) {
  double factor = factorValue.convertToDouble();
  double betaFast = betaFastValue.convertToDouble();
  double betaSlow = betaSlowValue.convertToDouble();
  if (!(factor >= 1.0))
    return emitError() << "expected `factor` >= 1, but got " << factor;
  if (kind == RopeScalingKind::yarn) {
    if (originalMaxPositionEmbeddings < 1)
      return emitError() << "expected `original_max_position_embeddings` >= 1 "
                            "for yarn, but got "
                         << originalMaxPositionEmbeddings;
    if (!(betaFast > betaSlow))
      return emitError() << "expected `beta_fast` > `beta_slow`, but got "
                         << betaFast << " <= " << betaSlow;
  }
  return success();
}

std::string mlir::moe::formatShape(ArrayRef<int64_t> shape) {
  std::string text = "[";
  llvm::raw_string_ostream os(text);
  llvm::interleaveComma(shape, os, [&](int64_t dim) {
    if (ShapedType::isDynamic(dim))
      os << "?";
    else
      os << dim;
  });
  os << "]";
  return text;
}

double mlir::moe::getYarnMscale(double factor, double m) {
  if (m == 0.0 || factor <= 1.0)
    return 1.0;
  return 0.1 * m * std::log(factor) + 1.0;
}

std::vector<float>
mlir::moe::getRopeInverseFrequencies(int64_t dim, double theta,
                                     RopeScalingAttr scaling) {
  int64_t half = dim / 2;
  // transformers: base ** (arange(0, dim, 2).float() / dim), all in f32.
  std::vector<float> posFreqs(half), invFreq(half);
  for (int64_t i = 0; i < half; ++i) {
    float exponent = float(2 * i) / float(dim);
    posFreqs[i] = float(std::pow(double(float(theta)), double(exponent)));
    invFreq[i] = 1.0f / posFreqs[i];
  }
  if (!scaling)
    return invFreq;
  float factor = float(scaling.getFactor().convertToDouble());
  if (scaling.getKind() == RopeScalingKind::linear) {
    for (float &f : invFreq)
      f /= factor;
    return invFreq;
  }
  // YaRN (transformers' _compute_yarn_parameters, truncate = true): the
  // correction range in dimensions, in double as Python computes it.
  double orig = double(scaling.getOriginalMaxPositionEmbeddings());
  auto correctionDim = [&](double rotations) {
    constexpr double kPi = 3.141592653589793;
    return double(dim) * std::log(orig / (rotations * 2.0 * kPi)) /
           (2.0 * std::log(theta));
  };
  double low =
      std::floor(correctionDim(scaling.getBetaFast().convertToDouble()));
  double high =
      std::ceil(correctionDim(scaling.getBetaSlow().convertToDouble()));
  low = std::max(low, 0.0);
  high = std::min(high, double(dim - 1));
  if (low == high)
    high += 0.001;
  for (int64_t i = 0; i < half; ++i) {
    float ramp = (float(i) - float(low)) / float(high - low);
    ramp = std::min(std::max(ramp, 0.0f), 1.0f);
    float extrapolation = 1.0f - ramp;
    float interpolated = 1.0f / (factor * posFreqs[i]);
    invFreq[i] =
        interpolated * (1.0f - extrapolation) + invFreq[i] * extrapolation;
  }
  return invFreq;
}

double mlir::moe::getRopeCosSinScale(RopeScalingAttr scaling) {
  if (!scaling || scaling.getKind() != RopeScalingKind::yarn)
    return 1.0;
  double factor = scaling.getFactor().convertToDouble();
  return getYarnMscale(factor, scaling.getMscale().convertToDouble()) /
         getYarnMscale(factor, scaling.getMscaleAllDim().convertToDouble());
}

//===----------------------------------------------------------------------===//
// #moe.block_scale
//===----------------------------------------------------------------------===//

LogicalResult
BlockScaleAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                       Fp8Format format, ArrayRef<int64_t> block,
                       ScalePlacement placement, bool pow2, int64_t zeroPoint) {
  if (format == Fp8Format::u8 && (zeroPoint < 0 || zeroPoint > 255))
    return emitError() << "expected `zero_point` in [0, 255] for format u8, "
                          "but got "
                       << zeroPoint;
  if (format == Fp8Format::u4 && (zeroPoint < 0 || zeroPoint > 15))
    return emitError() << "expected `zero_point` in [0, 15] for format u4, "
                          "but got "
                       << zeroPoint;
  if (format != Fp8Format::u8 && format != Fp8Format::u4 && zeroPoint != 0)
    return emitError() << "expected `zero_point` = 0 for FP8 format "
                       << stringifyFp8Format(format) << ", but got "
                       << zeroPoint;
  if (block.size() != 2)
    return emitError() << "expected a 2-d `block`, but got a " << block.size()
                       << "-d one";
  if (block[0] < 1 || block[1] < 1)
    return emitError() << "expected positive `block` sizes, but got ["
                       << block[0] << ", " << block[1] << "]";
  return success();
}

Type BlockScaleAttr::getElementType() const {
  Builder b(getContext());
  switch (getFormat()) {
  case Fp8Format::e4m3fn:
    return b.getType<Float8E4M3FNType>();
  case Fp8Format::e5m2:
    return b.getType<Float8E5M2Type>();
  case Fp8Format::u8:
  case Fp8Format::u4:
    return b.getIntegerType(8);
  }
  llvm_unreachable("unknown Fp8Format");
}

SmallVector<int64_t>
BlockScaleAttr::getUnpackedShape(ArrayRef<int64_t> shape) const {
  SmallVector<int64_t> result(shape);
  if (isPacked() && !result.empty() && !ShapedType::isDynamic(result.back()))
    result.back() *= 2;
  return result;
}

SmallVector<int64_t>
BlockScaleAttr::getScaleShape(ArrayRef<int64_t> shape) const {
  SmallVector<int64_t> result = getUnpackedShape(shape);
  ArrayRef<int64_t> block = getBlock();
  // Only the last two dimensions are blocked; a 1-d shape is a single row.
  size_t rank = result.size();
  for (size_t i = 0; i < 2 && i < rank; ++i) {
    int64_t &dim = result[rank - 1 - i];
    int64_t b = block[1 - i];
    if (!ShapedType::isDynamic(dim))
      dim = (dim + b - 1) / b;
  }
  return result;
}
