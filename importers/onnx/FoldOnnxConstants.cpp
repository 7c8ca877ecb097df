//===- FoldOnnxConstants.cpp - Import-time shape arithmetic -----*- C++ -*-===//
//
// Folds the integer shape computations of an ONNX graph at import time:
// Shape of statically known dimensions, and Gather, Slice, Concat, reshapes,
// integer casts and arithmetic, and Range on constants become inline
// `onnx.initializer {constant}` values, which the legalisation patterns read
// as Reshape targets, axes and sizes. Float values are never folded: they
// would become weights that no model file holds.
//
//===----------------------------------------------------------------------===//

#include "importers/onnx/OnnxPatterns.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"

using namespace mlir;
using namespace mlir::moec;
using namespace mlir::moec::onnx_match;
using onnx_ir::InitializerOp;
using onnx_ir::NodeOp;

namespace {

/// The values of an inline integer constant and its shape.
struct IntConstant {
  SmallVector<int64_t> values;
  SmallVector<int64_t> shape;
};

std::optional<IntConstant> getIntConstant(Value value) {
  DenseElementsAttr attr = value ? getConstant(value) : DenseElementsAttr();
  if (!attr || !isa<IntegerType>(attr.getElementType()))
    return std::nullopt;
  IntConstant c;
  for (const APInt &v : attr.getValues<APInt>())
    c.values.push_back(attr.getElementType().isUnsignedInteger()
                           ? int64_t(v.getZExtValue())
                           : v.getSExtValue());
  c.shape.assign(attr.getType().getShape().begin(),
                 attr.getType().getShape().end());
  return c;
}

/// The entries of a 1-d integer `value` that are known: all of a constant,
/// or the static dimensions of a Shape (whose dynamic ones are nullopt).
std::optional<SmallVector<std::optional<int64_t>>> getPartial(Value value) {
  SmallVector<std::optional<int64_t>> entries;
  if (std::optional<IntConstant> c = getIntConstant(value)) {
    if (c->shape.size() != 1)
      return std::nullopt;
    entries.assign(c->values.begin(), c->values.end());
    return entries;
  }
  NodeOp shape = getNode(value, "Shape");
  RankedTensorType x =
      shape ? getRanked(shape.getInputOrNull(0)) : RankedTensorType();
  if (!x)
    return std::nullopt;
  int64_t rank = x.getRank();
  auto clamp = [&](int64_t i) {
    return std::clamp<int64_t>(i < 0 ? i + rank : i, 0, rank);
  };
  for (int64_t d = clamp(getIntAttr(shape, "start", 0)),
               end = clamp(getIntAttr(shape, "end", rank));
       d < end; ++d)
    entries.push_back(x.isDynamicDim(d) ? std::nullopt
                                        : std::optional(x.getDimSize(d)));
  return entries;
}

/// The values of `entries` if all are known.
std::optional<SmallVector<int64_t>>
allKnown(ArrayRef<std::optional<int64_t>> entries) {
  SmallVector<int64_t> values;
  for (std::optional<int64_t> e : entries) {
    if (!e)
      return std::nullopt;
    values.push_back(*e);
  }
  return values;
}

/// A static integer result type of `node`, or null.
RankedTensorType intResultType(NodeOp node) {
  RankedTensorType type = getRanked(node.getResult(0));
  if (!type || !type.hasStaticShape() ||
      !isa<IntegerType>(type.getElementType()) ||
      type.getElementType().getIntOrFloatBitWidth() > 64 ||
      type.getNumElements() > 64)
    return {};
  return type;
}

/// `index` of a dimension of size `size`, wrapped if negative and clamped.
int64_t clampIndex(int64_t index, int64_t size) {
  if (index < 0)
    index += size;
  return std::clamp<int64_t>(index, 0, size);
}

/// The values of `node`'s single integer result, if every input it reads
/// is known.
std::optional<SmallVector<int64_t>> evaluate(NodeOp node, int64_t count) {
  StringRef op = node.getOpType();
  auto in = [&](unsigned i) { return getIntConstant(node.getInputOrNull(i)); };
  if (op == "Shape" || op == "Size") {
    RankedTensorType x = getRanked(node.getInputOrNull(0));
    if (!x)
      return std::nullopt;
    int64_t rank = x.getRank();
    int64_t start = clampIndex(getIntAttr(node, "start", 0), rank);
    int64_t end = clampIndex(getIntAttr(node, "end", rank), rank);
    ArrayRef<int64_t> dims = x.getShape();
    if (op == "Size") {
      if (!x.hasStaticShape())
        return std::nullopt;
      return SmallVector<int64_t>{x.getNumElements()};
    }
    SmallVector<int64_t> values;
    for (int64_t d = start; d < end; ++d) {
      if (ShapedType::isDynamic(dims[d]))
        return std::nullopt;
      values.push_back(dims[d]);
    }
    return values;
  }
  if (op == "Gather") {
    auto data = getPartial(node.getInputOrNull(0));
    std::optional<IntConstant> indices = in(1);
    if (!data || !indices || getIntAttr(node, "axis", 0) != 0)
      return std::nullopt;
    SmallVector<std::optional<int64_t>> picked;
    int64_t size = data->size();
    for (int64_t index : indices->values) {
      if (index < -size || index >= size)
        return std::nullopt;
      picked.push_back((*data)[index < 0 ? index + size : index]);
    }
    return allKnown(picked);
  }
  if (op == "Slice" && node.getVersion() >= 10) {
    auto data = getPartial(node.getInputOrNull(0));
    std::optional<IntConstant> starts = in(1), ends = in(2);
    std::optional<IntConstant> axes = in(3), steps = in(4);
    if (!data || !starts || !ends || starts->values.size() != 1 ||
        ends->values.size() != 1 ||
        (node.getInputOrNull(3) &&
         (!axes || axes->values.size() != 1 ||
          (axes->values[0] != 0 && axes->values[0] != -1))) ||
        (node.getInputOrNull(4) &&
         (!steps || steps->values != SmallVector<int64_t>{1})))
      return std::nullopt;
    int64_t size = data->size();
    int64_t start = clampIndex(starts->values[0], size);
    int64_t end = clampIndex(ends->values[0], size);
    return allKnown(ArrayRef<std::optional<int64_t>>(*data).slice(
        start, std::max<int64_t>(end - start, 0)));
  }
  std::optional<IntConstant> a = in(0);
  if (!a)
    return std::nullopt;
  if (op == "Identity" || op == "Cast" || op == "Reshape" ||
      op == "Unsqueeze" || op == "Squeeze" || op == "Flatten")
    return a->values;
  if (op == "Neg") {
    for (int64_t &v : a->values)
      v = -v;
    return a->values;
  }
  if (op == "Concat") {
    SmallVector<int64_t> values;
    for (unsigned i = 0; i < node.getInputs().size(); ++i) {
      std::optional<IntConstant> c = in(i);
      if (!c || c->shape.size() != 1)
        return std::nullopt;
      llvm::append_range(values, c->values);
    }
    return values;
  }
  if (op == "Range") {
    std::optional<IntConstant> limit = in(1), delta = in(2);
    if (a->values.size() != 1 || !limit || limit->values.size() != 1 ||
        !delta || delta->values.size() != 1 || delta->values[0] == 0)
      return std::nullopt;
    SmallVector<int64_t> values;
    int64_t step = delta->values[0];
    for (int64_t v = a->values[0];
         step > 0 ? v < limit->values[0] : v > limit->values[0]; v += step)
      if (int64_t(values.size()) < count)
        values.push_back(v);
      else
        return std::nullopt;
    return values;
  }
  if (op == "Add" || op == "Sub" || op == "Mul" || op == "Div" || op == "Max" ||
      op == "Min") {
    std::optional<IntConstant> b = in(1);
    if (!b || node.getInputs().size() != 2)
      return std::nullopt;
    // Equal shapes, or one side a single value.
    size_t n = std::max(a->values.size(), b->values.size());
    if (!(a->values.size() == b->values.size() || a->values.size() == 1 ||
          b->values.size() == 1))
      return std::nullopt;
    SmallVector<int64_t> values;
    for (size_t i = 0; i < n; ++i) {
      int64_t x = a->values[a->values.size() == 1 ? 0 : i];
      int64_t y = b->values[b->values.size() == 1 ? 0 : i];
      int64_t r;
      if (op == "Add")
        r = x + y;
      else if (op == "Sub")
        r = x - y;
      else if (op == "Mul")
        r = x * y;
      else if (op == "Div") {
        if (y == 0)
          return std::nullopt;
        r = x / y;
      } else if (op == "Max")
        r = std::max(x, y);
      else
        r = std::min(x, y);
      values.push_back(r);
    }
    return values;
  }
  return std::nullopt;
}

} // namespace

void mlir::moec::foldOnnxConstants(ModuleOp module) {
  module.walk([&](NodeOp node) {
    if (!node.getCanonicalDomain().empty() || node.getNumResults() != 1)
      return;
    RankedTensorType type = intResultType(node);
    if (!type)
      return;
    std::optional<SmallVector<int64_t>> values =
        evaluate(node, type.getNumElements());
    if (!values || int64_t(values->size()) != type.getNumElements())
      return;
    SmallVector<APInt> bits;
    unsigned width = type.getElementType().getIntOrFloatBitWidth();
    for (int64_t v : *values)
      bits.push_back(APInt(width, uint64_t(v), /*isSigned=*/true,
                           /*implicitTrunc=*/true));
    OpBuilder builder(node);
    auto init = InitializerOp::create(
        builder, node.getLoc(), type,
        builder.getStringAttr(node.getName() + ".folded"),
        DenseIntElementsAttr::get(type, bits), StringAttr(), IntegerAttr(),
        IntegerAttr(), StringAttr(), builder.getUnitAttr());
    node.getResult(0).replaceAllUsesWith(init.getResult());
    node.erase();
  });
}
