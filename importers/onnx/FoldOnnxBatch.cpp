//===- FoldOnnxBatch.cpp - --moec-fold-onnx-batch ---------------*- C++ -*-===//
//
// Folds the leading batch dimension of `[batch, seq, ...]` graphs into the
// token dimension the `moe` dialect is built on: the graph then computes one
// sequence of `seq` tokens, with every node's types and axis attributes
// rewritten for the rank one lower. It runs before raising, so the patterns
// see the token-major graphs they are written for.
//
//===----------------------------------------------------------------------===//

#include "importers/onnx/OnnxPatterns.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/FormatVariadic.h"

namespace mlir::moec {
#define GEN_PASS_DECL_FOLDONNXBATCHPASS
#define GEN_PASS_DEF_FOLDONNXBATCHPASS
#include "importers/onnx/OnnxPasses.h.inc"
} // namespace mlir::moec

using namespace mlir;
using namespace mlir::moec;
using namespace mlir::moec::onnx_match;
using onnx_ir::InitializerOp;
using onnx_ir::NodeOp;

namespace {

/// Whether `type` is `[1 or ?, ?, ...]`: a batch of sequences.
bool isBatchedType(Type type) {
  auto ranked = dyn_cast<RankedTensorType>(type);
  return ranked && ranked.getRank() >= 2 &&
         (ranked.getDimSize(0) == 1 || ranked.isDynamicDim(0)) &&
         ranked.isDynamicDim(1);
}

/// `type` without its leading dimension.
RankedTensorType dropBatch(RankedTensorType type) {
  return RankedTensorType::get(type.getShape().drop_front(),
                               type.getElementType());
}

/// Elementwise operators: their batched operands and result keep their
/// positions, and the others broadcast from the right.
const llvm::StringSet<> &elementwiseOps() {
  static const llvm::StringSet<> ops = {
      "Add",         "Sub",     "Mul",
      "Div",         "Pow",     "Where",
      "Equal",       "Greater", "Less",
      "And",         "Or",      "Not",
      "Max",         "Min",     "Sum",
      "Mean",        "Sigmoid", "Tanh",
      "Relu",        "Neg",     "Sqrt",
      "Reciprocal",  "Exp",     "Log",
      "Erf",         "Abs",     "Cast",
      "Identity",    "Clip",    "Softplus",
      "IsNaN",       "IsInf",   "GreaterOrEqual",
      "LessOrEqual", "Mod",     "Sign"};
  return ops;
}

class BatchFolder {
public:
  BatchFolder(func::FuncOp func) : func(func) {}

  /// Folds the batch of every node; returns the nodes that could not be
  /// folded, each with its reason.
  SmallVector<std::pair<NodeOp, std::string>> run();

private:
  bool isBatched(Value value) const { return value && batched.contains(value); }

  /// The batched rank of `value` (before folding).
  int64_t batchedRank(Value value) const {
    return cast<RankedTensorType>(value.getType()).getRank() + 1;
  }

  /// `axis` of a rank-`rank` batched tensor in the folded tensor, or
  /// nullopt for the batch axis itself.
  static std::optional<int64_t> shiftAxis(int64_t axis, int64_t rank) {
    int64_t normalized = axis < 0 ? axis + rank : axis;
    if (normalized <= 0 || normalized >= rank)
      return std::nullopt;
    return axis < 0 ? axis : axis - 1;
  }

  void setIntAttr(NodeOp node, StringRef name, int64_t value) {
    NamedAttrList attrs(node.getNodeAttributes());
    attrs.set(name,
              IntegerAttr::get(IntegerType::get(node.getContext(), 64), value));
    node.setNodeAttributesAttr(attrs.getDictionary(node.getContext()));
  }

  void setIntsAttr(NodeOp node, StringRef name, ArrayRef<int64_t> values) {
    NamedAttrList attrs(node.getNodeAttributes());
    attrs.set(name, DenseI64ArrayAttr::get(node.getContext(), values));
    node.setNodeAttributesAttr(attrs.getDictionary(node.getContext()));
  }

  /// Replaces input `index` of `node` by a new inline i64 constant.
  void setIntsInput(NodeOp node, unsigned index, ArrayRef<int64_t> values) {
    OpBuilder builder(node);
    auto type =
        RankedTensorType::get({int64_t(values.size())}, builder.getI64Type());
    Value old = node.getInputs()[index];
    std::string name = "moec.folded_batch";
    if (InitializerOp init = getInitializer(old))
      name = (init.getTensorName() + ".folded_batch").str();
    auto init = InitializerOp::create(
        builder, node.getLoc(), type, builder.getStringAttr(name),
        DenseIntElementsAttr::get(type, values), StringAttr(), IntegerAttr(),
        IntegerAttr(), StringAttr(), builder.getUnitAttr());
    node.getInputsMutable()[index].assign(init.getResult());
  }

  /// Rewrites the axis attribute `name` (ONNX default `defaultAxis`).
  LogicalResult shiftAxisAttr(NodeOp node, StringRef name, int64_t defaultAxis,
                              int64_t rank, std::string &why) {
    int64_t axis = getIntAttr(node, name, defaultAxis);
    std::optional<int64_t> shifted = shiftAxis(axis, rank);
    if (!shifted) {
      why = llvm::formatv("it works on the batch axis ({0} = {1})", name, axis);
      return failure();
    }
    setIntAttr(node, name, *shifted);
    return success();
  }

  /// Rewrites `axes` (an attribute before opset `inputSince`, input
  /// `inputIndex` after).
  LogicalResult shiftAxes(NodeOp node, unsigned inputIndex, int64_t inputSince,
                          int64_t rank, std::string &why) {
    std::optional<SmallVector<int64_t>> axes =
        getAxes(node, inputIndex, inputSince);
    if (!axes) {
      why = "its axes are absent (all axes, including the batch) or not "
            "constant";
      return failure();
    }
    SmallVector<int64_t> shifted;
    for (int64_t axis : *axes) {
      std::optional<int64_t> s = shiftAxis(axis, rank);
      if (!s) {
        why = "it works on the batch axis";
        return failure();
      }
      shifted.push_back(*s);
    }
    if (node.getVersion() < inputSince)
      setIntsAttr(node, "axes", shifted);
    else
      setIntsInput(node, inputIndex, shifted);
    return success();
  }

  LogicalResult foldNode(NodeOp node, std::string &why);
  LogicalResult foldReshape(NodeOp node, std::string &why);
  LogicalResult foldSqueeze(NodeOp node, std::string &why);

  func::FuncOp func;
  llvm::DenseSet<Value> batched;
  /// Results that are token-major after folding although they were not
  /// batched before (Reshape/Flatten merging batch and sequence).
  llvm::DenseSet<Value> merged;
};

/// Reshape: a constant target keeps (`0`/`1`) or merges (`-1` with the
/// per-token size) the batch; a computed target is replaced by a constant
/// from the declared result type.
LogicalResult BatchFolder::foldReshape(NodeOp node, std::string &why) {
  Value data = node.getInputOrNull(0);
  auto in = cast<RankedTensorType>(data.getType());
  RankedTensorType result = getRanked(node.getResult(0));
  std::optional<SmallVector<int64_t>> target = getInts(node.getInputOrNull(1));
  auto perToken = [](ArrayRef<int64_t> dims) -> std::optional<int64_t> {
    int64_t product = 1;
    for (int64_t d : dims)
      if (d <= 0)
        return std::nullopt;
      else
        product *= d;
    return product;
  };
  std::optional<int64_t> inPerToken = perToken(in.getShape().drop_front());
  if (target && !target->empty()) {
    bool allowZero = getIntAttr(node, "allowzero", 0) != 0;
    if ((*target)[0] == 1 || ((*target)[0] == 0 && !allowZero)) {
      setIntsInput(node, 1, ArrayRef<int64_t>(*target).drop_front());
      batched.insert(node.getResult(0));
      return success();
    }
    if ((*target)[0] == -1 && inPerToken &&
        perToken(ArrayRef<int64_t>(*target).drop_front()) == inPerToken) {
      merged.insert(node.getResult(0));
      return success();
    }
    why = "its target shape neither keeps the batch (leading 0 or 1) nor "
          "merges it with the sequence (leading -1)";
    return failure();
  }
  if (!result || result.getRank() < 1 ||
      llvm::any_of(result.getShape().drop_front(2), ShapedType::isDynamic)) {
    why = "its target shape is computed and its declared result type is not "
          "[batch, seq, static...] or [tokens, static...]";
    return failure();
  }
  if (isBatchedType(result)) {
    SmallVector<int64_t> shape{-1};
    llvm::append_range(shape, result.getShape().drop_front(2));
    setIntsInput(node, 1, shape);
    batched.insert(node.getResult(0));
    return success();
  }
  if (result.isDynamicDim(0) &&
      llvm::none_of(result.getShape().drop_front(), ShapedType::isDynamic)) {
    SmallVector<int64_t> shape{-1};
    llvm::append_range(shape, result.getShape().drop_front());
    setIntsInput(node, 1, shape);
    merged.insert(node.getResult(0));
    return success();
  }
  why = "its computed target shape has no token-major equivalent";
  return failure();
}

/// Squeeze of the batch axis is the identity once the batch is folded.
LogicalResult BatchFolder::foldSqueeze(NodeOp node, std::string &why) {
  int64_t rank = batchedRank(node.getInputOrNull(0));
  std::optional<SmallVector<int64_t>> axes = getAxes(node, 1, 13);
  if (!axes) {
    why = "its axes are absent or not constant";
    return failure();
  }
  SmallVector<int64_t> rest;
  bool dropsBatch = false;
  for (int64_t axis : *axes) {
    std::optional<int64_t> s = shiftAxis(axis, rank);
    if (s)
      rest.push_back(*s);
    else
      dropsBatch = true;
  }
  if (!rest.empty()) {
    if (node.getVersion() < 13)
      setIntsAttr(node, "axes", rest);
    else
      setIntsInput(node, 1, rest);
  } else {
    node.setOpType("Identity");
    node.getInputsMutable().erase(1, node.getInputs().size() - 1);
    node.setNodeAttributesAttr(DictionaryAttr::get(node.getContext()));
  }
  (dropsBatch ? merged : batched).insert(node.getResult(0));
  return success();
}

LogicalResult BatchFolder::foldNode(NodeOp node, std::string &why) {
  StringRef op = node.getOpType();
  StringRef domain = node.getCanonicalDomain();
  Value x = node.getInputOrNull(0);
  int64_t rank = isBatched(x) ? batchedRank(x) : 0;
  auto allResultsBatched = [&] {
    for (Value result : node.getResults())
      if (!isa<NoneType>(result.getType()))
        batched.insert(result);
  };
  // Operands that are not batched must broadcast without the batch axis.
  auto checkBroadcast = [&](int64_t resultRank) {
    for (Value input : node.getInputs()) {
      RankedTensorType type = getRanked(input);
      if (isBatched(input) || isa<NoneType>(input.getType()))
        continue;
      if (!type || type.getRank() >= resultRank) {
        why = llvm::formatv("operand {0} is not batched but has the batched "
                            "rank {1}",
                            input.getType(), resultRank);
        return false;
      }
    }
    return true;
  };

  if (domain.empty() && elementwiseOps().contains(op)) {
    int64_t resultRank = 0;
    for (Value input : node.getInputs())
      if (isBatched(input))
        resultRank = std::max(resultRank, batchedRank(input));
    if (!checkBroadcast(resultRank))
      return failure();
    allResultsBatched();
    return success();
  }
  if (domain.empty() && op == "MatMul") {
    Value b = node.getInputOrNull(1);
    if (!isBatched(x) ||
        (!isBatched(b) && getRanked(b) && getRanked(b).getRank() > 2)) {
      why = "only a batched left operand times a 2-d right operand, or two "
            "batched operands, fold";
      return failure();
    }
    allResultsBatched();
    return success();
  }
  if (domain.empty() && (op == "Softmax" || op == "LogSoftmax")) {
    // Before opset 13 the axis coerces to 2-d; only the last axis keeps
    // that meaning once the rank changes.
    int64_t axis = getIntAttr(node, "axis", node.getVersion() < 13 ? 1 : -1);
    if (node.getVersion() < 13 && axis != -1 && axis != rank - 1) {
      why = "before opset 13 only a Softmax over the last axis folds";
      return failure();
    }
    if (node.getVersion() < 13)
      setIntAttr(node, "axis", -1);
    else if (failed(shiftAxisAttr(node, "axis", -1, rank, why)))
      return failure();
    allResultsBatched();
    return success();
  }
  if (domain.empty() &&
      (op == "Concat" || op == "GatherElements" || op == "ScatterElements" ||
       op == "TopK" || op == "ArgMax" || op == "ArgMin" || op == "Split" ||
       op == "LayerNormalization" || op == "SimplifiedLayerNormalization" ||
       op == "RMSNormalization")) {
    // Every data operand of these must carry the batch; the others (k,
    // split sizes, scales) are not batched.
    bool allData =
        op == "Concat" || op == "GatherElements" || op == "ScatterElements";
    if (!isBatched(x) ||
        (allData && llvm::any_of(node.getInputs(), [&](Value input) {
           return getRanked(input) && !isBatched(input);
         }))) {
      why = "not all its data operands are batched";
      return failure();
    }
    int64_t defaultAxis = op == "TopK" || op == "LayerNormalization" ||
                                  op == "SimplifiedLayerNormalization" ||
                                  op == "RMSNormalization"
                              ? -1
                              : 0;
    if (failed(shiftAxisAttr(node, "axis", defaultAxis, rank, why)))
      return failure();
    allResultsBatched();
    return success();
  }
  if (domain.empty() && op == "Gather") {
    Value indices = node.getInputOrNull(1);
    int64_t axis = getIntAttr(node, "axis", 0);
    if (isBatched(x) && !isBatched(indices)) {
      if (failed(shiftAxisAttr(node, "axis", 0, rank, why)))
        return failure();
    } else if (!isBatched(x) && isBatched(indices) && axis == 0) {
      // An embedding lookup: the ids' batch leads the result.
    } else {
      why = "only a Gather from a batched tensor, or of rows by batched "
            "indices, folds";
      return failure();
    }
    allResultsBatched();
    return success();
  }
  if (domain.empty() && op == "Transpose") {
    std::optional<SmallVector<int64_t>> perm = getIntsAttr(node, "perm");
    if (!perm || perm->empty() || (*perm)[0] != 0) {
      why = "it moves the batch axis";
      return failure();
    }
    SmallVector<int64_t> shifted;
    for (int64_t p : ArrayRef<int64_t>(*perm).drop_front())
      shifted.push_back(p - 1);
    setIntsAttr(node, "perm", shifted);
    allResultsBatched();
    return success();
  }
  if (domain.empty() &&
      (op == "ReduceMean" || op == "ReduceSum" || op == "ReduceMax" ||
       op == "ReduceMin" || op == "ReduceProd" || op == "ReduceL2")) {
    int64_t since = op == "ReduceSum" ? 13 : 18;
    if (failed(shiftAxes(node, 1, since, rank, why)))
      return failure();
    allResultsBatched();
    return success();
  }
  if (domain.empty() && op == "Unsqueeze") {
    std::optional<SmallVector<int64_t>> axes = getAxes(node, 1, 13);
    int64_t outRank = rank + (axes ? int64_t(axes->size()) : 0);
    if (!axes) {
      why = "its axes are not constant";
      return failure();
    }
    SmallVector<int64_t> shifted;
    for (int64_t axis : *axes) {
      std::optional<int64_t> s = shiftAxis(axis, outRank);
      if (!s) {
        why = "it inserts an axis before the batch";
        return failure();
      }
      shifted.push_back(*s);
    }
    if (node.getVersion() < 13)
      setIntsAttr(node, "axes", shifted);
    else
      setIntsInput(node, 1, shifted);
    allResultsBatched();
    return success();
  }
  if (domain.empty() && op == "Squeeze")
    return foldSqueeze(node, why);
  if (domain.empty() && op == "Reshape")
    return foldReshape(node, why);
  if (domain.empty() && op == "Flatten") {
    if (getIntAttr(node, "axis", 1) != 2) {
      why = "only a Flatten at axis 2 (merging batch and sequence) folds";
      return failure();
    }
    setIntAttr(node, "axis", 1);
    merged.insert(node.getResult(0));
    return success();
  }
  if (domain.empty() && op == "Expand") {
    std::optional<SmallVector<int64_t>> shape = getInts(node.getInputOrNull(1));
    if (!shape || int64_t(shape->size()) > rank ||
        (int64_t(shape->size()) == rank && (*shape)[0] != 1)) {
      why = "only an Expand to a constant shape that leaves the batch alone "
            "folds";
      return failure();
    }
    if (int64_t(shape->size()) == rank)
      setIntsInput(node, 1, ArrayRef<int64_t>(*shape).drop_front());
    allResultsBatched();
    return success();
  }
  if (domain.empty() && op == "Shape") {
    // Only the sizes after the batch have a meaning once it is folded.
    int64_t start = getIntAttr(node, "start", 0);
    std::optional<int64_t> shifted = shiftAxis(start, rank);
    if (node.getVersion() < 15 || !shifted) {
      why = "it reads the batch size (only Shape with start >= 1, opset >= "
            "15, folds)";
      return failure();
    }
    setIntAttr(node, "start", *shifted);
    if (Attribute end = node.getNodeAttr("end")) {
      int64_t e = cast<IntegerAttr>(end).getInt();
      if (e > 0)
        setIntAttr(node, "end", e - 1);
    }
    merged.insert(node.getResult(0));
    return success();
  }
  if (domain.empty() && op == "Slice" && node.getVersion() >= 10) {
    std::optional<SmallVector<int64_t>> axes =
        node.getInputOrNull(3) ? getInts(node.getInputOrNull(3)) : std::nullopt;
    if (!axes) {
      why = "its axes are not constant (or absent, which slices the batch)";
      return failure();
    }
    SmallVector<int64_t> shifted;
    for (int64_t axis : *axes) {
      std::optional<int64_t> s = shiftAxis(axis, rank);
      if (!s) {
        why = "it slices the batch axis";
        return failure();
      }
      shifted.push_back(*s);
    }
    setIntsInput(node, 3, shifted);
    allResultsBatched();
    return success();
  }
  if (domain == "com.microsoft" && (op == "MoE" || op == "QMoE" ||
                                    op == "SkipSimplifiedLayerNormalization" ||
                                    op == "SimplifiedLayerNormalization")) {
    if (!isBatched(x) || (op == "SimplifiedLayerNormalization" &&
                          failed(shiftAxisAttr(node, "axis", -1, rank, why))))
      return failure();
    allResultsBatched();
    return success();
  }
  if (domain == "com.microsoft" && op == "RotaryEmbedding") {
    if (!isBatched(x) || rank != 3) {
      why = "only the [batch, seq, hidden] form of RotaryEmbedding folds (the "
            "4-d [batch, heads, seq, head] form is not token-major)";
      return failure();
    }
    allResultsBatched();
    return success();
  }
  why = "there is no rule to fold the batch dimension through " +
        (domain.empty() ? std::string() : domain.str() + ".") + op.str();
  return failure();
}

SmallVector<std::pair<NodeOp, std::string>> BatchFolder::run() {
  SmallVector<std::pair<NodeOp, std::string>> failures;
  for (BlockArgument arg : func.getArguments()) {
    batched.insert(arg);
    arg.setType(dropBatch(cast<RankedTensorType>(arg.getType())));
    func.setArgAttr(arg.getArgNumber(), "onnx.folded_batch",
                    UnitAttr::get(func.getContext()));
  }
  func.walk([&](NodeOp node) {
    if (llvm::none_of(node.getInputs(), [&](Value v) { return isBatched(v); }))
      return;
    std::string why;
    if (failed(foldNode(node, why))) {
      failures.emplace_back(node, why);
      return;
    }
    for (Value result : node.getResults()) {
      if (!batched.contains(result))
        continue;
      if (!isBatchedType(result.getType()) &&
          !(getRanked(result) && getRanked(result).getRank() >= 1 &&
            (getRanked(result).getDimSize(0) == 1 ||
             getRanked(result).isDynamicDim(0)))) {
        failures.emplace_back(
            node, llvm::formatv("its result type {0} has no leading batch "
                                "dimension; run onnx.shape_inference",
                                result.getType()));
        return;
      }
      result.setType(dropBatch(cast<RankedTensorType>(result.getType())));
    }
  });
  auto ret = cast<func::ReturnOp>(func.getBody().back().getTerminator());
  func.setType(FunctionType::get(func.getContext(),
                                 func.getBody().front().getArgumentTypes(),
                                 ret.getOperandTypes()));
  return failures;
}

struct FoldOnnxBatchPass
    : mlir::moec::impl::FoldOnnxBatchPassBase<FoldOnnxBatchPass> {
  void runOnOperation() override {
    if (failed(foldOnnxBatch(getOperation())))
      signalPassFailure();
  }
};

} // namespace

LogicalResult mlir::moec::foldOnnxBatch(ModuleOp module) {
  for (auto func : module.getOps<func::FuncOp>()) {
    if (func.isExternal() || func.getNumArguments() == 0 ||
        !llvm::all_of(func.getArgumentTypes(), isBatchedType))
      continue;
    SmallVector<std::pair<NodeOp, std::string>> failures =
        BatchFolder(func).run();
    if (failures.empty())
      continue;
    std::string model = "the model";
    if (auto path = module->getAttrOfType<StringAttr>("onnx.model"))
      model = "'" + path.str() + "'";
    InFlightDiagnostic diag =
        emitError(module.getLoc())
        << model << ": the inputs are [batch, seq, ...], but "
        << failures.size()
        << (failures.size() == 1 ? " node does" : " nodes do")
        << " not fold the batch into the token dimension:";
    for (auto &[node, why] : failures)
      diag << "\n  " << node.describe() << ": " << why;
    return failure();
  }
  return success();
}
