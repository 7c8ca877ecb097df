// --moec-use-kv-cache makes the forward one generation step: each causal moe.attention becomes a
// moe.paged_attention over its layer's cache, and the function gets `slots`, `page_table` and a
// `kv_cache.<layer>.k/v` argument pair per attention layer, in program order.
// RUN: moec-opt %s --split-input-file --moec-use-kv-cache | FileCheck %s
// RUN: moec-opt %s --split-input-file --moec-use-kv-cache | moec-opt --split-input-file | FileCheck %s
// RUN: moec-opt %s --split-input-file --moec-use-kv-cache="dtype=f32 page-tokens=8 max-sequences=3 max-context=100" | FileCheck %s --check-prefix=OPTS
// RUN: moec-opt %S/Inputs/use-kv-cache-invalid.mlir --split-input-file --moec-use-kv-cache --verify-diagnostics
// RUN: not moec-opt %S/Inputs/use-kv-cache-invalid.mlir --split-input-file --moec-use-kv-cache="dtype=f16" 2>&1 | FileCheck %S/Inputs/use-kv-cache-invalid.mlir --check-prefix=DTYPE
// RUN: not moec-opt %S/Inputs/use-kv-cache-invalid.mlir --split-input-file --moec-use-kv-cache="page-tokens=0" 2>&1 | FileCheck %S/Inputs/use-kv-cache-invalid.mlir --check-prefix=PAGES
// max-context sizes the page table where the module records no moe.max_positions.
// RUN: not moec-opt %S/Inputs/use-kv-cache-invalid.mlir --split-input-file --moec-use-kv-cache="max-context=33" 2>&1 | FileCheck %S/Inputs/use-kv-cache-invalid.mlir --check-prefix=CONTEXT

// Two layers (GQA, then MLA-like with a narrower value head). The page table is
// max-sequences (default 64) x ceil(moe.max_positions 40 / page-tokens (default 16)) = 64 x 3;
// the caches are bf16 by default, [?, 16, heads, dim] of each layer's k and v.
// CHECK-LABEL: func.func @two_layers
// CHECK-SAME: (%{{[^:]+}}: tensor<?xi32> {moe.name = "tokens"}, %[[POS:[^:]+]]: tensor<?xi32> {moe.name = "positions"},
// CHECK-SAME: %[[Q:[^:]+]]: tensor<?x4x16xf32>, %[[K:[^:]+]]: tensor<?x2x16xf32>, %[[V:[^:]+]]: tensor<?x2x8xf32>,
// CHECK-SAME: %[[SLOTS:[^:]+]]: tensor<?xi32> {moe.name = "slots"}, %[[TABLE:[^:]+]]: tensor<64x3xi32> {moe.name = "page_table"},
// CHECK-SAME: %[[K0:[^:]+]]: tensor<?x16x2x16xbf16> {moe.kv_cache, moe.name = "kv_cache.0.k"}, %[[V0:[^:]+]]: tensor<?x16x2x8xbf16> {moe.kv_cache, moe.name = "kv_cache.0.v"},
// CHECK-SAME: %[[K1:[^:]+]]: tensor<?x16x2x16xbf16> {moe.kv_cache, moe.name = "kv_cache.1.k"}, %[[V1:[^:]+]]: tensor<?x16x2x16xbf16> {moe.kv_cache, moe.name = "kv_cache.1.v"})
// CHECK-NOT: moe.attention
// CHECK: %[[A:.+]] = moe.paged_attention %[[Q]], %[[K]], %[[V]], %[[POS]], %[[SLOTS]], %[[TABLE]], %[[K0]], %[[V0]] {layer = 0 : i64, scale = 2.500000e-01 : f64}
// CHECK-SAME: -> tensor<?x4x8xf32>
// CHECK: %[[B:.+]] = moe.paged_attention %[[Q]], %[[K]], %[[K]], %[[POS]], %[[SLOTS]], %[[TABLE]], %[[K1]], %[[V1]] {layer = 1 : i64, scale = 1.250000e-01 : f64}
// CHECK-SAME: -> tensor<?x4x16xf32>
// CHECK: return %[[A]], %[[B]]
// OPTS-LABEL: func.func @two_layers
// OPTS-SAME: tensor<3x13xi32> {moe.name = "page_table"}
// OPTS-SAME: tensor<?x8x2x16xf32> {moe.kv_cache, moe.name = "kv_cache.0.k"}
// OPTS-SAME: tensor<?x8x2x8xf32> {moe.kv_cache, moe.name = "kv_cache.0.v"}
module attributes {moe.max_positions = 40 : i64} {
  func.func @two_layers(%tokens: tensor<?xi32> {moe.name = "tokens"}, %pos: tensor<?xi32> {moe.name = "positions"}, %q: tensor<?x4x16xf32>, %k: tensor<?x2x16xf32>, %v: tensor<?x2x8xf32>) -> (tensor<?x4x8xf32>, tensor<?x4x16xf32>) {
    %a = moe.attention %q, %k, %v {scale = 0.25 : f64, causal} : tensor<?x4x16xf32>, tensor<?x2x16xf32>, tensor<?x2x8xf32> -> tensor<?x4x8xf32>
    %b = moe.attention %q, %k, %k {scale = 0.125 : f64, causal} : tensor<?x4x16xf32>, tensor<?x2x16xf32>, tensor<?x2x16xf32> -> tensor<?x4x16xf32>
    return %a, %b : tensor<?x4x8xf32>, tensor<?x4x16xf32>
  }
}

// -----

// Without attention there is nothing to cache: the function is unchanged.
// CHECK-LABEL: func.func @no_attention
// CHECK-SAME: (%{{[^:]+}}: tensor<?x16xf32>) -> tensor<?x16xf32>
// CHECK-NEXT: moe.add
func.func @no_attention(%x: tensor<?x16xf32>) -> tensor<?x16xf32> {
  %y = moe.add %x, %x : tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}

// -----

// The first result is a GEMM of rows (the lm_head): the function gets `logits_rows` last, and
// the GEMM reads its activation through moe.select_rows of it (weights are not selected).
// CHECK-LABEL: func.func @lm_head
// CHECK-SAME: %[[ROWS:[^:]+]]: tensor<?xi32> {moe.name = "logits_rows"})
// CHECK: %[[A:.+]] = moe.paged_attention
// CHECK: %[[H:.+]] = moe.reshape %[[A]]
// CHECK: %[[S:.+]] = moe.select_rows %[[H]], %[[ROWS]] : tensor<?x64xf32>, tensor<?xi32> -> tensor<?x64xf32>
// CHECK: %[[L:.+]] = moe.matmul %[[S]], %{{.+}} :
// CHECK: return %[[L]]
module attributes {moe.max_positions = 40 : i64} {
  func.func @lm_head(%tokens: tensor<?xi32> {moe.name = "tokens"}, %pos: tensor<?xi32> {moe.name = "positions"}, %q: tensor<?x4x16xf32>, %k: tensor<?x2x16xf32>, %v: tensor<?x2x16xf32>) -> tensor<?x32xf32> {
    %a = moe.attention %q, %k, %v {scale = 0.25 : f64, causal} : tensor<?x4x16xf32>, tensor<?x2x16xf32>, tensor<?x2x16xf32> -> tensor<?x4x16xf32>
    %h = moe.reshape %a : tensor<?x4x16xf32> -> tensor<?x64xf32>
    %w = moe.weight [#moe.tensor_ref<"m.safetensors", "lm_head.weight">] stored tensor<32x64xbf16> : tensor<32x64xbf16>
    %l = moe.matmul %h, %w : tensor<?x64xf32>, tensor<32x64xbf16> -> tensor<?x32xf32>
    return %l : tensor<?x32xf32>
  }
}
