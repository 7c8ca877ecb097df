//===- Plan.cpp - Reading the plan of the planned phase ---------*- C++ -*-===//
//
// Readers of the plan `--moec-plan-buffers` writes: constants, step indices,
// arena offsets (through reshape aliases) and rows per token.
//
//===----------------------------------------------------------------------===//

#include "passes/Plan.h"

using namespace mlir;
using namespace mlir::moec;

bool mlir::moec::isPlannedConstant(Operation *op) {
  return op && op->hasAttr(moe::MoEDialect::getConstantAttrName());
}

bool mlir::moec::isPlannedConstant(Value value) {
  return isPlannedConstant(value.getDefiningOp());
}

std::optional<int64_t> mlir::moec::getStepIndex(Operation *op) {
  if (auto step =
          op->getAttrOfType<moe::StepAttr>(moe::MoEDialect::getStepAttrName()))
    return step.getIndex();
  return std::nullopt;
}

Value mlir::moec::getBufferRoot(Value value) {
  while (auto reshape = value.getDefiningOp<moe::ReshapeOp>())
    value = reshape.getX();
  return value;
}

std::optional<int64_t> mlir::moec::getBufferOffset(Value value) {
  value = getBufferRoot(value);
  if (isPlannedConstant(value))
    return std::nullopt;
  auto [buffers, index] = moe::getBuffersEntry(value);
  if (!buffers)
    return std::nullopt;
  return buffers.getOffsets()[index];
}

int64_t mlir::moec::getRowsPerToken(Value value) {
  auto [buffers, index] = moe::getBuffersEntry(getBufferRoot(value));
  return buffers ? buffers.getRowsPerToken(index) : 1;
}

moe::PlanAttr mlir::moec::getPlan(func::FuncOp func) {
  return func->getAttrOfType<moe::PlanAttr>(moe::MoEDialect::getPlanAttrName());
}

bool mlir::moec::isPlanned(func::FuncOp func) { return bool(getPlan(func)); }
