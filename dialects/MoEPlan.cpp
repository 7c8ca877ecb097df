//===- MoEPlan.cpp - The plan of the planned phase --------------*- C++ -*-===//
//
// Verifies the plan `--moec-plan-buffers` writes (`#moe.plan`, `#moe.step`,
// `#moe.buffers`, `moe.constant`): each attribute on its own, and a planned
// function as a whole (dense step order, every buffer inside the arena,
// reshape aliases). Also the arena sizes both the planner and the verifier
// use (docs/planning.md).
//
//===----------------------------------------------------------------------===//

#include "dialects/MoEDialect.h"

#include "mlir/Interfaces/FunctionInterfaces.h"
#include "llvm/Support/CheckedArithmetic.h"
#include "llvm/Support/MathExtras.h"

#include <limits>

using namespace mlir;
using namespace mlir::moe;

//===----------------------------------------------------------------------===//
// Sizes
//===----------------------------------------------------------------------===//

std::optional<int64_t> mlir::moe::getElementBytes(Type type) {
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

std::optional<int64_t>
mlir::moe::getPlannedBytes(Type type, int64_t rowsPerToken, int64_t maxTokens) {
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

std::pair<BuffersAttr, unsigned> mlir::moe::getBuffersEntry(Value value) {
  BuffersAttr buffers;
  unsigned index = 0;
  if (auto arg = dyn_cast<BlockArgument>(value)) {
    auto func = dyn_cast<FunctionOpInterface>(arg.getOwner()->getParentOp());
    if (func && arg.getOwner()->isEntryBlock())
      buffers = func.getArgAttrOfType<BuffersAttr>(
          arg.getArgNumber(), MoEDialect::getBuffersAttrName());
  } else {
    auto result = cast<OpResult>(value);
    buffers = result.getOwner()->getAttrOfType<BuffersAttr>(
        MoEDialect::getBuffersAttrName());
    index = result.getResultNumber();
  }
  if (!buffers || index >= buffers.getOffsets().size())
    return {BuffersAttr(), 0};
  return {buffers, index};
}

//===----------------------------------------------------------------------===//
// The attributes on their own
//===----------------------------------------------------------------------===//

LogicalResult PlanAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                               int64_t arenaBytes, int64_t maxTokens) {
  if (maxTokens < 1)
    return emitError() << "expected `max_tokens` >= 1, but got " << maxTokens;
  if (arenaBytes < 0 || arenaBytes % kBufferAlignment != 0)
    return emitError() << "expected `arena_bytes` to be a non-negative "
                          "multiple of "
                       << kBufferAlignment << ", but got " << arenaBytes;
  return success();
}

LogicalResult StepAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                               int64_t index) {
  if (index < 0)
    return emitError() << "expected a step index >= 0, but got " << index;
  return success();
}

LogicalResult BuffersAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                                  ArrayRef<int64_t> offsets,
                                  ArrayRef<int64_t> rowsPerToken) {
  for (auto [index, offset] : llvm::enumerate(offsets))
    if (offset < 0 || offset % kBufferAlignment != 0)
      return emitError() << "expected offset #" << index
                         << " to be a non-negative multiple of "
                         << kBufferAlignment << ", but got " << offset;
  if (!rowsPerToken.empty() && rowsPerToken.size() != offsets.size())
    return emitError() << "expected one `rows_per_token` entry per offset ("
                       << offsets.size() << "), but got "
                       << rowsPerToken.size();
  for (auto [index, rows] : llvm::enumerate(rowsPerToken))
    if (rows < 1)
      return emitError() << "expected `rows_per_token` #" << index
                         << " >= 1, but got " << rows;
  return success();
}

//===----------------------------------------------------------------------===//
// A planned function as a whole
//===----------------------------------------------------------------------===//

/// Fails unless the buffer of `value` at `offset` (holding `rows` rows per
/// token) lies inside the arena of `plan`; `diag` names the value.
static LogicalResult
verifyInsideArena(Value value, int64_t offset, int64_t rows, PlanAttr plan,
                  function_ref<InFlightDiagnostic()> diag) {
  std::optional<int64_t> bytes =
      getPlannedBytes(value.getType(), rows, plan.getMaxTokens());
  if (!bytes)
    return diag() << "expected a type the arena can hold, but got "
                  << value.getType();
  if (offset + *bytes > plan.getArenaBytes())
    return diag() << "expected a buffer inside the " << plan.getArenaBytes()
                  << "-byte arena, but got " << *bytes << " bytes at offset "
                  << offset;
  return success();
}

/// Verifies the arguments, steps and aliases of the function `op` that
/// carries `plan`.
static LogicalResult verifyPlannedFunction(Operation *op, PlanAttr plan) {
  auto func = dyn_cast<FunctionOpInterface>(op);
  if (!func || func.isExternal() ||
      !llvm::hasSingleElement(func.getFunctionBody()))
    return op->emitOpError("expected `moe.plan` on a function with a "
                           "one-block body");
  for (BlockArgument arg : func.getArguments()) {
    // A KV cache is the runtime's state, not an arena buffer.
    bool cache = static_cast<bool>(
        func.getArgAttr(arg.getArgNumber(), MoEDialect::getKvCacheAttrName()));
    bool placed = static_cast<bool>(
        func.getArgAttr(arg.getArgNumber(), MoEDialect::getBuffersAttrName()));
    if (cache && placed)
      return op->emitOpError("expected KV cache argument #")
             << arg.getArgNumber() << " to carry no `moe.buffers`";
    if (cache)
      continue;
    if (!placed)
      return op->emitOpError("expected argument #")
             << arg.getArgNumber() << " to carry `moe.buffers`";
    // A malformed one is the argument attribute verifier's error.
    auto [buffers, index] = getBuffersEntry(arg);
    if (!buffers)
      continue;
    if (failed(verifyInsideArena(arg, buffers.getOffsets()[0], 1, plan, [&] {
          return op->emitOpError("argument #") << arg.getArgNumber() << ": ";
        })))
      return failure();
  }
  int64_t nextStep = 0;
  for (Operation &inner : func.getFunctionBody().front()) {
    auto buffers =
        inner.getAttrOfType<BuffersAttr>(MoEDialect::getBuffersAttrName());
    if (auto step =
            inner.getAttrOfType<StepAttr>(MoEDialect::getStepAttrName())) {
      if (step.getIndex() != nextStep)
        return inner.emitOpError("expected step index ")
               << nextStep << " (steps are numbered 0 to n-1 in block "
               << "order), but got " << step.getIndex();
      if (!buffers)
        return inner.emitOpError("expected step ")
               << nextStep << " to carry `moe.buffers`";
      ++nextStep;
    }
    // A count that does not match the results is the op's own error.
    if (!buffers || buffers.getOffsets().size() != inner.getNumResults())
      continue;
    if (auto reshape = dyn_cast<ReshapeOp>(inner)) {
      // An alias: its operand's buffer, which is checked where it is defined.
      auto [source, index] = getBuffersEntry(reshape.getX());
      if (source && source.getOffsets()[index] != buffers.getOffsets()[0])
        return inner.emitOpError("expected `moe.buffers` to name the "
                                 "operand's offset ")
               << source.getOffsets()[index] << ", but got "
               << buffers.getOffsets()[0];
      continue;
    }
    for (OpResult result : inner.getResults()) {
      unsigned i = result.getResultNumber();
      if (failed(verifyInsideArena(
              result, buffers.getOffsets()[i], buffers.getRowsPerToken(i), plan,
              [&] { return inner.emitOpError("result #") << i << ": "; })))
        return failure();
    }
  }
  return success();
}

/// Fails unless `op` lies in a planned function; `name` is the attribute.
static LogicalResult verifyInPlannedFunction(Operation *op, StringRef name) {
  auto func = op->getParentOfType<FunctionOpInterface>();
  if (!func || !func->hasAttr(MoEDialect::getPlanAttrName()))
    return op->emitOpError("expected `")
           << name << "` only inside a function with `moe.plan`";
  return success();
}

//===----------------------------------------------------------------------===//
// The dialect hooks
//===----------------------------------------------------------------------===//

/// Reports that the plan attribute `name` on `op` holds `value` instead of
/// the attribute of its own name (`moe.step` holds a `#moe.step`).
static InFlightDiagnostic emitNotA(Operation *op, StringRef name,
                                   Attribute value) {
  return op->emitOpError("expected `")
         << name << "` to be a `#" << name << "`, but got " << value;
}

LogicalResult MoEDialect::verifyOperationAttribute(Operation *op,
                                                   NamedAttribute attribute) {
  StringRef name = attribute.getName().getValue();
  Attribute value = attribute.getValue();
  bool constant = op->hasAttr(getConstantAttrName());
  if (name == getPlanAttrName()) {
    auto plan = dyn_cast<PlanAttr>(value);
    if (!plan)
      return emitNotA(op, name, value);
    return verifyPlannedFunction(op, plan);
  }
  if (name == getStepAttrName()) {
    auto step = dyn_cast<StepAttr>(value);
    if (!step)
      return emitNotA(op, name, value);
    if (constant)
      return op->emitOpError("expected a `moe.constant` op not to be a "
                             "step, but got step ")
             << step.getIndex();
    return verifyInPlannedFunction(op, name);
  }
  if (name == getBuffersAttrName()) {
    auto buffers = dyn_cast<BuffersAttr>(value);
    if (!buffers)
      return emitNotA(op, name, value);
    if (constant)
      return op->emitOpError("expected a `moe.constant` op to have no "
                             "`moe.buffers`");
    if (buffers.getOffsets().size() != op->getNumResults())
      return op->emitOpError("expected one `moe.buffers` offset per result (")
             << op->getNumResults() << "), but got "
             << buffers.getOffsets().size();
    return verifyInPlannedFunction(op, name);
  }
  if (name == getConstantAttrName() && !isa<UnitAttr>(value))
    return op->emitOpError("expected `moe.constant` to be a unit attribute, "
                           "but got ")
           << value;
  // Other `moe.*` attributes (`moe.checkpoint`, `moe.model_type`) are
  // free-form.
  return success();
}

LogicalResult MoEDialect::verifyRegionArgAttribute(Operation *op,
                                                   unsigned regionIndex,
                                                   unsigned argIndex,
                                                   NamedAttribute attribute) {
  if (attribute.getName().getValue() == getKvCacheAttrName()) {
    if (!isa<UnitAttr>(attribute.getValue()))
      return op->emitOpError("expected `")
             << getKvCacheAttrName() << "` of argument #" << argIndex
             << " to be a unit attribute, but got " << attribute.getValue();
    auto func = dyn_cast<FunctionOpInterface>(op);
    auto type =
        func ? dyn_cast<RankedTensorType>(func.getArgumentTypes()[argIndex])
             : RankedTensorType();
    if (!type || type.getRank() != 4 || !type.isDynamicDim(0) ||
        llvm::any_of(type.getShape().drop_front(),
                     [](int64_t d) { return ShapedType::isDynamic(d); }))
      return op->emitOpError("expected KV cache argument #")
             << argIndex
             << " to be a tensor<?xPxHxD> of pages (only the page count "
                "dynamic), but got "
             << (func ? func.getArgumentTypes()[argIndex] : Type());
    return success();
  }
  if (attribute.getName().getValue() != getBuffersAttrName())
    return success();
  auto buffers = dyn_cast<BuffersAttr>(attribute.getValue());
  if (!buffers)
    return op->emitOpError("expected `moe.buffers` of argument #")
           << argIndex << " to be a `#moe.buffers`, but got "
           << attribute.getValue();
  if (buffers.getOffsets().size() != 1)
    return op->emitOpError("expected one `moe.buffers` offset for argument #")
           << argIndex << ", but got " << buffers.getOffsets().size();
  if (!op->hasAttr(getPlanAttrName()))
    return op->emitOpError("expected `moe.buffers` on argument #")
           << argIndex << " only in a function with `moe.plan`";
  return success();
}
