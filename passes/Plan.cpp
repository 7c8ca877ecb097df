//===- Plan.cpp - The attributes of the planned phase -----------*- C++ -*-===//
//
// Readers of the plan `--moec-plan-buffers` writes: constants, step indices,
// arena offsets (through reshape aliases) and rows per token.
//
//===----------------------------------------------------------------------===//

#include "passes/Plan.h"

#include "dialects/MoEDialect.h"

#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinTypes.h"
#include "llvm/Support/CheckedArithmetic.h"
#include "llvm/Support/MathExtras.h"

#include <limits>

using namespace mlir;
using namespace mlir::moec;

bool mlir::moec::isPlannedConstant(Operation *op) {
  return op && op->hasAttr(kConstantAttrName);
}

bool mlir::moec::isPlannedConstant(Value value) {
  return isPlannedConstant(value.getDefiningOp());
}

std::optional<int64_t> mlir::moec::getStepIndex(Operation *op) {
  if (auto step = op->getAttrOfType<IntegerAttr>(kStepAttrName))
    return step.getInt();
  return std::nullopt;
}

Value mlir::moec::getBufferRoot(Value value) {
  while (auto reshape = value.getDefiningOp<moe::ReshapeOp>())
    value = reshape.getX();
  return value;
}

/// Entry `index` of the per-result attribute `multi` (an `array<i64>`) or,
/// for a single-result op, the i64 attribute `single`.
static std::optional<int64_t> getResultEntry(Operation *op, unsigned index,
                                             StringRef single,
                                             StringRef multi) {
  if (auto array = op->getAttrOfType<DenseI64ArrayAttr>(multi)) {
    if (index < array.size())
      return array[index];
    return std::nullopt;
  }
  if (auto attr = op->getAttrOfType<IntegerAttr>(single))
    return attr.getInt();
  return std::nullopt;
}

std::optional<int64_t> mlir::moec::getBufferOffset(Value value) {
  value = getBufferRoot(value);
  if (auto arg = dyn_cast<BlockArgument>(value)) {
    auto func = dyn_cast<func::FuncOp>(arg.getOwner()->getParentOp());
    if (!func)
      return std::nullopt;
    if (auto attr = func.getArgAttrOfType<IntegerAttr>(arg.getArgNumber(),
                                                       kBufferAttrName))
      return attr.getInt();
    return std::nullopt;
  }
  auto result = cast<OpResult>(value);
  if (isPlannedConstant(result.getOwner()))
    return std::nullopt;
  return getResultEntry(result.getOwner(), result.getResultNumber(),
                        kBufferAttrName, kBuffersAttrName);
}

int64_t mlir::moec::getRowsPerToken(Value value) {
  value = getBufferRoot(value);
  auto result = dyn_cast<OpResult>(value);
  if (!result)
    return 1;
  return getResultEntry(result.getOwner(), result.getResultNumber(),
                        kRowsPerTokenAttrName, kRowsPerTokenAttrName)
      .value_or(1);
}

bool mlir::moec::isPlanned(func::FuncOp func) {
  return func->hasAttr(kArenaBytesAttrName) &&
         func->hasAttr(kMaxTokensAttrName);
}

std::optional<int64_t> mlir::moec::getElementBytes(Type type) {
  auto tensor = dyn_cast<RankedTensorType>(type);
  if (!tensor)
    return std::nullopt;
  Type element = tensor.getElementType();
  if (!element.isIntOrFloat())
    return std::nullopt;
  unsigned bits = element.getIntOrFloatBitWidth();
  // Booleans (`moe.compare` results) take one byte each, 0 or 1.
  if (bits == 1)
    return int64_t(1);
  if (bits == 0 || bits % 8 != 0)
    return std::nullopt;
  return int64_t(bits / 8);
}

std::optional<int64_t> mlir::moec::getPlannedBytes(Type type,
                                                   int64_t rowsPerToken,
                                                   int64_t maxTokens) {
  std::optional<int64_t> bytes = getElementBytes(type);
  if (!bytes)
    return std::nullopt;
  for (auto [dim, extent] :
       llvm::enumerate(cast<RankedTensorType>(type).getShape())) {
    int64_t size = extent;
    if (ShapedType::isDynamic(size)) {
      if (dim != 0)
        return std::nullopt;
      bytes = llvm::checkedMul(*bytes, rowsPerToken);
      size = maxTokens;
    }
    if (bytes)
      bytes = llvm::checkedMul(*bytes, size);
    if (!bytes)
      return std::nullopt;
  }
  if (*bytes > std::numeric_limits<int64_t>::max() / 2)
    return std::nullopt;
  return std::max<int64_t>(kBufferAlignment,
                           llvm::alignTo(*bytes, kBufferAlignment));
}
