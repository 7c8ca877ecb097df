// RUN: moec-opt %s --split-input-file --moec-cpu-abi-wrappers --verify-diagnostics | FileCheck %s

// A kernel becomes a private, internal `<name>.impl`; the wrapper `<name>(args, tokens)` loads each base pointer from `args[i]` and builds a row-major descriptor, the leading `?` from `tokens`.
// CHECK-LABEL: func.func @scale(
// CHECK-SAME:      %[[ARGS:.+]]: !llvm.ptr, %[[TOKENS:.+]]: i64) {
// CHECK:         %[[SLOT0:.+]] = llvm.getelementptr %[[ARGS]][0] : (!llvm.ptr) -> !llvm.ptr, !llvm.ptr
// CHECK:         %[[BASE0:.+]] = llvm.load %[[SLOT0]] : !llvm.ptr -> !llvm.ptr
// CHECK:         %[[D0:.+]] = llvm.insertvalue %[[BASE0]], %{{.+}}[0]
// CHECK:         %[[D1:.+]] = llvm.insertvalue %[[BASE0]], %[[D0]][1]
// CHECK:         %[[ZERO:.+]] = llvm.mlir.constant(0 : i64) : i64
// CHECK:         %[[D2:.+]] = llvm.insertvalue %[[ZERO]], %[[D1]][2]
// CHECK:         %[[C64:.+]] = llvm.mlir.constant(64 : i64) : i64
// CHECK:         %[[D3:.+]] = llvm.insertvalue %[[C64]], %[[D2]][3, 1]
// CHECK:         %[[C1:.+]] = llvm.mlir.constant(1 : i64) : i64
// CHECK:         %[[D4:.+]] = llvm.insertvalue %[[C1]], %[[D3]][4, 1]
// CHECK:         %[[D5:.+]] = llvm.insertvalue %[[TOKENS]], %[[D4]][3, 0]
// CHECK:         %[[STRIDE0:.+]] = llvm.mlir.constant(64 : i64) : i64
// CHECK:         %[[D6:.+]] = llvm.insertvalue %[[STRIDE0]], %[[D5]][4, 0]
// CHECK:         %[[X:.+]] = builtin.unrealized_conversion_cast %[[D6]] : !llvm.struct<(ptr, ptr, i64, array<2 x i64>, array<2 x i64>)> to memref<?x64xf32>
// CHECK:         %[[SLOT1:.+]] = llvm.getelementptr %[[ARGS]][1] : (!llvm.ptr) -> !llvm.ptr, !llvm.ptr
// CHECK:         %[[W:.+]] = builtin.unrealized_conversion_cast %{{.+}} : !llvm.struct<(ptr, ptr, i64, array<1 x i64>, array<1 x i64>)> to memref<64xbf16>
// CHECK:         %[[SLOT2:.+]] = llvm.getelementptr %[[ARGS]][2] : (!llvm.ptr) -> !llvm.ptr, !llvm.ptr
// CHECK:         %[[S:.+]] = builtin.unrealized_conversion_cast %{{.+}} : !llvm.struct<(ptr, ptr, i64)> to memref<f32>
// CHECK:         call @scale.impl(%[[X]], %[[W]], %[[S]]) : (memref<?x64xf32>, memref<64xbf16>, memref<f32>) -> ()
// CHECK:         return
// CHECK-LABEL: func.func private @scale.impl(
// CHECK-SAME:      %{{.+}}: memref<?x64xf32>, %{{.+}}: memref<64xbf16>, %{{.+}}: memref<f32>)
// CHECK-SAME:      attributes {llvm.linkage = #llvm.linkage<internal>}
// CHECK-LABEL: func.func private @helper()
// CHECK-NOT:   @helper.impl
func.func @scale(%x: memref<?x64xf32>, %w: memref<64xbf16>, %s: memref<f32>) {
  return
}
func.func private @helper() {
  return
}

// -----

// A kernel argument must be a memref.
// expected-error @+1 {{'func.func' op expected CPU kernel argument #0 to be a memref, but got 'i32'}}
func.func @scalar(%n: i32) {
  return
}

// -----

// Only the leading (token) dimension may be dynamic.
// expected-error @+1 {{'func.func' op expected only the leading (token) dimension of CPU kernel argument #1 to be dynamic, but got 'memref<4x?xf32>'}}
func.func @inner_dynamic(%x: memref<?x4xf32>, %y: memref<4x?xf32>) {
  return
}

// -----

// Arguments are dense and row-major.
// expected-error @+1 {{'func.func' op expected CPU kernel argument #0 to have an identity layout, but got 'memref<?x4xf32, strided<[8, 1]>>'}}
func.func @strided(%x: memref<?x4xf32, strided<[8, 1]>>) {
  return
}

// -----

// Elements are integers or floats (an `index` has no fixed size in the ABI).
// expected-error @+1 {{'func.func' op expected CPU kernel argument #0 to have integer or float elements, but got 'memref<?xindex>'}}
func.func @indices(%x: memref<?xindex>) {
  return
}

// -----

// Kernels write their outputs through arguments.
// expected-error @+1 {{'func.func' op expected CPU kernel to have no results, but it has 1}}
func.func @returns() -> i32 {
  %c0 = arith.constant 0 : i32
  return %c0 : i32
}

// -----

// The kernel's new name must be free.
// expected-error @+1 {{'func.func' op cannot wrap CPU kernel `k`: symbol `k.impl` already exists}}
func.func @k(%x: memref<?xf32>) {
  return
}
func.func private @k.impl() {
  return
}
