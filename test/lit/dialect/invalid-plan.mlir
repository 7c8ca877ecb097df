// Every verifier branch of the plan (`#moe.plan`, `#moe.step`, `#moe.buffers`, `moe.constant`,
// `moe.kv_cache`) rejects a bad plan with its whole message.
// RUN: moec-opt %s --split-input-file --verify-diagnostics

//===----------------------------------------------------------------------===//
// The attributes on their own
//===----------------------------------------------------------------------===//

// #moe.plan: the arena holds at least one token.
// expected-error @+1 {{expected `max_tokens` >= 1, but got 0}}
#plan = #moe.plan<arena_bytes = 512, max_tokens = 0>

// -----

// #moe.plan: the arena size is a multiple of the buffer alignment.
// expected-error @+1 {{expected `arena_bytes` to be a non-negative multiple of 128, but got 100}}
#plan = #moe.plan<arena_bytes = 100, max_tokens = 4>

// -----

// #moe.step: step indices count from 0.
// expected-error @+1 {{expected a step index >= 0, but got -1}}
#step = #moe.step<-1>

// -----

// #moe.buffers: offsets are aligned.
// expected-error @+1 {{expected offset #1 to be a non-negative multiple of 128, but got 64}}
#buffers = #moe.buffers<offsets = [0, 64]>

// -----

// #moe.buffers: rows per token, when present, has one entry per offset.
// expected-error @+1 {{expected one `rows_per_token` entry per offset (2), but got 1}}
#buffers = #moe.buffers<offsets = [0, 128], rows_per_token = [2]>

// -----

// #moe.buffers: a value holds at least one row per token.
// expected-error @+1 {{expected `rows_per_token` #1 >= 1, but got 0}}
#buffers = #moe.buffers<offsets = [0, 128], rows_per_token = [2, 0]>

//===----------------------------------------------------------------------===//
// The attributes on ops and arguments
//===----------------------------------------------------------------------===//

// -----

// `moe.plan` must be a #moe.plan.
// expected-error @+1 {{'func.func' op expected `moe.plan` to be a `#moe.plan`, but got 512 : i64}}
func.func @plan_type(%x: tensor<?x16xf32>) -> tensor<?x16xf32> attributes {moe.plan = 512 : i64} {
  return %x : tensor<?x16xf32>
}

// -----

// A plan belongs to a function with a body.
// expected-error @+1 {{'func.func' op expected `moe.plan` on a function with a one-block body}}
func.func private @plan_external(tensor<?x16xf32>) -> tensor<?x16xf32> attributes {moe.plan = #moe.plan<arena_bytes = 512, max_tokens = 4>}

// -----

// `moe.step` must be a #moe.step.
func.func @step_type(%x: tensor<?x16xf32> {moe.buffers = #moe.buffers<offsets = [0]>}) -> tensor<?x16xf32> attributes {moe.plan = #moe.plan<arena_bytes = 512, max_tokens = 4>} {
  // expected-error @+1 {{'moe.add' op expected `moe.step` to be a `#moe.step`, but got 0 : i64}}
  %y = moe.add %x, %x {moe.buffers = #moe.buffers<offsets = [256]>, moe.step = 0 : i64} : tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}

// -----

// A folded constant never runs, so it is no step.
func.func @constant_step() -> tensor<16xbf16> {
  // expected-error @+1 {{'moe.weight' op expected a `moe.constant` op not to be a step, but got step 0}}
  %w = moe.weight [#moe.tensor_ref<"model.safetensors", "model.norm.weight">] stored tensor<16xbf16> {moe.constant, moe.step = #moe.step<0>} : tensor<16xbf16>
  return %w : tensor<16xbf16>
}

// -----

// A step outside a planned function has no arena.
func.func @step_unplanned(%x: tensor<?x16xf32>) -> tensor<?x16xf32> {
  // expected-error @+1 {{'moe.add' op expected `moe.step` only inside a function with `moe.plan`}}
  %y = moe.add %x, %x {moe.step = #moe.step<0>} : tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}

// -----

// `moe.buffers` must be a #moe.buffers.
func.func @buffers_type(%x: tensor<?x16xf32> {moe.buffers = #moe.buffers<offsets = [0]>}) -> tensor<?x16xf32> attributes {moe.plan = #moe.plan<arena_bytes = 512, max_tokens = 4>} {
  // expected-error @+1 {{'moe.add' op expected `moe.buffers` to be a `#moe.buffers`, but got array<i64: 256>}}
  %y = moe.add %x, %x {moe.buffers = array<i64: 256>} : tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}

// -----

// A folded constant lives in the weights section, not in the arena.
func.func @constant_buffers(%x: tensor<?x16xf32> {moe.buffers = #moe.buffers<offsets = [0]>}) -> tensor<16xbf16> attributes {moe.plan = #moe.plan<arena_bytes = 512, max_tokens = 4>} {
  // expected-error @+1 {{'moe.weight' op expected a `moe.constant` op to have no `moe.buffers`}}
  %w = moe.weight [#moe.tensor_ref<"model.safetensors", "model.norm.weight">] stored tensor<16xbf16> {moe.buffers = #moe.buffers<offsets = [256]>, moe.constant} : tensor<16xbf16>
  return %w : tensor<16xbf16>
}

// -----

// One offset per result.
func.func @buffers_count(%x: tensor<?x16xf32> {moe.buffers = #moe.buffers<offsets = [0]>}) -> tensor<?x16xf32> attributes {moe.plan = #moe.plan<arena_bytes = 1024, max_tokens = 4>} {
  // expected-error @+1 {{'moe.add' op expected one `moe.buffers` offset per result (1), but got 2}}
  %y = moe.add %x, %x {moe.buffers = #moe.buffers<offsets = [256, 512]>, moe.step = #moe.step<0>} : tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}

// -----

// Buffers outside a planned function have no arena.
func.func @buffers_unplanned(%x: tensor<?x16xf32>) -> tensor<?x16xf32> {
  // expected-error @+1 {{'moe.add' op expected `moe.buffers` only inside a function with `moe.plan`}}
  %y = moe.add %x, %x {moe.buffers = #moe.buffers<offsets = [256]>} : tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}

// -----

// `moe.constant` is a unit attribute.
func.func @constant_type() -> tensor<16xbf16> {
  // expected-error @+1 {{'moe.weight' op expected `moe.constant` to be a unit attribute, but got true}}
  %w = moe.weight [#moe.tensor_ref<"model.safetensors", "model.norm.weight">] stored tensor<16xbf16> {moe.constant = true} : tensor<16xbf16>
  return %w : tensor<16xbf16>
}

// -----

// An argument's `moe.buffers` must be a #moe.buffers.
// expected-error @+1 {{'func.func' op expected `moe.buffers` of argument #0 to be a `#moe.buffers`, but got 0 : i64}}
func.func @argument_type(%x: tensor<?x16xf32> {moe.buffers = 0 : i64}) -> tensor<?x16xf32> attributes {moe.plan = #moe.plan<arena_bytes = 512, max_tokens = 4>} {
  return %x : tensor<?x16xf32>
}

// -----

// An argument is one value with one offset.
// expected-error @+1 {{'func.func' op expected one `moe.buffers` offset for argument #0, but got 2}}
func.func @argument_count(%x: tensor<?x16xf32> {moe.buffers = #moe.buffers<offsets = [0, 256]>}) -> tensor<?x16xf32> attributes {moe.plan = #moe.plan<arena_bytes = 512, max_tokens = 4>} {
  return %x : tensor<?x16xf32>
}

// -----

// An argument's buffer outside a planned function has no arena.
// expected-error @+1 {{'func.func' op expected `moe.buffers` on argument #0 only in a function with `moe.plan`}}
func.func @argument_unplanned(%x: tensor<?x16xf32> {moe.buffers = #moe.buffers<offsets = [0]>}) -> tensor<?x16xf32> {
  return %x : tensor<?x16xf32>
}

// -----

// `moe.kv_cache` marks an argument as the KV cache: a unit attribute.
// expected-error @+1 {{'func.func' op expected `moe.kv_cache` of argument #0 to be a unit attribute, but got 1 : i64}}
func.func @kv_cache_not_unit(%kc: tensor<?x16x2x16xf32> {moe.kv_cache = 1 : i64}) {
  return
}

// -----

// A KV cache is pages of [P, heads, dim]: the page count is the runtime's, so dynamic.
// expected-error @+1 {{'func.func' op expected KV cache argument #1 to be a tensor<?xPxHxD> of pages (only the page count dynamic), but got 'tensor<4x16x2x16xf32>'}}
func.func @kv_cache_static_pages(%x: tensor<?x16xf32>, %kc: tensor<4x16x2x16xf32> {moe.kv_cache}) {
  return
}

// -----

// A KV cache page has a static shape.
// expected-error @+1 {{'func.func' op expected KV cache argument #0 to be a tensor<?xPxHxD> of pages (only the page count dynamic), but got 'tensor<?x?x2x16xf32>'}}
func.func @kv_cache_dynamic_page(%kc: tensor<?x?x2x16xf32> {moe.kv_cache}) {
  return
}

// -----

// A KV cache is 4-d.
// expected-error @+1 {{'func.func' op expected KV cache argument #0 to be a tensor<?xPxHxD> of pages (only the page count dynamic), but got 'tensor<?x16x32xf32>'}}
func.func @kv_cache_rank(%kc: tensor<?x16x32xf32> {moe.kv_cache}) {
  return
}

//===----------------------------------------------------------------------===//
// A planned function as a whole
//===----------------------------------------------------------------------===//

// -----

// Every argument of a planned function has its place.
// expected-error @+1 {{'func.func' op expected argument #1 to carry `moe.buffers`}}
func.func @argument_missing(%x: tensor<?x16xf32> {moe.buffers = #moe.buffers<offsets = [0]>}, %y: tensor<?x16xf32>) -> tensor<?x16xf32> attributes {moe.plan = #moe.plan<arena_bytes = 512, max_tokens = 4>} {
  return %x : tensor<?x16xf32>
}

// -----

// An argument of 4 x 16 f32 (256 bytes) at offset 384 ends past a 512-byte arena.
// expected-error @+1 {{'func.func' op argument #0: expected a buffer inside the 512-byte arena, but got 256 bytes at offset 384}}
func.func @argument_outside(%x: tensor<?x16xf32> {moe.buffers = #moe.buffers<offsets = [384]>}) -> tensor<?x16xf32> attributes {moe.plan = #moe.plan<arena_bytes = 512, max_tokens = 4>} {
  return %x : tensor<?x16xf32>
}

// -----

// A value the arena cannot address (4-bit elements) has no place in it.
// expected-error @+1 {{'func.func' op argument #0: expected a type the arena can hold, but got 'tensor<?xi4>'}}
func.func @argument_bits(%x: tensor<?xi4> {moe.buffers = #moe.buffers<offsets = [0]>}) -> tensor<?xi4> attributes {moe.plan = #moe.plan<arena_bytes = 512, max_tokens = 4>} {
  return %x : tensor<?xi4>
}

// -----

// Steps are numbered densely in block order: step 1 is missing.
func.func @step_gap(%x: tensor<?x16xf32> {moe.buffers = #moe.buffers<offsets = [0]>}) -> tensor<?x16xf32> attributes {moe.plan = #moe.plan<arena_bytes = 512, max_tokens = 4>} {
  %y = moe.add %x, %x {moe.buffers = #moe.buffers<offsets = [256]>, moe.step = #moe.step<0>} : tensor<?x16xf32>
  // expected-error @+1 {{'moe.add' op expected step index 1 (steps are numbered 0 to n-1 in block order), but got 2}}
  %z = moe.add %y, %y {moe.buffers = #moe.buffers<offsets = [0]>, moe.step = #moe.step<2>} : tensor<?x16xf32>
  return %z : tensor<?x16xf32>
}

// -----

// Steps are numbered densely in block order: no index twice.
func.func @step_twice(%x: tensor<?x16xf32> {moe.buffers = #moe.buffers<offsets = [0]>}) -> tensor<?x16xf32> attributes {moe.plan = #moe.plan<arena_bytes = 512, max_tokens = 4>} {
  %y = moe.add %x, %x {moe.buffers = #moe.buffers<offsets = [256]>, moe.step = #moe.step<0>} : tensor<?x16xf32>
  // expected-error @+1 {{'moe.add' op expected step index 1 (steps are numbered 0 to n-1 in block order), but got 0}}
  %z = moe.add %y, %y {moe.buffers = #moe.buffers<offsets = [0]>, moe.step = #moe.step<0>} : tensor<?x16xf32>
  return %z : tensor<?x16xf32>
}

// -----

// A step writes its results somewhere.
func.func @step_without_buffers(%x: tensor<?x16xf32> {moe.buffers = #moe.buffers<offsets = [0]>}) -> tensor<?x16xf32> attributes {moe.plan = #moe.plan<arena_bytes = 512, max_tokens = 4>} {
  // expected-error @+1 {{'moe.add' op expected step 0 to carry `moe.buffers`}}
  %y = moe.add %x, %x {moe.step = #moe.step<0>} : tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}

// -----

// The dispatched rows hold 2 rows per token: 2 x 4 x 16 x 4 = 512 bytes at offset 128 end
// past a 512-byte arena, though one row per token would fit.
func.func @result_outside(%x: tensor<?x16xf32> {moe.buffers = #moe.buffers<offsets = [256]>}) -> tensor<?x16xf32> attributes {moe.plan = #moe.plan<arena_bytes = 512, max_tokens = 4>} {
  // expected-error @+1 {{'moe.add' op result #0: expected a buffer inside the 512-byte arena, but got 512 bytes at offset 128}}
  %y = moe.add %x, %x {moe.buffers = #moe.buffers<offsets = [128], rows_per_token = [2]>, moe.step = #moe.step<0>} : tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}

// -----

// A reshape aliases its operand: it names the operand's offset.
func.func @alias_offset(%x: tensor<?x16xf32> {moe.buffers = #moe.buffers<offsets = [0]>}) -> tensor<?x4x4xf32> attributes {moe.plan = #moe.plan<arena_bytes = 512, max_tokens = 4>} {
  %y = moe.add %x, %x {moe.buffers = #moe.buffers<offsets = [256]>, moe.step = #moe.step<0>} : tensor<?x16xf32>
  // expected-error @+1 {{'moe.reshape' op expected `moe.buffers` to name the operand's offset 256, but got 0}}
  %r = moe.reshape %y {moe.buffers = #moe.buffers<offsets = [0]>} : tensor<?x16xf32> -> tensor<?x4x4xf32>
  return %r : tensor<?x4x4xf32>
}

// -----

// A KV cache is the runtime's state, not an arena buffer.
// expected-error @+1 {{'func.func' op expected KV cache argument #1 to carry no `moe.buffers`}}
func.func @kv_cache_with_buffers(%x: tensor<?x16xf32> {moe.buffers = #moe.buffers<offsets = [0]>}, %kc: tensor<?x16x2x16xf32> {moe.kv_cache, moe.buffers = #moe.buffers<offsets = [256]>}) -> tensor<?x16xf32> attributes {moe.plan = #moe.plan<arena_bytes = 512, max_tokens = 4>} {
  return %x : tensor<?x16xf32>
}
