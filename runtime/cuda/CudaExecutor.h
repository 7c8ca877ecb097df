//===- CudaExecutor.h - Runs an artifact's steps on a GPU -------*- C++ -*-===//
//
// Binds a verified `Artifact` to one CUDA device: picks the device's code
// (an embedded `cubin.<arch>`, else `kernels.cu` JIT-compiled with NVRTC
// through the kernel cache), resolves every launch's kernel up front,
// allocates the device arena, weights and workspace, and prebuilds each
// launch's parameter array (with its tensor maps encoded), so that a run is
// input copies, launches on one stream, one synchronisation and output
// copies (docs/runtime-cuda.md).
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_RUNTIME_CUDA_CUDAEXECUTOR_H
#define MOEC_RUNTIME_CUDA_CUDAEXECUTOR_H

#include "runtime/cuda/CudaDriver.h"
#include "runtime/executor/Executor.h"
#include "runtime/nvrtc/KernelCache.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace moec::runtime {

/// How a `CudaExecutor` is set up.
struct CudaOptions {
  /// The device ordinal.
  int device = 0;
  /// Where JIT-compiled cubins are cached.
  KernelCacheOptions cache;
  /// The driver; nullptr means `CudaDriver::get()`.
  const CudaDriver *driver = nullptr;
  /// Synchronise after every step, so that a failing kernel is named
  /// (slower; for debugging).
  bool syncEachStep = false;
};

/// True when `artifact` carries CUDA code: a CUDA target, and `kernels.cu`
/// or a cubin section.
bool hasCudaCode(const Artifact &artifact);

/// The CUtensorMapDataType a tensor map over `dtype` elements is encoded
/// with: FLOAT32, INT32, INT64, UINT16 for bf16/f16 and UINT8 for the 1-byte
/// types (docs/artifact.md, "CUDA kernel ABI").
int tensorMapDataTypeFor(manifest::DType dtype);

/// Whether a CUDA device can be used: the driver loads, initialises and
/// has a device. `kUnavailable` saying why not.
Status cudaDeviceAvailable();

/// Executes one artifact on one GPU. Not thread-safe: one call at a time.
///
/// Errors are sticky: after any CUDA call fails (a launch, a copy, the
/// synchronisation), every later call returns an error naming that first
/// failure, since the device state (and often the context) is undefined.
class CudaExecutor final : public Executor {
public:
  /// Loads `artifact` onto the device. `kUnavailable` when there is no usable
  /// driver or device, or no code for the device's arch; errors name the
  /// step and kernel when a launch's kernel is missing from the module.
  static StatusOr<std::unique_ptr<CudaExecutor>>
  create(std::shared_ptr<const Artifact> artifact,
         const CudaOptions &options = {});

  /// Frees device memory, unloads the modules and releases the context.
  ~CudaExecutor() override;

  /// "cuda".
  const char *device() const override { return "cuda"; }

  /// Checks the input and keeps a host copy; it is copied to the device at
  /// the next `run` (see `Executor::setInput`).
  Status setInput(int index, const void *data, uint64_t bytes,
                  int64_t tokens) override;

  /// Copies the inputs set since the last run (and default positions) to the
  /// device, launches every step's kernels in order on one stream,
  /// copies the outputs back and synchronises once.
  Status run(int64_t tokens) override;

  /// Outputs of the last `run`, or the host copy of an input (see
  /// `Executor::tensor`).
  StatusOr<TensorView> tensor(bool output, int index, int64_t tokens) override;

  /// Copies the inputs set since the last run (and, for step 0, default
  /// positions) to the device, launches step `index`'s kernels alone and
  /// synchronises, so that a fault names the step (see
  /// `Executor::runStep`). Outputs are not copied back.
  Status runStep(int index, int64_t tokens) override;

  /// cuMemcpyDtoHAsync / cuMemcpyHtoDAsync on the executor's stream, then
  /// a synchronisation (see `Executor::readArena`). Failures are sticky.
  Status readArena(uint64_t offset, uint64_t bytes, void *dst) override;
  Status writeArena(uint64_t offset, uint64_t bytes, const void *src) override;

  /// Times the launches alone: `warmup` + `iterations` rounds of (copy every
  /// input last set for `tokens` tokens, event, all launches, event) on the
  /// stream, one synchronisation, and the `iterations` elapsed times in ms.
  /// Every input but default `positions` must have been set for `tokens`.
  /// Outputs are not copied back.
  StatusOr<std::vector<float>> timeLaunches(int64_t tokens, int warmup,
                                            int iterations);
  /// Like `timeLaunches`, with an event after every step as well: per
  /// timed round, the elapsed ms of each step's launches (`[round][step]`).
  /// The events between steps cost a little, so the per-step times sum to
  /// slightly more than `timeLaunches` measures.
  StatusOr<std::vector<std::vector<float>>>
  timeSteps(int64_t tokens, int warmup, int iterations);

  /// The device and the code in use, e.g. "NVIDIA H200 (sm_90a), 132 SMs,
  /// code: cubin.sm_90a".
  const std::string &description() const { return description_; }
  /// The kernel cache's warning, if the JIT could not use the cache.
  const std::string &cacheWarning() const { return cacheWarning_; }
  /// The arch the device's code was chosen for ("sm_90a").
  const std::string &arch() const { return arch_; }

  /// True after a CUDA call failed; `run` and the rest return `failure()`.
  bool failed() const { return !failure_.isOk(); }
  /// The first failure (success while not failed).
  const Status &failure() const { return failure_; }

private:
  struct Launch {
    cu::Function function = nullptr;
    const manifest::CudaLaunch *spec = nullptr;
    // Index of the launch's first map in `tensorMaps_`.
    size_t firstMap = 0;
    // cuLaunchKernel's kernelParams: addresses of the step's pointers, the
    // workspace, the tokens, then the launch's maps.
    std::vector<void *> params;
  };
  struct Step {
    std::vector<cu::DevicePtr> pointers;
    std::vector<Launch> launches;
  };
  class ContextScope;

  CudaExecutor(std::shared_ptr<const Artifact> artifact,
               const CudaDriver &driver, const CudaOptions &options)
      : Executor(std::move(artifact)), driver_(driver), options_(options) {}

  Status initialize();
  Status loadModule();
  Status resolveLaunches();
  // Encodes map `j` of launch `l` of step `i` into `out` (the device has
  // TMA); `where` names the launch for errors.
  Status encodeTensorMap(int i, int l, int j, const std::string &where,
                         cu::TensorMap &out);
  // Copies the weights section's first `extent` bytes to the device,
  // verifying each block before its copy.
  Status uploadWeights(uint64_t extent);
  Status fillWeights();
  // Records a failed CUDA call: returns success for kSuccess, else an error
  // naming `call`, the CUDA error, `where` and the current step; during a
  // run (or `sticky`) the error becomes the executor's failure.
  Status check(cu::Result result, const char *call, const char *file, int line);
  Status failedError() const;
  // Copies inputs to the device: with `onlySet` those set since the last
  // run, else all (which must have been set for `tokens`); unset
  // `positions` get 0 .. tokens-1 unless `!defaultPositions`.
  Status uploadInputs(int64_t tokens, bool onlySet,
                      bool defaultPositions = true);
  Status launchStep(size_t index, int64_t tokens);
  /// The rounds of `timeLaunches` / `timeSteps`: per timed round, the ms
  /// between events placed before step 0 and after every step (`perStep`)
  /// or after the last one.
  StatusOr<std::vector<std::vector<float>>>
  timeRounds(int64_t tokens, int warmup, int iterations, bool perStep);
  Status launchSteps(int64_t tokens);
  // Waits for the stream; a failure names `currentStep_` when it is set.
  Status synchronize();
  // readArena / writeArena: one copy between `host` and the arena, then a
  // synchronisation.
  Status copyArena(uint64_t offset, uint64_t bytes, void *host, bool toDevice);
  cu::DevicePtr bufferAddress(uint32_t id) const;

  const CudaDriver &driver_;
  CudaOptions options_;
  cu::Device device_ = 0;
  cu::Context context_ = nullptr;
  bool contextRetained_ = false;
  cu::Stream stream_ = nullptr;
  cu::Module module_ = nullptr;
  cu::Module fillModule_ = nullptr;
  cu::DevicePtr arena_ = 0, weights_ = 0, workspace_ = 0;
  std::string arch_, description_, cacheWarning_, codeName_;
  std::vector<Step> steps_;
  // Every launch's tensor maps, encoded at load (zero on a device without
  // TMA); sized once, so the launches' params can point into it.
  std::vector<cu::TensorMap> tensorMaps_;
  // The device's compute capability major version.
  int ccMajor_ = 0;
  // The kernel arguments `tokens` and `workspace`, which every launch's
  // params point at.
  long long tokensParam_ = 0;
  cu::DevicePtr workspaceParam_ = 0;
  // Host copies: inputs as last set (and their token counts), outputs of
  // the last run.
  std::vector<std::vector<uint8_t>> inputs_, outputs_;
  std::vector<int64_t> inputTokens_;
  int64_t outputTokens_ = 0;
  // Where the current call is, for messages: the step being launched (-1
  // outside the launch loop) and whether failures are sticky yet.
  int currentStep_ = -1;
  int currentLaunch_ = 0;
  bool running_ = false;
  Status failure_;
};

} // namespace moec::runtime

#endif // MOEC_RUNTIME_CUDA_CUDAEXECUTOR_H
