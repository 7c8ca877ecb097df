//===- Roles.cpp - What a checkpoint weight is for --------------*- C++ -*-===//
//
// Reads and writes the `moe.role` / `moe.layer` convention of Roles.h and
// classifies Hugging Face tensor names of the supported architectures
// (DeepSeek-V3, Mixtral, Qwen2-MoE, Qwen3-MoE).
//
//===----------------------------------------------------------------------===//

#include "passes/Roles.h"

#include "mlir/IR/Builders.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringSwitch.h"

using namespace mlir;
using namespace mlir::moec;

namespace {
struct RoleName {
  Role role;
  llvm::StringLiteral name;
};
constexpr RoleName kRoleNames[] = {
    {Role::unknown, "unknown"},
    {Role::embedding, "embedding"},
    {Role::lm_head, "lm_head"},
    {Role::norm, "norm"},
    {Role::attn_q, "attn_q"},
    {Role::attn_k, "attn_k"},
    {Role::attn_v, "attn_v"},
    {Role::attn_o, "attn_o"},
    {Role::attn_q_a, "attn_q_a"},
    {Role::attn_q_b, "attn_q_b"},
    {Role::attn_kv_a, "attn_kv_a"},
    {Role::attn_kv_b, "attn_kv_b"},
    {Role::router, "router"},
    {Role::shared_expert_gate, "shared_expert_gate"},
    {Role::mlp_gate, "mlp_gate"},
    {Role::mlp_up, "mlp_up"},
    {Role::mlp_down, "mlp_down"},
    {Role::expert_gate, "expert_gate"},
    {Role::expert_up, "expert_up"},
    {Role::expert_down, "expert_down"},
    {Role::shared_gate, "shared_gate"},
    {Role::shared_up, "shared_up"},
    {Role::shared_down, "shared_down"},
};

/// The first source's tensor name of `weight`.
llvm::StringRef firstTensorName(moe::WeightOp weight) {
  return cast<moe::TensorRefAttr>(weight.getSources()[0]).getName();
}
} // namespace

llvm::StringRef mlir::moec::stringifyRole(Role role) {
  for (const RoleName &entry : kRoleNames)
    if (entry.role == role)
      return entry.name;
  return "unknown";
}

std::optional<Role> mlir::moec::symbolizeRole(llvm::StringRef name) {
  for (const RoleName &entry : kRoleNames)
    if (entry.name == name)
      return entry.role;
  return std::nullopt;
}

Role mlir::moec::classifyTensorName(llvm::StringRef name) {
  llvm::SmallVector<llvm::StringRef> parts;
  name.split(parts, '.');
  if (!parts.empty() && (parts.back() == "weight" || parts.back() == "bias"))
    parts.pop_back();
  if (parts.empty())
    return Role::unknown;
  llvm::StringRef last = parts.back();
  auto has = [&](llvm::StringRef part) {
    return llvm::is_contained(parts, part);
  };

  if (parts.front() == "lm_head" || (last == "head" && has("shared_head")))
    return Role::lm_head;
  if (last == "embed_tokens")
    return Role::embedding;
  if (last.ends_with("norm"))
    return Role::norm;
  if (last == "e_score_correction_bias")
    return Role::router;
  if (last == "shared_expert_gate")
    return Role::shared_expert_gate;
  if (last == "gate" && (has("mlp") || has("block_sparse_moe")))
    return Role::router;
  if (has("self_attn"))
    return llvm::StringSwitch<Role>(last)
        .Case("q_proj", Role::attn_q)
        .Case("k_proj", Role::attn_k)
        .Case("v_proj", Role::attn_v)
        .Case("o_proj", Role::attn_o)
        .Case("q_a_proj", Role::attn_q_a)
        .Case("q_b_proj", Role::attn_q_b)
        .Case("kv_a_proj_with_mqa", Role::attn_kv_a)
        .Case("kv_b_proj", Role::attn_kv_b)
        .Default(Role::unknown);
  // Check the more specific prefixes first: `mlp.experts.3.gate_proj` and
  // `mlp.shared_expert.gate_proj` also contain `mlp`.
  if (has("shared_experts") || has("shared_expert"))
    return llvm::StringSwitch<Role>(last)
        .Case("gate_proj", Role::shared_gate)
        .Case("up_proj", Role::shared_up)
        .Case("down_proj", Role::shared_down)
        .Default(Role::unknown);
  if (has("experts"))
    return llvm::StringSwitch<Role>(last)
        .Cases({"gate_proj", "w1"}, Role::expert_gate)
        .Cases({"up_proj", "w3"}, Role::expert_up)
        .Cases({"down_proj", "w2"}, Role::expert_down)
        .Default(Role::unknown);
  if (has("mlp"))
    return llvm::StringSwitch<Role>(last)
        .Case("gate_proj", Role::mlp_gate)
        .Case("up_proj", Role::mlp_up)
        .Case("down_proj", Role::mlp_down)
        .Default(Role::unknown);
  return Role::unknown;
}

std::optional<int64_t> mlir::moec::parseLayerIndex(llvm::StringRef name) {
  llvm::SmallVector<llvm::StringRef> parts;
  name.split(parts, '.');
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    int64_t layer;
    if (parts[i] == "layers" && !parts[i + 1].getAsInteger(10, layer) &&
        layer >= 0)
      return layer;
  }
  return std::nullopt;
}

void mlir::moec::setWeightRole(moe::WeightOp weight, Role role,
                               std::optional<int64_t> layer) {
  Builder b(weight.getContext());
  weight->setAttr(kRoleAttrName, b.getStringAttr(stringifyRole(role)));
  if (layer)
    weight->setAttr(kLayerAttrName, b.getI64IntegerAttr(*layer));
}

Role mlir::moec::getWeightRole(moe::WeightOp weight) {
  if (auto attr = weight->getAttrOfType<StringAttr>(kRoleAttrName))
    return symbolizeRole(attr.getValue()).value_or(Role::unknown);
  return classifyTensorName(firstTensorName(weight));
}

std::optional<int64_t> mlir::moec::getWeightLayer(moe::WeightOp weight) {
  if (auto attr = weight->getAttrOfType<IntegerAttr>(kLayerAttrName))
    return attr.getInt();
  return parseLayerIndex(firstTensorName(weight));
}

LogicalResult mlir::moec::verifyRoleAttrs(moe::WeightOp weight) {
  if (Attribute attr = weight->getAttr(kRoleAttrName)) {
    auto role = dyn_cast<StringAttr>(attr);
    if (!role || !symbolizeRole(role.getValue()))
      return weight.emitError("expected `moe.role` to be one of the roles in "
                              "docs/passes.md, but got ")
             << attr;
  }
  if (Attribute attr = weight->getAttr(kLayerAttrName)) {
    auto layer = dyn_cast<IntegerAttr>(attr);
    if (!layer || !layer.getType().isInteger() || layer.getInt() < 0)
      return weight.emitError("expected `moe.layer` to be an integer >= 0, "
                              "but got ")
             << attr;
  }
  return success();
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
