//===- UseKvCache.cpp - Attention over a paged KV cache ---------*- C++ -*-===//
//
// `--moec-use-kv-cache`: turns the stateless forward function into one
// generation step. Each causal `moe.attention` becomes a
// `moe.paged_attention` that writes its rows' K/V into the layer's cache
// state and attends over each row's sequence; DeepSeek's multi-head latent
// attention, recognised from its ops and the `attn_kv_b` weight role,
// becomes a `moe.paged_mla_attention` that caches the compressed latent
// instead. The function gets the rows' slots, the page table and the caches
// as arguments (docs/generation.md).
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"
#include "passes/Roles.h"
#include "passes/WeightExprs.h"

#include "mlir/IR/Builders.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
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

/// The operands of DeepSeek's MLA in the expanded form the importer builds
/// (importers/hf/HFImporter.cpp `mlaAttention`):
///
///   q   = concat(q_nope, q_rope)                  [T, H, Dn + Dr]
///   kvb = reshape(latent x kv_b^T)                [T, H, Dn + Dv]
///   k   = concat(slice(kvb, 0), expand(k_rope))   [T, H, Dn + Dr]
///   v   = slice(kvb, Dn)                          [T, H, Dv]
///
/// where kv_b's weights have the role `attn_kv_b`.
struct MlaOperands {
  Value qNope, qRope, latent, kRope;
  /// `latent`'s GEMM: its weight is `kv_b`, dequantized for an FP8 GEMM.
  Operation *gemm = nullptr;
};

/// The high-precision value `x` is an FP8 quantization of, or null.
Value quantizedSource(Value x) {
  Operation *def = x.getDefiningOp();
  if (auto quantize = dyn_cast_or_null<moe::QuantizeOp>(def))
    return quantize.getX();
  if (auto fused = dyn_cast_or_null<moe::FusedQuantizeOpInterface>(def);
      fused && fused.getQuantizedResult() == x)
    return fused.getQuantizeSource();
  return {};
}

/// True when `w` is computed from `attn_kv_b` weights alone.
bool isKvBWeight(Value w) {
  SmallVector<moe::WeightOp> sources = getWeightSources(w);
  return !sources.empty() && llvm::all_of(sources, [](moe::WeightOp weight) {
    return getWeightRole(weight) == Role::attn_kv_b;
  });
}

/// Matches `op` against DeepSeek's expanded MLA; none when it is other
/// attention.
std::optional<MlaOperands> matchMla(moe::AttentionOp op) {
  auto lastDimConcat = [](Value v) -> moe::ConcatOp {
    auto concat = v.getDefiningOp<moe::ConcatOp>();
    if (!concat || concat.getInputs().size() != 2 || concat.getConcatDim() != 2)
      return {};
    return concat;
  };
  moe::ConcatOp q = lastDimConcat(op.getQ()), k = lastDimConcat(op.getK());
  auto v = op.getV().getDefiningOp<moe::SliceOp>();
  if (!q || !k || !v)
    return std::nullopt;
  auto kNope = k.getInputs()[0].getDefiningOp<moe::SliceOp>();
  auto expand = k.getInputs()[1].getDefiningOp<moe::ExpandOp>();
  if (!kNope || !expand || kNope.getX() != v.getX() || kNope.getOffset() != 0)
    return std::nullopt;
  auto shape = [](Value value) {
    return cast<RankedTensorType>(value.getType()).getShape();
  };
  MlaOperands mla;
  mla.qNope = q.getInputs()[0];
  mla.qRope = q.getInputs()[1];
  mla.kRope = expand.getX();
  int64_t nope = shape(mla.qNope)[2];
  if (shape(mla.kRope).size() != 3 || shape(mla.kRope)[1] != 1 ||
      shape(kNope.getResult())[2] != nope ||
      shape(mla.qRope)[2] != shape(mla.kRope)[2] || v.getOffset() != nope ||
      shape(v.getX())[2] != nope + shape(v.getResult())[2])
    return std::nullopt;
  // kv_b's rows are each query head's key then value rows.
  auto reshape = v.getX().getDefiningOp<moe::ReshapeOp>();
  if (!reshape || shape(reshape.getX()).size() != 2 ||
      shape(v.getResult())[1] != shape(mla.qNope)[1])
    return std::nullopt;
  Operation *gemm = reshape.getX().getDefiningOp();
  if (auto matmul = dyn_cast_or_null<moe::MatmulOp>(gemm)) {
    if (matmul.getBias() || matmul.getEpilogue() != moe::Epilogue::none ||
        !isKvBWeight(matmul.getW()))
      return std::nullopt;
    mla.latent = matmul.getX();
  } else if (auto fp8 = dyn_cast_or_null<moe::Fp8MatmulOp>(gemm)) {
    if (fp8.getBias() || fp8.getEpilogue() != moe::Epilogue::none ||
        !isKvBWeight(fp8.getW()))
      return std::nullopt;
    mla.latent = quantizedSource(fp8.getX());
  } else {
    return std::nullopt;
  }
  if (!mla.latent || shape(mla.latent).size() != 2)
    return std::nullopt;
  mla.gemm = gemm;
  return mla;
}

/// The up-projection `kv_b` of `gemm`, `[H * (Dn + Dv), R]`, as a weight
/// value: the GEMM's weight, or an FP8 GEMM's weight dequantized with its
/// block scales (the absorbed products need the real weight, not codes).
Value kvBWeight(OpBuilder &b, Operation *gemm) {
  if (auto matmul = dyn_cast<moe::MatmulOp>(gemm))
    return matmul.getW();
  auto fp8 = cast<moe::Fp8MatmulOp>(gemm);
  auto type = cast<RankedTensorType>(fp8.getW().getType());
  return moe::DequantizeOp::create(
      b, fp8.getLoc(), RankedTensorType::get(type.getShape(), b.getF32Type()),
      fp8.getW(), fp8.getWScale(), fp8.getWeightSchemeAttr());
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
      auto cacheOf = [&](int64_t heads, int64_t width,
                         StringRef which) -> BlockArgument {
        auto cache = RankedTensorType::get(
            {ShapedType::kDynamic, pageTokens, heads, width}, element);
        std::string text = ("kv_cache." + Twine(layer) + "." + which).str();
        return append(cache,
                      b.getDictionaryAttr(
                          {b.getNamedAttr("moe.name", b.getStringAttr(text)),
                           b.getNamedAttr(moe::MoEDialect::getKvCacheAttrName(),
                                          b.getUnitAttr())}));
      };
      auto dims = [](Value value) {
        return cast<RankedTensorType>(value.getType()).getShape();
      };
      b.setInsertionPoint(op);
      if (std::optional<MlaOperands> mla = matchMla(op)) {
        // One latent cache: per position the latent and the rotary key.
        BlockArgument cache =
            cacheOf(1, dims(mla->latent)[1] + dims(mla->kRope)[2], "latent");
        if (!cache)
          return op.emitOpError("cannot add the KV cache arguments");
        Value kvB = kvBWeight(b, mla->gemm);
        auto paged = moe::PagedMlaAttentionOp::create(
            b, op.getLoc(), op.getType(), mla->qNope, mla->qRope, mla->latent,
            mla->kRope, kvB, positions, slots, table, cache, op.getScaleAttr(),
            b.getI64IntegerAttr(int64_t(layer)));
        op.getResult().replaceAllUsesWith(paged.getResult());
        op.erase();
        continue;
      }
      BlockArgument kCache =
          cacheOf(dims(op.getK())[1], dims(op.getK())[2], "k");
      BlockArgument vCache =
          cacheOf(dims(op.getV())[1], dims(op.getV())[2], "v");
      if (!kCache || !vCache)
        return op.emitOpError("cannot add the KV cache arguments");
      auto paged = moe::PagedAttentionOp::create(
          b, op.getLoc(), op.getType(), op.getQ(), op.getK(), op.getV(),
          positions, slots, table, kCache, vCache, op.getScaleAttr(),
          b.getI64IntegerAttr(int64_t(layer)));
      op.getResult().replaceAllUsesWith(paged.getResult());
      op.erase();
    }
    // What computed the MLA layers' expanded keys and values is dead now,
    // and nothing after this pass removes it before planning.
    for (Operation &op :
         llvm::make_early_inc_range(llvm::reverse(func.getBody().front())))
      if (isOpTriviallyDead(&op))
        op.erase();
    // Only a model whose first result is a GEMM of rows (the lm_head)
    // selects rows; anything else keeps computing every row.
    auto ret = cast<func::ReturnOp>(func.getBody().front().getTerminator());
    Operation *head =
        ret.getNumOperands() ? ret.getOperand(0).getDefiningOp() : nullptr;
    if (!isa_and_nonnull<moe::MatmulOp, moe::Fp8MatmulOp>(head))
      return success();
    return selectLogitsRows(
        head,
        append(RankedTensorType::get({ShapedType::kDynamic}, b.getI32Type()),
               name("logits_rows")));
  }

  /// Only the rows that sample need logits: `head`, the GEMM producing the
  /// function's first result (the lm_head), reads its per-row operands
  /// (the activation, and its scales for an FP8 GEMM) through
  /// `moe.select_rows` of the argument `logitsRows`.
  LogicalResult selectLogitsRows(Operation *head, BlockArgument logitsRows) {
    if (!logitsRows)
      return head->emitOpError("cannot add the `logits_rows` argument");
    OpBuilder b(head);
    for (OpOperand &operand : head->getOpOperands()) {
      auto type = dyn_cast<RankedTensorType>(operand.get().getType());
      if (!type || type.getRank() == 0 || !type.isDynamicDim(0) ||
          !isa<FloatType>(type.getElementType()) || isWeightExpr(operand.get()))
        continue;
      operand.set(moe::SelectRowsOp::create(b, head->getLoc(), type,
                                            operand.get(), logitsRows)
                      .getResult());
    }
    return success();
  }
};

} // namespace
