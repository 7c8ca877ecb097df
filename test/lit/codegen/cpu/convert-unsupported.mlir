// --moec-convert-planned-to-cpu fails on a step op that no cpu pattern lowers, naming the op and
// its step.
// RUN: moec-opt %s --moec-plan-buffers="max-tokens=4" --moec-convert-planned-to-cpu="cpu=x86-64-v3" -verify-diagnostics

func.func @forward(%x: tensor<?x64xf32>, %g: tensor<8x64xbf16>, %w1: tensor<8x32x64xbf16>,
                   %w3: tensor<8x32x64xbf16>, %w2: tensor<8x64x32xbf16>) -> tensor<?x64xf32> {
  // expected-error @+1 {{'moe.moe' op cannot be compiled for the cpu target (step 0): the op has no cpu kernel (yet)}}
  %y = moe.moe %x router %g experts %w1, %w3, %w2
      {routing = #moe.routing<scoring = softmax, k = 2, norm_topk_prob = true>}
      : (tensor<?x64xf32>, tensor<8x64xbf16>, tensor<8x32x64xbf16>,
         tensor<8x32x64xbf16>, tensor<8x64x32xbf16>) -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
