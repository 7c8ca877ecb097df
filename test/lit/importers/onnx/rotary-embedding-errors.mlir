// com.microsoft.RotaryEmbedding nodes moe.rope cannot express are listed in
// the one error with the reason: a start offset instead of one position per
// token, `scale`, caches that are not one theta, caches that do not split the
// input into heads, caches whose values are not known, and an input that is
// not token-major.
// RUN: not moec-onnx-opt %s --moec-legalize-onnx 2>&1 | FileCheck %s
// CHECK: error: the model: 6 nodes have no lowering to the moe dialect:
// CHECK-NEXT: (com.microsoft, RotaryEmbedding, 1, "offset"): position_ids is not one position per token ([batch, seq]); the start-offset form (one element) has no moe equivalent
// CHECK-NEXT: (com.microsoft, RotaryEmbedding, 1, "scale"): scale != 1 and is_packed_batching have no moe equivalent
// CHECK-NEXT: (com.microsoft, RotaryEmbedding, 1, "not_theta"): cos_cache/sin_cache are not cos/sin(p * theta^(-2i/D) / factor) for one theta and factor
// CHECK-NEXT: (com.microsoft, RotaryEmbedding, 1, "heads"): the caches [4, 2], num_heads = 3 and rotary_embedding_dim = 4 do not split hidden = 16 into heads
// CHECK-NEXT: (com.microsoft, RotaryEmbedding, 1, "external"): cos_cache/sin_cache are not initializers whose values the importer can read
// CHECK-NEXT: (com.microsoft, RotaryEmbedding, 1, "batched"): the input is not a token-major [tokens, hidden] float tensor (a [batch, seq, hidden] input whose batch could not be folded, or the 4-d [batch, heads, seq, head] form)
// CHECK-NOT: error
func.func @unsupported(%x: tensor<?x16xf32>, %pos: tensor<?xi64>, %offset: tensor<1xi64>, %x3: tensor<2x?x16xf32>, %pos2: tensor<2x?xi64>) -> (tensor<?x16xf32>, tensor<?x16xf32>, tensor<?x16xf32>, tensor<?x16xf32>, tensor<?x16xf32>, tensor<2x?x16xf32>) {
  %cos = onnx.initializer "cos" {value = dense<[[1.00000000e+00, 1.00000000e+00], [5.40302277e-01, 9.99998987e-01], [-4.16146845e-01, 9.99996006e-01], [-9.89992499e-01, 9.99991000e-01]]> : tensor<4x2xf32>} : tensor<4x2xf32>
  %sin = onnx.initializer "sin" {value = dense<[[0.00000000e+00, 0.00000000e+00], [8.41470957e-01, 1.41421310e-03], [9.09297407e-01, 2.82842340e-03], [1.41120002e-01, 4.24262788e-03]]> : tensor<4x2xf32>} : tensor<4x2xf32>
  %bad = onnx.initializer "bad" {value = dense<0.5> : tensor<4x2xf32>} : tensor<4x2xf32>
  %big = onnx.initializer "big" : tensor<4x2xf32>
  %0 = onnx.node "RotaryEmbedding"(%x, %offset, %cos, %sin) {domain = "com.microsoft", opset = 1 : i64, name = "offset", node_attributes = {rotary_embedding_dim = 4 : i64, num_heads = 4 : i64}} : (tensor<?x16xf32>, tensor<1xi64>, tensor<4x2xf32>, tensor<4x2xf32>) -> tensor<?x16xf32>
  %1 = onnx.node "RotaryEmbedding"(%x, %pos, %cos, %sin) {domain = "com.microsoft", opset = 1 : i64, name = "scale", node_attributes = {scale = 2.0 : f32}} : (tensor<?x16xf32>, tensor<?xi64>, tensor<4x2xf32>, tensor<4x2xf32>) -> tensor<?x16xf32>
  %2 = onnx.node "RotaryEmbedding"(%x, %pos, %bad, %sin) {domain = "com.microsoft", opset = 1 : i64, name = "not_theta"} : (tensor<?x16xf32>, tensor<?xi64>, tensor<4x2xf32>, tensor<4x2xf32>) -> tensor<?x16xf32>
  %3 = onnx.node "RotaryEmbedding"(%x, %pos, %cos, %sin) {domain = "com.microsoft", opset = 1 : i64, name = "heads", node_attributes = {rotary_embedding_dim = 4 : i64, num_heads = 3 : i64}} : (tensor<?x16xf32>, tensor<?xi64>, tensor<4x2xf32>, tensor<4x2xf32>) -> tensor<?x16xf32>
  %4 = onnx.node "RotaryEmbedding"(%x, %pos, %big, %big) {domain = "com.microsoft", opset = 1 : i64, name = "external"} : (tensor<?x16xf32>, tensor<?xi64>, tensor<4x2xf32>, tensor<4x2xf32>) -> tensor<?x16xf32>
  %5 = onnx.node "RotaryEmbedding"(%x3, %pos2, %cos, %sin) {domain = "com.microsoft", opset = 1 : i64, name = "batched"} : (tensor<2x?x16xf32>, tensor<2x?xi64>, tensor<4x2xf32>, tensor<4x2xf32>) -> tensor<2x?x16xf32>
  return %0, %1, %2, %3, %4, %5 : tensor<?x16xf32>, tensor<?x16xf32>, tensor<?x16xf32>, tensor<?x16xf32>, tensor<?x16xf32>, tensor<2x?x16xf32>
}
