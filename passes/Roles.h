//===- Roles.h - What a checkpoint weight is for ----------------*- C++ -*-===//
//
// The convention by which passes tell an lm_head from an attention projection
// or an expert, and layer 3 from layer 60: a `moe.role` string and a
// `moe.layer` integer on `moe.weight`, set by importers that know better, else
// derived from the Hugging Face tensor name of the weight's first source.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_PASSES_ROLES_H
#define MOEC_PASSES_ROLES_H

#include "dialects/MoEDialect.h"

#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringRef.h"

#include <optional>

namespace mlir::moec {

/// What a weight is for in the model. The spelling in IR (`moe.role`) is the
/// enumerator's name.
enum class Role {
  unknown,
  embedding,          ///< `model.embed_tokens`
  lm_head,            ///< `lm_head` (or the embedding table when tied)
  norm,               ///< any RMSNorm weight
  attn_q,             ///< `self_attn.q_proj` (MHA/GQA, MLA without q LoRA)
  attn_k,             ///< `self_attn.k_proj`
  attn_v,             ///< `self_attn.v_proj`
  attn_o,             ///< `self_attn.o_proj`
  attn_q_a,           ///< MLA `self_attn.q_a_proj`
  attn_q_b,           ///< MLA `self_attn.q_b_proj`
  attn_kv_a,          ///< MLA `self_attn.kv_a_proj_with_mqa`
  attn_kv_b,          ///< MLA `self_attn.kv_b_proj`
  router,             ///< the router gate and its correction bias
  shared_expert_gate, ///< Qwen2-MoE `mlp.shared_expert_gate`
  mlp_gate,           ///< dense `mlp.gate_proj`
  mlp_up,             ///< dense `mlp.up_proj`
  mlp_down,           ///< dense `mlp.down_proj`
  expert_gate,        ///< routed `experts.<e>.gate_proj` / Mixtral `w1`
  expert_up,          ///< routed `experts.<e>.up_proj` / Mixtral `w3`
  expert_down,        ///< routed `experts.<e>.down_proj` / Mixtral `w2`
  shared_gate,        ///< `shared_expert(s).gate_proj`
  shared_up,          ///< `shared_expert(s).up_proj`
  shared_down,        ///< `shared_expert(s).down_proj`
};

/// The discardable attribute holding a weight's role, a string such as
/// `"attn_q"`.
inline constexpr llvm::StringLiteral kRoleAttrName = "moe.role";
/// The discardable attribute holding a weight's decoder layer (an integer
/// >= 0). Weights outside the decoder layers (embedding, final norm, lm_head)
/// have none.
inline constexpr llvm::StringLiteral kLayerAttrName = "moe.layer";

/// The IR spelling of `role` (`"attn_q"`).
llvm::StringRef stringifyRole(Role role);

/// Parses an IR spelling; `std::nullopt` for an unknown one.
std::optional<Role> symbolizeRole(llvm::StringRef name);

/// The role of a Hugging Face tensor `name`, e.g.
/// `model.layers.3.self_attn.q_proj.weight` → `attn_q`, `lm_head.weight` →
/// `lm_head`; `unknown` when the name follows no convention moec knows.
Role classifyTensorName(llvm::StringRef name);

/// The decoder layer of a Hugging Face tensor `name`: `N` in
/// `model.layers.N.`; `std::nullopt` outside the decoder layers.
std::optional<int64_t> parseLayerIndex(llvm::StringRef name);

/// Records `role` and, when given, `layer` on `weight`. Importers whose
/// tensor names do not follow the Hugging Face convention (ONNX) call this.
void setWeightRole(moe::WeightOp weight, Role role,
                   std::optional<int64_t> layer = std::nullopt);

/// The role of `weight`: its `moe.role` attribute, else the role of its first
/// source's tensor name. An unparsable `moe.role` is `unknown`.
Role getWeightRole(moe::WeightOp weight);

/// The layer of `weight`: its `moe.layer` attribute, else the layer in its
/// first source's tensor name.
std::optional<int64_t> getWeightLayer(moe::WeightOp weight);

/// Checks the `moe.role` / `moe.layer` attributes of `weight`, if any: a known
/// role string and a non-negative integer layer. Emits an error on `weight`.
LogicalResult verifyRoleAttrs(moe::WeightOp weight);

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
