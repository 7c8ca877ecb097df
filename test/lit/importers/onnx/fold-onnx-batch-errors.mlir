// Nodes that work on the batch axis of a [batch, seq, ...] graph cannot be
// folded into the token dimension; one error lists every one of them with
// the reason.
// RUN: not moec-onnx-opt %s --moec-fold-onnx-batch 2>&1 | FileCheck %s
// CHECK: error: the model: the inputs are [batch, seq, ...], but 6 nodes do not fold the batch into the token dimension:
// CHECK-NEXT: (ai.onnx, Softmax, 21, "over_batch"): it works on the batch axis (axis = 0)
// CHECK-NEXT: (ai.onnx, Transpose, 21, "move_batch"): it moves the batch axis
// CHECK-NEXT: (ai.onnx, Shape, 21, "batch_size"): it reads the batch size (only Shape with start >= 1, opset >= 15, folds)
// CHECK-NEXT: (ai.onnx, Add, 21, "full_rank"): operand tensor<1x1x8xf32> is not batched but has the batched rank 3
// CHECK-NEXT: (com.microsoft, RotaryEmbedding, 1, "heads_major"): only the [batch, seq, hidden] form of RotaryEmbedding folds (the 4-d [batch, heads, seq, head] form is not token-major)
// CHECK-NEXT: (com.microsoft, Gelu, 1, "gelu"): there is no rule to fold the batch dimension through com.microsoft.Gelu
// CHECK-NOT: error
func.func @unfoldable(%x: tensor<?x?x8xf32>, %q: tensor<?x?x2x4xf32>, %pos: tensor<?x?xi64>) -> (tensor<?x?x8xf32>, tensor<?x2x?x4xf32>, tensor<3xi64>, tensor<?x?x8xf32>, tensor<?x?x2x4xf32>, tensor<?x?x8xf32>) {
  %c = onnx.initializer "c" : tensor<1x1x8xf32>
  %cos = onnx.initializer "cos" : tensor<4x2xf32>
  %0 = onnx.node "Softmax"(%x) {opset = 21 : i64, name = "over_batch", node_attributes = {axis = 0 : i64}} : (tensor<?x?x8xf32>) -> tensor<?x?x8xf32>
  %1 = onnx.node "Transpose"(%q) {opset = 21 : i64, name = "move_batch", node_attributes = {perm = array<i64: 2, 1, 0, 3>}} : (tensor<?x?x2x4xf32>) -> tensor<?x2x?x4xf32>
  %2 = onnx.node "Shape"(%x) {opset = 21 : i64, name = "batch_size"} : (tensor<?x?x8xf32>) -> tensor<3xi64>
  %3 = onnx.node "Add"(%x, %c) {opset = 21 : i64, name = "full_rank"} : (tensor<?x?x8xf32>, tensor<1x1x8xf32>) -> tensor<?x?x8xf32>
  %4 = onnx.node "RotaryEmbedding"(%q, %pos, %cos, %cos) {domain = "com.microsoft", opset = 1 : i64, name = "heads_major"} : (tensor<?x?x2x4xf32>, tensor<?x?xi64>, tensor<4x2xf32>, tensor<4x2xf32>) -> tensor<?x?x2x4xf32>
  %5 = onnx.node "Gelu"(%x) {domain = "com.microsoft", opset = 1 : i64, name = "gelu"} : (tensor<?x?x8xf32>) -> tensor<?x?x8xf32>
  return %0, %1, %2, %3, %4, %5 : tensor<?x?x8xf32>, tensor<?x2x?x4xf32>, tensor<3xi64>, tensor<?x?x8xf32>, tensor<?x?x2x4xf32>, tensor<?x?x8xf32>
}
