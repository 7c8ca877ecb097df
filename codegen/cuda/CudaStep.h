//===- CudaStep.h - One planned step as CUDA C++ ----------------*- C++ -*-===//
//
// The contract between the CUDA program builder (CudaProgram.h) and the
// per-op emitters: what a step's emitter is given (`StepContext`) and what it
// returns (`CudaStep`: kernel text plus how to launch it).
//
// Every kernel of step `i` is an `extern "C" __global__` function named
// `moec_step_<i>` or `moec_step_<i>_<suffix>` whose parameters are, in
// order: one pointer per operand, then one per result (the op's order, which
// is the manifest's `Step.args` order), then `void *workspace`, then
// `long long tokens`, then one `const __grid_constant__ moec_tensor_map
// tm<j>` per tensor map of the launch (docs/artifact.md, "CUDA kernel
// ABI"). Launch shapes do
// not depend on the GPU: one source serves every CUDA target, and a kernel
// that needs a different instruction path per architecture selects it with
// the guards of `TargetInfo` (docs/cuda.md).
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_CODEGEN_CUDA_CUDASTEP_H
#define MOEC_CODEGEN_CUDA_CUDASTEP_H

#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/Operation.h"
#include "mlir/Support/LLVM.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringRef.h"

#include <array>
#include <cstdint>
#include <string>

namespace mlir::moec::cuda {

/// One axis of a launch grid as a function of the run's token count `T`:
/// `max(ceil(T * perToken / divisor) + constant, 1)`.
struct GridExtent {
  int64_t perToken = 0;
  int64_t divisor = 1;
  int64_t constant = 1;

  /// A grid extent that does not depend on `T`.
  static GridExtent fixed(int64_t n) { return {0, 1, n}; }
  /// `ceil(T * perToken / divisor)`.
  static GridExtent tokens(int64_t perToken, int64_t divisor = 1) {
    return {perToken, divisor, 0};
  }
  /// The extent at `tokens` tokens.
  int64_t at(int64_t tokens) const;
};

/// A TMA descriptor the runtime encodes over one kernel argument and passes
/// by value after `tokens` (manifest `TensorMap`; docs/artifact.md, "CUDA
/// kernel ABI"). The element type is the argument's.
struct TensorMapSpec {
  /// Index of the argument in `StepContext::args`.
  unsigned arg = 0;
  /// Elements per dimension, innermost first (rank 1..5); the extent at
  /// `max_tokens` for the token dimension.
  llvm::SmallVector<uint64_t, 5> dims;
  /// Bytes between consecutive indices of `dims[1..]` (rank - 1 entries,
  /// multiples of 16).
  llvm::SmallVector<uint64_t, 4> strides;
  /// Box elements per dimension (1..256; `box[0]` bytes a multiple of 16,
  /// at most the swizzle span when swizzled; the GEMM uses exactly the span,
  /// the only layout its wgmma descriptors and the host emulation model).
  llvm::SmallVector<unsigned, 5> box;
  /// Swizzle span in bytes: 0 (none), 32, 64 or 128.
  unsigned swizzleBytes = 0;
};

/// One kernel launch of a step.
struct CudaLaunch {
  /// The `extern "C" __global__` symbol.
  std::string kernel;
  /// Grid extents along x, y, z.
  std::array<GridExtent, 3> grid = {GridExtent::fixed(1), GridExtent::fixed(1),
                                    GridExtent::fixed(1)};
  /// Threads per block along x, y, z.
  std::array<unsigned, 3> block = {1, 1, 1};
  /// Dynamic shared memory per block, in bytes.
  unsigned sharedBytes = 0;
  /// Tensor maps passed after `tokens`, in kernel parameter order.
  llvm::SmallVector<TensorMapSpec> tensorMaps;
};

/// A piece of CUDA C++ that several steps share (templates, device
/// functions). The program holds each `key` once, before the first step
/// that needs it; equal keys must have equal text.
struct CudaLibrary {
  llvm::StringRef key;
  llvm::StringRef text;
};

/// What one planned step becomes.
struct CudaStep {
  /// Libraries the source needs, in dependency order (the prelude is always
  /// there and need not be listed).
  llvm::SmallVector<CudaLibrary> libraries;
  /// CUDA C++ defining the kernels of `launches`: usually one small
  /// `extern "C"` wrapper per kernel instantiating a library template with
  /// the step's shapes as compile-time constants.
  std::string source;
  /// The launches, run in this order.
  llvm::SmallVector<CudaLaunch, 2> launches;
  /// Device scratch the step needs at `max_tokens` (undefined on entry; the
  /// step initialises what it reads).
  uint64_t workspaceBytes = 0;
};

/// Choices of the CUDA code generator that the command line makes.
struct CudaCodegenOptions {
  /// Load the sm_90a FP8 GEMM's operand tiles with TMA (tensor maps passed
  /// to the kernel); otherwise with `cp.async` as on the other targets.
  bool tma = true;
};

/// One kernel parameter: an operand or a result of the step's op.
struct StepArg {
  /// The SSA value.
  Value value;
  /// Its type; only the leading dimension may be dynamic (the token rows).
  RankedTensorType type;
  /// Rows per token of a value with a dynamic leading dimension (1 unless
  /// the plan says otherwise, e.g. `k` after `moe.dispatch`).
  int64_t rowsPerToken = 1;
  /// A result (writable) rather than an operand.
  bool isResult = false;
  /// A planned constant: a weight in the artifact's weights section.
  bool isWeight = false;
  /// The parameter's name in the kernel: `a<i>`.
  std::string name;

  /// The element type in C: `float`, `unsigned short` (bf16 bits),
  /// `unsigned char` (FP8 codes), `int`, `long long`, ...
  llvm::StringRef elementCType() const;
  /// The parameter declaration, e.g. `const float *__restrict__ a0`.
  std::string declaration() const;
  /// Elements per leading row: the product of the trailing dimensions.
  int64_t rowElements() const;
  /// Whether the leading dimension is the (dynamic) token dimension.
  bool isPerToken() const;
};

/// What an emitter knows about the step it emits.
struct StepContext {
  /// The planned op (`moe.step = #moe.step<step>`).
  Operation *op = nullptr;
  /// The step index.
  int64_t step = 0;
  /// The arena's token capacity (`max_tokens` of `#moe.plan`).
  int64_t maxTokens = 0;
  /// `moec_step_<step>`.
  std::string kernelName;
  /// The op's operands, then its results.
  llvm::SmallVector<StepArg> args;
  /// The code generator's options.
  CudaCodegenOptions options;

  /// Builds the context of `op` (a planned step of a function planned for
  /// `maxTokens` tokens).
  static FailureOr<StepContext> create(Operation *op, int64_t maxTokens,
                                       const CudaCodegenOptions &options = {});

  /// The parameter for `value` (an operand or a result of `op`).
  const StepArg &arg(Value value) const;
  /// `kernelName` or `kernelName_<suffix>`.
  std::string kernel(llvm::StringRef suffix = "") const;
  /// The full parameter list of a kernel of the step with `tensorMaps`
  /// tensor maps: `const float *__restrict__ a0, ..., void *workspace,
  /// long long tokens` then `const __grid_constant__ moec_tensor_map tm0`,
  /// ...
  std::string parameterList(unsigned tensorMaps = 0) const;
  /// The index of `arg` (an element of `args`) in `args`.
  unsigned indexOf(const StepArg &arg) const;
  /// Emits `cannot emit CUDA for step <i>: <message>` on the op.
  InFlightDiagnostic fail(const llvm::Twine &message) const;
};

//===----------------------------------------------------------------------===//
// Emitters
//===----------------------------------------------------------------------===//

/// Emits `ctx.op` by dispatching on its kind to the functions below; fails
/// with a diagnostic naming the op for anything without a CUDA kernel.
FailureOr<CudaStep> emitCudaStep(const StepContext &ctx);

/// `moe.embed`, `moe.add`, `moe.mul`, `moe.silu_mul`, `moe.slice`,
/// `moe.concat`, `moe.expand`, `moe.quantize`, `moe.dequantize`,
/// `moe.sigmoid_gate` (ElementwiseEmitter.cpp).
FailureOr<CudaStep> emitElementwiseStep(const StepContext &ctx);
/// `moe.rms_norm`, `moe.add_rms_norm`, `moe.rope` (NormEmitter.cpp).
FailureOr<CudaStep> emitNormStep(const StepContext &ctx);
/// `moe.router`, `moe.dispatch`, `moe.combine` (RoutingEmitter.cpp).
FailureOr<CudaStep> emitRoutingStep(const StepContext &ctx);
/// `moe.attention` (AttentionEmitter.cpp).
FailureOr<CudaStep> emitAttentionStep(const StepContext &ctx);
/// `moe.matmul`, `moe.fp8_matmul`, `moe.grouped_matmul`,
/// `moe.fp8_grouped_matmul` (GemmEmitter.cpp).
FailureOr<CudaStep> emitGemmStep(const StepContext &ctx);
/// The generic token-wise ops `moe.unary`, `moe.binary`, `moe.compare`,
/// `moe.select`, `moe.cast`, `moe.softmax`, `moe.reduce`, `moe.topk`,
/// `moe.transpose`, `moe.batch_matmul`, `moe.gather_elements`,
/// `moe.scatter_elements`, `moe.one_hot` (GenericEmitter.cpp).
FailureOr<CudaStep> emitGenericStep(const StepContext &ctx);

/// For an op with fused quantization (`moe::FusedQuantizeOpInterface` with
/// a scheme), appends the launch that quantizes its high-precision result
/// into the FP8 data and scale results, per token per block of channels,
/// with the arithmetic of `runtime/fp8`'s `quantizeBlocks`. Does nothing for
/// ops without a fused scheme.
LogicalResult appendFusedQuantize(const StepContext &ctx, CudaStep &step);

/// The launch and source that quantize `x` (f32 `[rows, cols]`) into `q`
/// (e4m3 codes) and `scale` (f32 `[rows, ceil(cols / block)]`) in blocks of
/// `[1, block]`: one warp per block, kernel `ctx.kernel(suffix)`.
void appendQuantizeRows(const StepContext &ctx, CudaStep &step,
                        const StepArg &x, const StepArg &q,
                        const StepArg &scale, int64_t block, bool pow2,
                        llvm::StringRef suffix);

} // namespace mlir::moec::cuda

#endif // MOEC_CODEGEN_CUDA_CUDASTEP_H
