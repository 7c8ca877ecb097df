// RUN: moec-opt %s --moec-cpu-lower-to-llvm | FileCheck %s

// A linalg kernel with math lowers to the LLVM dialect alone: the ABI wrapper is the only external function, the kernel is internal, and exp is a polynomial.
// CHECK-LABEL: llvm.func @silu(
// CHECK-SAME:      %[[ARGS:.+]]: !llvm.ptr, %[[TOKENS:.+]]: i64) {
// CHECK:         llvm.call @silu.impl({{.*}}%[[TOKENS]]{{.*}}) : (!llvm.ptr, !llvm.ptr, i64, i64, i64, i64, i64, !llvm.ptr, !llvm.ptr, i64, i64, i64, i64, i64) -> ()
// CHECK:         llvm.return
// CHECK-LABEL: llvm.func internal @silu.impl(
// CHECK-NOT:     llvm.call
// CHECK-NOT:     math.
// CHECK-NOT:     linalg.
// CHECK-NOT:     memref.
// CHECK-NOT:     builtin.unrealized_conversion_cast
// CHECK:         llvm.return
#map = affine_map<(d0, d1) -> (d0, d1)>
func.func @silu(%x: memref<?x8xf32>, %y: memref<?x8xf32>) {
  linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel"]}
      ins(%x : memref<?x8xf32>) outs(%y : memref<?x8xf32>) {
  ^bb0(%in: f32, %out: f32):
    %n = arith.negf %in : f32
    %e = math.exp %n : f32
    %one = arith.constant 1.0 : f32
    %d = arith.addf %one, %e : f32
    %s = arith.divf %in, %d : f32
    linalg.yield %s : f32
  }
  return
}
