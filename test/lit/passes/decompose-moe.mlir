// --moec-decompose-moe expands moe.moe into router, dispatch, grouped GEMMs, combine and shared experts.
// RUN: moec-opt %s --moec-decompose-moe | FileCheck %s
// RUN: moec-opt %s --moec-decompose-moe | moec-opt | FileCheck %s

// Mixtral-style layer: routed experts only.
// CHECK-LABEL: func.func @routed_only
// CHECK-SAME: (%[[X:.+]]: tensor<?x64xf32>, %[[G:.+]]: tensor<8x64xbf16>, %[[W1:.+]]: tensor<8x32x64xbf16>, %[[W3:.+]]: tensor<8x32x64xbf16>, %[[W2:.+]]: tensor<8x64x32xbf16>)
func.func @routed_only(%x: tensor<?x64xf32>, %g: tensor<8x64xbf16>, %w1: tensor<8x32x64xbf16>, %w3: tensor<8x32x64xbf16>, %w2: tensor<8x64x32xbf16>) -> tensor<?x64xf32> {
  // CHECK-NOT: moe.moe
  // CHECK: %[[RW:.+]], %[[RI:.+]] = moe.router %[[X]], %[[G]] {routing = #moe.routing<scoring = softmax, k = 2, norm_topk_prob = true>} : tensor<?x64xf32>, tensor<8x64xbf16> -> tensor<?x2xf32>, tensor<?x2xi32>
  // CHECK: %[[ROWS:.+]], %[[OFF:.+]], %[[POS:.+]] = moe.dispatch %[[X]], %[[RI]] : tensor<?x64xf32>, tensor<?x2xi32> -> tensor<?x64xf32>, tensor<9xi32>, tensor<?xi32>
  // CHECK: %[[GATE:.+]] = moe.grouped_matmul %[[ROWS]], %[[OFF]], %[[W1]] : tensor<?x64xf32>, tensor<9xi32>, tensor<8x32x64xbf16> -> tensor<?x32xf32>
  // CHECK: %[[UP:.+]] = moe.grouped_matmul %[[ROWS]], %[[OFF]], %[[W3]] : tensor<?x64xf32>, tensor<9xi32>, tensor<8x32x64xbf16> -> tensor<?x32xf32>
  // CHECK: %[[H:.+]] = moe.silu_mul %[[GATE]], %[[UP]] : tensor<?x32xf32>
  // CHECK: %[[DOWN:.+]] = moe.grouped_matmul %[[H]], %[[OFF]], %[[W2]] : tensor<?x32xf32>, tensor<9xi32>, tensor<8x64x32xbf16> -> tensor<?x64xf32>
  // CHECK: %[[Y:.+]] = moe.combine %[[DOWN]], %[[POS]], %[[RW]] : tensor<?x64xf32>, tensor<?xi32>, tensor<?x2xf32> -> tensor<?x64xf32>
  // CHECK-NOT: moe.add
  // CHECK: return %[[Y]]
  %y = moe.moe %x router %g experts %w1, %w3, %w2 {routing = #moe.routing<scoring = softmax, k = 2, norm_topk_prob = true>} : (tensor<?x64xf32>, tensor<8x64xbf16>, tensor<8x32x64xbf16>, tensor<8x32x64xbf16>, tensor<8x64x32xbf16>) -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// DeepSeek-V3-style layer: correction bias, group-limited routing, one shared expert.
// CHECK-LABEL: func.func @shared_expert
// CHECK-SAME: (%[[X:.+]]: tensor<?x64xf32>, %[[G:.+]]: tensor<8x64xbf16>, %[[B:.+]]: tensor<8xf32>, %[[W1:.+]]: tensor<8x32x64xbf16>, %[[W3:.+]]: tensor<8x32x64xbf16>, %[[W2:.+]]: tensor<8x64x32xbf16>, %[[S1:.+]]: tensor<48x64xbf16>, %[[S3:.+]]: tensor<48x64xbf16>, %[[S2:.+]]: tensor<64x48xbf16>)
func.func @shared_expert(%x: tensor<?x64xf32>, %g: tensor<8x64xbf16>, %b: tensor<8xf32>, %w1: tensor<8x32x64xbf16>, %w3: tensor<8x32x64xbf16>, %w2: tensor<8x64x32xbf16>, %s1: tensor<48x64xbf16>, %s3: tensor<48x64xbf16>, %s2: tensor<64x48xbf16>) -> tensor<?x64xf32> {
  // CHECK: %[[RW:.+]], %[[RI:.+]] = moe.router %[[X]], %[[G]] bias %[[B]] {routing = #moe.routing<scoring = sigmoid, k = 2, n_group = 4, topk_group = 2, group_score = top2_sum, norm_topk_prob = true, routed_scaling_factor = 2.500000e+00>}
  // CHECK: %[[ROWS:.+]], %[[OFF:.+]], %[[POS:.+]] = moe.dispatch %[[X]], %[[RI]]
  // CHECK: %[[DOWN:.+]] = moe.grouped_matmul %{{.+}}, %[[OFF]], %[[W2]]
  // CHECK: %[[Y:.+]] = moe.combine %[[DOWN]], %[[POS]], %[[RW]] :
  // CHECK: %[[SG:.+]] = moe.matmul %[[X]], %[[S1]] : tensor<?x64xf32>, tensor<48x64xbf16> -> tensor<?x48xf32>
  // CHECK: %[[SU:.+]] = moe.matmul %[[X]], %[[S3]] : tensor<?x64xf32>, tensor<48x64xbf16> -> tensor<?x48xf32>
  // CHECK: %[[SH:.+]] = moe.silu_mul %[[SG]], %[[SU]] : tensor<?x48xf32>
  // CHECK: %[[SD:.+]] = moe.matmul %[[SH]], %[[S2]] : tensor<?x48xf32>, tensor<64x48xbf16> -> tensor<?x64xf32>
  // CHECK-NOT: moe.sigmoid_gate
  // CHECK: %[[SUM:.+]] = moe.add %[[Y]], %[[SD]] : tensor<?x64xf32>
  // CHECK: return %[[SUM]]
  %y = moe.moe %x router %g bias %b experts %w1, %w3, %w2 shared %s1, %s3, %s2 {routing = #moe.routing<scoring = sigmoid, k = 2, n_group = 4, topk_group = 2, group_score = top2_sum, norm_topk_prob = true, routed_scaling_factor = 2.5>} : (tensor<?x64xf32>, tensor<8x64xbf16>, tensor<8xf32>, tensor<8x32x64xbf16>, tensor<8x32x64xbf16>, tensor<8x64x32xbf16>, tensor<48x64xbf16>, tensor<48x64xbf16>, tensor<64x48xbf16>) -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// Qwen2-MoE-style layer: the shared expert is scaled by sigmoid(x · w_sgᵀ).
// CHECK-LABEL: func.func @gated_shared_expert
// CHECK-SAME: (%[[X:.+]]: tensor<?x64xf32>, %{{.+}}: tensor<8x64xbf16>, %{{.+}}: tensor<8x32x64xbf16>, %{{.+}}: tensor<8x32x64xbf16>, %{{.+}}: tensor<8x64x32xbf16>, %{{.+}}: tensor<48x64xbf16>, %{{.+}}: tensor<48x64xbf16>, %{{.+}}: tensor<64x48xbf16>, %[[SGW:.+]]: tensor<1x64xbf16>)
func.func @gated_shared_expert(%x: tensor<?x64xf32>, %g: tensor<8x64xbf16>, %w1: tensor<8x32x64xbf16>, %w3: tensor<8x32x64xbf16>, %w2: tensor<8x64x32xbf16>, %s1: tensor<48x64xbf16>, %s3: tensor<48x64xbf16>, %s2: tensor<64x48xbf16>, %sg: tensor<1x64xbf16>) -> tensor<?x64xf32> {
  // CHECK: %[[RW:.+]], %{{.+}} = moe.router %[[X]], %{{.+}} {routing = #moe.routing<scoring = softmax, k = 4>}
  // CHECK: %[[Y:.+]] = moe.combine
  // CHECK: %[[SD:.+]] = moe.matmul %{{.+}}, %{{.+}} : tensor<?x48xf32>, tensor<64x48xbf16> -> tensor<?x64xf32>
  // CHECK: %[[GATED:.+]] = moe.sigmoid_gate %[[X]], %[[SGW]], %[[SD]] : tensor<?x64xf32>, tensor<1x64xbf16>, tensor<?x64xf32>
  // CHECK: %[[SUM:.+]] = moe.add %[[Y]], %[[GATED]] : tensor<?x64xf32>
  // CHECK: return %[[SUM]]
  %y = moe.moe %x router %g experts %w1, %w3, %w2 shared %s1, %s3, %s2 shared_gate %sg {routing = #moe.routing<scoring = softmax, k = 4>} : (tensor<?x64xf32>, tensor<8x64xbf16>, tensor<8x32x64xbf16>, tensor<8x32x64xbf16>, tensor<8x64x32xbf16>, tensor<48x64xbf16>, tensor<48x64xbf16>, tensor<64x48xbf16>, tensor<1x64xbf16>) -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// Several layers in one function are all decomposed, each with its own routing.
// CHECK-LABEL: func.func @two_layers
func.func @two_layers(%x: tensor<?x64xf32>, %g: tensor<8x64xbf16>, %w1: tensor<8x32x64xbf16>, %w3: tensor<8x32x64xbf16>, %w2: tensor<8x64x32xbf16>) -> tensor<?x64xf32> {
  // CHECK: moe.router {{.+}} k = 2
  // CHECK: %[[Y:.+]] = moe.combine
  // CHECK: moe.router %[[Y]], {{.+}} k = 1
  // CHECK-NOT: moe.moe
  %y = moe.moe %x router %g experts %w1, %w3, %w2 {routing = #moe.routing<scoring = softmax, k = 2>} : (tensor<?x64xf32>, tensor<8x64xbf16>, tensor<8x32x64xbf16>, tensor<8x32x64xbf16>, tensor<8x64x32xbf16>) -> tensor<?x64xf32>
  %z = moe.moe %y router %g experts %w1, %w3, %w2 {routing = #moe.routing<scoring = softmax, k = 1>} : (tensor<?x64xf32>, tensor<8x64xbf16>, tensor<8x32x64xbf16>, tensor<8x32x64xbf16>, tensor<8x64x32xbf16>) -> tensor<?x64xf32>
  return %z : tensor<?x64xf32>
}

// A dense MLP has no moe.moe and is left as it is.
// CHECK-LABEL: func.func @dense_mlp_left_alone
// CHECK-NEXT: moe.matmul
// CHECK-NEXT: moe.matmul
// CHECK-NEXT: moe.silu_mul
// CHECK-NEXT: moe.matmul
// CHECK-NEXT: return
func.func @dense_mlp_left_alone(%x: tensor<?x64xf32>, %wg: tensor<96x64xbf16>, %wu: tensor<96x64xbf16>, %wd: tensor<64x96xbf16>) -> tensor<?x64xf32> {
  %g = moe.matmul %x, %wg : tensor<?x64xf32>, tensor<96x64xbf16> -> tensor<?x96xf32>
  %u = moe.matmul %x, %wu : tensor<?x64xf32>, tensor<96x64xbf16> -> tensor<?x96xf32>
  %h = moe.silu_mul %g, %u : tensor<?x96xf32>
  %y = moe.matmul %h, %wd : tensor<?x96xf32>, tensor<64x96xbf16> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
