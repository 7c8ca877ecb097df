//===- MoEOps.cpp - moe dialect operations ----------------------*- C++ -*-===//
//
// Verifiers of the `moe` ops. Shapes are checked with the token dimension
// allowed to be dynamic on either side; every other mismatch is reported with
// the concrete shapes involved.
//
//===----------------------------------------------------------------------===//

#include "dialects/MoEDialect.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/Interfaces/FunctionInterfaces.h"
#include "llvm/ADT/STLExtras.h"

using namespace mlir;
using namespace mlir::moe;

#include "dialects/MoEInterfaces.cpp.inc"

#define GET_OP_CLASSES
#include "dialects/MoEOps.cpp.inc"

//===----------------------------------------------------------------------===//
// Shape helpers
//===----------------------------------------------------------------------===//

namespace {

bool dimsCompatible(int64_t a, int64_t b) {
  return ShapedType::isDynamic(a) || ShapedType::isDynamic(b) || a == b;
}

bool shapesCompatible(ArrayRef<int64_t> a, ArrayRef<int64_t> b) {
  return a.size() == b.size() && llvm::all_of(llvm::zip(a, b), [](auto pair) {
           return dimsCompatible(std::get<0>(pair), std::get<1>(pair));
         });
}

/// Checks that `value`, named `name` in messages, has rank `rank`.
LogicalResult checkRank(Operation *op, StringRef name, Type type,
                        int64_t rank) {
  int64_t actual = cast<RankedTensorType>(type).getRank();
  if (actual == rank)
    return success();
  return op->emitOpError("expected `")
         << name << "` to have rank " << rank << ", but got rank " << actual;
}

/// Checks that `type` has a shape compatible with `expected`.
LogicalResult checkShape(Operation *op, StringRef name, Type type,
                         ArrayRef<int64_t> expected) {
  ArrayRef<int64_t> actual = cast<RankedTensorType>(type).getShape();
  if (shapesCompatible(actual, expected))
    return success();
  return op->emitOpError("expected `")
         << name << "` of shape " << formatShape(expected) << ", but got "
         << formatShape(actual);
}

/// Checks that `type` has element type `expected`.
LogicalResult checkElementType(Operation *op, StringRef name, Type type,
                               Type expected) {
  Type actual = cast<RankedTensorType>(type).getElementType();
  if (actual == expected)
    return success();
  return op->emitOpError("expected `")
         << name << "` element type " << expected << ", but got " << actual;
}

int64_t dim(Value value, unsigned index) {
  return cast<RankedTensorType>(value.getType()).getDimSize(index);
}

ArrayRef<int64_t> shapeOf(Value value) {
  return cast<RankedTensorType>(value.getType()).getShape();
}

/// Verifies a GEMM `x: [R, K]` times `w: [(E,) N, K]`ᵀ producing
/// `result: [R, N]` (or `[R, N/2]` with the silu_mul epilogue).
LogicalResult verifyGemm(Operation *op, StringRef xName, Value x, Value w,
                         Value result, Epilogue epilogue, bool grouped) {
  if (failed(checkRank(op, xName, x.getType(), 2)) ||
      failed(checkRank(op, "w", w.getType(), grouped ? 3 : 2)))
    return failure();
  unsigned nIndex = grouped ? 1 : 0;
  int64_t k = dim(x, 1), wk = dim(w, nIndex + 1), n = dim(w, nIndex);
  if (!dimsCompatible(k, wk))
    return op->emitOpError("expected the K dimension of `")
           << xName << "` (" << k << ") and `w` (" << wk << ") to be equal";
  if (epilogue == Epilogue::silu_mul) {
    if (n % 2 != 0)
      return op->emitOpError(
                 "expected an even N for the silu_mul epilogue, but got N = ")
             << n;
    n /= 2;
  }
  return checkShape(op, "result", result.getType(), {dim(x, 0), n});
}

/// Verifies `routing` against the number of experts `numExperts`.
LogicalResult verifyRouting(Operation *op, RoutingAttr routing,
                            int64_t numExperts) {
  int64_t k = routing.getK(), groups = routing.getNGroup();
  if (k > numExperts)
    return op->emitOpError("expected `k` <= number of experts (")
           << numExperts << "), but got k = " << k;
  if (numExperts % groups != 0)
    return op->emitOpError("expected the number of experts (")
           << numExperts << ") to be divisible by n_group = " << groups;
  int64_t perGroup = numExperts / groups;
  if (routing.getGroupScore() == GroupScore::top2_sum && perGroup < 2)
    return op->emitOpError("expected at least 2 experts per group for "
                           "top2_sum, but got ")
           << perGroup;
  if (k > routing.getTopkGroup() * perGroup)
    return op->emitOpError("expected `k` <= topk_group * experts per group = ")
           << routing.getTopkGroup() * perGroup << ", but got k = " << k;
  return success();
}

/// Verifies that an FP8 tensor `data` and its `scale` agree with `scheme`.
LogicalResult verifyBlockScaled(Operation *op, StringRef dataName, Value data,
                                StringRef scaleName, Value scale,
                                BlockScaleAttr scheme) {
  if (failed(checkElementType(op, dataName, data.getType(),
                              scheme.getElementType())))
    return failure();
  return checkShape(op, scaleName, scale.getType(),
                    scheme.getScaleShape(shapeOf(data)));
}

/// Verifies the two schemes of an FP8 GEMM: one-row activation blocks and
/// the same K block on both sides.
LogicalResult verifyFp8Schemes(Operation *op, BlockScaleAttr act,
                               BlockScaleAttr weight) {
  if (act.getBlock()[0] != 1)
    return op->emitOpError("expected `act_scheme` blocks of one row, but got ")
           << formatShape(act.getBlock());
  if (act.getBlock()[1] != weight.getBlock()[1])
    return op->emitOpError("expected the K block of `act_scheme` (")
           << act.getBlock()[1] << ") and `weight_scheme` ("
           << weight.getBlock()[1] << ") to be equal";
  return success();
}

} // namespace

LogicalResult mlir::moe::OpTrait::verifyStaticFeatureDims(Operation *op) {
  auto check = [&](Type type, StringRef kind, unsigned index) -> LogicalResult {
    auto tensor = dyn_cast<RankedTensorType>(type);
    if (!tensor || ShapedType::isStaticShape(tensor.getShape().drop_front()))
      return success();
    return op->emitOpError("expected only the leading (token) dimension to "
                           "be dynamic, but ")
           << kind << " #" << index << " has type " << type;
  };
  for (auto [index, type] : llvm::enumerate(op->getOperandTypes()))
    if (failed(check(type, "operand", index)))
      return failure();
  for (auto [index, type] : llvm::enumerate(op->getResultTypes()))
    if (failed(check(type, "result", index)))
      return failure();
  return success();
}

//===----------------------------------------------------------------------===//
// Fused quantization (FusedQuantizeOpInterface)
//===----------------------------------------------------------------------===//

LogicalResult mlir::moe::detail::verifyFusedQuantize(Operation *op) {
  auto fused = cast<FusedQuantizeOpInterface>(op);
  BlockScaleAttr scheme = fused.getQuantizeScheme();
  Value data = fused.getQuantizedResult();
  Value scale = fused.getQuantizedScaleResult();
  bool hasScheme = static_cast<bool>(scheme);
  if (static_cast<bool>(data) != hasScheme ||
      static_cast<bool>(scale) != hasScheme)
    return op->emitOpError("expected the `quantized` and `quantized_scale` "
                           "results exactly when `quantize` is set");
  if (!scheme)
    return success();
  // A producer quantizes the rows it computes; a block spanning several
  // tokens would need all of them first.
  if (scheme.getBlock()[0] != 1)
    return op->emitOpError("expected `quantize` blocks of one row, but got ")
           << formatShape(scheme.getBlock());
  if (failed(checkShape(op, "quantized", data.getType(),
                        shapeOf(fused.getQuantizeSource()))))
    return failure();
  return verifyBlockScaled(op, "quantized", data, "quantized_scale", scale,
                           scheme);
}

//===----------------------------------------------------------------------===//
// moe.weight
//===----------------------------------------------------------------------===//

BlockScaleAttr WeightOp::getScheme() {
  for (Attribute transform : getTransforms())
    if (auto quantize = dyn_cast<QuantizeTransformAttr>(transform))
      return quantize.getScheme();
  return getStoredSchemeAttr();
}

LogicalResult WeightOp::verify() {
  if (getSources().empty())
    return emitOpError("expected at least one entry in `sources`");
  RankedTensorType stored = getStoredType();
  if (!stored.hasStaticShape())
    return emitOpError("expected a static `stored_type`, but got ") << stored;
  BlockScaleAttr storedScheme = getStoredSchemeAttr();
  bool storedFp8 =
      isa<Float8E4M3FNType, Float8E5M2Type>(stored.getElementType());
  // FP8 data always has a scheme; `u8` codes are `i8` data with one.
  bool storedInteger = storedScheme && storedScheme.isInteger();
  if (storedFp8 != static_cast<bool>(storedScheme) && !storedInteger)
    return emitOpError("expected `stored_scheme` exactly when `stored_type` "
                       "has an FP8 element type");
  if (storedScheme && failed(checkElementType(*this, "stored_type", stored,
                                              storedScheme.getElementType())))
    return failure();
  std::optional<ArrayAttr> scaleSources = getScaleSources();
  if (static_cast<bool>(scaleSources) != static_cast<bool>(storedScheme))
    return emitOpError(
        "expected `scale_sources` exactly when `stored_scheme` is set");
  if (scaleSources && scaleSources->size() != getSources().size())
    return emitOpError("expected as many `scale_sources` as `sources` (")
           << getSources().size() << "), but got " << scaleSources->size();

  // Replay the transforms on the stored shape, tracking the scale blocks so
  // that a transpose after quantization transposes them too.
  SmallVector<int64_t> shape(stored.getShape());
  Type elementType = stored.getElementType();
  BlockScaleAttr scheme = storedScheme;
  SmallVector<int64_t, 2> block;
  if (scheme)
    block.assign(scheme.getBlock().begin(), scheme.getBlock().end());
  bool stacked = false;
  for (auto [index, transform] : llvm::enumerate(getTransforms())) {
    if (isa<StackTransformAttr>(transform)) {
      if (index != 0)
        return emitOpError("expected `#moe.stack` only as the first transform");
      shape.insert(shape.begin(), getSources().size());
      stacked = true;
      continue;
    }
    if (!isa<TransposeTransformAttr, QuantizeTransformAttr>(transform))
      return emitOpError("expected `transforms` to hold `#moe.stack`, "
                         "`#moe.transpose` or `#moe.quantize`, but got ")
             << transform;
    if (shape.size() < 2)
      return emitOpError("expected rank >= 2 for ")
             << transform << ", but got rank " << shape.size();
    if (isa<TransposeTransformAttr>(transform)) {
      if (scheme && scheme.isPacked())
        return emitOpError("expected no `#moe.transpose` of packed u4 data "
                           "(its bytes pair elements of the last dimension)");
      std::swap(shape[shape.size() - 1], shape[shape.size() - 2]);
      if (scheme)
        std::swap(block[0], block[1]);
      continue;
    }
    if (scheme)
      return emitOpError("expected `#moe.quantize` only on an unquantized "
                         "weight");
    scheme = cast<QuantizeTransformAttr>(transform).getScheme();
    if (scheme.isInteger())
      return emitOpError("expected an FP8 scheme in `#moe.quantize`, but got ")
             << scheme;
    block.assign(scheme.getBlock().begin(), scheme.getBlock().end());
    elementType = scheme.getElementType();
  }
  if (getSources().size() > 1 && !stacked)
    return emitOpError("expected `#moe.stack` first when `sources` has ")
           << getSources().size() << " entries";

  auto expected = RankedTensorType::get(shape, elementType);
  if (getResult().getType() != expected)
    return emitOpError("expected result type ")
           << expected << " after the transforms, but got "
           << getResult().getType();
  if (static_cast<bool>(getScale()) != static_cast<bool>(scheme))
    return emitOpError(
        "expected a `scale` result exactly when the weight is quantized");
  if (!scheme)
    return success();
  SmallVector<int64_t> scaleShape = scheme.getUnpackedShape(shape);
  for (int i = 0; i < 2; ++i) {
    int64_t &d = scaleShape[scaleShape.size() - 2 + i];
    d = (d + block[i] - 1) / block[i];
  }
  return checkShape(*this, "scale", getScale().getType(), scaleShape);
}

//===----------------------------------------------------------------------===//
// Dense transformer
//===----------------------------------------------------------------------===//

LogicalResult EmbedOp::verify() {
  if (failed(checkRank(*this, "table", getTable().getType(), 2)) ||
      failed(checkRank(*this, "ids", getIds().getType(), 1)))
    return failure();
  return checkShape(*this, "result", getType(),
                    {dim(getIds(), 0), dim(getTable(), 1)});
}

LogicalResult MatmulOp::verify() {
  if (failed(verifyGemm(*this, "x", getX(), getW(), getResult(), getEpilogue(),
                        /*grouped=*/false)))
    return failure();
  if (getBias())
    return checkShape(*this, "bias", getBias().getType(), {dim(getW(), 0)});
  return success();
}

LogicalResult RmsNormOp::verify() {
  ArrayRef<int64_t> shape = shapeOf(getX());
  if (shape.empty())
    return emitOpError("expected `x` to have rank >= 1, but got rank 0");
  if (failed(
          checkShape(*this, "weight", getWeight().getType(), {shape.back()})) ||
      failed(checkShape(*this, "result", getType(), shape)))
    return failure();
  if (!(getEpsilon().convertToDouble() > 0.0))
    return emitOpError("expected `epsilon` > 0, but got ")
           << getEpsilon().convertToDouble();
  return success();
}

LogicalResult AddRmsNormOp::verify() {
  ArrayRef<int64_t> shape = shapeOf(getLhs());
  if (shape.empty())
    return emitOpError("expected `lhs` to have rank >= 1, but got rank 0");
  if (failed(
          checkShape(*this, "weight", getWeight().getType(), {shape.back()})) ||
      failed(checkShape(*this, "result", getResult().getType(), shape)))
    return failure();
  if (!(getEpsilon().convertToDouble() > 0.0))
    return emitOpError("expected `epsilon` > 0, but got ")
           << getEpsilon().convertToDouble();
  return success();
}

LogicalResult RopeOp::verify() {
  if (failed(checkRank(*this, "x", getX().getType(), 3)) ||
      failed(checkShape(*this, "positions", getPositions().getType(),
                        {dim(getX(), 0)})))
    return failure();
  if (dim(getX(), 2) % 2 != 0)
    return emitOpError("expected an even last dimension, but got ")
           << dim(getX(), 2);
  if (!(getTheta().convertToDouble() > 0.0))
    return emitOpError("expected `theta` > 0, but got ")
           << getTheta().convertToDouble();
  return success();
}

/// The checks `moe.attention` and `moe.paged_attention` share: q/k/v of
/// rank 3 with `T` rows, key/value heads dividing the query heads, the
/// result `[T, Hq, Dv]` and a positive scale.
static LogicalResult verifyAttention(Operation *op, Value q, Value k, Value v,
                                     Value result, double scale) {
  if (failed(checkRank(op, "q", q.getType(), 3)) ||
      failed(checkRank(op, "k", k.getType(), 3)) ||
      failed(checkRank(op, "v", v.getType(), 3)))
    return failure();
  int64_t tokens = dim(q, 0), heads = dim(q, 1);
  int64_t kvHeads = dim(k, 1);
  if (failed(checkShape(op, "k", k.getType(), {tokens, kvHeads, dim(q, 2)})) ||
      failed(checkShape(op, "v", v.getType(), {tokens, kvHeads, dim(v, 2)})))
    return failure();
  if (kvHeads < 1)
    return op->emitOpError("expected at least one key/value head, but got 0");
  if (heads % kvHeads != 0)
    return op->emitOpError("expected the query heads (")
           << heads << ") to be a multiple of the key/value heads (" << kvHeads
           << ")";
  if (failed(checkShape(op, "result", result.getType(),
                        {tokens, heads, dim(v, 2)})))
    return failure();
  if (!(scale > 0.0))
    return op->emitOpError("expected `scale` > 0, but got ") << scale;
  return success();
}

LogicalResult AttentionOp::verify() {
  return verifyAttention(*this, getQ(), getK(), getV(), getResult(),
                         getScale().convertToDouble());
}

/// The checks the paged attention ops share: `positions` and `slots` of
/// `tokens` rows, a non-empty rank-2 `page_table` and `layer` >= 0 (the
/// attribute's signed value: the I64Attr getter zero-extends).
static LogicalResult verifyPagedRows(Operation *op, int64_t tokens,
                                     Value positions, Value slots,
                                     Value pageTable, int64_t layer) {
  if (failed(checkShape(op, "positions", positions.getType(), {tokens})) ||
      failed(checkShape(op, "slots", slots.getType(), {tokens})) ||
      failed(checkRank(op, "page_table", pageTable.getType(), 2)))
    return failure();
  if (cast<RankedTensorType>(pageTable.getType()).getNumElements() < 1)
    return op->emitOpError("expected a `page_table` with at least one entry");
  if (layer < 0)
    return op->emitOpError("expected `layer` >= 0, but got ") << layer;
  return success();
}

/// Checks that `cache`, named `name`, is a function argument marked
/// `moe.kv_cache` holding whole pages of `P` positions of `heads x width`
/// values: `[?, P, heads, width]` with `P >= 1`.
static LogicalResult verifyCacheArgument(Operation *op, StringRef name,
                                         Value cache, int64_t heads,
                                         int64_t width) {
  if (failed(checkRank(op, name, cache.getType(), 4)))
    return failure();
  auto type = cast<RankedTensorType>(cache.getType());
  if (!type.isDynamicDim(0) || type.getDimSize(1) < 1)
    return op->emitOpError("expected `")
           << name << "` of shape [?, P, heads, dim] with P >= 1, but got "
           << formatShape(type.getShape());
  if (failed(
          checkShape(op, name, type,
                     {ShapedType::kDynamic, type.getDimSize(1), heads, width})))
    return failure();
  auto arg = dyn_cast<BlockArgument>(cache);
  auto func = arg ? dyn_cast<FunctionOpInterface>(arg.getOwner()->getParentOp())
                  : FunctionOpInterface();
  if (!func ||
      !func.getArgAttr(arg.getArgNumber(), MoEDialect::getKvCacheAttrName()))
    return op->emitOpError("expected `")
           << name << "` to be a function argument marked `"
           << MoEDialect::getKvCacheAttrName() << "`";
  return success();
}

LogicalResult PagedAttentionOp::verify() {
  if (failed(verifyAttention(*this, getQ(), getK(), getV(), getResult(),
                             getScale().convertToDouble())) ||
      failed(verifyPagedRows(*this, dim(getQ(), 0), getPositions(), getSlots(),
                             getPageTable(), getLayerAttr().getInt())))
    return failure();
  // Each cache holds whole pages of `P` positions of its projection's heads.
  if (failed(verifyCacheArgument(*this, "k_cache", getKCache(), dim(getK(), 1),
                                 dim(getK(), 2))) ||
      failed(verifyCacheArgument(*this, "v_cache", getVCache(), dim(getV(), 1),
                                 dim(getV(), 2))))
    return failure();
  if (dim(getKCache(), 1) != dim(getVCache(), 1))
    return emitOpError("expected `k_cache` and `v_cache` to have the same "
                       "page tokens, but got ")
           << dim(getKCache(), 1) << " and " << dim(getVCache(), 1);
  if (getKCache() == getVCache())
    return emitOpError("expected distinct `k_cache` and `v_cache`");
  return success();
}

LogicalResult SelectRowsOp::verify() {
  auto x = cast<RankedTensorType>(getX().getType());
  if (x.getRank() < 1 || !x.isDynamicDim(0))
    return emitOpError("expected `x` with a dynamic leading (row) dimension");
  if (failed(checkRank(*this, "rows", getRows().getType(), 1)))
    return failure();
  if (!cast<RankedTensorType>(getRows().getType()).isDynamicDim(0))
    return emitOpError("expected `rows` of shape [?]");
  return checkShape(*this, "result", getType(), x.getShape());
}

LogicalResult PagedMlaAttentionOp::verify() {
  if (failed(checkRank(*this, "q_nope", getQNope().getType(), 3)) ||
      failed(checkRank(*this, "q_rope", getQRope().getType(), 3)) ||
      failed(checkRank(*this, "latent", getLatent().getType(), 2)) ||
      failed(checkRank(*this, "k_rope", getKRope().getType(), 3)) ||
      failed(checkRank(*this, "kv_b", getKvB().getType(), 2)) ||
      failed(checkRank(*this, "result", getType(), 3)))
    return failure();
  int64_t tokens = dim(getQNope(), 0), heads = dim(getQNope(), 1);
  int64_t nope = dim(getQNope(), 2), rope = dim(getQRope(), 2);
  int64_t rank = dim(getLatent(), 1), vDim = dim(getResult(), 2);
  for (int64_t extent : {heads, nope, rope, rank, vDim})
    if (ShapedType::isDynamic(extent) || extent < 1)
      return emitOpError("expected static heads, head dims and latent rank "
                         ">= 1, but got heads ")
             << heads << ", nope " << nope << ", rope " << rope << ", rank "
             << rank << " and value dim " << vDim;
  if (failed(checkShape(*this, "q_rope", getQRope().getType(),
                        {tokens, heads, rope})) ||
      failed(
          checkShape(*this, "latent", getLatent().getType(), {tokens, rank})) ||
      failed(checkShape(*this, "k_rope", getKRope().getType(),
                        {tokens, 1, rope})) ||
      failed(checkShape(*this, "kv_b", getKvB().getType(),
                        {heads * (nope + vDim), rank})) ||
      failed(checkShape(*this, "result", getType(), {tokens, heads, vDim})))
    return failure();
  if (!(getScale().convertToDouble() > 0.0))
    return emitOpError("expected `scale` > 0, but got ")
           << getScale().convertToDouble();
  if (failed(verifyPagedRows(*this, tokens, getPositions(), getSlots(),
                             getPageTable(), getLayerAttr().getInt())))
    return failure();
  return verifyCacheArgument(*this, "cache", getCache(), 1, rank + rope);
}

//===----------------------------------------------------------------------===//
// Shape ops
//===----------------------------------------------------------------------===//

LogicalResult ReshapeOp::verify() {
  auto in = cast<RankedTensorType>(getX().getType());
  auto out = getType();
  if (failed(checkElementType(*this, "result", out, in.getElementType())))
    return failure();
  if (in.getRank() < 1 || out.getRank() < 1 ||
      !dimsCompatible(in.getDimSize(0), out.getDimSize(0)))
    return emitOpError("expected the leading (token) dimension to be kept, "
                       "but got ")
           << formatShape(in.getShape()) << " -> "
           << formatShape(out.getShape());
  auto rest = [](RankedTensorType t) {
    int64_t n = 1;
    for (int64_t d : t.getShape().drop_front())
      n *= d;
    return n;
  };
  if (!in.getShape().drop_front().equals(out.getShape().drop_front()) &&
      (!ShapedType::isStaticShape(in.getShape().drop_front()) ||
       !ShapedType::isStaticShape(out.getShape().drop_front()) ||
       rest(in) != rest(out)))
    return emitOpError("expected the non-token dimensions to hold the same "
                       "number of elements, but got ")
           << formatShape(in.getShape()) << " -> "
           << formatShape(out.getShape());
  return success();
}

LogicalResult SliceOp::verify() {
  ArrayRef<int64_t> in = shapeOf(getX()), out = getType().getShape();
  if (failed(checkElementType(*this, "result", getType(),
                              getX().getType().getElementType())))
    return failure();
  if (in.empty() || in.size() != out.size() ||
      !shapesCompatible(in.drop_back(), out.drop_back()))
    return emitOpError("expected the result to differ from `x` only in the "
                       "last dimension, but got ")
           << formatShape(in) << " -> " << formatShape(out);
  int64_t offset = getOffset();
  if (offset < 0 || offset + out.back() > in.back())
    return emitOpError("expected `offset` + result size <= ")
           << in.back() << ", but got " << offset << " + " << out.back();
  return success();
}

int64_t ConcatOp::getConcatDim() {
  if (IntegerAttr dimAttr = getDimAttr())
    return dimAttr.getInt();
  return getType().getRank() - 1;
}

LogicalResult ConcatOp::verify() {
  if (getInputs().empty())
    return emitOpError("expected at least one input");
  ArrayRef<int64_t> out = getType().getShape();
  // Without `dim` the messages speak of the last dimension, as they did
  // before `dim` existed.
  bool explicitDim = static_cast<bool>(getDimAttr());
  int64_t axis = getConcatDim();
  if (explicitDim && (axis < 0 || axis >= static_cast<int64_t>(out.size())))
    return emitOpError("expected `dim` in [0, ")
           << out.size() << "), but got " << axis;
  int64_t total = 0;
  bool dynamicTotal = false;
  for (Value input : getInputs()) {
    ArrayRef<int64_t> in = shapeOf(input);
    if (failed(checkElementType(*this, "inputs", input.getType(),
                                getType().getElementType())))
      return failure();
    bool matches = !in.empty() && in.size() == out.size();
    for (size_t i = 0; matches && i < in.size(); ++i)
      matches =
          static_cast<int64_t>(i) == axis || dimsCompatible(in[i], out[i]);
    if (!matches && explicitDim)
      return emitOpError("expected every input to match the result except "
                         "in dimension ")
             << axis << ", but got " << formatShape(in) << " and "
             << formatShape(out);
    if (!matches)
      return emitOpError("expected every input to match the result except "
                         "in the last dimension, but got ")
             << formatShape(in) << " and " << formatShape(out);
    dynamicTotal |= ShapedType::isDynamic(in[axis]);
    total += ShapedType::isDynamic(in[axis]) ? 0 : in[axis];
  }
  if (dynamicTotal || ShapedType::isDynamic(out[axis]) || total == out[axis])
    return success();
  if (explicitDim)
    return emitOpError("expected dimension ")
           << axis << " of the inputs to add up to " << out[axis]
           << ", but got " << total;
  return emitOpError("expected the last dimensions to add up to ")
         << out.back() << ", but got " << total;
}

LogicalResult ExpandOp::verify() {
  ArrayRef<int64_t> in = shapeOf(getX()), out = getType().getShape();
  if (failed(checkElementType(*this, "result", getType(),
                              getX().getType().getElementType())))
    return failure();
  bool ok = in.size() == out.size();
  for (size_t i = 0; ok && i < in.size(); ++i)
    ok = in[i] == 1 || dimsCompatible(in[i], out[i]);
  if (!ok)
    return emitOpError("expected every dimension of `x` to be 1 or equal to "
                       "the result's, but got ")
           << formatShape(in) << " -> " << formatShape(out);
  return success();
}

//===----------------------------------------------------------------------===//
// Generic token-wise ops
//===----------------------------------------------------------------------===//

namespace {

/// Verifies numpy broadcasting of `operands` (named `names`) to `result`:
/// shapes aligned on their last dimension, each operand dimension 1 or
/// equal to the result's (a dynamic one only in the token dimension of an
/// operand of the result's rank), and every result dimension coming from
/// some operand.
LogicalResult verifyBroadcast(Operation *op, ArrayRef<StringRef> names,
                              ValueRange operands, Value result) {
  ArrayRef<int64_t> out = shapeOf(result);
  SmallVector<bool> covered(out.size(), false);
  for (auto [name, operand] : llvm::zip_equal(names, operands)) {
    ArrayRef<int64_t> in = shapeOf(operand);
    size_t shift = out.size() - std::min(out.size(), in.size());
    bool ok = in.size() <= out.size();
    for (size_t i = 0; ok && i < in.size(); ++i) {
      int64_t d = in[i], r = out[shift + i];
      ok = d == 1 || d == r;
      if (d == r)
        covered[shift + i] = true;
    }
    if (!ok)
      return op->emitOpError("expected `")
             << name << "` " << formatShape(in)
             << " to broadcast to the result " << formatShape(out);
  }
  for (auto [i, d] : llvm::enumerate(out))
    if (!covered[i] && d != 1)
      return op->emitOpError("expected result dimension ")
             << i << " (" << formatShape(out)
             << ") to be the size of an operand's";
  return success();
}

/// Checks that `dim` is a non-token dimension of a rank-`rank` tensor.
LogicalResult checkNonTokenDim(Operation *op, StringRef name, int64_t dim,
                               int64_t rank) {
  if (dim >= 1 && dim < rank)
    return success();
  return op->emitOpError("expected `")
         << name << "` in [1, " << rank << "), but got " << dim;
}

/// Verifies the indices of `moe.gather_elements`/`moe.scatter_elements`:
/// the rank of `x`, and no larger than it except along `dim`.
LogicalResult verifyElementIndices(Operation *op, Value x, Value indices,
                                   int64_t dim) {
  ArrayRef<int64_t> data = shapeOf(x), idx = shapeOf(indices);
  if (failed(checkNonTokenDim(op, "dim", dim, data.size())))
    return failure();
  bool ok = data.size() == idx.size() && dimsCompatible(data[0], idx[0]);
  for (size_t i = 1; ok && i < data.size(); ++i)
    ok = int64_t(i) == dim || idx[i] <= data[i];
  if (!ok)
    return op->emitOpError("expected `indices` ")
           << formatShape(idx) << " to fit in `x` " << formatShape(data)
           << " outside dimension " << dim;
  return success();
}

} // namespace

LogicalResult BinaryOp::verify() {
  Type elt = getType().getElementType();
  if (failed(checkElementType(*this, "lhs", getLhs().getType(), elt)) ||
      failed(checkElementType(*this, "rhs", getRhs().getType(), elt)))
    return failure();
  return verifyBroadcast(*this, {"lhs", "rhs"}, {getLhs(), getRhs()},
                         getResult());
}

LogicalResult CompareOp::verify() {
  if (failed(checkElementType(*this, "rhs", getRhs().getType(),
                              getLhs().getType().getElementType())))
    return failure();
  return verifyBroadcast(*this, {"lhs", "rhs"}, {getLhs(), getRhs()},
                         getResult());
}

LogicalResult SelectOp::verify() {
  Type elt = getType().getElementType();
  if (failed(checkElementType(*this, "on_true", getOnTrue().getType(), elt)) ||
      failed(checkElementType(*this, "on_false", getOnFalse().getType(), elt)))
    return failure();
  return verifyBroadcast(*this, {"condition", "on_true", "on_false"},
                         {getCondition(), getOnTrue(), getOnFalse()},
                         getResult());
}

LogicalResult CastOp::verify() {
  return checkShape(*this, "result", getType(), shapeOf(getX()));
}

LogicalResult ReduceOp::verify() {
  ArrayRef<int64_t> in = shapeOf(getX()), dims = getDims();
  if (failed(checkElementType(*this, "result", getType(),
                              getX().getType().getElementType())))
    return failure();
  if (dims.empty())
    return emitOpError("expected at least one dimension in `dims`");
  for (auto [i, d] : llvm::enumerate(dims)) {
    if (failed(checkNonTokenDim(*this, "dims", d, in.size())))
      return failure();
    if (i > 0 && d <= dims[i - 1])
      return emitOpError("expected strictly increasing `dims`, but got ")
             << formatShape(dims);
  }
  SmallVector<int64_t> kept(in), dropped;
  for (auto [i, d] : llvm::enumerate(in)) {
    if (llvm::is_contained(dims, int64_t(i)))
      kept[i] = 1;
    else
      dropped.push_back(d);
  }
  ArrayRef<int64_t> out = getType().getShape();
  if (shapesCompatible(out, kept) || shapesCompatible(out, dropped))
    return success();
  return emitOpError("expected the result shape ")
         << formatShape(kept) << " or " << formatShape(dropped) << ", but got "
         << formatShape(out);
}

LogicalResult TopKOp::verify() {
  ArrayRef<int64_t> in = shapeOf(getX());
  if (in.size() < 2)
    return emitOpError("expected `x` of rank >= 2 (tokens first), but got "
                       "rank ")
           << in.size();
  int64_t k = getK();
  if (k > in.back())
    return emitOpError("expected `k` <= ")
           << in.back() << " (the last dimension), but got k = " << k;
  SmallVector<int64_t> shape(in);
  shape.back() = k;
  if (failed(checkElementType(*this, "values", getValues().getType(),
                              getX().getType().getElementType())) ||
      failed(checkShape(*this, "values", getValues().getType(), shape)))
    return failure();
  return checkShape(*this, "indices", getIndices().getType(), shape);
}

LogicalResult TransposeOp::verify() {
  ArrayRef<int64_t> in = shapeOf(getX()), perm = getPermutation();
  if (failed(checkElementType(*this, "result", getType(),
                              getX().getType().getElementType())))
    return failure();
  SmallVector<bool> seen(in.size(), false);
  bool ok = perm.size() == in.size() && !perm.empty() && perm[0] == 0;
  for (size_t i = 0; ok && i < perm.size(); ++i) {
    ok = perm[i] >= 0 && perm[i] < int64_t(in.size()) && !seen[perm[i]];
    if (ok)
      seen[perm[i]] = true;
  }
  if (!ok)
    return emitOpError("expected `permutation` to be a permutation of the ")
           << in.size() << " dimensions that keeps dimension 0 first, but got "
           << formatShape(perm);
  SmallVector<int64_t> shape;
  for (int64_t p : perm)
    shape.push_back(in[p]);
  return checkShape(*this, "result", getType(), shape);
}

LogicalResult BatchMatmulOp::verify() {
  ArrayRef<int64_t> lhs = shapeOf(getLhs()), rhs = shapeOf(getRhs());
  Type elt = getType().getElementType();
  if (failed(checkElementType(*this, "lhs", getLhs().getType(), elt)) ||
      failed(checkElementType(*this, "rhs", getRhs().getType(), elt)))
    return failure();
  if (lhs.size() < 3 || lhs.size() != rhs.size() ||
      !shapesCompatible(lhs.drop_back(2), rhs.drop_back(2)))
    return emitOpError("expected operands of the same rank >= 3 with equal "
                       "leading dimensions, but got ")
           << formatShape(lhs) << " and " << formatShape(rhs);
  size_t r = lhs.size();
  if (lhs[r - 1] != rhs[r - 2])
    return emitOpError("expected the K dimension of `lhs` (")
           << lhs[r - 1] << ") and `rhs` (" << rhs[r - 2] << ") to be equal";
  SmallVector<int64_t> shape(lhs);
  shape.back() = rhs.back();
  return checkShape(*this, "result", getType(), shape);
}

LogicalResult GatherElementsOp::verify() {
  if (failed(verifyElementIndices(*this, getX(), getIndices(), getDim())) ||
      failed(checkElementType(*this, "result", getType(),
                              getX().getType().getElementType())))
    return failure();
  return checkShape(*this, "result", getType(), shapeOf(getIndices()));
}

LogicalResult ScatterElementsOp::verify() {
  if (failed(verifyElementIndices(*this, getX(), getIndices(), getDim())) ||
      failed(checkElementType(*this, "updates", getUpdates().getType(),
                              getX().getType().getElementType())) ||
      failed(checkShape(*this, "updates", getUpdates().getType(),
                        shapeOf(getIndices()))))
    return failure();
  if (getType() != getX().getType())
    return emitOpError("expected the result type ")
           << getX().getType() << ", but got " << getType();
  return success();
}

LogicalResult OneHotOp::verify() {
  SmallVector<int64_t> shape(shapeOf(getIndices()));
  if (getType().getRank() != int64_t(shape.size()) + 1)
    return emitOpError("expected a result of rank ")
           << shape.size() + 1 << ", but got rank " << getType().getRank();
  shape.push_back(getType().getShape().back());
  return checkShape(*this, "result", getType(), shape);
}

//===----------------------------------------------------------------------===//
// Routing and experts
//===----------------------------------------------------------------------===//

LogicalResult RouterOp::verify() {
  if (failed(checkRank(*this, "x", getX().getType(), 2)) ||
      failed(checkRank(*this, "gate", getGate().getType(), 2)))
    return failure();
  int64_t experts = dim(getGate(), 0), tokens = dim(getX(), 0);
  if (failed(checkShape(*this, "gate", getGate().getType(),
                        {experts, dim(getX(), 1)})))
    return failure();
  if (getBias() &&
      failed(checkShape(*this, "bias", getBias().getType(), {experts})))
    return failure();
  if (failed(verifyRouting(*this, getRouting(), experts)))
    return failure();
  // Folded shared experts are appended after the top k.
  int64_t k = getRouting().getK() + static_cast<int64_t>(getSharedExperts());
  if (failed(checkShape(*this, "weights", getWeights().getType(), {tokens, k})))
    return failure();
  return checkShape(*this, "indices", getIndices().getType(), {tokens, k});
}

LogicalResult DispatchOp::verify() {
  if (failed(checkRank(*this, "x", getX().getType(), 2)) ||
      failed(checkRank(*this, "indices", getIndices().getType(), 2)) ||
      failed(checkRank(*this, "offsets", getOffsets().getType(), 1)))
    return failure();
  if (failed(checkShape(*this, "indices", getIndices().getType(),
                        {dim(getX(), 0), dim(getIndices(), 1)})))
    return failure();
  int64_t offsets = dim(getOffsets(), 0);
  if (ShapedType::isDynamic(offsets) || offsets < 2)
    return emitOpError("expected a static `offsets` of size E + 1 >= 2, but "
                       "got ")
           << formatShape(shapeOf(getOffsets()));
  if (failed(checkShape(*this, "rows", getRows().getType(),
                        {ShapedType::kDynamic, dim(getX(), 1)})))
    return failure();
  return checkRank(*this, "positions", getPositions().getType(), 1);
}

LogicalResult GroupedMatmulOp::verify() {
  if (failed(verifyGemm(*this, "rows", getRows(), getW(), getResult(),
                        getEpilogue(),
                        /*grouped=*/true)))
    return failure();
  return checkShape(*this, "offsets", getOffsets().getType(),
                    {dim(getW(), 0) + 1});
}

LogicalResult CombineOp::verify() {
  if (failed(checkRank(*this, "rows", getRows().getType(), 2)) ||
      failed(checkRank(*this, "positions", getPositions().getType(), 1)) ||
      failed(checkRank(*this, "weights", getWeights().getType(), 2)))
    return failure();
  SmallVector<int64_t> expected = {dim(getWeights(), 0), dim(getRows(), 1)};
  if (getResidual() &&
      failed(checkShape(*this, "residual", getResidual().getType(), expected)))
    return failure();
  return checkShape(*this, "result", getType(), expected);
}

LogicalResult SigmoidGateOp::verify() {
  if (failed(checkRank(*this, "x", getX().getType(), 2)) ||
      failed(checkRank(*this, "y", getY().getType(), 2)) ||
      failed(
          checkShape(*this, "gate", getGate().getType(), {1, dim(getX(), 1)})))
    return failure();
  return checkShape(*this, "y", getY().getType(),
                    {dim(getX(), 0), dim(getY(), 1)});
}

LogicalResult MoEOp::verify() {
  if (failed(checkRank(*this, "x", getX().getType(), 2)) ||
      failed(checkRank(*this, "gate", getGate().getType(), 2)) ||
      failed(checkRank(*this, "gate_proj", getGateProj().getType(), 3)))
    return failure();
  int64_t hidden = dim(getX(), 1), experts = dim(getGate(), 0);
  int64_t inter = dim(getGateProj(), 1);
  if (failed(checkShape(*this, "gate", getGate().getType(), {experts, hidden})))
    return failure();
  if (getBias() &&
      failed(checkShape(*this, "bias", getBias().getType(), {experts})))
    return failure();
  if (failed(checkShape(*this, "gate_proj", getGateProj().getType(),
                        {experts, inter, hidden})) ||
      failed(checkShape(*this, "up_proj", getUpProj().getType(),
                        {experts, inter, hidden})) ||
      failed(checkShape(*this, "down_proj", getDownProj().getType(),
                        {experts, hidden, inter})))
    return failure();
  int sharedCount = (getSharedGateProj() ? 1 : 0) +
                    (getSharedUpProj() ? 1 : 0) + (getSharedDownProj() ? 1 : 0);
  if (sharedCount != 0 && sharedCount != 3)
    return emitOpError("expected all three shared expert projections or "
                       "none, but got ")
           << sharedCount;
  if (sharedCount == 3) {
    if (failed(checkRank(*this, "shared_gate_proj",
                         getSharedGateProj().getType(), 2)))
      return failure();
    int64_t sharedInter = dim(getSharedGateProj(), 0);
    if (failed(checkShape(*this, "shared_gate_proj",
                          getSharedGateProj().getType(),
                          {sharedInter, hidden})) ||
        failed(checkShape(*this, "shared_up_proj", getSharedUpProj().getType(),
                          {sharedInter, hidden})) ||
        failed(checkShape(*this, "shared_down_proj",
                          getSharedDownProj().getType(),
                          {hidden, sharedInter})))
      return failure();
  }
  if (getSharedExpertGate()) {
    if (sharedCount == 0)
      return emitOpError("expected `shared_expert_gate` only with shared "
                         "experts");
    if (failed(checkShape(*this, "shared_expert_gate",
                          getSharedExpertGate().getType(), {1, hidden})))
      return failure();
  }
  if (failed(verifyRouting(*this, getRouting(), experts)))
    return failure();
  return checkShape(*this, "result", getType(), shapeOf(getX()));
}

//===----------------------------------------------------------------------===//
// FP8
//===----------------------------------------------------------------------===//

LogicalResult QuantizeOp::verify() {
  if (failed(
          checkShape(*this, "result", getResult().getType(), shapeOf(getX()))))
    return failure();
  return verifyBlockScaled(*this, "result", getResult(), "scale", getScale(),
                           getScheme());
}

LogicalResult DequantizeOp::verify() {
  if (failed(verifyBlockScaled(*this, "x", getX(), "scale", getScale(),
                               getScheme())))
    return failure();
  return checkShape(*this, "result", getType(),
                    getScheme().getUnpackedShape(shapeOf(getX())));
}

LogicalResult Fp8MatmulOp::verify() {
  if (failed(verifyFp8Schemes(*this, getActScheme(), getWeightScheme())) ||
      failed(verifyGemm(*this, "x", getX(), getW(), getResult(), getEpilogue(),
                        /*grouped=*/false)) ||
      failed(verifyBlockScaled(*this, "x", getX(), "x_scale", getXScale(),
                               getActScheme())))
    return failure();
  if (getBias() &&
      failed(checkShape(*this, "bias", getBias().getType(), {dim(getW(), 0)})))
    return failure();
  return verifyBlockScaled(*this, "w", getW(), "w_scale", getWScale(),
                           getWeightScheme());
}

LogicalResult Fp8GroupedMatmulOp::verify() {
  if (failed(verifyFp8Schemes(*this, getActScheme(), getWeightScheme())) ||
      failed(verifyGemm(*this, "rows", getRows(), getW(), getResult(),
                        getEpilogue(),
                        /*grouped=*/true)) ||
      failed(checkShape(*this, "offsets", getOffsets().getType(),
                        {dim(getW(), 0) + 1})) ||
      failed(verifyBlockScaled(*this, "rows", getRows(), "rows_scale",
                               getRowsScale(), getActScheme())))
    return failure();
  return verifyBlockScaled(*this, "w", getW(), "w_scale", getWScale(),
                           getWeightScheme());
}
