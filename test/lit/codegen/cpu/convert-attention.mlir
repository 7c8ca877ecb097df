// --moec-convert-planned-to-cpu, attention family: per token and query head, the scores against
// the keys (a carried dot product), the softmax (exp) and the weighted sum of the values.
// RUN: moec-opt %s --moec-plan-buffers="max-tokens=4" --moec-convert-planned-to-cpu="cpu=x86-64-v3" | FileCheck %s

// CHECK: module @cpu_kernels
// CHECK-LABEL: func.func @moec_step_0(%{{.+}}: memref<?x192xi8>, %{{.+}}: memref<?x96xi8>, %{{.+}}: memref<?x64xi8>, %{{.+}}: memref<?x128xi8>)
// CHECK: scf.for
// CHECK: scf.for
// CHECK: scf.for {{.*}} iter_args
// CHECK: math.exp
// CHECK: arith.divf
func.func @forward(%q: tensor<?x4x12xf32>, %k: tensor<?x2x12xf32>, %v: tensor<?x2x8xf32>) -> tensor<?x4x8xf32> {
  %0 = moe.attention %q, %k, %v {scale = 0.3 : f64, causal}
      : tensor<?x4x12xf32>, tensor<?x2x12xf32>, tensor<?x2x8xf32> -> tensor<?x4x8xf32>
  return %0 : tensor<?x4x8xf32>
}
