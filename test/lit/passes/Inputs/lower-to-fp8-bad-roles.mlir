// Malformed `moe.role` / `moe.layer` attributes are rejected by --moec-lower-to-fp8
// (driven from ../lower-to-fp8.mlir).

// An unknown role string.
func.func @unknown_role(%x: tensor<?x128xf32>) -> tensor<?x128xf32> {
  // expected-error @+1 {{expected `moe.role` to be one of the roles in docs/passes.md, but got "qkv"}}
  %w = moe.weight [#moe.tensor_ref<"m.safetensors", "w">] stored tensor<128x128xbf16> {moe.role = "qkv"} : tensor<128x128xbf16>
  %y = moe.matmul %x, %w : tensor<?x128xf32>, tensor<128x128xbf16> -> tensor<?x128xf32>
  return %y : tensor<?x128xf32>
}

// -----

// A negative layer.
func.func @negative_layer(%x: tensor<?x128xf32>) -> tensor<?x128xf32> {
  // expected-error @+1 {{expected `moe.layer` to be an integer >= 0, but got -1 : i64}}
  %w = moe.weight [#moe.tensor_ref<"m.safetensors", "w">] stored tensor<128x128xbf16> {moe.layer = -1 : i64} : tensor<128x128xbf16>
  %y = moe.matmul %x, %w : tensor<?x128xf32>, tensor<128x128xbf16> -> tensor<?x128xf32>
  return %y : tensor<?x128xf32>
}
