//===- RaiseOnnxSubgraphs.cpp - --moec-raise-onnx-subgraphs -----*- C++ -*-===//
//
// Raises ONNX subgraphs that have one `moe` op as their meaning. Stage 1
// turns whole blocks into ops (RMSNorm, RoPE, attention, MoE layers); stage 2
// folds what follows them into the raised ops (routed scaling, shared
// experts) and raises SwiGLU. Each stage is one greedy pattern application.
//
//===----------------------------------------------------------------------===//

#include "importers/onnx/OnnxPatterns.h"

#include "mlir/Transforms/GreedyPatternRewriteDriver.h"
#include "llvm/Support/FormatVariadic.h"

#include <cmath>

namespace mlir::moec {
#define GEN_PASS_DECL_RAISEONNXSUBGRAPHSPASS
#define GEN_PASS_DEF_RAISEONNXSUBGRAPHSPASS
#include "importers/onnx/OnnxPasses.h.inc"
} // namespace mlir::moec

using namespace mlir;
using namespace mlir::moec;
using namespace mlir::moec::onnx_match;
using onnx_ir::NodeOp;

namespace {

//===----------------------------------------------------------------------===//
// RMSNorm: Mul(x / Sqrt(ReduceMean(x^2) + eps), w)
//===----------------------------------------------------------------------===//

/// `x / sqrt(mean(x^2, last axis) + eps)` in its exported forms; binds `x`
/// and `eps`.
bool matchRmsNormalized(Value value, Value &x, double &eps) {
  Value denominator;
  if (NodeOp div = getNode(value, "Div")) {
    x = div.getInputOrNull(0);
    denominator = div.getInputOrNull(1);
  } else if (NodeOp mul = getNode(value, "Mul")) {
    for (int i = 0; i < 2 && !denominator; ++i)
      if (NodeOp reciprocal = getNode(mul.getInputOrNull(i), "Reciprocal")) {
        x = mul.getInputOrNull(1 - i);
        denominator = reciprocal.getInputOrNull(0);
      }
  }
  NodeOp sqrt = denominator ? getNode(denominator, "Sqrt") : NodeOp();
  NodeOp add = sqrt ? getNode(sqrt.getInputOrNull(0), "Add") : NodeOp();
  if (!add)
    return false;
  for (int i = 0; i < 2; ++i) {
    NodeOp mean = getNode(add.getInputOrNull(i), "ReduceMean");
    std::optional<double> epsilon = getScalar(add.getInputOrNull(1 - i));
    RankedTensorType type = getRankedFloat(x);
    if (!mean || !epsilon || !(*epsilon > 0) || !type)
      continue;
    auto axes = getAxes(mean, 1, 18);
    if (!axes || !isLastAxis(*axes, type.getRank()) ||
        getIntAttr(mean, "keepdims", 1) != 1)
      continue;
    Value squared = mean.getInputOrNull(0);
    bool isSquare = false;
    if (NodeOp pow = getNode(squared, "Pow"))
      isSquare = skipIdentity(pow.getInputOrNull(0)) == skipIdentity(x) &&
                 getScalar(pow.getInputOrNull(1)) == 2.0;
    else if (NodeOp mul = getNode(squared, "Mul"))
      isSquare = skipIdentity(mul.getInputOrNull(0)) == skipIdentity(x) &&
                 skipIdentity(mul.getInputOrNull(1)) == skipIdentity(x);
    if (isSquare) {
      eps = *epsilon;
      return true;
    }
  }
  return false;
}

/// A weight operand of a raised op: a `moe.weight` for an initializer,
/// otherwise the value itself.
Value weightOperand(PatternRewriter &rewriter, Location loc, Value value) {
  if (std::optional<WeightSource> source = matchPlainWeight(value))
    return createWeight(rewriter, loc, *source);
  return value;
}

struct RaiseRmsNorm : OnnxNodePattern {
  RaiseRmsNorm(MLIRContext *context, OnnxFailureReasons *reasons)
      : OnnxNodePattern(context, "", "Mul", 1, kAnyOpset, reasons) {}

  LogicalResult rewriteNode(NodeOp mul, PatternRewriter &rewriter,
                            std::string &why) const override {
    if (mul.getInputs().size() != 2)
      return failure();
    for (int i = 0; i < 2; ++i) {
      Value x;
      double eps;
      if (!matchRmsNormalized(mul.getInputOrNull(i), x, eps))
        continue;
      Value weight = mul.getInputOrNull(1 - i);
      RankedTensorType xType = getRankedFloat(x);
      RankedTensorType wType = getRankedFloat(weight);
      if (!wType || wType.getRank() != 1 ||
          wType.getDimSize(0) != xType.getShape().back() ||
          !canReplaceWith(mul.getResult(0), xType, why))
        continue;
      auto norm =
          moe::RmsNormOp::create(rewriter, mul.getLoc(), xType, x,
                                 weightOperand(rewriter, mul.getLoc(), weight),
                                 rewriter.getF64FloatAttr(eps));
      rewriter.replaceOp(mul, norm.getResult());
      return success();
    }
    return failure();
  }
};

//===----------------------------------------------------------------------===//
// RoPE: x * cos + rotate_half(x) * sin
//===----------------------------------------------------------------------===//

/// `Unsqueeze(Gather(table, positions, axis 0), axes [1])`: the table and
/// the positions.
std::optional<std::pair<Value, Value>> matchTableRows(Value value) {
  NodeOp unsqueeze = getNode(value, "Unsqueeze");
  NodeOp gather =
      unsqueeze ? getNode(unsqueeze.getInputOrNull(0), "Gather") : NodeOp();
  if (!gather || getAxes(unsqueeze, 1, 13) != SmallVector<int64_t>{1} ||
      getIntAttr(gather, "axis", 0) != 0)
    return std::nullopt;
  return std::make_pair(gather.getInputOrNull(0), gather.getInputOrNull(1));
}

/// `Slice(x, [start], [end], [last axis])` with step 1; binds the range.
bool matchLastAxisSlice(Value value, Value x, int64_t dim, int64_t &start,
                        int64_t &end) {
  NodeOp slice = getNode(value, "Slice");
  if (!slice || slice.getVersion() < 10 ||
      skipIdentity(slice.getInputOrNull(0)) != skipIdentity(x))
    return false;
  auto starts = getInts(slice.getInputOrNull(1));
  auto ends = getInts(slice.getInputOrNull(2));
  auto axes = getInts(slice.getInputOrNull(3));
  Value steps = slice.getInputOrNull(4);
  if (!starts || !ends || !axes || starts->size() != 1 ||
      !isLastAxis(*axes, 3) ||
      (steps && getInts(steps) != SmallVector<int64_t>{1}))
    return false;
  start = (*starts)[0];
  end = std::min((*ends)[0], dim);
  return true;
}

/// `Concat(Neg(x[..., D/2:]), x[..., :D/2], axis = last)`.
bool matchRotateHalf(Value value, Value x, int64_t dim) {
  NodeOp concat = getNode(value, "Concat");
  if (!concat || concat.getInputs().size() != 2 ||
      !(getIntAttr(concat, "axis", 0) == -1 ||
        getIntAttr(concat, "axis", 0) == 2))
    return false;
  NodeOp neg = getNode(concat.getInputOrNull(0), "Neg");
  int64_t s1, e1, s2, e2;
  return neg && matchLastAxisSlice(neg.getInputOrNull(0), x, dim, s1, e1) &&
         matchLastAxisSlice(concat.getInputOrNull(1), x, dim, s2, e2) &&
         s1 == dim / 2 && e1 == dim && s2 == 0 && e2 == dim / 2;
}

/// The frequencies of RoPE tables `cos`, `sin`: theta and the linear
/// scaling factor, if every entry is `cos/sin(p * theta^(-2i/D) / factor)`.
/// Full tables are [positions, D] with columns i and i + D/2 equal (HF's
/// rotate-half tables); half tables are [positions, D/2] (onnxruntime's
/// `cos_cache`/`sin_cache`).
std::optional<std::pair<double, double>>
inferRopeFrequencies(DenseElementsAttr cos, DenseElementsAttr sin,
                     bool halfTable = false) {
  auto type = cast<RankedTensorType>(cos.getType());
  if (type.getRank() != 2 || sin.getType() != type || type.getDimSize(0) < 2 ||
      !isa<FloatType>(type.getElementType()))
    return std::nullopt;
  int64_t positions = type.getDimSize(0), columns = type.getDimSize(1);
  int64_t dim = halfTable ? 2 * columns : columns, half = dim / 2;
  if (dim < 4 || dim % 2 != 0)
    return std::nullopt;
  SmallVector<double> c, s;
  for (const APFloat &v : cos.getValues<APFloat>())
    c.push_back(v.convertToDouble());
  for (const APFloat &v : sin.getValues<APFloat>())
    s.push_back(v.convertToDouble());
  // Row 1 holds the angles themselves (all below pi).
  double first = std::atan2(s[columns], c[columns]);
  double last = std::atan2(s[columns + half - 1], c[columns + half - 1]);
  if (!(first > 0) || !(last > 0) || first < last)
    return std::nullopt;
  double factor = 1.0 / first;
  double theta = std::pow(first / last, double(dim) / double(dim - 2));
  if (std::abs(theta - std::round(theta)) <= 1e-6 * theta + 1e-3)
    theta = std::round(theta);
  if (std::abs(factor - std::round(factor)) <= 1e-5 * factor)
    factor = std::round(factor);
  if (!(factor >= 1.0) || !(theta > 1.0))
    return std::nullopt;
  for (int64_t p = 0; p < positions; ++p)
    for (int64_t i = 0; i < columns; ++i) {
      double angle = double(p) *
                     std::pow(theta, -2.0 * double(i % half) / double(dim)) /
                     factor;
      if (std::abs(std::cos(angle) - c[p * columns + i]) > 1e-4 ||
          std::abs(std::sin(angle) - s[p * columns + i]) > 1e-4)
        return std::nullopt;
    }
  return std::make_pair(theta, factor);
}

/// The `#moe.rope_scaling` of a linear `factor`, or null for 1.
moe::RopeScalingAttr linearScaling(MLIRContext *context, double factor) {
  if (factor == 1.0)
    return {};
  return moe::RopeScalingAttr::get(context, moe::RopeScalingKind::linear,
                                   APFloat(factor), 0, APFloat(32.0),
                                   APFloat(1.0), APFloat(1.0), APFloat(0.0));
}

/// The values of a table initializer, inline or read from the model.
DenseElementsAttr readTable(Value table, const OnnxValueReader *reader) {
  if (DenseElementsAttr values = getConstant(table))
    return values;
  onnx_ir::InitializerOp init = getInitializer(table);
  return init && reader && *reader ? (*reader)(init) : DenseElementsAttr();
}

struct RaiseRope : OnnxNodePattern {
  RaiseRope(MLIRContext *context, OnnxFailureReasons *reasons,
            const OnnxValueReader *reader)
      : OnnxNodePattern(context, "", "Add", 1, kAnyOpset, reasons),
        reader(reader) {}

  LogicalResult rewriteNode(NodeOp add, PatternRewriter &rewriter,
                            std::string &why) const override {
    if (add.getInputs().size() != 2)
      return failure();
    for (int i = 0; i < 2; ++i) {
      NodeOp cosMul = getNode(add.getInputOrNull(i), "Mul");
      NodeOp sinMul = getNode(add.getInputOrNull(1 - i), "Mul");
      if (!cosMul || !sinMul)
        continue;
      for (int j = 0; j < 2; ++j)
        for (int l = 0; l < 2; ++l) {
          Value x = cosMul.getInputOrNull(j);
          RankedTensorType type = getRankedFloat(x);
          auto cos = matchTableRows(cosMul.getInputOrNull(1 - j));
          auto sin = matchTableRows(sinMul.getInputOrNull(1 - l));
          if (!type || type.getRank() != 3 || !cos || !sin ||
              skipIdentity(cos->second) != skipIdentity(sin->second) ||
              !matchRotateHalf(sinMul.getInputOrNull(l), x, type.getDimSize(2)))
            continue;
          Value positions = cos->second;
          RankedTensorType posType = getRanked(positions);
          if (!posType || posType.getRank() != 1 ||
              !isa<IntegerType>(posType.getElementType())) {
            why = "RoPE positions are not a 1-d integer tensor";
            return failure();
          }
          DenseElementsAttr cosValues = readTable(cos->first, reader);
          DenseElementsAttr sinValues = readTable(sin->first, reader);
          if (!cosValues || !sinValues) {
            why = "the RoPE cos/sin tables are not initializers whose values "
                  "the importer can read";
            return failure();
          }
          auto frequencies = inferRopeFrequencies(cosValues, sinValues);
          if (!frequencies ||
              cast<ShapedType>(cosValues.getType()).getDimSize(1) !=
                  type.getDimSize(2)) {
            why = "the RoPE cos/sin tables are not cos/sin(p * theta^(-2i/D) "
                  "/ factor) for one theta and factor";
            return failure();
          }
          if (!canReplaceWith(add.getResult(0), type, why))
            return failure();
          auto rope = moe::RopeOp::create(
              rewriter, add.getLoc(), type, x, positions,
              rewriter.getF64FloatAttr(frequencies->first), UnitAttr(),
              linearScaling(rewriter.getContext(), frequencies->second));
          rewriter.replaceOp(add, rope.getResult());
          return success();
        }
    }
    return failure();
  }

  const OnnxValueReader *reader;
};

//===----------------------------------------------------------------------===//
// com.microsoft.RotaryEmbedding
//===----------------------------------------------------------------------===//

/// onnxruntime's RotaryEmbedding on a token-major `[T, heads * head]` input
/// (its `[batch, seq, hidden]` form once --moec-fold-onnx-batch has run)
/// with one position per token: a reshape to `[T, heads, head]`, `moe.rope`
/// over the first `rotary_embedding_dim` channels (the rest pass through)
/// and a reshape back. θ and a linear factor are inferred from the caches.
struct RaiseRotaryEmbedding : OnnxNodePattern {
  RaiseRotaryEmbedding(MLIRContext *context, OnnxFailureReasons *reasons,
                       const OnnxValueReader *reader)
      : OnnxNodePattern(context, "com.microsoft", "RotaryEmbedding", 1,
                        kAnyOpset, reasons),
        reader(reader) {}

  LogicalResult rewriteNode(NodeOp node, PatternRewriter &rewriter,
                            std::string &why) const override {
    Value x = node.getInputOrNull(0), positions = node.getInputOrNull(1);
    RankedTensorType xType = getRankedFloat(x);
    if (!xType || xType.getRank() != 2 || xType.isDynamicDim(1)) {
      why = "the input is not a token-major [tokens, hidden] float tensor "
            "(a [batch, seq, hidden] input whose batch could not be folded, or "
            "the 4-d [batch, heads, seq, head] form)";
      return failure();
    }
    RankedTensorType posType = getRanked(positions);
    if (!posType || posType.getRank() != 1 ||
        !isa<IntegerType>(posType.getElementType()) ||
        posType.getDimSize(0) != xType.getDimSize(0)) {
      why = "position_ids is not one position per token ([batch, seq]); "
            "the start-offset form (one element) has no moe equivalent";
      return failure();
    }
    if (getFloatAttr(node, "scale", 1.0) != 1.0 ||
        getIntAttr(node, "is_packed_batching", 0) != 0) {
      why = "scale != 1 and is_packed_batching have no moe equivalent";
      return failure();
    }
    DenseElementsAttr cos = readTable(node.getInputOrNull(2), reader);
    DenseElementsAttr sin = readTable(node.getInputOrNull(3), reader);
    if (!cos || !sin) {
      why = "cos_cache/sin_cache are not initializers whose values the "
            "importer can read";
      return failure();
    }
    auto cacheType = cast<ShapedType>(cos.getType());
    int64_t hidden = xType.getDimSize(1);
    int64_t rotary = getIntAttr(node, "rotary_embedding_dim", 0);
    int64_t heads = getIntAttr(node, "num_heads", 0);
    int64_t half = cacheType.getRank() == 2 ? cacheType.getDimSize(1) : 0;
    int64_t head = rotary == 0 ? 2 * half : (heads > 0 ? hidden / heads : 0);
    if (heads == 0 && head > 0)
      heads = hidden / head;
    if (rotary == 0)
      rotary = head;
    if (head <= 0 || heads <= 0 || heads * head != hidden || rotary > head ||
        rotary != 2 * half) {
      why = llvm::formatv("the caches [{0}, {1}], num_heads = {2} and "
                          "rotary_embedding_dim = {3} do not split hidden = "
                          "{4} into heads",
                          cacheType.getDimSize(0), half, heads, rotary, hidden);
      return failure();
    }
    auto frequencies = inferRopeFrequencies(cos, sin, /*halfTable=*/true);
    if (!frequencies) {
      why = "cos_cache/sin_cache are not cos/sin(p * theta^(-2i/D) / factor) "
            "for one theta and factor";
      return failure();
    }
    if (!canReplaceWith(node.getResult(0), xType, why))
      return failure();
    Location loc = node.getLoc();
    Type f = xType.getElementType();
    int64_t tokens = xType.getDimSize(0);
    auto headsType = RankedTensorType::get({tokens, heads, head}, f);
    Value rows = moe::ReshapeOp::create(rewriter, loc, headsType, x);
    Value rotated = rows;
    if (rotary < head)
      rotated = moe::SliceOp::create(
          rewriter, loc, RankedTensorType::get({tokens, heads, rotary}, f),
          rows, rewriter.getI64IntegerAttr(0));
    rotated = moe::RopeOp::create(
        rewriter, loc, rotated.getType(), rotated, positions,
        rewriter.getF64FloatAttr(frequencies->first),
        getIntAttr(node, "interleaved", 0) ? rewriter.getUnitAttr()
                                           : UnitAttr(),
        linearScaling(rewriter.getContext(), frequencies->second));
    if (rotary < head) {
      Value rest = moe::SliceOp::create(
          rewriter, loc,
          RankedTensorType::get({tokens, heads, head - rotary}, f), rows,
          rewriter.getI64IntegerAttr(rotary));
      rotated = moe::ConcatOp::create(rewriter, loc, headsType,
                                      ValueRange{rotated, rest});
    }
    rewriter.replaceOp(
        node,
        moe::ReshapeOp::create(rewriter, loc, xType, rotated).getResult());
    return success();
  }

  const OnnxValueReader *reader;
};

//===----------------------------------------------------------------------===//
// SwiGLU: Mul(Mul(g, Sigmoid(g)), u)
//===----------------------------------------------------------------------===//

struct RaiseSwiGLU : OnnxNodePattern {
  RaiseSwiGLU(MLIRContext *context, OnnxFailureReasons *reasons)
      : OnnxNodePattern(context, "", "Mul", 1, kAnyOpset, reasons) {}

  LogicalResult rewriteNode(NodeOp mul, PatternRewriter &rewriter,
                            std::string &why) const override {
    auto gateUp = matchSwiGLU(mul.getResult(0));
    if (!gateUp)
      return failure();
    RankedTensorType type = getRankedFloat(gateUp->first);
    if (!type || gateUp->second.getType() != type ||
        !canReplaceWith(mul.getResult(0), type, why))
      return failure();
    auto silu = moe::SiluMulOp::create(rewriter, mul.getLoc(), type,
                                       gateUp->first, gateUp->second);
    rewriter.replaceOp(mul, silu.getResult());
    return success();
  }
};

//===----------------------------------------------------------------------===//
// --moec-raise-onnx-subgraphs
//===----------------------------------------------------------------------===//

struct RaiseOnnxSubgraphsPass
    : mlir::moec::impl::RaiseOnnxSubgraphsPassBase<RaiseOnnxSubgraphsPass> {
  void runOnOperation() override {
    OnnxFailureReasons reasons;
    if (failed(raiseOnnxSubgraphs(getOperation(), &reasons, nullptr)))
      signalPassFailure();
  }
};

} // namespace

void mlir::moec::populateOnnxRaiseNormRopePatterns(
    RewritePatternSet &patterns, OnnxFailureReasons *reasons,
    const OnnxValueReader *reader) {
  patterns.add<RaiseRmsNorm>(patterns.getContext(), reasons);
  patterns.add<RaiseRope>(patterns.getContext(), reasons, reader);
  patterns.add<RaiseRotaryEmbedding>(patterns.getContext(), reasons, reader);
}

LogicalResult mlir::moec::raiseOnnxSubgraphs(ModuleOp module,
                                             OnnxFailureReasons *reasons,
                                             const OnnxValueReader *reader) {
  MLIRContext *context = module.getContext();
  RewritePatternSet blocks(context);
  populateOnnxRaiseNormRopePatterns(blocks, reasons, reader);
  populateOnnxRaiseMoEPatterns(blocks, reasons);
  populateOnnxRaiseAttentionPatterns(blocks, reasons);
  if (failed(applyPatternsGreedily(module, std::move(blocks))))
    return module.emitError("raising ONNX subgraphs did not converge");

  RewritePatternSet folds(context);
  populateOnnxRaiseFoldPatterns(folds, reasons);
  folds.add<RaiseSwiGLU>(context, reasons);
  if (failed(applyPatternsGreedily(module, std::move(folds))))
    return module.emitError("raising ONNX subgraphs did not converge");
  return success();
}
