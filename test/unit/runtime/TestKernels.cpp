//===- TestKernels.cpp - Hand-written CPU kernels for tests -----*- C++ -*-===//
//
// A tiny "model" as CPU kernels following runtime/cpu/KernelAbi.h: an
// embedding lookup, a bias add and a logits projection. Built twice as
// shared objects (MOEC_TEST_BIAS_SCALE 1 and 2) so that tests can load two
// different libraries into one process. Integer parameters arrive through
// the extra pointer after the arguments.
//
//===----------------------------------------------------------------------===//

#include "runtime/cpu/KernelAbi.h"

#include <cstring>

#ifndef MOEC_TEST_BIAS_SCALE
#define MOEC_TEST_BIAS_SCALE 1
#endif

#define MOEC_TEST_EXPORT extern "C" __attribute__((visibility("default")))

/// args: tokens i32 [T], embed f32 [V, D] (weight), x f32 [T, D];
/// params: D.
MOEC_TEST_EXPORT void moec_test_embed(void *const *args, int64_t tokens) {
  const int32_t *ids = static_cast<const int32_t *>(args[0]);
  const float *table = static_cast<const float *>(args[1]);
  float *x = static_cast<float *>(args[2]);
  int64_t d = static_cast<const int64_t *>(args[3])[0];
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t j = 0; j < d; ++j)
      x[t * d + j] = table[ids[t] * d + j];
}

/// args: x f32 [T, D], bias f32 [D] (weight), y f32 [T, D]; params: D.
/// y = x + MOEC_TEST_BIAS_SCALE * bias.
MOEC_TEST_EXPORT void moec_test_add(void *const *args, int64_t tokens) {
  const float *x = static_cast<const float *>(args[0]);
  const float *bias = static_cast<const float *>(args[1]);
  float *y = static_cast<float *>(args[2]);
  int64_t d = static_cast<const int64_t *>(args[3])[0];
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t j = 0; j < d; ++j)
      y[t * d + j] = x[t * d + j] + float(MOEC_TEST_BIAS_SCALE) * bias[j];
}

/// args: y f32 [T, D], head f32 [V, D] (weight), logits f32 [T, V];
/// params: D, V. logits = y . head^T, accumulated in order in f32.
MOEC_TEST_EXPORT void moec_test_logits(void *const *args, int64_t tokens) {
  const float *y = static_cast<const float *>(args[0]);
  const float *head = static_cast<const float *>(args[1]);
  float *logits = static_cast<float *>(args[2]);
  const int64_t *params = static_cast<const int64_t *>(args[3]);
  int64_t d = params[0], v = params[1];
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t o = 0; o < v; ++o) {
      float acc = 0.0f;
      for (int64_t j = 0; j < d; ++j)
        acc += y[t * d + j] * head[o * d + j];
      logits[t * v + o] = acc;
    }
}

/// A KV cache in the shape of paged attention. args: positions i32 [T],
/// slots i32 [T], page_table i32 [S, M], cache f32 [pages, P, 1, D] (a KV
/// cache pool), x f32 [T, D] (read and written); params: D, P, M. First
/// writes every row of x to its slot's page for its position, then sets
/// x[t] to the mean of its slot's cached rows at positions 0 .. positions[t]
/// (summed in position order).
MOEC_TEST_EXPORT void moec_test_kv_mean(void *const *args, int64_t tokens) {
  const int32_t *positions = static_cast<const int32_t *>(args[0]);
  const int32_t *slots = static_cast<const int32_t *>(args[1]);
  const int32_t *table = static_cast<const int32_t *>(args[2]);
  float *cache = static_cast<float *>(args[3]);
  float *x = static_cast<float *>(args[4]);
  const int64_t *params = static_cast<const int64_t *>(args[5]);
  int64_t d = params[0], p = params[1], m = params[2];
  auto row = [&](int32_t slot, int64_t position) {
    int64_t page = table[slot * m + position / p];
    return cache + (page * p + position % p) * d;
  };
  for (int64_t t = 0; t < tokens; ++t)
    std::memcpy(row(slots[t], positions[t]), x + t * d,
                size_t(d) * sizeof(float));
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t j = 0; j < d; ++j) {
      float acc = 0.0f;
      for (int64_t s = 0; s <= positions[t]; ++s)
        acc += row(slots[t], s)[j];
      x[t * d + j] = acc / float(positions[t] + 1);
    }
}

/// args: x f32 [T, D]; params: D. Zeroes x. Calls libc's memset, so the
/// library depends on libc (tests check that libc's symbols are not taken
/// for kernels).
MOEC_TEST_EXPORT void moec_test_zero(void *const *args, int64_t tokens) {
  int64_t d = static_cast<const int64_t *>(args[1])[0];
  std::memset(args[0], 0, size_t(tokens * d) * sizeof(float));
}
