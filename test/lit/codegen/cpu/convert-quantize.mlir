// --moec-convert-planned-to-cpu, quantize family: moe.quantize takes each block's amax as an
// integer max of the magnitudes' bits, stores the scale and the E4M3FN codes; moe.dequantize
// decodes the codes exactly and multiplies by the block's scale.
// RUN: moec-opt %s --moec-plan-buffers="max-tokens=4" --moec-convert-planned-to-cpu="cpu=x86-64-v3" | FileCheck %s

// CHECK: module @cpu_kernels
// CHECK-LABEL: func.func @moec_step_0(%{{.+}}: memref<?x1200xi8>, %{{.+}}: memref<?x300xi8>, %{{.+}}: memref<?x12xi8>)
// CHECK: scf.for {{.*}} iter_args
// CHECK: arith.maxui
// CHECK: arith.divf
// CHECK: memref.store {{.*}} : memref<?xf32>
// CHECK: memref.store {{.*}} : memref<?xf8E4M3FN>
// CHECK-LABEL: func.func @moec_step_1(%{{.+}}: memref<?x300xi8>, %{{.+}}: memref<?x12xi8>, %{{.+}}: memref<?x1200xi8>)
// CHECK: arith.bitcast {{.*}} : f8E4M3FN to i8
// CHECK: arith.sitofp
// CHECK: arith.mulf
func.func @forward(%x: tensor<?x300xf32>) -> (tensor<?x300xf8E4M3FN>, tensor<?x3xf32>, tensor<?x300xf32>) {
  %q, %s = moe.quantize %x {scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>}
      : tensor<?x300xf32> -> tensor<?x300xf8E4M3FN>, tensor<?x3xf32>
  %d = moe.dequantize %q, %s {scheme = #moe.block_scale<format = e4m3fn, block = [1, 128]>}
      : tensor<?x300xf8E4M3FN>, tensor<?x3xf32> -> tensor<?x300xf32>
  return %q, %s, %d : tensor<?x300xf8E4M3FN>, tensor<?x3xf32>, tensor<?x300xf32>
}
