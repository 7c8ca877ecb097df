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
using onnx_ir::InitializerOp;
using onnx_ir::NodeOp;

namespace {

std::string formatShape(ArrayRef<int64_t> shape) {
  std::string text = "[";
  llvm::raw_string_ostream os(text);
  llvm::interleaveComma(shape, os, [&](int64_t dim) {
    if (ShapedType::isDynamic(dim))
      os << "?";
    else
      os << dim;
  });
  os << "]";
  return text;
}

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

LogicalResult rewriteMatMul(NodeOp node, PatternRewriter &rewriter,
                            std::string &why) {
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

template <typename OpTy>
LogicalResult rewriteElementwise(NodeOp node, PatternRewriter &rewriter,
                                 std::string &why) {
  RankedTensorType lhs = floatInput(node, 0, why);
  RankedTensorType rhs = lhs ? floatInput(node, 1, why) : RankedTensorType();
  if (!lhs || !rhs)
    return failure();
  if (lhs != rhs) {
    why = llvm::formatv("broadcasting {0} and {1} has no moe equivalent "
                        "(moe.add and moe.mul take equal types)",
                        lhs, rhs);
    return failure();
  }
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
      {"", "Cast", 1, kAnyOpset, rewriteIdentity},
      {"", "Gather", 1, kAnyOpset, rewriteGather},
      {"", "Reshape", 5, kAnyOpset, rewriteReshape},
      {"", "Unsqueeze", 1, kAnyOpset, rewriteUnsqueezeSqueeze},
      {"", "Squeeze", 1, kAnyOpset, rewriteUnsqueezeSqueeze},
      {"", "Flatten", 1, kAnyOpset, rewriteFlatten},
      {"", "Slice", 1, kAnyOpset, rewriteSlice},
      {"", "Concat", 1, kAnyOpset, rewriteConcat},
      {"", "Expand", 8, kAnyOpset, rewriteExpand},
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
  return success();
}
