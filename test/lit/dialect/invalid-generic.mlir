// Every verifier branch of the generic token-wise ops rejects bad IR with its whole message.
// RUN: moec-opt %s --split-input-file --verify-diagnostics

// moe.binary: an operand that does not broadcast to the result is rejected.
func.func @binary_not_broadcast(%a: tensor<?x8xf32>, %b: tensor<?x4xf32>) {
  // expected-error @+1 {{'moe.binary' op expected `rhs` [?, 4] to broadcast to the result [?, 8]}}
  %0 = moe.binary <sub> %a, %b : tensor<?x8xf32>, tensor<?x4xf32> -> tensor<?x8xf32>
  return
}

// -----

// moe.binary: a token dimension aligned with a feature dimension is rejected.
func.func @binary_tokens_misaligned(%a: tensor<?x4x8xf32>, %b: tensor<?x8xf32>) {
  // expected-error @+1 {{'moe.binary' op expected `rhs` [?, 8] to broadcast to the result [?, 4, 8]}}
  %0 = moe.binary <sub> %a, %b : tensor<?x4x8xf32>, tensor<?x8xf32> -> tensor<?x4x8xf32>
  return
}

// -----

// moe.binary: a result larger than every operand is rejected.
func.func @binary_result_too_big(%a: tensor<?x1xf32>, %b: tensor<1xf32>) {
  // expected-error @+1 {{'moe.binary' op expected result dimension 1 ([?, 8]) to be the size of an operand's}}
  %0 = moe.binary <max> %a, %b : tensor<?x1xf32>, tensor<1xf32> -> tensor<?x8xf32>
  return
}

// -----

// moe.binary: mixed element types are rejected.
func.func @binary_mixed(%a: tensor<?x8xf32>, %b: tensor<?x8xbf16>) {
  // expected-error @+1 {{'moe.binary' op expected `rhs` element type 'f32', but got 'bf16'}}
  %0 = moe.binary <pow> %a, %b : tensor<?x8xf32>, tensor<?x8xbf16> -> tensor<?x8xf32>
  return
}

// -----

// moe.compare: operands of different element types are rejected.
func.func @compare_mixed(%a: tensor<?x8xi64>, %b: tensor<?x8xi32>) {
  // expected-error @+1 {{'moe.compare' op expected `rhs` element type 'i64', but got 'i32'}}
  %0 = moe.compare <eq> %a, %b : tensor<?x8xi64>, tensor<?x8xi32> -> tensor<?x8xi1>
  return
}

// -----

// moe.select: branches of different element types are rejected.
func.func @select_mixed(%c: tensor<?x8xi1>, %a: tensor<?x8xf32>, %b: tensor<?x8xbf16>) {
  // expected-error @+1 {{'moe.select' op expected `on_false` element type 'f32', but got 'bf16'}}
  %0 = moe.select %c, %a, %b : tensor<?x8xi1>, tensor<?x8xf32>, tensor<?x8xbf16> -> tensor<?x8xf32>
  return
}

// -----

// moe.select: a condition that does not broadcast is rejected.
func.func @select_condition(%c: tensor<?x2xi1>, %a: tensor<?x8xf32>, %b: tensor<f32>) {
  // expected-error @+1 {{'moe.select' op expected `condition` [?, 2] to broadcast to the result [?, 8]}}
  %0 = moe.select %c, %a, %b : tensor<?x2xi1>, tensor<?x8xf32>, tensor<f32> -> tensor<?x8xf32>
  return
}

// -----

// moe.cast: a change of shape is rejected.
func.func @cast_shape(%a: tensor<?x8xi1>) {
  // expected-error @+1 {{'moe.cast' op expected `result` of shape [?, 8], but got [?, 4]}}
  %0 = moe.cast %a : tensor<?x8xi1> -> tensor<?x4xf32>
  return
}

// -----

// moe.reduce: an empty `dims` is rejected.
func.func @reduce_no_dims(%a: tensor<?x8xf32>) {
  // expected-error @+1 {{'moe.reduce' op expected at least one dimension in `dims`}}
  %0 = moe.reduce <sum> %a {dims = array<i64>} : tensor<?x8xf32> -> tensor<?x8xf32>
  return
}

// -----

// moe.reduce: reducing the token dimension is rejected.
func.func @reduce_tokens(%a: tensor<?x8xf32>) {
  // expected-error @+1 {{'moe.reduce' op expected `dims` in [1, 2), but got 0}}
  %0 = moe.reduce <sum> %a {dims = array<i64: 0>} : tensor<?x8xf32> -> tensor<1x8xf32>
  return
}

// -----

// moe.reduce: unsorted `dims` are rejected.
func.func @reduce_unsorted(%a: tensor<?x2x8xf32>) {
  // expected-error @+1 {{'moe.reduce' op expected strictly increasing `dims`, but got [2, 1]}}
  %0 = moe.reduce <sum> %a {dims = array<i64: 2, 1>} : tensor<?x2x8xf32> -> tensor<?xf32>
  return
}

// -----

// moe.reduce: a result that neither keeps nor drops the dimensions is rejected.
func.func @reduce_result(%a: tensor<?x2x8xf32>) {
  // expected-error @+1 {{'moe.reduce' op expected the result shape [?, 1, 8] or [?, 8], but got [?, 2]}}
  %0 = moe.reduce <sum> %a {dims = array<i64: 1>} : tensor<?x2x8xf32> -> tensor<?x2xf32>
  return
}

// -----

// moe.reduce: a result of another element type is rejected.
func.func @reduce_type(%a: tensor<?x8xf32>) {
  // expected-error @+1 {{'moe.reduce' op expected `result` element type 'f32', but got 'bf16'}}
  %0 = moe.reduce <sum> %a {dims = array<i64: 1>} : tensor<?x8xf32> -> tensor<?xbf16>
  return
}

// -----

// moe.topk: a rank-1 input (the token dimension only) is rejected.
func.func @topk_rank(%a: tensor<?xf32>) {
  // expected-error @+1 {{'moe.topk' op expected `x` of rank >= 2 (tokens first), but got rank 1}}
  %0:2 = moe.topk %a {k = 1 : i64} : tensor<?xf32> -> tensor<?xf32>, tensor<?xi64>
  return
}

// -----

// moe.topk: k beyond the last dimension is rejected.
func.func @topk_k(%a: tensor<?x4xf32>) {
  // expected-error @+1 {{'moe.topk' op expected `k` <= 4 (the last dimension), but got k = 5}}
  %0:2 = moe.topk %a {k = 5 : i64} : tensor<?x4xf32> -> tensor<?x5xf32>, tensor<?x5xi64>
  return
}

// -----

// moe.topk: values of another type are rejected.
func.func @topk_values(%a: tensor<?x4xf32>) {
  // expected-error @+1 {{'moe.topk' op expected `values` element type 'f32', but got 'bf16'}}
  %0:2 = moe.topk %a {k = 2 : i64} : tensor<?x4xf32> -> tensor<?x2xbf16>, tensor<?x2xi64>
  return
}

// -----

// moe.topk: values of the wrong shape are rejected.
func.func @topk_values_shape(%a: tensor<?x4xf32>) {
  // expected-error @+1 {{'moe.topk' op expected `values` of shape [?, 2], but got [?, 3]}}
  %0:2 = moe.topk %a {k = 2 : i64} : tensor<?x4xf32> -> tensor<?x3xf32>, tensor<?x2xi64>
  return
}

// -----

// moe.topk: indices of the wrong shape are rejected.
func.func @topk_indices_shape(%a: tensor<?x4xf32>) {
  // expected-error @+1 {{'moe.topk' op expected `indices` of shape [?, 2], but got [?, 3]}}
  %0:2 = moe.topk %a {k = 2 : i64} : tensor<?x4xf32> -> tensor<?x2xf32>, tensor<?x3xi64>
  return
}

// -----

// moe.transpose: moving the token dimension is rejected.
func.func @transpose_tokens(%a: tensor<?x4xf32>) {
  // expected-error @+1 {{'moe.transpose' op expected `permutation` to be a permutation of the 2 dimensions that keeps dimension 0 first, but got [1, 0]}}
  %0 = moe.transpose %a {permutation = array<i64: 1, 0>} : tensor<?x4xf32> -> tensor<?x4xf32>
  return
}

// -----

// moe.transpose: a repeated dimension is rejected.
func.func @transpose_repeat(%a: tensor<?x4x8xf32>) {
  // expected-error @+1 {{'moe.transpose' op expected `permutation` to be a permutation of the 3 dimensions that keeps dimension 0 first, but got [0, 1, 1]}}
  %0 = moe.transpose %a {permutation = array<i64: 0, 1, 1>} : tensor<?x4x8xf32> -> tensor<?x4x4xf32>
  return
}

// -----

// moe.transpose: a result of the wrong shape is rejected.
func.func @transpose_shape(%a: tensor<?x4x8xf32>) {
  // expected-error @+1 {{'moe.transpose' op expected `result` of shape [?, 8, 4], but got [?, 4, 8]}}
  %0 = moe.transpose %a {permutation = array<i64: 0, 2, 1>} : tensor<?x4x8xf32> -> tensor<?x4x8xf32>
  return
}

// -----

// moe.transpose: a result of another element type is rejected.
func.func @transpose_type(%a: tensor<?x4x8xf32>) {
  // expected-error @+1 {{'moe.transpose' op expected `result` element type 'f32', but got 'bf16'}}
  %0 = moe.transpose %a {permutation = array<i64: 0, 2, 1>} : tensor<?x4x8xf32> -> tensor<?x8x4xbf16>
  return
}

// -----

// moe.batch_matmul: a product across tokens ([T, K] x [K, T]) is rejected.
func.func @batch_matmul_rank(%a: tensor<?x8xf32>, %b: tensor<?x8xf32>) {
  // expected-error @+1 {{'moe.batch_matmul' op expected operands of the same rank >= 3 with equal leading dimensions, but got [?, 8] and [?, 8]}}
  %0 = moe.batch_matmul %a, %b : tensor<?x8xf32>, tensor<?x8xf32> -> tensor<?x8xf32>
  return
}

// -----

// moe.batch_matmul: different batch dimensions are rejected.
func.func @batch_matmul_batch(%a: tensor<?x4x2x8xf32>, %b: tensor<?x2x8x3xf32>) {
  // expected-error @+1 {{'moe.batch_matmul' op expected operands of the same rank >= 3 with equal leading dimensions, but got [?, 4, 2, 8] and [?, 2, 8, 3]}}
  %0 = moe.batch_matmul %a, %b : tensor<?x4x2x8xf32>, tensor<?x2x8x3xf32> -> tensor<?x4x2x3xf32>
  return
}

// -----

// moe.batch_matmul: different K dimensions are rejected.
func.func @batch_matmul_k(%a: tensor<?x2x8xf32>, %b: tensor<?x4x3xf32>) {
  // expected-error @+1 {{'moe.batch_matmul' op expected the K dimension of `lhs` (8) and `rhs` (4) to be equal}}
  %0 = moe.batch_matmul %a, %b : tensor<?x2x8xf32>, tensor<?x4x3xf32> -> tensor<?x2x3xf32>
  return
}

// -----

// moe.batch_matmul: a result of the wrong shape is rejected.
func.func @batch_matmul_result(%a: tensor<?x2x8xf32>, %b: tensor<?x8x3xf32>) {
  // expected-error @+1 {{'moe.batch_matmul' op expected `result` of shape [?, 2, 3], but got [?, 3, 2]}}
  %0 = moe.batch_matmul %a, %b : tensor<?x2x8xf32>, tensor<?x8x3xf32> -> tensor<?x3x2xf32>
  return
}

// -----

// moe.batch_matmul: operands of different element types are rejected.
func.func @batch_matmul_type(%a: tensor<?x2x8xf32>, %b: tensor<?x8x3xbf16>) {
  // expected-error @+1 {{'moe.batch_matmul' op expected `rhs` element type 'f32', but got 'bf16'}}
  %0 = moe.batch_matmul %a, %b : tensor<?x2x8xf32>, tensor<?x8x3xbf16> -> tensor<?x2x3xf32>
  return
}

// -----

// moe.gather_elements: gathering across tokens is rejected.
func.func @gather_elements_tokens(%a: tensor<?x8xf32>, %i: tensor<?x2xi64>) {
  // expected-error @+1 {{'moe.gather_elements' op expected `dim` in [1, 2), but got 0}}
  %0 = moe.gather_elements %a, %i {dim = 0 : i64} : tensor<?x8xf32>, tensor<?x2xi64> -> tensor<?x2xf32>
  return
}

// -----

// moe.gather_elements: indices larger than `x` outside `dim` are rejected.
func.func @gather_elements_fit(%a: tensor<?x2x8xf32>, %i: tensor<?x3x1xi64>) {
  // expected-error @+1 {{'moe.gather_elements' op expected `indices` [?, 3, 1] to fit in `x` [?, 2, 8] outside dimension 2}}
  %0 = moe.gather_elements %a, %i {dim = 2 : i64} : tensor<?x2x8xf32>, tensor<?x3x1xi64> -> tensor<?x3x1xf32>
  return
}

// -----

// moe.gather_elements: a result without the shape of the indices is rejected.
func.func @gather_elements_result(%a: tensor<?x8xf32>, %i: tensor<?x2xi64>) {
  // expected-error @+1 {{'moe.gather_elements' op expected `result` of shape [?, 2], but got [?, 8]}}
  %0 = moe.gather_elements %a, %i {dim = 1 : i64} : tensor<?x8xf32>, tensor<?x2xi64> -> tensor<?x8xf32>
  return
}

// -----

// moe.gather_elements: a result of another element type is rejected.
func.func @gather_elements_type(%a: tensor<?x8xf32>, %i: tensor<?x2xi64>) {
  // expected-error @+1 {{'moe.gather_elements' op expected `result` element type 'f32', but got 'bf16'}}
  %0 = moe.gather_elements %a, %i {dim = 1 : i64} : tensor<?x8xf32>, tensor<?x2xi64> -> tensor<?x2xbf16>
  return
}

// -----

// moe.scatter_elements: updates without the shape of the indices are rejected.
func.func @scatter_elements_updates(%a: tensor<?x8xf32>, %i: tensor<?x2xi64>, %u: tensor<?x3xf32>) {
  // expected-error @+1 {{'moe.scatter_elements' op expected `updates` of shape [?, 2], but got [?, 3]}}
  %0 = moe.scatter_elements %a, %i, %u {dim = 1 : i64} : tensor<?x8xf32>, tensor<?x2xi64>, tensor<?x3xf32> -> tensor<?x8xf32>
  return
}

// -----

// moe.scatter_elements: updates of another element type are rejected.
func.func @scatter_elements_updates_type(%a: tensor<?x8xf32>, %i: tensor<?x2xi64>, %u: tensor<?x2xbf16>) {
  // expected-error @+1 {{'moe.scatter_elements' op expected `updates` element type 'f32', but got 'bf16'}}
  %0 = moe.scatter_elements %a, %i, %u {dim = 1 : i64} : tensor<?x8xf32>, tensor<?x2xi64>, tensor<?x2xbf16> -> tensor<?x8xf32>
  return
}

// -----

// moe.scatter_elements: a result of another type than `x` is rejected.
func.func @scatter_elements_result(%a: tensor<?x8xf32>, %i: tensor<?x2xi64>, %u: tensor<?x2xf32>) {
  // expected-error @+1 {{'moe.scatter_elements' op expected the result type 'tensor<?x8xf32>', but got 'tensor<?x8xbf16>'}}
  %0 = moe.scatter_elements %a, %i, %u {dim = 1 : i64} : tensor<?x8xf32>, tensor<?x2xi64>, tensor<?x2xf32> -> tensor<?x8xbf16>
  return
}

// -----

// moe.one_hot: a result without the new last dimension is rejected.
func.func @one_hot_rank(%i: tensor<?x2xi64>) {
  // expected-error @+1 {{'moe.one_hot' op expected a result of rank 3, but got rank 2}}
  %0 = moe.one_hot %i {on_value = 1.0 : f64, off_value = 0.0 : f64} : tensor<?x2xi64> -> tensor<?x8xf32>
  return
}

// -----

// moe.one_hot: a result whose leading dimensions differ from the indices is rejected.
func.func @one_hot_shape(%i: tensor<?x2xi64>) {
  // expected-error @+1 {{'moe.one_hot' op expected `result` of shape [?, 2, 8], but got [?, 3, 8]}}
  %0 = moe.one_hot %i {on_value = 1.0 : f64, off_value = 0.0 : f64} : tensor<?x2xi64> -> tensor<?x3x8xf32>
  return
}
