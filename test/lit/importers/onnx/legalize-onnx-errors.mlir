// A graph with nodes moe has no lowering for fails with one error that lists
// every such node as (domain, op type, opset, name), with the reason when a
// pattern gave one; nodes that only feed them are listed too.
// RUN: not moec-onnx-opt %s --moec-legalize-onnx 2>&1 | FileCheck %s
// CHECK: error: the model: 7 nodes have no lowering to the moe dialect:
// CHECK-NEXT: (ai.onnx, Erf, 21, "erf")
// CHECK-NEXT: (ai.onnx, Transpose, 21, "t"): the Transpose [1, 0] moves the token dimension out of dimension 0; result #0 has type tensor<8x?xf32>, dynamic in a dimension other than the leading (token) one: moe tensors hold the tokens in dimension 0 only, so a [T, T] tensor such as attention scores cannot exist (attention imports only as a recognised subgraph, moe.attention)
// CHECK-NEXT: (ai.onnx, MatMul, 21, "act_by_act"): input #1 has type tensor<8x?xf32>, dynamic in a dimension other than the leading (token) one: moe tensors hold the tokens in dimension 0 only, so a [T, T] tensor such as attention scores cannot exist (attention imports only as a recognised subgraph, moe.attention)
// CHECK-NEXT: (ai.onnx, Add, 21, "no_broadcast"): the operand shapes do not broadcast: [?, 8] [1, 4]
// CHECK-NEXT: (ai.onnx, Reshape, 21, "merge_tokens"): [?, 8] -> [4] does not keep the leading (token) dimension with static others, as moe.reshape needs
// CHECK-NEXT: (com.microsoft, Gelu, 1, "gelu")
// CHECK-NEXT: (ai.onnx, Softmax, 21, "softmax"): only a Softmax over the last axis of a [tokens, ...] tensor (moe.softmax) has a moe equivalent, not over axis 0 of [?, 8]
// CHECK-NOT: error
func.func @unsupported(%x: tensor<?x8xf32>, %y: tensor<?x8xf32>) -> (tensor<?x8xf32>, tensor<?x8xf32>, tensor<4xf32>, tensor<?x?xf32>) {
  %c = onnx.initializer "c" : tensor<1x4xf32>
  %s = onnx.initializer "s" {value = dense<4> : tensor<1xi64>} : tensor<1xi64>
  %0 = onnx.node "Erf"(%x) {opset = 21 : i64, name = "erf"} : (tensor<?x8xf32>) -> tensor<?x8xf32>
  %t = onnx.node "Transpose"(%y) {opset = 21 : i64, name = "t"} : (tensor<?x8xf32>) -> tensor<8x?xf32>
  %1 = onnx.node "MatMul"(%0, %t) {opset = 21 : i64, name = "act_by_act"} : (tensor<?x8xf32>, tensor<8x?xf32>) -> tensor<?x?xf32>
  %2 = onnx.node "Add"(%x, %c) {opset = 21 : i64, name = "no_broadcast"} : (tensor<?x8xf32>, tensor<1x4xf32>) -> tensor<?x8xf32>
  %3 = onnx.node "Reshape"(%x, %s) {opset = 21 : i64, name = "merge_tokens"} : (tensor<?x8xf32>, tensor<1xi64>) -> tensor<4xf32>
  %4 = onnx.node "Gelu"(%x) {domain = "com.microsoft", opset = 1 : i64, name = "gelu"} : (tensor<?x8xf32>) -> tensor<?x8xf32>
  %5 = onnx.node "Softmax"(%4) {opset = 21 : i64, name = "softmax", node_attributes = {axis = 0 : i64}} : (tensor<?x8xf32>) -> tensor<?x8xf32>
  return %2, %5, %3, %1 : tensor<?x8xf32>, tensor<?x8xf32>, tensor<4xf32>, tensor<?x?xf32>
}
