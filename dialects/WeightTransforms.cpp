//===- WeightTransforms.cpp - Host arithmetic of moe.weight -----*- C++ -*-===//
//
// Byte-level tensors: concatenation, transposition and stacking move bytes,
// and only FP8 quantization decodes to f32, with runtime/fp8's arithmetic.
//
//===----------------------------------------------------------------------===//

#include "dialects/WeightTransforms.h"

#include "runtime/fp8/Fp8.h"

#include "mlir/IR/BuiltinTypes.h"
#include "llvm/ADT/APFloat.h"

#include <algorithm>
#include <cmath>
#include <cstring>

using namespace mlir;
using namespace mlir::moec;

namespace fp8 = ::moec::runtime::fp8;

WeightSource::~WeightSource() = default;

llvm::Error mlir::moec::makeWeightError(moe::TensorRefAttr ref,
                                        const llvm::Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                 "tensor '" + ref.getName() + "' of '" +
                                     ref.getFile() + "': " + message);
}

//===----------------------------------------------------------------------===//
// Elements
//===----------------------------------------------------------------------===//

int64_t mlir::moec::numElementsOf(ArrayRef<int64_t> shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

int64_t mlir::moec::elementBytes(Type type) {
  if (type.isInteger(1))
    return 1;
  if (!type.isIntOrFloat() || type.getIntOrFloatBitWidth() % 8 != 0)
    return 0;
  return type.getIntOrFloatBitWidth() / 8;
}

bool mlir::moec::isHostFloat(Type type) {
  return isa<FloatType>(type) && elementBytes(type) != 0 &&
         elementBytes(type) <= 8;
}

std::vector<float> mlir::moec::decodeFloats(const HostTensor &t) {
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

std::vector<int64_t> mlir::moec::decodeIntegers(const HostTensor &t) {
  int64_t size = elementBytes(t.elementType);
  bool boolean = t.elementType.isInteger(1);
  std::vector<int64_t> out(t.bytes.size() / size);
  for (size_t i = 0; i < out.size(); ++i) {
    uint64_t bits = 0;
    for (int64_t b = 0; b < size; ++b)
      bits |= uint64_t(t.bytes[i * size + b]) << (8 * b);
    // Sign-extend from the element's width.
    unsigned shift = 64 - 8 * unsigned(size);
    out[i] = boolean ? int64_t(bits != 0) : int64_t(bits << shift) >> shift;
  }
  return out;
}

std::vector<uint8_t> mlir::moec::encodeFloats(ArrayRef<float> values,
                                              Type type) {
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

//===----------------------------------------------------------------------===//
// Layout transforms
//===----------------------------------------------------------------------===//

MatrixView mlir::moec::matrixView(ArrayRef<int64_t> shape) {
  if (shape.empty())
    return {1, 1, 1};
  if (shape.size() == 1)
    return {1, 1, shape[0]};
  return {numElementsOf(shape.drop_back(2)), shape[shape.size() - 2],
          shape.back()};
}

void mlir::moec::transposeLastTwo(HostTensor &t) {
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

HostTensor mlir::moec::concatTensors(ArrayRef<HostTensor> inputs,
                                     int64_t axis) {
  HostTensor out;
  out.elementType = inputs[0].elementType;
  out.shape = inputs[0].shape;
  out.shape[axis] = 0;
  for (const HostTensor &in : inputs)
    out.shape[axis] += in.shape[axis];
  int64_t size = elementBytes(out.elementType);
  int64_t outer = numElementsOf(ArrayRef<int64_t>(out.shape).take_front(axis));
  int64_t inner =
      numElementsOf(ArrayRef<int64_t>(out.shape).drop_front(axis + 1)) * size;
  out.bytes.resize(numElementsOf(out.shape) * size);
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

//===----------------------------------------------------------------------===//
// FP8 block quantization
//===----------------------------------------------------------------------===//

void mlir::moec::quantizeBlockwise(ArrayRef<float> values,
                                   ArrayRef<int64_t> shape,
                                   moe::BlockScaleAttr scheme,
                                   std::vector<uint8_t> &codes,
                                   std::vector<float> &scales) {
  MatrixView m = matrixView(shape);
  int64_t br = scheme.getBlock()[0], bc = scheme.getBlock()[1];
  int64_t blockRows = (m.rows + br - 1) / br,
          blockCols = (m.cols + bc - 1) / bc;
  int64_t size = m.rows * m.cols, scaleSize = blockRows * blockCols;
  codes.assign(values.size(), 0);
  scales.assign(m.batches * scaleSize, 0.0f);
  bool e4m3 = scheme.getFormat() == moe::Fp8Format::e4m3fn;
  for (int64_t b = 0; b < m.batches; ++b) {
    const float *in = values.data() + b * size;
    uint8_t *out = codes.data() + b * size;
    float *outScales = scales.data() + b * scaleSize;
    if (e4m3) {
      fp8::quantizeBlocks(in, m.rows, m.cols, br, bc, scheme.getPow2(), out,
                          outScales);
      continue;
    }
    for (int64_t r0 = 0; r0 < m.rows; r0 += br) {
      for (int64_t c0 = 0; c0 < m.cols; c0 += bc) {
        int64_t r1 = std::min(m.rows, r0 + br), c1 = std::min(m.cols, c0 + bc);
        float amax = 0.0f;
        for (int64_t r = r0; r < r1; ++r)
          for (int64_t c = c0; c < c1; ++c)
            if (std::isfinite(in[r * m.cols + c]))
              amax = std::max(amax, std::fabs(in[r * m.cols + c]));
        float scale = std::max(amax, fp8::kAmaxFloor) / fp8::kE5M2Max;
        if (scheme.getPow2()) {
          int exp;
          float mant = std::frexp(scale, &exp);
          scale = std::ldexp(1.0f, mant == 0.5f ? exp - 1 : exp);
        }
        outScales[(r0 / br) * blockCols + c0 / bc] = scale;
        for (int64_t r = r0; r < r1; ++r)
          for (int64_t c = c0; c < c1; ++c)
            out[r * m.cols + c] = fp8::floatToE5M2(in[r * m.cols + c] / scale);
      }
    }
  }
}

std::pair<HostTensor, HostTensor>
mlir::moec::quantizeHostTensor(const HostTensor &x,
                               moe::BlockScaleAttr scheme) {
  MLIRContext *context = scheme.getContext();
  std::vector<float> scales;
  HostTensor data, scale;
  data.shape = x.shape;
  if (scheme.getFormat() == moe::Fp8Format::e4m3fn)
    data.elementType = Float8E4M3FNType::get(context);
  else
    data.elementType = Float8E5M2Type::get(context);
  quantizeBlockwise(decodeFloats(x), x.shape, scheme, data.bytes, scales);
  scale.shape.assign(scheme.getScaleShape(x.shape));
  scale.elementType = Float32Type::get(context);
  scale.bytes.resize(scales.size() * 4);
  std::memcpy(scale.bytes.data(), scales.data(), scale.bytes.size());
  return std::make_pair(std::move(data), std::move(scale));
}

//===----------------------------------------------------------------------===//
// moe.weight
//===----------------------------------------------------------------------===//

FailureOr<SmallVector<HostTensor, 2>>
mlir::moec::readWeight(moe::WeightOp op, WeightSource &source,
                       std::optional<int64_t> slice) {
  RankedTensorType stored = op.getStoredType();
  ArrayAttr sources = op.getSources();
  std::optional<ArrayAttr> scaleSources = op.getScaleSources();
  moe::BlockScaleAttr storedScheme = op.getStoredSchemeAttr();
  Type f32 = Float32Type::get(op.getContext());
  if (elementBytes(stored.getElementType()) == 0)
    return op.emitOpError("cannot be read: unsupported element type ")
           << stored.getElementType();

  // Reads one checkpoint tensor, checking it against the IR.
  auto read = [&](Attribute ref, Type element, ArrayRef<int64_t> shape,
                  std::vector<uint8_t> &into) -> LogicalResult {
    if (llvm::Error error =
            source.read(cast<moe::TensorRefAttr>(ref), element, shape, into))
      return op.emitOpError() << llvm::toString(std::move(error));
    return success();
  };

  // The verifier guarantees #moe.stack comes first: the sources are read in
  // order, so stacking is only a change of shape.
  ArrayAttr transforms = op.getTransforms();
  bool stacked =
      !transforms.empty() && isa<moe::StackTransformAttr>(transforms[0]);
  int64_t begin = slice ? *slice : 0;
  int64_t end = slice ? *slice + 1 : int64_t(sources.size());
  if (slice && (!stacked || *slice >= int64_t(sources.size())))
    return op.emitOpError("has no expert #") << *slice;

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
      return op.emitOpError("has no scale source for source #") << i;
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
        return op.emitOpError("cannot quantize elements of type ")
               << data.elementType;
      std::tie(data, scale) = quantizeHostTensor(data, q.getScheme());
      scaled = true;
    } else {
      return op.emitOpError("has a transform that cannot be applied on the "
                            "host: ")
             << transform;
    }
  }
  SmallVector<HostTensor, 2> results;
  results.push_back(std::move(data));
  if (scaled)
    results.push_back(std::move(scale));
  return results;
}
