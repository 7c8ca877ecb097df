//===- TestCudaKernels.cpp - Host kernels for the fake CUDA driver -*- C++
//-*-===//
//
// The test model's steps (TestKernels.cpp) written against the CUDA kernel
// ABI (docs/artifact.md): params are the addresses of one device pointer
// per step argument, the workspace pointer, the 64-bit token count and the
// launch's tensor maps (only `moec_test_cuda_add_maps` has any).
// FakeCudaDriver.cpp runs them on the host with the launch's grid and block,
// and each kernel covers exactly the rows its grid covers, so a wrong grid
// or parameter order shows up in the logits. Shapes are baked in, as in
// compiled kernels (TestModel: hidden 16, vocabulary 37).
//
//===----------------------------------------------------------------------===//

#include <cstdint>
#include <cstring>

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

/// What `moec_test_cuda_add_maps` received: the test sets how many tensor
/// maps its launch passes after `tokens`; each run records the step's three
/// pointers, the addresses of the map parameters and their 128 bytes.
#define MOEC_TEST_DATA __attribute__((visibility("default")))
extern "C" {
MOEC_TEST_DATA int moec_test_cuda_map_count = 0;
MOEC_TEST_DATA uintptr_t moec_test_cuda_pointers_seen[3];
MOEC_TEST_DATA uintptr_t moec_test_cuda_map_params_seen[8];
MOEC_TEST_DATA unsigned char moec_test_cuda_maps_seen[8][128];
}

/// add(x, bias, y) with tensor maps after `tokens` (params 5 ...): the add,
/// plus a record of its parameters.
MOEC_TEST_EXPORT void moec_test_cuda_add_maps(void **params,
                                              const unsigned *grid,
                                              const unsigned *block,
                                              unsigned shared) {
  moec_test_cuda_add(params, grid, block, shared);
  for (int i = 0; i < 3; ++i)
    moec_test_cuda_pointers_seen[i] =
        uintptr_t(*static_cast<void **>(params[i]));
  for (int j = 0; j < moec_test_cuda_map_count && j < 8; ++j) {
    moec_test_cuda_map_params_seen[j] = uintptr_t(params[5 + j]);
    std::memcpy(moec_test_cuda_maps_seen[j], params[5 + j], 128);
  }
}
