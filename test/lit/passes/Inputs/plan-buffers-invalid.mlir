// What --moec-plan-buffers refuses to place (run from ../plan-buffers.mlir).

// An op from another dialect has no kernel.
func.func @foreign_op(%x: tensor<?x16xf32>) -> tensor<?x16xf32> {
  // expected-error @+1 {{'arith.addf' op cannot be planned: a planned function holds only `moe` ops and `func.return`}}
  %y = arith.addf %x, %x : tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}

// -----

// Only the token dimension may be dynamic (the moe verifiers check op results; arguments are
// checked here).
// expected-error @+1 {{argument #0 cannot be planned: only the leading (token) dimension may be dynamic, but got 'tensor<?x?xf32>'}}
func.func @dynamic_feature(%x: tensor<?x?xf32>) -> tensor<?x?xf32> {
  return %x : tensor<?x?xf32>
}

// -----

// Elements narrower than a byte have no address (booleans, i1, take a byte).
// expected-error @+1 {{argument #0 cannot be planned: expected a ranked tensor of whole-byte elements, but got 'tensor<?xi4>'}}
func.func @bits(%x: tensor<?xi4>) -> tensor<?xi4> {
  return %x : tensor<?xi4>
}

// -----

// A second block has no single step order.
// expected-error @+1 {{'func.func' op cannot be planned: expected a single block}}
func.func @blocks(%x: tensor<?x16xf32>) -> tensor<?x16xf32> {
  cf.br ^next
^next:
  return %x : tensor<?x16xf32>
}
