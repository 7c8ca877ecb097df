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

#define GET_OP_CLASSES
#include "dialects/MoEOps.h.inc"

#endif // MOEC_DIALECTS_MOEDIALECT_H
