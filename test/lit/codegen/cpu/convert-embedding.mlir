// --moec-convert-planned-to-cpu, embedding family: one row of the bf16 table per token id (a
// zero row for an id outside the table), widened to f32.
// RUN: moec-opt %s --moec-plan-buffers="max-tokens=4" --moec-convert-planned-to-cpu="cpu=x86-64-v3" | FileCheck %s

// CHECK: module @cpu_kernels
// CHECK-LABEL: func.func @moec_step_0(%{{.+}}: memref<2400xi8>, %{{.+}}: memref<?x4xi8>, %{{.+}}: memref<?x96xi8>)
// CHECK: scf.for
// CHECK: arith.cmpi ult
// CHECK: arith.select
// CHECK: scf.for
// CHECK: arith.bitcast {{.*}} : bf16 to i16
// CHECK: memref.store {{.*}} : memref<?xf32>
func.func @forward(%t: tensor<50x24xbf16>, %ids: tensor<?xi32>) -> tensor<?x24xf32> {
  %0 = moe.embed %t, %ids : tensor<50x24xbf16>, tensor<?xi32> -> tensor<?x24xf32>
  return %0 : tensor<?x24xf32>
}
