// RUN: moec-onnx-opt %s --split-input-file --moec-fold-onnx-batch | FileCheck %s

// A [1, seq, hidden] input: the batch leaves every type, Reshape drops its
// leading 0, Transpose and Softmax/ReduceMean axes shift down by one (a
// negative axis stays), and the inputs are marked onnx.folded_batch.
// CHECK-LABEL: func.func @static_batch
// CHECK-SAME: (%[[X:.+]]: tensor<?x8xf32> {onnx.folded_batch}) -> (tensor<?x2x4xf32>, tensor<2x?x1xf32>)
// CHECK: %[[SHAPE:.+]] = onnx.initializer "shape.folded_batch" {constant, value = dense<[0, 2, 4]> : tensor<3xi64>} : tensor<3xi64>
// CHECK: %[[R:.+]] = onnx.node "Reshape"(%[[X]], %[[SHAPE]]) {{.*}} : (tensor<?x8xf32>, tensor<3xi64>) -> tensor<?x2x4xf32>
// CHECK: %[[T:.+]] = onnx.node "Transpose"(%[[R]]) {{.*}}node_attributes = {perm = array<i64: 1, 0, 2>}{{.*}} : (tensor<?x2x4xf32>) -> tensor<2x?x4xf32>
// CHECK: onnx.node "Softmax"(%[[T]]) {{.*}}node_attributes = {axis = 2 : i64}{{.*}} : (tensor<2x?x4xf32>) -> tensor<2x?x4xf32>
// CHECK: %[[AXES:.+]] = onnx.initializer "axes.folded_batch" {constant, value = dense<1> : tensor<1xi64>}
// CHECK: onnx.node "ReduceMean"(%{{.+}}, %[[AXES]]) {{.*}} : (tensor<2x?x4xf32>, tensor<1xi64>) -> tensor<2x?x1xf32>
// CHECK: onnx.node "Softmax"(%{{.+}}) {{.*}}node_attributes = {axis = -1 : i64}{{.*}} -> tensor<?x2x4xf32>
func.func @static_batch(%x: tensor<1x?x8xf32>) -> (tensor<1x?x2x4xf32>, tensor<1x2x?x1xf32>) {
  %shape = onnx.initializer "shape" {value = dense<[0, 0, 2, 4]> : tensor<4xi64>} : tensor<4xi64>
  %axes = onnx.initializer "axes" {value = dense<2> : tensor<1xi64>} : tensor<1xi64>
  %0 = onnx.node "Reshape"(%x, %shape) {opset = 21 : i64, name = "heads"} : (tensor<1x?x8xf32>, tensor<4xi64>) -> tensor<1x?x2x4xf32>
  %1 = onnx.node "Transpose"(%0) {opset = 21 : i64, name = "t", node_attributes = {perm = array<i64: 0, 2, 1, 3>}} : (tensor<1x?x2x4xf32>) -> tensor<1x2x?x4xf32>
  %2 = onnx.node "Softmax"(%1) {opset = 21 : i64, name = "softmax", node_attributes = {axis = 3 : i64}} : (tensor<1x2x?x4xf32>) -> tensor<1x2x?x4xf32>
  %3 = onnx.node "ReduceMean"(%2, %axes) {opset = 21 : i64, name = "mean"} : (tensor<1x2x?x4xf32>, tensor<1xi64>) -> tensor<1x2x?x1xf32>
  %4 = onnx.node "Softmax"(%0) {opset = 21 : i64, name = "last", node_attributes = {axis = -1 : i64}} : (tensor<1x?x2x4xf32>) -> tensor<1x?x2x4xf32>
  return %4, %3 : tensor<1x?x2x4xf32>, tensor<1x2x?x1xf32>
}

// -----

// A symbolic batch of token ids: the embedding Gather takes its batch from
// the ids, Shape(start = 1) still reads the sequence length, and a Reshape to
// [-1, hidden] that merges batch and sequence is token-major already.
// CHECK-LABEL: func.func @symbolic_batch
// CHECK-SAME: (%[[IDS:.+]]: tensor<?xi64> {onnx.folded_batch}) -> (tensor<?x8xf32>, tensor<1xi64>)
// CHECK: %[[E:.+]] = onnx.node "Gather"(%{{.+}}, %[[IDS]]) {{.*}} : (tensor<16x8xf32>, tensor<?xi64>) -> tensor<?x8xf32>
// CHECK: onnx.node "Reshape"(%[[E]], %{{.+}}) {{.*}} : (tensor<?x8xf32>, tensor<2xi64>) -> tensor<?x8xf32>
// CHECK: onnx.node "Shape"(%[[IDS]]) {{.*}}node_attributes = {start = 0 : i64}{{.*}} : (tensor<?xi64>) -> tensor<1xi64>
func.func @symbolic_batch(%ids: tensor<?x?xi64>) -> (tensor<?x8xf32>, tensor<1xi64>) {
  %table = onnx.initializer "table" : tensor<16x8xf32>
  %rows = onnx.initializer "rows" {value = dense<[-1, 8]> : tensor<2xi64>} : tensor<2xi64>
  %0 = onnx.node "Gather"(%table, %ids) {opset = 21 : i64, name = "embed"} : (tensor<16x8xf32>, tensor<?x?xi64>) -> tensor<?x?x8xf32>
  %1 = onnx.node "Reshape"(%0, %rows) {opset = 21 : i64, name = "merge"} : (tensor<?x?x8xf32>, tensor<2xi64>) -> tensor<?x8xf32>
  %2 = onnx.node "Shape"(%ids) {opset = 21 : i64, name = "len", node_attributes = {start = 1 : i64}} : (tensor<?x?xi64>) -> tensor<1xi64>
  return %1, %2 : tensor<?x8xf32>, tensor<1xi64>
}

// -----

// Token-major inputs ([T, hidden]: the second dimension is static) are not
// batched and stay as they are.
// CHECK-LABEL: func.func @token_major
// CHECK-SAME: (%{{.+}}: tensor<?x8xf32>) -> tensor<?x8xf32>
// CHECK-NOT: onnx.folded_batch
func.func @token_major(%x: tensor<?x8xf32>) -> tensor<?x8xf32> {
  %0 = onnx.node "Softmax"(%x) {opset = 21 : i64, name = "softmax", node_attributes = {axis = 1 : i64}} : (tensor<?x8xf32>) -> tensor<?x8xf32>
  return %0 : tensor<?x8xf32>
}
