//===- OnnxMatchers.h - Helpers of the ONNX legalisation --------*- C++ -*-===//
//
// What every ONNX legalisation pattern needs: the pattern base class keyed by
// (domain, op type, opset), the record of why nodes were not legalised,
// readers of node attributes and constant inputs (across the opsets where
// an attribute became an input), and matchers of weights that create the
// `moe.weight` ops referencing them.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_IMPORTERS_ONNX_ONNXMATCHERS_H
#define MOEC_IMPORTERS_ONNX_ONNXMATCHERS_H

#include "dialects/MoEDialect.h"
#include "importers/onnx/OnnxDialect.h"

#include "mlir/IR/PatternMatch.h"
#include "llvm/ADT/DenseMap.h"

#include <functional>
#include <limits>
#include <optional>
#include <string>

namespace mlir::moec {

/// Why `onnx.node` ops were not legalised, for the importer's final error.
/// Patterns note a reason when a node they are keyed on does not fit.
class OnnxFailureReasons {
public:
  /// Records `why` for `op`, replacing an earlier reason.
  void note(Operation *op, const llvm::Twine &why) { reasons[op] = why.str(); }
  /// The last reason noted for `op`, or an empty string.
  std::string lookup(Operation *op) const { return reasons.lookup(op); }

private:
  llvm::DenseMap<Operation *, std::string> reasons;
};

/// Reads the values of an initializer that is too large to be inline (from
/// the model file), or returns null.
using OnnxValueReader =
    std::function<DenseElementsAttr(onnx_ir::InitializerOp)>;

/// The largest opset a pattern accepts by default.
constexpr int64_t kAnyOpset = std::numeric_limits<int64_t>::max();

/// A rewrite of the `onnx.node` ops of one operator: `domain` (empty for
/// `ai.onnx`) and `opType`, at opsets `since` to `until`. Nodes with no
/// outputs or more than `maxResults` are not matched, so rewrites may use
/// result 0 and replace the node by `maxResults` values.
class OnnxNodePattern : public OpRewritePattern<onnx_ir::NodeOp> {
public:
  OnnxNodePattern(MLIRContext *context, llvm::StringRef domain,
                  llvm::StringRef opType, int64_t since, int64_t until,
                  OnnxFailureReasons *reasons, unsigned maxResults = 1,
                  PatternBenefit benefit = 1);

  LogicalResult matchAndRewrite(onnx_ir::NodeOp node,
                                PatternRewriter &rewriter) const final;

protected:
  /// Rewrites `node`, or fails and sets `why` (may stay empty when the node
  /// is simply not of the form this pattern handles).
  virtual LogicalResult rewriteNode(onnx_ir::NodeOp node,
                                    PatternRewriter &rewriter,
                                    std::string &why) const = 0;

private:
  std::string domain, opType;
  int64_t since, until;
  OnnxFailureReasons *reasons;
  unsigned maxResults;
};

/// The signature of a table-driven node rewrite.
using OnnxRewriteFn = LogicalResult (*)(onnx_ir::NodeOp, PatternRewriter &,
                                        std::string &why);

/// An OnnxNodePattern that calls a function.
class OnnxFnPattern : public OnnxNodePattern {
public:
  OnnxFnPattern(MLIRContext *context, llvm::StringRef domain,
                llvm::StringRef opType, int64_t since, int64_t until,
                OnnxFailureReasons *reasons, unsigned maxResults,
                OnnxRewriteFn fn)
      : OnnxNodePattern(context, domain, opType, since, until, reasons,
                        maxResults),
        fn(fn) {}

protected:
  LogicalResult rewriteNode(onnx_ir::NodeOp node, PatternRewriter &rewriter,
                            std::string &why) const override {
    return fn(node, rewriter, why);
  }

private:
  OnnxRewriteFn fn;
};

namespace onnx_match {

//===----------------------------------------------------------------------===//
// Nodes, attributes and constants
//===----------------------------------------------------------------------===//

/// The node defining `value` if it is a `domain::opType` node (looking
/// through Identity), or null.
onnx_ir::NodeOp getNode(Value value, llvm::StringRef opType,
                        llvm::StringRef domain = "");

/// Whether `node` is `domain::opType`.
bool isOp(onnx_ir::NodeOp node, llvm::StringRef opType,
          llvm::StringRef domain = "");

/// `value` with Identity nodes peeled off.
Value skipIdentity(Value value);

/// The initializer defining `value` (through Identity), or null.
onnx_ir::InitializerOp getInitializer(Value value);

/// The inline values of a constant `value`, or null.
DenseElementsAttr getConstant(Value value);

/// `value` as a double; an f32 becomes the double of its shortest decimal
/// spelling (1e-06, not 9.99999997e-07).
double toDouble(const APFloat &value);

/// The single value of a one-element constant, as a double.
std::optional<double> getScalar(Value value);

/// The values of a float or integer constant, as doubles.
std::optional<SmallVector<double>> getDoubles(Value value);

/// The values of an integer constant.
std::optional<SmallVector<int64_t>> getInts(Value value);

/// Node attributes with their ONNX defaults.
int64_t getIntAttr(onnx_ir::NodeOp node, llvm::StringRef name,
                   int64_t defaultValue);
double getFloatAttr(onnx_ir::NodeOp node, llvm::StringRef name,
                    double defaultValue);
std::string getStringAttr(onnx_ir::NodeOp node, llvm::StringRef name,
                          llvm::StringRef defaultValue);
std::optional<SmallVector<int64_t>> getIntsAttr(onnx_ir::NodeOp node,
                                                llvm::StringRef name);

/// The `axes` of a node that took them as an attribute before opset
/// `inputSince` and as input `inputIndex` from then on (ReduceMean: 18,
/// ReduceSum: 13, Squeeze/Unsqueeze: 13). Absent axes give std::nullopt.
std::optional<SmallVector<int64_t>>
getAxes(onnx_ir::NodeOp node, unsigned inputIndex, int64_t inputSince);

/// Whether `axes` is exactly the last axis of a rank-`rank` tensor.
bool isLastAxis(llvm::ArrayRef<int64_t> axes, int64_t rank);

/// The ranked tensor type of `value`, or null.
RankedTensorType getRanked(Value value);

/// The ranked tensor type of `value` if its elements are floats, or null.
RankedTensorType getRankedFloat(Value value);

/// Whether `old` (a node's result) may be replaced by a value of `type`:
/// the types agree where both are known, and when they differ only ONNX
/// nodes and the return use `old` (a `moe` op built on the declared type
/// could otherwise be invalidated). Sets `why` when not.
bool canReplaceWith(Value old, Type type, std::string &why);

//===----------------------------------------------------------------------===//
// Weights
//===----------------------------------------------------------------------===//

/// A checkpoint tensor used as a weight. `transpose` is true when the `moe`
/// layout ([out, in], experts first) is the stored tensor with its last two
/// dimensions swapped.
struct WeightSource {
  /// Mutable because op accessors are not const.
  mutable onnx_ir::InitializerOp init;
  bool transpose = false;
};

/// The weight `b` of `MatMul(x, b)` (layout [in, out]): an initializer,
/// possibly through a Transpose of its last two dimensions.
std::optional<WeightSource> matchMatMulWeight(Value b);

/// A weight used as it is stored (layout [out, in] or a plain vector),
/// possibly through a Transpose of its last two dimensions.
std::optional<WeightSource> matchPlainWeight(Value value);

/// The file name `#moe.tensor_ref`s of this module use: the base name of the
/// `onnx.model` module attribute, or "model.onnx".
std::string modelFileName(Operation *anchor);

/// Creates the `moe.weight` of one source.
Value createWeight(OpBuilder &builder, Location loc,
                   const WeightSource &source);

/// Creates the `moe.weight` stacking `sources` (one per expert) along a new
/// leading dimension; all have the same type and orientation.
Value createStackedWeight(OpBuilder &builder, Location loc,
                          llvm::ArrayRef<WeightSource> sources);

} // namespace onnx_match
} // namespace mlir::moec

#endif // MOEC_IMPORTERS_ONNX_ONNXMATCHERS_H
