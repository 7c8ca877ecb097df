//===- Plan.h - The attributes of the planned phase -------------*- C++ -*-===//
//
// What `--moec-plan-buffers` records on a function and what the artifact
// emitter and the kernel builder read back: which ops are folded constants,
// the step order, every activation's place in the arena and how many rows per
// token it holds. One header so that writer and readers agree on the names.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_PASSES_PLAN_H
#define MOEC_PASSES_PLAN_H

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Operation.h"
#include "mlir/IR/Value.h"
#include "llvm/ADT/StringRef.h"

#include <cstdint>
#include <optional>

namespace mlir::moec {

/// Unit attribute on ops computed from weights only; the artifact writer
/// folds them into the weights section and they never run.
inline constexpr llvm::StringLiteral kConstantAttrName = "moe.constant";
/// i64: the op's position in the launch order (kernel `moec_step_<i>`).
inline constexpr llvm::StringLiteral kStepAttrName = "moe.step";
/// i64: arena offset of a single-result op's result, or argument attribute
/// of a function argument. Also on `moe.reshape` (its operand's offset).
inline constexpr llvm::StringLiteral kBufferAttrName = "moe.buffer";
/// `array<i64>`: arena offsets of the results of a multi-result step.
inline constexpr llvm::StringLiteral kBuffersAttrName = "moe.buffers";
/// Rows per token of a result whose leading dimension is `?` but holds
/// `k * T` rows (`moe.dispatch` and what it feeds): i64 on a single-result
/// op, `array<i64>` (one entry per result) on a multi-result op. Absent
/// when every result has one row per token.
inline constexpr llvm::StringLiteral kRowsPerTokenAttrName =
    "moe.rows_per_token";
/// i64 on the function: bytes of the arena.
inline constexpr llvm::StringLiteral kArenaBytesAttrName = "moe.arena_bytes";
/// i64 on the function: the token count the arena is sized for.
inline constexpr llvm::StringLiteral kMaxTokensAttrName = "moe.max_tokens";

/// Alignment of every arena offset and size, and of every weight in the
/// artifact's weights section. The kernel ABI promises 64; moec gives 128,
/// which a swizzled TMA tensor map needs of its base address (CUDA
/// Programming Guide, TMA swizzle: global memory aligned to 128 bytes).
inline constexpr int64_t kBufferAlignment = 128;

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

/// The rows per token of `value` (1 unless `moe.rows_per_token` says more);
/// follows reshape aliases.
int64_t getRowsPerToken(Value value);

/// True when `func` carries a plan (`moe.arena_bytes` and `moe.max_tokens`).
bool isPlanned(func::FuncOp func);

/// Bytes of one element of `type` (a ranked tensor of ints or floats whose
/// width is a whole number of bytes), or std::nullopt.
std::optional<int64_t> getElementBytes(Type type);

/// The bytes the plan reserves for a value of `type` holding `rowsPerToken`
/// rows per token (when its leading dimension is `?`) at `maxTokens` tokens:
/// its size rounded up to `kBufferAlignment`, at least that much. Fails for
/// a type `getElementBytes` rejects, a dynamic dimension other than the
/// first, or a size beyond 2^62 bytes.
std::optional<int64_t> getPlannedBytes(Type type, int64_t rowsPerToken,
                                       int64_t maxTokens);

} // namespace mlir::moec

#endif // MOEC_PASSES_PLAN_H
