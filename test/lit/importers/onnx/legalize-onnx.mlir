// RUN: moec-onnx-opt %s --split-input-file --moec-legalize-onnx | FileCheck %s

// MatMul by a weight initializer is moe.matmul with the weight in [out, in]:
// transposed from MatMul's [in, out], as stored when a Transpose feeds it.
// An Add of a 1-d initializer after it is the matmul's bias.
// CHECK-LABEL: func.func @matmuls
// CHECK-SAME: (%[[X:.+]]: tensor<?x8xf32>)
// CHECK-DAG: %[[W:.+]] = moe.weight [#moe.tensor_ref<"model.onnx", "w">] stored tensor<8x4xf32> {transforms = [#moe.transpose]} : tensor<4x8xf32>
// CHECK-DAG: %[[B:.+]] = moe.weight [#moe.tensor_ref<"model.onnx", "b">] stored tensor<4xf32> : tensor<4xf32>
// CHECK: %[[A:.+]] = moe.matmul %[[X]], %[[W]] bias %[[B]] : tensor<?x8xf32>, tensor<4x8xf32>, tensor<4xf32> -> tensor<?x4xf32>
// CHECK: %[[WT:.+]] = moe.weight [#moe.tensor_ref<"model.onnx", "wt">] stored tensor<4x8xf32> : tensor<4x8xf32>
// CHECK: %[[C:.+]] = moe.matmul %[[X]], %[[WT]] : tensor<?x8xf32>, tensor<4x8xf32> -> tensor<?x4xf32>
// CHECK-NOT: onnx.
func.func @matmuls(%x: tensor<?x8xf32>) -> (tensor<?x4xf32>, tensor<?x4xf32>) {
  %w = onnx.initializer "w" : tensor<8x4xf32>
  %b = onnx.initializer "b" : tensor<4xf32>
  %wt = onnx.initializer "wt" : tensor<4x8xf32>
  %0 = onnx.node "MatMul"(%x, %w) {opset = 13 : i64} : (tensor<?x8xf32>, tensor<8x4xf32>) -> tensor<?x4xf32>
  %1 = onnx.node "Add"(%0, %b) {opset = 13 : i64} : (tensor<?x4xf32>, tensor<4xf32>) -> tensor<?x4xf32>
  %t = onnx.node "Transpose"(%wt) {opset = 13 : i64, node_attributes = {perm = array<i64: 1, 0>}} : (tensor<4x8xf32>) -> tensor<8x4xf32>
  %2 = onnx.node "MatMul"(%x, %t) {opset = 13 : i64} : (tensor<?x8xf32>, tensor<8x4xf32>) -> tensor<?x4xf32>
  return %1, %2 : tensor<?x4xf32>, tensor<?x4xf32>
}

// -----

// Gemm with transB (weight already [out, in]) and a bias C; Einsum in both
// matmul forms.
// CHECK-LABEL: func.func @gemm_einsum
// CHECK-DAG: %[[W:.+]] = moe.weight [#moe.tensor_ref<"model.onnx", "w">] stored tensor<4x8xf32> : tensor<4x8xf32>
// CHECK-DAG: %[[B:.+]] = moe.weight [#moe.tensor_ref<"model.onnx", "b">] stored tensor<4xf32> : tensor<4xf32>
// CHECK: moe.matmul %{{.+}}, %[[W]] bias %[[B]] : tensor<?x8xf32>, tensor<4x8xf32>, tensor<4xf32> -> tensor<?x4xf32>
// CHECK: moe.matmul %{{.+}}, %{{.+}} : tensor<?x8xf32>, tensor<4x8xf32> -> tensor<?x4xf32>
// CHECK: %[[E:.+]] = moe.weight [#moe.tensor_ref<"model.onnx", "e">] stored tensor<8x4xf32> {transforms = [#moe.transpose]} : tensor<4x8xf32>
// CHECK: moe.matmul %{{.+}}, %[[E]] : tensor<?x8xf32>, tensor<4x8xf32> -> tensor<?x4xf32>
// CHECK-NOT: onnx.
func.func @gemm_einsum(%x: tensor<?x8xf32>) -> (tensor<?x4xf32>, tensor<?x4xf32>, tensor<?x4xf32>) {
  %w = onnx.initializer "w" : tensor<4x8xf32>
  %b = onnx.initializer "b" : tensor<4xf32>
  %e = onnx.initializer "e" : tensor<8x4xf32>
  %0 = onnx.node "Gemm"(%x, %w, %b) {opset = 13 : i64, node_attributes = {transB = 1 : i64}} : (tensor<?x8xf32>, tensor<4x8xf32>, tensor<4xf32>) -> tensor<?x4xf32>
  %1 = onnx.node "Einsum"(%x, %w) {opset = 12 : i64, node_attributes = {equation = "tk, nk -> tn"}} : (tensor<?x8xf32>, tensor<4x8xf32>) -> tensor<?x4xf32>
  %2 = onnx.node "Einsum"(%x, %e) {opset = 12 : i64, node_attributes = {equation = "ab,bc->ac"}} : (tensor<?x8xf32>, tensor<8x4xf32>) -> tensor<?x4xf32>
  return %0, %1, %2 : tensor<?x4xf32>, tensor<?x4xf32>, tensor<?x4xf32>
}

// -----

// Shape ops that keep the token dimension: Reshape (0 copies, -1 infers),
// Unsqueeze and Squeeze at opset 11 (axes attribute) and 13 (axes input),
// Flatten, Slice of the last dimension at opset 9 (attributes) and 13
// (inputs), Concat along the last dimension, Expand of a size-1 dimension.
// CHECK-LABEL: func.func @shapes
// CHECK-SAME: (%[[X:.+]]: tensor<?x8xf32>, %[[Y:.+]]: tensor<?x1x4xf32>)
// CHECK: %[[R:.+]] = moe.reshape %[[X]] : tensor<?x8xf32> -> tensor<?x2x4xf32>
// CHECK: %[[U:.+]] = moe.reshape %[[X]] : tensor<?x8xf32> -> tensor<?x1x8xf32>
// CHECK: %[[S:.+]] = moe.reshape %[[U]] : tensor<?x1x8xf32> -> tensor<?x8xf32>
// CHECK: %[[F:.+]] = moe.reshape %[[R]] : tensor<?x2x4xf32> -> tensor<?x8xf32>
// CHECK: %[[L9:.+]] = moe.slice %[[X]] {offset = 2 : i64} : tensor<?x8xf32> -> tensor<?x4xf32>
// CHECK: %[[L13:.+]] = moe.slice %[[X]] {offset = 4 : i64} : tensor<?x8xf32> -> tensor<?x4xf32>
// CHECK: %[[C:.+]] = moe.concat %[[L9]], %[[L13]] : tensor<?x4xf32>, tensor<?x4xf32> -> tensor<?x8xf32>
// CHECK: %[[E:.+]] = moe.expand %[[Y]] : tensor<?x1x4xf32> -> tensor<?x2x4xf32>
// CHECK-NOT: onnx.
func.func @shapes(%x: tensor<?x8xf32>, %y: tensor<?x1x4xf32>) -> (tensor<?x?x4xf32>, tensor<?x8xf32>, tensor<?x8xf32>, tensor<?x8xf32>, tensor<?x2x4xf32>) {
  %shape = onnx.initializer "shape" {value = dense<[0, -1, 4]> : tensor<3xi64>} : tensor<3xi64>
  %one = onnx.initializer "one" {value = dense<1> : tensor<1xi64>} : tensor<1xi64>
  %s4 = onnx.initializer "s4" {value = dense<4> : tensor<1xi64>} : tensor<1xi64>
  %s8 = onnx.initializer "s8" {value = dense<8> : tensor<1xi64>} : tensor<1xi64>
  %last = onnx.initializer "last" {value = dense<-1> : tensor<1xi64>} : tensor<1xi64>
  %ex = onnx.initializer "ex" {value = dense<[1, 2, 1]> : tensor<3xi64>} : tensor<3xi64>
  %0 = onnx.node "Reshape"(%x, %shape) {opset = 14 : i64} : (tensor<?x8xf32>, tensor<3xi64>) -> tensor<?x?x4xf32>
  %1 = onnx.node "Unsqueeze"(%x) {opset = 11 : i64, node_attributes = {axes = array<i64: 1>}} : (tensor<?x8xf32>) -> tensor<?x1x8xf32>
  %2 = onnx.node "Squeeze"(%1, %one) {opset = 13 : i64} : (tensor<?x1x8xf32>, tensor<1xi64>) -> tensor<?x8xf32>
  %3 = onnx.node "Flatten"(%0) {opset = 13 : i64} : (tensor<?x?x4xf32>) -> tensor<?x8xf32>
  %4 = onnx.node "Slice"(%x) {opset = 9 : i64, node_attributes = {starts = array<i64: 2>, ends = array<i64: 6>, axes = array<i64: 1>}} : (tensor<?x8xf32>) -> tensor<?x4xf32>
  %5 = onnx.node "Slice"(%x, %s4, %s8, %last) {opset = 13 : i64} : (tensor<?x8xf32>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<?x4xf32>
  %6 = onnx.node "Concat"(%4, %5) {opset = 13 : i64, node_attributes = {axis = 1 : i64}} : (tensor<?x4xf32>, tensor<?x4xf32>) -> tensor<?x8xf32>
  %7 = onnx.node "Expand"(%y, %ex) {opset = 13 : i64} : (tensor<?x1x4xf32>, tensor<3xi64>) -> tensor<?x2x4xf32>
  return %0, %2, %3, %6, %7 : tensor<?x?x4xf32>, tensor<?x8xf32>, tensor<?x8xf32>, tensor<?x8xf32>, tensor<?x2x4xf32>
}

// -----

// Embedding rows by token ids; Identity and a Cast to the same type forward
// their input; residual Add and Mul of equal types.
// CHECK-LABEL: func.func @embed_elementwise
// CHECK-SAME: (%[[IDS:.+]]: tensor<?xi64> {moe.name = "tokens"})
// CHECK: %[[T:.+]] = moe.weight [#moe.tensor_ref<"model.onnx", "table">] stored tensor<16x8xbf16> role <embedding> : tensor<16x8xbf16>
// CHECK: %[[H:.+]] = moe.embed %[[T]], %[[IDS]] : tensor<16x8xbf16>, tensor<?xi64> -> tensor<?x8xbf16>
// CHECK: %[[A:.+]] = moe.add %[[H]], %[[H]] : tensor<?x8xbf16>
// CHECK: %[[M:.+]] = moe.mul %[[A]], %[[H]] : tensor<?x8xbf16>
// CHECK: return %[[M]]
func.func @embed_elementwise(%ids: tensor<?xi64>) -> tensor<?x8xbf16> {
  %table = onnx.initializer "table" : tensor<16x8xbf16>
  %0 = onnx.node "Gather"(%table, %ids) {opset = 13 : i64} : (tensor<16x8xbf16>, tensor<?xi64>) -> tensor<?x8xbf16>
  %1 = onnx.node "Identity"(%0) {opset = 13 : i64} : (tensor<?x8xbf16>) -> tensor<?x8xbf16>
  %2 = onnx.node "Cast"(%1) {opset = 13 : i64, node_attributes = {to = 16 : i64}} : (tensor<?x8xbf16>) -> tensor<?x8xbf16>
  %3 = onnx.node "Add"(%2, %0) {opset = 14 : i64} : (tensor<?x8xbf16>, tensor<?x8xbf16>) -> tensor<?x8xbf16>
  %4 = onnx.node "Mul"(%3, %1) {opset = 14 : i64} : (tensor<?x8xbf16>, tensor<?x8xbf16>) -> tensor<?x8xbf16>
  return %4 : tensor<?x8xbf16>
}

// -----

// The norms onnxruntime and opset 23 spell as one node: SimplifiedLayer-
// Normalization (default and com.microsoft domains), RMSNormalization, and
// SkipSimplifiedLayerNormalization, whose 4th output is the sum.
// CHECK-LABEL: func.func @norms
// CHECK-SAME: (%[[X:.+]]: tensor<?x8xf32>, %[[R:.+]]: tensor<?x8xf32>)
// CHECK: %[[N1:.+]] = moe.rms_norm %[[X]], %{{.+}} {epsilon = 9.9999999999999995E-7 : f64}
// CHECK: %[[N2:.+]] = moe.rms_norm %[[N1]], %{{.+}} {epsilon = 1.000000e-05 : f64}
// CHECK: %[[N3:.+]] = moe.rms_norm %[[N2]], %{{.+}} {epsilon = 1.000000e-05 : f64}
// CHECK: %[[SUM:.+]] = moe.add %[[N3]], %[[R]] : tensor<?x8xf32>
// CHECK: %[[N4:.+]] = moe.rms_norm %[[SUM]], %{{.+}} {epsilon = 1.000000e-05 : f64}
// CHECK: return %[[N4]], %[[SUM]]
func.func @norms(%x: tensor<?x8xf32>, %r: tensor<?x8xf32>) -> (tensor<?x8xf32>, tensor<?x8xf32>) {
  %none = onnx.none : none
  %w = onnx.initializer "w" : tensor<8xf32>
  %0 = onnx.node "SimplifiedLayerNormalization"(%x, %w) {opset = 21 : i64, node_attributes = {axis = -1 : i64, epsilon = 1.0e-06 : f32}} : (tensor<?x8xf32>, tensor<8xf32>) -> tensor<?x8xf32>
  %1, %inv = onnx.node "SimplifiedLayerNormalization"(%0, %w) {domain = "com.microsoft", opset = 1 : i64} : (tensor<?x8xf32>, tensor<8xf32>) -> (tensor<?x8xf32>, none)
  %2 = onnx.node "RMSNormalization"(%1, %w) {opset = 23 : i64} : (tensor<?x8xf32>, tensor<8xf32>) -> tensor<?x8xf32>
  %3:4 = onnx.node "SkipSimplifiedLayerNormalization"(%2, %r, %w) {domain = "com.microsoft", opset = 1 : i64} : (tensor<?x8xf32>, tensor<?x8xf32>, tensor<8xf32>) -> (tensor<?x8xf32>, none, none, tensor<?x8xf32>)
  return %3#0, %3#3 : tensor<?x8xf32>, tensor<?x8xf32>
}

// -----

// A graph output that is an initializer becomes a moe.weight; the function
// type follows what is returned.
// CHECK-LABEL: func.func @initializer_output() -> tensor<4xf32>
// CHECK: %[[W:.+]] = moe.weight [#moe.tensor_ref<"model.onnx", "w">] stored tensor<4xf32> : tensor<4xf32>
// CHECK: return %[[W]]
func.func @initializer_output() -> tensor<4xf32> {
  %w = onnx.initializer "w" : tensor<4xf32>
  return %w : tensor<4xf32>
}

// -----

// Shape arithmetic on known values folds at import time: the target
// [0, 2, Shape(x)[1] / 2] computed with Shape, Gather, Div, Cast, Unsqueeze
// and Concat is the constant [0, 2, 4], so the Reshape becomes moe.reshape
// (its declared result type says nothing); the dynamic token dimension is
// never read.
// CHECK-LABEL: func.func @shape_arithmetic
// CHECK-SAME: (%[[X:.+]]: tensor<?x8xf32>) -> tensor<?x2x4xf32>
// CHECK-NEXT: %[[R:.+]] = moe.reshape %[[X]] : tensor<?x8xf32> -> tensor<?x2x4xf32>
// CHECK-NEXT: return %[[R]]
// CHECK-NOT: onnx.
func.func @shape_arithmetic(%x: tensor<?x8xf32>) -> tensor<?x?x?xf32> {
  %one = onnx.initializer "one" {value = dense<1> : tensor<i64>} : tensor<i64>
  %two = onnx.initializer "two" {value = dense<2> : tensor<i32>} : tensor<i32>
  %zero = onnx.initializer "zero" {value = dense<0> : tensor<1xi64>} : tensor<1xi64>
  %heads = onnx.initializer "heads" {value = dense<2> : tensor<1xi64>} : tensor<1xi64>
  %axes = onnx.initializer "axes" {value = dense<0> : tensor<1xi64>} : tensor<1xi64>
  %0 = onnx.node "Shape"(%x) {opset = 21 : i64, name = "shape"} : (tensor<?x8xf32>) -> tensor<2xi64>
  %1 = onnx.node "Gather"(%0, %one) {opset = 21 : i64, name = "hidden"} : (tensor<2xi64>, tensor<i64>) -> tensor<i64>
  %2 = onnx.node "Cast"(%two) {opset = 21 : i64, name = "cast", node_attributes = {to = 7 : i64}} : (tensor<i32>) -> tensor<i64>
  %3 = onnx.node "Div"(%1, %2) {opset = 21 : i64, name = "head"} : (tensor<i64>, tensor<i64>) -> tensor<i64>
  %4 = onnx.node "Unsqueeze"(%3, %axes) {opset = 21 : i64, name = "head1"} : (tensor<i64>, tensor<1xi64>) -> tensor<1xi64>
  %5 = onnx.node "Concat"(%zero, %heads, %4) {opset = 21 : i64, name = "target", node_attributes = {axis = 0 : i64}} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<3xi64>
  %6 = onnx.node "Reshape"(%x, %5) {opset = 21 : i64, name = "reshape"} : (tensor<?x8xf32>, tensor<3xi64>) -> tensor<?x?x?xf32>
  return %6 : tensor<?x?x?xf32>
}
