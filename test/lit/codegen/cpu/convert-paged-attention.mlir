// --moec-convert-planned-to-cpu, moe.paged_attention: the KV cache arguments are the runtime's
// pools, passed to the step like buffers; the kernel first writes every row's K and V into its
// slot's page (page id from the page table), then per (row, query head) item, spread over the
// runtime's threads, attends over the slot's positions 0 .. positions[t] with the softmax of
// moe.attention.
// RUN: moec-opt %s --moec-plan-buffers="max-tokens=4" --moec-convert-planned-to-cpu="cpu=x86-64-v3" | FileCheck %s

// The caches are pools of pages: 16 positions x 2 heads x 16 (k) or 8 (v) bf16 = 1024 and 512
// bytes a page; the page table is the fixed [2, 3] i32 argument.
// CHECK: module @cpu_kernels
// CHECK-LABEL: func.func @moec_step_0(%{{.+}}: memref<?x256xi8>, %{{.+}}: memref<?x128xi8>, %{{.+}}: memref<?x64xi8>, %{{.+}}: memref<?x4xi8>, %{{.+}}: memref<?x4xi8>, %{{.+}}: memref<24xi8>, %{{.+}}: memref<?x1024xi8>, %{{.+}}: memref<?x512xi8>, %{{.+}}: memref<?x128xi8>)
// First the writes: per row, the page id from the table, then K and V converted to bf16.
// CHECK: scf.for
// CHECK: memref.load %{{.+}} : memref<?xi32>
// CHECK: scf.for
// CHECK: arith.truncf %{{.+}} : f32 to bf16
// CHECK: memref.store %{{.+}} : memref<?xbf16>
// CHECK: scf.for
// CHECK: arith.truncf %{{.+}} : f32 to bf16
// CHECK: memref.store %{{.+}} : memref<?xbf16>
// Then the (row, head) items, through the runtime's threads: a body function whose scores (on
// its thread's stack) hold the longest sequence the page table holds (3 x 16 positions) and one
// more, over the cached keys, their softmax and the weighted values.
// CHECK-LABEL: func.func private @moec_step_0.body0
// CHECK: %[[N:.+]] = arith.constant 49 : index
// CHECK: memref.alloca(%[[N]]) : memref<?xf32>
// CHECK: scf.for {{.*}} iter_args
// CHECK: memref.load %{{.+}} : memref<?xbf16>
// CHECK: math.exp
// CHECK: arith.divf
// CHECK: memref.load %{{.+}} : memref<?xbf16>
func.func @forward(%q: tensor<?x4x16xf32>, %k: tensor<?x2x16xf32>, %v: tensor<?x2x8xf32>, %pos: tensor<?xi32>, %slots: tensor<?xi32>, %table: tensor<2x3xi32>, %kc: tensor<?x16x2x16xbf16> {moe.kv_cache}, %vc: tensor<?x16x2x8xbf16> {moe.kv_cache}) -> tensor<?x4x8xf32> {
  %o = moe.paged_attention %q, %k, %v, %pos, %slots, %table, %kc, %vc {scale = 0.25 : f64, layer = 0 : i64}
      : tensor<?x4x16xf32>, tensor<?x2x16xf32>, tensor<?x2x8xf32>, tensor<?xi32>, tensor<?xi32>, tensor<2x3xi32>, tensor<?x16x2x16xbf16>, tensor<?x16x2x8xbf16> -> tensor<?x4x8xf32>
  return %o : tensor<?x4x8xf32>
}
