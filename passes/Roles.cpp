//===- Roles.cpp - What a checkpoint weight is for --------------*- C++ -*-===//
//
// Reads and writes the `#moe.role` of weights and traces a GEMM's weight
// operand to the `moe.weight`s it is computed from.
//
//===----------------------------------------------------------------------===//

#include "passes/Roles.h"

#include "llvm/ADT/STLExtras.h"

using namespace mlir;
using namespace mlir::moec;

void mlir::moec::setWeightRole(moe::WeightOp weight, Role role,
                               std::optional<int64_t> layer) {
  weight.setRoleAttr(
      moe::WeightRoleAttr::get(weight.getContext(), role, layer));
}

Role mlir::moec::getWeightRole(moe::WeightOp weight) {
  moe::WeightRoleAttr role = weight.getRoleAttr();
  return role ? role.getKind() : Role::unknown;
}

std::optional<int64_t> mlir::moec::getWeightLayer(moe::WeightOp weight) {
  moe::WeightRoleAttr role = weight.getRoleAttr();
  return role ? role.getLayer() : std::nullopt;
}

SmallVector<moe::WeightOp> mlir::moec::getWeightSources(Value w) {
  SmallVector<moe::WeightOp> sources;
  SmallVector<Value> worklist = {w};
  while (!worklist.empty()) {
    Value value = worklist.pop_back_val();
    Operation *def = value.getDefiningOp();
    if (auto weight = dyn_cast_or_null<moe::WeightOp>(def)) {
      if (!llvm::is_contained(sources, weight))
        sources.push_back(weight);
    } else if (isa_and_nonnull<moe::ConcatOp, moe::DequantizeOp,
                               moe::QuantizeOp, moe::ReshapeOp, moe::SliceOp>(
                   def)) {
      // Layout ops of weights (the ONNX importer's de-interleaving of fused
      // SwiGLU weights) are folded by the artifact writer like the others.
      llvm::append_range(worklist, def->getOperands());
    } else {
      return {};
    }
  }
  return sources;
}

bool mlir::moec::isAttentionInputRole(Role role) {
  return role == Role::attn_q || role == Role::attn_k || role == Role::attn_v ||
         role == Role::attn_q_a || role == Role::attn_kv_a;
}

bool mlir::moec::isAttentionRole(Role role) {
  return isAttentionInputRole(role) || role == Role::attn_o ||
         role == Role::attn_q_b || role == Role::attn_kv_b;
}
