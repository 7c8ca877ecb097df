// An attention subgraph that the attention pattern does not raise (here:
// no Softmax over the scores) fails with one error that says why: its
// [heads, T, T] scores cannot be a moe tensor, which is dynamic only in
// the leading (token) dimension.
// RUN: not moec-onnx-opt %s --moec-legalize-onnx 2>&1 | FileCheck %s
// CHECK: error: the model: 4 nodes have no lowering to the moe dialect:
// CHECK-NEXT: (ai.onnx, Transpose, 21, "q_heads_first"): the Transpose [1, 0, 2] moves the token dimension out of dimension 0; result #0 has type tensor<2x?x8xf32>, dynamic in a dimension other than the leading (token) one: moe tensors hold the tokens in dimension 0 only, so a [T, T] tensor such as attention scores cannot exist (attention imports only as a recognised subgraph, moe.attention)
// CHECK-NEXT: (ai.onnx, Transpose, 21, "k_heads_first"): the Transpose [1, 2, 0] moves the token dimension
// CHECK-NEXT: (ai.onnx, MatMul, 21, "scores"): input #0 has type tensor<2x?x8xf32>, dynamic in a dimension other than the leading (token) one: moe tensors hold the tokens in dimension 0 only, so a [T, T] tensor such as attention scores cannot exist (attention imports only as a recognised subgraph, moe.attention)
// CHECK-NEXT: (ai.onnx, Sigmoid, 21, "not_softmax"): input #0 has type tensor<2x?x?xf32>, dynamic in a dimension other than the leading (token) one
// CHECK-NOT: error
func.func @attention(%q: tensor<?x2x8xf32>, %k: tensor<?x2x8xf32>) -> tensor<2x?x?xf32> {
  %qt = onnx.node "Transpose"(%q) {opset = 21 : i64, name = "q_heads_first", node_attributes = {perm = array<i64: 1, 0, 2>}} : (tensor<?x2x8xf32>) -> tensor<2x?x8xf32>
  %kt = onnx.node "Transpose"(%k) {opset = 21 : i64, name = "k_heads_first", node_attributes = {perm = array<i64: 1, 2, 0>}} : (tensor<?x2x8xf32>) -> tensor<2x8x?xf32>
  %s = onnx.node "MatMul"(%qt, %kt) {opset = 21 : i64, name = "scores"} : (tensor<2x?x8xf32>, tensor<2x8x?xf32>) -> tensor<2x?x?xf32>
  %p = onnx.node "Sigmoid"(%s) {opset = 21 : i64, name = "not_softmax"} : (tensor<2x?x?xf32>) -> tensor<2x?x?xf32>
  return %p : tensor<2x?x?xf32>
}
