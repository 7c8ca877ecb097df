//===- MoEDialect.h - The moe dialect ---------------------------*- C++ -*-===//
//
// Declares the `moe` dialect, its enums, attributes and ops. This is the one
// header the rest of the compiler includes to use the dialect.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_DIALECTS_MOEDIALECT_H
#define MOEC_DIALECTS_MOEDIALECT_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

namespace mlir::moe::OpTrait {
/// Verifies that every tensor operand and result of `op` is static except,
/// possibly, in its leading (token) dimension.
LogicalResult verifyStaticFeatureDims(Operation *op);

/// The op trait behind `MoE_StaticFeatureDims`.
template <typename ConcreteType>
class StaticFeatureDims
    : public ::mlir::OpTrait::TraitBase<ConcreteType, StaticFeatureDims> {
public:
  static LogicalResult verifyTrait(Operation *op) {
    return verifyStaticFeatureDims(op);
  }
};
} // namespace mlir::moe::OpTrait

#include "dialects/MoEDialect.h.inc"
#include "dialects/MoEEnums.h.inc"

#define GET_ATTRDEF_CLASSES
#include "dialects/MoEAttrs.h.inc"

namespace mlir::moe::detail {
/// Verifies the fused quantization of an op implementing
/// `FusedQuantizeOpInterface`: the `quantized` and `quantized_scale` results
/// exist exactly when `quantize` is set, and agree with it and with the
/// quantized result.
LogicalResult verifyFusedQuantize(Operation *op);
} // namespace mlir::moe::detail

#include "dialects/MoEInterfaces.h.inc"

#define GET_OP_CLASSES
#include "dialects/MoEOps.h.inc"

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace mlir::moe {
/// Prints `shape` as `[?, 64]` (`?` for a dynamic dimension), for
/// diagnostics.
std::string formatShape(ArrayRef<int64_t> shape);

/// DeepSeek's YaRN magnitude `0.1 * m * ln(factor) + 1`, or 1 when `m` is 0
/// or `factor` does not extend the context.
double getYarnMscale(double factor, double m);

/// The rotary inverse frequencies of `moe.rope` for a last dimension of
/// `dim` channels: `theta^(-2i/dim)` in f32 as transformers computes them,
/// divided by the factor for `linear` scaling and blended as transformers'
/// `_compute_yarn_parameters` (truncate = true) for `yarn`. Every executor
/// of the op (interpreter, CPU and CUDA kernels) uses this one definition.
std::vector<float> getRopeInverseFrequencies(int64_t dim, double theta,
                                             RopeScalingAttr scaling);

/// The factor `moe.rope` multiplies cos/sin by: `mscale(factor, mscale) /
/// mscale(factor, mscale_all_dim)` for YaRN, else 1.
double getRopeCosSinScale(RopeScalingAttr scaling);

/// Alignment of every arena offset and size, and of every weight in the
/// artifact's weights section. The kernel ABI promises 64; moec gives 128,
/// which a swizzled TMA tensor map needs of its base address (CUDA
/// Programming Guide, TMA swizzle: global memory aligned to 128 bytes).
inline constexpr int64_t kBufferAlignment = 128;

/// Bytes of one element of `type` (a ranked tensor of ints or floats whose
/// width is a whole number of bytes), or std::nullopt.
std::optional<int64_t> getElementBytes(Type type);

/// The bytes the plan reserves for a value of `type` holding `rowsPerToken`
/// rows per token (when its leading dimension is `?`) at `maxTokens` tokens:
/// its size rounded up to `kBufferAlignment`, at least that much. Fails for
/// a type `getElementBytes` rejects, a dynamic dimension other than the
/// first, or a size beyond 2^62 bytes.
std::optional<int64_t> getPlannedBytes(Type type, int64_t rowsPerToken,
                                       int64_t maxTokens);

/// Where `value` itself is placed: the `#moe.buffers` of its function
/// argument or defining op and the entry of `value` in it, or a null
/// attribute when there is none. Reshape aliases are not followed.
std::pair<BuffersAttr, unsigned> getBuffersEntry(Value value);
} // namespace mlir::moe

#endif // MOEC_DIALECTS_MOEDIALECT_H
