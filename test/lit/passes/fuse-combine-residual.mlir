// --moec-fuse-combine-residual folds the add after a moe.combine into its `residual` operand.
// RUN: moec-opt %s --moec-fuse-combine-residual | FileCheck %s
// RUN: moec-opt %s --moec-fuse-combine-residual | moec-opt | FileCheck %s

// The residual stream on the left, as the importers write it.
// CHECK-LABEL: func.func @residual_on_the_left
// CHECK-SAME: (%[[H:.+]]: tensor<?x64xf32>, %[[ROWS:.+]]: tensor<?x64xf32>, %[[POS:.+]]: tensor<?xi32>, %[[W:.+]]: tensor<?x2xf32>)
func.func @residual_on_the_left(%h: tensor<?x64xf32>, %rows: tensor<?x64xf32>, %pos: tensor<?xi32>, %w: tensor<?x2xf32>) -> tensor<?x64xf32> {
  // CHECK: %[[Y:.+]] = moe.combine %[[ROWS]], %[[POS]], %[[W]] residual %[[H]] : tensor<?x64xf32>, tensor<?xi32>, tensor<?x2xf32>, tensor<?x64xf32> -> tensor<?x64xf32>
  // CHECK-NOT: moe.add
  // CHECK: return %[[Y]]
  %c = moe.combine %rows, %pos, %w : tensor<?x64xf32>, tensor<?xi32>, tensor<?x2xf32> -> tensor<?x64xf32>
  %y = moe.add %h, %c : tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// The shared experts' output on the right (decomposed moe.moe).
// CHECK-LABEL: func.func @shared_on_the_right
// CHECK-SAME: (%[[S:.+]]: tensor<?x64xf32>, %[[ROWS:.+]]: tensor<?x64xf32>, %[[POS:.+]]: tensor<?xi32>, %[[W:.+]]: tensor<?x2xf32>)
func.func @shared_on_the_right(%s: tensor<?x64xf32>, %rows: tensor<?x64xf32>, %pos: tensor<?xi32>, %w: tensor<?x2xf32>) -> tensor<?x64xf32> {
  // CHECK: %[[Y:.+]] = moe.combine %[[ROWS]], %[[POS]], %[[W]] residual %[[S]]
  // CHECK-NOT: moe.add
  // CHECK: return %[[Y]]
  %c = moe.combine %rows, %pos, %w : tensor<?x64xf32>, tensor<?xi32>, tensor<?x2xf32> -> tensor<?x64xf32>
  %y = moe.add %c, %s : tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// A layer with shared experts: the inner add takes the shared output as residual; the outer
// (residual stream) add stays, since the combine has its residual already.
// CHECK-LABEL: func.func @nested_adds
// CHECK-SAME: (%[[H:.+]]: tensor<?x64xf32>, %[[S:.+]]: tensor<?x64xf32>, %{{.+}}: tensor<?x64xf32>, %{{.+}}: tensor<?xi32>, %{{.+}}: tensor<?x2xf32>)
func.func @nested_adds(%h: tensor<?x64xf32>, %s: tensor<?x64xf32>, %rows: tensor<?x64xf32>, %pos: tensor<?xi32>, %w: tensor<?x2xf32>) -> tensor<?x64xf32> {
  // CHECK: %[[C:.+]] = moe.combine %{{.+}}, %{{.+}}, %{{.+}} residual %[[S]]
  // CHECK: %[[Y:.+]] = moe.add %[[H]], %[[C]]
  // CHECK: return %[[Y]]
  %c = moe.combine %rows, %pos, %w : tensor<?x64xf32>, tensor<?xi32>, tensor<?x2xf32> -> tensor<?x64xf32>
  %m = moe.add %c, %s : tensor<?x64xf32>
  %y = moe.add %h, %m : tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// The combine's own result is needed elsewhere: fusing would compute it twice.
// CHECK-LABEL: func.func @combine_used_twice_left_alone
// CHECK: %[[C:.+]] = moe.combine %{{[^ ]+}}, %{{[^ ]+}}, %{{[^ ]+}} :
// CHECK: moe.add %{{.+}}, %[[C]]
func.func @combine_used_twice_left_alone(%h: tensor<?x64xf32>, %rows: tensor<?x64xf32>, %pos: tensor<?xi32>, %w: tensor<?x2xf32>) -> (tensor<?x64xf32>, tensor<?x64xf32>) {
  %c = moe.combine %rows, %pos, %w : tensor<?x64xf32>, tensor<?xi32>, tensor<?x2xf32> -> tensor<?x64xf32>
  %y = moe.add %h, %c : tensor<?x64xf32>
  return %y, %c : tensor<?x64xf32>, tensor<?x64xf32>
}

// An add of two plain values is not touched.
// CHECK-LABEL: func.func @plain_add_left_alone
// CHECK-NEXT: moe.add
// CHECK-NEXT: return
func.func @plain_add_left_alone(%a: tensor<?x64xf32>, %b: tensor<?x64xf32>) -> tensor<?x64xf32> {
  %y = moe.add %a, %b : tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
