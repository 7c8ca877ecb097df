//===- RaiseMoEPatterns.cpp - ONNX MoE layers to moe.moe --------*- C++ -*-===//
//
// Raises the three forms an MoE layer takes in ONNX to one `moe.moe`: the
// standard-op block (router MatMul, Softmax or Sigmoid, optional correction
// bias and group limit, TopK, optional renormalisation and scaling, a dense
// [T, E] routing matrix, every expert, weighted sum), onnxruntime's
// `com.microsoft.MoE`, and `com.microsoft.QMoE` with FP8, 8- or 4-bit integer
// weights and the DeepSeek routing computed in the graph. Then folds a routed
// scaling factor and a shared expert into the raised op.
//
//===----------------------------------------------------------------------===//

#include "importers/onnx/OnnxPatterns.h"

#include "llvm/ADT/DenseSet.h"
#include "llvm/Support/FormatVariadic.h"

#include <cmath>
#include <functional>

using namespace mlir;
using namespace mlir::moec;
using namespace mlir::moec::onnx_match;
using mlir::moe::formatShape;
using onnx_ir::NodeOp;

//===----------------------------------------------------------------------===//
// Shared matchers
//===----------------------------------------------------------------------===//

std::optional<std::pair<Value, Value>> onnx_match::matchSwiGLU(Value value) {
  value = skipIdentity(value);
  if (auto siluMul = value.getDefiningOp<moe::SiluMulOp>())
    return std::make_pair(siluMul.getGate(), siluMul.getUp());
  NodeOp mul = getNode(value, "Mul");
  if (!mul || mul.getInputs().size() != 2)
    return std::nullopt;
  for (int i = 0; i < 2; ++i) {
    NodeOp silu = getNode(mul.getInputOrNull(i), "Mul");
    if (!silu || silu.getInputs().size() != 2)
      continue;
    for (int j = 0; j < 2; ++j) {
      NodeOp sigmoid = getNode(silu.getInputOrNull(j), "Sigmoid");
      Value gate = skipIdentity(silu.getInputOrNull(1 - j));
      if (sigmoid && gate && skipIdentity(sigmoid.getInputOrNull(0)) == gate)
        return std::make_pair(gate, mul.getInputOrNull(1 - i));
    }
  }
  return std::nullopt;
}

std::optional<DenseMLP> onnx_match::matchDenseMLP(Value out, Value x) {
  NodeOp down = getNode(out, "MatMul");
  if (!down || down.getInputs().size() != 2)
    return std::nullopt;
  std::optional<WeightSource> w2 = matchMatMulWeight(down.getInputOrNull(1));
  auto gateUp = matchSwiGLU(down.getInputOrNull(0));
  if (!w2 || !gateUp)
    return std::nullopt;
  auto projection = [&](Value value) -> std::optional<WeightSource> {
    NodeOp matmul = getNode(value, "MatMul");
    if (!matmul || matmul.getInputs().size() != 2 ||
        skipIdentity(matmul.getInputOrNull(0)) != skipIdentity(x))
      return std::nullopt;
    return matchMatMulWeight(matmul.getInputOrNull(1));
  };
  std::optional<WeightSource> w1 = projection(gateUp->first);
  std::optional<WeightSource> w3 = projection(gateUp->second);
  if (!w1 || !w3)
    return std::nullopt;
  return DenseMLP{*w1, *w3, *w2};
}

namespace {

/// The shape of `source` in the moe layout.
SmallVector<int64_t> layoutShape(const WeightSource &source) {
  SmallVector<int64_t> shape(
      cast<RankedTensorType>(source.init.getType()).getShape());
  if (source.transpose && shape.size() >= 2)
    std::swap(shape[shape.size() - 1], shape[shape.size() - 2]);
  return shape;
}

/// The `k` of a TopK node (an input from opset 10, an attribute before).
std::optional<int64_t> getTopK(NodeOp topk) {
  if (topk.getVersion() < 10)
    return getIntAttr(topk, "k", -1);
  std::optional<SmallVector<int64_t>> k = getInts(topk.getInputOrNull(1));
  if (!k || k->size() != 1)
    return std::nullopt;
  return (*k)[0];
}

/// Whether a TopK selects the largest values along the last axis.
bool isLargestLastAxis(NodeOp topk) {
  int64_t axis = getIntAttr(topk, "axis", -1);
  RankedTensorType type = getRanked(topk.getInputOrNull(0));
  return type && (axis == -1 || axis == type.getRank() - 1) &&
         getIntAttr(topk, "largest", 1) == 1;
}

/// Whether `axis` names the last dimension of a rank-`rank` tensor.
bool isLast(int64_t axis, int64_t rank) {
  return axis == -1 || axis == rank - 1;
}

/// What the router in front of an MoE layer computes.
struct Router {
  Value x;
  WeightSource gate;
  int64_t experts = 0;
  moe::ScoringFunc scoring = moe::ScoringFunc::softmax;
  /// The result of the Softmax or Sigmoid (null when the op scores itself).
  Value scores;
  std::optional<WeightSource> bias;
  int64_t nGroup = 1, topkGroup = 1;
  moe::GroupScore groupScore = moe::GroupScore::none;
};

/// `logits = x · Wᵀ` from a MatMul or a bias-free Gemm with a weight
/// initializer.
LogicalResult matchLogits(Value logits, Router &router, std::string &why) {
  std::optional<WeightSource> gate;
  if (NodeOp matmul = getNode(logits, "MatMul")) {
    router.x = matmul.getInputOrNull(0);
    gate = matchMatMulWeight(matmul.getInputOrNull(1));
  } else if (NodeOp gemm = getNode(logits, "Gemm")) {
    if (gemm.getInputOrNull(2) || getIntAttr(gemm, "transA", 0) != 0 ||
        getFloatAttr(gemm, "alpha", 1.0) != 1.0) {
      why = "the router Gemm has a bias, alpha != 1 or transA";
      return failure();
    }
    router.x = gemm.getInputOrNull(0);
    gate = getIntAttr(gemm, "transB", 0)
               ? matchPlainWeight(gemm.getInputOrNull(1))
               : matchMatMulWeight(gemm.getInputOrNull(1));
  }
  if (!gate) {
    why = "the router logits do not come from a MatMul or Gemm of the input "
          "with a weight initializer";
    return failure();
  }
  RankedTensorType x = getRankedFloat(router.x);
  SmallVector<int64_t> shape = layoutShape(*gate);
  if (!x || x.getRank() != 2 || shape.size() != 2 ||
      shape[1] != x.getDimSize(1)) {
    why = "the router input is not a [tokens, hidden] float tensor matching "
          "the gate weight " +
          formatShape(shape);
    return failure();
  }
  router.gate = *gate;
  router.experts = shape[0];
  return success();
}

/// `scores = Softmax(logits)` (last axis) or `Sigmoid(logits)`.
LogicalResult matchScores(Value scores, Router &router, std::string &why) {
  NodeOp node = getNode(scores, "Softmax");
  if (node) {
    RankedTensorType type = getRanked(node.getInputOrNull(0));
    if (!type || !isLast(getIntAttr(node, "axis", -1), type.getRank())) {
      why = "the router Softmax is not over the experts (last) axis";
      return failure();
    }
    router.scoring = moe::ScoringFunc::softmax;
  } else if ((node = getNode(scores, "Sigmoid"))) {
    router.scoring = moe::ScoringFunc::sigmoid;
  } else {
    why = "the router scores come from neither Softmax nor Sigmoid";
    return failure();
  }
  router.scores = skipIdentity(scores);
  return matchLogits(node.getInputOrNull(0), router, why);
}

/// The group-limited selection mask of DeepSeek's `noaux_tc` and
/// `group_limited_greedy`: `cond` marks the experts of the best groups of
/// the selection scores `selection`.
LogicalResult matchGroupMask(Value cond, Value selection, Router &router,
                             std::string &why) {
  why = "the router's Where condition is not a group-limited selection mask";
  Value mask = cond;
  if (NodeOp cast = getNode(mask, "Cast"))
    mask = cast.getInputOrNull(0);
  else if (NodeOp greater = getNode(mask, "Greater");
           greater && getScalar(greater.getInputOrNull(1)) == 0.0)
    mask = greater.getInputOrNull(0);
  else if (NodeOp equal = getNode(mask, "Equal");
           equal && getScalar(equal.getInputOrNull(1)) == 1.0)
    mask = equal.getInputOrNull(0);
  NodeOp reshape = getNode(mask, "Reshape");
  NodeOp expand =
      reshape ? getNode(reshape.getInputOrNull(0), "Expand") : NodeOp();
  NodeOp unsqueeze =
      expand ? getNode(expand.getInputOrNull(0), "Unsqueeze") : NodeOp();
  if (!unsqueeze)
    return failure();
  Value groupMask = unsqueeze.getInputOrNull(0);

  // The [T, G] mask of kept groups: a scatter of ones or a one-hot sum.
  Value groupIndices;
  if (NodeOp scatter = getNode(groupMask, "ScatterElements")) {
    groupIndices = scatter.getInputOrNull(1);
  } else if (NodeOp reduce = getNode(groupMask, "ReduceSum")) {
    if (NodeOp onehot = getNode(reduce.getInputOrNull(0), "OneHot"))
      groupIndices = onehot.getInputOrNull(0);
  } else if (NodeOp reduceMax = getNode(groupMask, "ReduceMax")) {
    if (NodeOp onehot = getNode(reduceMax.getInputOrNull(0), "OneHot"))
      groupIndices = onehot.getInputOrNull(0);
  }
  NodeOp groupTopk = groupIndices ? getNode(groupIndices, "TopK") : NodeOp();
  if (!groupTopk || groupTopk.getNumResults() != 2 ||
      groupTopk.getResult(1) != skipIdentity(groupIndices) ||
      !isLargestLastAxis(groupTopk))
    return failure();
  std::optional<int64_t> topkGroup = getTopK(groupTopk);
  if (!topkGroup)
    return failure();

  // Group scores: the sum of each group's top 2, or its max.
  Value grouped;
  Value groupScores = groupTopk.getInputOrNull(0);
  moe::GroupScore groupScore;
  if (NodeOp sum = getNode(groupScores, "ReduceSum")) {
    NodeOp top2 = getNode(sum.getInputOrNull(0), "TopK");
    if (!top2 || top2.getResult(0) != skipIdentity(sum.getInputOrNull(0)) ||
        getTopK(top2) != 2 || !isLargestLastAxis(top2))
      return failure();
    grouped = top2.getInputOrNull(0);
    groupScore = moe::GroupScore::top2_sum;
  } else if (NodeOp max = getNode(groupScores, "ReduceMax")) {
    grouped = max.getInputOrNull(0);
    groupScore = moe::GroupScore::max;
  } else {
    return failure();
  }
  NodeOp groupReshape = getNode(grouped, "Reshape");
  RankedTensorType groupedType = getRanked(grouped);
  if (!groupReshape || !groupedType || groupedType.getRank() != 3 ||
      skipIdentity(groupReshape.getInputOrNull(0)) != skipIdentity(selection) ||
      ShapedType::isDynamic(groupedType.getDimSize(1))) {
    why = "the group scores do not come from the router's selection scores "
          "reshaped to [tokens, groups, experts per group]";
    return failure();
  }
  router.nGroup = groupedType.getDimSize(1);
  router.topkGroup = *topkGroup;
  router.groupScore = groupScore;
  why.clear();
  return success();
}

/// The selection scores a TopK (or QMoE) picks experts from: scores, plus an
/// optional correction bias, optionally masked to the best groups.
LogicalResult matchSelection(Value selection, Router &router,
                             std::string &why) {
  Value biased = selection;
  if (NodeOp where = getNode(selection, "Where")) {
    std::optional<double> fill = getScalar(where.getInputOrNull(2));
    if (!fill || !(std::isinf(*fill) && *fill < 0)) {
      why = "the router masks unselected groups with a value other than "
            "-inf, which can change the selection";
      return failure();
    }
    biased = where.getInputOrNull(1);
    if (failed(matchGroupMask(where.getInputOrNull(0), biased, router, why)))
      return failure();
  }
  Value scores = biased;
  if (NodeOp add = getNode(biased, "Add")) {
    for (int i = 0; i < 2; ++i) {
      std::optional<WeightSource> bias =
          matchPlainWeight(add.getInputOrNull(i));
      if (bias && layoutShape(*bias).size() == 1 && !bias->transpose) {
        router.bias = bias;
        scores = add.getInputOrNull(1 - i);
        break;
      }
    }
    if (!router.bias) {
      why = "the router adds something other than a 1-d bias initializer to "
            "its scores";
      return failure();
    }
  }
  if (failed(matchScores(scores, router, why)))
    return failure();
  if (router.bias && layoutShape(*router.bias)[0] != router.experts) {
    why = "the router bias does not have one entry per expert";
    return failure();
  }
  if (router.experts % router.nGroup != 0) {
    why = llvm::formatv("{0} experts do not split into {1} groups",
                        router.experts, router.nGroup);
    return failure();
  }
  return success();
}

/// The routing attribute of `router` with top-`k`.
moe::RoutingAttr makeRouting(MLIRContext *context, const Router &router,
                             int64_t k, bool normalize, double scale) {
  return moe::RoutingAttr::get(context, router.scoring, k, router.nGroup,
                               router.topkGroup, router.groupScore, normalize,
                               APFloat(scale));
}

/// Checks `k` and the group limit against the number of experts.
LogicalResult checkRouting(const Router &router, int64_t k, std::string &why) {
  int64_t perGroup = router.experts / router.nGroup;
  if (k < 1 || k > router.experts || k > router.topkGroup * perGroup ||
      router.topkGroup > router.nGroup ||
      (router.groupScore == moe::GroupScore::top2_sum && perGroup < 2)) {
    why = llvm::formatv("top-{0} of {1} experts in {2} groups keeping {3} is "
                        "not a valid routing",
                        k, router.experts, router.nGroup, router.topkGroup);
    return failure();
  }
  return success();
}

//===----------------------------------------------------------------------===//
// The standard-op MoE block, rooted at the TopK over the experts
//===----------------------------------------------------------------------===//

/// The expert index `e` a node picks from the dense [T, E] routing weights,
/// and the [T, 1] value that holds it.
std::optional<std::pair<int64_t, Value>> matchPick(Operation *user,
                                                   Value dense) {
  auto node = dyn_cast<NodeOp>(user);
  if (!node || node.getInputs().empty() ||
      skipIdentity(node.getInputOrNull(0)) != dense)
    return std::nullopt;
  if (isOp(node, "Slice") && node.getVersion() >= 10) {
    auto starts = getInts(node.getInputOrNull(1));
    auto ends = getInts(node.getInputOrNull(2));
    auto axes = getInts(node.getInputOrNull(3));
    Value steps = node.getInputOrNull(4);
    if (!starts || !ends || !axes || starts->size() != 1 ||
        (*ends)[0] != (*starts)[0] + 1 || !isLast((*axes)[0], 2) ||
        (steps && getInts(steps) != SmallVector<int64_t>{1}))
      return std::nullopt;
    return std::make_pair((*starts)[0], node.getResult(0));
  }
  if (!isOp(node, "Gather") || getIntAttr(node, "axis", 0) != 1)
    return std::nullopt;
  auto index = getInts(node.getInputOrNull(1));
  RankedTensorType indexType = getRanked(node.getInputOrNull(1));
  if (!index || index->size() != 1 || !indexType)
    return std::nullopt;
  if (indexType.getRank() == 1)
    return std::make_pair((*index)[0], node.getResult(0));
  // A scalar index drops the axis; an Unsqueeze puts it back.
  Value picked = node.getResult(0);
  if (!picked.hasOneUse())
    return std::nullopt;
  auto unsqueeze = dyn_cast<NodeOp>(*picked.getUsers().begin());
  if (!isOp(unsqueeze, "Unsqueeze"))
    return std::nullopt;
  auto axes = getAxes(unsqueeze, 1, 13);
  if (!axes || axes->size() != 1 || !isLast((*axes)[0], 2))
    return std::nullopt;
  return std::make_pair((*index)[0], unsqueeze.getResult(0));
}

/// Follows Add and Sum nodes from `terms` (each used once) to the single
/// value that sums all of them.
Value findSum(ArrayRef<Value> terms) {
  llvm::SmallDenseSet<Value, 16> open(terms.begin(), terms.end());
  while (open.size() > 1) {
    bool progress = false;
    for (Value value : SmallVector<Value>(open.begin(), open.end())) {
      if (!open.contains(value) || !value.hasOneUse())
        continue;
      auto user = dyn_cast<NodeOp>(*value.getUsers().begin());
      if (!isOp(user, "Add") && !isOp(user, "Sum"))
        continue;
      llvm::SmallDenseSet<Value, 4> operands(user.getInputs().begin(),
                                             user.getInputs().end());
      if (operands.size() != user.getInputs().size() ||
          !llvm::all_of(operands, [&](Value v) { return open.contains(v); }))
        continue;
      for (Value operand : operands)
        open.erase(operand);
      open.insert(user.getResult(0));
      progress = true;
    }
    if (!progress)
      return {};
  }
  return *open.begin();
}

/// The dense [T, E] routing weights built from the top-k `indices` and
/// `weights`: ScatterElements into zeros, or a one-hot weighted sum.
Value matchDenseRouting(Value indices, Value weights) {
  for (Operation *user : weights.getUsers()) {
    auto node = dyn_cast<NodeOp>(user);
    if (isOp(node, "ScatterElements") &&
        skipIdentity(node.getInputOrNull(1)) == indices &&
        skipIdentity(node.getInputOrNull(2)) == weights &&
        isLast(getIntAttr(node, "axis", 0), 2)) {
      Value zeros = node.getInputOrNull(0);
      NodeOp fill = getNode(zeros, "ConstantOfShape");
      auto value =
          fill ? dyn_cast_or_null<DenseElementsAttr>(fill.getNodeAttr("value"))
               : DenseElementsAttr();
      bool zero = fill ? (!value || (value.getNumElements() == 1 &&
                                     isa<FloatType>(value.getElementType()) &&
                                     (*value.value_begin<APFloat>()).isZero()))
                       : getScalar(zeros) == 0.0;
      if (NodeOp expand = getNode(zeros, "Expand"))
        zero = getScalar(expand.getInputOrNull(0)) == 0.0;
      if (zero)
        return node.getResult(0);
    }
    if (isOp(node, "Unsqueeze") && node.getResult(0).hasOneUse()) {
      auto mul = dyn_cast<NodeOp>(*node.getResult(0).getUsers().begin());
      if (!isOp(mul, "Mul") || !mul.getResult(0).hasOneUse())
        continue;
      Value other = mul.getInputOrNull(0) == node.getResult(0)
                        ? mul.getInputOrNull(1)
                        : mul.getInputOrNull(0);
      NodeOp onehot = getNode(other, "OneHot");
      auto sum = dyn_cast<NodeOp>(*mul.getResult(0).getUsers().begin());
      if (!onehot || skipIdentity(onehot.getInputOrNull(0)) != indices ||
          !isLast(getIntAttr(onehot, "axis", -1), 3) ||
          getDoubles(onehot.getInputOrNull(2)) !=
              SmallVector<double>{0.0, 1.0} ||
          !isOp(sum, "ReduceSum") || getIntAttr(sum, "keepdims", 1) != 0 ||
          getAxes(sum, 1, 13) != SmallVector<int64_t>{1})
        continue;
      return sum.getResult(0);
    }
  }
  return {};
}

struct RaiseStandardMoE : OnnxNodePattern {
  RaiseStandardMoE(MLIRContext *context, OnnxFailureReasons *reasons)
      : OnnxNodePattern(context, "", "TopK", 1, kAnyOpset, reasons,
                        /*maxResults=*/2, /*benefit=*/2) {}

  LogicalResult rewriteNode(NodeOp topk, PatternRewriter &rewriter,
                            std::string &why) const override {
    why = "TopK has no moe equivalent outside an MoE router, and this one is "
          "not part of a recognised MoE block: ";
    std::string detail;
    auto fail = [&](const Twine &message) {
      why += message.str();
      return failure();
    };
    std::optional<int64_t> k = getTopK(topk);
    if (topk.getNumResults() != 2 || !k || !isLargestLastAxis(topk))
      return fail("k is not a constant or the TopK is not over the largest "
                  "values of the last axis");
    Router router;
    Value indices = topk.getResult(1);
    Value weights = topk.getResult(0);
    // TopK over the logits followed by a Softmax of the k values is a
    // softmax router with renormalised weights.
    NodeOp topkSoftmax = weights.hasOneUse()
                             ? dyn_cast<NodeOp>(*weights.getUsers().begin())
                             : NodeOp();
    if (!isOp(topkSoftmax, "Softmax") ||
        !isLast(getIntAttr(topkSoftmax, "axis", -1), 2) ||
        failed(matchLogits(topk.getInputOrNull(0), router, detail))) {
      topkSoftmax = {};
      router = Router();
      if (failed(matchSelection(topk.getInputOrNull(0), router, detail)))
        return fail(detail);
    }
    if (failed(checkRouting(router, *k, detail)))
      return fail(detail);

    // The weights are the unbiased scores at the selected experts.
    for (Operation *user : indices.getUsers()) {
      auto gather = dyn_cast<NodeOp>(user);
      if (isOp(gather, "GatherElements") && router.scores &&
          skipIdentity(gather.getInputOrNull(0)) == router.scores &&
          isLast(getIntAttr(gather, "axis", 0), 2))
        weights = gather.getResult(0);
    }
    bool biasedSelection = router.bias || router.nGroup > 1;
    if (biasedSelection && weights == topk.getResult(0))
      return fail("the selection is biased or group-limited, but the weights "
                  "are not gathered from the unbiased scores");

    // Optional renormalisation, then an optional scaling factor.
    bool normalize = false;
    double scale = 1.0;
    NodeOp div;
    if (topkSoftmax) {
      normalize = true;
      weights = topkSoftmax.getResult(0);
    }
    for (Operation *user : weights.getUsers())
      if (auto node = dyn_cast<NodeOp>(user);
          isOp(node, "Div") && node.getInputOrNull(0) == weights)
        div = node;
    if (div) {
      NodeOp sum = getNode(div.getInputOrNull(1), "ReduceSum");
      if (NodeOp eps = getNode(div.getInputOrNull(1), "Add"))
        sum = getNode(eps.getInputOrNull(0), "ReduceSum");
      auto axes = sum ? getAxes(sum, 1, 13) : std::nullopt;
      if (!sum || skipIdentity(sum.getInputOrNull(0)) != weights || !axes ||
          !isLastAxis(*axes, 2) || getIntAttr(sum, "keepdims", 1) != 1 ||
          !llvm::all_of(weights.getUsers(), [&](Operation *user) {
            return user == div || user == sum;
          }))
        return fail("the top-k weights are divided by something other than "
                    "their sum");
      normalize = true;
      weights = div.getResult(0);
    }
    if (weights.hasOneUse()) {
      auto mul = dyn_cast<NodeOp>(*weights.getUsers().begin());
      if (isOp(mul, "Mul")) {
        Value other = mul.getInputOrNull(0) == weights ? mul.getInputOrNull(1)
                                                       : mul.getInputOrNull(0);
        std::optional<double> factor = getScalar(other);
        if (factor && *factor > 0) {
          scale = *factor;
          weights = mul.getResult(0);
        }
      }
    }

    // The dense routing matrix and each expert's column of it.
    Value dense = matchDenseRouting(indices, weights);
    if (!dense)
      return fail("the top-k weights are not scattered into a dense [tokens, "
                  "experts] matrix (ScatterElements or OneHot)");
    SmallVector<Value> terms(router.experts);
    SmallVector<std::optional<DenseMLP>> experts(router.experts);
    for (Operation *user : dense.getUsers()) {
      auto pick = matchPick(user, dense);
      if (!pick || pick->first < 0 || pick->first >= router.experts ||
          terms[pick->first] || !pick->second.hasOneUse())
        return fail("the dense routing weights are used by something other "
                    "than one pick (Slice or Gather) per expert");
      auto mul = dyn_cast<NodeOp>(*pick->second.getUsers().begin());
      if (!isOp(mul, "Mul"))
        return fail("an expert's routing weight is not multiplied into its "
                    "output");
      Value output = mul.getInputOrNull(0) == pick->second
                         ? mul.getInputOrNull(1)
                         : mul.getInputOrNull(0);
      experts[pick->first] = matchDenseMLP(output, router.x);
      if (!experts[pick->first])
        return fail(llvm::formatv("expert {0} is not a SwiGLU MLP of the "
                                  "router's input with weight initializers",
                                  pick->first)
                        .str());
      terms[pick->first] = mul.getResult(0);
    }
    if (llvm::is_contained(terms, Value()))
      return fail("not every expert's routing weight is used");
    Value sum = findSum(terms);
    if (!sum)
      return fail("the weighted expert outputs are not summed by Add or Sum "
                  "nodes alone");

    // All experts must agree on their weights' types and orientation.
    auto sources = [&](auto member) {
      SmallVector<WeightSource> list;
      for (const std::optional<DenseMLP> &mlp : experts)
        list.push_back((*mlp).*member);
      return list;
    };
    SmallVector<WeightSource> gate = sources(&DenseMLP::gate);
    SmallVector<WeightSource> up = sources(&DenseMLP::up);
    SmallVector<WeightSource> down = sources(&DenseMLP::down);
    for (auto *list : {&gate, &up, &down})
      for (const WeightSource &source : *list)
        if (source.init.getType() != list->front().init.getType() ||
            source.transpose != list->front().transpose)
          return fail("the experts' weights differ in type or layout");

    if (!canReplaceWith(sum, getRanked(router.x), detail))
      return fail(detail);
    Location loc = sum.getLoc();
    if (Operation *last = sum.getDefiningOp())
      rewriter.setInsertionPoint(last);
    RankedTensorType xType = getRankedFloat(router.x);
    Value gateWeight = createWeight(rewriter, loc, router.gate);
    Value bias =
        router.bias ? createWeight(rewriter, loc, *router.bias) : Value();
    auto moeOp = moe::MoEOp::create(
        rewriter, loc, xType, router.x, gateWeight, bias,
        createStackedWeight(rewriter, loc, gate),
        createStackedWeight(rewriter, loc, up),
        createStackedWeight(rewriter, loc, down), Value(), Value(), Value(),
        Value(),
        makeRouting(rewriter.getContext(), router, *k, normalize, scale));
    rewriter.replaceAllUsesWith(sum, moeOp.getResult());
    return success();
  }
};

//===----------------------------------------------------------------------===//
// com.microsoft.MoE and com.microsoft.QMoE
//===----------------------------------------------------------------------===//

/// Checks the activation attributes of MoE/QMoE: plain SwiGLU, silu(gate) *
/// up, with no clamp and no sparse mixer.
LogicalResult checkSwiGLU(NodeOp node, std::string &why) {
  std::string activation = getStringAttr(node, "activation_type", "relu");
  if (activation != "swiglu") {
    why = "activation_type '" + activation +
          "' has no moe equivalent (moe.moe experts are SwiGLU)";
    return failure();
  }
  double limit = getFloatAttr(node, "swiglu_limit",
                              std::numeric_limits<double>::infinity());
  if (getFloatAttr(node, "activation_alpha", 1.0) != 1.0 ||
      getFloatAttr(node, "activation_beta", 0.0) != 0.0 || !std::isinf(limit)) {
    why = "a SwiGLU with activation_alpha != 1, activation_beta != 0 or a "
          "swiglu_limit is not moe's silu(gate) * up";
    return failure();
  }
  if (getIntAttr(node, "use_sparse_mixer", 0) != 0) {
    why = "use_sparse_mixer has no moe equivalent";
    return failure();
  }
  return success();
}

/// Splits a fused fc1 `[E, 2I, H]` into gate and up `[E, I, H]`:
/// `swiglu_fusion` 1 interleaves rows (g0, u0, g1, ...), 2 concatenates them.
/// Both are reshapes and last-dimension slices of the weight.
std::pair<Value, Value> splitFusedGateUp(PatternRewriter &rewriter,
                                         Location loc, Value fc1,
                                         int64_t fusion) {
  auto type = cast<RankedTensorType>(fc1.getType());
  int64_t experts = type.getDimSize(0), inter = type.getDimSize(1) / 2,
          hidden = type.getDimSize(2);
  Type element = type.getElementType();
  auto tensor = [&](ArrayRef<int64_t> shape) {
    return RankedTensorType::get(shape, element);
  };
  auto slice = [&](Value value, int64_t offset, RankedTensorType result) {
    return moe::SliceOp::create(rewriter, loc, result, value,
                                rewriter.getI64IntegerAttr(offset))
        .getResult();
  };
  if (fusion == 1) {
    // Row 2i is gate i and row 2i+1 up i: [E, I, 2H] holds [gate_i | up_i].
    Value rows = moe::ReshapeOp::create(
        rewriter, loc, tensor({experts, inter, 2 * hidden}), fc1);
    RankedTensorType half = tensor({experts, inter, hidden});
    return {slice(rows, 0, half), slice(rows, hidden, half)};
  }
  Value flat = moe::ReshapeOp::create(
      rewriter, loc, tensor({experts, 2 * inter * hidden}), fc1);
  RankedTensorType half = tensor({experts, inter * hidden});
  auto unflatten = [&](Value value) {
    return moe::ReshapeOp::create(rewriter, loc,
                                  tensor({experts, inter, hidden}), value)
        .getResult();
  };
  return {unflatten(slice(flat, 0, half)),
          unflatten(slice(flat, inter * hidden, half))};
}

/// One expert weight of MoE/QMoE: its type in the moe layout (after any
/// dequantization) and how to create it once every check has passed.
struct ExpertWeight {
  RankedTensorType type;
  std::function<Value(PatternRewriter &, Location)> create;
};

/// The fc1, fc3 (optional) and fc2 weights of MoE/QMoE.
struct ContribExperts {
  std::optional<ExpertWeight> fc1, fc3, fc2;
};

/// Builds `moe.moe` for a MoE/QMoE node from its router and expert weights.
/// Everything is checked before the first op is created.
LogicalResult buildContribMoE(NodeOp node, PatternRewriter &rewriter,
                              const Router &router,
                              const ContribExperts &experts, std::string &why) {
  int64_t k = getIntAttr(node, "k", 1);
  if (failed(checkRouting(router, k, why)))
    return failure();
  if (!experts.fc1 || !experts.fc2) {
    why = "the fc1 and fc2 expert weights are required";
    return failure();
  }
  int64_t fusion = getIntAttr(node, "swiglu_fusion", 0);
  RankedTensorType fc1Type = experts.fc1->type, fc2Type = experts.fc2->type;
  int64_t hidden = getRanked(router.x).getDimSize(1);
  int64_t rows = fusion == 0 ? 1 : 2;
  if (fc1Type.getRank() != 3 || fc1Type.getDimSize(0) != router.experts ||
      fc1Type.getDimSize(2) != hidden || fc1Type.getDimSize(1) % rows != 0 ||
      fc2Type.getRank() != 3 ||
      fc2Type.getShape() != ArrayRef<int64_t>{router.experts, hidden,
                                              fc1Type.getDimSize(1) / rows}) {
    why = llvm::formatv("expert weights fc1 {0} and fc2 {1} do not fit {2} "
                        "experts of hidden size {3} with swiglu_fusion {4}",
                        formatShape(fc1Type.getShape()),
                        formatShape(fc2Type.getShape()), router.experts, hidden,
                        fusion);
    return failure();
  }
  if (fusion == 0 && (!experts.fc3 || experts.fc3->type != fc1Type)) {
    why = "swiglu_fusion 0 needs fc3 weights of fc1's shape";
    return failure();
  }
  if ((fusion == 1 || fusion == 2) && experts.fc3) {
    why = "a fused SwiGLU must not have separate fc3 weights";
    return failure();
  }
  if (fusion < 0 || fusion > 2) {
    why = llvm::formatv("swiglu_fusion {0} is unknown", fusion);
    return failure();
  }
  if (!canReplaceWith(node.getResult(0), getRanked(router.x), why))
    return failure();

  Location loc = node.getLoc();
  Value gate = experts.fc1->create(rewriter, loc), up;
  if (fusion == 0)
    up = experts.fc3->create(rewriter, loc);
  else
    std::tie(gate, up) = splitFusedGateUp(rewriter, loc, gate, fusion);
  Value down = experts.fc2->create(rewriter, loc);
  Value gateWeight = createWeight(rewriter, loc, router.gate);
  Value bias =
      router.bias ? createWeight(rewriter, loc, *router.bias) : Value();
  bool normalize = getIntAttr(node, "normalize_routing_weights", 0) != 0;
  auto moeOp = moe::MoEOp::create(
      rewriter, loc, getRanked(router.x), router.x, gateWeight, bias, gate, up,
      down, Value(), Value(), Value(), Value(),
      makeRouting(rewriter.getContext(), router, k, normalize, 1.0));
  rewriter.replaceOp(node, moeOp.getResult());
  return success();
}

/// A float expert weight of MoE (fc1/fc2/fc3) in the moe layout; nullopt
/// without `input`.
LogicalResult floatExpertWeight(Value input, StringRef name,
                                std::optional<ExpertWeight> &weight,
                                std::string &why) {
  if (!input)
    return success();
  std::optional<WeightSource> source = matchPlainWeight(input);
  if (!source || layoutShape(*source).size() != 3) {
    why = (name + " is not a 3-d weight initializer").str();
    return failure();
  }
  auto stored = cast<RankedTensorType>(source->init.getType());
  WeightSource captured = *source;
  weight = ExpertWeight{
      RankedTensorType::get(layoutShape(*source), stored.getElementType()),
      [captured](PatternRewriter &rewriter, Location loc) {
        return createWeight(rewriter, loc, captured);
      }};
  return success();
}

struct RaiseContribMoE : OnnxNodePattern {
  RaiseContribMoE(MLIRContext *context, OnnxFailureReasons *reasons)
      : OnnxNodePattern(context, "com.microsoft", "MoE", 1, kAnyOpset,
                        reasons) {}

  LogicalResult rewriteNode(NodeOp node, PatternRewriter &rewriter,
                            std::string &why) const override {
    if (failed(checkSwiGLU(node, why)))
      return failure();
    for (unsigned bias : {3u, 5u, 7u})
      if (node.getInputOrNull(bias)) {
        why = "expert biases have no moe.moe equivalent";
        return failure();
      }
    Router router;
    if (failed(matchLogits(node.getInputOrNull(1), router, why)))
      return failure();
    if (skipIdentity(router.x) != skipIdentity(node.getInputOrNull(0))) {
      why = "the router does not read the MoE input";
      return failure();
    }
    ContribExperts experts;
    if (failed(floatExpertWeight(node.getInputOrNull(2), "fc1", experts.fc1,
                                 why)) ||
        failed(floatExpertWeight(node.getInputOrNull(4), "fc2", experts.fc2,
                                 why)) ||
        failed(
            floatExpertWeight(node.getInputOrNull(6), "fc3", experts.fc3, why)))
      return failure();
    return buildContribMoE(node, rewriter, router, experts, why);
  }
};

struct RaiseQMoE : OnnxNodePattern {
  RaiseQMoE(MLIRContext *context, OnnxFailureReasons *reasons)
      : OnnxNodePattern(context, "com.microsoft", "QMoE", 1, kAnyOpset,
                        reasons) {}

  LogicalResult rewriteNode(NodeOp node, PatternRewriter &rewriter,
                            std::string &why) const override {
    std::string quant = getStringAttr(node, "quant_type", "int");
    int64_t bits = getIntAttr(node, "expert_weight_bits", 4);
    int64_t block = getIntAttr(node, "block_size", 0);
    bool integer = quant == "int";
    if (!integer && quant != "fp8") {
      why = "quant_type '" + quant +
            "' (FP4 weights) has no moe equivalent: the moe dialect "
            "dequantizes only FP8 and 8-bit integer weights";
      return failure();
    }
    if (bits != 8 && !(integer && bits == 4)) {
      why = llvm::formatv("expert_weight_bits {0} has no moe equivalent: the "
                          "moe dialect dequantizes 8-bit weights and 4-bit "
                          "integer weights",
                          bits);
      return failure();
    }
    bool packed = bits == 4;
    if (!integer && block <= 0) {
      why = "FP8 QMoE without a positive block_size (per-expert global "
            "scales) has no moe equivalent";
      return failure();
    }
    if (failed(checkSwiGLU(node, why)))
      return failure();
    for (unsigned absent :
         {4u, 7u, 10u, 11u, 12u, 13u, 15u, 16u, 17u, 18u, 19u, 20u})
      if (node.getInputOrNull(absent)) {
        why = llvm::formatv("input #{0} (biases, zero points, global or "
                            "activation scales) has no moe.moe equivalent",
                            absent);
        return failure();
      }

    Router router;
    Value routerWeights = node.getInputOrNull(14);
    if (routerWeights) {
      // Selection and mixing scores differ (DeepSeek's noaux_tc).
      if (failed(matchSelection(node.getInputOrNull(1), router, why)))
        return failure();
      if (skipIdentity(routerWeights) != router.scores) {
        why = "router_weights are not the unbiased scores the selection "
              "is computed from";
        return failure();
      }
    } else if (failed(matchLogits(node.getInputOrNull(1), router, why))) {
      return failure();
    }
    if (skipIdentity(router.x) != skipIdentity(node.getInputOrNull(0))) {
      why = "the router does not read the QMoE input";
      return failure();
    }

    Type activation = getRanked(router.x).getElementType();
    std::string file = modelFileName(node);
    // FP8 weights have square blocks. 8-bit integer weights are uint8 with
    // zero point 128 and one scale per row, or per block_size of a row.
    // 4-bit ones pack two codes per byte along K (low nibble first, zero
    // point 8): the data is [E, N, K/2] and the scales count unpacked
    // columns.
    auto dequantized =
        [&](unsigned dataIndex, StringRef name,
            std::optional<ExpertWeight> &weight) -> LogicalResult {
      Value data = node.getInputOrNull(dataIndex);
      if (!data)
        return success();
      onnx_ir::InitializerOp dataInit = getInitializer(data);
      onnx_ir::InitializerOp scaleInit =
          getInitializer(node.getInputOrNull(dataIndex + 1));
      RankedTensorType storedType =
          dataInit ? getRanked(dataInit.getResult()) : RankedTensorType();
      Type element = storedType ? storedType.getElementType() : Type();
      bool fits = integer ? element && element.isUnsignedInteger(8)
                          : isa_and_nonnull<Float8E4M3FNType>(element);
      if (!storedType || !scaleInit || storedType.getRank() != 3 || !fits) {
        why = (name + " is not a 3-d " + (integer ? "uint8" : "float8e4m3fn") +
               " initializer with a scales initializer")
                  .str();
        return failure();
      }
      ArrayRef<int64_t> shape = storedType.getShape();
      int64_t columns = packed ? 2 * shape[2] : shape[2];
      auto scheme =
          integer
              ? moe::BlockScaleAttr::get(rewriter.getContext(),
                                         packed ? moe::Fp8Format::u4
                                                : moe::Fp8Format::u8,
                                         {1, block > 0 ? block : columns},
                                         moe::ScalePlacement::row_major, false,
                                         /*zeroPoint=*/packed ? 8 : 128)
              : moe::BlockScaleAttr::get(rewriter.getContext(),
                                         moe::Fp8Format::e4m3fn, {block, block},
                                         moe::ScalePlacement::row_major, false);
      // The moe data is signless `i8` of the same bytes.
      auto dataType = RankedTensorType::get(shape, scheme.getElementType());
      auto scaleType = RankedTensorType::get(scheme.getScaleShape(shape),
                                             rewriter.getF32Type());
      // Per-row scales are stored [E, N], the moe scales [E, N, 1].
      auto storedScaleType =
          integer && block <= 0
              ? RankedTensorType::get(scaleType.getShape().drop_back(),
                                      rewriter.getF32Type())
              : scaleType;
      if (scaleInit.getType() != storedScaleType) {
        why = llvm::formatv("{0} scales must be {1} for block_size {2}", name,
                            storedScaleType, block);
        return failure();
      }
      auto resultType =
          RankedTensorType::get(scheme.getUnpackedShape(shape), activation);
      weight = ExpertWeight{
          resultType, [=](PatternRewriter &rewriter, Location loc) mutable {
            auto ref = [&](onnx_ir::InitializerOp init) {
              return rewriter.getArrayAttr({moe::TensorRefAttr::get(
                  rewriter.getContext(), file, init.getTensorName())});
            };
            auto weightOp = moe::WeightOp::create(
                rewriter, loc, dataType, scaleType, ref(dataInit),
                TypeAttr::get(dataType), rewriter.getArrayAttr({}),
                ref(scaleInit), scheme, /*role=*/nullptr);
            return moe::DequantizeOp::create(rewriter, loc, resultType,
                                             weightOp.getResult(),
                                             weightOp.getScale(), scheme)
                .getResult();
          }};
      return success();
    };
    ContribExperts experts;
    if (failed(dequantized(2, "fc1", experts.fc1)) ||
        failed(dequantized(5, "fc2", experts.fc2)) ||
        failed(dequantized(8, "fc3", experts.fc3)))
      return failure();
    return buildContribMoE(node, rewriter, router, experts, why);
  }
};

//===----------------------------------------------------------------------===//
// Folds into moe.moe
//===----------------------------------------------------------------------===//

/// The `moe.moe` defining `value` if it has no other use and no shared
/// expert yet.
moe::MoEOp getFoldableMoE(Value value) {
  auto moeOp = skipIdentity(value).getDefiningOp<moe::MoEOp>();
  if (!moeOp || !moeOp.getResult().hasOneUse() || moeOp.getSharedGateProj())
    return {};
  return moeOp;
}

/// `Mul(moe.moe, c)` with a positive scalar `c`: the routed scaling factor.
struct FoldRoutedScaling : OnnxNodePattern {
  FoldRoutedScaling(MLIRContext *context, OnnxFailureReasons *reasons)
      : OnnxNodePattern(context, "", "Mul", 1, kAnyOpset, reasons,
                        /*maxResults=*/1, /*benefit=*/2) {}

  LogicalResult rewriteNode(NodeOp mul, PatternRewriter &rewriter,
                            std::string &why) const override {
    if (mul.getInputs().size() != 2)
      return failure();
    for (int i = 0; i < 2; ++i) {
      moe::MoEOp moeOp = getFoldableMoE(mul.getInputOrNull(i));
      std::optional<double> factor = getScalar(mul.getInputOrNull(1 - i));
      std::string detail;
      if (!moeOp || !factor || !(*factor > 0) || std::isinf(*factor) ||
          !canReplaceWith(mul.getResult(0), moeOp.getType(), detail))
        continue;
      moe::RoutingAttr routing = moeOp.getRouting();
      double scale = routing.getRoutedScalingFactor().convertToDouble();
      auto scaled = moe::RoutingAttr::get(
          rewriter.getContext(), routing.getScoring(), routing.getK(),
          routing.getNGroup(), routing.getTopkGroup(), routing.getGroupScore(),
          routing.getNormTopkProb(), APFloat(scale * *factor));
      rewriter.modifyOpInPlace(moeOp, [&] { moeOp.setRoutingAttr(scaled); });
      rewriter.replaceOp(mul, moeOp.getResult());
      return success();
    }
    return failure();
  }
};

/// `Add(moe.moe, mlp(x))`: a shared expert, optionally gated by
/// `Sigmoid(x · w)` (Qwen2-MoE).
struct FoldSharedExpert : OnnxNodePattern {
  FoldSharedExpert(MLIRContext *context, OnnxFailureReasons *reasons)
      : OnnxNodePattern(context, "", "Add", 1, kAnyOpset, reasons,
                        /*maxResults=*/1, /*benefit=*/2) {}

  LogicalResult rewriteNode(NodeOp add, PatternRewriter &rewriter,
                            std::string &why) const override {
    if (add.getInputs().size() != 2)
      return failure();
    for (int i = 0; i < 2; ++i) {
      moe::MoEOp moeOp = getFoldableMoE(add.getInputOrNull(i));
      if (!moeOp)
        continue;
      Value x = moeOp.getX();
      Value shared = add.getInputOrNull(1 - i);
      std::optional<DenseMLP> mlp = matchDenseMLP(shared, x);
      std::optional<WeightSource> gate;
      if (!mlp) {
        NodeOp mul = getNode(shared, "Mul");
        for (int j = 0; mul && j < 2 && !mlp; ++j) {
          NodeOp sigmoid = getNode(mul.getInputOrNull(j), "Sigmoid");
          NodeOp logit =
              sigmoid ? getNode(sigmoid.getInputOrNull(0), "MatMul") : NodeOp();
          if (!logit ||
              skipIdentity(logit.getInputOrNull(0)) != skipIdentity(x))
            continue;
          gate = matchMatMulWeight(logit.getInputOrNull(1));
          if (gate && layoutShape(*gate)[0] == 1)
            mlp = matchDenseMLP(mul.getInputOrNull(1 - j), x);
        }
      }
      std::string detail;
      if (!mlp || !canReplaceWith(add.getResult(0), moeOp.getType(), detail))
        continue;
      Location loc = add.getLoc();
      auto folded = moe::MoEOp::create(
          rewriter, loc, moeOp.getType(), x, moeOp.getGate(), moeOp.getBias(),
          moeOp.getGateProj(), moeOp.getUpProj(), moeOp.getDownProj(),
          createWeight(rewriter, loc, mlp->gate),
          createWeight(rewriter, loc, mlp->up),
          createWeight(rewriter, loc, mlp->down),
          gate ? createWeight(rewriter, loc, *gate) : Value(),
          moeOp.getRouting());
      rewriter.replaceOp(add, folded.getResult());
      rewriter.eraseOp(moeOp);
      return success();
    }
    return failure();
  }
};

} // namespace

void mlir::moec::populateOnnxRaiseMoEPatterns(RewritePatternSet &patterns,
                                              OnnxFailureReasons *reasons) {
  patterns.add<RaiseStandardMoE, RaiseContribMoE, RaiseQMoE>(
      patterns.getContext(), reasons);
}

void mlir::moec::populateOnnxRaiseFoldPatterns(RewritePatternSet &patterns,
                                               OnnxFailureReasons *reasons) {
  patterns.add<FoldRoutedScaling, FoldSharedExpert>(patterns.getContext(),
                                                    reasons);
}
