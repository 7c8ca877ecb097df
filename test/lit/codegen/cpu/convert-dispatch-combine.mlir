// --moec-convert-planned-to-cpu, dispatch/combine family: dispatch writes the rows grouped by
// expert, the per-expert offsets (a fixed-size buffer) and each pick's position; combine reads
// them back, weighted, onto the residual.
// RUN: moec-opt %s --moec-plan-buffers="max-tokens=4" --moec-convert-planned-to-cpu="cpu=x86-64-v3" | FileCheck %s

// CHECK: module @cpu_kernels
// CHECK-LABEL: func.func @moec_step_0(%{{.+}}: memref<?x128xi8>, %{{.+}}: memref<?x8xi8>, %{{.+}}: memref<?x256xi8>, %{{.+}}: memref<36xi8>, %{{.+}}: memref<?x8xi8>)
// CHECK: memref.view {{.*}} to memref<?xi32>
// CHECK: scf.for
// CHECK-LABEL: func.func @moec_step_1(%{{.+}}: memref<?x256xi8>, %{{.+}}: memref<?x8xi8>, %{{.+}}: memref<?x8xi8>, %{{.+}}: memref<?x128xi8>, %{{.+}}: memref<?x128xi8>)
// CHECK: scf.for
// CHECK: arith.mulf
// CHECK: arith.addf
func.func @forward(%x: tensor<?x32xf32>, %i: tensor<?x2xi32>, %w: tensor<?x2xf32>) -> (tensor<9xi32>, tensor<?x32xf32>) {
  %rows, %off, %pos = moe.dispatch %x, %i
      : tensor<?x32xf32>, tensor<?x2xi32> -> tensor<?x32xf32>, tensor<9xi32>, tensor<?xi32>
  %o = moe.combine %rows, %pos, %w residual %x
      : tensor<?x32xf32>, tensor<?xi32>, tensor<?x2xf32>, tensor<?x32xf32> -> tensor<?x32xf32>
  return %off, %o : tensor<9xi32>, tensor<?x32xf32>
}
