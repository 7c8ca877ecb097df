// --moec-convert-planned-to-cpu, data movement family: moe.slice, moe.concat and moe.transpose
// are copy loops (a load from one view, a store to another), one kernel per step.
// RUN: moec-opt %s --moec-plan-buffers="max-tokens=4" --moec-convert-planned-to-cpu="cpu=x86-64-v3" | FileCheck %s

// CHECK: module @cpu_kernels
// CHECK-LABEL: func.func @moec_step_0(%{{.+}}: memref<?x512xi8>, %{{.+}}: memref<?x256xi8>)
// CHECK: scf.for
// CHECK: scf.for
// CHECK: memref.load
// CHECK: memref.store
// CHECK-LABEL: func.func @moec_step_1(%{{.+}}: memref<?x512xi8>, %{{.+}}: memref<?x256xi8>)
// CHECK-LABEL: func.func @moec_step_2(%{{.+}}: memref<?x256xi8>, %{{.+}}: memref<?x256xi8>, %{{.+}}: memref<?x512xi8>)
// CHECK: scf.for
// CHECK: memref.store
// CHECK-LABEL: func.func @moec_step_3(%{{.+}}: memref<?x128xi8>, %{{.+}}: memref<?x128xi8>)
// CHECK: scf.for
// CHECK: memref.load
// CHECK: memref.store
func.func @forward(%m: tensor<?x128xf32>, %h: tensor<?x4x8xf32>) -> (tensor<?x128xf32>, tensor<?x8x4xf32>) {
  %g = moe.slice %m {offset = 0 : i64} : tensor<?x128xf32> -> tensor<?x64xf32>
  %u = moe.slice %m {offset = 64 : i64} : tensor<?x128xf32> -> tensor<?x64xf32>
  %c = moe.concat %u, %g : tensor<?x64xf32>, tensor<?x64xf32> -> tensor<?x128xf32>
  %t = moe.transpose %h {permutation = array<i64: 0, 2, 1>} : tensor<?x4x8xf32> -> tensor<?x8x4xf32>
  return %c, %t : tensor<?x128xf32>, tensor<?x8x4xf32>
}
