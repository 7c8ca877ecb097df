// RUN: moec-onnx-opt %s --split-input-file --moec-legalize-onnx | FileCheck %s

// Elementwise standard ops that no pattern raised import one by one:
// Sub/Div/Pow/Max/Min and broadcasting Add/Mul as moe.binary (a scalar or
// lower-rank operand is the same for every token), the unary functions as
// moe.unary, Equal/Greater as moe.compare (i1), Where as moe.select and a
// type-changing Cast as moe.cast.
// CHECK-LABEL: func.func @elementwise
// CHECK-SAME: (%[[X:.+]]: tensor<?x8xf32>, %[[N:.+]]: tensor<?x1xf32>, %[[I:.+]]: tensor<?x2xi64>)
// CHECK: %[[SUB:.+]] = moe.binary <sub> %[[X]], %[[N]] : tensor<?x8xf32>, tensor<?x1xf32> -> tensor<?x8xf32>
// CHECK: %[[POW:.+]] = moe.binary <pow> %[[SUB]], %{{.+}} : tensor<?x8xf32>, tensor<f32> -> tensor<?x8xf32>
// CHECK: %[[SQ:.+]] = moe.unary <sqrt> %[[POW]] : tensor<?x8xf32>
// CHECK: %[[DIV:.+]] = moe.binary <div> %[[SQ]], %[[N]] : tensor<?x8xf32>, tensor<?x1xf32> -> tensor<?x8xf32>
// CHECK: %[[MAX:.+]] = moe.binary <max> %[[DIV]], %{{.+}} : tensor<?x8xf32>, tensor<f32> -> tensor<?x8xf32>
// CHECK: %[[MIN:.+]] = moe.binary <min> %[[MAX]], %{{.+}} : tensor<?x8xf32>, tensor<8xf32> -> tensor<?x8xf32>
// CHECK: %[[ADD:.+]] = moe.binary <add> %[[MIN]], %{{.+}} : tensor<?x8xf32>, tensor<8xf32> -> tensor<?x8xf32>
// CHECK: %[[MUL:.+]] = moe.binary <mul> %[[ADD]], %[[N]] : tensor<?x8xf32>, tensor<?x1xf32> -> tensor<?x8xf32>
// CHECK: %[[NEG:.+]] = moe.unary <neg> %[[MUL]] : tensor<?x8xf32>
// CHECK: %[[REC:.+]] = moe.unary <reciprocal> %[[NEG]] : tensor<?x8xf32>
// CHECK: %[[SIG:.+]] = moe.unary <sigmoid> %[[REC]] : tensor<?x8xf32>
// CHECK: %[[GT:.+]] = moe.compare <gt> %[[SIG]], %{{.+}} : tensor<?x8xf32>, tensor<f32> -> tensor<?x8xi1>
// CHECK: %[[SEL:.+]] = moe.select %[[GT]], %[[SIG]], %{{.+}} : tensor<?x8xi1>, tensor<?x8xf32>, tensor<f32> -> tensor<?x8xf32>
// CHECK: %[[EQ:.+]] = moe.compare <eq> %[[I]], %{{.+}} : tensor<?x2xi64>, tensor<1xi64> -> tensor<?x2xi1>
// CHECK: %[[F:.+]] = moe.cast %[[EQ]] : tensor<?x2xi1> -> tensor<?x2xf32>
// CHECK: return %[[SEL]], %[[F]]
// CHECK-NOT: onnx.
func.func @elementwise(%x: tensor<?x8xf32>, %n: tensor<?x1xf32>, %i: tensor<?x2xi64>) -> (tensor<?x8xf32>, tensor<?x2xf32>) {
  %two = onnx.initializer "two" {value = dense<2.0> : tensor<f32>} : tensor<f32>
  %row = onnx.initializer "row" : tensor<8xf32>
  %e = onnx.initializer "e" {value = dense<3> : tensor<1xi64>} : tensor<1xi64>
  %0 = onnx.node "Sub"(%x, %n) {opset = 14 : i64} : (tensor<?x8xf32>, tensor<?x1xf32>) -> tensor<?x8xf32>
  %1 = onnx.node "Pow"(%0, %two) {opset = 15 : i64} : (tensor<?x8xf32>, tensor<f32>) -> tensor<?x8xf32>
  %2 = onnx.node "Sqrt"(%1) {opset = 13 : i64} : (tensor<?x8xf32>) -> tensor<?x8xf32>
  %3 = onnx.node "Div"(%2, %n) {opset = 14 : i64} : (tensor<?x8xf32>, tensor<?x1xf32>) -> tensor<?x8xf32>
  %4 = onnx.node "Max"(%3, %two) {opset = 13 : i64} : (tensor<?x8xf32>, tensor<f32>) -> tensor<?x8xf32>
  %5 = onnx.node "Min"(%4, %row) {opset = 13 : i64} : (tensor<?x8xf32>, tensor<8xf32>) -> tensor<?x8xf32>
  %6 = onnx.node "Add"(%5, %row) {opset = 14 : i64} : (tensor<?x8xf32>, tensor<8xf32>) -> tensor<?x8xf32>
  %7 = onnx.node "Mul"(%6, %n) {opset = 14 : i64} : (tensor<?x8xf32>, tensor<?x1xf32>) -> tensor<?x8xf32>
  %8 = onnx.node "Neg"(%7) {opset = 13 : i64} : (tensor<?x8xf32>) -> tensor<?x8xf32>
  %9 = onnx.node "Reciprocal"(%8) {opset = 13 : i64} : (tensor<?x8xf32>) -> tensor<?x8xf32>
  %10 = onnx.node "Sigmoid"(%9) {opset = 13 : i64} : (tensor<?x8xf32>) -> tensor<?x8xf32>
  %11 = onnx.node "Greater"(%10, %two) {opset = 13 : i64} : (tensor<?x8xf32>, tensor<f32>) -> tensor<?x8xi1>
  %12 = onnx.node "Where"(%11, %10, %two) {opset = 16 : i64} : (tensor<?x8xi1>, tensor<?x8xf32>, tensor<f32>) -> tensor<?x8xf32>
  %13 = onnx.node "Equal"(%i, %e) {opset = 19 : i64} : (tensor<?x2xi64>, tensor<1xi64>) -> tensor<?x2xi1>
  %14 = onnx.node "Cast"(%13) {opset = 21 : i64, node_attributes = {to = 1 : i64}} : (tensor<?x2xi1>) -> tensor<?x2xf32>
  return %12, %14 : tensor<?x8xf32>, tensor<?x2xf32>
}

// -----

// Reductions take their axes as an attribute before opset 13 (ReduceSum)
// or 18 (the others) and as an input from then on; keepdims keeps them.
// CHECK-LABEL: func.func @reductions
// CHECK: moe.reduce <sum> %{{.+}} {dims = array<i64: 1>} : tensor<?x2x8xf32> -> tensor<?x8xf32>
// CHECK: moe.reduce <sum> %{{.+}} {dims = array<i64: 2>} : tensor<?x2x8xf32> -> tensor<?x2x1xf32>
// CHECK: moe.reduce <mean> %{{.+}} {dims = array<i64: 2>} : tensor<?x2x8xf32> -> tensor<?x2x1xf32>
// CHECK: moe.reduce <mean> %{{.+}} {dims = array<i64: 1, 2>} : tensor<?x2x8xf32> -> tensor<?xf32>
// CHECK: moe.reduce <max> %{{.+}} {dims = array<i64: 1>} : tensor<?x2x8xf32> -> tensor<?x1x8xf32>
// CHECK: moe.reduce <max> %{{.+}} {dims = array<i64: 1>} : tensor<?x2x8xf32> -> tensor<?x8xf32>
// CHECK-NOT: onnx.
func.func @reductions(%x: tensor<?x2x8xf32>) -> (tensor<?x8xf32>, tensor<?x2x1xf32>, tensor<?x2x1xf32>, tensor<?xf32>, tensor<?x1x8xf32>, tensor<?x8xf32>) {
  %a1 = onnx.initializer "a1" {value = dense<1> : tensor<1xi64>} : tensor<1xi64>
  %am1 = onnx.initializer "am1" {value = dense<-1> : tensor<1xi64>} : tensor<1xi64>
  %0 = onnx.node "ReduceSum"(%x) {opset = 11 : i64, node_attributes = {axes = array<i64: 1>, keepdims = 0 : i64}} : (tensor<?x2x8xf32>) -> tensor<?x8xf32>
  %1 = onnx.node "ReduceSum"(%x, %am1) {opset = 13 : i64} : (tensor<?x2x8xf32>, tensor<1xi64>) -> tensor<?x2x1xf32>
  %2 = onnx.node "ReduceMean"(%x) {opset = 17 : i64, node_attributes = {axes = array<i64: -1>}} : (tensor<?x2x8xf32>) -> tensor<?x2x1xf32>
  %3 = onnx.node "ReduceMean"(%x) {opset = 13 : i64, node_attributes = {axes = array<i64: 2, 1>, keepdims = 0 : i64}} : (tensor<?x2x8xf32>) -> tensor<?xf32>
  %4 = onnx.node "ReduceMax"(%x) {opset = 13 : i64, node_attributes = {axes = array<i64: 1>}} : (tensor<?x2x8xf32>) -> tensor<?x1x8xf32>
  %5 = onnx.node "ReduceMax"(%x, %a1) {opset = 18 : i64, node_attributes = {keepdims = 0 : i64}} : (tensor<?x2x8xf32>, tensor<1xi64>) -> tensor<?x8xf32>
  return %0, %1, %2, %3, %4, %5 : tensor<?x8xf32>, tensor<?x2x1xf32>, tensor<?x2x1xf32>, tensor<?xf32>, tensor<?x1x8xf32>, tensor<?x8xf32>
}

// -----

// A router in standard ops that the MoE patterns do not raise (no experts
// follow): Softmax (opset 11: axis 1 of a 2-d input is the last), TopK with
// k as an attribute (opset < 10) and as an input, GatherElements,
// ScatterElements and OneHot.
// CHECK-LABEL: func.func @router
// CHECK: %[[P:.+]] = moe.softmax %{{.+}} : tensor<?x8xf32>
// CHECK: %[[V:.+]], %[[I:.+]] = moe.topk %[[P]] {k = 2 : i64} : tensor<?x8xf32> -> tensor<?x2xf32>, tensor<?x2xi64>
// CHECK: %[[V9:.+]], %[[I9:.+]] = moe.topk %[[P]] {k = 3 : i64} : tensor<?x8xf32> -> tensor<?x3xf32>, tensor<?x3xi64>
// CHECK: %[[G:.+]] = moe.gather_elements %[[P]], %[[I]] {dim = 1 : i64} : tensor<?x8xf32>, tensor<?x2xi64> -> tensor<?x2xf32>
// CHECK: moe.scatter_elements %[[P]], %[[I]], %[[G]] {dim = 1 : i64} : tensor<?x8xf32>, tensor<?x2xi64>, tensor<?x2xf32> -> tensor<?x8xf32>
// CHECK: moe.one_hot %[[I9]] {off_value = 0.000000e+00 : f64, on_value = 1.000000e+00 : f64} : tensor<?x3xi64> -> tensor<?x3x8xf32>
// CHECK-NOT: onnx.
func.func @router(%x: tensor<?x8xf32>) -> (tensor<?x8xf32>, tensor<?x3x8xf32>, tensor<?x3xf32>) {
  %k = onnx.initializer "k" {value = dense<2> : tensor<1xi64>} : tensor<1xi64>
  %depth = onnx.initializer "depth" {value = dense<8> : tensor<i64>} : tensor<i64>
  %vals = onnx.initializer "vals" {value = dense<[0.0, 1.0]> : tensor<2xf32>} : tensor<2xf32>
  %p = onnx.node "Softmax"(%x) {opset = 11 : i64, node_attributes = {axis = 1 : i64}} : (tensor<?x8xf32>) -> tensor<?x8xf32>
  %v, %i = onnx.node "TopK"(%p, %k) {opset = 11 : i64} : (tensor<?x8xf32>, tensor<1xi64>) -> (tensor<?x2xf32>, tensor<?x2xi64>)
  %v9, %i9 = onnx.node "TopK"(%p) {opset = 9 : i64, node_attributes = {k = 3 : i64}} : (tensor<?x8xf32>) -> (tensor<?x3xf32>, tensor<?x3xi64>)
  %g = onnx.node "GatherElements"(%p, %i) {opset = 13 : i64, node_attributes = {axis = 1 : i64}} : (tensor<?x8xf32>, tensor<?x2xi64>) -> tensor<?x2xf32>
  %s = onnx.node "ScatterElements"(%p, %i, %g) {opset = 18 : i64, node_attributes = {axis = -1 : i64}} : (tensor<?x8xf32>, tensor<?x2xi64>, tensor<?x2xf32>) -> tensor<?x8xf32>
  %h = onnx.node "OneHot"(%i9, %depth, %vals) {opset = 11 : i64} : (tensor<?x3xi64>, tensor<i64>, tensor<2xf32>) -> tensor<?x3x8xf32>
  return %s, %h, %v9 : tensor<?x8xf32>, tensor<?x3x8xf32>, tensor<?x3xf32>
}

// -----

// Per-token matrices: a Transpose of non-token axes is moe.transpose, and a
// MatMul of two activations with the tokens first is moe.batch_matmul. A
// Transpose that restores the order it had is still one op per node.
// CHECK-LABEL: func.func @heads
// CHECK-SAME: (%[[H:.+]]: tensor<?x4x8xf32>)
// CHECK: %[[T:.+]] = moe.transpose %[[H]] {permutation = array<i64: 0, 2, 1>} : tensor<?x4x8xf32> -> tensor<?x8x4xf32>
// CHECK: %[[G:.+]] = moe.batch_matmul %[[H]], %[[T]] : tensor<?x4x8xf32>, tensor<?x8x4xf32> -> tensor<?x4x4xf32>
// CHECK: moe.batch_matmul %[[G]], %[[H]] : tensor<?x4x4xf32>, tensor<?x4x8xf32> -> tensor<?x4x8xf32>
// CHECK-NOT: onnx.
func.func @heads(%h: tensor<?x4x8xf32>) -> tensor<?x4x8xf32> {
  %t = onnx.node "Transpose"(%h) {opset = 21 : i64, node_attributes = {perm = array<i64: 0, 2, 1>}} : (tensor<?x4x8xf32>) -> tensor<?x8x4xf32>
  %g = onnx.node "MatMul"(%h, %t) {opset = 13 : i64} : (tensor<?x4x8xf32>, tensor<?x8x4xf32>) -> tensor<?x4x4xf32>
  %o = onnx.node "MatMul"(%g, %h) {opset = 13 : i64} : (tensor<?x4x4xf32>, tensor<?x4x8xf32>) -> tensor<?x4x8xf32>
  return %o : tensor<?x4x8xf32>
}
