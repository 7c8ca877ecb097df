//===- UseKvCache.cpp - Attention over a paged KV cache ---------*- C++ -*-===//
//
// `--moec-use-kv-cache`: turns the stateless forward function into one
// generation step. Each causal `moe.attention` becomes a
// `moe.paged_attention` that writes its rows' K/V into the layer's cache
// state and attends over each row's sequence; the function gets the rows'
// slots, the page table and the caches as arguments (docs/generation.md).
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"
#include "passes/WeightExprs.h"

#include "mlir/IR/Builders.h"
#include "llvm/Support/MathExtras.h"

namespace mlir::moec {
#define GEN_PASS_DEF_USEKVCACHEPASS
#include "passes/Passes.h.inc"
} // namespace mlir::moec

using namespace mlir;
using namespace mlir::moec;

namespace {

/// The argument named `name` (`moe.name`), or null.
BlockArgument findNamedArgument(func::FuncOp func, StringRef name) {
  for (BlockArgument arg : func.getArguments())
    if (auto attr =
            func.getArgAttrOfType<StringAttr>(arg.getArgNumber(), "moe.name");
        attr && attr.getValue() == name)
      return arg;
  return {};
}

struct UseKvCachePass : moec::impl::UseKvCachePassBase<UseKvCachePass> {
  using Base::Base;

  void runOnOperation() override {
    func::FuncOp func = getOperation();
    if (func.isExternal())
      return;
    if (failed(rewrite(func)))
      signalPassFailure();
  }

  LogicalResult rewrite(func::FuncOp func) {
    SmallVector<moe::AttentionOp> attentions;
    func.walk([&](moe::AttentionOp op) { attentions.push_back(op); });
    if (attentions.empty())
      return success();
    if (findNamedArgument(func, "slots") ||
        findNamedArgument(func, "page_table"))
      return func.emitOpError("already uses a KV cache (it has a `slots` or "
                              "`page_table` argument)");
    MLIRContext *context = func.getContext();
    OpBuilder b(context);
    Type element;
    if (cacheType == "bf16")
      element = b.getBF16Type();
    else if (cacheType == "f32")
      element = b.getF32Type();
    else
      return func.emitOpError("unsupported KV cache element type '")
             << cacheType << "' (supported: bf16, f32)";
    if (pageTokens < 1 || maxSequences < 1)
      return func.emitOpError("expected `page-tokens` and `max-sequences` "
                              ">= 1, but got ")
             << int64_t(pageTokens) << " and " << int64_t(maxSequences);
    int64_t longest = maxContext;
    if (longest == 0)
      if (auto module = func->getParentOfType<ModuleOp>())
        if (auto attr = module->getAttrOfType<IntegerAttr>("moe.max_positions"))
          longest = attr.getInt();
    if (longest < 1)
      return func.emitOpError("needs the longest sequence for its page table: "
                              "set `max-context`, or import a model that "
                              "records `moe.max_positions`");
    int64_t maxPages = llvm::divideCeil(longest, int64_t(pageTokens));
    // The page table is an arena buffer; keep it within int32 entries.
    if (maxPages > (int64_t(1) << 31) / maxSequences)
      return func.emitOpError("a page table of ")
             << int64_t(maxSequences) << " x " << maxPages
             << " entries is too large";
    BlockArgument positions = findNamedArgument(func, "positions");
    if (!positions)
      return func.emitOpError("needs an argument named `positions` to use a "
                              "KV cache");

    Location loc = func.getLoc();
    auto name = [&](StringRef text) {
      return b.getDictionaryAttr(
          b.getNamedAttr("moe.name", b.getStringAttr(text)));
    };
    auto append = [&](Type type, DictionaryAttr attrs) -> BlockArgument {
      unsigned index = func.getNumArguments();
      if (failed(func.insertArgument(index, type, attrs, loc)))
        return {};
      return func.getArgument(index);
    };
    BlockArgument slots =
        append(RankedTensorType::get({ShapedType::kDynamic}, b.getI32Type()),
               name("slots"));
    BlockArgument table =
        append(RankedTensorType::get({maxSequences, maxPages}, b.getI32Type()),
               name("page_table"));
    if (!slots || !table)
      return func.emitOpError("cannot add the KV cache arguments");

    for (auto [layer, op] : llvm::enumerate(attentions)) {
      if (!op.getCausal())
        return op.emitOpError("cannot use a KV cache: the attention is not "
                              "causal");
      auto cacheOf = [&](Value rows, StringRef which) -> BlockArgument {
        auto type = cast<RankedTensorType>(rows.getType());
        auto cache =
            RankedTensorType::get({ShapedType::kDynamic, pageTokens,
                                   type.getDimSize(1), type.getDimSize(2)},
                                  element);
        std::string text = ("kv_cache." + Twine(layer) + "." + which).str();
        return append(cache,
                      b.getDictionaryAttr(
                          {b.getNamedAttr("moe.name", b.getStringAttr(text)),
                           b.getNamedAttr(moe::MoEDialect::getKvCacheAttrName(),
                                          b.getUnitAttr())}));
      };
      BlockArgument kCache = cacheOf(op.getK(), "k");
      BlockArgument vCache = cacheOf(op.getV(), "v");
      if (!kCache || !vCache)
        return op.emitOpError("cannot add the KV cache arguments");
      b.setInsertionPoint(op);
      auto paged = moe::PagedAttentionOp::create(
          b, op.getLoc(), op.getType(), op.getQ(), op.getK(), op.getV(),
          positions, slots, table, kCache, vCache, op.getScaleAttr(),
          b.getI64IntegerAttr(int64_t(layer)));
      op.getResult().replaceAllUsesWith(paged.getResult());
      op.erase();
    }
    return selectLogitsRows(
        func,
        append(RankedTensorType::get({ShapedType::kDynamic}, b.getI32Type()),
               name("logits_rows")));
  }

  /// Only the rows that sample need logits: the op producing the function's
  /// first result (the lm_head) reads its per-row operands through
  /// `moe.select_rows` of the argument `logitsRows`.
  LogicalResult selectLogitsRows(func::FuncOp func, BlockArgument logitsRows) {
    if (!logitsRows)
      return func.emitOpError("cannot add the `logits_rows` argument");
    auto ret = cast<func::ReturnOp>(func.getBody().front().getTerminator());
    Operation *head =
        ret.getNumOperands() ? ret.getOperand(0).getDefiningOp() : nullptr;
    if (!head || head->getNumResults() != 1)
      return func.emitOpError("needs its logits computed by one op to select "
                              "the rows that need them");
    OpBuilder b(head);
    for (OpOperand &operand : head->getOpOperands()) {
      auto type = dyn_cast<RankedTensorType>(operand.get().getType());
      if (!type || type.getRank() == 0 || !type.isDynamicDim(0) ||
          isWeightExpr(operand.get()))
        continue;
      operand.set(moe::SelectRowsOp::create(b, head->getLoc(), type,
                                            operand.get(), logitsRows)
                      .getResult());
    }
    return success();
  }
};

} // namespace
