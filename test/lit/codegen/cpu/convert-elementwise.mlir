// --moec-convert-planned-to-cpu, elementwise family: one scalar loop kernel per step over the
// flat elements, operands then results as byte buffers viewed as typed memrefs; bf16 is widened
// through its bits and narrowed with truncf. The planned function is left as it is.
// RUN: moec-opt %s --moec-plan-buffers="max-tokens=4" --moec-convert-planned-to-cpu="cpu=x86-64-v3" | FileCheck %s

// CHECK-LABEL: func.func @forward
// CHECK: moe.add {{.*}}moe.step = #moe.step<0>
// CHECK: moe.mul {{.*}}moe.step = #moe.step<1>
// CHECK: module @cpu_kernels
// CHECK-LABEL: func.func @moec_step_0(%{{.+}}: memref<?x64xi8>, %{{.+}}: memref<?x64xi8>, %{{.+}}: memref<?x64xi8>)
// CHECK: memref.view {{.*}} : memref<?xi8> to memref<?xf32>
// CHECK: scf.for
// CHECK: arith.addf
// CHECK: memref.store
// CHECK-LABEL: func.func @moec_step_1(%{{.+}}: memref<?x32xi8>, %{{.+}}: memref<?x32xi8>, %{{.+}}: memref<?x32xi8>)
// CHECK: memref.view {{.*}} : memref<?xi8> to memref<?xbf16>
// CHECK: scf.for
// CHECK: arith.bitcast {{.*}} : bf16 to i16
// CHECK: arith.mulf
// CHECK: arith.truncf {{.*}} : f32 to bf16
func.func @forward(%x: tensor<?x16xf32>, %y: tensor<?x16xbf16>) -> tensor<?x16xbf16> {
  %a = moe.add %x, %x : tensor<?x16xf32>
  %b = moe.mul %y, %y : tensor<?x16xbf16>
  return %b : tensor<?x16xbf16>
}
