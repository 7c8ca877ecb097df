//===- PlanBuffers.cpp - Steps and arena offsets ----------------*- C++ -*-===//
//
// `--moec-plan-buffers`: marks weight expressions as compile-time constants,
// numbers the remaining ops as launch steps, and places every activation in
// one arena sized for `max-tokens` tokens, reusing memory between values
// whose lifetimes do not overlap (docs/planning.md).
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"
#include "passes/Plan.h"

#include "mlir/IR/Builders.h"
#include "llvm/ADT/STLExtras.h"

#include <map>

namespace mlir::moec {
#define GEN_PASS_DEF_PLANBUFFERSPASS
#include "passes/Passes.h.inc"
} // namespace mlir::moec

using namespace mlir;
using namespace mlir::moec;

namespace {

//===----------------------------------------------------------------------===//
// The arena allocator
//===----------------------------------------------------------------------===//

/// Best-fit placement of blocks in a growing arena. Freed blocks become gaps
/// (merged with free neighbours); a request takes the smallest gap it fits
/// (the lowest one on ties), else the free tail of the arena, else new
/// space at its end.
class ArenaAllocator {
public:
  /// Reserves `bytes` (a multiple of the alignment) and returns its offset.
  int64_t allocate(int64_t bytes) {
    auto best = gaps.end();
    for (auto it = gaps.begin(); it != gaps.end(); ++it)
      if (it->second >= bytes &&
          (best == gaps.end() || it->second < best->second))
        best = it;
    if (best != gaps.end()) {
      int64_t offset = best->first, size = best->second;
      gaps.erase(best);
      if (size > bytes)
        gaps[offset + bytes] = size - bytes;
      return offset;
    }
    // No gap fits: grow the arena, starting inside a free tail if any.
    int64_t offset = top;
    if (!gaps.empty() &&
        std::prev(gaps.end())->first + std::prev(gaps.end())->second == top) {
      offset = std::prev(gaps.end())->first;
      gaps.erase(std::prev(gaps.end()));
    }
    top = offset + bytes;
    return offset;
  }

  /// Returns the block at `offset` of `bytes` to the free gaps.
  void release(int64_t offset, int64_t bytes) {
    auto next = gaps.lower_bound(offset);
    if (next != gaps.end() && next->first == offset + bytes) {
      bytes += next->second;
      next = gaps.erase(next);
    }
    if (next != gaps.begin()) {
      auto prev = std::prev(next);
      if (prev->first + prev->second == offset) {
        prev->second += bytes;
        return;
      }
    }
    gaps[offset] = bytes;
  }

  /// The arena size: the highest end of any block ever placed.
  int64_t size() const { return top; }

private:
  std::map<int64_t, int64_t> gaps;
  int64_t top = 0;
};

//===----------------------------------------------------------------------===//
// Planning one function
//===----------------------------------------------------------------------===//

/// An activation with its own buffer: a function argument or a step result.
struct Buffer {
  Value value;
  /// The step that defines it (-1 for arguments) and the last step that
  /// reads it, directly or through a reshape (the step count when the
  /// function returns it).
  int64_t start = -1, end = -1;
  /// Reserved bytes (a multiple of the alignment) and the chosen offset.
  int64_t bytes = 0, offset = 0;
};

/// Plans `func`; emits an error and fails for IR it cannot place.
class Planner {
public:
  Planner(func::FuncOp func, int64_t maxTokens)
      : func(func), maxTokens(maxTokens) {}

  LogicalResult run();

private:
  void clearPlan();
  /// Whether `arg` is a KV cache (`moe.kv_cache`).
  bool isKvCache(BlockArgument arg) {
    return static_cast<bool>(func.getArgAttr(
        arg.getArgNumber(), moe::MoEDialect::getKvCacheAttrName()));
  }
  LogicalResult classify();
  void computeRowsPerToken();
  LogicalResult sizeBuffer(Buffer &buffer);
  int64_t lastUse(Value value);
  void writePlan(int64_t arenaBytes);

  func::FuncOp func;
  int64_t maxTokens;
  /// The steps, in program order.
  SmallVector<Operation *> steps;
  llvm::DenseMap<Operation *, int64_t> stepIndex;
  /// Rows per token of every step result (absent: 1).
  llvm::DenseMap<Value, int64_t> rowsPerToken;
  /// Arguments first, then step results in step order.
  SmallVector<Buffer> buffers;
  llvm::DenseMap<Value, size_t> bufferIndex;
};

void Planner::clearPlan() {
  func->removeAttr(moe::MoEDialect::getPlanAttrName());
  for (unsigned i = 0, e = func.getNumArguments(); i < e; ++i)
    func.removeArgAttr(i, moe::MoEDialect::getBuffersAttrName());
  for (Operation &op : func.getBody().front())
    for (StringRef name : {moe::MoEDialect::getConstantAttrName(),
                           moe::MoEDialect::getStepAttrName(),
                           moe::MoEDialect::getBuffersAttrName()})
      op.removeAttr(name);
}

/// Sorts every op into constants, reshape aliases and steps.
LogicalResult Planner::classify() {
  Dialect *moeDialect = func->getContext()->getLoadedDialect("moe");
  for (Operation &op : func.getBody().front()) {
    if (isa<func::ReturnOp>(op))
      continue;
    if (op.getDialect() != moeDialect || op.getNumRegions() != 0)
      return op.emitOpError("cannot be planned: a planned function holds "
                            "only `moe` ops and `func.return`");
    // Weight expressions, and anything else computed from weights alone,
    // are folded by the artifact writer.
    bool constant = isa<moe::WeightOp>(op) ||
                    (op.getNumOperands() != 0 &&
                     llvm::all_of(op.getOperands(), [](Value operand) {
                       return isPlannedConstant(operand);
                     }));
    if (constant) {
      op.setAttr(moe::MoEDialect::getConstantAttrName(),
                 UnitAttr::get(op.getContext()));
      continue;
    }
    if (isa<moe::ReshapeOp>(op))
      continue;
    stepIndex[&op] = int64_t(steps.size());
    steps.push_back(&op);
  }
  return success();
}

/// `moe.dispatch` emits `k` rows per token (`k` = columns of its indices);
/// ops reading such rows keep that count, and `moe.combine` folds them back
/// into one row per token.
void Planner::computeRowsPerToken() {
  for (Operation *op : steps) {
    if (auto dispatch = dyn_cast<moe::DispatchOp>(op)) {
      // The verifier guarantees `[?, k]` indices with a static `k`.
      int64_t k = dispatch.getIndices().getType().getDimSize(1);
      rowsPerToken[dispatch.getRows()] = k;
      rowsPerToken[dispatch.getPositions()] = k;
      continue;
    }
    if (isa<moe::CombineOp>(op))
      continue;
    int64_t rows = 1;
    for (Value operand : op->getOperands()) {
      auto type = dyn_cast<RankedTensorType>(operand.getType());
      if (type && type.getRank() > 0 && type.isDynamicDim(0))
        rows = std::max(rows, rowsPerToken.lookup(getBufferRoot(operand)));
    }
    if (rows == 1)
      continue;
    for (Value result : op->getResults()) {
      auto type = dyn_cast<RankedTensorType>(result.getType());
      if (type && type.getRank() > 0 && type.isDynamicDim(0))
        rowsPerToken[result] = rows;
    }
  }
}

/// Sets `buffer.bytes`: the value's size at `maxTokens` tokens, aligned.
LogicalResult Planner::sizeBuffer(Buffer &buffer) {
  Value value = buffer.value;
  // Arguments are named by location: a diagnostic attached to the function
  // would print all of it.
  auto diag = [&]() {
    Operation *owner = value.getDefiningOp();
    return owner ? owner->emitOpError()
                 : emitError(value.getLoc())
                       << "argument #"
                       << cast<BlockArgument>(value).getArgNumber() << " ";
  };
  auto type = dyn_cast<RankedTensorType>(value.getType());
  if (!type || !getElementBytes(type))
    return diag() << "cannot be planned: expected a ranked tensor of whole-"
                     "byte elements, but got "
                  << value.getType();
  for (int64_t dim = 1; dim < type.getRank(); ++dim)
    if (type.isDynamicDim(dim))
      return diag() << "cannot be planned: only the leading (token) "
                       "dimension may be dynamic, but got "
                    << type;
  int64_t rows = std::max<int64_t>(1, rowsPerToken.lookup(value));
  std::optional<int64_t> bytes = getPlannedBytes(type, rows, maxTokens);
  if (!bytes)
    return diag() << "cannot be planned: " << type << " at " << maxTokens
                  << " tokens does not fit in 2^62 bytes";
  buffer.bytes = *bytes;
  return success();
}

/// The last step that reads `value`, directly or through reshapes; the step
/// count for a returned value, and -1 when nothing reads it.
int64_t Planner::lastUse(Value value) {
  int64_t last = -1;
  for (Operation *user : value.getUsers()) {
    if (isa<func::ReturnOp>(user))
      last = std::max(last, int64_t(steps.size()));
    else if (auto reshape = dyn_cast<moe::ReshapeOp>(user))
      last = std::max(last, lastUse(reshape.getResult()));
    else if (auto it = stepIndex.find(user); it != stepIndex.end())
      last = std::max(last, it->second);
  }
  return last;
}

void Planner::writePlan(int64_t arenaBytes) {
  MLIRContext *context = func.getContext();
  StringRef buffersName = moe::MoEDialect::getBuffersAttrName();
  // `rows_per_token` is left out when every value has one row per token.
  auto getBuffers = [&](ArrayRef<int64_t> offsets, ArrayRef<int64_t> rows) {
    bool expanded = llvm::any_of(rows, [](int64_t r) { return r != 1; });
    return moe::BuffersAttr::get(context, offsets,
                                 expanded ? rows : ArrayRef<int64_t>());
  };
  func->setAttr(moe::MoEDialect::getPlanAttrName(),
                moe::PlanAttr::get(context, arenaBytes, maxTokens));
  for (BlockArgument arg : func.getArguments())
    if (!isKvCache(arg))
      func.setArgAttr(
          arg.getArgNumber(), buffersName,
          getBuffers({buffers[bufferIndex.lookup(arg)].offset}, {}));
  for (Operation *op : steps) {
    op->setAttr(moe::MoEDialect::getStepAttrName(),
                moe::StepAttr::get(context, stepIndex.lookup(op)));
    SmallVector<int64_t> offsets, rows;
    for (Value result : op->getResults()) {
      offsets.push_back(buffers[bufferIndex.lookup(result)].offset);
      rows.push_back(std::max<int64_t>(1, rowsPerToken.lookup(result)));
    }
    op->setAttr(buffersName, getBuffers(offsets, rows));
  }
  // A reshape names its operand's buffer, so that the IR reads on its own.
  func.walk([&](moe::ReshapeOp reshape) {
    if (std::optional<int64_t> offset = getBufferOffset(reshape.getResult()))
      reshape->setAttr(buffersName, getBuffers({*offset}, {}));
  });
}

LogicalResult Planner::run() {
  if (!func.getBody().hasOneBlock())
    return func.emitOpError("cannot be planned: expected a single block");
  clearPlan();
  if (failed(classify()))
    return failure();
  computeRowsPerToken();

  // A KV cache is the runtime's state: no arena buffer.
  for (BlockArgument arg : func.getArguments())
    if (!isKvCache(arg))
      buffers.push_back({arg, /*start=*/-1});
  for (Operation *op : steps)
    for (Value result : op->getResults())
      buffers.push_back({result, stepIndex.lookup(op)});
  for (auto [index, buffer] : llvm::enumerate(buffers)) {
    bufferIndex[buffer.value] = index;
    if (failed(sizeBuffer(buffer)))
      return failure();
    // A value nobody reads still needs its place while its step runs.
    buffer.end = std::max(buffer.start, lastUse(buffer.value));
  }

  // Linear scan: at each step place what it defines, then free what it read
  // for the last time. A value read by step s and one defined by step s are
  // both live during s, so a step never writes over its own inputs.
  SmallVector<SmallVector<size_t>> defined(steps.size() + 1),
      dying(steps.size() + 2);
  for (auto [index, buffer] : llvm::enumerate(buffers)) {
    defined[buffer.start + 1].push_back(index);
    dying[buffer.end + 1].push_back(index);
  }
  ArenaAllocator arena;
  for (size_t slot = 0; slot < defined.size(); ++slot) {
    for (size_t index : defined[slot])
      buffers[index].offset = arena.allocate(buffers[index].bytes);
    for (size_t index : dying[slot])
      arena.release(buffers[index].offset, buffers[index].bytes);
  }
  writePlan(arena.size());
  return success();
}

//===----------------------------------------------------------------------===//
// --moec-plan-buffers
//===----------------------------------------------------------------------===//

struct PlanBuffersPass : moec::impl::PlanBuffersPassBase<PlanBuffersPass> {
  using Base::Base;

  void runOnOperation() override {
    func::FuncOp func = getOperation();
    if (func.isExternal())
      return;
    if (maxTokens < 1) {
      func.emitOpError("expected `max-tokens` >= 1, but got ")
          << int64_t(maxTokens);
      return signalPassFailure();
    }
    if (failed(Planner(func, maxTokens).run()))
      signalPassFailure();
  }
};

} // namespace
