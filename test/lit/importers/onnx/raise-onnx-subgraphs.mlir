// RUN: moec-onnx-opt %s --split-input-file --moec-raise-onnx-subgraphs | FileCheck %s

// RMSNorm as exported at opset 18 (ReduceMean takes its axes as an input):
// Pow, ReduceMean, Add, Sqrt, Div, Mul.
// CHECK-LABEL: func.func @rms_norm_opset18
// CHECK-SAME: (%[[X:.+]]: tensor<?x8xf32>)
// CHECK: %[[W:.+]] = moe.weight [#moe.tensor_ref<"model.onnx", "norm.weight">] stored tensor<8xf32> : tensor<8xf32>
// CHECK: %[[N:.+]] = moe.rms_norm %[[X]], %[[W]] {epsilon = 9.9999999999999995E-7 : f64} : tensor<?x8xf32>, tensor<8xf32> -> tensor<?x8xf32>
// CHECK-NOT: onnx.node
// CHECK: return %[[N]]
func.func @rms_norm_opset18(%x: tensor<?x8xf32>) -> tensor<?x8xf32> {
  %w = onnx.initializer "norm.weight" : tensor<8xf32>
  %two = onnx.initializer "two" {value = dense<2.0> : tensor<f32>} : tensor<f32>
  %axes = onnx.initializer "axes" {value = dense<-1> : tensor<1xi64>} : tensor<1xi64>
  %eps = onnx.initializer "eps" {value = dense<1.0e-06> : tensor<f32>} : tensor<f32>
  %0 = onnx.node "Pow"(%x, %two) {opset = 18 : i64} : (tensor<?x8xf32>, tensor<f32>) -> tensor<?x8xf32>
  %1 = onnx.node "ReduceMean"(%0, %axes) {opset = 18 : i64} : (tensor<?x8xf32>, tensor<1xi64>) -> tensor<?x1xf32>
  %2 = onnx.node "Add"(%1, %eps) {opset = 18 : i64} : (tensor<?x1xf32>, tensor<f32>) -> tensor<?x1xf32>
  %3 = onnx.node "Sqrt"(%2) {opset = 18 : i64} : (tensor<?x1xf32>) -> tensor<?x1xf32>
  %4 = onnx.node "Div"(%x, %3) {opset = 18 : i64} : (tensor<?x8xf32>, tensor<?x1xf32>) -> tensor<?x8xf32>
  %5 = onnx.node "Mul"(%4, %w) {opset = 18 : i64} : (tensor<?x8xf32>, tensor<8xf32>) -> tensor<?x8xf32>
  return %5 : tensor<?x8xf32>
}

// -----

// RMSNorm at opset 17 (axes as an attribute), squared by Mul(x, x), divided
// by Reciprocal(Sqrt), the weight first.
// CHECK-LABEL: func.func @rms_norm_opset17
// CHECK: moe.rms_norm %{{.+}}, %{{.+}} {epsilon = 1.000000e-05 : f64} : tensor<?x8xf32>, tensor<8xf32> -> tensor<?x8xf32>
// CHECK-NOT: onnx.node
func.func @rms_norm_opset17(%x: tensor<?x8xf32>) -> tensor<?x8xf32> {
  %w = onnx.initializer "norm.weight" : tensor<8xf32>
  %eps = onnx.initializer "eps" {value = dense<1.0e-05> : tensor<1xf32>} : tensor<1xf32>
  %0 = onnx.node "Mul"(%x, %x) {opset = 17 : i64} : (tensor<?x8xf32>, tensor<?x8xf32>) -> tensor<?x8xf32>
  %1 = onnx.node "ReduceMean"(%0) {opset = 17 : i64, node_attributes = {axes = array<i64: 1>}} : (tensor<?x8xf32>) -> tensor<?x1xf32>
  %2 = onnx.node "Add"(%eps, %1) {opset = 17 : i64} : (tensor<1xf32>, tensor<?x1xf32>) -> tensor<?x1xf32>
  %3 = onnx.node "Sqrt"(%2) {opset = 17 : i64} : (tensor<?x1xf32>) -> tensor<?x1xf32>
  %4 = onnx.node "Reciprocal"(%3) {opset = 17 : i64} : (tensor<?x1xf32>) -> tensor<?x1xf32>
  %5 = onnx.node "Mul"(%x, %4) {opset = 17 : i64} : (tensor<?x8xf32>, tensor<?x1xf32>) -> tensor<?x8xf32>
  %6 = onnx.node "Mul"(%w, %5) {opset = 17 : i64} : (tensor<8xf32>, tensor<?x8xf32>) -> tensor<?x8xf32>
  return %6 : tensor<?x8xf32>
}

// -----

// A mean over the token axis is not an RMSNorm: nothing is raised.
// CHECK-LABEL: func.func @not_rms_norm
// CHECK-NOT: moe.rms_norm
// CHECK: onnx.node "Mul"
func.func @not_rms_norm(%x: tensor<?x8xf32>) -> tensor<?x8xf32> {
  %w = onnx.initializer "norm.weight" : tensor<8xf32>
  %eps = onnx.initializer "eps" {value = dense<1.0e-05> : tensor<f32>} : tensor<f32>
  %0 = onnx.node "Mul"(%x, %x) {opset = 17 : i64} : (tensor<?x8xf32>, tensor<?x8xf32>) -> tensor<?x8xf32>
  %1 = onnx.node "ReduceMean"(%0) {opset = 17 : i64, node_attributes = {axes = array<i64: 0>}} : (tensor<?x8xf32>) -> tensor<1x8xf32>
  %2 = onnx.node "Add"(%1, %eps) {opset = 17 : i64} : (tensor<1x8xf32>, tensor<f32>) -> tensor<1x8xf32>
  %3 = onnx.node "Sqrt"(%2) {opset = 17 : i64} : (tensor<1x8xf32>) -> tensor<1x8xf32>
  %4 = onnx.node "Div"(%x, %3) {opset = 17 : i64} : (tensor<?x8xf32>, tensor<1x8xf32>) -> tensor<?x8xf32>
  %5 = onnx.node "Mul"(%4, %w) {opset = 17 : i64} : (tensor<?x8xf32>, tensor<8xf32>) -> tensor<?x8xf32>
  return %5 : tensor<?x8xf32>
}

// -----

// Rotate-half RoPE from cos/sin tables of theta = 100 (D = 4, 3 positions):
// x * cos[pos] + cat(-x[2:], x[:2]) * sin[pos].
// CHECK-LABEL: func.func @rope
// CHECK-SAME: (%[[X:.+]]: tensor<?x2x4xf32>, %[[POS:.+]]: tensor<?xi64>)
// CHECK: %[[R:.+]] = moe.rope %[[X]], %[[POS]] {theta = 1.000000e+02 : f64} : tensor<?x2x4xf32>, tensor<?xi64>
// CHECK-NOT: onnx.node
// CHECK: return %[[R]]
func.func @rope(%x: tensor<?x2x4xf32>, %pos: tensor<?xi64>) -> tensor<?x2x4xf32> {
  %cos = onnx.initializer "cos" {value = dense<[[1.0, 1.0, 1.0, 1.0], [0.540302306, 0.995004165, 0.540302306, 0.995004165], [-0.416146837, 0.980066578, -0.416146837, 0.980066578]]> : tensor<3x4xf32>} : tensor<3x4xf32>
  %sin = onnx.initializer "sin" {value = dense<[[0.0, 0.0, 0.0, 0.0], [0.841470985, 0.0998334166, 0.841470985, 0.0998334166], [0.909297427, 0.198669331, 0.909297427, 0.198669331]]> : tensor<3x4xf32>} : tensor<3x4xf32>
  %one = onnx.initializer "one" {value = dense<1> : tensor<1xi64>} : tensor<1xi64>
  %zero = onnx.initializer "zero" {value = dense<0> : tensor<1xi64>} : tensor<1xi64>
  %half = onnx.initializer "half" {value = dense<2> : tensor<1xi64>} : tensor<1xi64>
  %end = onnx.initializer "end" {value = dense<4> : tensor<1xi64>} : tensor<1xi64>
  %last = onnx.initializer "last" {value = dense<-1> : tensor<1xi64>} : tensor<1xi64>
  %c = onnx.node "Gather"(%cos, %pos) {opset = 21 : i64} : (tensor<3x4xf32>, tensor<?xi64>) -> tensor<?x4xf32>
  %cu = onnx.node "Unsqueeze"(%c, %one) {opset = 21 : i64} : (tensor<?x4xf32>, tensor<1xi64>) -> tensor<?x1x4xf32>
  %s = onnx.node "Gather"(%sin, %pos) {opset = 21 : i64} : (tensor<3x4xf32>, tensor<?xi64>) -> tensor<?x4xf32>
  %su = onnx.node "Unsqueeze"(%s, %one) {opset = 21 : i64} : (tensor<?x4xf32>, tensor<1xi64>) -> tensor<?x1x4xf32>
  %x1 = onnx.node "Slice"(%x, %zero, %half, %last) {opset = 21 : i64} : (tensor<?x2x4xf32>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<?x2x2xf32>
  %x2 = onnx.node "Slice"(%x, %half, %end, %last) {opset = 21 : i64} : (tensor<?x2x4xf32>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<?x2x2xf32>
  %n = onnx.node "Neg"(%x2) {opset = 21 : i64} : (tensor<?x2x2xf32>) -> tensor<?x2x2xf32>
  %rot = onnx.node "Concat"(%n, %x1) {opset = 21 : i64, node_attributes = {axis = -1 : i64}} : (tensor<?x2x2xf32>, tensor<?x2x2xf32>) -> tensor<?x2x4xf32>
  %a = onnx.node "Mul"(%x, %cu) {opset = 21 : i64} : (tensor<?x2x4xf32>, tensor<?x1x4xf32>) -> tensor<?x2x4xf32>
  %b = onnx.node "Mul"(%su, %rot) {opset = 21 : i64} : (tensor<?x1x4xf32>, tensor<?x2x4xf32>) -> tensor<?x2x4xf32>
  %r = onnx.node "Add"(%b, %a) {opset = 21 : i64} : (tensor<?x2x4xf32>, tensor<?x2x4xf32>) -> tensor<?x2x4xf32>
  return %r : tensor<?x2x4xf32>
}

// -----

// Tables that are not cos/sin(p * theta^(-2i/D)) are left alone.
// CHECK-LABEL: func.func @not_rope
// CHECK-NOT: moe.rope
// CHECK: onnx.node "Add"
func.func @not_rope(%x: tensor<?x2x4xf32>, %pos: tensor<?xi64>) -> tensor<?x2x4xf32> {
  %cos = onnx.initializer "cos" {value = dense<[[1.0, 1.0, 1.0, 1.0], [0.5, 0.9, 0.5, 0.9], [0.1, 0.2, 0.3, 0.4]]> : tensor<3x4xf32>} : tensor<3x4xf32>
  %sin = onnx.initializer "sin" {value = dense<[[0.0, 0.0, 0.0, 0.0], [0.8, 0.1, 0.8, 0.1], [0.9, 0.2, 0.9, 0.2]]> : tensor<3x4xf32>} : tensor<3x4xf32>
  %one = onnx.initializer "one" {value = dense<1> : tensor<1xi64>} : tensor<1xi64>
  %zero = onnx.initializer "zero" {value = dense<0> : tensor<1xi64>} : tensor<1xi64>
  %half = onnx.initializer "half" {value = dense<2> : tensor<1xi64>} : tensor<1xi64>
  %end = onnx.initializer "end" {value = dense<4> : tensor<1xi64>} : tensor<1xi64>
  %last = onnx.initializer "last" {value = dense<-1> : tensor<1xi64>} : tensor<1xi64>
  %c = onnx.node "Gather"(%cos, %pos) {opset = 21 : i64} : (tensor<3x4xf32>, tensor<?xi64>) -> tensor<?x4xf32>
  %cu = onnx.node "Unsqueeze"(%c, %one) {opset = 21 : i64} : (tensor<?x4xf32>, tensor<1xi64>) -> tensor<?x1x4xf32>
  %s = onnx.node "Gather"(%sin, %pos) {opset = 21 : i64} : (tensor<3x4xf32>, tensor<?xi64>) -> tensor<?x4xf32>
  %su = onnx.node "Unsqueeze"(%s, %one) {opset = 21 : i64} : (tensor<?x4xf32>, tensor<1xi64>) -> tensor<?x1x4xf32>
  %x1 = onnx.node "Slice"(%x, %zero, %half, %last) {opset = 21 : i64} : (tensor<?x2x4xf32>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<?x2x2xf32>
  %x2 = onnx.node "Slice"(%x, %half, %end, %last) {opset = 21 : i64} : (tensor<?x2x4xf32>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<?x2x2xf32>
  %n = onnx.node "Neg"(%x2) {opset = 21 : i64} : (tensor<?x2x2xf32>) -> tensor<?x2x2xf32>
  %rot = onnx.node "Concat"(%n, %x1) {opset = 21 : i64, node_attributes = {axis = -1 : i64}} : (tensor<?x2x2xf32>, tensor<?x2x2xf32>) -> tensor<?x2x4xf32>
  %a = onnx.node "Mul"(%x, %cu) {opset = 21 : i64} : (tensor<?x2x4xf32>, tensor<?x1x4xf32>) -> tensor<?x2x4xf32>
  %b = onnx.node "Mul"(%rot, %su) {opset = 21 : i64} : (tensor<?x2x4xf32>, tensor<?x1x4xf32>) -> tensor<?x2x4xf32>
  %r = onnx.node "Add"(%a, %b) {opset = 21 : i64} : (tensor<?x2x4xf32>, tensor<?x2x4xf32>) -> tensor<?x2x4xf32>
  return %r : tensor<?x2x4xf32>
}

// -----

// Multi-head attention without a mask, scaled by Div: not causal.
// CHECK-LABEL: func.func @attention_mha
// CHECK-SAME: (%[[Q:.+]]: tensor<?x2x4xf32>, %[[K:.+]]: tensor<?x2x4xf32>, %[[V:.+]]: tensor<?x2x4xf32>)
// CHECK: %[[O:.+]] = moe.attention %[[Q]], %[[K]], %[[V]] {scale = 5.000000e-01 : f64} : tensor<?x2x4xf32>, tensor<?x2x4xf32>, tensor<?x2x4xf32> -> tensor<?x2x4xf32>
// CHECK-NOT: onnx.node
// CHECK: return %[[O]]
func.func @attention_mha(%q: tensor<?x2x4xf32>, %k: tensor<?x2x4xf32>, %v: tensor<?x2x4xf32>) -> tensor<?x2x4xf32> {
  %two = onnx.initializer "two" {value = dense<2.0> : tensor<f32>} : tensor<f32>
  %qt = onnx.node "Transpose"(%q) {opset = 21 : i64, node_attributes = {perm = array<i64: 1, 0, 2>}} : (tensor<?x2x4xf32>) -> tensor<2x?x4xf32>
  %kt = onnx.node "Transpose"(%k) {opset = 21 : i64, node_attributes = {perm = array<i64: 1, 2, 0>}} : (tensor<?x2x4xf32>) -> tensor<2x4x?xf32>
  %vt = onnx.node "Transpose"(%v) {opset = 21 : i64, node_attributes = {perm = array<i64: 1, 0, 2>}} : (tensor<?x2x4xf32>) -> tensor<2x?x4xf32>
  %s = onnx.node "MatMul"(%qt, %kt) {opset = 21 : i64} : (tensor<2x?x4xf32>, tensor<2x4x?xf32>) -> tensor<2x?x?xf32>
  %d = onnx.node "Div"(%s, %two) {opset = 21 : i64} : (tensor<2x?x?xf32>, tensor<f32>) -> tensor<2x?x?xf32>
  %p = onnx.node "Softmax"(%d) {opset = 21 : i64, node_attributes = {axis = -1 : i64}} : (tensor<2x?x?xf32>) -> tensor<2x?x?xf32>
  %o = onnx.node "MatMul"(%p, %vt) {opset = 21 : i64} : (tensor<2x?x?xf32>, tensor<2x?x4xf32>) -> tensor<2x?x4xf32>
  %ot = onnx.node "Transpose"(%o) {opset = 21 : i64, node_attributes = {perm = array<i64: 1, 0, 2>}} : (tensor<2x?x4xf32>) -> tensor<?x2x4xf32>
  return %ot : tensor<?x2x4xf32>
}

// -----

// The standard-op MoE block without renormalisation (Qwen3-MoE with
// norm_topk_prob = false), its expert outputs summed by one Sum node, its
// per-expert weights already in [out, in] through Transpose nodes.
// CHECK-LABEL: func.func @moe_no_renorm
// CHECK-SAME: (%[[X:.+]]: tensor<?x8xf32>)
// CHECK-DAG: %[[G:.+]] = moe.weight [#moe.tensor_ref<"model.onnx", "gate">] stored tensor<2x8xf32> : tensor<2x8xf32>
// CHECK-DAG: %[[W1:.+]] = moe.weight [#moe.tensor_ref<"model.onnx", "e0.w1">, #moe.tensor_ref<"model.onnx", "e1.w1">] stored tensor<4x8xf32> {transforms = [#moe.stack]} : tensor<2x4x8xf32>
// CHECK-DAG: %[[W3:.+]] = moe.weight [#moe.tensor_ref<"model.onnx", "e0.w3">, #moe.tensor_ref<"model.onnx", "e1.w3">] stored tensor<4x8xf32> {transforms = [#moe.stack]} : tensor<2x4x8xf32>
// CHECK-DAG: %[[W2:.+]] = moe.weight [#moe.tensor_ref<"model.onnx", "e0.w2">, #moe.tensor_ref<"model.onnx", "e1.w2">] stored tensor<8x4xf32> {transforms = [#moe.stack]} : tensor<2x8x4xf32>
// CHECK: %[[Y:.+]] = moe.moe %[[X]] router %[[G]] experts %[[W1]], %[[W3]], %[[W2]] {routing = #moe.routing<scoring = softmax, k = 1>}
// CHECK-NOT: onnx.node
// CHECK: return %[[Y]]
func.func @moe_no_renorm(%x: tensor<?x8xf32>) -> tensor<?x8xf32> {
  %gate = onnx.initializer "gate" : tensor<2x8xf32>
  %k = onnx.initializer "k" {value = dense<1> : tensor<1xi64>} : tensor<1xi64>
  %e0 = onnx.initializer "e0" {value = dense<0> : tensor<1xi64>} : tensor<1xi64>
  %e1 = onnx.initializer "e1" {value = dense<1> : tensor<1xi64>} : tensor<1xi64>
  %e2 = onnx.initializer "e2" {value = dense<2> : tensor<1xi64>} : tensor<1xi64>
  %axis = onnx.initializer "axis" {value = dense<1> : tensor<1xi64>} : tensor<1xi64>
  %a0 = onnx.initializer "e0.w1" : tensor<4x8xf32>
  %b0 = onnx.initializer "e0.w3" : tensor<4x8xf32>
  %c0 = onnx.initializer "e0.w2" : tensor<8x4xf32>
  %a1 = onnx.initializer "e1.w1" : tensor<4x8xf32>
  %b1 = onnx.initializer "e1.w3" : tensor<4x8xf32>
  %c1 = onnx.initializer "e1.w2" : tensor<8x4xf32>
  %gt = onnx.node "Transpose"(%gate) {opset = 21 : i64} : (tensor<2x8xf32>) -> tensor<8x2xf32>
  %logits = onnx.node "MatMul"(%x, %gt) {opset = 21 : i64} : (tensor<?x8xf32>, tensor<8x2xf32>) -> tensor<?x2xf32>
  %p = onnx.node "Softmax"(%logits) {opset = 21 : i64, node_attributes = {axis = -1 : i64}} : (tensor<?x2xf32>) -> tensor<?x2xf32>
  %v, %i = onnx.node "TopK"(%p, %k) {opset = 21 : i64, node_attributes = {axis = -1 : i64}} : (tensor<?x2xf32>, tensor<1xi64>) -> (tensor<?x1xf32>, tensor<?x1xi64>)
  %shape = onnx.node "Shape"(%p) {opset = 21 : i64} : (tensor<?x2xf32>) -> tensor<2xi64>
  %zeros = onnx.node "ConstantOfShape"(%shape) {opset = 21 : i64} : (tensor<2xi64>) -> tensor<?x2xf32>
  %dense = onnx.node "ScatterElements"(%zeros, %i, %v) {opset = 21 : i64, node_attributes = {axis = 1 : i64}} : (tensor<?x2xf32>, tensor<?x1xi64>, tensor<?x1xf32>) -> tensor<?x2xf32>
  %w0 = onnx.node "Slice"(%dense, %e0, %e1, %axis) {opset = 21 : i64} : (tensor<?x2xf32>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<?x1xf32>
  %w1 = onnx.node "Slice"(%dense, %e1, %e2, %axis) {opset = 21 : i64} : (tensor<?x2xf32>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<?x1xf32>
  %ta0 = onnx.node "Transpose"(%a0) {opset = 21 : i64} : (tensor<4x8xf32>) -> tensor<8x4xf32>
  %tb0 = onnx.node "Transpose"(%b0) {opset = 21 : i64} : (tensor<4x8xf32>) -> tensor<8x4xf32>
  %tc0 = onnx.node "Transpose"(%c0) {opset = 21 : i64} : (tensor<8x4xf32>) -> tensor<4x8xf32>
  %g0 = onnx.node "MatMul"(%x, %ta0) {opset = 21 : i64} : (tensor<?x8xf32>, tensor<8x4xf32>) -> tensor<?x4xf32>
  %u0 = onnx.node "MatMul"(%x, %tb0) {opset = 21 : i64} : (tensor<?x8xf32>, tensor<8x4xf32>) -> tensor<?x4xf32>
  %s0 = onnx.node "Sigmoid"(%g0) {opset = 21 : i64} : (tensor<?x4xf32>) -> tensor<?x4xf32>
  %l0 = onnx.node "Mul"(%s0, %g0) {opset = 21 : i64} : (tensor<?x4xf32>, tensor<?x4xf32>) -> tensor<?x4xf32>
  %h0 = onnx.node "Mul"(%u0, %l0) {opset = 21 : i64} : (tensor<?x4xf32>, tensor<?x4xf32>) -> tensor<?x4xf32>
  %o0 = onnx.node "MatMul"(%h0, %tc0) {opset = 21 : i64} : (tensor<?x4xf32>, tensor<4x8xf32>) -> tensor<?x8xf32>
  %y0 = onnx.node "Mul"(%w0, %o0) {opset = 21 : i64} : (tensor<?x1xf32>, tensor<?x8xf32>) -> tensor<?x8xf32>
  %ta1 = onnx.node "Transpose"(%a1) {opset = 21 : i64} : (tensor<4x8xf32>) -> tensor<8x4xf32>
  %tb1 = onnx.node "Transpose"(%b1) {opset = 21 : i64} : (tensor<4x8xf32>) -> tensor<8x4xf32>
  %tc1 = onnx.node "Transpose"(%c1) {opset = 21 : i64} : (tensor<8x4xf32>) -> tensor<4x8xf32>
  %g1 = onnx.node "MatMul"(%x, %ta1) {opset = 21 : i64} : (tensor<?x8xf32>, tensor<8x4xf32>) -> tensor<?x4xf32>
  %u1 = onnx.node "MatMul"(%x, %tb1) {opset = 21 : i64} : (tensor<?x8xf32>, tensor<8x4xf32>) -> tensor<?x4xf32>
  %s1 = onnx.node "Sigmoid"(%g1) {opset = 21 : i64} : (tensor<?x4xf32>) -> tensor<?x4xf32>
  %l1 = onnx.node "Mul"(%g1, %s1) {opset = 21 : i64} : (tensor<?x4xf32>, tensor<?x4xf32>) -> tensor<?x4xf32>
  %h1 = onnx.node "Mul"(%l1, %u1) {opset = 21 : i64} : (tensor<?x4xf32>, tensor<?x4xf32>) -> tensor<?x4xf32>
  %o1 = onnx.node "MatMul"(%h1, %tc1) {opset = 21 : i64} : (tensor<?x4xf32>, tensor<4x8xf32>) -> tensor<?x8xf32>
  %y1 = onnx.node "Mul"(%o1, %w1) {opset = 21 : i64} : (tensor<?x8xf32>, tensor<?x1xf32>) -> tensor<?x8xf32>
  %y = onnx.node "Sum"(%y0, %y1) {opset = 21 : i64} : (tensor<?x8xf32>, tensor<?x8xf32>) -> tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}

// -----

// TopK over the logits, then a Softmax of the k values (softmax over the
// selected experts: renormalised softmax routing), scalar Gather picks.
// CHECK-LABEL: func.func @moe_topk_then_softmax
// CHECK: moe.moe %{{.+}} router %{{.+}} experts %{{.+}}, %{{.+}}, %{{.+}} {routing = #moe.routing<scoring = softmax, k = 2, norm_topk_prob = true>}
// CHECK-NOT: onnx.node
func.func @moe_topk_then_softmax(%x: tensor<?x8xf32>) -> tensor<?x8xf32> {
  %gate = onnx.initializer "gate" : tensor<8x3xf32>
  %k = onnx.initializer "k" {value = dense<2> : tensor<1xi64>} : tensor<1xi64>
  %e0 = onnx.initializer "e0" {value = dense<0> : tensor<i64>} : tensor<i64>
  %e1 = onnx.initializer "e1" {value = dense<1> : tensor<i64>} : tensor<i64>
  %e2 = onnx.initializer "e2" {value = dense<2> : tensor<i64>} : tensor<i64>
  %axis = onnx.initializer "axis" {value = dense<1> : tensor<1xi64>} : tensor<1xi64>
  %zero = onnx.initializer "zero" {value = dense<0.0> : tensor<f32>} : tensor<f32>
  %logits = onnx.node "MatMul"(%x, %gate) {opset = 21 : i64} : (tensor<?x8xf32>, tensor<8x3xf32>) -> tensor<?x3xf32>
  %v, %i = onnx.node "TopK"(%logits, %k) {opset = 21 : i64} : (tensor<?x3xf32>, tensor<1xi64>) -> (tensor<?x2xf32>, tensor<?x2xi64>)
  %p = onnx.node "Softmax"(%v) {opset = 21 : i64} : (tensor<?x2xf32>) -> tensor<?x2xf32>
  %shape = onnx.node "Shape"(%logits) {opset = 21 : i64} : (tensor<?x3xf32>) -> tensor<2xi64>
  %zeros = onnx.node "Expand"(%zero, %shape) {opset = 21 : i64} : (tensor<f32>, tensor<2xi64>) -> tensor<?x3xf32>
  %dense = onnx.node "ScatterElements"(%zeros, %i, %p) {opset = 21 : i64, node_attributes = {axis = -1 : i64}} : (tensor<?x3xf32>, tensor<?x2xi64>, tensor<?x2xf32>) -> tensor<?x3xf32>
  %a0 = onnx.initializer "e0.w1" : tensor<8x4xf32>
  %b0 = onnx.initializer "e0.w3" : tensor<8x4xf32>
  %c0 = onnx.initializer "e0.w2" : tensor<4x8xf32>
  %q0 = onnx.node "Gather"(%dense, %e0) {opset = 21 : i64, node_attributes = {axis = 1 : i64}} : (tensor<?x3xf32>, tensor<i64>) -> tensor<?xf32>
  %r0 = onnx.node "Unsqueeze"(%q0, %axis) {opset = 21 : i64} : (tensor<?xf32>, tensor<1xi64>) -> tensor<?x1xf32>
  %g0 = onnx.node "MatMul"(%x, %a0) {opset = 21 : i64} : (tensor<?x8xf32>, tensor<8x4xf32>) -> tensor<?x4xf32>
  %u0 = onnx.node "MatMul"(%x, %b0) {opset = 21 : i64} : (tensor<?x8xf32>, tensor<8x4xf32>) -> tensor<?x4xf32>
  %s0 = onnx.node "Sigmoid"(%g0) {opset = 21 : i64} : (tensor<?x4xf32>) -> tensor<?x4xf32>
  %l0 = onnx.node "Mul"(%g0, %s0) {opset = 21 : i64} : (tensor<?x4xf32>, tensor<?x4xf32>) -> tensor<?x4xf32>
  %h0 = onnx.node "Mul"(%l0, %u0) {opset = 21 : i64} : (tensor<?x4xf32>, tensor<?x4xf32>) -> tensor<?x4xf32>
  %o0 = onnx.node "MatMul"(%h0, %c0) {opset = 21 : i64} : (tensor<?x4xf32>, tensor<4x8xf32>) -> tensor<?x8xf32>
  %y0 = onnx.node "Mul"(%o0, %r0) {opset = 21 : i64} : (tensor<?x8xf32>, tensor<?x1xf32>) -> tensor<?x8xf32>
  %a1 = onnx.initializer "e1.w1" : tensor<8x4xf32>
  %b1 = onnx.initializer "e1.w3" : tensor<8x4xf32>
  %c1 = onnx.initializer "e1.w2" : tensor<4x8xf32>
  %q1 = onnx.node "Gather"(%dense, %e1) {opset = 21 : i64, node_attributes = {axis = 1 : i64}} : (tensor<?x3xf32>, tensor<i64>) -> tensor<?xf32>
  %r1 = onnx.node "Unsqueeze"(%q1, %axis) {opset = 21 : i64} : (tensor<?xf32>, tensor<1xi64>) -> tensor<?x1xf32>
  %g1 = onnx.node "MatMul"(%x, %a1) {opset = 21 : i64} : (tensor<?x8xf32>, tensor<8x4xf32>) -> tensor<?x4xf32>
  %u1 = onnx.node "MatMul"(%x, %b1) {opset = 21 : i64} : (tensor<?x8xf32>, tensor<8x4xf32>) -> tensor<?x4xf32>
  %s1 = onnx.node "Sigmoid"(%g1) {opset = 21 : i64} : (tensor<?x4xf32>) -> tensor<?x4xf32>
  %l1 = onnx.node "Mul"(%g1, %s1) {opset = 21 : i64} : (tensor<?x4xf32>, tensor<?x4xf32>) -> tensor<?x4xf32>
  %h1 = onnx.node "Mul"(%l1, %u1) {opset = 21 : i64} : (tensor<?x4xf32>, tensor<?x4xf32>) -> tensor<?x4xf32>
  %o1 = onnx.node "MatMul"(%h1, %c1) {opset = 21 : i64} : (tensor<?x4xf32>, tensor<4x8xf32>) -> tensor<?x8xf32>
  %y1 = onnx.node "Mul"(%o1, %r1) {opset = 21 : i64} : (tensor<?x8xf32>, tensor<?x1xf32>) -> tensor<?x8xf32>
  %a2 = onnx.initializer "e2.w1" : tensor<8x4xf32>
  %b2 = onnx.initializer "e2.w3" : tensor<8x4xf32>
  %c2 = onnx.initializer "e2.w2" : tensor<4x8xf32>
  %q2 = onnx.node "Gather"(%dense, %e2) {opset = 21 : i64, node_attributes = {axis = 1 : i64}} : (tensor<?x3xf32>, tensor<i64>) -> tensor<?xf32>
  %r2 = onnx.node "Unsqueeze"(%q2, %axis) {opset = 21 : i64} : (tensor<?xf32>, tensor<1xi64>) -> tensor<?x1xf32>
  %g2 = onnx.node "MatMul"(%x, %a2) {opset = 21 : i64} : (tensor<?x8xf32>, tensor<8x4xf32>) -> tensor<?x4xf32>
  %u2 = onnx.node "MatMul"(%x, %b2) {opset = 21 : i64} : (tensor<?x8xf32>, tensor<8x4xf32>) -> tensor<?x4xf32>
  %s2 = onnx.node "Sigmoid"(%g2) {opset = 21 : i64} : (tensor<?x4xf32>) -> tensor<?x4xf32>
  %l2 = onnx.node "Mul"(%g2, %s2) {opset = 21 : i64} : (tensor<?x4xf32>, tensor<?x4xf32>) -> tensor<?x4xf32>
  %h2 = onnx.node "Mul"(%l2, %u2) {opset = 21 : i64} : (tensor<?x4xf32>, tensor<?x4xf32>) -> tensor<?x4xf32>
  %o2 = onnx.node "MatMul"(%h2, %c2) {opset = 21 : i64} : (tensor<?x4xf32>, tensor<4x8xf32>) -> tensor<?x8xf32>
  %y2 = onnx.node "Mul"(%o2, %r2) {opset = 21 : i64} : (tensor<?x8xf32>, tensor<?x1xf32>) -> tensor<?x8xf32>
  %s01 = onnx.node "Add"(%y0, %y1) {opset = 21 : i64} : (tensor<?x8xf32>, tensor<?x8xf32>) -> tensor<?x8xf32>
  %y = onnx.node "Add"(%y2, %s01) {opset = 21 : i64} : (tensor<?x8xf32>, tensor<?x8xf32>) -> tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}

// -----

// com.microsoft.MoE with separate fc1 (gate) and fc3 (up) weights
// (swiglu_fusion = 0), the router a Gemm with transB = 1.
// CHECK-LABEL: func.func @contrib_moe_unfused
// CHECK-SAME: (%[[X:.+]]: tensor<?x8xf32>)
// CHECK-DAG: %[[G:.+]] = moe.weight [#moe.tensor_ref<"model.onnx", "gate">] stored tensor<4x8xf32> : tensor<4x8xf32>
// CHECK-DAG: %[[FC1:.+]] = moe.weight [#moe.tensor_ref<"model.onnx", "fc1">] stored tensor<4x2x8xf32> : tensor<4x2x8xf32>
// CHECK-DAG: %[[FC3:.+]] = moe.weight [#moe.tensor_ref<"model.onnx", "fc3">] stored tensor<4x2x8xf32> : tensor<4x2x8xf32>
// CHECK-DAG: %[[FC2:.+]] = moe.weight [#moe.tensor_ref<"model.onnx", "fc2">] stored tensor<4x8x2xf32> : tensor<4x8x2xf32>
// CHECK: moe.moe %[[X]] router %[[G]] experts %[[FC1]], %[[FC3]], %[[FC2]] {routing = #moe.routing<scoring = softmax, k = 2>}
// CHECK-NOT: onnx.node
func.func @contrib_moe_unfused(%x: tensor<?x8xf32>) -> tensor<?x8xf32> {
  %none = onnx.none : none
  %gate = onnx.initializer "gate" : tensor<4x8xf32>
  %fc1 = onnx.initializer "fc1" : tensor<4x2x8xf32>
  %fc2 = onnx.initializer "fc2" : tensor<4x8x2xf32>
  %fc3 = onnx.initializer "fc3" : tensor<4x2x8xf32>
  %logits = onnx.node "Gemm"(%x, %gate) {opset = 21 : i64, node_attributes = {transB = 1 : i64}} : (tensor<?x8xf32>, tensor<4x8xf32>) -> tensor<?x4xf32>
  %y = onnx.node "MoE"(%x, %logits, %fc1, %none, %fc2, %none, %fc3) {domain = "com.microsoft", opset = 1 : i64, node_attributes = {activation_type = "swiglu", k = 2 : i64, swiglu_fusion = 0 : i64}} : (tensor<?x8xf32>, tensor<?x4xf32>, tensor<4x2x8xf32>, none, tensor<4x8x2xf32>, none, tensor<4x2x8xf32>) -> tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}

// -----

// com.microsoft.MoE with fc1 = [gate | up] rows (swiglu_fusion = 2): each
// half is a slice of the flattened expert weight.
// CHECK-LABEL: func.func @contrib_moe_concatenated
// CHECK: %[[FC1:.+]] = moe.weight [#moe.tensor_ref<"model.onnx", "fc1">] stored tensor<4x4x8xf32> : tensor<4x4x8xf32>
// CHECK: %[[FLAT:.+]] = moe.reshape %[[FC1]] : tensor<4x4x8xf32> -> tensor<4x32xf32>
// CHECK: %[[G:.+]] = moe.slice %[[FLAT]] {offset = 0 : i64} : tensor<4x32xf32> -> tensor<4x16xf32>
// CHECK: %[[GATE:.+]] = moe.reshape %[[G]] : tensor<4x16xf32> -> tensor<4x2x8xf32>
// CHECK: %[[U:.+]] = moe.slice %[[FLAT]] {offset = 16 : i64} : tensor<4x32xf32> -> tensor<4x16xf32>
// CHECK: %[[UP:.+]] = moe.reshape %[[U]] : tensor<4x16xf32> -> tensor<4x2x8xf32>
// CHECK: moe.moe %{{.+}} router %{{.+}} experts %[[GATE]], %[[UP]], %{{.+}} {routing = #moe.routing<scoring = softmax, k = 1, norm_topk_prob = true>}
func.func @contrib_moe_concatenated(%x: tensor<?x8xf32>) -> tensor<?x8xf32> {
  %none = onnx.none : none
  %gate = onnx.initializer "gate" : tensor<8x4xf32>
  %fc1 = onnx.initializer "fc1" : tensor<4x4x8xf32>
  %fc2 = onnx.initializer "fc2" : tensor<4x8x2xf32>
  %logits = onnx.node "MatMul"(%x, %gate) {opset = 21 : i64} : (tensor<?x8xf32>, tensor<8x4xf32>) -> tensor<?x4xf32>
  %y = onnx.node "MoE"(%x, %logits, %fc1, %none, %fc2) {domain = "com.microsoft", opset = 1 : i64, node_attributes = {activation_type = "swiglu", swiglu_fusion = 2 : i64, normalize_routing_weights = 1 : i64}} : (tensor<?x8xf32>, tensor<?x4xf32>, tensor<4x4x8xf32>, none, tensor<4x8x2xf32>) -> tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}

// -----

// An activation other than SwiGLU (or a clamped SwiGLU) has no moe.moe
// equivalent: the node stays.
// CHECK-LABEL: func.func @contrib_moe_relu
// CHECK-NOT: moe.moe
// CHECK: onnx.node "MoE"
// CHECK-NOT: moe.moe
// CHECK: onnx.node "MoE"
func.func @contrib_moe_relu(%x: tensor<?x8xf32>) -> (tensor<?x8xf32>, tensor<?x8xf32>) {
  %none = onnx.none : none
  %gate = onnx.initializer "gate" : tensor<8x4xf32>
  %fc1 = onnx.initializer "fc1" : tensor<4x4x8xf32>
  %fc2 = onnx.initializer "fc2" : tensor<4x8x2xf32>
  %fc2b = onnx.initializer "fc2b" : tensor<4x8x4xf32>
  %logits = onnx.node "MatMul"(%x, %gate) {opset = 21 : i64} : (tensor<?x8xf32>, tensor<8x4xf32>) -> tensor<?x4xf32>
  %y = onnx.node "MoE"(%x, %logits, %fc1, %none, %fc2b) {domain = "com.microsoft", opset = 1 : i64, node_attributes = {activation_type = "relu"}} : (tensor<?x8xf32>, tensor<?x4xf32>, tensor<4x4x8xf32>, none, tensor<4x8x4xf32>) -> tensor<?x8xf32>
  %z = onnx.node "MoE"(%x, %logits, %fc1, %none, %fc2) {domain = "com.microsoft", opset = 1 : i64, node_attributes = {activation_type = "swiglu", swiglu_fusion = 1 : i64, swiglu_limit = 7.0 : f32}} : (tensor<?x8xf32>, tensor<?x4xf32>, tensor<4x4x8xf32>, none, tensor<4x8x2xf32>) -> tensor<?x8xf32>
  return %y, %z : tensor<?x8xf32>, tensor<?x8xf32>
}

// -----

// QMoE with fp8 weights and no router_weights: softmax over the logits, the
// weights dequantized from their 128x128 block scales. A Mul by 2 after it
// is the routed scaling factor; a gated SwiGLU MLP added to it is a
// Qwen2-MoE shared expert.
// CHECK-LABEL: func.func @qmoe_scaled_shared
// CHECK-SAME: (%[[X:.+]]: tensor<?x8xf32>)
// CHECK: %[[Q1:.+]], %[[S1:.+]] = moe.weight [#moe.tensor_ref<"model.onnx", "fc1">] stored tensor<4x4x8xf8E4M3FN> scales [#moe.tensor_ref<"model.onnx", "fc1.scales">] {stored_scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<4x4x8xf8E4M3FN>, tensor<4x1x1xf32>
// CHECK: moe.dequantize %[[Q1]], %[[S1]] {scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<4x4x8xf8E4M3FN>, tensor<4x1x1xf32> -> tensor<4x4x8xf32>
// CHECK-DAG: %[[SG:.+]] = moe.weight [#moe.tensor_ref<"model.onnx", "shared.gate">] stored tensor<8x1xf32> {transforms = [#moe.transpose]} : tensor<1x8xf32>
// CHECK-DAG: %[[S1W:.+]] = moe.weight [#moe.tensor_ref<"model.onnx", "shared.w1">] stored tensor<8x6xf32> {transforms = [#moe.transpose]} : tensor<6x8xf32>
// CHECK: %[[Y:.+]] = moe.moe %[[X]] router %{{.+}} experts %{{.+}}, %{{.+}}, %{{.+}} shared %[[S1W]], %{{.+}}, %{{.+}} shared_gate %[[SG]] {routing = #moe.routing<scoring = softmax, k = 2, norm_topk_prob = true, routed_scaling_factor = 2.000000e+00>}
// CHECK-NOT: onnx.node
// CHECK: return %[[Y]]
func.func @qmoe_scaled_shared(%x: tensor<?x8xf32>) -> tensor<?x8xf32> {
  %none = onnx.none : none
  %gate = onnx.initializer "gate" : tensor<8x4xf32>
  %fc1 = onnx.initializer "fc1" : tensor<4x4x8xf8E4M3FN>
  %fc1s = onnx.initializer "fc1.scales" : tensor<4x1x1xf32>
  %fc2 = onnx.initializer "fc2" : tensor<4x8x2xf8E4M3FN>
  %fc2s = onnx.initializer "fc2.scales" : tensor<4x1x1xf32>
  %two = onnx.initializer "two" {value = dense<2.0> : tensor<f32>} : tensor<f32>
  %sg = onnx.initializer "shared.gate" : tensor<8x1xf32>
  %s1 = onnx.initializer "shared.w1" : tensor<8x6xf32>
  %s3 = onnx.initializer "shared.w3" : tensor<8x6xf32>
  %s2 = onnx.initializer "shared.w2" : tensor<6x8xf32>
  %logits = onnx.node "MatMul"(%x, %gate) {opset = 21 : i64} : (tensor<?x8xf32>, tensor<8x4xf32>) -> tensor<?x4xf32>
  %routed = onnx.node "QMoE"(%x, %logits, %fc1, %fc1s, %none, %fc2, %fc2s) {domain = "com.microsoft", opset = 1 : i64, node_attributes = {activation_type = "swiglu", swiglu_fusion = 1 : i64, k = 2 : i64, normalize_routing_weights = 1 : i64, quant_type = "fp8", block_size = 128 : i64, expert_weight_bits = 8 : i64}} : (tensor<?x8xf32>, tensor<?x4xf32>, tensor<4x4x8xf8E4M3FN>, tensor<4x1x1xf32>, none, tensor<4x8x2xf8E4M3FN>, tensor<4x1x1xf32>) -> tensor<?x8xf32>
  %scaled = onnx.node "Mul"(%two, %routed) {opset = 21 : i64} : (tensor<f32>, tensor<?x8xf32>) -> tensor<?x8xf32>
  %g = onnx.node "MatMul"(%x, %s1) {opset = 21 : i64} : (tensor<?x8xf32>, tensor<8x6xf32>) -> tensor<?x6xf32>
  %u = onnx.node "MatMul"(%x, %s3) {opset = 21 : i64} : (tensor<?x8xf32>, tensor<8x6xf32>) -> tensor<?x6xf32>
  %sig = onnx.node "Sigmoid"(%g) {opset = 21 : i64} : (tensor<?x6xf32>) -> tensor<?x6xf32>
  %silu = onnx.node "Mul"(%g, %sig) {opset = 21 : i64} : (tensor<?x6xf32>, tensor<?x6xf32>) -> tensor<?x6xf32>
  %act = onnx.node "Mul"(%silu, %u) {opset = 21 : i64} : (tensor<?x6xf32>, tensor<?x6xf32>) -> tensor<?x6xf32>
  %mlp = onnx.node "MatMul"(%act, %s2) {opset = 21 : i64} : (tensor<?x6xf32>, tensor<6x8xf32>) -> tensor<?x8xf32>
  %gl = onnx.node "MatMul"(%x, %sg) {opset = 21 : i64} : (tensor<?x8xf32>, tensor<8x1xf32>) -> tensor<?x1xf32>
  %gs = onnx.node "Sigmoid"(%gl) {opset = 21 : i64} : (tensor<?x1xf32>) -> tensor<?x1xf32>
  %shared = onnx.node "Mul"(%gs, %mlp) {opset = 21 : i64} : (tensor<?x1xf32>, tensor<?x8xf32>) -> tensor<?x8xf32>
  %y = onnx.node "Add"(%shared, %scaled) {opset = 21 : i64} : (tensor<?x8xf32>, tensor<?x8xf32>) -> tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}

// -----

// QMoE with 4-bit integer weights: [E, N, K/2] bytes of two codes each
// (low nibble first, zero point 8) become i8 `moe.weight`s dequantized with a
// u4 block scale to [E, N, K]; the scales count unpacked columns.
// CHECK-LABEL: func.func @qmoe_int4
// CHECK: %[[Q1:.+]], %[[S1:.+]] = moe.weight [#moe.tensor_ref<"model.onnx", "fc1">] stored tensor<4x4x4xi8> scales [#moe.tensor_ref<"model.onnx", "fc1.scales">] {stored_scheme = #moe.block_scale<format = u4, block = [1, 8], zero_point = 8>} : tensor<4x4x4xi8>, tensor<4x4x1xf32>
// CHECK-NEXT: %[[FC1:.+]] = moe.dequantize %[[Q1]], %[[S1]] {scheme = #moe.block_scale<format = u4, block = [1, 8], zero_point = 8>} : tensor<4x4x4xi8>, tensor<4x4x1xf32> -> tensor<4x4x8xf32>
// CHECK: %[[Q2:.+]], %[[S2:.+]] = moe.weight [#moe.tensor_ref<"model.onnx", "fc2">] stored tensor<4x8x1xi8> scales [#moe.tensor_ref<"model.onnx", "fc2.scales">] {stored_scheme = #moe.block_scale<format = u4, block = [1, 2], zero_point = 8>} : tensor<4x8x1xi8>, tensor<4x8x1xf32>
// CHECK-NEXT: %[[FC2:.+]] = moe.dequantize %[[Q2]], %[[S2]] {{.*}} -> tensor<4x8x2xf32>
// CHECK: moe.moe %{{.+}} router %{{.+}} experts %{{.+}}, %{{.+}}, %[[FC2]] {routing = #moe.routing<scoring = softmax, k = 2>}
// CHECK-NOT: onnx.node "QMoE"
func.func @qmoe_int4(%x: tensor<?x8xf32>) -> tensor<?x8xf32> {
  %none = onnx.none : none
  %gate = onnx.initializer "gate" : tensor<8x4xf32>
  %fc1 = onnx.initializer "fc1" : tensor<4x4x4xui8>
  %fc1s = onnx.initializer "fc1.scales" : tensor<4x4xf32>
  %fc2 = onnx.initializer "fc2" : tensor<4x8x1xui8>
  %fc2s = onnx.initializer "fc2.scales" : tensor<4x8xf32>
  %logits = onnx.node "MatMul"(%x, %gate) {opset = 21 : i64} : (tensor<?x8xf32>, tensor<8x4xf32>) -> tensor<?x4xf32>
  %y = onnx.node "QMoE"(%x, %logits, %fc1, %fc1s, %none, %fc2, %fc2s) {domain = "com.microsoft", opset = 1 : i64, node_attributes = {activation_type = "swiglu", swiglu_fusion = 1 : i64, k = 2 : i64, expert_weight_bits = 4 : i64}} : (tensor<?x8xf32>, tensor<?x4xf32>, tensor<4x4x4xui8>, tensor<4x4xf32>, none, tensor<4x8x1xui8>, tensor<4x8xf32>) -> tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}

// -----

// QMoE with 8-bit integer weights: uint8 codes with zero point 128 and one
// scale per row become i8 `moe.weight`s dequantized with a u8 block scale.
// CHECK-LABEL: func.func @qmoe_int8
// CHECK: %[[Q1:.+]], %[[S1:.+]] = moe.weight [#moe.tensor_ref<"model.onnx", "fc1">] stored tensor<4x4x8xi8> scales [#moe.tensor_ref<"model.onnx", "fc1.scales">] {stored_scheme = #moe.block_scale<format = u8, block = [1, 8], zero_point = 128>} : tensor<4x4x8xi8>, tensor<4x4x1xf32>
// CHECK-NEXT: %[[FC1:.+]] = moe.dequantize %[[Q1]], %[[S1]] {scheme = #moe.block_scale<format = u8, block = [1, 8], zero_point = 128>} : tensor<4x4x8xi8>, tensor<4x4x1xf32> -> tensor<4x4x8xf32>
// CHECK: %[[ROWS:.+]] = moe.reshape %[[FC1]]
// CHECK: %[[Q2:.+]], %[[S2:.+]] = moe.weight [#moe.tensor_ref<"model.onnx", "fc2">] stored tensor<4x8x2xi8> scales [#moe.tensor_ref<"model.onnx", "fc2.scales">] {stored_scheme = #moe.block_scale<format = u8, block = [1, 2], zero_point = 128>} : tensor<4x8x2xi8>, tensor<4x8x1xf32>
// CHECK-NEXT: %[[FC2:.+]] = moe.dequantize %[[Q2]], %[[S2]]
// CHECK: moe.moe %{{.+}} router %{{.+}} experts %{{.+}}, %{{.+}}, %[[FC2]] {routing = #moe.routing<scoring = softmax, k = 2>}
// CHECK-NOT: onnx.node "QMoE"
func.func @qmoe_int8(%x: tensor<?x8xf32>) -> tensor<?x8xf32> {
  %none = onnx.none : none
  %gate = onnx.initializer "gate" : tensor<8x4xf32>
  %fc1 = onnx.initializer "fc1" : tensor<4x4x8xui8>
  %fc1s = onnx.initializer "fc1.scales" : tensor<4x4xf32>
  %fc2 = onnx.initializer "fc2" : tensor<4x8x2xui8>
  %fc2s = onnx.initializer "fc2.scales" : tensor<4x8xf32>
  %logits = onnx.node "MatMul"(%x, %gate) {opset = 21 : i64} : (tensor<?x8xf32>, tensor<8x4xf32>) -> tensor<?x4xf32>
  %y = onnx.node "QMoE"(%x, %logits, %fc1, %fc1s, %none, %fc2, %fc2s) {domain = "com.microsoft", opset = 1 : i64, node_attributes = {activation_type = "swiglu", swiglu_fusion = 1 : i64, k = 2 : i64, expert_weight_bits = 8 : i64}} : (tensor<?x8xf32>, tensor<?x4xf32>, tensor<4x4x8xui8>, tensor<4x4xf32>, none, tensor<4x8x2xui8>, tensor<4x8xf32>) -> tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}

// -----

// A dense SwiGLU MLP: silu(gate) * up is moe.silu_mul; the MatMuls stay for
// the op-by-op legalisation.
// CHECK-LABEL: func.func @swiglu
// CHECK: %[[G:.+]] = onnx.node "MatMul"
// CHECK: %[[U:.+]] = onnx.node "MatMul"
// CHECK: %[[H:.+]] = moe.silu_mul %[[G]], %[[U]] : tensor<?x6xf32>
// CHECK: onnx.node "MatMul"(%[[H]]
func.func @swiglu(%x: tensor<?x8xf32>) -> tensor<?x8xf32> {
  %s1 = onnx.initializer "w1" : tensor<8x6xf32>
  %s3 = onnx.initializer "w3" : tensor<8x6xf32>
  %s2 = onnx.initializer "w2" : tensor<6x8xf32>
  %g = onnx.node "MatMul"(%x, %s1) {opset = 21 : i64} : (tensor<?x8xf32>, tensor<8x6xf32>) -> tensor<?x6xf32>
  %u = onnx.node "MatMul"(%x, %s3) {opset = 21 : i64} : (tensor<?x8xf32>, tensor<8x6xf32>) -> tensor<?x6xf32>
  %sig = onnx.node "Sigmoid"(%g) {opset = 21 : i64} : (tensor<?x6xf32>) -> tensor<?x6xf32>
  %silu = onnx.node "Mul"(%sig, %g) {opset = 21 : i64} : (tensor<?x6xf32>, tensor<?x6xf32>) -> tensor<?x6xf32>
  %act = onnx.node "Mul"(%u, %silu) {opset = 21 : i64} : (tensor<?x6xf32>, tensor<?x6xf32>) -> tensor<?x6xf32>
  %y = onnx.node "MatMul"(%act, %s2) {opset = 21 : i64} : (tensor<?x6xf32>, tensor<6x8xf32>) -> tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}
