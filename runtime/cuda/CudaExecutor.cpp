//===- CudaExecutor.cpp - Runs an artifact's steps on a GPU -----*- C++ -*-===//
//
// Everything that can be decided once is done in `create`: the code for the
// device's arch, every kernel handle (with its block size and dynamic
// shared memory checked against the kernel's limits), device memory, the
// weights, each launch's tensor maps (encoded once the addresses are known)
// and its parameter array, which points at the step's device pointers, at
// two members (`workspaceParam_`, `tokensParam_`) and at the maps, so that a
// run only sets the token count. Every CUDA call goes through
// `MOEC_CU`, which records the call, the CUDA error name and text, the step
// and kernel, and the source line; during a run the first failure sticks.
//
//===----------------------------------------------------------------------===//

#include "runtime/cuda/CudaExecutor.h"

#include "runtime/executor/WeightFill.h"
#include "runtime/nvrtc/KernelCache.h"

#include <algorithm>
#include <cstring>
#include <map>

namespace moec::runtime {

/// Calls a driver entry point and turns its result into a `Status` naming
/// `name` (the API's name), the error, the step and the source line.
#define MOEC_CU(name, expr) check((expr), name, __FILE__, __LINE__)

namespace {

/// Smallest device allocation (cuMemAlloc refuses 0 bytes).
constexpr uint64_t kMinAllocation = 256;
/// Dynamic shared memory a kernel gets without opting in.
constexpr uint32_t kDefaultSharedBytes = 48 * 1024;
/// Threads per block and most blocks of the weight fill kernel.
constexpr unsigned kFillThreads = 256;
constexpr uint64_t kMaxFillBlocks = uint64_t(1) << 20;

/// Compute capability major version from which devices have TMA (and the
/// driver encodes tensor maps).
constexpr int kTensorMapMinMajor = 9;

// Sets a flag for the lifetime of a scope.
class FlagScope {
public:
  explicit FlagScope(bool &flag) : flag_(flag) { flag_ = true; }
  ~FlagScope() { flag_ = false; }

private:
  bool &flag_;
};

} // namespace

/// Makes the executor's context current for the scope (push/pop, so that a
/// caller's own current context survives).
class CudaExecutor::ContextScope {
public:
  explicit ContextScope(CudaExecutor &executor) : executor_(executor) {
    status_ = executor.MOEC_CU(
        "cuCtxPushCurrent", executor.driver_.ctxPushCurrent(executor.context_));
  }
  ~ContextScope() {
    if (status_.isOk()) {
      cu::Context popped = nullptr;
      executor_.driver_.ctxPopCurrent(&popped);
    }
  }
  const Status &status() const { return status_; }

private:
  CudaExecutor &executor_;
  Status status_;
};

bool hasCudaCode(const Artifact &artifact) {
  if (!hasCudaTarget(artifact.manifest()))
    return false;
  for (const SectionInfo &s : artifact.sections())
    if (s.name == "kernels.cu" || s.name.rfind("cubin.", 0) == 0)
      return true;
  return false;
}

Status cudaDeviceAvailable() { return CudaDriver::get().status(); }

int tensorMapDataTypeFor(manifest::DType dtype) {
  // bf16/f16 and the 1-byte types as unsigned integers of their size: a
  // tiled copy without NaN fill moves bits unchanged, so only the element
  // size matters (cuda.h has no FP8 type).
  switch (dtype) {
  case manifest::DType::F32:
    return cu::kTensorMapDataTypeFloat32;
  case manifest::DType::I32:
    return cu::kTensorMapDataTypeInt32;
  case manifest::DType::I64:
    return cu::kTensorMapDataTypeInt64;
  case manifest::DType::BF16:
  case manifest::DType::F16:
    return cu::kTensorMapDataTypeUint16;
  default: // f8e4m3fn, f8e5m2, i8, u8 (verifyManifest admits no others)
    return cu::kTensorMapDataTypeUint8;
  }
}

Status CudaExecutor::check(cu::Result result, const char *call,
                           const char *file, int line) {
  if (result == cu::kSuccess)
    return Status::ok();
  std::string where;
  if (currentStep_ >= 0) {
    const manifest::Step &s =
        *artifact_->manifest().steps()->Get(uint32_t(currentStep_));
    where = strCat(" at step ", currentStep_);
    if (uint32_t(currentLaunch_) < s.cuda()->size())
      where +=
          strCat(" (launch ", currentLaunch_, ", kernel '",
                 text(s.cuda()->Get(uint32_t(currentLaunch_))->kernel()), "')");
  }
  const char *base = std::strrchr(file, '/');
  Status status(result == cu::kErrorOutOfMemory ? StatusCode::kOutOfMemory
                                                : StatusCode::kInternal,
                strCat(artifact_->path(), ": CUDA: ", call, " failed", where,
                       ": ", driver_.errorText(result), " [",
                       base ? base + 1 : file, ":", line, "]"));
  if (running_ && failure_.isOk())
    failure_ = status;
  return status;
}

Status CudaExecutor::failedError() const {
  return Status(failure_.code(),
                strCat("the CUDA executor failed earlier and cannot be used "
                       "any more; first failure: ",
                       failure_.message()));
}

cu::DevicePtr CudaExecutor::bufferAddress(uint32_t id) const {
  return arena_ + artifact_->findBuffer(id)->offset();
}

//===----------------------------------------------------------------------===//
// Loading
//===----------------------------------------------------------------------===//

StatusOr<std::unique_ptr<CudaExecutor>>
CudaExecutor::create(std::shared_ptr<const Artifact> artifact,
                     const CudaOptions &options) {
  if (!hasCudaCode(*artifact)) {
    std::string targets;
    for (const flatbuffers::String *t : *artifact->manifest().targets())
      targets += (targets.empty() ? "" : ", ") + t->str();
    return makeError(StatusCode::kUnavailable, artifact->path(),
                     ": has no CUDA code (targets: ",
                     targets.empty() ? "none" : targets, ")");
  }
  if (artifact->manifest().kv_cache())
    return makeError(StatusCode::kUnavailable, artifact->path(),
                     ": keeps a KV cache, which the CUDA executor does not "
                     "run yet (docs/generation.md); load it on the cpu");
  const CudaDriver *driver = options.driver;
  if (!driver) {
    MOEC_ASSIGN_OR_RETURN(driver, CudaDriver::get());
  }
  std::unique_ptr<CudaExecutor> executor(
      new CudaExecutor(std::move(artifact), *driver, options));
  MOEC_RETURN_IF_ERROR(executor->initialize());
  return executor;
}

Status CudaExecutor::initialize() {
  const manifest::Manifest &m = artifact_->manifest();
  const std::string &path = artifact_->path();
  if (options_.device < 0 || options_.device >= driver_.deviceCount)
    return makeError(StatusCode::kInvalidArgument, "CUDA device ",
                     options_.device, " does not exist (", driver_.deviceCount,
                     " device", driver_.deviceCount == 1 ? "" : "s", ")");
  MOEC_RETURN_IF_ERROR(
      MOEC_CU("cuDeviceGet", driver_.deviceGet(&device_, options_.device)));
  char name[256] = {};
  int major = 0, minor = 0, sms = 0;
  size_t memory = 0;
  MOEC_RETURN_IF_ERROR(
      MOEC_CU("cuDeviceGetName",
              driver_.deviceGetName(name, sizeof(name) - 1, device_)));
  MOEC_RETURN_IF_ERROR(
      MOEC_CU("cuDeviceGetAttribute",
              driver_.deviceGetAttribute(
                  &major, cu::kDeviceAttrComputeCapabilityMajor, device_)));
  MOEC_RETURN_IF_ERROR(
      MOEC_CU("cuDeviceGetAttribute",
              driver_.deviceGetAttribute(
                  &minor, cu::kDeviceAttrComputeCapabilityMinor, device_)));
  MOEC_RETURN_IF_ERROR(
      MOEC_CU("cuDeviceGetAttribute",
              driver_.deviceGetAttribute(
                  &sms, cu::kDeviceAttrMultiprocessorCount, device_)));
  MOEC_RETURN_IF_ERROR(
      MOEC_CU("cuDeviceTotalMem", driver_.deviceTotalMem(&memory, device_)));
  arch_ = cudaArchFor(major, minor);
  ccMajor_ = major;

  MOEC_RETURN_IF_ERROR(
      MOEC_CU("cuDevicePrimaryCtxRetain",
              driver_.devicePrimaryCtxRetain(&context_, device_)));
  contextRetained_ = true;
  ContextScope scope(*this);
  MOEC_RETURN_IF_ERROR(scope.status());
  MOEC_RETURN_IF_ERROR(
      MOEC_CU("cuStreamCreate",
              driver_.streamCreate(&stream_, cu::kStreamNonBlocking)));
  MOEC_RETURN_IF_ERROR(loadModule());

  // Device memory: the arena (zeroed once, as on the CPU), the workspace
  // and the weights.
  uint64_t arenaBytes = std::max(m.arena_bytes(), kMinAllocation);
  if (Status s = MOEC_CU("cuMemAlloc", driver_.memAlloc(&arena_, arenaBytes));
      !s.isOk())
    return s.withPrefix(
        strCat("allocating the ", m.arena_bytes(), "-byte arena"));
  MOEC_RETURN_IF_ERROR(
      MOEC_CU("cuMemsetD8Async",
              driver_.memsetD8Async(arena_, 0, arenaBytes, stream_)));
  if (m.cuda_workspace_bytes() > 0) {
    if (Status s =
            MOEC_CU("cuMemAlloc",
                    driver_.memAlloc(&workspace_, m.cuda_workspace_bytes()));
        !s.isOk())
      return s.withPrefix(strCat("allocating the ", m.cuda_workspace_bytes(),
                                 "-byte workspace"));
  }
  workspaceParam_ = workspace_;
  uint64_t extent = weightsExtent(m);
  if (extent > 0) {
    if (Status s = MOEC_CU("cuMemAlloc", driver_.memAlloc(&weights_, extent));
        !s.isOk())
      return s.withPrefix(strCat("allocating ", extent, " bytes of weights"));
    if (m.weights_device_filled())
      MOEC_RETURN_IF_ERROR(fillWeights());
    else
      MOEC_RETURN_IF_ERROR(uploadWeights(extent));
  }
  MOEC_RETURN_IF_ERROR(resolveLaunches());
  // The copies read the mapped file and the fill kernels must have run
  // before the first run; a failure here is a load failure.
  MOEC_RETURN_IF_ERROR(
      MOEC_CU("cuStreamSynchronize", driver_.streamSynchronize(stream_)));

  inputs_.resize(m.inputs()->size());
  inputTokens_.assign(m.inputs()->size(), 0);
  outputs_.resize(m.outputs()->size());
  description_ = strCat(name, " (", arch_, ", ", sms, " SMs, ", memory >> 30,
                        " GiB), code: ", codeName_);
  (void)path;
  return Status::ok();
}

Status CudaExecutor::loadModule() {
  const std::string &path = artifact_->path();
  std::string cubinName = "cubin." + arch_;
  const SectionInfo *cubin = artifact_->findSection(cubinName);
  const SectionInfo *source = artifact_->findSection("kernels.cu");
  std::string jitCubin;
  const void *image = nullptr;
  if (cubin && cubin->size > 0) {
    image = artifact_->sectionData(*cubin).data;
    codeName_ = cubinName;
  } else if (source) {
    ByteSpan text = artifact_->sectionData(*source);
    StatusOr<CachedCubin> compiled = compileCached(
        std::string_view(reinterpret_cast<const char *>(text.data), text.size),
        "kernels.cu", arch_, options_.cache);
    if (!compiled.isOk())
      return Status(compiled.status().code(),
                    strCat(path, ": no cubin for ", arch_,
                           " and kernels.cu could not be JIT-compiled: ",
                           compiled.status().message()));
    jitCubin = std::move(compiled->cubin);
    cacheWarning_ = compiled->warning;
    image = jitCubin.data();
    static const char *const kOrigin[] = {"cache hit", "compiled, cached",
                                          "recompiled over a corrupt entry",
                                          "compiled, not cached"};
    codeName_ = strCat("kernels.cu JIT for ", arch_, " (",
                       kOrigin[int(compiled->origin)], ")");
  } else {
    std::string cubins;
    for (const SectionInfo &s : artifact_->sections())
      if (s.name.rfind("cubin.", 0) == 0)
        cubins += (cubins.empty() ? "" : ", ") + s.name;
    return makeError(
        StatusCode::kUnavailable, path, ": no CUDA code for this device (",
        arch_, "): the artifact has ", cubins.empty() ? "no cubins" : cubins,
        " and no kernels.cu");
  }
  if (Status s =
          MOEC_CU("cuModuleLoadData", driver_.moduleLoadData(&module_, image));
      !s.isOk())
    return s.withPrefix(strCat("loading ", codeName_));
  return Status::ok();
}

Status CudaExecutor::uploadWeights(uint64_t extent) {
  // The copy reads every weight byte, so every block is verified on the
  // way, chunk by chunk just before its copy (which then finds the bytes
  // in the page cache): a corrupted weight fails the load, never reaches
  // the device, and the file is read once.
  ByteSpan section = artifact_->sectionData(*artifact_->findSection("weights"));
  uint64_t chunk = std::max<uint64_t>(artifact_->weightsBlockSize(), 1) * 4;
  for (uint64_t at = 0; at < extent; at += chunk) {
    uint64_t n = std::min(chunk, extent - at);
    MOEC_RETURN_IF_ERROR(artifact_->verifyWeights(at, n));
    MOEC_RETURN_IF_ERROR(
        MOEC_CU("cuMemcpyHtoDAsync",
                driver_.memcpyHtoDAsync(weights_ + at, section.data + at,
                                        size_t(n), stream_)));
  }
  return Status::ok();
}

Status CudaExecutor::fillWeights() {
  const manifest::Manifest &m = artifact_->manifest();
  StatusOr<CachedCubin> compiled = compileCached(
      weightFillKernelSource(), "moec_fill_weight.cu", arch_, options_.cache);
  if (!compiled.isOk())
    return Status(compiled.status().code(),
                  strCat(artifact_->path(),
                         ": weights_device_filled: cannot compile the weight "
                         "fill kernel: ",
                         compiled.status().message()));
  MOEC_RETURN_IF_ERROR(
      MOEC_CU("cuModuleLoadData",
              driver_.moduleLoadData(&fillModule_, compiled->cubin.data())));
  cu::Function fill = nullptr;
  MOEC_RETURN_IF_ERROR(MOEC_CU(
      "cuModuleGetFunction",
      driver_.moduleGetFunction(&fill, fillModule_, kWeightFillKernel)));
  // Padding between weights stays zero.
  MOEC_RETURN_IF_ERROR(
      MOEC_CU("cuMemsetD8Async",
              driver_.memsetD8Async(weights_, 0, weightsExtent(m), stream_)));
  for (const manifest::Weight *w : *m.weights()) {
    FillKind kind = fillKindFor(m, *w);
    unsigned long long count = fillElementCount(*w, kind);
    if (count == 0)
      continue;
    cu::DevicePtr out = weights_ + w->offset();
    unsigned long long seed = m.weights_fill_seed();
    unsigned id = w->id();
    int kindValue = int(kind);
    void *params[] = {&out, &count, &seed, &id, &kindValue};
    unsigned blocks = unsigned(std::min<uint64_t>(
        (count + kFillThreads - 1) / kFillThreads, kMaxFillBlocks));
    if (Status s =
            MOEC_CU("cuLaunchKernel",
                    driver_.launchKernel(fill, blocks, 1, 1, kFillThreads, 1, 1,
                                         0, stream_, params, nullptr));
        !s.isOk())
      return s.withPrefix(strCat("filling weight '", text(w->name()), "'"));
  }
  return Status::ok();
}

Status CudaExecutor::resolveLaunches() {
  const manifest::Manifest &m = artifact_->manifest();
  const std::string &path = artifact_->path();
  // Per kernel: its handle, its thread limit, and the dynamic shared memory
  // it was opted in to.
  struct Kernel {
    cu::Function function = nullptr;
    int maxThreads = 0;
    uint32_t sharedOptIn = kDefaultSharedBytes;
  };
  std::map<std::string, Kernel> kernels;
  const auto &steps = *m.steps();
  steps_.resize(steps.size());
  // The maps' storage, zeroed (what a device without TMA gets), sized
  // before any params point into it.
  size_t mapCount = 0;
  for (const manifest::Step *s : steps)
    for (const manifest::CudaLaunch *spec : *s->cuda())
      mapCount += spec->tensor_maps()->size();
  tensorMaps_.assign(mapCount, cu::TensorMap{});
  bool encode = ccMajor_ >= kTensorMapMinMajor;
  size_t nextMap = 0;
  for (uint32_t i = 0; i < steps.size(); ++i) {
    const manifest::Step &s = *steps[i];
    Step &step = steps_[i];
    for (const manifest::Argument *arg : *s.args())
      step.pointers.push_back(
          arg->kind() == manifest::ArgumentKind::BUFFER
              ? bufferAddress(arg->id())
              : weights_ + artifact_->findWeight(arg->id())->offset());
    for (uint32_t l = 0; l < s.cuda()->size(); ++l) {
      const manifest::CudaLaunch &spec = *s.cuda()->Get(l);
      std::string kernel(text(spec.kernel()));
      std::string where =
          strCat(path, ": step ", i, " (",
                 s.op()->size() ? text(s.op()) : text(s.kernel()), "), launch ",
                 l, ": kernel '", kernel, "'");
      auto [it, inserted] = kernels.try_emplace(kernel);
      Kernel &k = it->second;
      if (inserted) {
        cu::Result rc =
            driver_.moduleGetFunction(&k.function, module_, kernel.c_str());
        if (rc == cu::kErrorNotFound)
          return makeError(StatusCode::kNotFound, where, " is not in ",
                           codeName_);
        if (Status st = MOEC_CU("cuModuleGetFunction", rc); !st.isOk())
          return st.withPrefix(where);
        MOEC_RETURN_IF_ERROR(MOEC_CU(
            "cuFuncGetAttribute",
            driver_.funcGetAttribute(
                &k.maxThreads, cu::kFuncAttrMaxThreadsPerBlock, k.function)));
      }
      const auto &block = *spec.block();
      uint64_t threads = uint64_t(block[0]) * block[1] * block[2];
      if (threads > uint64_t(k.maxThreads))
        return makeError(StatusCode::kInvalidArgument, where,
                         " is launched "
                         "with ",
                         threads,
                         " threads per block, but allows at "
                         "most ",
                         k.maxThreads, " on ", arch_);
      if (spec.shared_bytes() > k.sharedOptIn) {
        if (Status st =
                MOEC_CU("cuFuncSetAttribute",
                        driver_.funcSetAttribute(
                            k.function, cu::kFuncAttrMaxDynamicSharedSizeBytes,
                            int(spec.shared_bytes())));
            !st.isOk())
          return st.withPrefix(strCat(where, " needs ", spec.shared_bytes(),
                                      " bytes of dynamic shared memory"));
        k.sharedOptIn = spec.shared_bytes();
      }
      for (uint32_t j = 0; encode && j < spec.tensor_maps()->size(); ++j)
        MOEC_RETURN_IF_ERROR(encodeTensorMap(int(i), int(l), int(j), where,
                                             tensorMaps_[nextMap + j]));
      step.launches.push_back(Launch{k.function, &spec, nextMap, {}});
      nextMap += spec.tensor_maps()->size();
    }
  }
  // The kernel ABI: one pointer per argument, the workspace, the tokens,
  // then the launch's maps. The arrays point into `pointers` and
  // `tensorMaps_`, which no longer change size.
  for (Step &step : steps_)
    for (Launch &launch : step.launches) {
      for (cu::DevicePtr &pointer : step.pointers)
        launch.params.push_back(&pointer);
      launch.params.push_back(&workspaceParam_);
      launch.params.push_back(&tokensParam_);
      for (uint32_t j = 0; j < launch.spec->tensor_maps()->size(); ++j)
        launch.params.push_back(&tensorMaps_[launch.firstMap + j]);
    }
  return Status::ok();
}

Status CudaExecutor::encodeTensorMap(int i, int l, int j,
                                     const std::string &where,
                                     cu::TensorMap &out) {
  const manifest::TensorMap &map = *artifact_->manifest()
                                        .steps()
                                        ->Get(uint32_t(i))
                                        ->cuda()
                                        ->Get(uint32_t(l))
                                        ->tensor_maps()
                                        ->Get(uint32_t(j));
  std::string mapWhere = strCat(where, ": tensor_maps[", j, "]");
  if (!driver_.tensorMapEncodeTiled)
    return makeError(StatusCode::kUnavailable, mapWhere, ": the CUDA driver (",
                     driver_.library,
                     ") lacks 'cuTensorMapEncodeTiled', which a device of "
                     "compute capability >= 9.0 needs for tensor maps (CUDA "
                     "12.0+ driver)");
  // verifyManifest bounded the rank (1..5) and the field counts.
  uint64_t dims[5] = {}, strides[4] = {};
  uint32_t box[5] = {}, elementStrides[5] = {1, 1, 1, 1, 1};
  int rank = int(map.dims()->size());
  for (int d = 0; d < rank; ++d) {
    dims[d] = map.dims()->Get(uint32_t(d));
    box[d] = map.box()->Get(uint32_t(d));
    if (d > 0)
      strides[d - 1] = map.strides()->Get(uint32_t(d - 1));
  }
  cu::DevicePtr address = steps_[size_t(i)].pointers[map.arg()];
  cu::Result rc = driver_.tensorMapEncodeTiled(
      &out, tensorMapDataTypeFor(map.dtype()), uint32_t(rank),
      reinterpret_cast<void *>(address), dims, strides, box, elementStrides,
      cu::kTensorMapInterleaveNone, int(map.swizzle()),
      cu::kTensorMapL2Promotion128B, cu::kTensorMapFloatOobFillNone);
  return MOEC_CU("cuTensorMapEncodeTiled", rc).withPrefix(mapWhere);
}

CudaExecutor::~CudaExecutor() {
  if (context_) {
    // Errors are ignored: after a fault the context may be gone.
    if (driver_.ctxPushCurrent(context_) == cu::kSuccess) {
      if (stream_)
        driver_.streamSynchronize(stream_);
      for (cu::DevicePtr p : {arena_, weights_, workspace_})
        if (p)
          driver_.memFree(p);
      for (cu::Module mod : {module_, fillModule_})
        if (mod)
          driver_.moduleUnload(mod);
      if (stream_)
        driver_.streamDestroy(stream_);
      cu::Context popped = nullptr;
      driver_.ctxPopCurrent(&popped);
    }
  }
  if (contextRetained_)
    driver_.devicePrimaryCtxRelease(device_);
}

//===----------------------------------------------------------------------===//
// Running
//===----------------------------------------------------------------------===//

Status CudaExecutor::setInput(int index, const void *data, uint64_t bytes,
                              int64_t tokens) {
  if (failed())
    return failedError();
  MOEC_RETURN_IF_ERROR(checkInput(index, data, bytes, tokens));
  std::vector<uint8_t> &staged = inputs_[size_t(index)];
  staged.resize(size_t(bytes));
  if (bytes)
    std::memcpy(staged.data(), data, size_t(bytes));
  inputTokens_[size_t(index)] = tokens;
  inputSet_[size_t(index)] = true;
  return Status::ok();
}

Status CudaExecutor::uploadInputs(int64_t tokens, bool onlySet,
                                  bool defaultPositions) {
  const manifest::Manifest &m = artifact_->manifest();
  for (int i = 0; i < int(m.inputs()->size()); ++i) {
    const manifest::TensorSpec &spec = *m.inputs()->Get(uint32_t(i));
    bool isPositions = defaultPositions &&
                       std::find(positionInputs_.begin(), positionInputs_.end(),
                                 i) != positionInputs_.end();
    std::vector<uint8_t> &staged = inputs_[size_t(i)];
    if (isPositions &&
        (onlySet ? !inputSet_[size_t(i)] : inputTokens_[size_t(i)] != tokens)) {
      staged.assign(
          size_t(bufferBytesAt(*artifact_->findBuffer(spec.buffer()), tokens)),
          0);
      writePositions(spec, staged.data(), tokens);
      inputTokens_[size_t(i)] = tokens;
    } else if (onlySet ? !inputSet_[size_t(i)] : false) {
      continue;
    } else if (!onlySet && inputTokens_[size_t(i)] != tokens) {
      return makeError(StatusCode::kInvalidArgument, artifact_->path(),
                       ": input '", text(spec.name()), "' was not set for ",
                       tokens, " tokens");
    }
    if (staged.empty())
      continue;
    MOEC_RETURN_IF_ERROR(MOEC_CU(
        "cuMemcpyHtoDAsync",
        driver_.memcpyHtoDAsync(bufferAddress(spec.buffer()), staged.data(),
                                staged.size(), stream_)));
  }
  return Status::ok();
}

Status CudaExecutor::launchStep(size_t index, int64_t tokens) {
  tokensParam_ = tokens;
  Step &step = steps_[index];
  currentStep_ = int(index);
  for (size_t l = 0; l < step.launches.size(); ++l) {
    currentLaunch_ = int(l);
    const manifest::CudaLaunch &spec = *step.launches[l].spec;
    MOEC_RETURN_IF_ERROR(
        MOEC_CU("cuLaunchKernel",
                driver_.launchKernel(
                    step.launches[l].function,
                    unsigned(gridExtentAt(*spec.grid()->Get(0), tokens)),
                    unsigned(gridExtentAt(*spec.grid()->Get(1), tokens)),
                    unsigned(gridExtentAt(*spec.grid()->Get(2), tokens)),
                    spec.block()->Get(0), spec.block()->Get(1),
                    spec.block()->Get(2), spec.shared_bytes(), stream_,
                    step.launches[l].params.data(), nullptr)));
  }
  // From here on a failure names the step but no launch.
  currentLaunch_ = int(step.launches.size());
  return Status::ok();
}

Status CudaExecutor::launchSteps(int64_t tokens) {
  for (size_t i = 0; i < steps_.size(); ++i) {
    MOEC_RETURN_IF_ERROR(launchStep(i, tokens));
    // Debugging: a fault then shows up at the step that caused it.
    if (options_.syncEachStep)
      MOEC_RETURN_IF_ERROR(synchronize());
  }
  currentStep_ = -1;
  return Status::ok();
}

Status CudaExecutor::synchronize() {
  return MOEC_CU("cuStreamSynchronize", driver_.streamSynchronize(stream_));
}

Status CudaExecutor::run(int64_t tokens) {
  if (failed())
    return failedError();
  MOEC_RETURN_IF_ERROR(checkTokens(tokens));
  FlagScope running(running_);
  outputTokens_ = 0;
  ContextScope scope(*this);
  MOEC_RETURN_IF_ERROR(scope.status());
  MOEC_RETURN_IF_ERROR(uploadInputs(tokens, /*onlySet=*/true));
  inputSet_.assign(inputSet_.size(), false);
  MOEC_RETURN_IF_ERROR(launchSteps(tokens));
  const manifest::Manifest &m = artifact_->manifest();
  for (uint32_t i = 0; i < m.outputs()->size(); ++i) {
    const manifest::Buffer &b =
        *artifact_->findBuffer(m.outputs()->Get(i)->buffer());
    std::vector<uint8_t> &host = outputs_[size_t(i)];
    host.resize(size_t(bufferBytesAt(b, tokens)));
    MOEC_RETURN_IF_ERROR(
        MOEC_CU("cuMemcpyDtoHAsync",
                driver_.memcpyDtoHAsync(host.data(), arena_ + b.offset(),
                                        host.size(), stream_)));
  }
  // The one synchronisation; kernel faults surface here.
  if (Status s =
          MOEC_CU("cuStreamSynchronize", driver_.streamSynchronize(stream_));
      !s.isOk()) {
    if (!options_.syncEachStep)
      failure_ = Status(s.code(), s.message() +
                                      " (a kernel of this run failed; "
                                      "CudaOptions::syncEachStep / gpu-check "
                                      "--sync-steps names the step)");
    return failure_;
  }
  outputTokens_ = tokens;
  return Status::ok();
}

Status CudaExecutor::runStep(int index, int64_t tokens) {
  if (failed())
    return failedError();
  MOEC_RETURN_IF_ERROR(checkTokens(tokens));
  MOEC_RETURN_IF_ERROR(checkStep(index));
  FlagScope running(running_);
  ContextScope scope(*this);
  MOEC_RETURN_IF_ERROR(scope.status());
  // Only step 0 defaults `positions`: later steps may reuse its memory.
  MOEC_RETURN_IF_ERROR(
      uploadInputs(tokens, /*onlySet=*/true, /*defaultPositions=*/index == 0));
  inputSet_.assign(inputSet_.size(), false);
  Status s = launchStep(size_t(index), tokens);
  // The step is known, so a fault at the synchronisation names it.
  if (s.isOk())
    s = synchronize();
  currentStep_ = -1;
  return s;
}

Status CudaExecutor::copyArena(uint64_t offset, uint64_t bytes, void *host,
                               bool toDevice) {
  if (failed())
    return failedError();
  MOEC_RETURN_IF_ERROR(checkArenaRange(offset, bytes, host));
  if (bytes == 0)
    return Status::ok();
  FlagScope running(running_);
  ContextScope scope(*this);
  MOEC_RETURN_IF_ERROR(scope.status());
  MOEC_RETURN_IF_ERROR(
      toDevice ? MOEC_CU("cuMemcpyHtoDAsync",
                         driver_.memcpyHtoDAsync(arena_ + offset, host,
                                                 size_t(bytes), stream_))
               : MOEC_CU("cuMemcpyDtoHAsync",
                         driver_.memcpyDtoHAsync(host, arena_ + offset,
                                                 size_t(bytes), stream_)));
  // The host side may be freed (or read) once this returns.
  return synchronize();
}

Status CudaExecutor::readArena(uint64_t offset, uint64_t bytes, void *dst) {
  return copyArena(offset, bytes, dst, /*toDevice=*/false);
}

Status CudaExecutor::writeArena(uint64_t offset, uint64_t bytes,
                                const void *src) {
  return copyArena(offset, bytes, const_cast<void *>(src), /*toDevice=*/true);
}

StatusOr<TensorView> CudaExecutor::tensor(bool output, int index,
                                          int64_t tokens) {
  if (failed())
    return failedError();
  MOEC_RETURN_IF_ERROR(checkTokens(tokens));
  TensorView view;
  MOEC_ASSIGN_OR_RETURN(view.spec, findTensor(output, index));
  const manifest::Buffer &b = *artifact_->findBuffer(view.spec->buffer());
  for (int64_t d : *view.spec->shape())
    view.shape.push_back(d == -1 ? tokens : d);
  view.bytes = bufferBytesAt(b, tokens);
  if (output) {
    if (outputTokens_ != tokens)
      return makeError(
          StatusCode::kInvalidArgument, artifact_->path(), ": output '",
          text(view.spec->name()), "' for ", tokens, " tokens: ",
          outputTokens_ ? strCat("the last run had ", outputTokens_, " tokens")
                        : std::string("no successful run yet"));
    view.data = outputs_[size_t(index)].data();
    return view;
  }
  // An input's host copy, zero-extended if it was set for fewer tokens.
  std::vector<uint8_t> &staged = inputs_[size_t(index)];
  if (staged.size() < view.bytes)
    staged.resize(size_t(view.bytes), 0);
  view.data = staged.data();
  return view;
}

StatusOr<std::vector<float>>
CudaExecutor::timeLaunches(int64_t tokens, int warmup, int iterations) {
  auto rounds = timeRounds(tokens, warmup, iterations, /*perStep=*/false);
  if (!rounds.isOk())
    return rounds.status();
  std::vector<float> ms;
  for (const std::vector<float> &round : *rounds)
    ms.push_back(round.empty() ? 0.0f : round[0]);
  return ms;
}

StatusOr<std::vector<std::vector<float>>>
CudaExecutor::timeSteps(int64_t tokens, int warmup, int iterations) {
  return timeRounds(tokens, warmup, iterations, /*perStep=*/true);
}

StatusOr<std::vector<std::vector<float>>>
CudaExecutor::timeRounds(int64_t tokens, int warmup, int iterations,
                         bool perStep) {
  if (failed())
    return failedError();
  MOEC_RETURN_IF_ERROR(checkTokens(tokens));
  if (warmup < 0 || iterations < 1)
    return makeError(StatusCode::kInvalidArgument,
                     "timeLaunches: needs warmup >= 0 and iterations >= 1");
  FlagScope running(running_);
  ContextScope scope(*this);
  MOEC_RETURN_IF_ERROR(scope.status());
  // Events per timed round: one before step 0, then one after every step
  // (perStep) or after the last.
  const size_t marks = perStep ? steps_.size() + 1 : 2;
  // Events are destroyed on every path out.
  std::vector<cu::Event> events;
  struct Destroy {
    const CudaDriver &driver;
    std::vector<cu::Event> &events;
    ~Destroy() {
      for (cu::Event e : events)
        driver.eventDestroy(e);
    }
  } destroy{driver_, events};
  for (size_t i = 0; i < marks * size_t(iterations); ++i) {
    cu::Event e = nullptr;
    MOEC_RETURN_IF_ERROR(
        MOEC_CU("cuEventCreate", driver_.eventCreate(&e, cu::kEventDefault)));
    events.push_back(e);
  }
  for (int r = 0; r < warmup + iterations; ++r) {
    // Inputs again each round: the arena reuses their memory.
    MOEC_RETURN_IF_ERROR(uploadInputs(tokens, /*onlySet=*/false));
    bool timed = r >= warmup;
    cu::Event *mark = timed ? &events[size_t(r - warmup) * marks] : nullptr;
    auto record = [&](size_t at) {
      return MOEC_CU("cuEventRecord", driver_.eventRecord(mark[at], stream_));
    };
    if (timed)
      MOEC_RETURN_IF_ERROR(record(0));
    if (timed && perStep) {
      for (size_t i = 0; i < steps_.size(); ++i) {
        MOEC_RETURN_IF_ERROR(launchStep(i, tokens));
        MOEC_RETURN_IF_ERROR(record(i + 1));
      }
      currentStep_ = -1;
    } else {
      MOEC_RETURN_IF_ERROR(launchSteps(tokens));
    }
    if (timed && !perStep)
      MOEC_RETURN_IF_ERROR(record(1));
  }
  MOEC_RETURN_IF_ERROR(
      MOEC_CU("cuStreamSynchronize", driver_.streamSynchronize(stream_)));
  std::vector<std::vector<float>> ms(size_t(iterations),
                                     std::vector<float>(marks - 1, 0.0f));
  for (size_t i = 0; i < size_t(iterations); ++i)
    for (size_t j = 0; j + 1 < marks; ++j)
      MOEC_RETURN_IF_ERROR(
          MOEC_CU("cuEventElapsedTime",
                  driver_.eventElapsedTime(&ms[i][j], events[i * marks + j],
                                           events[i * marks + j + 1])));
  // The device outputs are from these launches now, not from the last run.
  outputTokens_ = 0;
  return ms;
}

} // namespace moec::runtime
