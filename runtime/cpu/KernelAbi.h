//===- KernelAbi.h - Calling convention of CPU kernels ----------*- C++ -*-===//
//
// The contract between the CPU code generator and the CPU executor
// (docs/artifact.md, "CPU kernel ABI"). Every launch step of an artifact
// names a symbol exported by its `cpu.so`; the executor calls it with the
// step's argument pointers and the actual token count. This header is plain
// C so that kernels written by hand (tests) can include it too.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_RUNTIME_CPU_KERNELABI_H
#define MOEC_RUNTIME_CPU_KERNELABI_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// A CPU kernel: `extern "C" void <symbol>(void *const *args, int64_t
/// tokens)`, exported from `cpu.so` with default visibility.
///
/// - `args[i]`, for i < n (the step's argument count in the manifest), is the
///   base address of argument i: arena base + buffer offset for a buffer,
///   weights section base + weight offset for a weight. Buffers are 64-byte
///   aligned and row-major with the token dimension first; weights are
///   64-byte aligned and read-only (mapped from the file).
/// - `args[n]` points to the step's integer `params` as `const int64_t[]`
///   (nullptr when the step has none); kernels that take no parameters
///   ignore it.
/// - `tokens` is the number of tokens of this run, 1 <= tokens <= max_tokens.
///   Rows beyond `tokens` in per-token buffers hold stale data.
///
/// Kernels run on the calling thread, one after another, in step order; they
/// must not keep pointers across calls or unwind (no C++ exceptions).
typedef void (*MoecCpuKernel)(void *const *args, int64_t tokens);

#ifdef __cplusplus
} // extern "C"
#endif

#endif // MOEC_RUNTIME_CPU_KERNELABI_H
