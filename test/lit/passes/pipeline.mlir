// The import→moe pipeline removes dead ops and keeps the layer; later phases fail clearly.
// RUN: moec-opt %s --moec-pipeline="from=import to=moe" | FileCheck %s
// RUN: not moec-opt %s --moec-pipeline="to=fp8" 2>&1 | FileCheck %s --check-prefix=LATER
// RUN: not moec-opt %s --moec-pipeline="to=nowhere" 2>&1 | FileCheck %s --check-prefix=UNKNOWN
// LATER: phase 'fused' is not available yet; the furthest phase this build reaches is 'moe'
// UNKNOWN: unknown phase 'nowhere'; expected one of: import, moe, fused, fp8, planned, codegen

// CHECK-LABEL: func.func @dead_code
// CHECK-SAME: (%[[X:.+]]: tensor<?x8xf32>, %[[W:.+]]: tensor<8x8xbf16>)
func.func @dead_code(%x: tensor<?x8xf32>, %w: tensor<8x8xbf16>) -> tensor<?x8xf32> {
  // CHECK-NOT: moe.weight
  %unused = moe.weight [#moe.tensor_ref<"model.safetensors", "unused">] stored tensor<8xbf16> : tensor<8xbf16>
  // CHECK: %[[Y:.+]] = moe.matmul %[[X]], %[[W]]
  %y = moe.matmul %x, %w : tensor<?x8xf32>, tensor<8x8xbf16> -> tensor<?x8xf32>
  // CHECK-NOT: moe.matmul
  %z = moe.matmul %x, %w : tensor<?x8xf32>, tensor<8x8xbf16> -> tensor<?x8xf32>
  // CHECK: %[[S:.+]] = moe.add %[[Y]], %[[Y]]
  %s = moe.add %y, %z : tensor<?x8xf32>
  // CHECK: return %[[S]]
  return %s : tensor<?x8xf32>
}
