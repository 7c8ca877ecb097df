// RUN: moec-onnx-opt %s --split-input-file --moec-raise-onnx-subgraphs | FileCheck %s

// com.microsoft.RotaryEmbedding on token-major [T, heads * head] with one
// position per token, rotate-half over the whole head: a reshape to heads,
// moe.rope with the theta of the caches, a reshape back.
// CHECK-LABEL: func.func @rotate_half
// CHECK-SAME: (%[[X:.+]]: tensor<?x16xf32>, %[[POS:.+]]: tensor<?xi64>)
// CHECK: %[[H:.+]] = moe.reshape %[[X]] : tensor<?x16xf32> -> tensor<?x2x8xf32>
// CHECK-NEXT: %[[R:.+]] = moe.rope %[[H]], %[[POS]] {theta = 1.000000e+04 : f64} : tensor<?x2x8xf32>, tensor<?xi64>
// CHECK-NEXT: %[[Y:.+]] = moe.reshape %[[R]] : tensor<?x2x8xf32> -> tensor<?x16xf32>
// CHECK-NEXT: return %[[Y]]
// CHECK-NOT: onnx.node
func.func @rotate_half(%x: tensor<?x16xf32>, %pos: tensor<?xi64>) -> tensor<?x16xf32> {
  %cos = onnx.initializer "cos" {value = dense<[[1.00000000e+00, 1.00000000e+00, 1.00000000e+00, 1.00000000e+00], [5.40302277e-01, 9.95004177e-01, 9.99949992e-01, 9.99999523e-01], [-4.16146845e-01, 9.80066597e-01, 9.99800026e-01, 9.99997973e-01], [-9.89992499e-01, 9.55336511e-01, 9.99550045e-01, 9.99995530e-01]]> : tensor<4x4xf32>} : tensor<4x4xf32>
  %sin = onnx.initializer "sin" {value = dense<[[0.00000000e+00, 0.00000000e+00, 0.00000000e+00, 0.00000000e+00], [8.41470957e-01, 9.98334140e-02, 9.99983307e-03, 9.99999815e-04], [9.09297407e-01, 1.98669329e-01, 1.99986659e-02, 1.99999870e-03], [1.41120002e-01, 2.95520216e-01, 2.99955010e-02, 2.99999560e-03]]> : tensor<4x4xf32>} : tensor<4x4xf32>
  %0 = onnx.node "RotaryEmbedding"(%x, %pos, %cos, %sin) {domain = "com.microsoft", opset = 1 : i64, name = "rope"} : (tensor<?x16xf32>, tensor<?xi64>, tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<?x16xf32>
  return %0 : tensor<?x16xf32>
}

// -----

// Interleaved and partial (rotary_embedding_dim 4 of a head of 8, so
// num_heads is given): the first 4 channels of each head are rotated in
// pairs (2i, 2i+1), the other 4 pass through.
// CHECK-LABEL: func.func @interleaved_partial
// CHECK-SAME: (%[[X:.+]]: tensor<?x16xf32>, %[[POS:.+]]: tensor<?xi64>)
// CHECK: %[[H:.+]] = moe.reshape %[[X]] : tensor<?x16xf32> -> tensor<?x2x8xf32>
// CHECK-NEXT: %[[A:.+]] = moe.slice %[[H]] {offset = 0 : i64} : tensor<?x2x8xf32> -> tensor<?x2x4xf32>
// CHECK-NEXT: %[[R:.+]] = moe.rope %[[A]], %[[POS]] {interleaved, theta = 5.000000e+05 : f64} : tensor<?x2x4xf32>, tensor<?xi64>
// CHECK-NEXT: %[[B:.+]] = moe.slice %[[H]] {offset = 4 : i64} : tensor<?x2x8xf32> -> tensor<?x2x4xf32>
// CHECK-NEXT: %[[C:.+]] = moe.concat %[[R]], %[[B]] : tensor<?x2x4xf32>, tensor<?x2x4xf32> -> tensor<?x2x8xf32>
// CHECK-NEXT: %[[Y:.+]] = moe.reshape %[[C]] : tensor<?x2x8xf32> -> tensor<?x16xf32>
// CHECK-NEXT: return %[[Y]]
func.func @interleaved_partial(%x: tensor<?x16xf32>, %pos: tensor<?xi64>) -> tensor<?x16xf32> {
  %cos = onnx.initializer "cos" {value = dense<[[1.00000000e+00, 1.00000000e+00], [5.40302277e-01, 9.99998987e-01], [-4.16146845e-01, 9.99996006e-01], [-9.89992499e-01, 9.99991000e-01]]> : tensor<4x2xf32>} : tensor<4x2xf32>
  %sin = onnx.initializer "sin" {value = dense<[[0.00000000e+00, 0.00000000e+00], [8.41470957e-01, 1.41421310e-03], [9.09297407e-01, 2.82842340e-03], [1.41120002e-01, 4.24262788e-03]]> : tensor<4x2xf32>} : tensor<4x2xf32>
  %0 = onnx.node "RotaryEmbedding"(%x, %pos, %cos, %sin) {domain = "com.microsoft", opset = 1 : i64, name = "rope", node_attributes = {interleaved = 1 : i64, rotary_embedding_dim = 4 : i64, num_heads = 2 : i64}} : (tensor<?x16xf32>, tensor<?xi64>, tensor<4x2xf32>, tensor<4x2xf32>) -> tensor<?x16xf32>
  return %0 : tensor<?x16xf32>
}
