// --moec-convert-planned-to-cpu, reduction family: moe.softmax over the last axis (max, exp,
// sum, divide) and moe.reduce <mean> (a carried sum per output element, divided by the count).
// RUN: moec-opt %s --moec-plan-buffers="max-tokens=4" --moec-convert-planned-to-cpu="cpu=x86-64-v3" | FileCheck %s

// CHECK: module @cpu_kernels
// CHECK-LABEL: func.func @moec_step_0(%{{.+}}: memref<?x32xi8>, %{{.+}}: memref<?x32xi8>)
// CHECK: scf.for
// CHECK: arith.cmpf
// CHECK: math.exp
// CHECK: arith.divf
// CHECK-LABEL: func.func @moec_step_1(%{{.+}}: memref<?x64xi8>, %{{.+}}: memref<?x8xi8>)
// CHECK: scf.for {{.*}} iter_args
// CHECK: arith.addf
// CHECK: arith.divf
// CHECK: memref.store {{.*}} : memref<?xf32>
func.func @forward(%x: tensor<?x8xf32>, %h: tensor<?x2x8xf32>) -> (tensor<?x8xf32>, tensor<?x2x1xf32>) {
  %p = moe.softmax %x : tensor<?x8xf32>
  %m = moe.reduce <mean> %h {dims = array<i64: 2>} : tensor<?x2x8xf32> -> tensor<?x2x1xf32>
  return %p, %m : tensor<?x8xf32>, tensor<?x2x1xf32>
}
