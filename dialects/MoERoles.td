//===- MoERoles.td - what a checkpoint weight is for -------*- tablegen -*-===//
//
// The role of a `moe.weight` in the model (attention projection, expert,
// lm_head...) and its decoder layer, set by the importers when they create
// the weight. Passes such as --moec-lower-to-fp8 read them (passes/Roles.h).
//
//===----------------------------------------------------------------------===//

#ifndef MOE_ROLES_TD
#define MOE_ROLES_TD

include "dialects/MoEDialect.td"
include "mlir/IR/EnumAttr.td"

def MoE_WeightRoleKind : I32EnumAttr<"WeightRoleKind",
    "what a checkpoint weight is for in the model", [
      I32EnumAttrCase<"unknown", 0>,
      I32EnumAttrCase<"embedding", 1>,
      I32EnumAttrCase<"lm_head", 2>,
      I32EnumAttrCase<"norm", 3>,
      I32EnumAttrCase<"attn_q", 4>,
      I32EnumAttrCase<"attn_k", 5>,
      I32EnumAttrCase<"attn_v", 6>,
      I32EnumAttrCase<"attn_o", 7>,
      I32EnumAttrCase<"attn_q_a", 8>,
      I32EnumAttrCase<"attn_q_b", 9>,
      I32EnumAttrCase<"attn_kv_a", 10>,
      I32EnumAttrCase<"attn_kv_b", 11>,
      I32EnumAttrCase<"router", 12>,
      I32EnumAttrCase<"shared_expert_gate", 13>,
      I32EnumAttrCase<"mlp_gate", 14>,
      I32EnumAttrCase<"mlp_up", 15>,
      I32EnumAttrCase<"mlp_down", 16>,
      I32EnumAttrCase<"expert_gate", 17>,
      I32EnumAttrCase<"expert_up", 18>,
      I32EnumAttrCase<"expert_down", 19>,
      I32EnumAttrCase<"shared_gate", 20>,
      I32EnumAttrCase<"shared_up", 21>,
      I32EnumAttrCase<"shared_down", 22>
    ]> {
  let cppNamespace = "::mlir::moe";
  let genSpecializedAttr = 0;
}

def MoE_WeightRoleAttr : MoE_Attr<"WeightRole", "role"> {
  let summary = "what a weight is for, and its decoder layer";
  let description = [{
    The role of a `moe.weight` in the model and, for weights inside a decoder
    layer, the layer's index (>= 0). Weights outside the decoder layers (the
    embedding table, the final norm, the lm_head) have no layer. Importers
    set it when they create the weight, from what they are building, never
    from tensor names; a weight without one is `unknown`.

    | role | what |
    |---|---|
    | `embedding`, `lm_head` | the token embedding table, the output projection |
    | `norm` | any RMSNorm weight |
    | `attn_q`, `attn_k`, `attn_v`, `attn_o` | attention projections (and their biases) |
    | `attn_q_a`, `attn_q_b`, `attn_kv_a`, `attn_kv_b` | MLA's low-rank projections |
    | `router` | the router gate and its correction bias |
    | `shared_expert_gate` | Qwen2-MoE's sigmoid gate of the shared expert |
    | `mlp_gate`, `mlp_up`, `mlp_down` | a dense layer's MLP |
    | `expert_gate`, `expert_up`, `expert_down` | routed experts |
    | `shared_gate`, `shared_up`, `shared_down` | shared experts |

    ```mlir
    #moe.role<attn_q, layer = 3>
    #moe.role<lm_head>
    ```
  }];
  let parameters = (ins
    EnumParameter<MoE_WeightRoleKind>:$kind,
    OptionalParameter<"std::optional<int64_t>">:$layer
  );
  let assemblyFormat = "`<` $kind (`,` `layer` `=` $layer^)? `>`";
  let genVerifyDecl = 1;
}

#endif // MOE_ROLES_TD
