// Every verifier branch of the moe attributes rejects a bad attribute with its whole message.
// RUN: moec-opt %s --split-input-file --verify-diagnostics

//===----------------------------------------------------------------------===//
// #moe.routing
//===----------------------------------------------------------------------===//

// #moe.routing: `k` must be at least 1.
// expected-error @+1 {{expected `k` >= 1, but got k = 0}}
#routing = #moe.routing<scoring = softmax, k = 0>

// -----

// #moe.routing: `n_group` must be at least 1.
// expected-error @+1 {{expected `n_group` >= 1, but got n_group = 0}}
#routing = #moe.routing<scoring = softmax, k = 2, n_group = 0>

// -----

// #moe.routing: at least one group is kept.
// expected-error @+1 {{expected 1 <= `topk_group` <= n_group = 1, but got topk_group = 0}}
#routing = #moe.routing<scoring = softmax, k = 2, topk_group = 0>

// -----

// #moe.routing: no more groups are kept than there are.
// expected-error @+1 {{expected 1 <= `topk_group` <= n_group = 2, but got topk_group = 3}}
#routing = #moe.routing<scoring = sigmoid, k = 2, n_group = 2, topk_group = 3, group_score = max>

// -----

// #moe.routing: group-limited routing (n_group > 1) needs a `group_score`.
// expected-error @+1 {{expected `group_score` to be none exactly when n_group = 1, but got n_group = 2 and group_score = none}}
#routing = #moe.routing<scoring = sigmoid, k = 2, n_group = 2, topk_group = 1>

// -----

// #moe.routing: a `group_score` without groups (n_group = 1) is rejected.
// expected-error @+1 {{expected `group_score` to be none exactly when n_group = 1, but got n_group = 1 and group_score = top2_sum}}
#routing = #moe.routing<scoring = sigmoid, k = 2, group_score = top2_sum>

// -----

// #moe.routing: `routed_scaling_factor` must be positive.
// expected-error @+1 {{expected `routed_scaling_factor` > 0, but got 0.000000e+00}}
#routing = #moe.routing<scoring = sigmoid, k = 2, routed_scaling_factor = 0.0>

// -----

//===----------------------------------------------------------------------===//
// #moe.rope_scaling
//===----------------------------------------------------------------------===//

// #moe.rope_scaling: `factor` below 1 would shrink the context.
// expected-error @+1 {{expected `factor` >= 1, but got 5.000000e-01}}
#scaling = #moe.rope_scaling<kind = linear, factor = 0.5>

// -----

// #moe.rope_scaling: yarn needs `original_max_position_embeddings` (the default 0 is rejected).
// expected-error @+1 {{expected `original_max_position_embeddings` >= 1 for yarn, but got 0}}
#scaling = #moe.rope_scaling<kind = yarn, factor = 40.0>

// -----

// #moe.rope_scaling: yarn needs `beta_fast` > `beta_slow`.
// expected-error @+1 {{expected `beta_fast` > `beta_slow`, but got 1.000000e+00 <= 3.200000e+01}}
#scaling = #moe.rope_scaling<kind = yarn, factor = 40.0, original_max_position_embeddings = 4096, beta_fast = 1.0, beta_slow = 32.0>

// -----

//===----------------------------------------------------------------------===//
// #moe.block_scale
//===----------------------------------------------------------------------===//

// #moe.block_scale: `block` has exactly two sizes.
// expected-error @+1 {{expected a 2-d `block`, but got a 1-d one}}
#scheme = #moe.block_scale<format = e4m3fn, block = [128]>

// -----

// #moe.block_scale: a zero row block is rejected.
// expected-error @+1 {{expected positive `block` sizes, but got [0, 128]}}
#scheme = #moe.block_scale<format = e4m3fn, block = [0, 128]>

// -----

// #moe.block_scale: a negative column block is rejected.
// expected-error @+1 {{expected positive `block` sizes, but got [128, -1]}}
#scheme = #moe.block_scale<format = e4m3fn, block = [128, -1]>

// -----

//===----------------------------------------------------------------------===//
// #moe.role
//===----------------------------------------------------------------------===//

// #moe.role: a decoder layer is never negative.
// expected-error @+1 {{expected `layer` >= 0, but got layer = -1}}
#role = #moe.role<attn_q, layer = -1>

// -----

// #moe.role: the role is one of the enumerators of dialects/MoERoles.td.
// expected-error @+2 {{expected ::mlir::moe::WeightRoleKind to be one of: unknown, embedding, lm_head, norm, attn_q, attn_k, attn_v, attn_o, attn_q_a, attn_q_b, attn_kv_a, attn_kv_b, router, shared_expert_gate, mlp_gate, mlp_up, mlp_down, expert_gate, expert_up, expert_down, shared_gate, shared_up, shared_down}}
// expected-error @+1 {{failed to parse MoE_WeightRoleAttr parameter 'kind' which is to be a `::mlir::moe::WeightRoleKind`}}
#role = #moe.role<qkv>

// -----

// moe.weight: a negative layer in the op's syntax is rejected too.
func.func @negative_layer() -> tensor<64x64xbf16> {
  // expected-error @+1 {{expected `layer` >= 0, but got layer = -3}}
  %w = moe.weight [#moe.tensor_ref<"m.safetensors", "w">] stored tensor<64x64xbf16> role <attn_o, layer = -3> : tensor<64x64xbf16>
  return %w : tensor<64x64xbf16>
}

// -----

// moe.weight: the role is a `#moe.role`, not a string.
func.func @string_role() -> tensor<64x64xbf16> {
  // expected-error @+1 {{invalid properties {role = "attn_q", sources = [#moe.tensor_ref<"m.safetensors", "w">], stored_type = tensor<64x64xbf16>} for op moe.weight: Invalid attribute `role` in property conversion: "attn_q"}}
  %w = "moe.weight"() <{sources = [#moe.tensor_ref<"m.safetensors", "w">], stored_type = tensor<64x64xbf16>, role = "attn_q"}> : () -> tensor<64x64xbf16>
  return %w : tensor<64x64xbf16>
}
