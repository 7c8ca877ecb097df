//===- Roles.h - What a checkpoint weight is for ----------------*- C++ -*-===//
//
// How passes tell an lm_head from an attention projection or an expert, and
// layer 3 from layer 60: the `#moe.role` of a `moe.weight`, which the
// importers set when they create it. Nothing here reads tensor names.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_PASSES_ROLES_H
#define MOEC_PASSES_ROLES_H

#include "dialects/MoEDialect.h"

#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringRef.h"

#include <optional>

namespace mlir::moec {

/// What a weight is for in the model: the `kind` of its `#moe.role`
/// (dialects/MoERoles.td), e.g. `Role::attn_q`.
using Role = moe::WeightRoleKind;

/// The IR spelling of `role` (`"attn_q"`).
inline llvm::StringRef stringifyRole(Role role) {
  return moe::stringifyWeightRoleKind(role);
}

/// Records `role` and, when given, `layer` (>= 0) on `weight`.
void setWeightRole(moe::WeightOp weight, Role role,
                   std::optional<int64_t> layer = std::nullopt);

/// The role of `weight`: its `#moe.role`, `unknown` without one.
Role getWeightRole(moe::WeightOp weight);

/// The decoder layer of `weight`: its `#moe.role`'s layer; none outside the
/// decoder layers or without a role.
std::optional<int64_t> getWeightLayer(moe::WeightOp weight);

/// The `moe.weight` ops a GEMM's weight operand `w` is computed from, looking
/// through `moe.concat`, `moe.dequantize`, `moe.quantize`, `moe.reshape` and
/// `moe.slice`. Empty when `w`
/// depends on anything else (a function argument, an activation).
llvm::SmallVector<moe::WeightOp> getWeightSources(Value w);

/// True for roles a fused q/k/v GEMM may combine: the projections that read
/// the attention block's normalised input (q, k, v, MLA's q_a and kv_a).
bool isAttentionInputRole(Role role);

/// True for every attention projection (inputs, MLA's q_b/kv_b, and o).
bool isAttentionRole(Role role);

} // namespace mlir::moec

#endif // MOEC_PASSES_ROLES_H
