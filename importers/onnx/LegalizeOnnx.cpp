//===- LegalizeOnnx.cpp - --moec-legalize-onnx ------------------*- C++ -*-===//
//
// Legalises an imported ONNX graph into the `moe` dialect: raises subgraphs,
// then rewrites the nodes `moe` has an op for one by one, with patterns keyed
// by (domain, op type, opset). Whatever is left is reported in one error
// that lists every remaining node and why it was not legalised.
//
//===----------------------------------------------------------------------===//

#include "importers/onnx/OnnxPatterns.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"
#include "llvm/ADT/StringSwitch.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/Path.h"

namespace mlir::moec {
#define GEN_PASS_DECL_LEGALIZEONNXPASS
#define GEN_PASS_DEF_LEGALIZEONNXPASS
#include "importers/onnx/OnnxPasses.h.inc"
} // namespace mlir::moec

using namespace mlir;
using namespace mlir::moec;
using namespace mlir::moec::onnx_match;
using mlir::moe::formatShape;
using onnx_ir::InitializerOp;
using onnx_ir::NodeOp;

namespace {

/// An operand of a `moe` op: a `moe.weight` for an initializer, otherwise
/// the value.
Value operand(PatternRewriter &rewriter, Location loc, Value value) {
  if (std::optional<WeightSource> source = matchPlainWeight(value);
      source && !source->transpose)
    return createWeight(rewriter, loc, *source);
  return value;
}

/// Checks that `value` is a ranked float tensor with a leading dimension,
/// and says what it is otherwise.
RankedTensorType floatInput(NodeOp node, unsigned index, std::string &why) {
  Value value = node.getInputOrNull(index);
  RankedTensorType type = getRankedFloat(value);
  if (!type || type.getRank() < 1)
    why = llvm::formatv("input #{0} is not a ranked float tensor (type {1}); "
                        "run onnx.shape_inference if value_info is missing",
                        index, value ? value.getType() : Type());
  return type;
}

//===----------------------------------------------------------------------===//
// Matmuls
//===----------------------------------------------------------------------===//

/// `moe.matmul x, w (bias b)` for `x: [T, K]` and a weight in moe layout
/// `[N, K]`; ops are created only once everything fits.
LogicalResult buildMatmul(NodeOp node, PatternRewriter &rewriter, Value x,
                          std::optional<WeightSource> weight,
                          std::optional<WeightSource> bias, std::string &why) {
  RankedTensorType xType = getRankedFloat(x);
  if (!xType || xType.getRank() != 2) {
    why = "moe.matmul takes a [tokens, K] float input, not " +
          (xType ? formatShape(xType.getShape()) : std::string("this type"));
    return failure();
  }
  if (!weight) {
    why = "the right operand is not a weight initializer (a product of two "
          "activations has no moe equivalent outside attention)";
    return failure();
  }
  SmallVector<int64_t> shape(
      cast<RankedTensorType>(weight->init.getType()).getShape());
  if (weight->transpose && shape.size() == 2)
    std::swap(shape[0], shape[1]);
  if (shape.size() != 2 || shape[1] != xType.getDimSize(1) ||
      (bias && cast<RankedTensorType>(bias->init.getType()).getShape() !=
                   ArrayRef<int64_t>{shape[0]})) {
    why = llvm::formatv("the weight {0} (or bias) does not fit the input {1}",
                        formatShape(shape), formatShape(xType.getShape()));
    return failure();
  }
  auto resultType = RankedTensorType::get({xType.getDimSize(0), shape[0]},
                                          xType.getElementType());
  if (!canReplaceWith(node.getResult(0), resultType, why))
    return failure();
  Location loc = node.getLoc();
  Value w = createWeight(rewriter, loc, *weight);
  Value b = bias ? createWeight(rewriter, loc, *bias) : Value();
  auto matmul = moe::MatmulOp::create(rewriter, loc, resultType, x, w, b,
                                      moe::Epilogue::none);
  rewriter.replaceOp(node, matmul.getResult());
  return success();
}

LogicalResult rewriteBatchMatmul(NodeOp node, PatternRewriter &rewriter,
                                 std::string &why);

LogicalResult rewriteMatMul(NodeOp node, PatternRewriter &rewriter,
                            std::string &why) {
  Value rhs = node.getInputOrNull(1);
  if (!matchMatMulWeight(rhs) && !getInitializer(rhs))
    return rewriteBatchMatmul(node, rewriter, why);
  return buildMatmul(node, rewriter, node.getInputOrNull(0),
                     matchMatMulWeight(node.getInputOrNull(1)), std::nullopt,
                     why);
}

LogicalResult rewriteGemm(NodeOp node, PatternRewriter &rewriter,
                          std::string &why) {
  if (getIntAttr(node, "transA", 0) != 0 ||
      getFloatAttr(node, "alpha", 1.0) != 1.0 ||
      (node.getInputOrNull(2) && getFloatAttr(node, "beta", 1.0) != 1.0)) {
    why = "Gemm with transA, alpha != 1 or beta != 1 has no moe equivalent";
    return failure();
  }
  Value b = node.getInputOrNull(1);
  auto weight = getIntAttr(node, "transB", 0) ? matchPlainWeight(b)
                                              : matchMatMulWeight(b);
  std::optional<WeightSource> bias;
  if (Value c = node.getInputOrNull(2)) {
    bias = matchPlainWeight(c);
    if (!bias || bias->transpose ||
        getRanked(bias->init.getResult()).getRank() != 1) {
      why = "the Gemm bias C is not a 1-d initializer";
      return failure();
    }
  }
  return buildMatmul(node, rewriter, node.getInputOrNull(0), weight, bias, why);
}

/// The matmul forms of Einsum: `tk,kn->tn` and `tk,nk->tn`.
LogicalResult rewriteEinsum(NodeOp node, PatternRewriter &rewriter,
                            std::string &why) {
  std::string equation = getStringAttr(node, "equation", "");
  llvm::erase(equation, ' ');
  SmallVector<StringRef> sides;
  StringRef(equation).split(sides, "->");
  SmallVector<StringRef> operands;
  if (sides.size() == 2)
    sides[0].split(operands, ',');
  why = "Einsum '" + getStringAttr(node, "equation", "") +
        "' is not a matmul of a [tokens, K] input by a weight";
  if (operands.size() != 2 || node.getInputs().size() != 2 ||
      operands[0].size() != 2 || operands[1].size() != 2 ||
      sides[1].size() != 2)
    return failure();
  char t = operands[0][0], k = operands[0][1];
  char n = sides[1][1];
  if (sides[1][0] != t || n == t || n == k || t == k)
    return failure();
  std::optional<WeightSource> weight;
  if (operands[1] == StringRef(std::string{k, n}))
    weight = matchMatMulWeight(node.getInputOrNull(1));
  else if (operands[1] == StringRef(std::string{n, k}))
    weight = matchPlainWeight(node.getInputOrNull(1));
  else
    return failure();
  why.clear();
  return buildMatmul(node, rewriter, node.getInputOrNull(0), weight,
                     std::nullopt, why);
}

/// `Add(moe.matmul, bias)` with a 1-d bias initializer: the matmul's bias.
LogicalResult rewriteBiasAdd(NodeOp node, PatternRewriter &rewriter,
                             std::string &why) {
  for (int i = 0; i < 2; ++i) {
    Value input = skipIdentity(node.getInputOrNull(i));
    auto matmul = input ? input.getDefiningOp<moe::MatmulOp>() : nullptr;
    std::optional<WeightSource> bias =
        matchPlainWeight(node.getInputOrNull(1 - i));
    if (!matmul || matmul.getBias() || !matmul.getResult().hasOneUse() ||
        !bias || bias->transpose ||
        !canReplaceWith(node.getResult(0), matmul.getType(), why) ||
        cast<RankedTensorType>(bias->init.getType()).getShape() !=
            ArrayRef<int64_t>{matmul.getType().getDimSize(1)})
      continue;
    rewriter.setInsertionPoint(matmul);
    Value b = createWeight(rewriter, node.getLoc(), *bias);
    rewriter.modifyOpInPlace(matmul,
                             [&] { matmul.getBiasMutable().assign(b); });
    rewriter.replaceOp(node, matmul.getResult());
    return success();
  }
  return failure();
}

//===----------------------------------------------------------------------===//
// Elementwise
//===----------------------------------------------------------------------===//

/// Explains why `type`, the type of a node's input or result, cannot be a
/// `moe` tensor, or returns false when it can.
bool notTokenMajor(Type type, StringRef what, std::string &why) {
  auto ranked = dyn_cast_or_null<RankedTensorType>(type);
  if (!ranked) {
    why = llvm::formatv("{0} has no ranked type ({1}); run "
                        "onnx.shape_inference if value_info is missing",
                        what, type);
    return true;
  }
  if (ranked.getRank() == 0 ||
      ShapedType::isStaticShape(ranked.getShape().drop_front()))
    return false;
  why = llvm::formatv(
      "{0} has type {1}, dynamic in a dimension other than the leading "
      "(token) one: moe tensors hold the tokens in dimension 0 only, so a "
      "[T, T] tensor such as attention scores cannot exist (attention "
      "imports only as a recognised subgraph, moe.attention)",
      what, ranked);
  return true;
}

/// Checks every input and result type of `node` with notTokenMajor.
bool nodeNotTokenMajor(NodeOp node, std::string &why) {
  for (auto [i, input] : llvm::enumerate(node.getInputs()))
    if (!isa<NoneType>(input.getType()) &&
        notTokenMajor(input.getType(), ("input #" + Twine(i)).str(), why))
      return true;
  for (auto [i, result] : llvm::enumerate(node.getResults()))
    if (!isa<NoneType>(result.getType()) &&
        notTokenMajor(result.getType(), ("result #" + Twine(i)).str(), why))
      return true;
  return false;
}

/// The numpy broadcast of `types` as a `moe` shape: a dynamic dimension
/// only in the leading (token) position, coming from operands of the full
/// rank. Sets `why` otherwise.
std::optional<SmallVector<int64_t>>
broadcastShape(ArrayRef<RankedTensorType> types, std::string &why) {
  int64_t rank = 0;
  for (RankedTensorType t : types)
    rank = std::max(rank, t.getRank());
  SmallVector<int64_t> out(rank, 1);
  for (RankedTensorType t : types) {
    int64_t shift = rank - t.getRank();
    for (int64_t i = 0; i < t.getRank(); ++i) {
      int64_t d = t.getDimSize(i), &o = out[shift + i];
      if (ShapedType::isDynamic(d) && shift + i != 0) {
        why = llvm::formatv("broadcasting moves the token dimension of {0} "
                            "to dimension {1} of the result",
                            t, shift + i);
        return std::nullopt;
      }
      if (d == 1 || d == o)
        continue;
      if (o != 1) {
        why = "the operand shapes do not broadcast:";
        for (RankedTensorType u : types)
          why += " " + formatShape(u.getShape());
        return std::nullopt;
      }
      o = d;
    }
  }
  return out;
}

/// Builds `OpTy` on the broadcast of `node`'s inputs `inputs` with a result
/// of element type `element`.
template <typename OpTy>
LogicalResult buildBroadcast(NodeOp node, PatternRewriter &rewriter,
                             ArrayRef<unsigned> inputs, Type element,
                             std::string &why,
                             ArrayRef<NamedAttribute> attrs = {}) {
  SmallVector<RankedTensorType> types;
  for (unsigned i : inputs)
    types.push_back(getRanked(node.getInputOrNull(i)));
  std::optional<SmallVector<int64_t>> shape = broadcastShape(types, why);
  if (!shape)
    return failure();
  auto type = RankedTensorType::get(*shape, element);
  if (!canReplaceWith(node.getResult(0), type, why))
    return failure();
  Location loc = node.getLoc();
  SmallVector<Value> operands;
  for (unsigned i : inputs)
    operands.push_back(operand(rewriter, loc, node.getInputOrNull(i)));
  auto op = OpTy::create(rewriter, loc, TypeRange{type}, operands, attrs);
  rewriter.replaceOp(node, op->getResults());
  return success();
}

/// The ONNX ops of `moe.unary`, `moe.binary` and `moe.compare`.
std::optional<moe::UnaryKind> unaryKind(NodeOp node) {
  return llvm::StringSwitch<std::optional<moe::UnaryKind>>(node.getOpType())
      .Case("Neg", moe::UnaryKind::neg)
      .Case("Abs", moe::UnaryKind::abs)
      .Case("Sqrt", moe::UnaryKind::sqrt)
      .Case("Reciprocal", moe::UnaryKind::reciprocal)
      .Case("Exp", moe::UnaryKind::exp)
      .Case("Log", moe::UnaryKind::log)
      .Case("Tanh", moe::UnaryKind::tanh)
      .Case("Sigmoid", moe::UnaryKind::sigmoid)
      .Case("Relu", moe::UnaryKind::relu)
      .Default(std::nullopt);
}
std::optional<moe::BinaryKind> binaryKind(NodeOp node) {
  return llvm::StringSwitch<std::optional<moe::BinaryKind>>(node.getOpType())
      .Case("Add", moe::BinaryKind::add)
      .Case("Sub", moe::BinaryKind::sub)
      .Case("Mul", moe::BinaryKind::mul)
      .Case("Div", moe::BinaryKind::div)
      .Case("Pow", moe::BinaryKind::pow)
      .Case("Max", moe::BinaryKind::max)
      .Case("Min", moe::BinaryKind::min)
      .Default(std::nullopt);
}
std::optional<moe::ComparePredicate> comparePredicate(NodeOp node) {
  return llvm::StringSwitch<std::optional<moe::ComparePredicate>>(
             node.getOpType())
      .Case("Equal", moe::ComparePredicate::eq)
      .Case("Less", moe::ComparePredicate::lt)
      .Case("LessOrEqual", moe::ComparePredicate::le)
      .Case("Greater", moe::ComparePredicate::gt)
      .Case("GreaterOrEqual", moe::ComparePredicate::ge)
      .Default(std::nullopt);
}

LogicalResult rewriteUnary(NodeOp node, PatternRewriter &rewriter,
                           std::string &why) {
  RankedTensorType x = floatInput(node, 0, why);
  if (!x || nodeNotTokenMajor(node, why) ||
      !canReplaceWith(node.getResult(0), x, why))
    return failure();
  auto op = moe::UnaryOp::create(rewriter, node.getLoc(), x, *unaryKind(node),
                                 node.getInputOrNull(0));
  rewriter.replaceOp(node, op.getResult());
  return success();
}

/// Sub, Div, Pow, Max, Min, and Add/Mul of different types: `moe.binary`.
LogicalResult rewriteBinary(NodeOp node, PatternRewriter &rewriter,
                            std::string &why) {
  if (node.getInputs().size() != 2) {
    why = llvm::formatv("{0} of {1} inputs has no moe equivalent (moe.binary "
                        "takes two)",
                        node.getOpType(), node.getInputs().size());
    return failure();
  }
  RankedTensorType lhs = floatInput(node, 0, why);
  RankedTensorType rhs = lhs ? floatInput(node, 1, why) : RankedTensorType();
  if (!lhs || !rhs || nodeNotTokenMajor(node, why))
    return failure();
  if (lhs.getElementType() != rhs.getElementType()) {
    why = llvm::formatv("the operands have different element types ({0} and "
                        "{1}); moe.binary takes one",
                        lhs.getElementType(), rhs.getElementType());
    return failure();
  }
  return buildBroadcast<moe::BinaryOp>(
      node, rewriter, {0, 1}, lhs.getElementType(), why,
      rewriter.getNamedAttr(
          "kind",
          moe::BinaryKindAttr::get(rewriter.getContext(), *binaryKind(node))));
}

LogicalResult rewriteCompare(NodeOp node, PatternRewriter &rewriter,
                             std::string &why) {
  RankedTensorType lhs = getRanked(node.getInputOrNull(0));
  RankedTensorType rhs = getRanked(node.getInputOrNull(1));
  if (nodeNotTokenMajor(node, why))
    return failure();
  auto signless = [](Type t) {
    return isa<FloatType>(t) || t.isSignlessInteger();
  };
  if (lhs.getElementType() != rhs.getElementType() ||
      !signless(lhs.getElementType())) {
    why = llvm::formatv("moe.compare takes two float or two signless integer "
                        "operands of one type, not {0} and {1}",
                        lhs.getElementType(), rhs.getElementType());
    return failure();
  }
  return buildBroadcast<moe::CompareOp>(
      node, rewriter, {0, 1}, rewriter.getI1Type(), why,
      rewriter.getNamedAttr(
          "predicate", moe::ComparePredicateAttr::get(
                           rewriter.getContext(), *comparePredicate(node))));
}

LogicalResult rewriteWhere(NodeOp node, PatternRewriter &rewriter,
                           std::string &why) {
  if (nodeNotTokenMajor(node, why))
    return failure();
  RankedTensorType cond = getRanked(node.getInputOrNull(0));
  RankedTensorType x = floatInput(node, 1, why);
  RankedTensorType y = x ? floatInput(node, 2, why) : RankedTensorType();
  if (!x || !y)
    return failure();
  if (!cond.getElementType().isInteger(1) ||
      x.getElementType() != y.getElementType()) {
    why = "moe.select takes a bool condition and two float operands of one "
          "type";
    return failure();
  }
  return buildBroadcast<moe::SelectOp>(node, rewriter, {0, 1, 2},
                                       x.getElementType(), why);
}

LogicalResult rewriteIdentity(NodeOp node, PatternRewriter &rewriter,
                              std::string &why);

/// Cast to another element type: `moe.cast` (floats and signless integers).
LogicalResult rewriteCast(NodeOp node, PatternRewriter &rewriter,
                          std::string &why) {
  RankedTensorType in = getRanked(node.getInputOrNull(0));
  RankedTensorType out = getRanked(node.getResult(0));
  if (in && out && in.getElementType() == out.getElementType())
    return rewriteIdentity(node, rewriter, why);
  if (nodeNotTokenMajor(node, why))
    return failure();
  auto numeric = [](Type t) {
    return isa<FloatType>(t) || t.isSignlessInteger();
  };
  if (!numeric(in.getElementType()) || !numeric(out.getElementType())) {
    why = llvm::formatv("moe.cast converts floats and signless integers, not "
                        "{0} to {1}",
                        in.getElementType(), out.getElementType());
    return failure();
  }
  auto type = RankedTensorType::get(in.getShape(), out.getElementType());
  if (!canReplaceWith(node.getResult(0), type, why))
    return failure();
  auto cast = moe::CastOp::create(
      rewriter, node.getLoc(), type,
      operand(rewriter, node.getLoc(), node.getInputOrNull(0)));
  rewriter.replaceOp(node, cast.getResult());
  return success();
}

//===----------------------------------------------------------------------===//
// Rows: softmax, reductions, top-k, element gathers
//===----------------------------------------------------------------------===//

/// `axis` (negative from the end) as a dimension of a rank-`rank` tensor.
int64_t normalizeAxis(int64_t axis, int64_t rank) {
  return axis < 0 ? axis + rank : axis;
}

LogicalResult rewriteSoftmax(NodeOp node, PatternRewriter &rewriter,
                             std::string &why) {
  RankedTensorType x = floatInput(node, 0, why);
  if (!x || nodeNotTokenMajor(node, why))
    return failure();
  // Before opset 13 the default axis is 1 and the input is coerced to 2-d
  // at `axis`, which is the last-axis softmax when `axis` is the last.
  int64_t axis = normalizeAxis(
      getIntAttr(node, "axis", node.getVersion() < 13 ? 1 : -1), x.getRank());
  if (axis != x.getRank() - 1 || x.getRank() < 2) {
    why = llvm::formatv("only a Softmax over the last axis of a [tokens, ...] "
                        "tensor (moe.softmax) has a moe equivalent, not over "
                        "axis {0} of {1}",
                        axis, formatShape(x.getShape()));
    return failure();
  }
  if (!canReplaceWith(node.getResult(0), x, why))
    return failure();
  auto op = moe::SoftmaxOp::create(rewriter, node.getLoc(), x,
                                   node.getInputOrNull(0));
  rewriter.replaceOp(node, op.getResult());
  return success();
}

/// ReduceSum/Mean/Max/Min over non-token axes (attribute before opset 13
/// for ReduceSum and 18 for the others, input from then on).
LogicalResult rewriteReduce(NodeOp node, PatternRewriter &rewriter,
                            std::string &why) {
  RankedTensorType x = floatInput(node, 0, why);
  if (!x || nodeNotTokenMajor(node, why))
    return failure();
  StringRef opType = node.getOpType();
  std::optional<SmallVector<int64_t>> axes =
      getAxes(node, 1, opType == "ReduceSum" ? 13 : 18);
  bool hasAxesInput = node.getInputs().size() > 1 &&
                      !isa<NoneType>(node.getInputs()[1].getType());
  if (!axes && hasAxesInput) {
    why = "the axes are not constant";
    return failure();
  }
  if (!axes || axes->empty()) {
    if (getIntAttr(node, "noop_with_empty_axes", 0)) {
      if (!canReplaceWith(node.getResult(0), x, why))
        return failure();
      rewriter.replaceOp(node, node.getInputOrNull(0));
      return success();
    }
    why = "reducing every axis includes the token dimension, which no moe "
          "op reduces";
    return failure();
  }
  SmallVector<int64_t> dims;
  for (int64_t a : *axes)
    dims.push_back(normalizeAxis(a, x.getRank()));
  llvm::sort(dims);
  dims.erase(std::unique(dims.begin(), dims.end()), dims.end());
  if (dims.front() <= 0 || dims.back() >= x.getRank()) {
    why = llvm::formatv("only reductions over non-token axes (moe.reduce) "
                        "have a moe equivalent, not axes {0} of {1}",
                        formatShape(*axes), formatShape(x.getShape()));
    return failure();
  }
  bool keep = getIntAttr(node, "keepdims", 1) != 0;
  SmallVector<int64_t> shape;
  for (int64_t i = 0; i < x.getRank(); ++i) {
    if (!llvm::is_contained(dims, i))
      shape.push_back(x.getDimSize(i));
    else if (keep)
      shape.push_back(1);
  }
  auto type = RankedTensorType::get(shape, x.getElementType());
  if (!canReplaceWith(node.getResult(0), type, why))
    return failure();
  auto kind = llvm::StringSwitch<moe::ReduceKind>(opType)
                  .Case("ReduceMean", moe::ReduceKind::mean)
                  .Case("ReduceMax", moe::ReduceKind::max)
                  .Case("ReduceMin", moe::ReduceKind::min)
                  .Default(moe::ReduceKind::sum);
  auto op = moe::ReduceOp::create(rewriter, node.getLoc(), type, kind,
                                  node.getInputOrNull(0),
                                  rewriter.getDenseI64ArrayAttr(dims));
  rewriter.replaceOp(node, op.getResult());
  return success();
}

/// TopK over the last axis, largest first (k an attribute before opset 10,
/// an input from then on).
LogicalResult rewriteTopK(NodeOp node, PatternRewriter &rewriter,
                          std::string &why) {
  RankedTensorType x = floatInput(node, 0, why);
  if (!x || nodeNotTokenMajor(node, why))
    return failure();
  std::optional<int64_t> k;
  if (node.getVersion() < 10) {
    k = getIntAttr(node, "k", 0);
  } else if (auto ks = getInts(node.getInputOrNull(1)); ks && ks->size() == 1) {
    k = (*ks)[0];
  }
  int64_t axis = normalizeAxis(getIntAttr(node, "axis", -1), x.getRank());
  if (!k || *k < 1 || *k > x.getShape().back() || axis != x.getRank() - 1 ||
      x.getRank() < 2 || getIntAttr(node, "largest", 1) != 1) {
    why = "only a TopK of the largest, with a constant k, over the last axis "
          "of a [tokens, ...] tensor (moe.topk) has a moe equivalent";
    return failure();
  }
  SmallVector<int64_t> shape(x.getShape());
  shape.back() = *k;
  auto values = RankedTensorType::get(shape, x.getElementType());
  auto indices = RankedTensorType::get(shape, rewriter.getI64Type());
  if (!canReplaceWith(node.getResult(0), values, why) ||
      (node.getNumResults() > 1 &&
       !canReplaceWith(node.getResult(1), indices, why)))
    return failure();
  auto op = moe::TopKOp::create(rewriter, node.getLoc(), values, indices,
                                node.getInputOrNull(0),
                                rewriter.getI64IntegerAttr(*k));
  rewriter.replaceOp(node, op->getResults().take_front(node.getNumResults()));
  return success();
}

/// The non-token `axis` attribute of GatherElements/ScatterElements.
std::optional<int64_t> elementAxis(NodeOp node, RankedTensorType x,
                                   RankedTensorType indices, std::string &why) {
  int64_t axis = normalizeAxis(getIntAttr(node, "axis", 0), x.getRank());
  if (!indices || !isa<IntegerType>(indices.getElementType()) ||
      indices.getRank() != x.getRank() || axis <= 0 || axis >= x.getRank()) {
    why = llvm::formatv("only {0} along a non-token axis with integer indices "
                        "of the data's rank has a moe equivalent",
                        node.getOpType());
    return std::nullopt;
  }
  return axis;
}

LogicalResult rewriteGatherElements(NodeOp node, PatternRewriter &rewriter,
                                    std::string &why) {
  RankedTensorType x = floatInput(node, 0, why);
  if (!x || nodeNotTokenMajor(node, why))
    return failure();
  RankedTensorType indices = getRanked(node.getInputOrNull(1));
  std::optional<int64_t> axis = elementAxis(node, x, indices, why);
  if (!axis)
    return failure();
  auto type = RankedTensorType::get(indices.getShape(), x.getElementType());
  if (!canReplaceWith(node.getResult(0), type, why))
    return failure();
  Location loc = node.getLoc();
  auto op = moe::GatherElementsOp::create(
      rewriter, loc, type, operand(rewriter, loc, node.getInputOrNull(0)),
      operand(rewriter, loc, node.getInputOrNull(1)),
      rewriter.getI64IntegerAttr(*axis));
  rewriter.replaceOp(node, op.getResult());
  return success();
}

LogicalResult rewriteScatterElements(NodeOp node, PatternRewriter &rewriter,
                                     std::string &why) {
  RankedTensorType x = floatInput(node, 0, why);
  RankedTensorType updates = x ? floatInput(node, 2, why) : RankedTensorType();
  if (!x || !updates || nodeNotTokenMajor(node, why))
    return failure();
  RankedTensorType indices = getRanked(node.getInputOrNull(1));
  std::optional<int64_t> axis = elementAxis(node, x, indices, why);
  if (!axis)
    return failure();
  if (getStringAttr(node, "reduction", "none") != "none") {
    why = "only ScatterElements without a reduction has a moe equivalent";
    return failure();
  }
  if (!canReplaceWith(node.getResult(0), x, why))
    return failure();
  Location loc = node.getLoc();
  auto op = moe::ScatterElementsOp::create(
      rewriter, loc, x, operand(rewriter, loc, node.getInputOrNull(0)),
      operand(rewriter, loc, node.getInputOrNull(1)),
      operand(rewriter, loc, node.getInputOrNull(2)),
      rewriter.getI64IntegerAttr(*axis));
  rewriter.replaceOp(node, op.getResult());
  return success();
}

/// OneHot along a new last axis with constant depth and values.
LogicalResult rewriteOneHot(NodeOp node, PatternRewriter &rewriter,
                            std::string &why) {
  RankedTensorType indices = getRanked(node.getInputOrNull(0));
  RankedTensorType values = getRanked(node.getInputOrNull(2));
  if (nodeNotTokenMajor(node, why))
    return failure();
  std::optional<double> depth = getScalar(node.getInputOrNull(1));
  std::optional<SmallVector<double>> offOn = getDoubles(node.getInputOrNull(2));
  int64_t axis = getIntAttr(node, "axis", -1);
  if (!indices || !isa<IntegerType>(indices.getElementType()) || !depth ||
      *depth < 1 || !offOn || offOn->size() != 2 || !values ||
      !isa<FloatType>(values.getElementType()) ||
      !(axis == -1 || axis == indices.getRank())) {
    why = "only a OneHot of integer indices along a new last axis, with a "
          "constant depth and constant float values (moe.one_hot), has a moe "
          "equivalent";
    return failure();
  }
  SmallVector<int64_t> shape(indices.getShape());
  shape.push_back(int64_t(*depth));
  auto type = RankedTensorType::get(shape, values.getElementType());
  if (!canReplaceWith(node.getResult(0), type, why))
    return failure();
  auto op = moe::OneHotOp::create(rewriter, node.getLoc(), type,
                                  node.getInputOrNull(0),
                                  rewriter.getF64FloatAttr((*offOn)[1]),
                                  rewriter.getF64FloatAttr((*offOn)[0]));
  rewriter.replaceOp(node, op.getResult());
  return success();
}

//===----------------------------------------------------------------------===//
// Per-token matrices
//===----------------------------------------------------------------------===//

LogicalResult rewriteTranspose(NodeOp node, PatternRewriter &rewriter,
                               std::string &why) {
  if (getInitializer(node.getInputOrNull(0))) {
    why = "a Transpose of a weight is absorbed by the op that reads it "
          "(MatMul, Gemm, Einsum), and this one has no such user";
    return failure();
  }
  RankedTensorType x = floatInput(node, 0, why);
  if (!x)
    return failure();
  SmallVector<int64_t> perm;
  if (std::optional<SmallVector<int64_t>> attr = getIntsAttr(node, "perm"))
    perm = *attr;
  else
    for (int64_t i = x.getRank() - 1; i >= 0; --i)
      perm.push_back(i);
  if (perm.empty() || perm[0] != 0 || int64_t(perm.size()) != x.getRank()) {
    why = llvm::formatv("the Transpose {0} moves the token dimension out of "
                        "dimension 0",
                        formatShape(perm));
    if (std::string more; nodeNotTokenMajor(node, more))
      why += "; " + more;
    else
      why += ", the only dimension of a moe tensor that holds tokens";
    return failure();
  }
  if (nodeNotTokenMajor(node, why))
    return failure();
  SmallVector<int64_t> shape;
  for (int64_t p : perm)
    shape.push_back(x.getDimSize(p));
  auto type = RankedTensorType::get(shape, x.getElementType());
  if (!canReplaceWith(node.getResult(0), type, why))
    return failure();
  if (type == x && llvm::is_sorted(perm)) {
    rewriter.replaceOp(node, node.getInputOrNull(0));
    return success();
  }
  auto op = moe::TransposeOp::create(rewriter, node.getLoc(), type,
                                     node.getInputOrNull(0),
                                     rewriter.getDenseI64ArrayAttr(perm));
  rewriter.replaceOp(node, op.getResult());
  return success();
}

/// MatMul of two activations with the same leading dimensions (tokens
/// first): `moe.batch_matmul`.
LogicalResult rewriteBatchMatmul(NodeOp node, PatternRewriter &rewriter,
                                 std::string &why) {
  RankedTensorType lhs = floatInput(node, 0, why);
  RankedTensorType rhs = lhs ? floatInput(node, 1, why) : RankedTensorType();
  if (!lhs || !rhs || nodeNotTokenMajor(node, why))
    return failure();
  int64_t rank = lhs.getRank();
  if (rank < 3 || rhs.getRank() != rank ||
      lhs.getShape().drop_back(2) != rhs.getShape().drop_back(2) ||
      lhs.getDimSize(rank - 1) != rhs.getDimSize(rank - 2) ||
      lhs.getElementType() != rhs.getElementType()) {
    why =
        llvm::formatv("a product of two activations {0} x {1} is "
                      "moe.batch_matmul only with equal leading dimensions "
                      "(tokens first) and matching K",
                      formatShape(lhs.getShape()), formatShape(rhs.getShape()));
    return failure();
  }
  SmallVector<int64_t> shape(lhs.getShape());
  shape.back() = rhs.getShape().back();
  auto type = RankedTensorType::get(shape, lhs.getElementType());
  if (!canReplaceWith(node.getResult(0), type, why))
    return failure();
  auto op = moe::BatchMatmulOp::create(rewriter, node.getLoc(), type,
                                       node.getInputOrNull(0),
                                       node.getInputOrNull(1));
  rewriter.replaceOp(node, op.getResult());
  return success();
}

template <typename OpTy>
LogicalResult rewriteElementwise(NodeOp node, PatternRewriter &rewriter,
                                 std::string &why) {
  RankedTensorType lhs = floatInput(node, 0, why);
  RankedTensorType rhs = lhs ? floatInput(node, 1, why) : RankedTensorType();
  if (!lhs || !rhs)
    return failure();
  if (lhs != rhs)
    return rewriteBinary(node, rewriter, why);
  if (!canReplaceWith(node.getResult(0), lhs, why))
    return failure();
  Location loc = node.getLoc();
  auto op = OpTy::create(rewriter, loc, lhs,
                         operand(rewriter, loc, node.getInputOrNull(0)),
                         operand(rewriter, loc, node.getInputOrNull(1)));
  rewriter.replaceOp(node, op.getResult());
  return success();
}

LogicalResult rewriteAdd(NodeOp node, PatternRewriter &rewriter,
                         std::string &why) {
  if (succeeded(rewriteBiasAdd(node, rewriter, why)))
    return success();
  // A bias Add whose MatMul is not legalised yet waits for it, so that the
  // bias folds into moe.matmul rather than becoming a broadcast moe.binary.
  for (int i = 0; i < 2; ++i) {
    std::optional<WeightSource> bias =
        matchPlainWeight(node.getInputOrNull(1 - i));
    Value input = skipIdentity(node.getInputOrNull(i));
    if (bias && getRanked(bias->init.getResult()).getRank() == 1 &&
        (getNode(input, "MatMul") || getNode(input, "Gemm") ||
         getNode(input, "Einsum"))) {
      why = "its MatMul operand is not legalised, so its bias cannot fold";
      return failure();
    }
  }
  return rewriteElementwise<moe::AddOp>(node, rewriter, why);
}

LogicalResult rewriteMul(NodeOp node, PatternRewriter &rewriter,
                         std::string &why) {
  return rewriteElementwise<moe::MulOp>(node, rewriter, why);
}

/// Identity, and Cast to the type the value already has, forward their input.
LogicalResult rewriteIdentity(NodeOp node, PatternRewriter &rewriter,
                              std::string &why) {
  Value input = node.getInputOrNull(0);
  RankedTensorType type = getRanked(input);
  if (!input) {
    why = "the input is missing";
    return failure();
  }
  if (isOp(node, "Cast")) {
    RankedTensorType result = getRanked(node.getResult(0));
    if (!type || !result || type.getElementType() != result.getElementType()) {
      why = "a Cast that changes the element type has no moe equivalent";
      return failure();
    }
  }
  if (!canReplaceWith(node.getResult(0), input.getType(), why))
    return failure();
  rewriter.replaceOp(node, input);
  return success();
}

//===----------------------------------------------------------------------===//
// Embedding
//===----------------------------------------------------------------------===//

LogicalResult rewriteGather(NodeOp node, PatternRewriter &rewriter,
                            std::string &why) {
  std::optional<WeightSource> table = matchPlainWeight(node.getInputOrNull(0));
  RankedTensorType ids = getRanked(node.getInputOrNull(1));
  if (getIntAttr(node, "axis", 0) != 0 || !table || table->transpose || !ids ||
      ids.getRank() != 1 || !isa<IntegerType>(ids.getElementType())) {
    why = "only Gather of rows of an embedding table initializer by 1-d "
          "token ids (moe.embed) has a moe equivalent";
    return failure();
  }
  auto tableType = cast<RankedTensorType>(table->init.getType());
  if (tableType.getRank() != 2 || !isa<FloatType>(tableType.getElementType())) {
    why = "the embedding table is not a 2-d float initializer";
    return failure();
  }
  Location loc = node.getLoc();
  auto resultType = RankedTensorType::get(
      {ids.getDimSize(0), tableType.getDimSize(1)}, tableType.getElementType());
  if (!canReplaceWith(node.getResult(0), resultType, why))
    return failure();
  auto embed = moe::EmbedOp::create(rewriter, loc, resultType,
                                    createWeight(rewriter, loc, *table),
                                    node.getInputOrNull(1));
  rewriter.replaceOp(node, embed.getResult());
  return success();
}

//===----------------------------------------------------------------------===//
// Shape ops
//===----------------------------------------------------------------------===//

/// `moe.reshape` of input 0 to `shape`, if it keeps the token dimension.
LogicalResult buildReshape(NodeOp node, PatternRewriter &rewriter,
                           RankedTensorType in, ArrayRef<int64_t> shape,
                           std::string &why) {
  if (shape.empty() || shape[0] != in.getDimSize(0) ||
      llvm::any_of(shape.drop_front(), ShapedType::isDynamic)) {
    why = llvm::formatv("{0} -> {1} does not keep the leading (token) "
                        "dimension with static others, as moe.reshape needs",
                        formatShape(in.getShape()), formatShape(shape));
    return failure();
  }
  auto type = RankedTensorType::get(shape, in.getElementType());
  if (!canReplaceWith(node.getResult(0), type, why))
    return failure();
  if (type == in) {
    rewriter.replaceOp(node, node.getInputOrNull(0));
    return success();
  }
  auto reshape = moe::ReshapeOp::create(rewriter, node.getLoc(), type,
                                        node.getInputOrNull(0));
  rewriter.replaceOp(node, reshape.getResult());
  return success();
}

/// The product of the static dimensions of `shape`, or nullopt.
std::optional<int64_t> staticProduct(ArrayRef<int64_t> shape) {
  int64_t product = 1;
  for (int64_t dim : shape) {
    if (ShapedType::isDynamic(dim) ||
        __builtin_mul_overflow(product, dim, &product))
      return std::nullopt;
  }
  return product;
}

LogicalResult rewriteReshape(NodeOp node, PatternRewriter &rewriter,
                             std::string &why) {
  RankedTensorType in = floatInput(node, 0, why);
  if (!in)
    return failure();
  std::optional<SmallVector<int64_t>> target = getInts(node.getInputOrNull(1));
  if (!target) {
    // A computed shape: trust the declared result type.
    RankedTensorType result = getRanked(node.getResult(0));
    if (!result) {
      why = "the target shape is not a constant and the result has no "
            "ranked type";
      return failure();
    }
    return buildReshape(node, rewriter, in, result.getShape(), why);
  }
  bool allowZero = getIntAttr(node, "allowzero", 0) != 0;
  SmallVector<int64_t> shape;
  int64_t inferred = -1;
  for (auto [index, dim] : llvm::enumerate(*target)) {
    if (dim == 0 && !allowZero && index < size_t(in.getRank()))
      shape.push_back(in.getDimSize(index));
    else if (dim == -1 && inferred < 0)
      inferred = index, shape.push_back(ShapedType::kDynamic);
    else if (dim >= 0)
      shape.push_back(dim);
    else
      return buildReshape(node, rewriter, in, {}, why);
  }
  if (inferred > 0) {
    // Infer a non-token dimension from the non-token element counts.
    SmallVector<int64_t> others(shape.begin() + 1, shape.end());
    others.erase(others.begin() + (inferred - 1));
    auto inRest = staticProduct(in.getShape().drop_front());
    auto outRest = staticProduct(others);
    if (!inRest || !outRest || *outRest == 0 || *inRest % *outRest != 0)
      return buildReshape(node, rewriter, in, {}, why);
    shape[inferred] = *inRest / *outRest;
  } else if (inferred == 0) {
    // -1 in front keeps the tokens when the other elements match.
    auto inRest = staticProduct(in.getShape().drop_front());
    auto outRest = staticProduct(ArrayRef<int64_t>(shape).drop_front());
    if (inRest && outRest && *inRest == *outRest)
      shape[0] = in.getDimSize(0);
  }
  return buildReshape(node, rewriter, in, shape, why);
}

LogicalResult rewriteUnsqueezeSqueeze(NodeOp node, PatternRewriter &rewriter,
                                      std::string &why) {
  RankedTensorType in = floatInput(node, 0, why);
  if (!in)
    return failure();
  bool unsqueeze = isOp(node, "Unsqueeze");
  std::optional<SmallVector<int64_t>> axes = getAxes(node, 1, 13);
  if (!axes) {
    why = "the axes are not constant";
    return failure();
  }
  int64_t rank = in.getRank() + (unsqueeze ? axes->size() : 0);
  llvm::SmallDenseSet<int64_t> normalized;
  for (int64_t axis : *axes)
    normalized.insert(axis < 0 ? axis + rank : axis);
  SmallVector<int64_t> shape;
  if (unsqueeze) {
    for (int64_t i = 0, j = 0; i < rank; ++i)
      shape.push_back(normalized.contains(i) ? 1 : in.getDimSize(j++));
  } else {
    for (int64_t i = 0; i < in.getRank(); ++i)
      if (!normalized.contains(i))
        shape.push_back(in.getDimSize(i));
      else if (in.getDimSize(i) != 1)
        return buildReshape(node, rewriter, in, {}, why);
  }
  if (normalized.contains(0))
    return buildReshape(node, rewriter, in, {}, why);
  return buildReshape(node, rewriter, in, shape, why);
}

LogicalResult rewriteFlatten(NodeOp node, PatternRewriter &rewriter,
                             std::string &why) {
  RankedTensorType in = floatInput(node, 0, why);
  if (!in)
    return failure();
  std::optional<int64_t> rest = staticProduct(in.getShape().drop_front());
  if (getIntAttr(node, "axis", 1) != 1 || !rest)
    return buildReshape(node, rewriter, in, {}, why);
  return buildReshape(node, rewriter, in, {in.getDimSize(0), *rest}, why);
}

LogicalResult rewriteSlice(NodeOp node, PatternRewriter &rewriter,
                           std::string &why) {
  RankedTensorType in = floatInput(node, 0, why);
  if (!in)
    return failure();
  std::optional<SmallVector<int64_t>> starts, ends, axes, steps;
  if (node.getVersion() < 10) {
    starts = getIntsAttr(node, "starts");
    ends = getIntsAttr(node, "ends");
    axes = getIntsAttr(node, "axes");
  } else {
    starts = getInts(node.getInputOrNull(1));
    ends = getInts(node.getInputOrNull(2));
    axes =
        node.getInputOrNull(3) ? getInts(node.getInputOrNull(3)) : std::nullopt;
    if (node.getInputOrNull(4))
      steps = getInts(node.getInputOrNull(4));
  }
  if (!axes && starts) {
    axes.emplace();
    for (size_t i = 0; i < starts->size(); ++i)
      axes->push_back(i);
  }
  why = "only a constant, step-1 Slice of the last dimension (moe.slice) has "
        "a moe equivalent";
  if (!starts || !ends || starts->size() != 1 || ends->size() != 1 ||
      axes->size() != 1 || !isLastAxis(*axes, in.getRank()) ||
      (steps && *steps != SmallVector<int64_t>{1}))
    return failure();
  int64_t dim = in.getShape().back();
  auto clamp = [&](int64_t index) {
    if (index < 0)
      index += dim;
    return std::clamp<int64_t>(index, 0, dim);
  };
  int64_t start = clamp((*starts)[0]), end = clamp((*ends)[0]);
  if (end <= start)
    return failure();
  SmallVector<int64_t> shape(in.getShape());
  shape.back() = end - start;
  why.clear();
  if (!canReplaceWith(node.getResult(0),
                      RankedTensorType::get(shape, in.getElementType()), why))
    return failure();
  auto slice = moe::SliceOp::create(
      rewriter, node.getLoc(),
      RankedTensorType::get(shape, in.getElementType()), node.getInputOrNull(0),
      rewriter.getI64IntegerAttr(start));
  rewriter.replaceOp(node, slice.getResult());
  why.clear();
  return success();
}

LogicalResult rewriteConcat(NodeOp node, PatternRewriter &rewriter,
                            std::string &why) {
  RankedTensorType first = floatInput(node, 0, why);
  if (!first)
    return failure();
  int64_t axis = getIntAttr(node, "axis", 0);
  if (!(axis == -1 || axis == first.getRank() - 1)) {
    why = "only Concat along the last dimension (moe.concat) has a moe "
          "equivalent";
    return failure();
  }
  SmallVector<int64_t> shape(first.getShape());
  shape.back() = 0;
  for (unsigned i = 0; i < node.getInputs().size(); ++i) {
    RankedTensorType type = floatInput(node, i, why);
    if (!type)
      return failure();
    shape.back() += type.getShape().back();
  }
  if (!canReplaceWith(node.getResult(0),
                      RankedTensorType::get(shape, first.getElementType()),
                      why))
    return failure();
  auto concat = moe::ConcatOp::create(
      rewriter, node.getLoc(),
      RankedTensorType::get(shape, first.getElementType()), node.getInputs());
  rewriter.replaceOp(node, concat.getResult());
  return success();
}

LogicalResult rewriteExpand(NodeOp node, PatternRewriter &rewriter,
                            std::string &why) {
  RankedTensorType in = floatInput(node, 0, why);
  if (!in)
    return failure();
  std::optional<SmallVector<int64_t>> target = getInts(node.getInputOrNull(1));
  if (!target || int64_t(target->size()) != in.getRank()) {
    why = "only an Expand to a constant shape of the same rank (moe.expand) "
          "has a moe equivalent";
    return failure();
  }
  SmallVector<int64_t> shape;
  for (auto [dim, want] : llvm::zip(in.getShape(), *target)) {
    if (want == 1 || want == dim)
      shape.push_back(dim);
    else if (dim == 1)
      shape.push_back(want);
    else {
      why = llvm::formatv("Expand of {0} to {1} is not a broadcast",
                          formatShape(in.getShape()), formatShape(*target));
      return failure();
    }
  }
  if (!canReplaceWith(node.getResult(0),
                      RankedTensorType::get(shape, in.getElementType()), why))
    return failure();
  auto expand =
      moe::ExpandOp::create(rewriter, node.getLoc(),
                            RankedTensorType::get(shape, in.getElementType()),
                            node.getInputOrNull(0));
  rewriter.replaceOp(node, expand.getResult());
  return success();
}

//===----------------------------------------------------------------------===//
// Norms
//===----------------------------------------------------------------------===//

/// `moe.rms_norm x, scale` for SimplifiedLayerNormalization and
/// RMSNormalization (axis = last, inverse std output unused).
LogicalResult rewriteRmsNorm(NodeOp node, PatternRewriter &rewriter,
                             std::string &why) {
  RankedTensorType x = floatInput(node, 0, why);
  RankedTensorType scale = x ? floatInput(node, 1, why) : RankedTensorType();
  if (!x || !scale)
    return failure();
  int64_t axis = getIntAttr(node, "axis", -1);
  if (!(axis == -1 || axis == x.getRank() - 1) || scale.getRank() != 1 ||
      llvm::any_of(node.getResults().drop_front(),
                   [](Value v) { return !v.use_empty(); })) {
    why = "only a norm over the last axis with a 1-d scale and no used "
          "statistics outputs has a moe equivalent";
    return failure();
  }
  if (!canReplaceWith(node.getResult(0), x, why))
    return failure();
  Location loc = node.getLoc();
  auto norm = moe::RmsNormOp::create(
      rewriter, loc, x, node.getInputOrNull(0),
      operand(rewriter, loc, node.getInputOrNull(1)),
      rewriter.getF64FloatAttr(getFloatAttr(node, "epsilon", 1e-5)));
  SmallVector<Value> replacements(node.getNumResults(), Value());
  replacements[0] = norm.getResult();
  for (unsigned i = 1; i < node.getNumResults(); ++i)
    replacements[i] = norm.getResult();
  rewriter.replaceOp(node, replacements);
  return success();
}

/// SkipSimplifiedLayerNormalization: `s = input + skip`, `rms_norm(s)`;
/// output 3 is `s`.
LogicalResult rewriteSkipRmsNorm(NodeOp node, PatternRewriter &rewriter,
                                 std::string &why) {
  RankedTensorType x = floatInput(node, 0, why);
  RankedTensorType skip = x ? floatInput(node, 1, why) : RankedTensorType();
  if (!x || !skip || !floatInput(node, 2, why))
    return failure();
  if (x != skip || node.getInputOrNull(3) ||
      (node.getNumResults() > 1 && !node.getResult(1).use_empty()) ||
      (node.getNumResults() > 2 && !node.getResult(2).use_empty())) {
    why = "only equal-typed input and skip, no bias and unused mean/inv_std "
          "outputs have a moe equivalent";
    return failure();
  }
  if (!canReplaceWith(node.getResult(0), x, why) ||
      (node.getNumResults() > 3 && !canReplaceWith(node.getResult(3), x, why)))
    return failure();
  Location loc = node.getLoc();
  auto sum = moe::AddOp::create(rewriter, loc, x, node.getInputOrNull(0),
                                node.getInputOrNull(1));
  auto norm = moe::RmsNormOp::create(
      rewriter, loc, x, sum.getResult(),
      operand(rewriter, loc, node.getInputOrNull(2)),
      rewriter.getF64FloatAttr(getFloatAttr(node, "epsilon", 1e-5)));
  SmallVector<Value> replacements(node.getNumResults(), norm.getResult());
  if (node.getNumResults() > 3)
    replacements[3] = sum.getResult();
  rewriter.replaceOp(node, replacements);
  return success();
}

//===----------------------------------------------------------------------===//
// After the patterns
//===----------------------------------------------------------------------===//

/// Turns initializers that feed non-ONNX ops into `moe.weight`, drops dead
/// ONNX ops and makes the function type match what it returns.
void finalize(ModuleOp module) {
  IRRewriter rewriter(module.getContext());
  module.walk([&](InitializerOp init) {
    if (init.use_empty() || !isa<RankedTensorType>(init.getType()))
      return;
    rewriter.setInsertionPoint(init);
    Value weight = createWeight(rewriter, init.getLoc(), WeightSource{init});
    rewriter.replaceAllUsesWith(init.getResult(), weight);
  });
  module.walk([&](Operation *op) {
    if (isa<InitializerOp, onnx_ir::NoneOp>(op) && op->use_empty())
      rewriter.eraseOp(op);
  });
  module.walk([&](func::FuncOp func) {
    if (func.isExternal())
      return;
    auto ret = cast<func::ReturnOp>(func.getBody().back().getTerminator());
    func.setType(FunctionType::get(func.getContext(), func.getArgumentTypes(),
                                   ret.getOperandTypes()));
    // Name the token ids and positions as the HF importer does, so that
    // tools find them whatever the ONNX inputs are called.
    for (BlockArgument arg : func.getArguments())
      for (Operation *user : arg.getUsers()) {
        StringRef role;
        if (auto embed = dyn_cast<moe::EmbedOp>(user);
            embed && embed.getIds() == arg)
          role = "tokens";
        else if (auto rope = dyn_cast<moe::RopeOp>(user);
                 rope && rope.getPositions() == arg)
          role = "positions";
        if (!role.empty())
          func.setArgAttr(arg.getArgNumber(), "moe.name",
                          StringAttr::get(func.getContext(), role));
      }
  });
  // Weights name files relative to the model's folder, as `moe.checkpoint`
  // says for the Hugging Face importer.
  if (auto path = module->getAttrOfType<StringAttr>("onnx.model")) {
    SmallString<256> dir(path.getValue());
    if (!llvm::sys::fs::make_absolute(dir)) {
      llvm::sys::path::remove_filename(dir);
      module->setAttr("moe.checkpoint",
                      StringAttr::get(module.getContext(), dir));
    }
  }
}

struct LegalizeOnnxPass
    : mlir::moec::impl::LegalizeOnnxPassBase<LegalizeOnnxPass> {
  void runOnOperation() override {
    if (failed(legalizeOnnxToMoE(getOperation(), nullptr)))
      signalPassFailure();
  }
};

} // namespace

void mlir::moec::populateOnnxToMoEPatterns(RewritePatternSet &patterns,
                                           OnnxFailureReasons *reasons) {
  MLIRContext *context = patterns.getContext();
  struct Entry {
    const char *domain, *opType;
    int64_t since, until;
    OnnxRewriteFn fn;
    unsigned maxResults = 1;
  };
  // Opset ranges where a signature changed are handled inside the functions
  // (getAxes, Slice's attributes before opset 10).
  static const Entry table[] = {
      {"", "MatMul", 1, kAnyOpset, rewriteMatMul},
      {"", "Gemm", 1, kAnyOpset, rewriteGemm},
      {"", "Einsum", 12, kAnyOpset, rewriteEinsum},
      {"", "Add", 1, kAnyOpset, rewriteAdd},
      {"", "Mul", 1, kAnyOpset, rewriteMul},
      {"", "Identity", 1, kAnyOpset, rewriteIdentity},
      {"", "Cast", 1, kAnyOpset, rewriteCast},
      {"", "Gather", 1, kAnyOpset, rewriteGather},
      {"", "Reshape", 5, kAnyOpset, rewriteReshape},
      {"", "Unsqueeze", 1, kAnyOpset, rewriteUnsqueezeSqueeze},
      {"", "Squeeze", 1, kAnyOpset, rewriteUnsqueezeSqueeze},
      {"", "Flatten", 1, kAnyOpset, rewriteFlatten},
      {"", "Slice", 1, kAnyOpset, rewriteSlice},
      {"", "Concat", 1, kAnyOpset, rewriteConcat},
      {"", "Expand", 8, kAnyOpset, rewriteExpand},
      // Generic token-wise ops. Before opset 7 the binary ops broadcast
      // only with the legacy `broadcast` attribute.
      {"", "Neg", 1, kAnyOpset, rewriteUnary},
      {"", "Abs", 1, kAnyOpset, rewriteUnary},
      {"", "Sqrt", 1, kAnyOpset, rewriteUnary},
      {"", "Reciprocal", 1, kAnyOpset, rewriteUnary},
      {"", "Exp", 1, kAnyOpset, rewriteUnary},
      {"", "Log", 1, kAnyOpset, rewriteUnary},
      {"", "Tanh", 1, kAnyOpset, rewriteUnary},
      {"", "Sigmoid", 1, kAnyOpset, rewriteUnary},
      {"", "Relu", 1, kAnyOpset, rewriteUnary},
      {"", "Sub", 7, kAnyOpset, rewriteBinary},
      {"", "Div", 7, kAnyOpset, rewriteBinary},
      {"", "Pow", 7, kAnyOpset, rewriteBinary},
      {"", "Max", 8, kAnyOpset, rewriteBinary},
      {"", "Min", 8, kAnyOpset, rewriteBinary},
      {"", "Equal", 7, kAnyOpset, rewriteCompare},
      {"", "Less", 7, kAnyOpset, rewriteCompare},
      {"", "Greater", 7, kAnyOpset, rewriteCompare},
      {"", "LessOrEqual", 12, kAnyOpset, rewriteCompare},
      {"", "GreaterOrEqual", 12, kAnyOpset, rewriteCompare},
      {"", "Where", 9, kAnyOpset, rewriteWhere},
      {"", "Softmax", 1, kAnyOpset, rewriteSoftmax},
      {"", "ReduceSum", 1, kAnyOpset, rewriteReduce},
      {"", "ReduceMean", 1, kAnyOpset, rewriteReduce},
      {"", "ReduceMax", 1, kAnyOpset, rewriteReduce},
      {"", "ReduceMin", 1, kAnyOpset, rewriteReduce},
      {"", "TopK", 1, kAnyOpset, rewriteTopK, 2},
      {"", "GatherElements", 11, kAnyOpset, rewriteGatherElements},
      {"", "ScatterElements", 11, kAnyOpset, rewriteScatterElements},
      {"", "OneHot", 9, kAnyOpset, rewriteOneHot},
      {"", "Transpose", 1, kAnyOpset, rewriteTranspose},
      {"", "SimplifiedLayerNormalization", 1, kAnyOpset, rewriteRmsNorm, 2},
      {"com.microsoft", "SimplifiedLayerNormalization", 1, kAnyOpset,
       rewriteRmsNorm, 2},
      {"", "RMSNormalization", 23, kAnyOpset, rewriteRmsNorm},
      {"com.microsoft", "SkipSimplifiedLayerNormalization", 1, kAnyOpset,
       rewriteSkipRmsNorm, 4},
  };
  for (const Entry &entry : table)
    patterns.add<OnnxFnPattern>(context, entry.domain, entry.opType,
                                entry.since, entry.until, reasons,
                                entry.maxResults, entry.fn);
}

LogicalResult mlir::moec::legalizeOnnxToMoE(ModuleOp module,
                                            const OnnxValueReader *reader) {
  OnnxFailureReasons reasons;
  if (failed(foldOnnxBatch(module)))
    return failure();
  foldOnnxConstants(module);
  if (failed(raiseOnnxSubgraphs(module, &reasons, reader)))
    return failure();
  RewritePatternSet patterns(module.getContext());
  populateOnnxToMoEPatterns(patterns, &reasons);
  if (failed(applyPatternsGreedily(module, std::move(patterns))))
    return module.emitError("legalising ONNX nodes did not converge");

  SmallVector<NodeOp> left;
  module.walk([&](NodeOp node) { left.push_back(node); });
  if (!left.empty()) {
    std::string model = "the model";
    if (auto path = module->getAttrOfType<StringAttr>("onnx.model"))
      model = "'" + path.str() + "'";
    InFlightDiagnostic diag =
        emitError(module.getLoc())
        << model << ": " << left.size()
        << (left.size() == 1 ? " node has" : " nodes have")
        << " no lowering to the moe dialect:";
    for (NodeOp node : left) {
      diag << "\n  " << node.describe();
      std::string why = reasons.lookup(node);
      if (!why.empty())
        diag << ": " << why;
    }
    return failure();
  }
  finalize(module);
  assignOnnxWeightRoles(module);
  return success();
}
