// --moec-convert-planned-to-cpu, grouped GEMM family: (expert, column chunk) work items on the
// runtime's threads, each calling the tiled GEMM helper on the expert's rows (from the offsets).
// RUN: moec-opt %s --moec-plan-buffers="max-tokens=4" --moec-convert-planned-to-cpu="cpu=x86-64-v3" | FileCheck %s

// CHECK: module @cpu_kernels
// CHECK-LABEL: func.func @moec_step_0(%{{.+}}: memref<?x128xi8>, %{{.+}}: memref<36xi8>, %{{.+}}: memref<24576xi8>, %{{.+}}: memref<?x96xi8>)
// CHECK: func.call @moec_step_0.body0
// CHECK-LABEL: func.func private @moec_step_0.body0
// CHECK: func.call @moec_gemm_w0_a0_24x32_b128_cols
// CHECK-LABEL: func.func private @moec_gemm_w0_a0_24x32_b128_cols
// CHECK: vector.fma
func.func @forward(%rows: tensor<?x32xf32>, %off: tensor<9xi32>, %wd: tensor<8x24x32xf32>) -> tensor<?x24xf32> {
  %y = moe.grouped_matmul %rows, %off, %wd
      : tensor<?x32xf32>, tensor<9xi32>, tensor<8x24x32xf32> -> tensor<?x24xf32>
  return %y : tensor<?x24xf32>
}
