//===- Plan.h - Reading the plan of the planned phase -----------*- C++ -*-===//
//
// What `--moec-plan-buffers` records on a function and what the artifact
// emitter and the kernel builders read back: which ops are folded constants,
// the step order, every activation's place in the arena and how many rows per
// token it holds. The attributes are the dialect's (`dialects/MoEPlan.td`),
// verified there; these readers answer questions about values.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_PASSES_PLAN_H
#define MOEC_PASSES_PLAN_H

#include "dialects/MoEDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Operation.h"
#include "mlir/IR/Value.h"
#include "llvm/ADT/StringRef.h"

#include <cstdint>
#include <optional>

namespace mlir::moec {

using moe::getElementBytes;
using moe::getPlannedBytes;
using moe::kBufferAlignment;

/// The prefix of step kernels; step `i` calls `moec_step_<i>`.
inline constexpr llvm::StringLiteral kStepKernelPrefix = "moec_step_";

/// True when `op` was marked `moe.constant`.
bool isPlannedConstant(Operation *op);

/// True when `value` is the result of a `moe.constant` op.
bool isPlannedConstant(Value value);

/// The `moe.step` index of `op`, if it is a step.
std::optional<int64_t> getStepIndex(Operation *op);

/// The value whose buffer `value` occupies: `value` itself, or for a
/// `moe.reshape` result (transitively) the reshaped operand.
Value getBufferRoot(Value value);

/// The arena offset of `value`, or of the value it aliases; std::nullopt
/// for constants and unplanned values.
std::optional<int64_t> getBufferOffset(Value value);

/// The rows per token of `value` (1 unless its `moe.buffers` says more);
/// follows reshape aliases.
int64_t getRowsPerToken(Value value);

/// The `#moe.plan` of `func` (arena bytes, max tokens), or null when it is
/// not planned.
moe::PlanAttr getPlan(func::FuncOp func);

/// True when `func` carries a plan (`moe.plan`).
bool isPlanned(func::FuncOp func);

} // namespace mlir::moec

#endif // MOEC_PASSES_PLAN_H
