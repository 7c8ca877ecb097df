// The phase pipeline: import→moe removes dead ops and keeps the layer, `fused` decomposes and
// fuses, `fp8` lowers the GEMMs, `planned` numbers the steps and places the activations;
// `codegen` runs no pass (moec generates the code from the planned IR), so it prints that IR.
// RUN: moec-opt %s --moec-pipeline="from=import to=moe" | FileCheck %s
// RUN: moec-opt %s --moec-pipeline="from=import to=fused" | FileCheck %s --check-prefix=FUSED
// RUN: moec-opt %s --moec-pipeline="from=import to=fp8" | FileCheck %s --check-prefix=FP8
// RUN: moec-opt %s --moec-pipeline="from=import to=fp8" | moec-opt --moec-pipeline="from=fp8 to=fp8" | FileCheck %s --check-prefix=FP8
// RUN: moec-opt %s --moec-pipeline="from=import to=fused fold-shared-experts=true" | FileCheck %s --check-prefix=FOLD
// RUN: moec-opt %s --moec-pipeline="from=import to=fp8 fp8-keep-first-layers=1" | FileCheck %s --check-prefix=KEEP
// RUN: moec-opt %s --moec-pipeline="from=import to=planned max-tokens=8" | FileCheck %s --check-prefix=PLANNED
// RUN: moec-opt %s --moec-pipeline="from=import to=planned precision=f32" | FileCheck %s --check-prefix=F32
// RUN: moec-opt %s --moec-pipeline="from=import to=codegen max-tokens=8" | FileCheck %s --check-prefix=PLANNED
// RUN: not moec-opt %s --moec-pipeline="to=planned precision=f16" 2>&1 | FileCheck %s --check-prefix=PRECISION
// RUN: not moec-opt %s --moec-pipeline="to=nowhere" 2>&1 | FileCheck %s --check-prefix=UNKNOWN
// PRECISION: unknown precision 'f16'; expected fp8 or f32
// UNKNOWN: unknown phase 'nowhere'; expected one of: import, moe, fused, fp8, planned, codegen

// CHECK-LABEL: func.func @dead_code
// CHECK-SAME: (%[[X:.+]]: tensor<?x8xf32>, %[[W:.+]]: tensor<8x8xbf16>)
func.func @dead_code(%x: tensor<?x8xf32>, %w: tensor<8x8xbf16>) -> tensor<?x8xf32> {
  // CHECK-NOT: moe.weight
  %unused = moe.weight [#moe.tensor_ref<"model.safetensors", "unused">] stored tensor<8xbf16> : tensor<8xbf16>
  // CHECK: %[[Y:.+]] = moe.matmul %[[X]], %[[W]]
  %y = moe.matmul %x, %w : tensor<?x8xf32>, tensor<8x8xbf16> -> tensor<?x8xf32>
  // CHECK-NOT: moe.matmul
  %z = moe.matmul %x, %w : tensor<?x8xf32>, tensor<8x8xbf16> -> tensor<?x8xf32>
  // CHECK: %[[S:.+]] = moe.add %[[Y]], %[[Y]]
  %s = moe.add %y, %z : tensor<?x8xf32>
  // CHECK: return %[[S]]
  return %s : tensor<?x8xf32>
}

// One decoder layer's MLP half: residual add, norm, a DeepSeek-style MoE layer with a shared
// expert, residual add, final norm and lm_head.
// CHECK-LABEL: func.func @moe_block
// CHECK: moe.moe
// FUSED-LABEL: func.func @moe_block
// FUSED-SAME: (%[[H:.+]]: tensor<?x128xf32>, %[[A:.+]]: tensor<?x128xf32>)
// FUSED: %[[SUM:.+]], %[[X:.+]] = moe.add_rms_norm %[[H]], %[[A]]
// FUSED: moe.router %[[X]]
// FUSED: moe.grouped_matmul {{.+}} {epilogue = #moe.epilogue<silu_mul>}
// FUSED: %[[DOWN:.+]] = moe.grouped_matmul
// FUSED: moe.matmul %[[X]], {{.+}} {epilogue = #moe.epilogue<silu_mul>}
// FUSED: %[[SHARED:.+]] = moe.matmul
// FUSED: %[[Y:.+]] = moe.combine %[[DOWN]], {{.+}} residual %[[SHARED]]
// FUSED: %{{.+}}, %[[OUT:.+]] = moe.add_rms_norm %[[SUM]], %[[Y]]
// FUSED: moe.matmul %[[OUT]]
// FUSED-NOT: moe.silu_mul
// FUSED-NOT: moe.moe
// FP8-LABEL: func.func @moe_block
// FP8: moe.add_rms_norm {{.+}}quantize = #moe.block_scale<format = e4m3fn, block = [1, 128]>}
// FP8-COUNT-2: moe.fp8_grouped_matmul
// FP8-COUNT-2: moe.fp8_matmul
// FP8: %[[LOGITS:.+]] = moe.matmul
// FP8: return %[[LOGITS]]
// FOLD-LABEL: func.func @moe_block
// FOLD: moe.router {{.+}}shared_experts = 1 : i64
// FOLD-NOT: moe.matmul {{.+}}silu_mul
// FOLD: moe.combine {{.+}} residual
// PLANNED-LABEL: func.func @moe_block
// PLANNED-SAME: attributes {moe.plan = #moe.plan<arena_bytes = {{[0-9]+}}, max_tokens = 8>}
// PLANNED: moe.add_rms_norm {{.+}}moe.step = #moe.step<0>
// PLANNED: moe.dispatch {{.+}}rows_per_token = [2, 1, 2]>, moe.step = #moe.step<2>
// PLANNED: moe.concat {{.+}}moe.constant
// PLANNED: moe.fp8_grouped_matmul {{.+}}moe.step = #moe.step<4>
// PLANNED: %[[LOGITS:.+]] = moe.matmul {{.+}}moe.step = #moe.step<10>
// PLANNED: return %[[LOGITS]]
// F32-LABEL: func.func @moe_block
// F32-NOT: fp8
// F32: moe.grouped_matmul {{.+}}moe.step =
// F32: return
// KEEP-LABEL: func.func @moe_block
// KEEP-NOT: moe.fp8_
// KEEP: return
func.func @moe_block(%h: tensor<?x128xf32>, %a: tensor<?x128xf32>) -> tensor<?x256xf32> {
  %s = moe.add %h, %a : tensor<?x128xf32>
  %nw = moe.weight [#moe.tensor_ref<"model.safetensors", "model.layers.0.post_attention_layernorm.weight">] stored tensor<128xbf16> role <norm, layer = 0> : tensor<128xbf16>
  %x = moe.rms_norm %s, %nw {epsilon = 1.0e-06 : f64} : tensor<?x128xf32>, tensor<128xbf16> -> tensor<?x128xf32>
  %gate = moe.weight [#moe.tensor_ref<"model.safetensors", "model.layers.0.mlp.gate.weight">] stored tensor<4x128xbf16> role <router, layer = 0> : tensor<4x128xbf16>
  %w1 = moe.weight [#moe.tensor_ref<"model.safetensors", "model.layers.0.mlp.experts.0.gate_proj.weight">, #moe.tensor_ref<"model.safetensors", "model.layers.0.mlp.experts.1.gate_proj.weight">, #moe.tensor_ref<"model.safetensors", "model.layers.0.mlp.experts.2.gate_proj.weight">, #moe.tensor_ref<"model.safetensors", "model.layers.0.mlp.experts.3.gate_proj.weight">] stored tensor<128x128xbf16> role <expert_gate, layer = 0> {transforms = [#moe.stack]} : tensor<4x128x128xbf16>
  %w3 = moe.weight [#moe.tensor_ref<"model.safetensors", "model.layers.0.mlp.experts.0.up_proj.weight">, #moe.tensor_ref<"model.safetensors", "model.layers.0.mlp.experts.1.up_proj.weight">, #moe.tensor_ref<"model.safetensors", "model.layers.0.mlp.experts.2.up_proj.weight">, #moe.tensor_ref<"model.safetensors", "model.layers.0.mlp.experts.3.up_proj.weight">] stored tensor<128x128xbf16> role <expert_up, layer = 0> {transforms = [#moe.stack]} : tensor<4x128x128xbf16>
  %w2 = moe.weight [#moe.tensor_ref<"model.safetensors", "model.layers.0.mlp.experts.0.down_proj.weight">, #moe.tensor_ref<"model.safetensors", "model.layers.0.mlp.experts.1.down_proj.weight">, #moe.tensor_ref<"model.safetensors", "model.layers.0.mlp.experts.2.down_proj.weight">, #moe.tensor_ref<"model.safetensors", "model.layers.0.mlp.experts.3.down_proj.weight">] stored tensor<128x128xbf16> role <expert_down, layer = 0> {transforms = [#moe.stack]} : tensor<4x128x128xbf16>
  %s1 = moe.weight [#moe.tensor_ref<"model.safetensors", "model.layers.0.mlp.shared_experts.gate_proj.weight">] stored tensor<128x128xbf16> role <shared_gate, layer = 0> : tensor<128x128xbf16>
  %s3 = moe.weight [#moe.tensor_ref<"model.safetensors", "model.layers.0.mlp.shared_experts.up_proj.weight">] stored tensor<128x128xbf16> role <shared_up, layer = 0> : tensor<128x128xbf16>
  %s2 = moe.weight [#moe.tensor_ref<"model.safetensors", "model.layers.0.mlp.shared_experts.down_proj.weight">] stored tensor<128x128xbf16> role <shared_down, layer = 0> : tensor<128x128xbf16>
  %m = moe.moe %x router %gate experts %w1, %w3, %w2 shared %s1, %s3, %s2 {routing = #moe.routing<scoring = softmax, k = 2, norm_topk_prob = true>} : (tensor<?x128xf32>, tensor<4x128xbf16>, tensor<4x128x128xbf16>, tensor<4x128x128xbf16>, tensor<4x128x128xbf16>, tensor<128x128xbf16>, tensor<128x128xbf16>, tensor<128x128xbf16>) -> tensor<?x128xf32>
  %h2 = moe.add %s, %m : tensor<?x128xf32>
  %fw = moe.weight [#moe.tensor_ref<"model.safetensors", "model.norm.weight">] stored tensor<128xbf16> role <norm> : tensor<128xbf16>
  %out = moe.rms_norm %h2, %fw {epsilon = 1.0e-06 : f64} : tensor<?x128xf32>, tensor<128xbf16> -> tensor<?x128xf32>
  %head = moe.weight [#moe.tensor_ref<"model.safetensors", "lm_head.weight">] stored tensor<256x128xbf16> role <lm_head> : tensor<256x128xbf16>
  %logits = moe.matmul %out, %head : tensor<?x128xf32>, tensor<256x128xbf16> -> tensor<?x256xf32>
  return %logits : tensor<?x256xf32>
}
