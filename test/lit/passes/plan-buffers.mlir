// --moec-plan-buffers marks weight expressions constant, numbers the steps and places every
// activation in one arena (128-byte aligned, sized for max-tokens, reused across disjoint lifetimes).
// RUN: moec-opt %s --split-input-file --moec-plan-buffers="max-tokens=4" | FileCheck %s
// RUN: moec-opt %s --split-input-file --moec-plan-buffers="max-tokens=4" | moec-opt --split-input-file --moec-plan-buffers="max-tokens=4" | FileCheck %s
// The plan round-trips: printed, parsed and verified twice, it reads the same.
// RUN: moec-opt %s --split-input-file --moec-plan-buffers="max-tokens=4" | moec-opt --split-input-file | moec-opt --split-input-file | FileCheck %s
// RUN: moec-opt %s --split-input-file --moec-plan-buffers="max-tokens=3" | FileCheck %s --check-prefix=ODD

// A chain: each [?, 16] f32 value takes 4 x 16 x 4 = 256 bytes. %a and %b overlap (step 1
// reads %a and writes %b), %a and %c do not (nothing reads %a after step 1), so %c reuses %a's
// place; %x dies after step 0, so %b takes its place.
// CHECK-LABEL: func.func @reuse
// CHECK-SAME: (%[[X:.+]]: tensor<?x16xf32> {moe.buffers = #moe.buffers<offsets = [0]>})
// CHECK-SAME: attributes {moe.plan = #moe.plan<arena_bytes = 512, max_tokens = 4>}
// CHECK: %[[A:.+]] = moe.add %[[X]], %[[X]] {moe.buffers = #moe.buffers<offsets = [256]>, moe.step = #moe.step<0>}
// CHECK: %[[B:.+]] = moe.add %[[A]], %[[A]] {moe.buffers = #moe.buffers<offsets = [0]>, moe.step = #moe.step<1>}
// CHECK: %[[C:.+]] = moe.add %[[B]], %[[B]] {moe.buffers = #moe.buffers<offsets = [256]>, moe.step = #moe.step<2>}
// CHECK: return %[[C]]
// ODD-LABEL: func.func @reuse
// ODD-SAME: (%{{.+}}: tensor<?x16xf32> {moe.buffers = #moe.buffers<offsets = [0]>})
// ODD-SAME: attributes {moe.plan = #moe.plan<arena_bytes = 512, max_tokens = 3>}
// ODD: moe.add {{.+}} {moe.buffers = #moe.buffers<offsets = [256]>, moe.step = #moe.step<0>}
func.func @reuse(%x: tensor<?x16xf32>) -> tensor<?x16xf32> {
  %a = moe.add %x, %x : tensor<?x16xf32>
  %b = moe.add %a, %a : tensor<?x16xf32>
  %c = moe.add %b, %b : tensor<?x16xf32>
  return %c : tensor<?x16xf32>
}

// -----

// A reshape is no step: it names its operand's buffer, and a use through it keeps that buffer
// alive, so %b (defined while %a is still read through %r) gets a place of its own, and %c may
// not overwrite %x, which step 2 reads too.
// CHECK-LABEL: func.func @alias
// CHECK-SAME: (%[[X:.+]]: tensor<?x16xf32> {moe.buffers = #moe.buffers<offsets = [0]>})
// CHECK-SAME: attributes {moe.plan = #moe.plan<arena_bytes = 1024, max_tokens = 4>}
// CHECK: %[[A:.+]] = moe.add %[[X]], %[[X]] {moe.buffers = #moe.buffers<offsets = [256]>, moe.step = #moe.step<0>}
// CHECK: %[[R:.+]] = moe.reshape %[[A]] {moe.buffers = #moe.buffers<offsets = [256]>} : tensor<?x16xf32> -> tensor<?x4x4xf32>
// CHECK-NOT: moe.step
// CHECK: %[[B:.+]] = moe.mul %[[X]], %[[X]] {moe.buffers = #moe.buffers<offsets = [512]>, moe.step = #moe.step<1>}
// CHECK: %[[R2:.+]] = moe.reshape %[[R]] {moe.buffers = #moe.buffers<offsets = [256]>} : tensor<?x4x4xf32> -> tensor<?x16xf32>
// CHECK: %[[C:.+]] = moe.add %[[B]], %[[R2]] {moe.buffers = #moe.buffers<offsets = [768]>, moe.step = #moe.step<2>}
// CHECK: %[[D:.+]] = moe.add %[[C]], %[[X]] {moe.buffers = #moe.buffers<offsets = [256]>, moe.step = #moe.step<3>}
// CHECK: return %[[D]]
func.func @alias(%x: tensor<?x16xf32>) -> tensor<?x16xf32> {
  %a = moe.add %x, %x : tensor<?x16xf32>
  %r = moe.reshape %a : tensor<?x16xf32> -> tensor<?x4x4xf32>
  %b = moe.mul %x, %x : tensor<?x16xf32>
  %r2 = moe.reshape %r : tensor<?x4x4xf32> -> tensor<?x16xf32>
  %c = moe.add %b, %r2 : tensor<?x16xf32>
  %d = moe.add %c, %x : tensor<?x16xf32>
  return %d : tensor<?x16xf32>
}

// -----

// Weights and everything computed from weights alone are constants: no step, no buffer. The
// GEMM that reads them is step 0; its [?, 64] f32 result takes 1 KiB.
// CHECK-LABEL: func.func @constants
// CHECK-SAME: attributes {moe.plan = #moe.plan<arena_bytes = 1280, max_tokens = 4>}
// CHECK: %[[G:.+]] = moe.weight {{.+}} {moe.constant} : tensor<32x16xbf16>
// CHECK: %[[U:.+]] = moe.weight {{.+}} {moe.constant} : tensor<32x16xbf16>
// CHECK: %[[GU:.+]] = moe.concat %[[G]], %[[U]] {dim = 0 : i64, moe.constant}
// CHECK: %[[Q:.+]], %[[S:.+]] = moe.quantize %[[GU]] {moe.constant, scheme =
// CHECK: %[[W:.+]] = moe.dequantize %[[Q]], %[[S]] {moe.constant, scheme =
// CHECK: %[[Y:.+]] = moe.matmul %{{.+}}, %[[W]] {moe.buffers = #moe.buffers<offsets = [256]>, moe.step = #moe.step<0>}
// CHECK: return %[[Y]]
func.func @constants(%x: tensor<?x16xf32>) -> tensor<?x64xf32> {
  %g = moe.weight [#moe.tensor_ref<"model.safetensors", "model.layers.0.mlp.gate_proj.weight">] stored tensor<32x16xbf16> role <mlp_gate, layer = 0> : tensor<32x16xbf16>
  %u = moe.weight [#moe.tensor_ref<"model.safetensors", "model.layers.0.mlp.up_proj.weight">] stored tensor<32x16xbf16> role <mlp_up, layer = 0> : tensor<32x16xbf16>
  %gu = moe.concat %g, %u {dim = 0 : i64} : tensor<32x16xbf16>, tensor<32x16xbf16> -> tensor<64x16xbf16>
  %q, %s = moe.quantize %gu {scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<64x16xbf16> -> tensor<64x16xf8E4M3FN>, tensor<1x1xf32>
  %w = moe.dequantize %q, %s {scheme = #moe.block_scale<format = e4m3fn, block = [128, 128]>} : tensor<64x16xf8E4M3FN>, tensor<1x1xf32> -> tensor<64x16xf32>
  %y = moe.matmul %x, %w : tensor<?x16xf32>, tensor<64x16xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// moe.dispatch emits k = 2 rows per token: its rows and positions, and the grouped GEMM over
// them, are sized for 2 x max-tokens rows (2 x 4 x 16 x 4 = 512 bytes); the offsets [9] are
// not per token (36 bytes, one 128-byte slot); the combine is back to one row per token.
// CHECK-LABEL: func.func @dispatch
// CHECK-SAME: (%[[X:.+]]: tensor<?x16xf32> {moe.buffers = #moe.buffers<offsets = [0]>})
// CHECK: moe.router {{.+}} {moe.buffers = #moe.buffers<offsets = [256, 384]>, moe.step = #moe.step<0>
// CHECK: moe.dispatch {{.+}} {moe.buffers = #moe.buffers<offsets = [512, 1024, 1152], rows_per_token = [2, 1, 2]>, moe.step = #moe.step<1>}
// CHECK: moe.grouped_matmul {{.+}} {moe.buffers = #moe.buffers<offsets = [1280], rows_per_token = [2]>, moe.step = #moe.step<2>}
// CHECK: moe.combine
// CHECK-NOT: rows_per_token
// CHECK-SAME: moe.step = #moe.step<3>
func.func @dispatch(%x: tensor<?x16xf32>) -> tensor<?x16xf32> {
  %gate = moe.weight [#moe.tensor_ref<"model.safetensors", "model.layers.0.mlp.gate.weight">] stored tensor<8x16xbf16> role <router, layer = 0> : tensor<8x16xbf16>
  %w = moe.weight [#moe.tensor_ref<"model.safetensors", "model.layers.0.mlp.experts.0.down_proj.weight">, #moe.tensor_ref<"model.safetensors", "model.layers.0.mlp.experts.1.down_proj.weight">, #moe.tensor_ref<"model.safetensors", "model.layers.0.mlp.experts.2.down_proj.weight">, #moe.tensor_ref<"model.safetensors", "model.layers.0.mlp.experts.3.down_proj.weight">, #moe.tensor_ref<"model.safetensors", "model.layers.0.mlp.experts.4.down_proj.weight">, #moe.tensor_ref<"model.safetensors", "model.layers.0.mlp.experts.5.down_proj.weight">, #moe.tensor_ref<"model.safetensors", "model.layers.0.mlp.experts.6.down_proj.weight">, #moe.tensor_ref<"model.safetensors", "model.layers.0.mlp.experts.7.down_proj.weight">] stored tensor<16x16xbf16> role <expert_down, layer = 0> {transforms = [#moe.stack]} : tensor<8x16x16xbf16>
  %weights, %indices = moe.router %x, %gate {routing = #moe.routing<scoring = softmax, k = 2, norm_topk_prob = true>} : tensor<?x16xf32>, tensor<8x16xbf16> -> tensor<?x2xf32>, tensor<?x2xi32>
  %rows, %offsets, %positions = moe.dispatch %x, %indices : tensor<?x16xf32>, tensor<?x2xi32> -> tensor<?x16xf32>, tensor<9xi32>, tensor<?xi32>
  %y = moe.grouped_matmul %rows, %offsets, %w : tensor<?x16xf32>, tensor<9xi32>, tensor<8x16x16xbf16> -> tensor<?x16xf32>
  %out = moe.combine %y, %positions, %weights : tensor<?x16xf32>, tensor<?xi32>, tensor<?x2xf32> -> tensor<?x16xf32>
  return %out : tensor<?x16xf32>
}

// -----

// A KV cache is the runtime's state: its arguments get no `moe.buffers` and take none of the
// arena's bytes; the page table is a fixed [2, 3] i32 buffer (24 bytes, one 128-byte slot).
// The plan verifier accepts the unplaced cache arguments (the round-trip RUN lines).
// CHECK-LABEL: func.func @kv_cache
// CHECK-SAME: %{{[^:]+}}: tensor<2x3xi32> {moe.buffers = #moe.buffers<offsets = [1792]>}, %[[KC:[^:]+]]: tensor<?x16x2x16xbf16> {moe.kv_cache}, %[[VC:[^:]+]]: tensor<?x16x2x16xbf16> {moe.kv_cache})
// CHECK-SAME: attributes {moe.plan = #moe.plan<arena_bytes = 2944, max_tokens = 4>}
// CHECK: moe.paged_attention {{.+}}, %[[KC]], %[[VC]] {layer = 0 : i64, moe.buffers = #moe.buffers<offsets = [1920]>, moe.step = #moe.step<0>, scale = 2.500000e-01 : f64}
func.func @kv_cache(%q: tensor<?x4x16xf32>, %k: tensor<?x2x16xf32>, %pos: tensor<?xi32>, %slots: tensor<?xi32>, %table: tensor<2x3xi32>, %kc: tensor<?x16x2x16xbf16> {moe.kv_cache}, %vc: tensor<?x16x2x16xbf16> {moe.kv_cache}) -> tensor<?x4x16xf32> {
  %o = moe.paged_attention %q, %k, %k, %pos, %slots, %table, %kc, %vc {scale = 0.25 : f64, layer = 0 : i64}
      : tensor<?x4x16xf32>, tensor<?x2x16xf32>, tensor<?x2x16xf32>, tensor<?xi32>, tensor<?xi32>, tensor<2x3xi32>, tensor<?x16x2x16xbf16>, tensor<?x16x2x16xbf16> -> tensor<?x4x16xf32>
  return %o : tensor<?x4x16xf32>
}

// -----

// Errors: ops and types the arena cannot hold, and absurd token counts.
// RUN: moec-opt %S/Inputs/plan-buffers-invalid.mlir --moec-plan-buffers --split-input-file --verify-diagnostics
// RUN: not moec-opt %s --split-input-file --moec-plan-buffers="max-tokens=0" 2>&1 | FileCheck %s --check-prefix=ZERO
// RUN: not moec-opt %s --split-input-file --moec-plan-buffers="max-tokens=4611686018427387904" 2>&1 | FileCheck %s --check-prefix=HUGE
// ZERO: error: 'func.func' op expected `max-tokens` >= 1, but got 0
// HUGE: error: argument #0 cannot be planned: 'tensor<?x16xf32>' at 4611686018427387904 tokens does not fit in 2^62 bytes
