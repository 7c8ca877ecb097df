//===- WeightFolder.cpp - Host evaluation of planned constants --*- C++ -*-===//
//
// Byte-level evaluation of weight expressions. Values keep their element
// type: concatenation, transposition and stacking move bytes, and only FP8
// quantization and dequantization decode to f32, with the same arithmetic
// as the reference interpreter (runtime/fp8's `quantizeBlocks`).
//
//===----------------------------------------------------------------------===//

#include "codegen/WeightFolder.h"

#include "importers/hf/Safetensors.h"
#include "importers/onnx/OnnxReader.h"
#include "runtime/fp8/Fp8.h"

#include "mlir/IR/BuiltinTypes.h"
#include "llvm/ADT/APFloat.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/TypeSwitch.h"
#include "llvm/Support/Path.h"

#include <cstring>

using namespace mlir;
using namespace mlir::moec;
using mlir::moe::formatShape;

namespace fp8 = ::moec::runtime::fp8;

namespace {

//===----------------------------------------------------------------------===//
// Elements
//===----------------------------------------------------------------------===//

int64_t product(ArrayRef<int64_t> dims) {
  int64_t n = 1;
  for (int64_t d : dims)
    n *= d;
  return n;
}

/// Bytes per element of `type`; 0 for types the folder cannot store.
int64_t elementBytes(Type type) {
  if (!type.isIntOrFloat() || type.getIntOrFloatBitWidth() % 8 != 0)
    return 0;
  return type.getIntOrFloatBitWidth() / 8;
}

/// The safetensors dtype that stores elements of `type`, if any.
std::optional<hf::DType> storedDType(Type type) {
  if (type.isF32())
    return hf::DType::F32;
  if (type.isF64())
    return hf::DType::F64;
  if (type.isBF16())
    return hf::DType::BF16;
  if (type.isF16())
    return hf::DType::F16;
  if (isa<Float8E4M3FNType>(type))
    return hf::DType::F8_E4M3;
  if (isa<Float8E5M2Type>(type))
    return hf::DType::F8_E5M2;
  return std::nullopt;
}

/// Decodes the float tensor `t` to f32, exactly.
std::vector<float> decode(const HostTensor &t) {
  Type type = t.elementType;
  size_t n = t.bytes.size() / elementBytes(type);
  std::vector<float> out(n);
  const uint8_t *p = t.bytes.data();
  if (type.isF32()) {
    std::memcpy(out.data(), p, n * 4);
  } else if (type.isBF16()) {
    for (size_t i = 0; i < n; ++i)
      out[i] = fp8::bf16ToFloat(uint16_t(p[2 * i] | (p[2 * i + 1] << 8)));
  } else if (type.isF16()) {
    for (size_t i = 0; i < n; ++i)
      out[i] = fp8::halfToFloat(uint16_t(p[2 * i] | (p[2 * i + 1] << 8)));
  } else if (isa<Float8E4M3FNType>(type)) {
    for (size_t i = 0; i < n; ++i)
      out[i] = fp8::e4m3fnToFloat(p[i]);
  } else if (isa<Float8E5M2Type>(type)) {
    for (size_t i = 0; i < n; ++i)
      out[i] = fp8::e5m2ToFloat(p[i]);
  } else {
    // Other float types (f64, ...) through APFloat.
    auto floatType = cast<FloatType>(type);
    int64_t size = elementBytes(type);
    for (size_t i = 0; i < n; ++i) {
      uint64_t bits = 0;
      for (int64_t b = 0; b < size; ++b)
        bits |= uint64_t(p[i * size + b]) << (8 * b);
      llvm::APFloat value(floatType.getFloatSemantics(),
                          llvm::APInt(size * 8, bits));
      bool lost;
      value.convert(llvm::APFloat::IEEEsingle(),
                    llvm::APFloat::rmNearestTiesToEven, &lost);
      out[i] = value.convertToFloat();
    }
  }
  return out;
}

/// Encodes `values` as `type`, rounding to nearest even; FP8 casts saturate
/// (DESIGN.md §4), as the reference interpreter's.
std::vector<uint8_t> encode(ArrayRef<float> values, Type type) {
  int64_t size = elementBytes(type);
  std::vector<uint8_t> out(values.size() * size);
  if (type.isF32()) {
    std::memcpy(out.data(), values.data(), out.size());
  } else if (isa<Float8E4M3FNType>(type)) {
    for (size_t i = 0; i < values.size(); ++i)
      out[i] = fp8::floatToE4M3FN(values[i]);
  } else if (isa<Float8E5M2Type>(type)) {
    for (size_t i = 0; i < values.size(); ++i)
      out[i] = fp8::floatToE5M2(values[i]);
  } else {
    auto floatType = cast<FloatType>(type);
    for (size_t i = 0; i < values.size(); ++i) {
      llvm::APFloat value(values[i]);
      bool lost;
      value.convert(floatType.getFloatSemantics(),
                    llvm::APFloat::rmNearestTiesToEven, &lost);
      uint64_t bits = value.bitcastToAPInt().getZExtValue();
      for (int64_t b = 0; b < size; ++b)
        out[i * size + b] = uint8_t(bits >> (8 * b));
    }
  }
  return out;
}

/// True for the float element types `decode` and `encode` handle.
bool isHostFloat(Type type) {
  return isa<FloatType>(type) && elementBytes(type) != 0 &&
         elementBytes(type) <= 8;
}

//===----------------------------------------------------------------------===//
// Layout transforms
//===----------------------------------------------------------------------===//

/// The `[rows, cols]` matrices block scaling and transposition work on: the
/// last two dimensions, a 1-d shape being a single row.
struct MatrixView {
  int64_t batches, rows, cols;
};
MatrixView matrixView(ArrayRef<int64_t> shape) {
  if (shape.empty())
    return {1, 1, 1};
  if (shape.size() == 1)
    return {1, 1, shape[0]};
  return {product(shape.drop_back(2)), shape[shape.size() - 2], shape.back()};
}

/// Swaps the last two dimensions of `t` (rank >= 2).
void transposeLastTwo(HostTensor &t) {
  size_t rank = t.shape.size();
  int64_t size = elementBytes(t.elementType);
  MatrixView m = matrixView(t.shape);
  std::vector<uint8_t> out(t.bytes.size());
  int64_t matrix = m.rows * m.cols * size;
  for (int64_t b = 0; b < m.batches; ++b)
    for (int64_t r = 0; r < m.rows; ++r)
      for (int64_t c = 0; c < m.cols; ++c)
        std::memcpy(&out[b * matrix + (c * m.rows + r) * size],
                    &t.bytes[b * matrix + (r * m.cols + c) * size], size);
  t.bytes = std::move(out);
  std::swap(t.shape[rank - 2], t.shape[rank - 1]);
}

/// Concatenates `inputs` (same element type and rank) along `axis`.
HostTensor concat(ArrayRef<HostTensor> inputs, int64_t axis) {
  HostTensor out;
  out.elementType = inputs[0].elementType;
  out.shape = inputs[0].shape;
  out.shape[axis] = 0;
  for (const HostTensor &in : inputs)
    out.shape[axis] += in.shape[axis];
  int64_t size = elementBytes(out.elementType);
  int64_t outer = product(ArrayRef<int64_t>(out.shape).take_front(axis));
  int64_t inner =
      product(ArrayRef<int64_t>(out.shape).drop_front(axis + 1)) * size;
  out.bytes.resize(product(out.shape) * size);
  int64_t outChunk = out.shape[axis] * inner, offset = 0;
  for (const HostTensor &in : inputs) {
    int64_t chunk = in.shape[axis] * inner;
    for (int64_t o = 0; o < outer; ++o)
      std::memcpy(&out.bytes[o * outChunk + offset], &in.bytes[o * chunk],
                  chunk);
    offset += chunk;
  }
  return out;
}

/// Quantizes `x` to FP8 E4M3FN with `scheme`, matrix by matrix over the
/// last two dimensions; returns the data and the f32 scales.
FailureOr<std::pair<HostTensor, HostTensor>>
quantize(Operation *op, const HostTensor &x, moe::BlockScaleAttr scheme) {
  if (scheme.getFormat() != moe::Fp8Format::e4m3fn)
    return op->emitOpError("cannot be folded: the artifact writer quantizes "
                           "weights to e4m3fn only, but got ")
           << scheme;
  MatrixView m = matrixView(x.shape);
  int64_t br = scheme.getBlock()[0], bc = scheme.getBlock()[1];
  int64_t blocks = ((m.rows + br - 1) / br) * ((m.cols + bc - 1) / bc);
  std::vector<float> values = decode(x);
  HostTensor data, scale;
  data.shape = x.shape;
  data.elementType = Float8E4M3FNType::get(op->getContext());
  data.bytes.resize(values.size());
  scale.shape.assign(scheme.getScaleShape(x.shape));
  scale.elementType = Float32Type::get(op->getContext());
  scale.bytes.resize(m.batches * blocks * 4);
  std::vector<float> scales(m.batches * blocks);
  for (int64_t b = 0; b < m.batches; ++b)
    fp8::quantizeBlocks(values.data() + b * m.rows * m.cols, m.rows, m.cols, br,
                        bc, scheme.getPow2(),
                        data.bytes.data() + b * m.rows * m.cols,
                        scales.data() + b * blocks);
  std::memcpy(scale.bytes.data(), scales.data(), scale.bytes.size());
  return std::make_pair(std::move(data), std::move(scale));
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
// Weight sources
//===----------------------------------------------------------------------===//

WeightSource::~WeightSource() = default;

namespace {

/// Safetensors checkpoints and ONNX models, by the file a reference names.
class CheckpointSource : public WeightSource {
public:
  llvm::Error read(moe::TensorRefAttr ref, Type element,
                   ArrayRef<int64_t> shape,
                   std::vector<uint8_t> &into) override {
    auto error = [&](const llvm::Twine &message) {
      return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                     "tensor '" + ref.getName() + "' of '" +
                                         ref.getFile() + "': " + message);
    };
    std::string typeName;
    llvm::raw_string_ostream(typeName) << element;
    uint64_t bytes = uint64_t(product(shape)) * uint64_t(elementBytes(element));
    if (auto it = onnxModels.find(ref.getFile()); it != onnxModels.end()) {
      // The importer checked the initializer's type; its size must agree.
      llvm::Expected<std::vector<char>> data =
          it->second->readTensorData(ref.getName());
      if (!data)
        return error(llvm::toString(data.takeError()));
      if (data->size() != bytes)
        return error("holds " + llvm::Twine(data->size()) +
                     " bytes, but the IR expects " + formatShape(shape) +
                     " of " + typeName);
      into.insert(into.end(), data->begin(), data->end());
      return llvm::Error::success();
    }
    hf::TensorRef found = checkpoint->lookup(ref.getName());
    if (!found)
      return error("not found in checkpoint '" + checkpoint->dir() + "'");
    StringRef file = llvm::sys::path::filename(found.file->path());
    if (file != ref.getFile())
      return error("the checkpoint stores it in '" + file + "'");
    std::optional<hf::DType> dtype = storedDType(element);
    if (!dtype || *dtype != found.info->dtype)
      return error("stored as " + hf::dtypeName(found.info->dtype) +
                   ", but the IR expects " + typeName);
    if (ArrayRef<int64_t>(found.info->shape) != shape)
      return error("stored with shape " + formatShape(found.info->shape) +
                   ", but the IR expects " + formatShape(shape));
    ArrayRef<uint8_t> data = found.file->bytes(*found.info);
    into.insert(into.end(), data.begin(), data.end());
    return llvm::Error::success();
  }

  std::unique_ptr<hf::Checkpoint> checkpoint;
  llvm::StringMap<std::unique_ptr<OnnxModel>> onnxModels;
};

} // namespace

llvm::Expected<std::unique_ptr<WeightSource>>
mlir::moec::openWeightSource(llvm::StringRef dir, func::FuncOp func) {
  auto source = std::make_unique<CheckpointSource>();
  bool needsSafetensors = false;
  std::optional<llvm::Error> failure;
  auto note = [&](Attribute attr) {
    StringRef file = cast<moe::TensorRefAttr>(attr).getFile();
    if (!file.ends_with(".onnx")) {
      needsSafetensors = true;
      return;
    }
    if (failure || source->onnxModels.count(file))
      return;
    llvm::SmallString<256> path(dir);
    llvm::sys::path::append(path, file);
    llvm::Expected<std::unique_ptr<OnnxModel>> model = OnnxModel::load(path);
    if (!model)
      failure = model.takeError();
    else
      source->onnxModels[file] = std::move(*model);
  };
  func.walk([&](moe::WeightOp w) {
    llvm::for_each(w.getSources(), note);
    if (std::optional<ArrayAttr> scales = w.getScaleSources())
      llvm::for_each(*scales, note);
  });
  if (failure)
    return std::move(*failure);
  if (needsSafetensors) {
    llvm::Expected<std::unique_ptr<hf::Checkpoint>> checkpoint =
        hf::Checkpoint::open(dir);
    if (!checkpoint)
      return checkpoint.takeError();
    source->checkpoint = std::move(*checkpoint);
  }
  return std::unique_ptr<WeightSource>(std::move(source));
}

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
        int64_t(tensor.bytes.size()) != product(shape) * elementBytes(element))
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
  RankedTensorType stored = weight.getStoredType();
  ArrayAttr sources = weight.getSources();
  std::optional<ArrayAttr> scaleSources = weight.getScaleSources();
  moe::BlockScaleAttr storedScheme = weight.getStoredSchemeAttr();
  Type f32 = Float32Type::get(op->getContext());
  if (elementBytes(stored.getElementType()) == 0)
    return op->emitOpError("cannot be folded: unsupported element type ")
           << stored.getElementType();

  // Reads one checkpoint tensor, checking it against the IR.
  auto read = [&](Attribute ref, Type element, ArrayRef<int64_t> shape,
                  std::vector<uint8_t> &into) -> LogicalResult {
    if (llvm::Error error =
            source.read(cast<moe::TensorRefAttr>(ref), element, shape, into))
      return op->emitOpError() << llvm::toString(std::move(error));
    return success();
  };

  ArrayAttr transforms = weight.getTransforms();
  bool stacked =
      !transforms.empty() && isa<moe::StackTransformAttr>(transforms[0]);
  int64_t begin = slice ? *slice : 0;
  int64_t end = slice ? *slice + 1 : int64_t(sources.size());
  if (slice && (!stacked || *slice >= int64_t(sources.size())))
    return op->emitOpError("has no expert #") << *slice;

  HostTensor data, scale;
  data.elementType = stored.getElementType();
  data.shape.assign(stored.getShape().begin(), stored.getShape().end());
  scale.elementType = f32;
  SmallVector<int64_t> storedScaleShape;
  if (storedScheme)
    storedScaleShape = storedScheme.getScaleShape(stored.getShape());
  scale.shape.assign(storedScaleShape.begin(), storedScaleShape.end());
  for (int64_t i = begin; i < end; ++i) {
    if (failed(read(sources[i], stored.getElementType(), stored.getShape(),
                    data.bytes)))
      return failure();
    if (!storedScheme)
      continue;
    if (!scaleSources || i >= int64_t(scaleSources->size()))
      return op->emitOpError("has no scale source for source #") << i;
    if (failed(read((*scaleSources)[i], f32, storedScaleShape, scale.bytes)))
      return failure();
  }
  if (stacked && !slice) {
    data.shape.insert(data.shape.begin(), int64_t(sources.size()));
    scale.shape.insert(scale.shape.begin(), int64_t(sources.size()));
  }

  bool scaled = storedScheme != nullptr;
  for (Attribute transform : transforms.getValue().drop_front(stacked)) {
    if (isa<moe::TransposeTransformAttr>(transform)) {
      transposeLastTwo(data);
      if (scaled)
        transposeLastTwo(scale);
    } else if (auto q = dyn_cast<moe::QuantizeTransformAttr>(transform)) {
      if (!isHostFloat(data.elementType))
        return op->emitOpError("cannot quantize elements of type ")
               << data.elementType;
      auto quantized = quantize(op, data, q.getScheme());
      if (failed(quantized))
        return failure();
      data = std::move(quantized->first);
      scale = std::move(quantized->second);
      scaled = true;
    } else {
      return op->emitOpError("has a transform the artifact writer does not "
                             "know here: ")
             << transform;
    }
  }
  SmallVector<HostTensor, 2> results;
  results.push_back(std::move(data));
  if (scaled)
    results.push_back(std::move(scale));
  return results;
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
  results.push_back(concat(inputs, axis));
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
  auto quantized = quantize(op, *x, q.getScheme());
  if (failed(quantized))
    return failure();
  SmallVector<HostTensor, 2> results;
  results.push_back(std::move(quantized->first));
  results.push_back(std::move(quantized->second));
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
    values = decode(*x);
  }
  std::vector<float> scales = decode(*scale);
  for (int64_t b = 0; b < m.batches; ++b)
    for (int64_t r = 0; r < m.rows; ++r)
      for (int64_t c = 0; c < m.cols; ++c)
        values[(b * m.rows + r) * m.cols + c] *=
            scales[(b * blockRows + r / br) * blockCols + c / bc];
  HostTensor out;
  out.shape.assign(shape.begin(), shape.end());
  out.elementType = element;
  out.bytes = encode(values, element);
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
