//===- GpuCheck.h - The gpu-check command line ------------------*- C++ -*-===//
//
// `gpu-check`: the GPU acceptance run over a folder of artifacts: CPU vs GPU
// on seeded random inputs (the whole model, and every step alone on the
// CPU's activations), GPU logits vs saved references, and (--bench) launch
// timing of benchmark artifacts against the H200's HBM and FP8 floors. Links
// only the runtime (no MLIR/LLVM). docs/runtime-cuda.md.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_RUNTIME_CHECK_GPUCHECK_H
#define MOEC_RUNTIME_CHECK_GPUCHECK_H

#include "runtime/artifact/Manifest.h"

#include <cstdint>
#include <vector>

namespace moec::runtime {

/// FLOPs and bytes one run of `tokens` tokens moves (an estimate from the
/// manifest: GEMM-like weights and the activations of every step).
struct WorkEstimate {
  double flops = 0;
  double bytes = 0;
};

/// Estimates the work of a run: every weight of rank >= 2 read by a step
/// that is not an embedding is a GEMM operand `[E?, N, K]` with 2 * rows *
/// N * K flops, rows = tokens * rows-per-token (for `[E, N, K]` weights the
/// first buffer argument's elements_per_token / K, e.g. top-k); bytes are
/// the weight bytes touched (min(E, rows) experts, with their scales) plus
/// every buffer argument's bytes at `tokens`.
WorkEstimate estimateWork(const manifest::Manifest &m, int64_t tokens);
/// The part of `estimateWork` that step `step` does.
WorkEstimate estimateStepWork(const manifest::Manifest &m, int step,
                              int64_t tokens);

/// The results of every step, for the per-step check: per step, the
/// positions in `Step.args` of its result buffers. Args are the op's
/// operands, then its results (docs/artifact.md §4.1), and the manifest does
/// not say how many results there are, so they are the longest run of
/// trailing buffer arguments whose buffers are first defined by this step:
/// not an input's buffer, not an argument of any earlier step and not an
/// earlier argument of this step. A step that writes only into an operand
/// (in place) has none.
std::vector<std::vector<int>> stepResultArgs(const manifest::Manifest &m);

/// Runs the gpu-check command line; returns the exit code (0 all passed,
/// 1 a failure, 2 usage, 77 no CUDA device).
int gpuCheckMain(int argc, char **argv);

} // namespace moec::runtime

#endif // MOEC_RUNTIME_CHECK_GPUCHECK_H
