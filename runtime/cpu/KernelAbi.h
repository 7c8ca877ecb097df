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
/// - Nothing follows `args[n]`: the runtime services (threads) reach kernels
///   through the `moec_cpu_runtime` symbol below, so `args` is unchanged
///   from the first version of this ABI.
///   Rows beyond `tokens` in per-token buffers hold stale data.
///
/// Kernels are called on the calling thread, one after another, in step
/// order; they must not keep pointers across calls or unwind (no C++
/// exceptions). A kernel may spread its work over the runtime's threads
/// through the services below, and returns only when all of it is done.
typedef void (*MoecCpuKernel)(void *const *args, int64_t tokens);

/// One chunk of a parallel loop: items `[begin, end)` of the loop whose
/// context is `ctx`.
typedef void (*MoecParallelBody)(void *ctx, int64_t begin, int64_t end);

/// The services the runtime offers to kernels (docs/artifact.md §4, "CPU
/// runtime services"). The shared object cannot link against the runtime
/// (it has no undefined symbols), so the runtime hands this table over at
/// load time: a `cpu.so` that wants it exports a data symbol
/// `MOEC_CPU_RUNTIME_SYMBOL` of type `const MoecCpuRuntime *`, initialised
/// to null, and the executor stores the address of its table there before
/// any kernel runs. A kernel that finds null (an older runtime, or a test
/// calling it directly) does all its work on the calling thread. Older
/// `cpu.so`s export no such symbol and never see the table.
///
/// Versions only append fields: a kernel built for version V uses the table
/// only when `version >= V` (all fields are present from version 1).
typedef struct MoecCpuRuntime {
  /// `MOEC_CPU_RUNTIME_VERSION` of the runtime that filled the table.
  int32_t version;
  /// Threads `parallel_for` runs bodies on, the calling one included; >= 1.
  int32_t num_threads;
  /// Calls `body(ctx, begin, end)` on disjoint ranges that together cover
  /// `[0, count)` exactly once, each of at least `grain` items (but the
  /// last), on up to `num_threads` threads, the calling one included, and
  /// returns when all have returned. Ranges may run in any order and
  /// concurrently, so bodies must write disjoint memory. With one thread,
  /// or `count <= grain`, it is `body(ctx, 0, count)` on the calling thread.
  /// A call from inside a body runs inline. `self` is this table.
  void (*parallel_for)(const struct MoecCpuRuntime *self, MoecParallelBody body,
                       void *ctx, int64_t count, int64_t grain);
  /// The runtime's own state; kernels do not touch it.
  void *impl;
} MoecCpuRuntime;

/// The version this header describes.
#define MOEC_CPU_RUNTIME_VERSION 1

/// The exported `const MoecCpuRuntime *` of a `cpu.so` that uses threads.
#define MOEC_CPU_RUNTIME_SYMBOL "moec_cpu_runtime"

#ifdef __cplusplus
} // extern "C"
#endif

#endif // MOEC_RUNTIME_CPU_KERNELABI_H
