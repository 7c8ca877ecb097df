// The generic token-wise ops parse, verify, print, and parse again to the same text.
// RUN: moec-opt %s | moec-opt | FileCheck %s
// RUN: moec-opt %s | moec-opt > %t.1 && moec-opt %s > %t.2 && diff %t.1 %t.2

// CHECK-LABEL: func.func @elementwise
// CHECK-SAME: (%[[X:.+]]: tensor<?x4x16xf32>, %[[N:.+]]: tensor<?x4x1xf32>, %[[C:.+]]: tensor<f32>, %[[I:.+]]: tensor<?x2xi64>, %[[E:.+]]: tensor<1xi64>)
func.func @elementwise(%x: tensor<?x4x16xf32>, %n: tensor<?x4x1xf32>, %c: tensor<f32>, %i: tensor<?x2xi64>, %e: tensor<1xi64>) -> (tensor<?x4x16xf32>, tensor<?x2xf32>) {
  // CHECK: %[[U:.+]] = moe.unary <sqrt> %[[X]] : tensor<?x4x16xf32>
  %u = moe.unary <sqrt> %x : tensor<?x4x16xf32>
  // CHECK: %[[B:.+]] = moe.binary <div> %[[U]], %[[N]] : tensor<?x4x16xf32>, tensor<?x4x1xf32> -> tensor<?x4x16xf32>
  %b = moe.binary <div> %u, %n : tensor<?x4x16xf32>, tensor<?x4x1xf32> -> tensor<?x4x16xf32>
  // CHECK: %[[P:.+]] = moe.binary <pow> %[[B]], %[[C]] : tensor<?x4x16xf32>, tensor<f32> -> tensor<?x4x16xf32>
  %p = moe.binary <pow> %b, %c : tensor<?x4x16xf32>, tensor<f32> -> tensor<?x4x16xf32>
  // CHECK: %[[M:.+]] = moe.compare <eq> %[[I]], %[[E]] : tensor<?x2xi64>, tensor<1xi64> -> tensor<?x2xi1>
  %m = moe.compare <eq> %i, %e : tensor<?x2xi64>, tensor<1xi64> -> tensor<?x2xi1>
  // CHECK: %[[F:.+]] = moe.cast %[[M]] : tensor<?x2xi1> -> tensor<?x2xf32>
  %f = moe.cast %m : tensor<?x2xi1> -> tensor<?x2xf32>
  // CHECK: %[[S:.+]] = moe.select %[[M]], %[[F]], %[[C]] : tensor<?x2xi1>, tensor<?x2xf32>, tensor<f32> -> tensor<?x2xf32>
  %s = moe.select %m, %f, %c : tensor<?x2xi1>, tensor<?x2xf32>, tensor<f32> -> tensor<?x2xf32>
  return %p, %s : tensor<?x4x16xf32>, tensor<?x2xf32>
}

// CHECK-LABEL: func.func @rows
// CHECK-SAME: (%[[X:.+]]: tensor<?x8xf32>, %[[Z:.+]]: tensor<?x8xf32>)
func.func @rows(%x: tensor<?x8xf32>, %z: tensor<?x8xf32>) -> (tensor<?x8xf32>, tensor<?x1xf32>, tensor<?x2x8xf32>, tensor<?xf32>) {
  // CHECK: %[[P:.+]] = moe.softmax %[[X]] : tensor<?x8xf32>
  %p = moe.softmax %x : tensor<?x8xf32>
  // CHECK: %[[V:.+]], %[[I:.+]] = moe.topk %[[P]] {k = 2 : i64} : tensor<?x8xf32> -> tensor<?x2xf32>, tensor<?x2xi64>
  %v, %i = moe.topk %p {k = 2 : i64} : tensor<?x8xf32> -> tensor<?x2xf32>, tensor<?x2xi64>
  // CHECK: %[[G:.+]] = moe.gather_elements %[[P]], %[[I]] {dim = 1 : i64} : tensor<?x8xf32>, tensor<?x2xi64> -> tensor<?x2xf32>
  %g = moe.gather_elements %p, %i {dim = 1 : i64} : tensor<?x8xf32>, tensor<?x2xi64> -> tensor<?x2xf32>
  // CHECK: %[[S:.+]] = moe.scatter_elements %[[Z]], %[[I]], %[[G]] {dim = 1 : i64} : tensor<?x8xf32>, tensor<?x2xi64>, tensor<?x2xf32> -> tensor<?x8xf32>
  %s = moe.scatter_elements %z, %i, %g {dim = 1 : i64} : tensor<?x8xf32>, tensor<?x2xi64>, tensor<?x2xf32> -> tensor<?x8xf32>
  // CHECK: moe.reduce <mean> %[[S]] {dims = array<i64: 1>} : tensor<?x8xf32> -> tensor<?x1xf32>
  %m = moe.reduce <mean> %s {dims = array<i64: 1>} : tensor<?x8xf32> -> tensor<?x1xf32>
  // CHECK: %[[H:.+]] = moe.one_hot %[[I]] {off_value = 0.000000e+00 : f64, on_value = 1.000000e+00 : f64} : tensor<?x2xi64> -> tensor<?x2x8xf32>
  %h = moe.one_hot %i {on_value = 1.0 : f64, off_value = 0.0 : f64} : tensor<?x2xi64> -> tensor<?x2x8xf32>
  // CHECK: moe.reduce <max> %[[H]] {dims = array<i64: 1, 2>} : tensor<?x2x8xf32> -> tensor<?xf32>
  %r = moe.reduce <max> %h {dims = array<i64: 1, 2>} : tensor<?x2x8xf32> -> tensor<?xf32>
  return %s, %m, %h, %r : tensor<?x8xf32>, tensor<?x1xf32>, tensor<?x2x8xf32>, tensor<?xf32>
}

// CHECK-LABEL: func.func @heads
func.func @heads(%a: tensor<?x4x2x8xf32>, %b: tensor<?x4x3x8xf32>) -> tensor<?x4x2x3xf32> {
  // CHECK: %[[T:.+]] = moe.transpose %{{.+}} {permutation = array<i64: 0, 1, 3, 2>} : tensor<?x4x3x8xf32> -> tensor<?x4x8x3xf32>
  %t = moe.transpose %b {permutation = array<i64: 0, 1, 3, 2>} : tensor<?x4x3x8xf32> -> tensor<?x4x8x3xf32>
  // CHECK: moe.batch_matmul %{{.+}}, %[[T]] : tensor<?x4x2x8xf32>, tensor<?x4x8x3xf32> -> tensor<?x4x2x3xf32>
  %y = moe.batch_matmul %a, %t : tensor<?x4x2x8xf32>, tensor<?x4x8x3xf32> -> tensor<?x4x2x3xf32>
  return %y : tensor<?x4x2x3xf32>
}
