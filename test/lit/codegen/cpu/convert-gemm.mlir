// --moec-convert-planned-to-cpu, GEMM family: the step kernel splits the output columns over the
// runtime's threads (an outlined body) and calls the private tiled GEMM helper, built once per
// shape, whose inner loop is vector FMAs.
// RUN: moec-opt %s --moec-plan-buffers="max-tokens=4" --moec-convert-planned-to-cpu="cpu=x86-64-v3" | FileCheck %s

// CHECK: module @cpu_kernels
// CHECK-LABEL: func.func @moec_step_0(%{{.+}}: memref<?x160xi8>, %{{.+}}: memref<2640xi8>, %{{.+}}: memref<132xi8>, %{{.+}}: memref<?x132xi8>)
// CHECK: func.call @moec_step_0.body0
// CHECK-LABEL: func.func private @moec_step_0.body0(%{{.+}}: !llvm.ptr, %{{.+}}: i64, %{{.+}}: i64)
// CHECK: memref.view {{.*}} to memref<33x40xbf16>
// CHECK: func.call @moec_gemm_w1_a0_33x40_b128_cols({{.*}}) : (memref<?x40xf32>, memref<33x40xbf16>, memref<?x33xf32>, index, index) -> ()
// CHECK-LABEL: func.func private @moec_gemm_w1_a0_33x40_b128_cols
// CHECK: vector.load
// CHECK: vector.fma
// CHECK: vector.store
func.func @forward(%x: tensor<?x40xf32>, %w: tensor<33x40xbf16>, %b: tensor<33xf32>) -> tensor<?x33xf32> {
  %y = moe.matmul %x, %w bias %b : tensor<?x40xf32>, tensor<33x40xbf16>, tensor<33xf32> -> tensor<?x33xf32>
  return %y : tensor<?x33xf32>
}
