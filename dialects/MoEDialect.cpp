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

//===----------------------------------------------------------------------===//
// #moe.block_scale
//===----------------------------------------------------------------------===//

LogicalResult
BlockScaleAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                       Fp8Format format, ArrayRef<int64_t> block,
                       ScalePlacement placement, bool pow2) {
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
  return getFormat() == Fp8Format::e4m3fn ? Type(b.getType<Float8E4M3FNType>())
                                          : Type(b.getType<Float8E5M2Type>());
}

SmallVector<int64_t>
BlockScaleAttr::getScaleShape(ArrayRef<int64_t> shape) const {
  SmallVector<int64_t> result(shape);
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
