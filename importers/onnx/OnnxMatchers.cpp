//===- OnnxMatchers.cpp - Helpers of the ONNX legalisation ------*- C++ -*-===//
//
// The pattern base class keyed by (domain, op type, opset), attribute and
// constant readers, and weight matchers that turn initializers into
// `moe.weight` ops naming the tensor in the model.
//
//===----------------------------------------------------------------------===//

#include "importers/onnx/OnnxMatchers.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "llvm/Support/Path.h"

#include <cstdio>
#include <cstdlib>

using namespace mlir;
using namespace mlir::moec;
using namespace mlir::moec::onnx_match;
using onnx_ir::InitializerOp;
using onnx_ir::NodeOp;

//===----------------------------------------------------------------------===//
// OnnxNodePattern
//===----------------------------------------------------------------------===//

OnnxNodePattern::OnnxNodePattern(MLIRContext *context, StringRef domain,
                                 StringRef opType, int64_t since, int64_t until,
                                 OnnxFailureReasons *reasons,
                                 unsigned maxResults, PatternBenefit benefit)
    : OpRewritePattern<NodeOp>(context, benefit),
      domain(domain == "ai.onnx" ? "" : domain.str()), opType(opType.str()),
      since(since), until(until), reasons(reasons), maxResults(maxResults) {}

LogicalResult
OnnxNodePattern::matchAndRewrite(NodeOp node, PatternRewriter &rewriter) const {
  if (node.getOpType() != opType || node.getCanonicalDomain() != domain ||
      node.getVersion() < since || node.getVersion() > until)
    return failure();
  if (node.getNumResults() == 0 || node.getNumResults() > maxResults) {
    if (reasons)
      reasons->note(node, "the node has " + Twine(node.getNumResults()) +
                              " outputs, which this operator does not have");
    return failure();
  }
  std::string why;
  if (succeeded(rewriteNode(node, rewriter, why)))
    return success();
  if (!why.empty() && reasons)
    reasons->note(node, why);
  return rewriter.notifyMatchFailure(node, [&](Diagnostic &diag) {
    diag << (why.empty() ? "not of the form this pattern handles" : why);
  });
}

//===----------------------------------------------------------------------===//
// Nodes, attributes and constants
//===----------------------------------------------------------------------===//

bool onnx_match::isOp(NodeOp node, StringRef opType, StringRef domain) {
  return node && node.getOpType() == opType &&
         node.getCanonicalDomain() == (domain == "ai.onnx" ? "" : domain);
}

Value onnx_match::skipIdentity(Value value) {
  while (value) {
    auto node = value.getDefiningOp<NodeOp>();
    if (!isOp(node, "Identity") || node.getInputs().size() != 1)
      break;
    value = node.getInputOrNull(0);
  }
  return value;
}

NodeOp onnx_match::getNode(Value value, StringRef opType, StringRef domain) {
  if (!value)
    return {};
  auto node = skipIdentity(value).getDefiningOp<NodeOp>();
  return isOp(node, opType, domain) ? node : NodeOp();
}

InitializerOp onnx_match::getInitializer(Value value) {
  return value ? skipIdentity(value).getDefiningOp<InitializerOp>()
               : InitializerOp();
}

DenseElementsAttr onnx_match::getConstant(Value value) {
  InitializerOp init = getInitializer(value);
  if (!init || !init.getValue())
    return {};
  return dyn_cast<DenseElementsAttr>(*init.getValue());
}

double onnx_match::toDouble(const APFloat &value) {
  // An f32 such as 1e-6 widens to 9.99999997e-07; its shortest decimal
  // spelling is what the model meant and converts back to the same f32.
  if (&value.getSemantics() == &APFloat::IEEEsingle() && value.isFinite()) {
    float single = value.convertToFloat();
    for (int digits = 1; digits <= 9; ++digits) {
      char text[32];
      std::snprintf(text, sizeof(text), "%.*g", digits, single);
      if (std::strtof(text, nullptr) == single)
        return std::strtod(text, nullptr);
    }
  }
  bool lost;
  APFloat wide = value;
  wide.convert(APFloat::IEEEdouble(), APFloat::rmNearestTiesToEven, &lost);
  return wide.convertToDouble();
}

std::optional<double> onnx_match::getScalar(Value value) {
  DenseElementsAttr constant = getConstant(value);
  if (!constant || constant.getNumElements() != 1)
    return std::nullopt;
  Type element = constant.getElementType();
  if (isa<FloatType>(element))
    return toDouble(*constant.value_begin<APFloat>());
  if (element.isSignlessInteger() || element.isSignedInteger())
    return static_cast<double>((*constant.value_begin<APInt>()).getSExtValue());
  return std::nullopt;
}

std::optional<SmallVector<double>> onnx_match::getDoubles(Value value) {
  DenseElementsAttr constant = getConstant(value);
  if (!constant)
    return std::nullopt;
  SmallVector<double> values;
  if (isa<FloatType>(constant.getElementType())) {
    for (const APFloat &v : constant.getValues<APFloat>())
      values.push_back(toDouble(v));
    return values;
  }
  if (!isa<IntegerType>(constant.getElementType()))
    return std::nullopt;
  for (const APInt &v : constant.getValues<APInt>())
    values.push_back(static_cast<double>(v.getSExtValue()));
  return values;
}

std::optional<SmallVector<int64_t>> onnx_match::getInts(Value value) {
  DenseElementsAttr constant = getConstant(value);
  if (!constant || !isa<IntegerType>(constant.getElementType()))
    return std::nullopt;
  SmallVector<int64_t> values;
  for (const APInt &v : constant.getValues<APInt>())
    values.push_back(v.getSExtValue());
  return values;
}

int64_t onnx_match::getIntAttr(NodeOp node, StringRef name,
                               int64_t defaultValue) {
  if (auto attr = dyn_cast_or_null<IntegerAttr>(node.getNodeAttr(name)))
    return attr.getInt();
  return defaultValue;
}

double onnx_match::getFloatAttr(NodeOp node, StringRef name,
                                double defaultValue) {
  if (auto attr = dyn_cast_or_null<FloatAttr>(node.getNodeAttr(name)))
    return toDouble(attr.getValue());
  return defaultValue;
}

std::string onnx_match::getStringAttr(NodeOp node, StringRef name,
                                      StringRef defaultValue) {
  if (auto attr = dyn_cast_or_null<StringAttr>(node.getNodeAttr(name)))
    return attr.str();
  return defaultValue.str();
}

std::optional<SmallVector<int64_t>> onnx_match::getIntsAttr(NodeOp node,
                                                            StringRef name) {
  if (auto attr = dyn_cast_or_null<DenseI64ArrayAttr>(node.getNodeAttr(name)))
    return SmallVector<int64_t>(attr.asArrayRef());
  return std::nullopt;
}

std::optional<SmallVector<int64_t>>
onnx_match::getAxes(NodeOp node, unsigned inputIndex, int64_t inputSince) {
  if (node.getVersion() < inputSince)
    return getIntsAttr(node, "axes");
  Value axes = node.getInputOrNull(inputIndex);
  if (!axes)
    return std::nullopt;
  return getInts(axes);
}

bool onnx_match::isLastAxis(ArrayRef<int64_t> axes, int64_t rank) {
  return axes.size() == 1 && (axes[0] == -1 || axes[0] == rank - 1);
}

RankedTensorType onnx_match::getRanked(Value value) {
  return value ? dyn_cast<RankedTensorType>(value.getType())
               : RankedTensorType();
}

RankedTensorType onnx_match::getRankedFloat(Value value) {
  RankedTensorType type = getRanked(value);
  return type && isa<FloatType>(type.getElementType()) ? type
                                                       : RankedTensorType();
}

bool onnx_match::canReplaceWith(Value old, Type type, std::string &why) {
  if (old.getType() == type)
    return true;
  bool compatible = true;
  if (auto declared = dyn_cast<RankedTensorType>(old.getType())) {
    auto actual = dyn_cast<RankedTensorType>(type);
    compatible = actual &&
                 actual.getElementType() == declared.getElementType() &&
                 actual.getRank() == declared.getRank();
    for (int64_t i = 0; compatible && i < declared.getRank(); ++i)
      compatible = ShapedType::isDynamic(declared.getDimSize(i)) ||
                   ShapedType::isDynamic(actual.getDimSize(i)) ||
                   declared.getDimSize(i) == actual.getDimSize(i);
  }
  if (compatible && llvm::all_of(old.getUsers(), [](Operation *user) {
        return isa<NodeOp, func::ReturnOp>(user);
      }))
    return true;
  why.clear();
  llvm::raw_string_ostream os(why);
  os << "its declared type " << old.getType() << " disagrees with the computed "
     << type;
  return false;
}

//===----------------------------------------------------------------------===//
// Weights
//===----------------------------------------------------------------------===//

/// Peels a Transpose that swaps the last two dimensions; sets `swapped`.
static Value peelLastTwoTranspose(Value value, bool &swapped) {
  swapped = false;
  NodeOp transpose = getNode(value, "Transpose");
  if (!transpose || transpose.getInputs().size() != 1)
    return value;
  RankedTensorType type = getRanked(transpose.getInputOrNull(0));
  if (!type || type.getRank() < 2)
    return value;
  int64_t rank = type.getRank();
  SmallVector<int64_t> expected;
  for (int64_t i = 0; i < rank; ++i)
    expected.push_back(i);
  std::swap(expected[rank - 1], expected[rank - 2]);
  std::optional<SmallVector<int64_t>> perm = getIntsAttr(transpose, "perm");
  // Without `perm` Transpose reverses the dimensions: a swap only in 2-D.
  if (perm ? *perm != expected : rank != 2)
    return value;
  swapped = true;
  return transpose.getInputOrNull(0);
}

std::optional<WeightSource> onnx_match::matchPlainWeight(Value value) {
  bool swapped;
  Value base = peelLastTwoTranspose(skipIdentity(value), swapped);
  InitializerOp init = getInitializer(base);
  if (!init || !getRanked(init.getResult()))
    return std::nullopt;
  return WeightSource{init, swapped};
}

std::optional<WeightSource> onnx_match::matchMatMulWeight(Value b) {
  std::optional<WeightSource> source = matchPlainWeight(b);
  if (!source)
    return std::nullopt;
  // MatMul's [in, out] is the transpose of the moe layout [out, in].
  source->transpose = !source->transpose;
  return source;
}

std::string onnx_match::modelFileName(Operation *anchor) {
  auto module = anchor->getParentOfType<ModuleOp>();
  if (module)
    if (auto path = module->getAttrOfType<StringAttr>("onnx.model"))
      return llvm::sys::path::filename(path.getValue()).str();
  return "model.onnx";
}

Value onnx_match::createStackedWeight(OpBuilder &builder, Location loc,
                                      ArrayRef<WeightSource> sources) {
  MLIRContext *context = builder.getContext();
  InitializerOp first = sources.front().init;
  std::string file = modelFileName(first);
  SmallVector<Attribute> refs;
  for (WeightSource source : sources)
    refs.push_back(
        moe::TensorRefAttr::get(context, file, source.init.getTensorName()));
  auto stored = cast<RankedTensorType>(first.getType());
  SmallVector<int64_t> shape(stored.getShape());
  SmallVector<Attribute> transforms;
  bool stacked = sources.size() > 1;
  if (stacked) {
    transforms.push_back(moe::StackTransformAttr::get(context));
    shape.insert(shape.begin(), sources.size());
  }
  if (sources.front().transpose) {
    transforms.push_back(moe::TransposeTransformAttr::get(context));
    std::swap(shape[shape.size() - 1], shape[shape.size() - 2]);
  }
  auto type = RankedTensorType::get(shape, stored.getElementType());
  return moe::WeightOp::create(
             builder, loc, type, /*scale=*/Type(), builder.getArrayAttr(refs),
             TypeAttr::get(stored), builder.getArrayAttr(transforms),
             /*scale_sources=*/ArrayAttr(), /*stored_scheme=*/nullptr,
             /*role=*/nullptr)
      .getResult();
}

Value onnx_match::createWeight(OpBuilder &builder, Location loc,
                               const WeightSource &source) {
  return createStackedWeight(builder, loc, {source});
}
