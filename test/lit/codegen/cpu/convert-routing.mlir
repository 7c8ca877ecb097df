// --moec-convert-planned-to-cpu, routing family: moe.router scores each token against the gate
// (a carried dot product), applies softmax (exp) and writes the top-k weights and ids.
// RUN: moec-opt %s --moec-plan-buffers="max-tokens=4" --moec-convert-planned-to-cpu="cpu=x86-64-v3" | FileCheck %s

// CHECK: module @cpu_kernels
// CHECK-LABEL: func.func @moec_step_0(%{{.+}}: memref<?x128xi8>, %{{.+}}: memref<512xi8>, %{{.+}}: memref<?x8xi8>, %{{.+}}: memref<?x8xi8>)
// CHECK: scf.for
// CHECK: scf.for {{.*}} iter_args
// CHECK: math.exp
// CHECK: arith.divf
func.func @forward(%x: tensor<?x32xf32>, %g: tensor<8x32xbf16>) -> (tensor<?x2xf32>, tensor<?x2xi32>) {
  %w, %i = moe.router %x, %g
      {routing = #moe.routing<scoring = softmax, k = 2, norm_topk_prob = true>}
      : tensor<?x32xf32>, tensor<8x32xbf16> -> tensor<?x2xf32>, tensor<?x2xi32>
  return %w, %i : tensor<?x2xf32>, tensor<?x2xi32>
}
