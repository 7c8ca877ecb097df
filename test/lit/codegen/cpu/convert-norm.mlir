// --moec-convert-planned-to-cpu, norm family: moe.rms_norm is a loop over rows holding a sum of
// squares, then the scaled row; the bf16 weight is a fixed-size buffer.
// RUN: moec-opt %s --moec-plan-buffers="max-tokens=4" --moec-convert-planned-to-cpu="cpu=x86-64-v3" | FileCheck %s

// CHECK: module @cpu_kernels
// CHECK-LABEL: func.func @moec_step_0(%{{.+}}: memref<?x64xi8>, %{{.+}}: memref<32xi8>, %{{.+}}: memref<?x64xi8>)
// CHECK: scf.for
// CHECK: scf.for {{.*}} iter_args
// CHECK: arith.mulf
// CHECK: math.sqrt
// CHECK: arith.divf
// CHECK: scf.for
// CHECK: memref.store
func.func @forward(%x: tensor<?x16xf32>, %w: tensor<16xbf16>) -> tensor<?x16xf32> {
  %0 = moe.rms_norm %x, %w {epsilon = 1.0e-06 : f64} : tensor<?x16xf32>, tensor<16xbf16> -> tensor<?x16xf32>
  return %0 : tensor<?x16xf32>
}
