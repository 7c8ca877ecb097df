// --moec-convert-planned-to-cpu, RoPE family: per token and head, the angle from the position and
// the rotation with cos and sin (expanded into arithmetic later by --moec-cpu-expand-math).
// RUN: moec-opt %s --moec-plan-buffers="max-tokens=4" --moec-convert-planned-to-cpu="cpu=x86-64-v3" | FileCheck %s

// CHECK: module @cpu_kernels
// CHECK-LABEL: func.func @moec_step_0(%{{.+}}: memref<?x256xi8>, %{{.+}}: memref<?x4xi8>, %{{.+}}: memref<?x256xi8>)
// CHECK: memref.view {{.*}} to memref<?xi32>
// CHECK: scf.for
// CHECK: arith.sitofp
// CHECK: math.cos
// CHECK: math.sin
func.func @forward(%q: tensor<?x4x16xf32>, %pos: tensor<?xi32>) -> tensor<?x4x16xf32> {
  %0 = moe.rope %q, %pos {theta = 10000.0 : f64} : tensor<?x4x16xf32>, tensor<?xi32>
  return %0 : tensor<?x4x16xf32>
}
