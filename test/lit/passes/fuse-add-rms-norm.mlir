// --moec-fuse-add-rms-norm turns rms_norm(add(a, b)) into moe.add_rms_norm, which returns the sum and the norm.
// RUN: moec-opt %s --moec-fuse-add-rms-norm | FileCheck %s
// RUN: moec-opt %s --moec-fuse-add-rms-norm | moec-opt | FileCheck %s

// The residual stream after attention feeds the post-attention norm and the next residual add.
// CHECK-LABEL: func.func @residual_then_norm
// CHECK-SAME: (%[[H:.+]]: tensor<?x64xf32>, %[[A:.+]]: tensor<?x64xf32>, %[[M:.+]]: tensor<?x64xf32>)
func.func @residual_then_norm(%h: tensor<?x64xf32>, %a: tensor<?x64xf32>, %m: tensor<?x64xf32>) -> (tensor<?x64xf32>, tensor<?x64xf32>) {
  // CHECK: %[[NW:.+]] = moe.weight
  %nw = moe.weight [#moe.tensor_ref<"m.safetensors", "model.layers.0.post_attention_layernorm.weight">] stored tensor<64xbf16> role <norm, layer = 0> : tensor<64xbf16>
  // CHECK: %[[SUM:.+]], %[[N:.+]] = moe.add_rms_norm %[[H]], %[[A]], %[[NW]] {epsilon = 9.9999999999999995E-7 : f64} : tensor<?x64xf32>, tensor<64xbf16> -> tensor<?x64xf32>
  // CHECK-NOT: moe.rms_norm
  // CHECK: %[[NEXT:.+]] = moe.add %[[SUM]], %[[M]]
  // CHECK: return %[[N]], %[[NEXT]]
  %s = moe.add %h, %a : tensor<?x64xf32>
  %n = moe.rms_norm %s, %nw {epsilon = 1.0e-06 : f64} : tensor<?x64xf32>, tensor<64xbf16> -> tensor<?x64xf32>
  %next = moe.add %s, %m : tensor<?x64xf32>
  return %n, %next : tensor<?x64xf32>, tensor<?x64xf32>
}

// The norm weight is created after the add (as importers do) and moves above it; a user of
// the sum that precedes the norm still sees it defined.
// CHECK-LABEL: func.func @weight_after_add
// CHECK-SAME: (%[[H:.+]]: tensor<?x64xf32>, %[[A:.+]]: tensor<?x64xf32>)
func.func @weight_after_add(%h: tensor<?x64xf32>, %a: tensor<?x64xf32>) -> (tensor<?x64xf32>, tensor<?x64xf32>) {
  // CHECK: %[[NW:.+]] = moe.weight {{.+}}"model.norm.weight"
  // CHECK: %[[SUM:.+]], %[[N:.+]] = moe.add_rms_norm %[[H]], %[[A]], %[[NW]]
  // CHECK: %[[EARLY:.+]] = moe.mul %[[SUM]], %[[SUM]]
  // CHECK: return %[[N]], %[[EARLY]]
  %s = moe.add %h, %a : tensor<?x64xf32>
  %early = moe.mul %s, %s : tensor<?x64xf32>
  %nw = moe.weight [#moe.tensor_ref<"m.safetensors", "model.norm.weight">] stored tensor<64xbf16> role <norm> : tensor<64xbf16>
  %n = moe.rms_norm %s, %nw {epsilon = 1.0e-05 : f64} : tensor<?x64xf32>, tensor<64xbf16> -> tensor<?x64xf32>
  return %n, %early : tensor<?x64xf32>, tensor<?x64xf32>
}

// Per-head q/k norms (rank 3) fuse the same way.
// CHECK-LABEL: func.func @rank3
// CHECK: moe.add_rms_norm {{.+}} : tensor<?x4x16xf32>, tensor<16xbf16> -> tensor<?x4x16xf32>
func.func @rank3(%a: tensor<?x4x16xf32>, %b: tensor<?x4x16xf32>, %w: tensor<16xbf16>) -> tensor<?x4x16xf32> {
  %s = moe.add %a, %b : tensor<?x4x16xf32>
  %n = moe.rms_norm %s, %w {epsilon = 1.0e-06 : f64} : tensor<?x4x16xf32>, tensor<16xbf16> -> tensor<?x4x16xf32>
  return %n : tensor<?x4x16xf32>
}

// The first layer's norm reads the embedding, not an add.
// CHECK-LABEL: func.func @no_add_left_alone
// CHECK-NOT: moe.add_rms_norm
// CHECK: moe.rms_norm
func.func @no_add_left_alone(%h: tensor<?x64xf32>, %w: tensor<64xbf16>) -> tensor<?x64xf32> {
  %n = moe.rms_norm %h, %w {epsilon = 1.0e-06 : f64} : tensor<?x64xf32>, tensor<64xbf16> -> tensor<?x64xf32>
  return %n : tensor<?x64xf32>
}

// A norm weight computed after the add by an op that is not a weight expression (here a
// slice) cannot move above it.
// CHECK-LABEL: func.func @weight_not_hoistable_left_alone
// CHECK-NOT: moe.add_rms_norm
// CHECK: moe.rms_norm
func.func @weight_not_hoistable_left_alone(%h: tensor<?x64xf32>, %a: tensor<?x64xf32>, %big: tensor<128xbf16>) -> tensor<?x64xf32> {
  %s = moe.add %h, %a : tensor<?x64xf32>
  %w = moe.slice %big {offset = 64 : i64} : tensor<128xbf16> -> tensor<64xbf16>
  %n = moe.rms_norm %s, %w {epsilon = 1.0e-06 : f64} : tensor<?x64xf32>, tensor<64xbf16> -> tensor<?x64xf32>
  return %n : tensor<?x64xf32>
}
