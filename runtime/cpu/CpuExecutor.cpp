//===- CpuExecutor.cpp - Runs an artifact's steps on the CPU ----*- C++ -*-===//
//
// Everything that can fail is done in `create`: the shared object load, the
// symbol lookups and the arena allocation; except the weights' integrity,
// which is checked block by block before the first run of a step that reads
// them (so that loading reads no weight byte). `run` then only checks the
// token count, fills the `positions` input unless the caller set it, and
// calls the kernels. Inputs are validated before they reach a kernel (token
// ids against `index_bound`), since kernels index with them.
//
//===----------------------------------------------------------------------===//

#include "runtime/cpu/CpuExecutor.h"

#include "runtime/executor/WeightFill.h"

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <limits>

namespace moec::runtime {

/// Alignment of the arena (and thus of every buffer).
constexpr size_t kArenaAlignment = 64;
/// Largest arena the executor tries to allocate (256 TiB); beyond it the
/// manifest is wrong, and rounding up could overflow.
constexpr uint64_t kMaxArenaBytes = uint64_t(1) << 48;

// The layout compiled kernels read (codegen/cpu/PlannedKernels.cpp uses
// offsetof on the same header; this pins the x86-64/AArch64 LP64 layout).
static_assert(sizeof(void *) != 8 ||
                  (offsetof(MoecCpuRuntime, version) == 0 &&
                   offsetof(MoecCpuRuntime, num_threads) == 4 &&
                   offsetof(MoecCpuRuntime, parallel_for) == 8 &&
                   offsetof(MoecCpuRuntime, impl) == 16),
              "MoecCpuRuntime layout changed");

namespace {
// `MoecCpuRuntime::parallel_for`: the table's `impl` is the pool.
void parallelFor(const MoecCpuRuntime *self, MoecParallelBody body, void *ctx,
                 int64_t count, int64_t grain) {
  static_cast<ThreadPool *>(self->impl)->parallelFor(body, ctx, count, grain);
}
} // namespace

StatusOr<std::unique_ptr<CpuExecutor>>
CpuExecutor::create(std::shared_ptr<const Artifact> artifact) {
  const manifest::Manifest &m = artifact->manifest();
  const std::string &path = artifact->path();
  // Of several variants, the best one this CPU runs; a file without
  // `cpu_objects` has one `cpu.so` with nothing recorded to check.
  std::string section = "cpu.so";
  std::vector<CpuCodeVariant> variants = getCpuCodeVariants(m);
  if (!variants.empty()) {
    StatusOr<HostCpuFeatures> host = getHostCpuFeatures();
    if (!host.isOk())
      return host.status();
    StatusOr<size_t> chosen = selectCpuCodeVariant(variants, *host);
    if (!chosen.isOk())
      return chosen.status().withPrefix(path);
    section = variants[*chosen].name;
  }
  const SectionInfo *so = artifact->findSection(section);
  if (!so)
    return makeError(StatusCode::kUnavailable, path,
                     ": has no code for the cpu target (no '", section,
                     "' section)");

  std::unique_ptr<CpuExecutor> executor(new CpuExecutor(artifact));
  executor->cpuCode_ = section;
  ByteSpan bytes = artifact->sectionData(*so);
  StatusOr<std::unique_ptr<SharedObject>> library =
      SharedObject::loadFromMemory(section, bytes.data, bytes.size);
  if (!library.isOk())
    return library.status().withPrefix(path);
  executor->library_ = std::move(library).value();
  // A cpu.so whose kernels use threads exports the pointer to the services
  // table (KernelAbi.h); older ones do not, and run on the calling thread.
  StatusOr<void *> slot = executor->library_->lookup(MOEC_CPU_RUNTIME_SYMBOL);
  if (slot.isOk())
    executor->runtimeSlot_ = static_cast<const MoecCpuRuntime **>(*slot);
  executor->setThreads(0);

  // Round up to the alignment (aligned_alloc wants a multiple) and zero it,
  // so that a run never reads uninitialised memory.
  uint64_t arenaBytes = m.arena_bytes();
  if (arenaBytes > kMaxArenaBytes)
    return makeError(StatusCode::kOutOfMemory, path, ": arena_bytes ",
                     arenaBytes, " exceeds the runtime's limit of ",
                     kMaxArenaBytes);
  size_t rounded = size_t((arenaBytes + kArenaAlignment - 1) / kArenaAlignment *
                          kArenaAlignment);
  if (rounded == 0)
    rounded = kArenaAlignment;
  executor->arena_ =
      static_cast<uint8_t *>(std::aligned_alloc(kArenaAlignment, rounded));
  if (!executor->arena_)
    return makeError(StatusCode::kOutOfMemory, path, ": cannot allocate the ",
                     arenaBytes, "-byte arena");
  std::memset(executor->arena_, 0, rounded);

  // A benchmark artifact's weights are generated, not read.
  if (m.weights_device_filled()) {
    uint64_t extent = weightsExtent(m);
    size_t size = size_t((extent + kArenaAlignment - 1) / kArenaAlignment *
                         kArenaAlignment);
    executor->filledWeights_ = static_cast<uint8_t *>(
        std::aligned_alloc(kArenaAlignment, size ? size : kArenaAlignment));
    if (!executor->filledWeights_)
      return makeError(StatusCode::kOutOfMemory, path, ": cannot allocate the ",
                       extent, " bytes of filled weights");
    std::memset(executor->filledWeights_, 0, size);
    for (const manifest::Weight *w : *m.weights())
      fillWeightOnHost(m, *w, executor->filledWeights_ + w->offset());
  }

  const auto &steps = *m.steps();
  for (uint32_t i = 0; i < steps.size(); ++i) {
    const manifest::Step &s = *steps[i];
    Step step;
    StatusOr<void *> symbol =
        executor->library_->lookup(std::string(text(s.kernel())));
    if (!symbol.isOk())
      return symbol.status().withPrefix(strCat(path, ": step ", i));
    step.kernel = reinterpret_cast<MoecCpuKernel>(*symbol);
    for (const manifest::Argument *arg : *s.args()) {
      if (arg->kind() == manifest::ArgumentKind::KV_CACHE) {
        // Set by resizeKvCache below.
        executor->kvArguments_.push_back({i, step.args.size(), arg->id()});
        step.args.push_back(nullptr);
      } else if (arg->kind() == manifest::ArgumentKind::BUFFER)
        step.args.push_back(executor->bufferData(arg->id()));
      else if (executor->filledWeights_)
        step.args.push_back(executor->filledWeights_ +
                            artifact->findWeight(arg->id())->offset());
      else
        step.args.push_back(
            const_cast<uint8_t *>(artifact->weightData(arg->id()).data));
    }
    step.params.assign(s.params()->begin(), s.params()->end());
    step.selectedRows = s.selected_rows();
    executor->steps_.push_back(std::move(step));
  }
  // Pointers into `params` only once the vector no longer moves.
  for (Step &step : executor->steps_)
    step.args.push_back(step.params.empty() ? nullptr : step.params.data());
  // A KV cache starts with room for one sequence of `max_tokens`, what a
  // plain run needs; generation sizes it for its budget.
  if (const manifest::KvCache *cache = m.kv_cache()) {
    for (const manifest::KvCacheTensor *t : *cache->tensors())
      executor->kvPoolPageBytes_.push_back(kvCacheTensorPageBytes(*t));
    executor->kvPools_.assign(cache->tensors()->size(), nullptr);
    int64_t pages = std::min<int64_t>(
        cache->max_pages(),
        (m.max_tokens() + cache->page_tokens() - 1) / cache->page_tokens());
    MOEC_RETURN_IF_ERROR(executor->resizeKvCache(pages));
  }
  return executor;
}

void CpuExecutor::setThreads(int threads) {
  if (threads <= 0)
    threads = ThreadPool::defaultThreads();
  threads_ = threads;
  if (!runtimeSlot_)
    return;
  // Nothing runs while the table changes (one run at a time).
  *runtimeSlot_ = nullptr;
  pool_.reset();
  pool_ = std::make_unique<ThreadPool>(threads);
  runtime_.version = MOEC_CPU_RUNTIME_VERSION;
  runtime_.num_threads = pool_->threads();
  runtime_.parallel_for = &parallelFor;
  runtime_.impl = pool_.get();
  *runtimeSlot_ = &runtime_;
}

CpuExecutor::~CpuExecutor() {
  if (runtimeSlot_)
    *runtimeSlot_ = nullptr;
  std::free(arena_);
  std::free(filledWeights_);
  for (uint8_t *pool : kvPools_)
    std::free(pool);
}

Status CpuExecutor::resizeKvCache(int64_t pages) {
  if (!kvCache())
    return Executor::resizeKvCache(pages);
  if (pages < 1 || pages > std::numeric_limits<int32_t>::max())
    return makeError(StatusCode::kInvalidArgument, artifact_->path(),
                     ": a KV cache of ", pages,
                     " pages (page ids are int32, at least 1)");
  for (uint64_t pageBytes : kvPoolPageBytes_)
    if (uint64_t(pages) > kMaxArenaBytes / pageBytes)
      return makeError(StatusCode::kOutOfMemory, artifact_->path(),
                       ": a KV cache of ", pages, " pages of ", pageBytes,
                       " bytes exceeds the runtime's limit");
  std::vector<uint8_t *> pools;
  for (uint64_t pageBytes : kvPoolPageBytes_) {
    size_t bytes = size_t(pageBytes) * size_t(pages);
    bytes = (bytes + kArenaAlignment - 1) / kArenaAlignment * kArenaAlignment;
    auto *pool =
        static_cast<uint8_t *>(std::aligned_alloc(kArenaAlignment, bytes));
    if (!pool) {
      for (uint8_t *p : pools)
        std::free(p);
      return makeError(StatusCode::kOutOfMemory, artifact_->path(),
                       ": cannot allocate a KV cache of ", pages, " pages (",
                       uint64_t(pages) * kvCachePageBytes(), " bytes)");
    }
    std::memset(pool, 0, bytes);
    pools.push_back(pool);
  }
  for (uint8_t *pool : kvPools_)
    std::free(pool);
  kvPools_ = std::move(pools);
  kvCachePages_ = pages;
  for (const KvArgument &a : kvArguments_)
    steps_[a.step].args[a.arg] = kvPools_[a.tensor];
  return Status::ok();
}

Status CpuExecutor::copyKvCachePage(int32_t src, int32_t dst) {
  if (!kvCache())
    return Executor::copyKvCachePage(src, dst);
  if (src < 0 || src >= kvCachePages_ || dst < 0 || dst >= kvCachePages_)
    return makeError(StatusCode::kInvalidArgument, artifact_->path(),
                     ": KV cache page copy ", src, " -> ", dst, " outside its ",
                     kvCachePages_, " pages");
  for (size_t i = 0; i < kvPools_.size(); ++i)
    std::memcpy(kvPools_[i] + uint64_t(dst) * kvPoolPageBytes_[i],
                kvPools_[i] + uint64_t(src) * kvPoolPageBytes_[i],
                size_t(kvPoolPageBytes_[i]));
  return Status::ok();
}

uint8_t *CpuExecutor::bufferData(uint32_t id) const {
  const manifest::Buffer *b = artifact_->findBuffer(id);
  return b ? arena_ + b->offset() : nullptr;
}

StatusOr<TensorView> CpuExecutor::tensor(bool output, int index,
                                         int64_t tokens) {
  MOEC_RETURN_IF_ERROR(checkTokens(tokens));
  TensorView view;
  MOEC_ASSIGN_OR_RETURN(view.spec, findTensor(output, index));
  const manifest::Buffer *b = artifact_->findBuffer(view.spec->buffer());
  view.data = arena_ + b->offset();
  for (int64_t d : *view.spec->shape())
    view.shape.push_back(d == -1 ? tokens : d);
  view.bytes = bufferBytesAt(*b, tokens);
  return view;
}

Status CpuExecutor::setInput(int index, const void *data, uint64_t bytes,
                             int64_t tokens) {
  MOEC_RETURN_IF_ERROR(checkInput(index, data, bytes, tokens));
  if (index == logitsRowsInput_)
    selectedRows_ = tokens;
  if (bytes)
    std::memcpy(
        bufferData(
            artifact_->manifest().inputs()->Get(uint32_t(index))->buffer()),
        data, bytes);
  inputSet_[size_t(index)] = true;
  return Status::ok();
}

Status CpuExecutor::prepareInputs(int64_t tokens) {
  for (int index : positionInputs_) {
    if (inputSet_[size_t(index)])
      continue;
    MOEC_ASSIGN_OR_RETURN(TensorView view, tensor(false, index, tokens));
    writePositions(*view.spec, view.data, tokens);
  }
  Status status = prepareKvCacheInputs(tokens, [&](int index) {
    return bufferData(
        artifact_->manifest().inputs()->Get(uint32_t(index))->buffer());
  });
  inputSet_.assign(inputSet_.size(), false);
  return status;
}

Status CpuExecutor::run(int64_t tokens) {
  // A file changed in place explains whatever this run reports.
  Status status = runSteps(tokens);
  Status unchanged = artifact_->checkUnchanged();
  return unchanged.isOk() ? status : unchanged;
}

Status CpuExecutor::runSteps(int64_t tokens) {
  MOEC_RETURN_IF_ERROR(checkTokens(tokens));
  // Every weight a step reads is verified before the first run (once; a
  // no-op afterwards), so a corrupted weight fails the run, unused.
  for (size_t i = 0; i < steps_.size(); ++i)
    MOEC_RETURN_IF_ERROR(verifyStepWeights(int(i)));
  MOEC_RETURN_IF_ERROR(prepareInputs(tokens));
  // The kernels read weights in place from the mapping: a file changed in
  // place before or during the run (its pages then read as zeros rather
  // than raising SIGBUS) fails the run instead of giving wrong outputs.
  MOEC_RETURN_IF_ERROR(artifact_->checkUnchanged());
  for (const Step &step : steps_)
    step.kernel(step.args.data(), step.selectedRows ? selectedRows_ : tokens);
  return artifact_->checkUnchanged();
}

Status CpuExecutor::runStep(int index, int64_t tokens) {
  MOEC_RETURN_IF_ERROR(checkTokens(tokens));
  MOEC_RETURN_IF_ERROR(checkStep(index));
  MOEC_RETURN_IF_ERROR(verifyStepWeights(index));
  // setInput wrote the inputs already; only step 0 defaults `positions`
  // (later steps may reuse its memory).
  if (index == 0)
    MOEC_RETURN_IF_ERROR(prepareInputs(tokens));
  else
    inputSet_.assign(inputSet_.size(), false);
  MOEC_RETURN_IF_ERROR(artifact_->checkUnchanged());
  const Step &step = steps_[size_t(index)];
  step.kernel(step.args.data(), step.selectedRows ? selectedRows_ : tokens);
  return artifact_->checkUnchanged();
}

Status CpuExecutor::readArena(uint64_t offset, uint64_t bytes, void *dst) {
  MOEC_RETURN_IF_ERROR(checkArenaRange(offset, bytes, dst));
  if (bytes)
    std::memcpy(dst, arena_ + offset, size_t(bytes));
  return Status::ok();
}

Status CpuExecutor::writeArena(uint64_t offset, uint64_t bytes,
                               const void *src) {
  MOEC_RETURN_IF_ERROR(checkArenaRange(offset, bytes, src));
  if (bytes)
    std::memcpy(arena_ + offset, src, size_t(bytes));
  return Status::ok();
}

} // namespace moec::runtime
