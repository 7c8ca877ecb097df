//===- RaiseAttentionPatterns.cpp - ONNX attention to moe -------*- C++ -*-===//
//
// Raises scaled-dot-product attention written in standard ops over the
// tokens of one sequence, heads first: Transpose q/k/v to [heads, T, D],
// repeat key/value heads for GQA (Unsqueeze, Expand, Reshape), MatMul, scale,
// add a causal mask (Trilu of a -inf fill), Softmax, MatMul with v and
// Transpose back to [T, heads, D]. The whole chain becomes `moe.attention`.
//
//===----------------------------------------------------------------------===//

#include "importers/onnx/OnnxPatterns.h"

using namespace mlir;
using namespace mlir::moec;
using namespace mlir::moec::onnx_match;
using onnx_ir::NodeOp;

namespace {

/// A tokens-first `[T, heads, D]` tensor moved heads-first by a Transpose
/// with `perm`, with its heads repeated `repeat` times (GQA).
struct HeadsFirst {
  Value tokensFirst;
  int64_t repeat = 1;
};

std::optional<HeadsFirst> matchHeadsFirst(Value value, ArrayRef<int64_t> perm) {
  HeadsFirst result;
  Value t = skipIdentity(value);
  if (NodeOp reshape = getNode(t, "Reshape")) {
    NodeOp expand = getNode(reshape.getInputOrNull(0), "Expand");
    NodeOp unsqueeze =
        expand ? getNode(expand.getInputOrNull(0), "Unsqueeze") : NodeOp();
    auto axes = unsqueeze ? getAxes(unsqueeze, 1, 13) : std::nullopt;
    RankedTensorType expanded =
        getRanked(expand ? expand.getResult(0) : Value());
    if (!unsqueeze || axes != SmallVector<int64_t>{1} || !expanded ||
        expanded.getRank() != 4 ||
        ShapedType::isDynamic(expanded.getDimSize(1)))
      return std::nullopt;
    result.repeat = expanded.getDimSize(1);
    t = unsqueeze.getInputOrNull(0);
  }
  NodeOp transpose = getNode(t, "Transpose");
  if (!transpose ||
      getIntsAttr(transpose, "perm") != SmallVector<int64_t>(perm))
    return std::nullopt;
  result.tokensFirst = transpose.getInputOrNull(0);
  RankedTensorType type = getRankedFloat(result.tokensFirst);
  if (!type || type.getRank() != 3)
    return std::nullopt;
  return result;
}

/// A causal mask: `Trilu(fill, k = 1, upper = 1)` of a very negative fill,
/// which is -inf strictly above the diagonal and 0 elsewhere.
bool isCausalMask(Value value) {
  NodeOp trilu = getNode(value, "Trilu");
  if (!trilu || getIntAttr(trilu, "upper", 1) != 1 ||
      getInts(trilu.getInputOrNull(1)) != SmallVector<int64_t>{1})
    return false;
  Value fill = trilu.getInputOrNull(0);
  std::optional<double> filler;
  if (NodeOp constant = getNode(fill, "ConstantOfShape")) {
    auto attr =
        dyn_cast_or_null<DenseElementsAttr>(constant.getNodeAttr("value"));
    if (attr && attr.getNumElements() == 1 &&
        isa<FloatType>(attr.getElementType()))
      filler = (*attr.value_begin<APFloat>()).convertToDouble();
  } else if (NodeOp expand = getNode(fill, "Expand")) {
    filler = getScalar(expand.getInputOrNull(0));
  }
  return filler && *filler <= -1e4;
}

struct RaiseAttention : OnnxNodePattern {
  RaiseAttention(MLIRContext *context, OnnxFailureReasons *reasons)
      : OnnxNodePattern(context, "", "Softmax", 1, kAnyOpset, reasons,
                        /*maxResults=*/1, /*benefit=*/2) {}

  LogicalResult rewriteNode(NodeOp softmax, PatternRewriter &rewriter,
                            std::string &why) const override {
    why = "Softmax has no moe equivalent outside attention, and this one is "
          "not part of a recognised attention subgraph: ";
    auto fail = [&](const Twine &message) {
      why += message.str();
      return failure();
    };
    RankedTensorType scoresType = getRanked(softmax.getInputOrNull(0));
    int64_t axis =
        getIntAttr(softmax, "axis", softmax.getVersion() < 13 ? 1 : -1);
    if (!scoresType || scoresType.getRank() != 3 || (axis != -1 && axis != 2))
      return fail("it is not over the last axis of [heads, T, T] scores");

    Value scores = softmax.getInputOrNull(0);
    bool causal = false;
    if (NodeOp add = getNode(scores, "Add")) {
      for (int i = 0; i < 2 && !causal; ++i)
        if (isCausalMask(add.getInputOrNull(i))) {
          causal = true;
          scores = add.getInputOrNull(1 - i);
        }
      if (!causal)
        return fail("the scores are added to something other than a causal "
                    "mask (Trilu of a -inf fill, k = 1)");
    }
    double scale = 1.0;
    NodeOp qk = getNode(scores, "MatMul");
    if (NodeOp mul = getNode(scores, "Mul")) {
      for (int i = 0; i < 2 && !qk; ++i)
        if (std::optional<double> c = getScalar(mul.getInputOrNull(i))) {
          scale = *c;
          qk = getNode(mul.getInputOrNull(1 - i), "MatMul");
        }
    } else if (NodeOp div = getNode(scores, "Div")) {
      if (std::optional<double> c = getScalar(div.getInputOrNull(1));
          c && *c != 0) {
        scale = 1.0 / *c;
        qk = getNode(div.getInputOrNull(0), "MatMul");
      }
    }
    if (!qk || !(scale > 0))
      return fail("the scores are not MatMul(q, k) times a positive scalar");
    auto q = matchHeadsFirst(qk.getInputOrNull(0), {1, 0, 2});
    auto k = matchHeadsFirst(qk.getInputOrNull(1), {1, 2, 0});
    if (!q || q->repeat != 1 || !k)
      return fail("q and k are not [T, heads, D] tensors transposed to "
                  "[heads, T, D] and [heads, D, T]");

    Value probs = softmax.getResult(0);
    auto pv = probs.hasOneUse() ? dyn_cast<NodeOp>(*probs.getUsers().begin())
                                : NodeOp();
    if (!isOp(pv, "MatMul") || pv.getInputOrNull(0) != probs)
      return fail("the probabilities are not multiplied with v");
    auto v = matchHeadsFirst(pv.getInputOrNull(1), {1, 0, 2});
    Value out = pv.getResult(0);
    auto back =
        out.hasOneUse() ? dyn_cast<NodeOp>(*out.getUsers().begin()) : NodeOp();
    if (!v || !isOp(back, "Transpose") || back.getNumResults() != 1 ||
        getIntsAttr(back, "perm") != SmallVector<int64_t>{1, 0, 2})
      return fail("v is not a transposed [T, heads, D] tensor, or the "
                  "output is not transposed back to [T, heads, D]");

    auto qType = getRankedFloat(q->tokensFirst);
    auto kType = getRankedFloat(k->tokensFirst);
    auto vType = getRankedFloat(v->tokensFirst);
    int64_t heads = qType.getDimSize(1), kvHeads = kType.getDimSize(1);
    if (kType.getDimSize(2) != qType.getDimSize(2) ||
        vType.getDimSize(1) != kvHeads || kvHeads * k->repeat != heads ||
        kvHeads * v->repeat != heads)
      return fail("the heads of q, k and v do not match (GQA repeats key and "
                  "value heads to the query heads)");
    auto resultType =
        RankedTensorType::get({qType.getDimSize(0), heads, vType.getDimSize(2)},
                              qType.getElementType());
    std::string detail;
    if (!canReplaceWith(back.getResult(0), resultType, detail))
      return fail(detail);
    // v may be computed after the Softmax; the output Transpose follows all.
    rewriter.setInsertionPoint(back);
    auto attention = moe::AttentionOp::create(
        rewriter, back.getLoc(), resultType, q->tokensFirst, k->tokensFirst,
        v->tokensFirst, rewriter.getF64FloatAttr(scale),
        causal ? rewriter.getUnitAttr() : UnitAttr());
    rewriter.replaceOp(back, attention.getResult());
    return success();
  }
};

} // namespace

void mlir::moec::populateOnnxRaiseAttentionPatterns(
    RewritePatternSet &patterns, OnnxFailureReasons *reasons) {
  patterns.add<RaiseAttention>(patterns.getContext(), reasons);
}
