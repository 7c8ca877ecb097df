//===- Interpreter.cpp - Reference interpreter of moe IR --------*- C++ -*-===//
//
// Evaluates `moe` ops one at a time with plain loops: every value is a dense
// row-major host tensor, every float computation is f32 (GEMMs and
// reductions accumulate in natural index order, as the f32 reference does),
// and results are rounded to their element type. Weights are read through
// the caller's `WeightSource` from the checkpoint the module names. Speed is
// not a goal; being obviously right is.
//
//===----------------------------------------------------------------------===//

#include "reference/Interpreter.h"
#include "dialects/WeightTransforms.h"
#include "reference/Npy.h"
#include "runtime/fp8/Fp8.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/SymbolTable.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/ScopeExit.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/TypeSwitch.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>

using namespace mlir;
using namespace mlir::moec;
using mlir::moe::formatShape;
namespace fp8 = ::moec::runtime::fp8;
using moe::BlockScaleAttr;
using moe::Epilogue;
using moe::RopeScalingAttr;
using moe::RopeScalingKind;
using moe::RoutingAttr;

int64_t InterpTensor::numElements() const { return numElementsOf(shape); }

namespace {

//===----------------------------------------------------------------------===//
// Helpers
//===----------------------------------------------------------------------===//

/// A float tensor of `shape` filled with zeros (its element type is set from
/// the op's result type once the op has been evaluated).
InterpTensor floatTensor(ArrayRef<int64_t> shape) {
  InterpTensor t;
  t.shape.assign(shape.begin(), shape.end());
  t.floats.assign(numElementsOf(shape), 0.0f);
  return t;
}

/// An integer tensor of `shape` filled with zeros.
InterpTensor intTensor(ArrayRef<int64_t> shape, Type type) {
  InterpTensor t;
  t.shape.assign(shape.begin(), shape.end());
  t.elementType = type;
  t.ints.assign(numElementsOf(shape), 0);
  return t;
}

/// `shape` of `type` with its dynamic dimensions replaced by `dynamic`.
SmallVector<int64_t, 4> concreteShape(Type type, int64_t dynamic) {
  SmallVector<int64_t, 4> shape(cast<RankedTensorType>(type).getShape());
  for (int64_t &d : shape)
    if (ShapedType::isDynamic(d))
      d = dynamic;
  return shape;
}

float silu(float x) { return x / (1.0f + std::exp(-x)); }
float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

/// Rounds `x` to the nearest bf16 value (ties to even); NaN stays NaN.
float roundToBF16(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u)
    bits |= 0x00400000u;
  else
    bits += 0x7fffu + ((bits >> 16) & 1u);
  bits &= 0xffff0000u;
  std::memcpy(&x, &bits, 4);
  return x;
}

/// Rounds every element of the float tensor `t` to `t.elementType`. FP8
/// casts saturate (DESIGN.md §4); other narrow floats round to nearest even.
void roundToElementType(InterpTensor &t) {
  Type type = t.elementType;
  if (type.isF32() || type.isF64())
    return;
  if (type.isBF16()) {
    for (float &x : t.floats)
      x = roundToBF16(x);
  } else if (isa<Float8E4M3FNType>(type)) {
    for (float &x : t.floats)
      x = fp8::e4m3fnToFloat(fp8::floatToE4M3FN(x));
  } else if (isa<Float8E5M2Type>(type)) {
    for (float &x : t.floats)
      x = fp8::e5m2ToFloat(fp8::floatToE5M2(x));
  } else if (auto floatType = dyn_cast<FloatType>(type)) {
    for (float &x : t.floats) {
      bool lost;
      llvm::APFloat value(x);
      value.convert(floatType.getFloatSemantics(),
                    llvm::APFloat::rmNearestTiesToEven, &lost);
      value.convert(llvm::APFloat::IEEEsingle(),
                    llvm::APFloat::rmNearestTiesToEven, &lost);
      x = value.convertToFloat();
    }
  }
}

/// `y[r, n] = sum_k x[r, k] * w[n, k]` with an f32 accumulator in k order.
void gemm(const float *x, int64_t rows, const float *w, int64_t n, int64_t k,
          float *y) {
  for (int64_t r = 0; r < rows; ++r) {
    const float *xr = x + r * k;
    for (int64_t j = 0; j < n; ++j) {
      const float *wj = w + j * k;
      float acc = 0.0f;
      for (int64_t i = 0; i < k; ++i)
        acc += xr[i] * wj[i];
      y[r * n + j] = acc;
    }
  }
}

/// `silu(y[:, :n/2]) * y[:, n/2:]` for the `silu_mul` epilogue, else `y`.
std::vector<float> applyEpilogue(std::vector<float> y, int64_t rows, int64_t n,
                                 Epilogue epilogue) {
  if (epilogue != Epilogue::silu_mul)
    return y;
  int64_t half = n / 2;
  std::vector<float> out(rows * half);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < half; ++j)
      out[r * half + j] = silu(y[r * n + j]) * y[r * n + half + j];
  return out;
}

/// The order of routing scores: higher first, NaN below everything (so NaN
/// experts are picked last), ties to the lower index.
bool ranksBefore(float a, int64_t ia, float b, int64_t ib) {
  bool nanA = std::isnan(a), nanB = std::isnan(b);
  if (nanA || nanB) {
    if (nanA && nanB)
      return ia < ib;
    return nanB;
  }
  if (a != b)
    return a > b;
  return ia < ib;
}

/// The indices of the `k` best `scores` in rank order; distinct and in range
/// whatever the values (NaN and ±Inf included).
SmallVector<int64_t> topK(ArrayRef<float> scores, int64_t k) {
  SmallVector<int64_t> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return ranksBefore(scores[a], a, scores[b], b);
  });
  order.resize(std::min<int64_t>(k, order.size()));
  return order;
}

/// `x` quantized block by block under `scheme` (`quantizeBlockwise`): the
/// decoded FP8 data and the f32 scales, as `moe.quantize` and a fused
/// `quantize` return them.
SmallVector<InterpTensor> quantizeTensor(const InterpTensor &x,
                                         BlockScaleAttr scheme) {
  std::vector<uint8_t> codes;
  InterpTensor q, scale;
  q.shape = x.shape;
  quantizeBlockwise(x.floats, x.shape, scheme, codes, scale.floats);
  q.floats.resize(codes.size());
  bool e4m3 = scheme.getFormat() == moe::Fp8Format::e4m3fn;
  for (size_t i = 0; i < codes.size(); ++i)
    q.floats[i] =
        e4m3 ? fp8::e4m3fnToFloat(codes[i]) : fp8::e5m2ToFloat(codes[i]);
  scale.shape.assign(scheme.getScaleShape(x.shape));
  SmallVector<InterpTensor> results;
  results.push_back(std::move(q));
  results.push_back(std::move(scale));
  return results;
}

/// The host tensor `t` as an interpreter value: integers sign-extended,
/// floats decoded to f32.
InterpTensor toInterpTensor(const HostTensor &t) {
  InterpTensor result;
  result.shape = t.shape;
  if (isa<IntegerType>(t.elementType))
    result.ints = decodeIntegers(t);
  else
    result.floats = decodeFloats(t);
  return result;
}

//===----------------------------------------------------------------------===//
// The evaluator
//===----------------------------------------------------------------------===//

using Results = FailureOr<SmallVector<InterpTensor>>;

Results single(InterpTensor t) {
  SmallVector<InterpTensor> results;
  results.push_back(std::move(t));
  return results;
}

/// Routing of `T` tokens: `k` weights and expert indices per token.
struct Routed {
  std::vector<float> weights;
  std::vector<int64_t> indices;
};

class Evaluator {
public:
  explicit Evaluator(const InterpreterOptions &options) : options(options) {}

  /// Evaluates `func` on `args`.
  Results call(func::FuncOp func, ArrayRef<InterpTensor> args, int depth = 0);

private:
  using Frame = llvm::DenseMap<Value, InterpTensor>;

  const InterpTensor &val(Value value) { return frame->find(value)->second; }
  const InterpTensor *optionalVal(Value value) {
    return value ? &val(value) : nullptr;
  }
  LogicalResult evaluate(Operation *op, int depth);
  /// Checks `tensors` against the types of `values` (results of `op`),
  /// rounds them to their element types and binds them in the frame.
  LogicalResult store(Operation *op, ResultRange values,
                      MutableArrayRef<InterpTensor> tensors);
  /// The weights of the checkpoint folder `op`'s module names (or the one
  /// the options give), opened on first use.
  FailureOr<WeightSource *> weightsFor(Operation *op);

  Results evalWeight(moe::WeightOp op);
  Results evalEmbed(moe::EmbedOp op);
  Results evalMatmul(moe::MatmulOp op);
  Results evalElementwise(Operation *op, Value lhs, Value rhs,
                          float (*fn)(float, float));
  Results evalRmsNorm(moe::RmsNormOp op);
  Results evalAddRmsNorm(moe::AddRmsNormOp op);
  Results evalRope(moe::RopeOp op);
  Results evalAttention(moe::AttentionOp op);
  Results evalReshape(moe::ReshapeOp op);
  Results evalSlice(moe::SliceOp op);
  Results evalConcat(moe::ConcatOp op);
  Results evalExpand(moe::ExpandOp op);
  Results evalUnary(moe::UnaryOp op);
  Results evalBinary(moe::BinaryOp op);
  Results evalCompare(moe::CompareOp op);
  Results evalSelect(moe::SelectOp op);
  Results evalCast(moe::CastOp op);
  Results evalSoftmax(moe::SoftmaxOp op);
  Results evalReduce(moe::ReduceOp op);
  Results evalTopK(moe::TopKOp op);
  Results evalTranspose(moe::TransposeOp op);
  Results evalBatchMatmul(moe::BatchMatmulOp op);
  Results evalGatherElements(moe::GatherElementsOp op);
  Results evalScatterElements(moe::ScatterElementsOp op);
  Results evalOneHot(moe::OneHotOp op);
  Results evalRouter(moe::RouterOp op);
  Results evalDispatch(moe::DispatchOp op);
  Results evalGroupedMatmul(moe::GroupedMatmulOp op);
  Results evalCombine(moe::CombineOp op);
  Results evalSigmoidGate(moe::SigmoidGateOp op);
  Results evalMoE(moe::MoEOp op);
  Results evalQuantize(moe::QuantizeOp op);
  Results evalDequantize(moe::DequantizeOp op);
  Results evalFp8Matmul(moe::Fp8MatmulOp op);
  Results evalFp8GroupedMatmul(moe::Fp8GroupedMatmulOp op);
  Results evalCall(func::CallOp op, int depth);

  FailureOr<Routed> route(Operation *op, const InterpTensor &x,
                          const InterpTensor &gate, const InterpTensor *bias,
                          RoutingAttr routing);
  LogicalResult checkOffsets(Operation *op, const InterpTensor &offsets,
                             int64_t rows);

  /// Reads the pinned routing input of decision `n` (pinRoutingDir).
  FailureOr<InterpTensor> pinnedRoutingInput(Operation *op, int64_t n,
                                             const InterpTensor &x);
  /// Writes what decision `n` ranked and chose (dumpRoutingDir).
  LogicalResult dumpRouting(Operation *op, int64_t n, const InterpTensor &x,
                            const std::vector<float> &selection,
                            int64_t experts, const Routed &routed, int64_t k);

  const InterpreterOptions &options;
  Frame *frame = nullptr;
  /// Routing decisions evaluated so far, across calls.
  int64_t routingDecisions = 0;
  std::string checkpointDir;
  std::unique_ptr<WeightSource> weights;
};

Results Evaluator::call(func::FuncOp func, ArrayRef<InterpTensor> args,
                        int depth) {
  if (func.isExternal())
    return func.emitOpError("has no body to interpret");
  if (!func.getBody().hasOneBlock())
    return func.emitOpError("has more than one block, which moec-interp "
                            "does not interpret");
  Block &body = func.getBody().front();
  if (body.getNumArguments() != args.size())
    return func.emitOpError("expected ")
           << body.getNumArguments() << " arguments, but got " << args.size();
  Frame values;
  Frame *caller = frame;
  frame = &values;
  llvm::scope_exit restore([&] { frame = caller; });
  for (auto [arg, tensor] : llvm::zip(body.getArguments(), args)) {
    auto type = dyn_cast<RankedTensorType>(arg.getType());
    if (!type || type.getRank() != int64_t(tensor.shape.size()) ||
        !llvm::all_of(llvm::zip(type.getShape(), tensor.shape), [](auto d) {
          return ShapedType::isDynamic(std::get<0>(d)) ||
                 std::get<0>(d) == std::get<1>(d);
        }))
      return func.emitOpError("argument #")
             << arg.getArgNumber() << " of type " << arg.getType()
             << " does not accept a tensor of shape "
             << formatShape(tensor.shape);
    values[arg] = tensor;
  }
  // Free every value after its last use, so that only live tensors are held.
  llvm::DenseMap<Operation *, SmallVector<Value>> dying;
  llvm::DenseMap<Value, Operation *> lastUse;
  for (Operation &op : body)
    for (Value operand : op.getOperands())
      lastUse[operand] = &op;
  for (auto [value, op] : lastUse)
    dying[op].push_back(value);

  for (Operation &op : body) {
    if (auto ret = dyn_cast<func::ReturnOp>(op)) {
      SmallVector<InterpTensor> results;
      for (Value operand : ret.getOperands())
        results.push_back(val(operand));
      return results;
    }
    if (failed(evaluate(&op, depth)))
      return failure();
    for (Value value : dying.lookup(&op))
      values.erase(value);
  }
  return func.emitOpError("has no func.return");
}

LogicalResult Evaluator::evaluate(Operation *op, int depth) {
  for (Value operand : op->getOperands())
    if (!frame->count(operand))
      return op->emitOpError("uses a value defined outside its function body, "
                             "which moec-interp does not interpret");
  Results results =
      llvm::TypeSwitch<Operation *, Results>(op)
          .Case([&](moe::WeightOp o) { return evalWeight(o); })
          .Case([&](moe::EmbedOp o) { return evalEmbed(o); })
          .Case([&](moe::MatmulOp o) { return evalMatmul(o); })
          .Case([&](moe::AddOp o) {
            return evalElementwise(o, o.getLhs(), o.getRhs(),
                                   [](float a, float b) { return a + b; });
          })
          .Case([&](moe::MulOp o) {
            return evalElementwise(o, o.getLhs(), o.getRhs(),
                                   [](float a, float b) { return a * b; });
          })
          .Case([&](moe::SiluMulOp o) {
            return evalElementwise(
                o, o.getGate(), o.getUp(),
                [](float g, float u) { return silu(g) * u; });
          })
          .Case([&](moe::RmsNormOp o) { return evalRmsNorm(o); })
          .Case([&](moe::AddRmsNormOp o) { return evalAddRmsNorm(o); })
          .Case([&](moe::RopeOp o) { return evalRope(o); })
          .Case([&](moe::AttentionOp o) { return evalAttention(o); })
          .Case([&](moe::ReshapeOp o) { return evalReshape(o); })
          .Case([&](moe::SliceOp o) { return evalSlice(o); })
          .Case([&](moe::ConcatOp o) { return evalConcat(o); })
          .Case([&](moe::ExpandOp o) { return evalExpand(o); })
          .Case([&](moe::UnaryOp o) { return evalUnary(o); })
          .Case([&](moe::BinaryOp o) { return evalBinary(o); })
          .Case([&](moe::CompareOp o) { return evalCompare(o); })
          .Case([&](moe::SelectOp o) { return evalSelect(o); })
          .Case([&](moe::CastOp o) { return evalCast(o); })
          .Case([&](moe::SoftmaxOp o) { return evalSoftmax(o); })
          .Case([&](moe::ReduceOp o) { return evalReduce(o); })
          .Case([&](moe::TopKOp o) { return evalTopK(o); })
          .Case([&](moe::TransposeOp o) { return evalTranspose(o); })
          .Case([&](moe::BatchMatmulOp o) { return evalBatchMatmul(o); })
          .Case([&](moe::GatherElementsOp o) { return evalGatherElements(o); })
          .Case(
              [&](moe::ScatterElementsOp o) { return evalScatterElements(o); })
          .Case([&](moe::OneHotOp o) { return evalOneHot(o); })
          .Case([&](moe::RouterOp o) { return evalRouter(o); })
          .Case([&](moe::DispatchOp o) { return evalDispatch(o); })
          .Case([&](moe::GroupedMatmulOp o) { return evalGroupedMatmul(o); })
          .Case([&](moe::CombineOp o) { return evalCombine(o); })
          .Case([&](moe::SigmoidGateOp o) { return evalSigmoidGate(o); })
          .Case([&](moe::MoEOp o) { return evalMoE(o); })
          .Case([&](moe::QuantizeOp o) { return evalQuantize(o); })
          .Case([&](moe::DequantizeOp o) { return evalDequantize(o); })
          .Case([&](moe::Fp8MatmulOp o) { return evalFp8Matmul(o); })
          .Case([&](moe::Fp8GroupedMatmulOp o) {
            return evalFp8GroupedMatmul(o);
          })
          .Case([&](func::CallOp o) { return evalCall(o, depth); })
          .Default([&](Operation *o) -> Results {
            return o->emitOpError(
                "is not supported by moec-interp, the reference interpreter "
                "(docs/interpreter.md lists the ops it evaluates)");
          });
  if (failed(results))
    return failure();
  // An op with a fused `quantize` computes its own results as usual. Its FP8
  // data and scales are added below from the stored high-precision result,
  // rounded to its type, just as a separate `moe.quantize` would read it.
  auto fused = dyn_cast<moe::FusedQuantizeOpInterface>(op);
  BlockScaleAttr scheme = fused ? fused.getQuantizeScheme() : BlockScaleAttr();
  ResultRange own = op->getResults();
  if (scheme)
    own = own.drop_back(2);
  if (results->size() != own.size())
    return op->emitOpError("moec-interp produced ")
           << results->size() << " results for " << own.size();
  if (failed(store(op, own, *results)))
    return failure();
  if (!scheme)
    return success();
  SmallVector<InterpTensor> quantized =
      quantizeTensor(val(fused.getQuantizeSource()), scheme);
  return store(op, op->getResults().take_back(2), quantized);
}

LogicalResult Evaluator::store(Operation *op, ResultRange values,
                               MutableArrayRef<InterpTensor> tensors) {
  // Check every result against its type: this catches shape bugs in the
  // interpreter as well as IR whose dynamic sizes do not fit together.
  for (auto [result, tensor] : llvm::zip_equal(values, tensors)) {
    unsigned index = result.getResultNumber();
    auto type = dyn_cast<RankedTensorType>(result.getType());
    if (!type)
      return op->emitOpError("result #")
             << index << " is not a ranked tensor: " << result.getType();
    bool fits = type.getRank() == int64_t(tensor.shape.size());
    for (int64_t i = 0; fits && i < type.getRank(); ++i)
      fits = type.isDynamicDim(i) || type.getDimSize(i) == tensor.shape[i];
    bool integer = isa<IntegerType>(type.getElementType());
    size_t stored = integer ? tensor.ints.size() : tensor.floats.size();
    if (!fits || int64_t(stored) != tensor.numElements())
      return op->emitOpError("result #")
             << index << " was computed with shape "
             << formatShape(tensor.shape) << ", which does not fit " << type;
    tensor.elementType = type.getElementType();
    if (!integer)
      roundToElementType(tensor);
    (*frame)[result] = std::move(tensor);
  }
  return success();
}

FailureOr<WeightSource *> Evaluator::weightsFor(Operation *op) {
  std::string dir = options.checkpointDir;
  Operation *root = op;
  for (Operation *parent = op->getParentOp(); parent;
       parent = parent->getParentOp()) {
    root = parent;
    if (auto attr = parent->getAttrOfType<StringAttr>("moe.checkpoint");
        attr && dir.empty())
      dir = attr.str();
  }
  if (dir.empty())
    return op->emitOpError(
        "needs a checkpoint folder: the module has no `moe.checkpoint` "
        "attribute and none was given (--checkpoint)");
  if (weights && dir == checkpointDir)
    return weights.get();
  if (!options.openWeights)
    return op->emitOpError("needs a weight reader to read its checkpoint "
                           "(InterpreterOptions::openWeights)");
  llvm::Expected<std::unique_ptr<WeightSource>> opened =
      options.openWeights(dir, root);
  if (!opened)
    return op->emitOpError("cannot open checkpoint: ")
           << llvm::toString(opened.takeError());
  weights = std::move(*opened);
  checkpointDir = dir;
  return weights.get();
}

//===----------------------------------------------------------------------===//
// moe.weight
//===----------------------------------------------------------------------===//

Results Evaluator::evalWeight(moe::WeightOp op) {
  FailureOr<WeightSource *> source = weightsFor(op);
  if (failed(source))
    return failure();
  FailureOr<SmallVector<HostTensor, 2>> read = readWeight(op, **source);
  if (failed(read))
    return failure();
  SmallVector<InterpTensor> results;
  for (const HostTensor &t : *read)
    results.push_back(toInterpTensor(t));
  return results;
}

//===----------------------------------------------------------------------===//
// Dense transformer
//===----------------------------------------------------------------------===//

Results Evaluator::evalEmbed(moe::EmbedOp op) {
  const InterpTensor &table = val(op.getTable()), &ids = val(op.getIds());
  int64_t vocab = table.shape[0], hidden = table.shape[1];
  int64_t tokens = ids.shape[0];
  InterpTensor out = floatTensor({tokens, hidden});
  for (int64_t t = 0; t < tokens; ++t) {
    int64_t id = ids.ints[t];
    if (id < 0 || id >= vocab)
      return op.emitOpError("token #")
             << t << " has id " << id << ", outside the table of " << vocab
             << " rows";
    std::copy_n(table.floats.begin() + id * hidden, hidden,
                out.floats.begin() + t * hidden);
  }
  return single(std::move(out));
}

Results Evaluator::evalMatmul(moe::MatmulOp op) {
  const InterpTensor &x = val(op.getX()), &w = val(op.getW());
  const InterpTensor *bias = optionalVal(op.getBias());
  int64_t rows = x.shape[0], k = x.shape[1], n = w.shape[0];
  std::vector<float> y(rows * n);
  gemm(x.floats.data(), rows, w.floats.data(), n, k, y.data());
  if (bias)
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < n; ++j)
        y[r * n + j] += bias->floats[j];
  InterpTensor out;
  out.floats = applyEpilogue(std::move(y), rows, n, op.getEpilogue());
  out.shape = {rows, op.getEpilogue() == Epilogue::silu_mul ? n / 2 : n};
  return single(std::move(out));
}

Results Evaluator::evalElementwise(Operation *op, Value lhsValue,
                                   Value rhsValue, float (*fn)(float, float)) {
  const InterpTensor &lhs = val(lhsValue), &rhs = val(rhsValue);
  if (lhs.shape != rhs.shape)
    return op->emitOpError("got operands of shapes ")
           << formatShape(lhs.shape) << " and " << formatShape(rhs.shape);
  InterpTensor out = floatTensor(lhs.shape);
  for (size_t i = 0; i < out.floats.size(); ++i)
    out.floats[i] = fn(lhs.floats[i], rhs.floats[i]);
  return single(std::move(out));
}

/// RMSNorm of the `rows` rows of `dim` channels of `x` into `out`, as
/// transformers computes it: mean of squares in f32, `x * rsqrt(var + eps)`,
/// then times the weight `w`.
void rmsNormRows(const float *x, int64_t rows, int64_t dim, const float *w,
                 float eps, float *out) {
  for (int64_t r = 0; r < rows; ++r) {
    const float *xr = x + r * dim;
    float sum = 0.0f;
    for (int64_t i = 0; i < dim; ++i)
      sum += xr[i] * xr[i];
    float inv = 1.0f / std::sqrt(sum / float(dim) + eps);
    for (int64_t i = 0; i < dim; ++i)
      out[r * dim + i] = w[i] * (xr[i] * inv);
  }
}

Results Evaluator::evalRmsNorm(moe::RmsNormOp op) {
  const InterpTensor &x = val(op.getX()), &w = val(op.getWeight());
  int64_t dim = x.shape.back();
  InterpTensor out = floatTensor(x.shape);
  rmsNormRows(x.floats.data(), x.numElements() / std::max<int64_t>(dim, 1), dim,
              w.floats.data(), float(op.getEpsilon().convertToDouble()),
              out.floats.data());
  return single(std::move(out));
}

Results Evaluator::evalAddRmsNorm(moe::AddRmsNormOp op) {
  Results sum = evalElementwise(op, op.getLhs(), op.getRhs(),
                                [](float a, float b) { return a + b; });
  if (failed(sum))
    return failure();
  // The norm reads the sum as the unfused graph would: in its element type.
  InterpTensor &s = sum->front();
  s.elementType = op.getSum().getType().getElementType();
  roundToElementType(s);
  const InterpTensor &w = val(op.getWeight());
  int64_t dim = s.shape.back();
  InterpTensor out = floatTensor(s.shape);
  rmsNormRows(s.floats.data(), s.numElements() / std::max<int64_t>(dim, 1), dim,
              w.floats.data(), float(op.getEpsilon().convertToDouble()),
              out.floats.data());
  sum->push_back(std::move(out));
  return sum;
}

Results Evaluator::evalRope(moe::RopeOp op) {
  const InterpTensor &x = val(op.getX()), &pos = val(op.getPositions());
  int64_t tokens = x.shape[0], heads = x.shape[1], dim = x.shape[2];
  if (pos.shape[0] != tokens)
    return op.emitOpError("got ")
           << pos.shape[0] << " positions for " << tokens << " tokens";
  RopeScalingAttr scaling = op.getScalingAttr();
  std::vector<float> invFreq = moe::getRopeInverseFrequencies(
      dim, op.getTheta().convertToDouble(), scaling);
  float attention = float(moe::getRopeCosSinScale(scaling));
  int64_t half = dim / 2;
  bool interleaved = op.getInterleaved();
  InterpTensor out = floatTensor(x.shape);
  std::vector<float> cosines(half), sines(half);
  for (int64_t t = 0; t < tokens; ++t) {
    float p = float(pos.ints[t]);
    for (int64_t i = 0; i < half; ++i) {
      double angle = double(invFreq[i] * p);
      cosines[i] = float(std::cos(angle)) * attention;
      sines[i] = float(std::sin(angle)) * attention;
    }
    for (int64_t h = 0; h < heads; ++h) {
      const float *in = x.floats.data() + (t * heads + h) * dim;
      float *o = out.floats.data() + (t * heads + h) * dim;
      for (int64_t i = 0; i < half; ++i) {
        // Pairs (2i, 2i+1) when interleaved, (i, i + D/2) otherwise; the
        // rotated pair is written back in place.
        int64_t a = interleaved ? 2 * i : i;
        int64_t b = interleaved ? 2 * i + 1 : i + half;
        float x1 = in[a], x2 = in[b];
        o[a] = x1 * cosines[i] - x2 * sines[i];
        o[b] = x2 * cosines[i] + x1 * sines[i];
      }
    }
  }
  return single(std::move(out));
}

Results Evaluator::evalAttention(moe::AttentionOp op) {
  const InterpTensor &q = val(op.getQ()), &k = val(op.getK()),
                     &v = val(op.getV());
  int64_t tokens = q.shape[0], heads = q.shape[1], dqk = q.shape[2];
  int64_t kvHeads = k.shape[1], dv = v.shape[2];
  if (k.shape[0] != tokens || v.shape[0] != tokens)
    return op.emitOpError("got ")
           << tokens << " query, " << k.shape[0] << " key and " << v.shape[0]
           << " value tokens";
  int64_t group = heads / kvHeads;
  float scale = float(op.getScale().convertToDouble());
  bool causal = op.getCausal();
  InterpTensor out = floatTensor({tokens, heads, dv});
  std::vector<float> scores(tokens);
  for (int64_t t = 0; t < tokens; ++t) {
    int64_t keys = causal ? t + 1 : tokens;
    for (int64_t h = 0; h < heads; ++h) {
      int64_t kvh = h / group;
      const float *qv = q.floats.data() + (t * heads + h) * dqk;
      float max = -std::numeric_limits<float>::infinity();
      for (int64_t s = 0; s < keys; ++s) {
        const float *kv = k.floats.data() + (s * kvHeads + kvh) * dqk;
        float dot = 0.0f;
        for (int64_t d = 0; d < dqk; ++d)
          dot += qv[d] * kv[d];
        scores[s] = dot * scale;
        max = std::max(max, scores[s]);
      }
      float sum = 0.0f;
      for (int64_t s = 0; s < keys; ++s) {
        scores[s] = std::exp(scores[s] - max);
        sum += scores[s];
      }
      float *o = out.floats.data() + (t * heads + h) * dv;
      for (int64_t s = 0; s < keys; ++s) {
        float p = scores[s] / sum;
        const float *vv = v.floats.data() + (s * kvHeads + kvh) * dv;
        for (int64_t d = 0; d < dv; ++d)
          o[d] += p * vv[d];
      }
    }
  }
  return single(std::move(out));
}

//===----------------------------------------------------------------------===//
// Shape ops
//===----------------------------------------------------------------------===//

Results Evaluator::evalReshape(moe::ReshapeOp op) {
  const InterpTensor &x = val(op.getX());
  InterpTensor out;
  out.shape = concreteShape(op.getType(), x.shape[0]);
  if (out.numElements() != x.numElements())
    return op.emitOpError("cannot reshape ")
           << formatShape(x.shape) << " to " << formatShape(out.shape);
  out.floats = x.floats;
  return single(std::move(out));
}

Results Evaluator::evalSlice(moe::SliceOp op) {
  const InterpTensor &x = val(op.getX());
  int64_t inner = x.shape.back();
  int64_t size = op.getType().getShape().back();
  int64_t offset = int64_t(op.getOffset());
  int64_t rows = x.numElements() / std::max<int64_t>(inner, 1);
  SmallVector<int64_t, 4> shape(x.shape);
  shape.back() = size;
  InterpTensor out = floatTensor(shape);
  for (int64_t r = 0; r < rows; ++r)
    std::copy_n(x.floats.begin() + r * inner + offset, size,
                out.floats.begin() + r * size);
  return single(std::move(out));
}

Results Evaluator::evalConcat(moe::ConcatOp op) {
  SmallVector<const InterpTensor *> inputs;
  for (Value input : op.getInputs())
    inputs.push_back(&val(input));
  int64_t axis = op.getConcatDim();
  SmallVector<int64_t, 4> shape(inputs[0]->shape);
  shape[axis] = 0;
  for (const InterpTensor *in : inputs) {
    bool matches = in->shape.size() == shape.size();
    for (size_t i = 0; matches && i < shape.size(); ++i)
      matches = int64_t(i) == axis || in->shape[i] == shape[i];
    if (!matches)
      return op.emitOpError("got inputs of shapes ")
             << formatShape(inputs[0]->shape) << " and "
             << formatShape(in->shape);
    shape[axis] += in->shape[axis];
  }
  // Each input contributes `shape[axis] * inner` contiguous elements per
  // index of the dimensions before `axis`.
  int64_t outer = numElementsOf(ArrayRef<int64_t>(shape).take_front(axis));
  int64_t inner = numElementsOf(ArrayRef<int64_t>(shape).drop_front(axis + 1));
  int64_t outChunk = shape[axis] * inner;
  InterpTensor out = floatTensor(shape);
  int64_t offset = 0;
  for (const InterpTensor *in : inputs) {
    int64_t chunk = in->shape[axis] * inner;
    for (int64_t o = 0; o < outer; ++o)
      std::copy_n(in->floats.begin() + o * chunk, chunk,
                  out.floats.begin() + o * outChunk + offset);
    offset += chunk;
  }
  return single(std::move(out));
}

Results Evaluator::evalExpand(moe::ExpandOp op) {
  const InterpTensor &x = val(op.getX());
  auto type = op.getType();
  size_t rank = x.shape.size();
  SmallVector<int64_t, 4> shape(rank);
  for (size_t i = 0; i < rank; ++i)
    shape[i] = type.isDynamicDim(i) ? x.shape[i] : type.getDimSize(i);
  InterpTensor out = floatTensor(shape);
  SmallVector<int64_t, 4> index(rank, 0);
  for (int64_t flat = 0; flat < out.numElements(); ++flat) {
    // Source offset: size-1 dimensions of `x` always read index 0.
    int64_t src = 0;
    for (size_t i = 0; i < rank; ++i)
      src = src * x.shape[i] + (x.shape[i] == 1 ? 0 : index[i]);
    out.floats[flat] = x.floats[src];
    for (size_t i = rank; i-- > 0;) {
      if (++index[i] < shape[i])
        break;
      index[i] = 0;
    }
  }
  return single(std::move(out));
}

//===----------------------------------------------------------------------===//
// Generic token-wise ops
//===----------------------------------------------------------------------===//

/// Row-major strides of `shape`.
SmallVector<int64_t, 4> stridesOf(ArrayRef<int64_t> shape) {
  SmallVector<int64_t, 4> strides(shape.size(), 1);
  for (size_t i = shape.size(); i-- > 1;)
    strides[i - 1] = strides[i] * shape[i];
  return strides;
}

/// The multi-index of the flat position `flat` in `shape`.
SmallVector<int64_t, 4> unflatten(int64_t flat, ArrayRef<int64_t> shape) {
  SmallVector<int64_t, 4> index(shape.size());
  for (size_t i = shape.size(); i-- > 0;) {
    index[i] = shape[i] ? flat % shape[i] : 0;
    flat = shape[i] ? flat / shape[i] : 0;
  }
  return index;
}

/// The numpy broadcast of `shapes` (aligned on the last dimension), or
/// nullopt when they do not broadcast.
std::optional<SmallVector<int64_t, 4>>
broadcastShape(ArrayRef<ArrayRef<int64_t>> shapes) {
  size_t rank = 0;
  for (ArrayRef<int64_t> s : shapes)
    rank = std::max(rank, s.size());
  SmallVector<int64_t, 4> out(rank, 1);
  for (ArrayRef<int64_t> s : shapes)
    for (size_t i = 0; i < s.size(); ++i) {
      int64_t &o = out[rank - s.size() + i];
      if (s[i] != 1 && o != 1 && s[i] != o)
        return std::nullopt;
      if (s[i] != 1)
        o = s[i];
    }
  return out;
}

/// For every flat position of `out`, the flat position of `in` that numpy
/// broadcasting reads.
std::vector<int64_t> broadcastIndices(ArrayRef<int64_t> out,
                                      ArrayRef<int64_t> in) {
  SmallVector<int64_t, 4> inStrides = stridesOf(in);
  std::vector<int64_t> map(numElementsOf(out));
  size_t shift = out.size() - in.size();
  for (int64_t flat = 0; flat < int64_t(map.size()); ++flat) {
    SmallVector<int64_t, 4> index = unflatten(flat, out);
    int64_t src = 0;
    for (size_t i = 0; i < in.size(); ++i)
      src += (in[i] == 1 ? 0 : index[shift + i]) * inStrides[i];
    map[flat] = src;
  }
  return map;
}

/// Element `i` of a float or integer tensor, as a double.
double elementAt(const InterpTensor &t, int64_t i) {
  return t.isInteger() ? double(t.ints[i]) : double(t.floats[i]);
}

float applyUnary(moe::UnaryKind kind, float x) {
  switch (kind) {
  case moe::UnaryKind::neg:
    return -x;
  case moe::UnaryKind::abs:
    return std::fabs(x);
  case moe::UnaryKind::sqrt:
    return std::sqrt(x);
  case moe::UnaryKind::reciprocal:
    return 1.0f / x;
  case moe::UnaryKind::exp:
    return std::exp(x);
  case moe::UnaryKind::log:
    return std::log(x);
  case moe::UnaryKind::tanh:
    return std::tanh(x);
  case moe::UnaryKind::sigmoid:
    return sigmoid(x);
  case moe::UnaryKind::relu:
    return x > 0.0f ? x : (std::isnan(x) ? x : 0.0f);
  }
  llvm_unreachable("unknown unary kind");
}

float applyBinary(moe::BinaryKind kind, float a, float b) {
  switch (kind) {
  case moe::BinaryKind::add:
    return a + b;
  case moe::BinaryKind::sub:
    return a - b;
  case moe::BinaryKind::mul:
    return a * b;
  case moe::BinaryKind::div:
    return a / b;
  case moe::BinaryKind::pow:
    return std::pow(a, b);
  case moe::BinaryKind::max:
    return std::isnan(a) || a > b ? a : b;
  case moe::BinaryKind::min:
    return std::isnan(a) || a < b ? a : b;
  }
  llvm_unreachable("unknown binary kind");
}

bool applyCompare(moe::ComparePredicate predicate, double a, double b) {
  switch (predicate) {
  case moe::ComparePredicate::eq:
    return a == b;
  case moe::ComparePredicate::ne:
    return a != b;
  case moe::ComparePredicate::lt:
    return a < b;
  case moe::ComparePredicate::le:
    return a <= b;
  case moe::ComparePredicate::gt:
    return a > b;
  case moe::ComparePredicate::ge:
    return a >= b;
  }
  llvm_unreachable("unknown predicate");
}

/// The broadcast shape of `operands`, or an error on `op`.
FailureOr<SmallVector<int64_t, 4>>
broadcastOperands(Operation *op, ArrayRef<const InterpTensor *> operands) {
  SmallVector<ArrayRef<int64_t>> shapes;
  for (const InterpTensor *t : operands)
    shapes.push_back(t->shape);
  std::optional<SmallVector<int64_t, 4>> out = broadcastShape(shapes);
  if (!out)
    return op->emitOpError("got operands of shapes that do not broadcast: ")
           << llvm::join(llvm::map_range(shapes, formatShape), ", ");
  return *out;
}

Results Evaluator::evalUnary(moe::UnaryOp op) {
  const InterpTensor &x = val(op.getX());
  InterpTensor out = floatTensor(x.shape);
  for (size_t i = 0; i < out.floats.size(); ++i)
    out.floats[i] = applyUnary(op.getKind(), x.floats[i]);
  return single(std::move(out));
}

Results Evaluator::evalBinary(moe::BinaryOp op) {
  const InterpTensor &lhs = val(op.getLhs()), &rhs = val(op.getRhs());
  FailureOr<SmallVector<int64_t, 4>> shape =
      broadcastOperands(op, {&lhs, &rhs});
  if (failed(shape))
    return failure();
  std::vector<int64_t> li = broadcastIndices(*shape, lhs.shape);
  std::vector<int64_t> ri = broadcastIndices(*shape, rhs.shape);
  InterpTensor out = floatTensor(*shape);
  for (size_t i = 0; i < out.floats.size(); ++i)
    out.floats[i] =
        applyBinary(op.getKind(), lhs.floats[li[i]], rhs.floats[ri[i]]);
  return single(std::move(out));
}

Results Evaluator::evalCompare(moe::CompareOp op) {
  const InterpTensor &lhs = val(op.getLhs()), &rhs = val(op.getRhs());
  FailureOr<SmallVector<int64_t, 4>> shape =
      broadcastOperands(op, {&lhs, &rhs});
  if (failed(shape))
    return failure();
  std::vector<int64_t> li = broadcastIndices(*shape, lhs.shape);
  std::vector<int64_t> ri = broadcastIndices(*shape, rhs.shape);
  InterpTensor out = intTensor(*shape, op.getType().getElementType());
  for (size_t i = 0; i < out.ints.size(); ++i)
    out.ints[i] = applyCompare(op.getPredicate(), elementAt(lhs, li[i]),
                               elementAt(rhs, ri[i]));
  return single(std::move(out));
}

Results Evaluator::evalSelect(moe::SelectOp op) {
  const InterpTensor &c = val(op.getCondition()), &t = val(op.getOnTrue()),
                     &f = val(op.getOnFalse());
  FailureOr<SmallVector<int64_t, 4>> shape =
      broadcastOperands(op, {&c, &t, &f});
  if (failed(shape))
    return failure();
  std::vector<int64_t> ci = broadcastIndices(*shape, c.shape);
  std::vector<int64_t> ti = broadcastIndices(*shape, t.shape);
  std::vector<int64_t> fi = broadcastIndices(*shape, f.shape);
  InterpTensor out = floatTensor(*shape);
  for (size_t i = 0; i < out.floats.size(); ++i)
    out.floats[i] = c.ints[ci[i]] ? t.floats[ti[i]] : f.floats[fi[i]];
  return single(std::move(out));
}

Results Evaluator::evalCast(moe::CastOp op) {
  const InterpTensor &x = val(op.getX());
  Type to = op.getType().getElementType();
  if (!isa<IntegerType>(to)) {
    InterpTensor out = floatTensor(x.shape);
    for (size_t i = 0; i < out.floats.size(); ++i)
      out.floats[i] = float(elementAt(x, i));
    return single(std::move(out));
  }
  InterpTensor out = intTensor(x.shape, to);
  for (size_t i = 0; i < out.ints.size(); ++i) {
    double v = elementAt(x, i);
    if (to.isInteger(1))
      out.ints[i] = v != 0.0;
    else if (std::isnan(v))
      out.ints[i] = 0;
    else
      out.ints[i] = int64_t(std::trunc(v));
  }
  return single(std::move(out));
}

Results Evaluator::evalSoftmax(moe::SoftmaxOp op) {
  const InterpTensor &x = val(op.getX());
  int64_t dim = x.shape.back(),
          rows = x.numElements() / std::max<int64_t>(dim, 1);
  InterpTensor out = floatTensor(x.shape);
  for (int64_t r = 0; r < rows; ++r) {
    const float *in = x.floats.data() + r * dim;
    float *o = out.floats.data() + r * dim;
    float max = -std::numeric_limits<float>::infinity();
    for (int64_t i = 0; i < dim; ++i)
      max = std::max(max, in[i]);
    float sum = 0.0f;
    for (int64_t i = 0; i < dim; ++i) {
      o[i] = std::exp(in[i] - max);
      sum += o[i];
    }
    for (int64_t i = 0; i < dim; ++i)
      o[i] /= sum;
  }
  return single(std::move(out));
}

Results Evaluator::evalReduce(moe::ReduceOp op) {
  const InterpTensor &x = val(op.getX());
  ArrayRef<int64_t> dims = op.getDims();
  // Accumulate in the keepdims shape, then take the result's shape.
  SmallVector<int64_t, 4> kept(x.shape);
  int64_t count = 1;
  for (int64_t d : dims) {
    count *= kept[d];
    kept[d] = 1;
  }
  moe::ReduceKind kind = op.getKind();
  bool extremum = kind == moe::ReduceKind::max || kind == moe::ReduceKind::min;
  float init = kind == moe::ReduceKind::max
                   ? -std::numeric_limits<float>::infinity()
                   : (kind == moe::ReduceKind::min
                          ? std::numeric_limits<float>::infinity()
                          : 0.0f);
  InterpTensor out = floatTensor(kept);
  std::fill(out.floats.begin(), out.floats.end(), init);
  std::vector<int64_t> map = broadcastIndices(x.shape, kept);
  for (int64_t i = 0; i < x.numElements(); ++i) {
    float &acc = out.floats[map[i]];
    float v = x.floats[i];
    if (!extremum)
      acc += v;
    else if (std::isnan(v) ||
             (kind == moe::ReduceKind::max ? v > acc : v < acc))
      acc = std::isnan(acc) ? acc : v;
  }
  if (kind == moe::ReduceKind::mean)
    for (float &v : out.floats)
      v /= float(count);
  out.shape = concreteShape(op.getType(), x.shape[0]);
  return single(std::move(out));
}

Results Evaluator::evalTopK(moe::TopKOp op) {
  const InterpTensor &x = val(op.getX());
  int64_t dim = x.shape.back(), k = op.getK();
  int64_t rows = x.numElements() / std::max<int64_t>(dim, 1);
  SmallVector<int64_t, 4> shape(x.shape);
  shape.back() = k;
  InterpTensor values = floatTensor(shape);
  InterpTensor indices =
      intTensor(shape, op.getIndices().getType().getElementType());
  for (int64_t r = 0; r < rows; ++r) {
    ArrayRef<float> row(x.floats.data() + r * dim, dim);
    SmallVector<int64_t> best = topK(row, k);
    for (int64_t j = 0; j < k; ++j) {
      values.floats[r * k + j] = row[best[j]];
      indices.ints[r * k + j] = best[j];
    }
  }
  SmallVector<InterpTensor> results;
  results.push_back(std::move(values));
  results.push_back(std::move(indices));
  return results;
}

Results Evaluator::evalTranspose(moe::TransposeOp op) {
  const InterpTensor &x = val(op.getX());
  ArrayRef<int64_t> perm = op.getPermutation();
  SmallVector<int64_t, 4> shape;
  for (int64_t p : perm)
    shape.push_back(x.shape[p]);
  SmallVector<int64_t, 4> inStrides = stridesOf(x.shape);
  InterpTensor out = floatTensor(shape);
  for (int64_t flat = 0; flat < out.numElements(); ++flat) {
    SmallVector<int64_t, 4> index = unflatten(flat, shape);
    int64_t src = 0;
    for (size_t i = 0; i < perm.size(); ++i)
      src += index[i] * inStrides[perm[i]];
    out.floats[flat] = x.floats[src];
  }
  return single(std::move(out));
}

Results Evaluator::evalBatchMatmul(moe::BatchMatmulOp op) {
  const InterpTensor &a = val(op.getLhs()), &b = val(op.getRhs());
  size_t r = a.shape.size();
  if (a.shape[0] != b.shape[0])
    return op.emitOpError("got ")
           << a.shape[0] << " and " << b.shape[0] << " tokens";
  int64_t m = a.shape[r - 2], k = a.shape[r - 1], n = b.shape[r - 1];
  int64_t batches = numElementsOf(ArrayRef<int64_t>(a.shape).drop_back(2));
  SmallVector<int64_t, 4> shape(a.shape);
  shape.back() = n;
  InterpTensor out = floatTensor(shape);
  for (int64_t bi = 0; bi < batches; ++bi)
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        float acc = 0.0f;
        for (int64_t l = 0; l < k; ++l)
          acc +=
              a.floats[(bi * m + i) * k + l] * b.floats[(bi * k + l) * n + j];
        out.floats[(bi * m + i) * n + j] = acc;
      }
  return single(std::move(out));
}

/// The flat positions of `x` that `indices` address along `dim` (ONNX
/// GatherElements/ScatterElements), or an error naming the bad index.
FailureOr<std::vector<int64_t>> elementPositions(Operation *op,
                                                 const InterpTensor &x,
                                                 const InterpTensor &indices,
                                                 int64_t dim) {
  if (indices.shape[0] != x.shape[0])
    return op->emitOpError("got ")
           << indices.shape[0] << " index rows for " << x.shape[0] << " tokens";
  SmallVector<int64_t, 4> strides = stridesOf(x.shape);
  std::vector<int64_t> positions(indices.numElements());
  for (int64_t flat = 0; flat < int64_t(positions.size()); ++flat) {
    SmallVector<int64_t, 4> index = unflatten(flat, indices.shape);
    int64_t at = indices.ints[flat], size = x.shape[dim];
    if (at < -size || at >= size)
      return op->emitOpError("index ") << at << " is outside [" << -size << ", "
                                       << size << ") in dimension " << dim;
    index[dim] = at < 0 ? at + size : at;
    int64_t src = 0;
    for (size_t i = 0; i < index.size(); ++i)
      src += index[i] * strides[i];
    positions[flat] = src;
  }
  return positions;
}

Results Evaluator::evalGatherElements(moe::GatherElementsOp op) {
  const InterpTensor &x = val(op.getX()), &indices = val(op.getIndices());
  FailureOr<std::vector<int64_t>> positions =
      elementPositions(op, x, indices, op.getDim());
  if (failed(positions))
    return failure();
  InterpTensor out = floatTensor(indices.shape);
  for (size_t i = 0; i < positions->size(); ++i)
    out.floats[i] = x.floats[(*positions)[i]];
  return single(std::move(out));
}

Results Evaluator::evalScatterElements(moe::ScatterElementsOp op) {
  const InterpTensor &x = val(op.getX()), &indices = val(op.getIndices()),
                     &updates = val(op.getUpdates());
  FailureOr<std::vector<int64_t>> positions =
      elementPositions(op, x, indices, op.getDim());
  if (failed(positions))
    return failure();
  InterpTensor out = floatTensor(x.shape);
  out.floats = x.floats;
  for (size_t i = 0; i < positions->size(); ++i)
    out.floats[(*positions)[i]] = updates.floats[i];
  return single(std::move(out));
}

Results Evaluator::evalOneHot(moe::OneHotOp op) {
  const InterpTensor &indices = val(op.getIndices());
  int64_t depth = op.getType().getShape().back();
  SmallVector<int64_t, 4> shape(indices.shape);
  shape.push_back(depth);
  InterpTensor out = floatTensor(shape);
  float on = float(op.getOnValue().convertToDouble());
  float off = float(op.getOffValue().convertToDouble());
  std::fill(out.floats.begin(), out.floats.end(), off);
  for (int64_t i = 0; i < indices.numElements(); ++i) {
    int64_t at = indices.ints[i];
    if (at < 0)
      at += depth;
    if (at >= 0 && at < depth)
      out.floats[i * depth + at] = on;
  }
  return single(std::move(out));
}

//===----------------------------------------------------------------------===//
// Routing and experts
//===----------------------------------------------------------------------===//

FailureOr<InterpTensor> Evaluator::pinnedRoutingInput(Operation *op, int64_t n,
                                                      const InterpTensor &x) {
  SmallString<128> path(options.pinRoutingDir);
  llvm::sys::path::append(path, "route" + std::to_string(n) + ".x.npy");
  llvm::Expected<InterpTensor> pinned = readNpy(path);
  if (!pinned)
    return op->emitOpError("routing decision #")
           << n << ": " << llvm::toString(pinned.takeError());
  if (pinned->shape != x.shape)
    return op->emitOpError("routing decision #")
           << n << ": '" << path << "' has shape " << formatShape(pinned->shape)
           << ", but `x` has " << formatShape(x.shape);
  return std::move(*pinned);
}

LogicalResult Evaluator::dumpRouting(Operation *op, int64_t n,
                                     const InterpTensor &x,
                                     const std::vector<float> &selection,
                                     int64_t experts, const Routed &routed,
                                     int64_t k) {
  int64_t tokens = x.shape[0];
  InterpTensor scores = floatTensor({tokens, experts});
  scores.floats = selection;
  InterpTensor indices =
      intTensor({tokens, k}, IntegerType::get(op->getContext(), 32));
  indices.ints = routed.indices;
  InterpTensor input = x;
  Type f32 = Float32Type::get(op->getContext());
  input.elementType = scores.elementType = f32;
  for (auto [suffix, tensor] :
       {std::pair<const char *, const InterpTensor *>{".x.npy", &input},
        {".scores.npy", &scores},
        {".indices.npy", &indices}}) {
    SmallString<128> path(options.dumpRoutingDir);
    llvm::sys::path::append(path, "route" + std::to_string(n) + suffix);
    if (llvm::Error error = writeNpy(path, *tensor))
      return op->emitOpError("routing decision #")
             << n << ": " << llvm::toString(std::move(error));
  }
  return success();
}

FailureOr<Routed> Evaluator::route(Operation *op, const InterpTensor &operand,
                                   const InterpTensor &gate,
                                   const InterpTensor *bias,
                                   RoutingAttr routing) {
  int64_t decision = routingDecisions++;
  const InterpTensor *input = &operand;
  InterpTensor pinned;
  if (!options.pinRoutingDir.empty()) {
    FailureOr<InterpTensor> read = pinnedRoutingInput(op, decision, operand);
    if (failed(read))
      return failure();
    pinned = std::move(*read);
    input = &pinned;
  }
  const InterpTensor &x = *input;
  int64_t tokens = x.shape[0], hidden = x.shape[1];
  int64_t experts = gate.shape[0], k = routing.getK();
  int64_t groups = routing.getNGroup(), keepGroups = routing.getTopkGroup();
  int64_t perGroup = experts / groups;
  if (k > experts)
    return op->emitOpError("routes to k = ")
           << k << " of only " << experts << " experts";
  Routed routed;
  routed.weights.resize(tokens * k);
  routed.indices.resize(tokens * k);
  std::vector<float> logits(experts), scores(experts), selection(experts);
  // Every token's selection scores before group masking, for dumpRouting.
  std::vector<float> allSelection;
  float scaling = float(routing.getRoutedScalingFactor().convertToDouble());
  for (int64_t t = 0; t < tokens; ++t) {
    // §3.1-2: f32 logits, then scores.
    gemm(x.floats.data() + t * hidden, 1, gate.floats.data(), experts, hidden,
         logits.data());
    if (routing.getScoring() == moe::ScoringFunc::softmax) {
      float max = -std::numeric_limits<float>::infinity();
      for (float l : logits)
        max = std::max(max, l);
      float sum = 0.0f;
      for (int64_t e = 0; e < experts; ++e) {
        scores[e] = std::exp(logits[e] - max);
        sum += scores[e];
      }
      for (float &s : scores)
        s /= sum;
    } else {
      for (int64_t e = 0; e < experts; ++e)
        scores[e] = sigmoid(logits[e]);
    }
    // §3.3: the bias only steers selection.
    for (int64_t e = 0; e < experts; ++e)
      selection[e] = bias ? scores[e] + bias->floats[e] : scores[e];
    allSelection.insert(allSelection.end(), selection.begin(), selection.end());
    // §3.4: keep the best `topk_group` groups, mask the rest with -inf.
    if (groups > 1) {
      std::vector<float> groupScores(groups);
      for (int64_t g = 0; g < groups; ++g) {
        ArrayRef<float> members(selection.data() + g * perGroup, perGroup);
        SmallVector<int64_t> best = topK(members, 2);
        groupScores[g] = routing.getGroupScore() == moe::GroupScore::top2_sum
                             ? members[best[0]] + members[best[1]]
                             : members[best[0]];
      }
      SmallVector<int64_t> kept = topK(groupScores, keepGroups);
      for (int64_t g = 0; g < groups; ++g) {
        if (llvm::is_contained(kept, g))
          continue;
        for (int64_t e = g * perGroup; e < (g + 1) * perGroup; ++e)
          selection[e] = -std::numeric_limits<float>::infinity();
      }
    }
    // §3.5-6: top-k, then the unbiased scores, renormalised and scaled.
    SmallVector<int64_t> chosen = topK(selection, k);
    float sum = 0.0f;
    for (int64_t j = 0; j < k; ++j)
      sum += scores[chosen[j]];
    for (int64_t j = 0; j < k; ++j) {
      float w = scores[chosen[j]];
      if (routing.getNormTopkProb())
        w /= sum + 1e-20f;
      routed.weights[t * k + j] = w * scaling;
      routed.indices[t * k + j] = chosen[j];
    }
  }
  if (!options.dumpRoutingDir.empty() &&
      failed(dumpRouting(op, decision, x, allSelection, experts, routed, k)))
    return failure();
  return routed;
}

Results Evaluator::evalRouter(moe::RouterOp op) {
  const InterpTensor &x = val(op.getX());
  FailureOr<Routed> routed = route(op, x, val(op.getGate()),
                                   optionalVal(op.getBias()), op.getRouting());
  if (failed(routed))
    return failure();
  int64_t tokens = x.shape[0], k = op.getRouting().getK();
  // Folded shared experts follow the top k: indices E..E+m-1, weight 1.
  int64_t shared = int64_t(op.getSharedExperts());
  int64_t experts = val(op.getGate()).shape[0], slots = k + shared;
  InterpTensor weights = floatTensor({tokens, slots});
  InterpTensor indices =
      intTensor({tokens, slots}, op.getIndices().getType().getElementType());
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t j = 0; j < slots; ++j) {
      bool routedSlot = j < k;
      weights.floats[t * slots + j] =
          routedSlot ? routed->weights[t * k + j] : 1.0f;
      indices.ints[t * slots + j] =
          routedSlot ? routed->indices[t * k + j] : experts + (j - k);
    }
  SmallVector<InterpTensor> results;
  results.push_back(std::move(weights));
  results.push_back(std::move(indices));
  return results;
}

Results Evaluator::evalDispatch(moe::DispatchOp op) {
  const InterpTensor &x = val(op.getX()), &idx = val(op.getIndices());
  int64_t tokens = x.shape[0], hidden = x.shape[1], k = idx.shape[1];
  int64_t experts = op.getOffsets().getType().getDimSize(0) - 1;
  if (idx.shape[0] != tokens)
    return op.emitOpError("got indices for ")
           << idx.shape[0] << " tokens, but " << tokens << " rows";
  Type i32 = op.getOffsets().getType().getElementType();
  InterpTensor rows = floatTensor({tokens * k, hidden});
  InterpTensor offsets = intTensor({experts + 1}, i32);
  InterpTensor positions = intTensor({tokens * k}, i32);
  for (int64_t i = 0; i < tokens * k; ++i) {
    int64_t e = idx.ints[i];
    if (e < 0 || e >= experts)
      return op.emitOpError("token #")
             << i / k << " slot " << i % k << " routes to expert " << e
             << ", outside [0, " << experts << ")";
    ++offsets.ints[e + 1];
  }
  for (int64_t e = 0; e < experts; ++e)
    offsets.ints[e + 1] += offsets.ints[e];
  // Stable in token order: walk (token, slot) pairs token-major.
  std::vector<int64_t> next(offsets.ints.begin(), offsets.ints.end() - 1);
  for (int64_t i = 0; i < tokens * k; ++i) {
    int64_t row = next[idx.ints[i]]++;
    positions.ints[i] = row;
    std::copy_n(x.floats.begin() + (i / k) * hidden, hidden,
                rows.floats.begin() + row * hidden);
  }
  SmallVector<InterpTensor> results;
  results.push_back(std::move(rows));
  results.push_back(std::move(offsets));
  results.push_back(std::move(positions));
  return results;
}

LogicalResult Evaluator::checkOffsets(Operation *op,
                                      const InterpTensor &offsets,
                                      int64_t rows) {
  int64_t previous = 0;
  for (int64_t e = 0; e < offsets.numElements(); ++e) {
    int64_t o = offsets.ints[e];
    if (o < previous || o > rows)
      return op->emitOpError("expected `offsets` non-decreasing within [0, ")
             << rows << "], but offsets[" << e << "] = " << o;
    previous = o;
  }
  return success();
}

Results Evaluator::evalGroupedMatmul(moe::GroupedMatmulOp op) {
  const InterpTensor &rows = val(op.getRows()), &w = val(op.getW());
  const InterpTensor &offsets = val(op.getOffsets());
  int64_t r = rows.shape[0], k = rows.shape[1];
  int64_t experts = w.shape[0], n = w.shape[1];
  if (failed(checkOffsets(op, offsets, r)))
    return failure();
  // Rows outside every expert's range stay zero.
  std::vector<float> y(r * n, 0.0f);
  for (int64_t e = 0; e < experts; ++e) {
    int64_t begin = offsets.ints[e], end = offsets.ints[e + 1];
    gemm(rows.floats.data() + begin * k, end - begin,
         w.floats.data() + e * n * k, n, k, y.data() + begin * n);
  }
  InterpTensor out;
  out.floats = applyEpilogue(std::move(y), r, n, op.getEpilogue());
  out.shape = {r, op.getEpilogue() == Epilogue::silu_mul ? n / 2 : n};
  return single(std::move(out));
}

Results Evaluator::evalCombine(moe::CombineOp op) {
  const InterpTensor &rows = val(op.getRows()), &pos = val(op.getPositions());
  const InterpTensor &w = val(op.getWeights());
  const InterpTensor *residual = optionalVal(op.getResidual());
  int64_t tokens = w.shape[0], k = w.shape[1], hidden = rows.shape[1];
  if (pos.shape[0] != tokens * k)
    return op.emitOpError("got ") << pos.shape[0] << " positions for " << tokens
                                  << " tokens x " << k << " slots";
  if (residual && residual->shape[0] != tokens)
    return op.emitOpError("got a residual of ")
           << residual->shape[0] << " tokens for " << tokens;
  InterpTensor out = floatTensor({tokens, hidden});
  for (int64_t t = 0; t < tokens; ++t) {
    float *o = out.floats.data() + t * hidden;
    for (int64_t j = 0; j < k; ++j) {
      int64_t row = pos.ints[t * k + j];
      if (row < 0 || row >= rows.shape[0])
        return op.emitOpError("position of token #")
               << t << " slot " << j << " is " << row << ", outside [0, "
               << rows.shape[0] << ")";
      float weight = w.floats[t * k + j];
      for (int64_t h = 0; h < hidden; ++h)
        o[h] += weight * rows.floats[row * hidden + h];
    }
    if (residual)
      for (int64_t h = 0; h < hidden; ++h)
        o[h] += residual->floats[t * hidden + h];
  }
  return single(std::move(out));
}

Results Evaluator::evalSigmoidGate(moe::SigmoidGateOp op) {
  const InterpTensor &x = val(op.getX()), &gate = val(op.getGate());
  const InterpTensor &y = val(op.getY());
  int64_t tokens = x.shape[0], hidden = x.shape[1], width = y.shape[1];
  if (y.shape[0] != tokens)
    return op.emitOpError("got ")
           << y.shape[0] << " rows of `y` for " << tokens << " rows of `x`";
  InterpTensor out = floatTensor(y.shape);
  for (int64_t t = 0; t < tokens; ++t) {
    float logit;
    gemm(x.floats.data() + t * hidden, 1, gate.floats.data(), 1, hidden,
         &logit);
    float g = sigmoid(logit);
    for (int64_t j = 0; j < width; ++j)
      out.floats[t * width + j] = g * y.floats[t * width + j];
  }
  return single(std::move(out));
}

/// `down · (silu(gate · x) ⊙ (up · x))` for one token `x` of `hidden`
/// channels with `[inter, hidden]`, `[inter, hidden]`, `[hidden, inter]`
/// weights; adds `weight` times the result to `out`.
void expertFFN(const float *x, const float *gate, const float *up,
               const float *down, int64_t hidden, int64_t inter, float weight,
               float *out) {
  std::vector<float> g(inter), u(inter), y(hidden);
  gemm(x, 1, gate, inter, hidden, g.data());
  gemm(x, 1, up, inter, hidden, u.data());
  for (int64_t i = 0; i < inter; ++i)
    g[i] = silu(g[i]) * u[i];
  gemm(g.data(), 1, down, hidden, inter, y.data());
  for (int64_t h = 0; h < hidden; ++h)
    out[h] += weight * y[h];
}

Results Evaluator::evalMoE(moe::MoEOp op) {
  const InterpTensor &x = val(op.getX());
  FailureOr<Routed> routed = route(op, x, val(op.getGate()),
                                   optionalVal(op.getBias()), op.getRouting());
  if (failed(routed))
    return failure();
  const InterpTensor &w1 = val(op.getGateProj()), &w3 = val(op.getUpProj());
  const InterpTensor &w2 = val(op.getDownProj());
  const InterpTensor *s1 = optionalVal(op.getSharedGateProj());
  const InterpTensor *s3 = optionalVal(op.getSharedUpProj());
  const InterpTensor *s2 = optionalVal(op.getSharedDownProj());
  const InterpTensor *sharedGate = optionalVal(op.getSharedExpertGate());
  int64_t tokens = x.shape[0], hidden = x.shape[1], inter = w1.shape[1];
  int64_t k = op.getRouting().getK();
  InterpTensor out = floatTensor({tokens, hidden});
  std::vector<float> shared(hidden);
  for (int64_t t = 0; t < tokens; ++t) {
    const float *xt = x.floats.data() + t * hidden;
    float *o = out.floats.data() + t * hidden;
    for (int64_t j = 0; j < k; ++j) {
      int64_t e = routed->indices[t * k + j];
      size_t expertSize = inter * hidden;
      expertFFN(xt, w1.floats.data() + e * expertSize,
                w3.floats.data() + e * expertSize,
                w2.floats.data() + e * expertSize, hidden, inter,
                routed->weights[t * k + j], o);
    }
    if (!s1)
      continue;
    // The shared expert is added unweighted, or gated by
    // sigmoid(x · shared_gateᵀ) (Qwen2-MoE).
    float gate = 1.0f;
    if (sharedGate) {
      float logit;
      gemm(xt, 1, sharedGate->floats.data(), 1, hidden, &logit);
      gate = sigmoid(logit);
    }
    std::fill(shared.begin(), shared.end(), 0.0f);
    expertFFN(xt, s1->floats.data(), s3->floats.data(), s2->floats.data(),
              hidden, s1->shape[0], gate, shared.data());
    for (int64_t h = 0; h < hidden; ++h)
      o[h] += shared[h];
  }
  return single(std::move(out));
}

//===----------------------------------------------------------------------===//
// FP8
//===----------------------------------------------------------------------===//

Results Evaluator::evalQuantize(moe::QuantizeOp op) {
  return quantizeTensor(val(op.getX()), op.getScheme());
}

Results Evaluator::evalDequantize(moe::DequantizeOp op) {
  const InterpTensor &x = val(op.getX()), &scale = val(op.getScale());
  BlockScaleAttr scheme = op.getScheme();
  SmallVector<int64_t> scaleShape = scheme.getScaleShape(x.shape);
  if (ArrayRef<int64_t>(scale.shape) != ArrayRef<int64_t>(scaleShape))
    return op.emitOpError("expected scales of shape ")
           << formatShape(scaleShape) << " for data of shape "
           << formatShape(x.shape) << ", but got " << formatShape(scale.shape);
  SmallVector<int64_t> shape = scheme.getUnpackedShape(x.shape);
  MatrixView m = matrixView(shape);
  int64_t br = scheme.getBlock()[0], bc = scheme.getBlock()[1];
  int64_t blockRows = (m.rows + br - 1) / br,
          blockCols = (m.cols + bc - 1) / bc;
  // `u8` codes are the unsigned bytes of the `i8` data, however the loader
  // decoded them; `u4` codes are their low, then high nibbles. FP8 values
  // are used as they are.
  bool codes = scheme.isInteger(), packed = scheme.isPacked();
  float zeroPoint = float(scheme.getZeroPoint());
  InterpTensor out = floatTensor(shape);
  for (int64_t b = 0; b < m.batches; ++b)
    for (int64_t r = 0; r < m.rows; ++r)
      for (int64_t c = 0; c < m.cols; ++c) {
        int64_t i = (b * m.rows + r) * m.cols + c;
        int64_t at = packed ? i / 2 : i;
        int64_t code = x.ints.empty() ? int64_t(x.floats[at]) : x.ints[at];
        if (packed)
          code = (uint8_t(code) >> (4 * (i % 2))) & 0xf;
        float q = codes ? float(uint8_t(code)) - zeroPoint : x.floats[i];
        out.floats[i] =
            q * scale.floats[(b * blockRows + r / br) * blockCols + c / bc];
      }
  return single(std::move(out));
}

/// The block-scaled FP8 GEMM of `rows` rows: per block of K, the FP8
/// products are summed in f32 and then promoted into the f32 accumulator
/// with the product of the activation and weight scales.
void fp8Gemm(const float *x, const float *xs, int64_t rows, const float *w,
             const float *ws, int64_t n, int64_t k, int64_t bn, int64_t bk,
             float *y) {
  int64_t kBlocks = (k + bk - 1) / bk;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < n; ++j) {
      float acc = 0.0f;
      for (int64_t kb = 0; kb < kBlocks; ++kb) {
        float partial = 0.0f;
        for (int64_t i = kb * bk; i < std::min(k, (kb + 1) * bk); ++i)
          partial += x[r * k + i] * w[j * k + i];
        acc += partial * (xs[r * kBlocks + kb] * ws[(j / bn) * kBlocks + kb]);
      }
      y[r * n + j] = acc;
    }
}

Results Evaluator::evalFp8Matmul(moe::Fp8MatmulOp op) {
  const InterpTensor &x = val(op.getX()), &xs = val(op.getXScale());
  const InterpTensor &w = val(op.getW()), &ws = val(op.getWScale());
  int64_t rows = x.shape[0], k = x.shape[1], n = w.shape[0];
  if (xs.shape[0] != rows)
    return op.emitOpError("got activation scales for ")
           << xs.shape[0] << " rows, but " << rows << " rows";
  ArrayRef<int64_t> block = op.getWeightScheme().getBlock();
  std::vector<float> y(rows * n);
  fp8Gemm(x.floats.data(), xs.floats.data(), rows, w.floats.data(),
          ws.floats.data(), n, k, block[0], block[1], y.data());
  if (const InterpTensor *bias = optionalVal(op.getBias()))
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < n; ++j)
        y[r * n + j] += bias->floats[j];
  InterpTensor out;
  out.floats = applyEpilogue(std::move(y), rows, n, op.getEpilogue());
  out.shape = {rows, op.getEpilogue() == Epilogue::silu_mul ? n / 2 : n};
  return single(std::move(out));
}

Results Evaluator::evalFp8GroupedMatmul(moe::Fp8GroupedMatmulOp op) {
  const InterpTensor &rows = val(op.getRows()), &rs = val(op.getRowsScale());
  const InterpTensor &offsets = val(op.getOffsets());
  const InterpTensor &w = val(op.getW()), &ws = val(op.getWScale());
  int64_t r = rows.shape[0], k = rows.shape[1];
  int64_t experts = w.shape[0], n = w.shape[1];
  if (rs.shape[0] != r)
    return op.emitOpError("got row scales for ")
           << rs.shape[0] << " rows, but " << r << " rows";
  if (failed(checkOffsets(op, offsets, r)))
    return failure();
  ArrayRef<int64_t> block = op.getWeightScheme().getBlock();
  int64_t kBlocks = rs.shape[1];
  int64_t expertScales = ws.numElements() / std::max<int64_t>(experts, 1);
  std::vector<float> y(r * n, 0.0f);
  for (int64_t e = 0; e < experts; ++e) {
    int64_t begin = offsets.ints[e], end = offsets.ints[e + 1];
    fp8Gemm(rows.floats.data() + begin * k, rs.floats.data() + begin * kBlocks,
            end - begin, w.floats.data() + e * n * k,
            ws.floats.data() + e * expertScales, n, k, block[0], block[1],
            y.data() + begin * n);
  }
  InterpTensor out;
  out.floats = applyEpilogue(std::move(y), r, n, op.getEpilogue());
  out.shape = {r, op.getEpilogue() == Epilogue::silu_mul ? n / 2 : n};
  return single(std::move(out));
}

//===----------------------------------------------------------------------===//
// func.call
//===----------------------------------------------------------------------===//

Results Evaluator::evalCall(func::CallOp op, int depth) {
  constexpr int kMaxDepth = 64;
  if (depth >= kMaxDepth)
    return op.emitOpError("nests calls deeper than ")
           << kMaxDepth << ", which moec-interp does not interpret";
  auto callee = SymbolTable::lookupNearestSymbolFrom<func::FuncOp>(
      op, op.getCalleeAttr());
  if (!callee)
    return op.emitOpError("calls an unknown function ") << op.getCalleeAttr();
  SmallVector<InterpTensor> args;
  for (Value operand : op.getOperands())
    args.push_back(val(operand));
  return call(callee, args, depth + 1);
}

} // namespace

//===----------------------------------------------------------------------===//
// Entry points
//===----------------------------------------------------------------------===//

FailureOr<SmallVector<InterpTensor>>
mlir::moec::interpretFunction(func::FuncOp func, ArrayRef<InterpTensor> args,
                              const InterpreterOptions &options) {
  Evaluator evaluator(options);
  return evaluator.call(func, args);
}

FailureOr<InterpTensor>
mlir::moec::runForward(ModuleOp module, llvm::StringRef function,
                       ArrayRef<int64_t> tokens, ArrayRef<int64_t> positions,
                       const InterpreterOptions &options) {
  auto func = module.lookupSymbol<func::FuncOp>(function);
  if (!func)
    return emitError(module.getLoc())
           << "no func.func @" << function << " in the module";
  if (func.getNumArguments() != 2 || func.getNumResults() < 1)
    return func.emitOpError("expected two arguments (tokens, positions) and "
                            "a result, as the importers produce");
  if (positions.size() != tokens.size())
    return emitError(func.getLoc())
           << "got " << positions.size() << " positions for " << tokens.size()
           << " tokens";
  // Bind by `moe.name`, falling back to the argument order.
  SmallVector<InterpTensor> args(2);
  for (unsigned i = 0; i < 2; ++i) {
    auto type = dyn_cast<RankedTensorType>(func.getArgumentTypes()[i]);
    if (!type || type.getRank() != 1 ||
        !isa<IntegerType>(type.getElementType()))
      return func.emitOpError("expected 1-d integer tensor arguments, but "
                              "argument #")
             << i << " is " << func.getArgumentTypes()[i];
    auto name = func.getArgAttrOfType<StringAttr>(i, "moe.name");
    bool isPositions = name ? name.getValue() == "positions" : i == 1;
    ArrayRef<int64_t> values = isPositions ? positions : tokens;
    args[i] = intTensor({int64_t(values.size())}, type.getElementType());
    args[i].ints.assign(values.begin(), values.end());
  }
  FailureOr<SmallVector<InterpTensor>> results =
      interpretFunction(func, args, options);
  if (failed(results))
    return failure();
  return std::move(results->front());
}
