//===- TestCudaKernels.cpp - Host kernels for the fake CUDA driver -*- C++
//-*-===//
//
// The test model's steps (TestKernels.cpp) written against the CUDA kernel
// ABI (docs/artifact.md): params are the addresses of one device pointer
// per step argument, the workspace pointer and the 64-bit token count.
// FakeCudaDriver.cpp runs them on the host with the launch's grid and block,
// and each kernel covers exactly the rows its grid covers, so a wrong grid
// or parameter order shows up in the logits. Shapes are baked in, as in
// compiled kernels (TestModel: hidden 16, vocabulary 37).
//
//===----------------------------------------------------------------------===//

#include <cstdint>

// The bias scale of `moec_test_cuda_add`: 1, or a deliberately wrong kernel
// (moec_test_cuda_kernels_wrong) for gpu-check's per-step check to catch.
#ifndef MOEC_TEST_CUDA_BIAS_SCALE
#define MOEC_TEST_CUDA_BIAS_SCALE 1.0f
#endif

#define MOEC_TEST_EXPORT extern "C" __attribute__((visibility("default")))

namespace {
constexpr int64_t kHidden = 16, kVocab = 37;

template <typename T> T *pointer(void **params, int i) {
  return *static_cast<T **>(params[i]);
}
// The token count after `n` pointer arguments and the workspace.
int64_t tokensAfter(void **params, int n) {
  return *static_cast<long long *>(params[n + 1]);
}
} // namespace

/// embed(tokens, table, x): grid x = T, one row per block.
MOEC_TEST_EXPORT void moec_test_cuda_embed(void **params, const unsigned *grid,
                                           const unsigned *, unsigned) {
  const int32_t *ids = pointer<int32_t>(params, 0);
  const float *table = pointer<float>(params, 1);
  float *x = pointer<float>(params, 2);
  int64_t tokens = tokensAfter(params, 3);
  for (int64_t r = 0; r < int64_t(grid[0]) && r < tokens; ++r)
    for (int64_t j = 0; j < kHidden; ++j)
      x[r * kHidden + j] = table[ids[r] * kHidden + j];
}

/// add(x, bias, y): one thread per element, grid x = ceil(T * 16 / block).
MOEC_TEST_EXPORT void moec_test_cuda_add(void **params, const unsigned *grid,
                                         const unsigned *block, unsigned) {
  const float *x = pointer<float>(params, 0);
  const float *bias = pointer<float>(params, 1);
  float *y = pointer<float>(params, 2);
  int64_t tokens = tokensAfter(params, 3);
  int64_t threads = int64_t(grid[0]) * block[0];
  for (int64_t i = 0; i < threads && i < tokens * kHidden; ++i)
    y[i] = x[i] + MOEC_TEST_CUDA_BIAS_SCALE * bias[i % kHidden];
}

/// logits, first launch: y . head^T into the workspace, grid (T, 1, 1).
MOEC_TEST_EXPORT void moec_test_cuda_logits(void **params, const unsigned *grid,
                                            const unsigned *, unsigned) {
  const float *y = pointer<float>(params, 0);
  const float *head = pointer<float>(params, 1);
  float *workspace = pointer<float>(params, 3);
  int64_t tokens = tokensAfter(params, 3);
  for (int64_t t = 0; t < int64_t(grid[0]) && t < tokens; ++t)
    for (int64_t o = 0; o < kVocab; ++o) {
      float acc = 0.0f;
      for (int64_t j = 0; j < kHidden; ++j)
        acc += y[t * kHidden + j] * head[o * kHidden + j];
      workspace[t * kVocab + o] = acc;
    }
}

/// logits, second launch: copies the workspace to the logits buffer, grid
/// (ceil(T * 37 / 64), 1, 1) x 64 threads.
MOEC_TEST_EXPORT void moec_test_cuda_copy_out(void **params,
                                              const unsigned *grid,
                                              const unsigned *block, unsigned) {
  float *logits = pointer<float>(params, 2);
  const float *workspace = pointer<float>(params, 3);
  int64_t tokens = tokensAfter(params, 3);
  int64_t threads = int64_t(grid[0]) * block[0];
  for (int64_t i = 0; i < threads && i < tokens * kVocab; ++i)
    logits[i] = workspace[i];
}
