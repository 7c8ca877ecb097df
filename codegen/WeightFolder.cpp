//===- WeightFolder.cpp - Host evaluation of planned constants --*- C++ -*-===//
//
// Byte-level evaluation of weight expressions. Values keep their element
// type: concatenation, transposition and stacking move bytes, and only FP8
// quantization and dequantization decode to f32. `moe.weight` and the
// quantization are dialects/WeightTransforms.h's, which the reference
// interpreter evaluates weights with too.
//
//===----------------------------------------------------------------------===//

#include "codegen/WeightFolder.h"

#include "mlir/IR/BuiltinTypes.h"
#include "llvm/ADT/TypeSwitch.h"

#include <cstring>

using namespace mlir;
using namespace mlir::moec;
using mlir::moe::formatShape;

namespace {

/// Fails unless `scheme` quantizes to FP8 E4M3FN, the only format the
/// kernels read weights in.
LogicalResult checkFoldableScheme(Operation *op, moe::BlockScaleAttr scheme) {
  if (scheme.getFormat() == moe::Fp8Format::e4m3fn)
    return success();
  return op->emitOpError("cannot be folded: the artifact writer quantizes "
                         "weights to e4m3fn only, but got ")
         << scheme;
}

/// The type `value` has in a slice: without the leading dimension.
SmallVector<int64_t, 4> expectedShape(Value value,
                                      std::optional<int64_t> slice) {
  auto type = cast<RankedTensorType>(value.getType());
  ArrayRef<int64_t> shape = type.getShape();
  return SmallVector<int64_t, 4>(slice ? shape.drop_front() : shape);
}

} // namespace

//===----------------------------------------------------------------------===//
// Slicing
//===----------------------------------------------------------------------===//

bool WeightFolder::isSliced(Value value) {
  auto it = sliced.find(value);
  if (it != sliced.end())
    return it->second;
  Operation *op = value.getDefiningOp();
  auto rankOf = [](Value v) {
    return cast<RankedTensorType>(v.getType()).getRank();
  };
  // Transforms and block scales work on the last two dimensions, so a value
  // of rank >= 3 can be computed one leading index at a time.
  bool result = false;
  if (op && rankOf(op->getResult(0)) >= 3) {
    result = llvm::TypeSwitch<Operation *, bool>(op)
                 .Case([&](moe::WeightOp w) {
                   ArrayAttr transforms = w.getTransforms();
                   return !transforms.empty() &&
                          isa<moe::StackTransformAttr>(transforms[0]);
                 })
                 .Case([&](moe::ConcatOp c) {
                   return c.getConcatDim() >= 1 &&
                          llvm::all_of(c.getInputs(),
                                       [&](Value in) { return isSliced(in); });
                 })
                 .Case([&](moe::QuantizeOp q) { return isSliced(q.getX()); })
                 .Case([&](moe::DequantizeOp d) {
                   return isSliced(d.getX()) && isSliced(d.getScale());
                 })
                 // Row-major reshapes that keep the leading dimension keep
                 // each leading index's bytes together; slices cut the last
                 // dimension only.
                 .Case([&](moe::ReshapeOp r) {
                   auto in = cast<RankedTensorType>(r.getX().getType());
                   return in.getDimSize(0) == r.getType().getDimSize(0) &&
                          isSliced(r.getX());
                 })
                 .Case([&](moe::SliceOp c) { return isSliced(c.getX()); })
                 .Default([](Operation *) { return false; });
  }
  sliced[value] = result;
  return result;
}

int64_t WeightFolder::getNumSlices(Value value) {
  if (!isSliced(value))
    return 1;
  return cast<RankedTensorType>(value.getType()).getDimSize(0);
}

FailureOr<HostTensor> WeightFolder::getOperand(Value value,
                                               std::optional<int64_t> slice) {
  return slice ? getSlice(value, *slice) : getWhole(value);
}

FailureOr<HostTensor> WeightFolder::getSlice(Value value, int64_t index) {
  if (!isSliced(value))
    return getWhole(value);
  auto key = std::make_pair(value.getAsOpaquePointer(), index);
  if (auto it = scaleCache.find(key); it != scaleCache.end())
    return it->second;
  auto result = cast<OpResult>(value);
  Operation *op = result.getOwner();
  Results results = evaluate(op, index);
  if (failed(results))
    return failure();
  // Keep the scales that come with FP8 data for when they are asked for.
  if (result.getResultNumber() == 0 && results->size() == 2)
    scaleCache[{op->getResult(1).getAsOpaquePointer(), index}] = (*results)[1];
  return std::move((*results)[result.getResultNumber()]);
}

FailureOr<HostTensor> WeightFolder::getWhole(Value value) {
  if (isSliced(value)) {
    HostTensor whole;
    int64_t slices = getNumSlices(value);
    for (int64_t i = 0; i < slices; ++i) {
      FailureOr<HostTensor> slice = getSlice(value, i);
      if (failed(slice))
        return failure();
      if (i == 0) {
        whole.shape.push_back(slices);
        whole.shape.append(slice->shape);
        whole.elementType = slice->elementType;
      }
      whole.bytes.insert(whole.bytes.end(), slice->bytes.begin(),
                         slice->bytes.end());
    }
    return whole;
  }
  auto key = std::make_pair(value.getAsOpaquePointer(), int64_t(-1));
  if (auto it = scaleCache.find(key); it != scaleCache.end())
    return it->second;
  auto result = dyn_cast<OpResult>(value);
  if (!result) {
    auto arg = cast<BlockArgument>(value);
    return emitError(arg.getLoc(), "argument #")
           << arg.getArgNumber()
           << " is not a constant the artifact writer can fold";
  }
  Operation *op = result.getOwner();
  Results results = evaluate(op, std::nullopt);
  if (failed(results))
    return failure();
  if (result.getResultNumber() == 0 && results->size() == 2)
    scaleCache[{op->getResult(1).getAsOpaquePointer(), -1}] = (*results)[1];
  return std::move((*results)[result.getResultNumber()]);
}

LogicalResult
WeightFolder::stream(Value value,
                     function_ref<LogicalResult(ArrayRef<uint8_t>)> sink) {
  int64_t slices = getNumSlices(value);
  for (int64_t i = 0; i < slices; ++i) {
    FailureOr<HostTensor> slice =
        slices == 1 ? getWhole(value) : getSlice(value, i);
    if (failed(slice) || failed(sink(slice->bytes)))
      return failure();
  }
  return success();
}

//===----------------------------------------------------------------------===//
// Ops
//===----------------------------------------------------------------------===//

WeightFolder::Results WeightFolder::evaluate(Operation *op,
                                             std::optional<int64_t> slice) {
  Results results =
      llvm::TypeSwitch<Operation *, Results>(op)
          .Case<moe::WeightOp>([&](auto) { return evalWeight(op, slice); })
          .Case<moe::ConcatOp>([&](auto) { return evalConcat(op, slice); })
          .Case<moe::QuantizeOp>([&](auto) { return evalQuantize(op, slice); })
          .Case<moe::DequantizeOp>(
              [&](auto) { return evalDequantize(op, slice); })
          .Case<moe::ReshapeOp>([&](auto) { return evalReshape(op, slice); })
          .Case<moe::SliceOp>([&](auto) { return evalSlice(op, slice); })
          .Default([&](Operation *) -> Results {
            return op->emitOpError(
                "cannot be folded into the artifact's weights: the artifact "
                "writer evaluates moe.weight, moe.concat, moe.quantize, "
                "moe.dequantize, moe.reshape and moe.slice of weights");
          });
  if (failed(results))
    return failure();
  // What was computed must be what the IR says, or the kernels would read
  // the weights wrongly.
  for (auto [result, tensor] : llvm::zip(op->getResults(), *results)) {
    SmallVector<int64_t, 4> shape = expectedShape(result, slice);
    Type element = cast<RankedTensorType>(result.getType()).getElementType();
    if (ArrayRef<int64_t>(tensor.shape) != ArrayRef<int64_t>(shape) ||
        tensor.elementType != element ||
        int64_t(tensor.bytes.size()) !=
            numElementsOf(shape) * elementBytes(element))
      return op->emitOpError("folded to a tensor of shape ")
             << formatShape(tensor.shape) << " and element type "
             << tensor.elementType << ", which does not fit "
             << result.getType();
  }
  return results;
}

WeightFolder::Results WeightFolder::evalWeight(Operation *op,
                                               std::optional<int64_t> slice) {
  auto weight = cast<moe::WeightOp>(op);
  for (Attribute transform : weight.getTransforms())
    if (auto q = dyn_cast<moe::QuantizeTransformAttr>(transform))
      if (failed(checkFoldableScheme(op, q.getScheme())))
        return failure();
  return readWeight(weight, source, slice);
}

WeightFolder::Results WeightFolder::evalConcat(Operation *op,
                                               std::optional<int64_t> slice) {
  auto c = cast<moe::ConcatOp>(op);
  SmallVector<HostTensor> inputs;
  for (Value input : c.getInputs()) {
    FailureOr<HostTensor> t = getOperand(input, slice);
    if (failed(t))
      return failure();
    inputs.push_back(std::move(*t));
  }
  int64_t axis = c.getConcatDim() - (slice ? 1 : 0);
  SmallVector<HostTensor, 2> results;
  results.push_back(concatTensors(inputs, axis));
  return results;
}

WeightFolder::Results WeightFolder::evalQuantize(Operation *op,
                                                 std::optional<int64_t> slice) {
  auto q = cast<moe::QuantizeOp>(op);
  FailureOr<HostTensor> x = getOperand(q.getX(), slice);
  if (failed(x))
    return failure();
  if (!isHostFloat(x->elementType))
    return op->emitOpError("cannot quantize elements of type ")
           << x->elementType;
  if (failed(checkFoldableScheme(op, q.getScheme())))
    return failure();
  auto [data, scale] = quantizeHostTensor(*x, q.getScheme());
  SmallVector<HostTensor, 2> results;
  results.push_back(std::move(data));
  results.push_back(std::move(scale));
  return results;
}

WeightFolder::Results
WeightFolder::evalDequantize(Operation *op, std::optional<int64_t> slice) {
  auto d = cast<moe::DequantizeOp>(op);
  FailureOr<HostTensor> x = getOperand(d.getX(), slice);
  if (failed(x))
    return failure();
  FailureOr<HostTensor> scale = getOperand(d.getScale(), slice);
  if (failed(scale))
    return failure();
  Type element = d.getType().getElementType();
  moe::BlockScaleAttr scheme = d.getScheme();
  bool codes = scheme.isInteger() && x->elementType.isInteger(8);
  if ((!codes && !isHostFloat(x->elementType)) || !isHostFloat(element))
    return op->emitOpError("cannot dequantize ")
           << x->elementType << " to " << element;
  SmallVector<int64_t> shape = scheme.getUnpackedShape(x->shape);
  MatrixView m = matrixView(shape);
  int64_t br = scheme.getBlock()[0], bc = scheme.getBlock()[1];
  int64_t blockRows = (m.rows + br - 1) / br,
          blockCols = (m.cols + bc - 1) / bc;
  if (int64_t(scale->bytes.size()) != m.batches * blockRows * blockCols * 4)
    return op->emitOpError("got ")
           << scale->bytes.size() << " bytes of scales for data of shape "
           << formatShape(x->shape);
  std::vector<float> values;
  if (codes) {
    // `u8` codes: unsigned bytes less the zero point, exact in f32. `u4`
    // bytes hold two codes, the low nibble first.
    float zeroPoint = float(scheme.getZeroPoint());
    values.reserve(x->bytes.size() * (scheme.isPacked() ? 2 : 1));
    for (uint8_t byte : x->bytes) {
      if (!scheme.isPacked()) {
        values.push_back(float(byte) - zeroPoint);
        continue;
      }
      values.push_back(float(byte & 0xf) - zeroPoint);
      values.push_back(float(byte >> 4) - zeroPoint);
    }
  } else {
    values = decodeFloats(*x);
  }
  std::vector<float> scales = decodeFloats(*scale);
  for (int64_t b = 0; b < m.batches; ++b)
    for (int64_t r = 0; r < m.rows; ++r)
      for (int64_t c = 0; c < m.cols; ++c)
        values[(b * m.rows + r) * m.cols + c] *=
            scales[(b * blockRows + r / br) * blockCols + c / bc];
  HostTensor out;
  out.shape.assign(shape.begin(), shape.end());
  out.elementType = element;
  out.bytes = encodeFloats(values, element);
  SmallVector<HostTensor, 2> results;
  results.push_back(std::move(out));
  return results;
}

WeightFolder::Results WeightFolder::evalReshape(Operation *op,
                                                std::optional<int64_t> slice) {
  auto reshape = cast<moe::ReshapeOp>(op);
  FailureOr<HostTensor> x = getOperand(reshape.getX(), slice);
  if (failed(x))
    return failure();
  x->shape = expectedShape(reshape.getResult(), slice);
  SmallVector<HostTensor, 2> results;
  results.push_back(std::move(*x));
  return results;
}

WeightFolder::Results WeightFolder::evalSlice(Operation *op,
                                              std::optional<int64_t> slice) {
  auto s = cast<moe::SliceOp>(op);
  FailureOr<HostTensor> x = getOperand(s.getX(), slice);
  if (failed(x))
    return failure();
  int64_t size = elementBytes(x->elementType);
  int64_t inner = x->shape.back() * size;
  int64_t width = s.getType().getShape().back() * size;
  int64_t offset = int64_t(s.getOffset()) * size;
  int64_t rows = inner ? int64_t(x->bytes.size()) / inner : 0;
  HostTensor out;
  out.shape = x->shape;
  out.shape.back() = s.getType().getShape().back();
  out.elementType = x->elementType;
  out.bytes.resize(rows * width);
  for (int64_t r = 0; r < rows; ++r)
    std::memcpy(&out.bytes[r * width], &x->bytes[r * inner + offset], width);
  SmallVector<HostTensor, 2> results;
  results.push_back(std::move(out));
  return results;
}
