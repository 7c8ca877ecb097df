//===- WeightExprs.h - Weight expressions for fusion passes -----*- C++ -*-===//
//
// Helpers shared by the passes that build new weights out of checkpoint
// weights: a weight expression is a `moe.weight` or a `moe.concat` /
// `moe.dequantize` / `moe.quantize` / `moe.reshape` / `moe.slice` of weight
// expressions, which the artifact writer folds at compile time.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_PASSES_WEIGHTEXPRS_H
#define MOEC_PASSES_WEIGHTEXPRS_H

#include "dialects/MoEDialect.h"

#include "mlir/IR/PatternMatch.h"

#include <string>

namespace mlir::moec {

/// True when `value` is a weight expression (only checkpoint weights feed
/// it).
bool isWeightExpr(Value value);

/// True when `value` is available before `point`, or is a weight expression
/// whose ops in `point`'s block can all be moved before it.
bool canHoistBefore(Value value, Operation *point);

/// Moves the ops computing `value` that come after `point` to just before it,
/// operands first. Requires `canHoistBefore(value, point)`.
void hoistBefore(RewriterBase &rewriter, Value value, Operation *point);

/// The block size of `scheme` along dimension `dim` of a rank-`rank` tensor:
/// the block of the last two dimensions, 1 for leading dimensions.
int64_t blockAlong(moe::BlockScaleAttr scheme, int64_t dim, int64_t rank);

/// True when every split point of `pieces` concatenated along `dim` is a
/// multiple of `block`, so that their block scales concatenate too.
bool splitsAligned(ValueRange pieces, int64_t dim, int64_t block);

/// Checks that the weights `pieces` can be concatenated along `dim`: equal
/// element types and other dimensions, and either no FP8 checkpoint weight
/// or only FP8 checkpoint weights (`moe.dequantize` of data and scales) with
/// one scheme whose scale block along `dim` divides every split point. On
/// failure `reason` says why.
LogicalResult canConcatWeights(ValueRange pieces, int64_t dim,
                               std::string &reason);

/// Concatenates the weights `pieces` along `dim` at the rewriter's insertion
/// point: a `moe.concat`, or for FP8 checkpoint weights a `moe.dequantize` of
/// the concatenated data and scales. Requires `canConcatWeights`.
Value concatWeights(RewriterBase &rewriter, Location loc, ValueRange pieces,
                    int64_t dim);

} // namespace mlir::moec

#endif // MOEC_PASSES_WEIGHTEXPRS_H
