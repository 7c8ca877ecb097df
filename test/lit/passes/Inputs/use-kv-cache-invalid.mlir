// What --moec-use-kv-cache refuses (run from ../use-kv-cache.mlir). Its option checks come
// first: DTYPE (`dtype=f16`) and PAGES (`page-tokens=0`) fail on the first function.
// DTYPE: error: 'func.func' op unsupported KV cache element type 'f16' (supported: bf16, f32)
// PAGES: error: 'func.func' op expected `page-tokens` and `max-sequences` >= 1, but got 0 and 64

// Bidirectional attention cannot be cached: a row would see later rows.
module attributes {moe.max_positions = 40 : i64} {
  func.func @not_causal(%pos: tensor<?xi32> {moe.name = "positions"}, %q: tensor<?x4x16xf32>, %k: tensor<?x2x16xf32>) -> tensor<?x4x16xf32> {
    // expected-error @+1 {{'moe.attention' op cannot use a KV cache: the attention is not causal}}
    %a = moe.attention %q, %k, %k {scale = 0.25 : f64} : tensor<?x4x16xf32>, tensor<?x2x16xf32>, tensor<?x2x16xf32> -> tensor<?x4x16xf32>
    return %a : tensor<?x4x16xf32>
  }
}

// -----

// The rows' positions say where they go in the cache.
module attributes {moe.max_positions = 40 : i64} {
  // expected-error @+1 {{'func.func' op needs an argument named `positions` to use a KV cache}}
  func.func @no_positions(%q: tensor<?x4x16xf32>, %k: tensor<?x2x16xf32>) -> tensor<?x4x16xf32> {
    %a = moe.attention %q, %k, %k {scale = 0.25 : f64, causal} : tensor<?x4x16xf32>, tensor<?x2x16xf32>, tensor<?x2x16xf32> -> tensor<?x4x16xf32>
    return %a : tensor<?x4x16xf32>
  }
}

// -----

// Without moe.max_positions (and no max-context option) the page table has no size; with
// max-context=33 it is 64 x ceil(33 / 16).
// CONTEXT-LABEL: func.func @no_max_positions
// CONTEXT-SAME: tensor<64x3xi32> {moe.name = "page_table"}
// expected-error @+1 {{'func.func' op needs the longest sequence for its page table: set `max-context`, or import a model that records `moe.max_positions`}}
func.func @no_max_positions(%pos: tensor<?xi32> {moe.name = "positions"}, %q: tensor<?x4x16xf32>, %k: tensor<?x2x16xf32>) -> tensor<?x4x16xf32> {
  %a = moe.attention %q, %k, %k {scale = 0.25 : f64, causal} : tensor<?x4x16xf32>, tensor<?x2x16xf32>, tensor<?x2x16xf32> -> tensor<?x4x16xf32>
  return %a : tensor<?x4x16xf32>
}

// -----

// The pass runs once: a function with a page table already uses a cache.
module attributes {moe.max_positions = 40 : i64} {
  // expected-error @+1 {{'func.func' op already uses a KV cache (it has a `slots` or `page_table` argument)}}
  func.func @twice(%pos: tensor<?xi32> {moe.name = "positions"}, %slots: tensor<?xi32> {moe.name = "slots"}, %q: tensor<?x4x16xf32>, %k: tensor<?x2x16xf32>) -> tensor<?x4x16xf32> {
    %a = moe.attention %q, %k, %k {scale = 0.25 : f64, causal} : tensor<?x4x16xf32>, tensor<?x2x16xf32>, tensor<?x2x16xf32> -> tensor<?x4x16xf32>
    return %a : tensor<?x4x16xf32>
  }
}
