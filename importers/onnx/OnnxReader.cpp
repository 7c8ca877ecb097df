//===- OnnxReader.cpp - Validated ONNX model reader -------------*- C++ -*-===//
//
// Parses an ONNX ModelProto from an untrusted file and maps it mechanically
// onto the `onnx` dialect. Validation happens before IR is built: model and
// graph structure, every tensor's shape and byte size (overflow-checked), its
// embedded data and its external data (see ExternalData.h), value types and
// attribute kinds. Operators are not interpreted here.
//
//===----------------------------------------------------------------------===//

#include "importers/onnx/OnnxReader.h"
#include "importers/onnx/ExternalData.h"
#include "importers/onnx/OnnxDialect.h"
#include "runtime/support/File.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/ADT/bit.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SwapByteOrder.h"

#include <google/protobuf/io/coded_stream.h>
#include <onnx/onnx_pb.h>

#include <cstring>
#include <map>

using namespace mlir;
using namespace mlir::moec;
using mlir::moec::onnx_ir::InitializerOp;
using mlir::moec::onnx_ir::NodeOp;
using mlir::moec::onnx_ir::NoneOp;

namespace {

//===----------------------------------------------------------------------===//
// Element types
//===----------------------------------------------------------------------===//

/// TensorProto.DataType codes, including those newer than Debian's onnx 1.12
/// headers (the field is a plain int32 on the wire).
enum DataType : int32_t {
  kUndefined = 0,
  kFloat = 1,
  kUint8 = 2,
  kInt8 = 3,
  kUint16 = 4,
  kInt16 = 5,
  kInt32 = 6,
  kInt64 = 7,
  kString = 8,
  kBool = 9,
  kFloat16 = 10,
  kDouble = 11,
  kUint32 = 12,
  kUint64 = 13,
  kComplex64 = 14,
  kComplex128 = 15,
  kBfloat16 = 16,
  kFloat8E4M3FN = 17,
  kFloat8E4M3FNUZ = 18,
  kFloat8E5M2 = 19,
  kFloat8E5M2FNUZ = 20,
  kUint4 = 21,
  kInt4 = 22,
  kFloat4E2M1 = 23,
  kFloat8E8M0 = 24,
  kUint2 = 25,
  kInt2 = 26,
};

/// Bits per element of `code`; 0 for strings and unknown codes.
unsigned elementBits(int32_t code) {
  switch (code) {
  case kBool:
  case kUint8:
  case kInt8:
  case kFloat8E4M3FN:
  case kFloat8E4M3FNUZ:
  case kFloat8E5M2:
  case kFloat8E5M2FNUZ:
  case kFloat8E8M0:
    return 8;
  case kUint16:
  case kInt16:
  case kFloat16:
  case kBfloat16:
    return 16;
  case kFloat:
  case kInt32:
  case kUint32:
    return 32;
  case kInt64:
  case kUint64:
  case kDouble:
  case kComplex64:
    return 64;
  case kComplex128:
    return 128;
  case kUint4:
  case kInt4:
  case kFloat4E2M1:
    return 4;
  case kUint2:
  case kInt2:
    return 2;
  default:
    return 0;
  }
}

/// The ONNX spelling of `code` for messages and opaque types.
std::string dataTypeName(int32_t code) {
  static const char *const names[] = {
      "undefined",      "float",      "uint8",
      "int8",           "uint16",     "int16",
      "int32",          "int64",      "string",
      "bool",           "float16",    "double",
      "uint32",         "uint64",     "complex64",
      "complex128",     "bfloat16",   "float8e4m3fn",
      "float8e4m3fnuz", "float8e5m2", "float8e5m2fnuz",
      "uint4",          "int4",       "float4e2m1",
      "float8e8m0",     "uint2",      "int2"};
  if (code >= 0 && code < static_cast<int32_t>(std::size(names)))
    return names[code];
  return "data type " + std::to_string(code);
}

/// The MLIR element type of `code`, or null for codes MLIR has no type for.
/// Signed integers are signless (as the `moe` dialect uses them), unsigned
/// ones are `ui<N>`, strings are `!onnx.opaque<"string">`.
Type elementType(int32_t code, MLIRContext *context) {
  Builder b(context);
  switch (code) {
  case kFloat:
    return b.getF32Type();
  case kUint8:
    return IntegerType::get(context, 8, IntegerType::Unsigned);
  case kInt8:
    return b.getIntegerType(8);
  case kUint16:
    return IntegerType::get(context, 16, IntegerType::Unsigned);
  case kInt16:
    return b.getIntegerType(16);
  case kInt32:
    return b.getI32Type();
  case kInt64:
    return b.getI64Type();
  case kString:
    return onnx_ir::OpaqueType::get(context, "string");
  case kBool:
    return b.getI1Type();
  case kFloat16:
    return b.getF16Type();
  case kDouble:
    return b.getF64Type();
  case kUint32:
    return IntegerType::get(context, 32, IntegerType::Unsigned);
  case kUint64:
    return IntegerType::get(context, 64, IntegerType::Unsigned);
  case kComplex64:
    return ComplexType::get(b.getF32Type());
  case kComplex128:
    return ComplexType::get(b.getF64Type());
  case kBfloat16:
    return b.getBF16Type();
  case kFloat8E4M3FN:
    return b.getType<Float8E4M3FNType>();
  case kFloat8E4M3FNUZ:
    return b.getType<Float8E4M3FNUZType>();
  case kFloat8E5M2:
    return b.getType<Float8E5M2Type>();
  case kFloat8E5M2FNUZ:
    return b.getType<Float8E5M2FNUZType>();
  case kUint4:
    return IntegerType::get(context, 4, IntegerType::Unsigned);
  case kInt4:
    return b.getIntegerType(4);
  case kFloat4E2M1:
    return b.getType<Float4E2M1FNType>();
  case kFloat8E8M0:
    return b.getType<Float8E8M0FNUType>();
  case kUint2:
    return IntegerType::get(context, 2, IntegerType::Unsigned);
  case kInt2:
    return b.getIntegerType(2);
  default:
    return {};
  }
}

//===----------------------------------------------------------------------===//
// Tensors
//===----------------------------------------------------------------------===//

/// What validation learned about one tensor.
struct TensorInfo {
  const onnx::TensorProto *proto = nullptr;
  /// A description for messages: "initializer 'w'".
  std::string what;
  SmallVector<int64_t> shape;
  uint64_t count = 0;
  /// Bytes of the raw little-endian layout (0 for strings).
  uint64_t bytes = 0;
  std::optional<ExternalDataRef> external;
};

/// Appends the `size` low-order bytes of `value`, little-endian.
void appendLE(std::vector<char> &out, uint64_t value, unsigned size) {
  for (unsigned i = 0; i < size; ++i)
    out.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
}

/// Re-encodes the typed repeated field of `tensor` in ONNX's raw layout.
/// `validateTensor` has already checked the field's length.
std::vector<char> encodeTypedData(const onnx::TensorProto &tensor) {
  std::vector<char> out;
  int32_t code = tensor.data_type();
  switch (code) {
  case kFloat:
  case kComplex64:
    for (float value : tensor.float_data())
      appendLE(out, llvm::bit_cast<uint32_t>(value), 4);
    break;
  case kDouble:
  case kComplex128:
    for (double value : tensor.double_data())
      appendLE(out, llvm::bit_cast<uint64_t>(value), 8);
    break;
  case kInt64:
    for (int64_t value : tensor.int64_data())
      appendLE(out, static_cast<uint64_t>(value), 8);
    break;
  case kUint32:
  case kUint64:
    for (uint64_t value : tensor.uint64_data())
      appendLE(out, value, elementBits(code) / 8);
    break;
  default:
    for (int32_t value : tensor.int32_data())
      appendLE(out, static_cast<uint32_t>(value), elementBits(code) / 8);
    break;
  }
  return out;
}

/// The number of entries the typed field of `code` must hold for `count`
/// elements, and that field's current size.
std::pair<uint64_t, uint64_t> typedFieldSizes(const onnx::TensorProto &tensor,
                                              uint64_t count) {
  switch (tensor.data_type()) {
  case kFloat:
    return {count, tensor.float_data_size()};
  case kComplex64:
    return {2 * count, tensor.float_data_size()};
  case kDouble:
    return {count, tensor.double_data_size()};
  case kComplex128:
    return {2 * count, tensor.double_data_size()};
  case kInt64:
    return {count, tensor.int64_data_size()};
  case kUint32:
  case kUint64:
    return {count, tensor.uint64_data_size()};
  case kString:
    return {count, tensor.string_data_size()};
  default:
    return {count, tensor.int32_data_size()};
  }
}

//===----------------------------------------------------------------------===//
// The reader
//===----------------------------------------------------------------------===//

/// Validates a model and builds its IR; owns nothing but references to the
/// model held by OnnxModel::Impl.
class Reader {
public:
  Reader(StringRef path, const OnnxReaderOptions &options)
      : path(path), options(options) {}

  llvm::Error fail(const llvm::Twine &message) const {
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "'" + path + "': " + message);
  }

  llvm::Expected<TensorInfo> validateTensor(const onnx::TensorProto &tensor,
                                            std::string what) const;
  llvm::Error validateSubgraphs(const onnx::NodeProto &node, int depth) const;
  llvm::Error validateGraphTensors(const onnx::GraphProto &graph,
                                   int depth) const;

  llvm::Expected<Type> convertType(const onnx::TypeProto &type,
                                   MLIRContext *context, StringRef what) const;
  llvm::Expected<Attribute> convertAttribute(const onnx::AttributeProto &attr,
                                             MLIRContext *context,
                                             StringRef what) const;
  llvm::Expected<ElementsAttr> decodeInline(const TensorInfo &info,
                                            MLIRContext *context) const;
  llvm::Expected<Attribute> tensorAttr(const onnx::TensorProto &tensor,
                                       MLIRContext *context,
                                       StringRef what) const;

  StringRef path;
  const OnnxReaderOptions &options;
};

llvm::Expected<TensorInfo>
Reader::validateTensor(const onnx::TensorProto &tensor,
                       std::string what) const {
  TensorInfo info;
  info.proto = &tensor;
  info.what = std::move(what);
  int32_t code = tensor.data_type();
  if (elementBits(code) == 0 && code != kString)
    return fail(info.what + " has the unsupported " + dataTypeName(code));
  if (tensor.has_segment())
    return fail(info.what + " is a segment of a tensor, which is not "
                            "supported");
  if (tensor.dims_size() > 64)
    return fail(llvm::formatv("{0} has rank {1}; at most 64 is supported",
                              info.what, tensor.dims_size())
                    .str());
  info.count = 1;
  for (int64_t dim : tensor.dims()) {
    if (dim < 0)
      return fail(
          llvm::formatv("{0} has the negative dimension {1}", info.what, dim)
              .str());
    if (__builtin_mul_overflow(info.count, static_cast<uint64_t>(dim),
                               &info.count))
      return fail(info.what + " has more elements than fit in 64 bits");
    info.shape.push_back(dim);
  }
  if (code != kString) {
    uint64_t bits;
    if (__builtin_mul_overflow(info.count, uint64_t(elementBits(code)), &bits))
      return fail(info.what + " has a byte size that overflows 64 bits");
    info.bytes = bits / 8 + (bits % 8 != 0);
    if (info.bytes > options.maxTensorBytes)
      return fail(llvm::formatv("{0} claims {1} bytes; the limit is {2}",
                                info.what, info.bytes, options.maxTensorBytes)
                      .str());
  }

  bool external = tensor.has_data_location() &&
                  tensor.data_location() == onnx::TensorProto::EXTERNAL;
  if (!external && tensor.external_data_size() != 0)
    return fail(info.what + " has external_data entries but its "
                            "data_location is not EXTERNAL");
  if (external) {
    if (code == kString)
      return fail(info.what + " is a string tensor in external data, which "
                              "ONNX does not allow");
    if (tensor.has_raw_data())
      return fail(info.what + " has both raw_data and external data");
    std::vector<std::pair<std::string, std::string>> entries;
    for (const onnx::StringStringEntryProto &entry : tensor.external_data())
      entries.emplace_back(entry.key(), entry.value());
    auto ref = resolveExternalData(path, info.what, entries, info.bytes);
    if (!ref)
      return ref.takeError();
    info.external = std::move(*ref);
    return info;
  }
  if (tensor.has_raw_data()) {
    if (code == kString)
      return fail(info.what + " stores strings in raw_data, which ONNX "
                              "does not allow");
    if (tensor.raw_data().size() != info.bytes)
      return fail(
          llvm::formatv("{0} holds {1} bytes of raw_data, but its "
                        "type {2}[{3:$[, ]}] needs {4}",
                        info.what, tensor.raw_data().size(), dataTypeName(code),
                        llvm::make_range(info.shape.begin(), info.shape.end()),
                        info.bytes)
              .str());
    return info;
  }
  if (info.count != 0 && elementBits(code) != 0 && elementBits(code) < 8)
    return fail(info.what + " stores " + dataTypeName(code) +
                " values outside raw_data, which is not supported");
  auto [expected, actual] = typedFieldSizes(tensor, info.count);
  if (expected != actual)
    return fail(llvm::formatv("{0} holds {1} values, but its shape needs {2}",
                              info.what, actual, expected)
                    .str());
  return info;
}

llvm::Error Reader::validateGraphTensors(const onnx::GraphProto &graph,
                                         int depth) const {
  for (const onnx::TensorProto &tensor : graph.initializer())
    if (auto info =
            validateTensor(tensor, "initializer '" + tensor.name() +
                                       "' of subgraph '" + graph.name() + "'");
        !info)
      return info.takeError();
  if (graph.sparse_initializer_size() != 0)
    return fail("subgraph '" + graph.name() +
                "' has sparse initializers, which are not supported");
  for (const onnx::NodeProto &node : graph.node())
    if (llvm::Error error = validateSubgraphs(node, depth))
      return error;
  return llvm::Error::success();
}

llvm::Error Reader::validateSubgraphs(const onnx::NodeProto &node,
                                      int depth) const {
  if (depth > 16)
    return fail("node '" + node.name() + "' nests subgraphs more than 16 deep");
  for (const onnx::AttributeProto &attr : node.attribute()) {
    if (attr.has_g())
      if (llvm::Error error = validateGraphTensors(attr.g(), depth + 1))
        return error;
    for (const onnx::GraphProto &graph : attr.graphs())
      if (llvm::Error error = validateGraphTensors(graph, depth + 1))
        return error;
  }
  return llvm::Error::success();
}

/// Spells an ONNX type the way onnx's printer does: `tensor(float)`,
/// `seq(tensor(int64))`.
std::string describeType(const onnx::TypeProto &type) {
  switch (type.value_case()) {
  case onnx::TypeProto::kTensorType:
    return "tensor(" + dataTypeName(type.tensor_type().elem_type()) + ")";
  case onnx::TypeProto::kSequenceType:
    return "seq(" + describeType(type.sequence_type().elem_type()) + ")";
  case onnx::TypeProto::kMapType:
    return "map(" + dataTypeName(type.map_type().key_type()) + ", " +
           describeType(type.map_type().value_type()) + ")";
  case onnx::TypeProto::kOptionalType:
    return "optional(" + describeType(type.optional_type().elem_type()) + ")";
  case onnx::TypeProto::kSparseTensorType:
    return "sparse_tensor(" +
           dataTypeName(type.sparse_tensor_type().elem_type()) + ")";
  default:
    return "unknown";
  }
}

llvm::Expected<Type> Reader::convertType(const onnx::TypeProto &type,
                                         MLIRContext *context,
                                         StringRef what) const {
  if (type.value_case() != onnx::TypeProto::kTensorType)
    return Type(onnx_ir::OpaqueType::get(context, describeType(type)));
  const onnx::TypeProto::Tensor &tensor = type.tensor_type();
  Type element = elementType(tensor.elem_type(), context);
  if (!element)
    return Type(onnx_ir::OpaqueType::get(context, describeType(type)));
  if (!tensor.has_shape())
    return Type(UnrankedTensorType::get(element));
  if (tensor.shape().dim_size() > 64)
    return fail(llvm::formatv("{0} has rank {1}; at most 64 is supported", what,
                              tensor.shape().dim_size())
                    .str());
  SmallVector<int64_t> shape;
  for (const onnx::TensorShapeProto::Dimension &dim : tensor.shape().dim()) {
    if (!dim.has_dim_value()) {
      shape.push_back(ShapedType::kDynamic);
      continue;
    }
    if (dim.dim_value() < 0)
      return fail(llvm::formatv("{0} has the negative dimension {1}", what,
                                dim.dim_value())
                      .str());
    shape.push_back(dim.dim_value());
  }
  return Type(RankedTensorType::get(shape, element));
}

llvm::Expected<ElementsAttr> Reader::decodeInline(const TensorInfo &info,
                                                  MLIRContext *context) const {
  const onnx::TensorProto &tensor = *info.proto;
  int32_t code = tensor.data_type();
  auto type = RankedTensorType::get(info.shape, elementType(code, context));
  if (code == kString) {
    SmallVector<StringRef> strings(tensor.string_data().begin(),
                                   tensor.string_data().end());
    return ElementsAttr(DenseStringElementsAttr::get(type, strings));
  }
  std::vector<char> raw = tensor.has_raw_data()
                              ? std::vector<char>(tensor.raw_data().begin(),
                                                  tensor.raw_data().end())
                              : encodeTypedData(tensor);
  if (code == kBool) {
    SmallVector<bool> values;
    for (char byte : raw)
      values.push_back(byte != 0);
    return ElementsAttr(DenseElementsAttr::get(type, values));
  }
  unsigned bits = elementBits(code);
  if (bits < 8) {
    // MLIR stores each sub-byte element in a byte of its own; ONNX packs
    // them, the first element in the lowest bits.
    std::vector<char> unpacked;
    for (uint64_t i = 0; i < info.count; ++i) {
      uint64_t bit = i * bits;
      unsigned byte = static_cast<unsigned char>(raw[bit / 8]);
      unpacked.push_back(
          static_cast<char>((byte >> (bit % 8)) & ((1u << bits) - 1)));
    }
    raw = std::move(unpacked);
  }
  if (!llvm::sys::IsLittleEndianHost)
    return fail("reading tensors needs a little-endian host");
  bool splat = false;
  if (!DenseElementsAttr::isValidRawBuffer(type, raw, splat))
    return fail(info.what + " cannot be represented as dense elements");
  return ElementsAttr(DenseElementsAttr::getFromRawBuffer(type, raw));
}

llvm::Expected<Attribute> Reader::tensorAttr(const onnx::TensorProto &tensor,
                                             MLIRContext *context,
                                             StringRef what) const {
  auto info = validateTensor(tensor, what.str());
  if (!info)
    return info.takeError();
  if (info->external)
    return fail(what + " keeps its data in an external file, which is only "
                       "supported for initializers and Constant nodes");
  auto value = decodeInline(*info, context);
  if (!value)
    return value.takeError();
  return Attribute(*value);
}

/// A one-line summary of a subgraph attribute; bodies are not imported.
std::string summarizeGraph(const onnx::GraphProto &graph) {
  return llvm::formatv("graph '{0}' ({1} nodes, not imported)", graph.name(),
                       graph.node_size())
      .str();
}

llvm::Expected<Attribute>
Reader::convertAttribute(const onnx::AttributeProto &attr, MLIRContext *context,
                         StringRef what) const {
  Builder b(context);
  std::string where = (what + ", attribute '" + attr.name() + "'").str();
  if (!attr.ref_attr_name().empty())
    return fail(where + " refers to a function attribute, which only "
                        "function bodies may do");
  using A = onnx::AttributeProto;
  A::AttributeType kind = attr.type();
  if (kind == A::UNDEFINED) {
    // IR version 1 models leave the type out; infer it from the field set.
    if (attr.has_f())
      kind = A::FLOAT;
    else if (attr.has_i())
      kind = A::INT;
    else if (attr.has_s())
      kind = A::STRING;
    else if (attr.has_t())
      kind = A::TENSOR;
    else if (attr.has_g())
      kind = A::GRAPH;
    else if (attr.floats_size())
      kind = A::FLOATS;
    else if (attr.ints_size())
      kind = A::INTS;
    else if (attr.strings_size())
      kind = A::STRINGS;
    else
      return fail(where + " has no type and no value");
  }
  switch (kind) {
  case A::FLOAT:
    return Attribute(b.getF32FloatAttr(attr.f()));
  case A::INT:
    return Attribute(b.getI64IntegerAttr(attr.i()));
  case A::STRING:
    return Attribute(b.getStringAttr(attr.s()));
  case A::TENSOR:
    return tensorAttr(attr.t(), context, where);
  case A::GRAPH:
    return Attribute(b.getStringAttr(summarizeGraph(attr.g())));
  case A::FLOATS:
    return Attribute(b.getDenseF32ArrayAttr(
        SmallVector<float>(attr.floats().begin(), attr.floats().end())));
  case A::INTS:
    return Attribute(b.getDenseI64ArrayAttr(
        SmallVector<int64_t>(attr.ints().begin(), attr.ints().end())));
  case A::STRINGS: {
    SmallVector<Attribute> strings;
    for (const std::string &s : attr.strings())
      strings.push_back(b.getStringAttr(s));
    return Attribute(b.getArrayAttr(strings));
  }
  case A::TENSORS: {
    SmallVector<Attribute> tensors;
    for (auto [index, tensor] : llvm::enumerate(attr.tensors())) {
      auto value = tensorAttr(tensor, context,
                              where + " tensor #" + std::to_string(index));
      if (!value)
        return value.takeError();
      tensors.push_back(*value);
    }
    return Attribute(b.getArrayAttr(tensors));
  }
  case A::GRAPHS: {
    SmallVector<Attribute> graphs;
    for (const onnx::GraphProto &graph : attr.graphs())
      graphs.push_back(b.getStringAttr(summarizeGraph(graph)));
    return Attribute(b.getArrayAttr(graphs));
  }
  case A::TYPE_PROTO: {
    auto type = convertType(attr.tp(), context, where);
    if (!type)
      return type.takeError();
    return Attribute(TypeAttr::get(*type));
  }
  case A::TYPE_PROTOS: {
    SmallVector<Attribute> types;
    for (const onnx::TypeProto &tp : attr.type_protos()) {
      auto type = convertType(tp, context, where);
      if (!type)
        return type.takeError();
      types.push_back(TypeAttr::get(*type));
    }
    return Attribute(b.getArrayAttr(types));
  }
  default:
    return fail(where + " is a sparse tensor, which is not supported");
  }
}

} // namespace

//===----------------------------------------------------------------------===//
// OnnxModel
//===----------------------------------------------------------------------===//

struct OnnxModel::Impl {
  std::string path;
  OnnxReaderOptions options;
  onnx::ModelProto model;
  /// The opset version of each imported domain; `ai.onnx` is "".
  std::map<std::string, int64_t> opsets;
  /// Initializers of the main graph and tensor-valued Constant outputs.
  llvm::StringMap<TensorInfo> tensors;
  /// Value names that are graph inputs without a same-named initializer.
  llvm::StringSet<> graphInputs;

  Reader reader() const { return Reader(path, options); }
  llvm::Error validate();
};

OnnxModel::OnnxModel(std::unique_ptr<Impl> impl) : impl(std::move(impl)) {}
OnnxModel::~OnnxModel() = default;

StringRef OnnxModel::getPath() const { return impl->path; }

/// The domain key of `opsets` for `domain`.
static std::string canonicalDomain(StringRef domain) {
  return domain == "ai.onnx" ? std::string() : domain.str();
}

/// Names a node in messages: its name, or its op type and index.
static std::string nodeLabel(const onnx::NodeProto &node, int index) {
  if (!node.name().empty())
    return "node '" + node.name() + "' (" + node.op_type() + ")";
  return llvm::formatv("node #{0} ({1})", index, node.op_type()).str();
}

llvm::Error OnnxModel::Impl::validate() {
  Reader r = reader();
  if (!model.has_ir_version() || model.ir_version() < 3)
    return r.fail(llvm::formatv("has IR version {0}; at least 3 (with "
                                "opset_import) is required",
                                model.ir_version())
                      .str());
  if (model.opset_import_size() == 0)
    return r.fail("has no opset_import");
  for (const onnx::OperatorSetIdProto &opset : model.opset_import()) {
    std::string domain = canonicalDomain(opset.domain());
    if (opset.version() < 1)
      return r.fail(llvm::formatv("imports domain '{0}' at version {1}",
                                  opset.domain(), opset.version())
                        .str());
    if (!opsets.emplace(domain, opset.version()).second)
      return r.fail("imports domain '" + opset.domain() + "' twice");
  }
  if (!model.has_graph())
    return r.fail("has no graph");
  const onnx::GraphProto &graph = model.graph();
  if (graph.sparse_initializer_size() != 0)
    return r.fail("has sparse initializers, which are not supported");

  // Every value is defined once, before it is used (ONNX graphs are
  // topologically sorted).
  llvm::StringSet<> defined;
  for (const onnx::TensorProto &tensor : graph.initializer()) {
    if (tensor.name().empty())
      return r.fail("has an initializer without a name");
    auto info = r.validateTensor(tensor, "initializer '" + tensor.name() + "'");
    if (!info)
      return info.takeError();
    if (!tensors.try_emplace(tensor.name(), std::move(*info)).second)
      return r.fail("has two initializers named '" + tensor.name() + "'");
    defined.insert(tensor.name());
  }
  for (const onnx::ValueInfoProto &input : graph.input()) {
    if (input.name().empty())
      return r.fail("has a graph input without a name");
    // An input with a same-named initializer is a default value (IR < 4).
    if (defined.contains(input.name()))
      continue;
    if (!graphInputs.insert(input.name()).second)
      return r.fail("has two graph inputs named '" + input.name() + "'");
    defined.insert(input.name());
  }
  for (auto [index, node] : llvm::enumerate(graph.node())) {
    std::string label = nodeLabel(node, index);
    if (node.op_type().empty())
      return r.fail(llvm::formatv("node #{0} has no op_type", index).str());
    if (!opsets.count(canonicalDomain(node.domain())))
      return r.fail(label + " is in domain '" + node.domain() +
                    "', which the model does not import (opset_import)");
    for (const std::string &input : node.input())
      if (!input.empty() && !defined.contains(input))
        return r.fail(label + " uses '" + input +
                      "', which no earlier node, initializer or graph input "
                      "defines");
    llvm::StringSet<> attrNames;
    for (const onnx::AttributeProto &attr : node.attribute())
      if (attr.name().empty() || !attrNames.insert(attr.name()).second)
        return r.fail(label + " has an unnamed or repeated attribute '" +
                      attr.name() + "'");
    bool constant =
        node.op_type() == "Constant" && canonicalDomain(node.domain()).empty();
    if (constant) {
      if (node.output_size() != 1 || node.output(0).empty())
        return r.fail(label + " must have exactly one output");
      if (node.attribute_size() != 1)
        return r.fail(label + " must have exactly one value attribute");
      const onnx::AttributeProto &attr = node.attribute(0);
      if (attr.name() == "sparse_value")
        return r.fail(label + " holds a sparse tensor, which is not "
                              "supported");
      if (attr.name() == "value") {
        auto info = r.validateTensor(attr.t(), label + " value");
        if (!info)
          return info.takeError();
        tensors.try_emplace(node.output(0), std::move(*info));
      }
    } else if (llvm::Error error = r.validateSubgraphs(node, 0)) {
      return error;
    }
    for (const std::string &output : node.output()) {
      if (output.empty())
        continue;
      if (!defined.insert(output).second)
        return r.fail(label + " defines '" + output +
                      "', which is already defined");
    }
  }
  if (graph.output_size() == 0)
    return r.fail("has no graph outputs");
  for (const onnx::ValueInfoProto &output : graph.output())
    if (!defined.contains(output.name()))
      return r.fail("has the graph output '" + output.name() +
                    "', which nothing defines");
  return llvm::Error::success();
}

llvm::Expected<std::unique_ptr<OnnxModel>>
OnnxModel::load(StringRef path, const OnnxReaderOptions &options) {
  Reader r(path, options);

  // Open without blocking and check on the descriptor that this is a
  // regular file (a FIFO would hang the open, /dev/zero never end), then
  // check the size, all before reading anything.
  std::string file = path.str();
  ::moec::runtime::StatusOr<::moec::runtime::RegularFile> opened =
      ::moec::runtime::openRegularFile(file);
  if (!opened.isOk()) {
    // The message starts with the path, which Reader::fail puts first.
    StringRef message = opened.status().message();
    message.consume_front(file + ": ");
    return r.fail(message);
  }
  uint64_t size = opened->size;
  if (size > options.maxFileBytes)
    return r.fail(llvm::formatv("is {0} bytes; ONNX files are limited to {1} "
                                "(keep large weights in external data)",
                                size, options.maxFileBytes)
                      .str());
  auto buffer = llvm::MemoryBuffer::getOpenFile(
      opened->fd.get(), path, size, /*RequiresNullTerminator=*/false);
  if (!buffer)
    return r.fail("cannot read: " + buffer.getError().message());
  if ((*buffer)->getBufferSize() != size)
    return r.fail("changed size while it was read");
  return fromBuffer(llvm::MemoryBufferRef((*buffer)->getBuffer(), path),
                    options);
}

llvm::Expected<std::unique_ptr<OnnxModel>>
OnnxModel::fromBuffer(llvm::MemoryBufferRef buffer,
                      const OnnxReaderOptions &options) {
  auto impl = std::make_unique<Impl>();
  impl->path = buffer.getBufferIdentifier().str();
  impl->options = options;
  Reader r = impl->reader();

  uint64_t size = buffer.getBufferSize();
  if (size == 0)
    return r.fail("is empty, not an ONNX model");
  // protobuf reads at most INT32_MAX bytes: a larger limit is clamped, so
  // that a file of exactly 2 GiB cannot wrap the int below.
  uint64_t limit = std::min<uint64_t>(options.maxFileBytes, INT32_MAX);
  if (size > limit)
    return r.fail(llvm::formatv("is {0} bytes; ONNX files are limited to {1} "
                                "(keep large weights in external data)",
                                size, limit)
                      .str());
  google::protobuf::io::CodedInputStream stream(
      reinterpret_cast<const uint8_t *>(buffer.getBufferStart()),
      static_cast<int>(size));
  stream.SetTotalBytesLimit(static_cast<int>(limit));
  stream.SetRecursionLimit(options.maxNesting);
  if (!impl->model.ParseFromCodedStream(&stream) ||
      !stream.ConsumedEntireMessage())
    return r.fail("is not a valid ONNX model: the protobuf is truncated or "
                  "corrupt (or nests messages deeper than " +
                  llvm::Twine(options.maxNesting) + " levels)");
  if (llvm::Error error = impl->validate())
    return std::move(error);
  return std::unique_ptr<OnnxModel>(new OnnxModel(std::move(impl)));
}

llvm::Expected<std::vector<char>>
OnnxModel::readTensorData(StringRef name) const {
  auto it = impl->tensors.find(name);
  if (it == impl->tensors.end())
    return impl->reader().fail("has no initializer or Constant named '" + name +
                               "'");
  const TensorInfo &info = it->second;
  if (info.external)
    return readExternalData(impl->path, info.what, *info.external);
  if (info.proto->data_type() == kString)
    return impl->reader().fail(info.what + " is a string tensor");
  if (info.proto->has_raw_data())
    return std::vector<char>(info.proto->raw_data().begin(),
                             info.proto->raw_data().end());
  return encodeTypedData(*info.proto);
}

//===----------------------------------------------------------------------===//
// IR construction
//===----------------------------------------------------------------------===//

void mlir::moec::loadOnnxReaderDialects(MLIRContext &context) {
  context.loadDialect<onnx_ir::OnnxDialect, func::FuncDialect>();
}

/// The ElementsAttr of a Constant node's list or scalar value attribute.
static ElementsAttr constantListValue(const onnx::AttributeProto &attr,
                                      MLIRContext *context) {
  Builder b(context);
  StringRef name = attr.name();
  if (name == "value_float")
    return DenseElementsAttr::get(RankedTensorType::get({}, b.getF32Type()),
                                  attr.f());
  if (name == "value_floats")
    return DenseElementsAttr::get(
        RankedTensorType::get({attr.floats_size()}, b.getF32Type()),
        ArrayRef<float>(attr.floats().data(), attr.floats_size()));
  if (name == "value_int")
    return DenseElementsAttr::get(RankedTensorType::get({}, b.getI64Type()),
                                  static_cast<int64_t>(attr.i()));
  if (name == "value_ints")
    return DenseElementsAttr::get(
        RankedTensorType::get({attr.ints_size()}, b.getI64Type()),
        ArrayRef<int64_t>(attr.ints().data(), attr.ints_size()));
  Type string = onnx_ir::OpaqueType::get(context, "string");
  if (name == "value_string")
    return DenseStringElementsAttr::get(RankedTensorType::get({}, string),
                                        {StringRef(attr.s())});
  if (name == "value_strings") {
    SmallVector<StringRef> strings(attr.strings().begin(),
                                   attr.strings().end());
    return DenseStringElementsAttr::get(
        RankedTensorType::get({attr.strings_size()}, string), strings);
  }
  return {};
}

llvm::Expected<OwningOpRef<ModuleOp>>
OnnxModel::toIR(MLIRContext *context) const {
  loadOnnxReaderDialects(*context);
  Reader r = impl->reader();
  const onnx::GraphProto &graph = impl->model.graph();
  Builder b(context);
  Location fileLoc = FileLineColLoc::get(context, impl->path, 0, 0);
  OwningOpRef<ModuleOp> module = ModuleOp::create(fileLoc);

  // Model-level facts, kept for the record and for the legalisation.
  SmallVector<NamedAttribute> opsets;
  for (const auto &[domain, version] : impl->opsets)
    opsets.push_back(b.getNamedAttr(domain.empty() ? "ai.onnx" : domain,
                                    b.getI64IntegerAttr(version)));
  const onnx::ModelProto &model = impl->model;
  (*module)->setAttr("onnx.model", b.getStringAttr(impl->path));
  (*module)->setAttr("onnx.ir_version",
                     b.getI64IntegerAttr(model.ir_version()));
  (*module)->setAttr("onnx.opset_import", b.getDictionaryAttr(opsets));
  if (!model.producer_name().empty())
    (*module)->setAttr("onnx.producer",
                       b.getStringAttr(model.producer_name() + " " +
                                       model.producer_version()));
  if (!graph.name().empty())
    (*module)->setAttr("onnx.graph", b.getStringAttr(graph.name()));

  // Declared types: value_info, then graph outputs.
  llvm::StringMap<const onnx::TypeProto *> declared;
  for (const onnx::ValueInfoProto &info : graph.value_info())
    declared[info.name()] = &info.type();
  for (const onnx::ValueInfoProto &info : graph.output())
    declared[info.name()] = &info.type();

  SmallVector<Type> inputTypes;
  SmallVector<const onnx::ValueInfoProto *> inputs;
  for (const onnx::ValueInfoProto &input : graph.input()) {
    if (!impl->graphInputs.contains(input.name()))
      continue;
    auto type = r.convertType(input.type(), context,
                              "graph input '" + input.name() + "'");
    if (!type)
      return type.takeError();
    inputTypes.push_back(*type);
    inputs.push_back(&input);
  }
  auto func = func::FuncOp::create(fileLoc, "forward",
                                   b.getFunctionType(inputTypes, {}));
  module->push_back(func);
  Block *body = func.addEntryBlock();
  OpBuilder builder = OpBuilder::atBlockBegin(body);
  llvm::StringMap<Value> values;
  for (auto [index, input] : llvm::enumerate(inputs)) {
    func.setArgAttr(index, "onnx.name", b.getStringAttr(input->name()));
    values[input->name()] = body->getArgument(index);
  }

  auto typeOf = [&](const std::string &name,
                    StringRef what) -> llvm::Expected<Type> {
    auto it = declared.find(name);
    if (it == declared.end())
      return Type(onnx_ir::OpaqueType::get(context, "unknown"));
    return r.convertType(*it->second, context, what);
  };

  // An initializer: the tensor's type, its values when small, its location.
  auto buildInitializer = [&](const TensorInfo &info, StringRef name,
                              Location loc,
                              bool constant) -> llvm::Expected<Value> {
    auto type = RankedTensorType::get(
        info.shape, elementType(info.proto->data_type(), context));
    auto op = InitializerOp::create(builder, loc, type, b.getStringAttr(name),
                                    ElementsAttr(), StringAttr(), IntegerAttr(),
                                    IntegerAttr(), StringAttr(), UnitAttr());
    if (constant)
      op.setConstant(true);
    if (info.external) {
      op.setLocation(info.external->location);
      op.setOffset(static_cast<int64_t>(info.external->offset));
      op.setLength(static_cast<int64_t>(info.external->length));
      if (!info.external->checksum.empty())
        op.setChecksum(info.external->checksum);
    } else if (info.bytes <= impl->options.inlineBytes &&
               (info.proto->data_type() != kString ||
                info.count <= impl->options.inlineBytes)) {
      auto value = r.decodeInline(info, context);
      if (!value)
        return value.takeError();
      op.setValueAttr(*value);
    }
    return op.getResult();
  };

  for (const onnx::TensorProto &tensor : graph.initializer()) {
    auto value = buildInitializer(
        impl->tensors.find(tensor.name())->second, tensor.name(),
        NameLoc::get(b.getStringAttr(tensor.name()), fileLoc),
        /*constant=*/false);
    if (!value)
      return value.takeError();
    values[tensor.name()] = *value;
  }

  Value none;
  for (auto [index, node] : llvm::enumerate(graph.node())) {
    std::string label = nodeLabel(node, index);
    std::string locName =
        node.name().empty()
            ? llvm::formatv("{0}#{1}", node.op_type(), index).str()
            : node.name();
    Location loc = NameLoc::get(b.getStringAttr(locName), fileLoc);
    std::string domain = canonicalDomain(node.domain());

    if (node.op_type() == "Constant" && domain.empty()) {
      // A Constant is an initializer that happens to live in the node list.
      const onnx::AttributeProto &attr = node.attribute(0);
      Value value;
      if (attr.name() == "value") {
        auto built =
            buildInitializer(impl->tensors.find(node.output(0))->second,
                             node.output(0), loc, /*constant=*/true);
        if (!built)
          return built.takeError();
        value = *built;
      } else {
        ElementsAttr elements = constantListValue(attr, context);
        if (!elements)
          return r.fail(label + " has the unknown value attribute '" +
                        attr.name() + "'");
        value = InitializerOp::create(
            builder, loc, elements.getType(), b.getStringAttr(node.output(0)),
            elements, StringAttr(), IntegerAttr(), IntegerAttr(), StringAttr(),
            b.getUnitAttr());
      }
      values[node.output(0)] = value;
      continue;
    }

    SmallVector<Value> operands;
    for (const std::string &input : node.input()) {
      if (input.empty()) {
        if (!none)
          none = [&] {
            OpBuilder atStart = OpBuilder::atBlockBegin(body);
            return NoneOp::create(atStart, fileLoc, b.getNoneType());
          }();
        operands.push_back(none);
        continue;
      }
      operands.push_back(values.lookup(input));
    }
    SmallVector<Type> resultTypes;
    for (const std::string &output : node.output()) {
      if (output.empty()) {
        resultTypes.push_back(b.getNoneType());
        continue;
      }
      auto type = typeOf(output, label + " output '" + output + "'");
      if (!type)
        return type.takeError();
      resultTypes.push_back(*type);
    }
    SmallVector<NamedAttribute> attributes;
    for (const onnx::AttributeProto &attr : node.attribute()) {
      auto value = r.convertAttribute(attr, context, label);
      if (!value)
        return value.takeError();
      attributes.push_back(b.getNamedAttr(attr.name(), *value));
    }
    auto op = NodeOp::create(
        builder, loc, resultTypes, operands, b.getStringAttr(node.op_type()),
        node.domain().empty() ? StringAttr() : b.getStringAttr(node.domain()),
        b.getI64IntegerAttr(impl->opsets.at(domain)),
        node.name().empty() ? StringAttr() : b.getStringAttr(node.name()),
        attributes.empty() ? DictionaryAttr()
                           : b.getDictionaryAttr(attributes));
    for (auto [output, result] : llvm::zip(node.output(), op.getResults()))
      if (!output.empty())
        values[output] = result;
  }

  SmallVector<Value> results;
  for (const onnx::ValueInfoProto &output : graph.output())
    results.push_back(values.lookup(output.name()));
  func::ReturnOp::create(builder, fileLoc, results);
  func.setType(b.getFunctionType(inputTypes, ValueRange(results).getTypes()));
  for (auto [index, output] : llvm::enumerate(graph.output()))
    func.setResultAttr(index, "onnx.name", b.getStringAttr(output.name()));
  return std::move(module);
}
