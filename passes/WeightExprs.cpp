//===- WeightExprs.cpp - Weight expressions for fusion passes ---*- C++ -*-===//
//
// Recognises, hoists and concatenates weight expressions. Concatenating FP8
// checkpoint weights concatenates their block scales too, which is exact only
// when no scale block straddles a split point.
//
//===----------------------------------------------------------------------===//

#include "passes/WeightExprs.h"

#include "passes/Roles.h"

#include "llvm/ADT/STLExtras.h"

using namespace mlir;
using namespace mlir::moec;

bool mlir::moec::isWeightExpr(Value value) {
  return !getWeightSources(value).empty();
}

bool mlir::moec::canHoistBefore(Value value, Operation *point) {
  Operation *def = value.getDefiningOp();
  if (!def) {
    Block *owner = cast<BlockArgument>(value).getOwner();
    return owner->findAncestorOpInBlock(*point) != nullptr;
  }
  if (def->getBlock() != point->getBlock()) {
    Operation *ancestor = def->getBlock()->findAncestorOpInBlock(*point);
    return ancestor && def->isBeforeInBlock(ancestor);
  }
  if (def->isBeforeInBlock(point))
    return true;
  // Only weight expressions are free to move: they read nothing but other
  // weights and have no side effects.
  if (def == point || !isWeightExpr(value))
    return false;
  return llvm::all_of(def->getOperands(), [&](Value operand) {
    return canHoistBefore(operand, point);
  });
}

void mlir::moec::hoistBefore(RewriterBase &rewriter, Value value,
                             Operation *point) {
  Operation *def = value.getDefiningOp();
  if (!def || def->getBlock() != point->getBlock() ||
      def->isBeforeInBlock(point))
    return;
  for (Value operand : def->getOperands())
    hoistBefore(rewriter, operand, point);
  rewriter.moveOpBefore(def, point);
}

int64_t mlir::moec::blockAlong(moe::BlockScaleAttr scheme, int64_t dim,
                               int64_t rank) {
  if (dim == rank - 1)
    return scheme.getBlock()[1];
  if (dim == rank - 2)
    return scheme.getBlock()[0];
  return 1;
}

/// The first split point of `pieces` along `dim` that is not a multiple of
/// `block`, if any.
static std::optional<int64_t> firstMisalignedSplit(ValueRange pieces,
                                                   int64_t dim, int64_t block) {
  int64_t offset = 0;
  for (Value piece : pieces.drop_back()) {
    offset += cast<RankedTensorType>(piece.getType()).getDimSize(dim);
    if (offset % block != 0)
      return offset;
  }
  return std::nullopt;
}

bool mlir::moec::splitsAligned(ValueRange pieces, int64_t dim, int64_t block) {
  return !firstMisalignedSplit(pieces, dim, block);
}

/// The shape of `pieces` concatenated along `dim`.
static SmallVector<int64_t> concatShape(ValueRange pieces, int64_t dim) {
  SmallVector<int64_t> shape(
      cast<RankedTensorType>(pieces.front().getType()).getShape());
  shape[dim] = 0;
  for (Value piece : pieces)
    shape[dim] += cast<RankedTensorType>(piece.getType()).getDimSize(dim);
  return shape;
}

LogicalResult mlir::moec::canConcatWeights(ValueRange pieces, int64_t dim,
                                           std::string &reason) {
  auto firstType = cast<RankedTensorType>(pieces.front().getType());
  int64_t rank = firstType.getRank();
  for (Value piece : pieces) {
    auto type = cast<RankedTensorType>(piece.getType());
    if (type.getElementType() != firstType.getElementType()) {
      reason = "the weights have different element types";
      return failure();
    }
    bool sameOtherDims = type.getRank() == rank && dim < rank;
    for (int64_t i = 0; sameOtherDims && i < rank; ++i)
      sameOtherDims = i == dim || type.getDimSize(i) == firstType.getDimSize(i);
    if (!sameOtherDims) {
      reason = "the weights differ in a dimension other than the one they "
               "are concatenated along";
      return failure();
    }
  }
  size_t dequantized = llvm::count_if(pieces, [](Value piece) {
    return static_cast<bool>(piece.getDefiningOp<moe::DequantizeOp>());
  });
  if (dequantized == 0)
    return success();
  if (dequantized != pieces.size()) {
    reason = "FP8 checkpoint weights cannot be concatenated with "
             "high-precision ones";
    return failure();
  }
  moe::BlockScaleAttr scheme =
      pieces.front().getDefiningOp<moe::DequantizeOp>().getScheme();
  if (llvm::any_of(pieces, [&](Value piece) {
        return piece.getDefiningOp<moe::DequantizeOp>().getScheme() != scheme;
      })) {
    reason = "the FP8 weights have different block-scale schemes";
    return failure();
  }
  int64_t block = blockAlong(scheme, dim, rank);
  if (std::optional<int64_t> split = firstMisalignedSplit(pieces, dim, block)) {
    reason = "FP8 weights split at " + std::to_string(*split) +
             " along dimension " + std::to_string(dim) +
             ", which is not a multiple of their scale block " +
             std::to_string(block);
    return failure();
  }
  return success();
}

Value mlir::moec::concatWeights(RewriterBase &rewriter, Location loc,
                                ValueRange pieces, int64_t dim) {
  SmallVector<int64_t> shape = concatShape(pieces, dim);
  Type elementType =
      cast<RankedTensorType>(pieces.front().getType()).getElementType();
  auto resultType = RankedTensorType::get(shape, elementType);
  IntegerAttr dimAttr = rewriter.getI64IntegerAttr(dim);
  auto first = pieces.front().getDefiningOp<moe::DequantizeOp>();
  if (!first)
    return moe::ConcatOp::create(rewriter, loc, resultType, pieces, dimAttr);

  // FP8 checkpoint weights: concatenate data and scales, dequantize once.
  SmallVector<Value> data, scales;
  for (Value piece : pieces) {
    auto op = piece.getDefiningOp<moe::DequantizeOp>();
    data.push_back(op.getX());
    scales.push_back(op.getScale());
  }
  moe::BlockScaleAttr scheme = first.getScheme();
  auto dataType = RankedTensorType::get(shape, scheme.getElementType());
  auto scaleType =
      RankedTensorType::get(scheme.getScaleShape(shape), rewriter.getF32Type());
  Value q = moe::ConcatOp::create(rewriter, loc, dataType, data, dimAttr);
  Value s = moe::ConcatOp::create(rewriter, loc, scaleType, scales, dimAttr);
  return moe::DequantizeOp::create(rewriter, loc, resultType, q, s, scheme);
}
