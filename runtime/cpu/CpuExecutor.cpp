//===- CpuExecutor.cpp - Runs an artifact's steps on the CPU ----*- C++ -*-===//
//
// Everything that can fail is done in `create`: the shared object load, the
// symbol lookups and the arena allocation. `run` only checks the token count,
// fills the `positions` input unless the caller set it, and calls the
// kernels. Inputs are validated before they reach a kernel (token ids
// against `index_bound`), since kernels index with them.
//
//===----------------------------------------------------------------------===//

#include "runtime/cpu/CpuExecutor.h"

#include <cstdlib>
#include <cstring>

namespace moec::runtime {

/// Alignment of the arena (and thus of every buffer).
constexpr size_t kArenaAlignment = 64;
/// Largest arena the executor tries to allocate (256 TiB); beyond it the
/// manifest is wrong, and rounding up could overflow.
constexpr uint64_t kMaxArenaBytes = uint64_t(1) << 48;

StatusOr<std::unique_ptr<CpuExecutor>>
CpuExecutor::create(std::shared_ptr<const Artifact> artifact) {
  const manifest::Manifest &m = artifact->manifest();
  const std::string &path = artifact->path();
  const SectionInfo *so = artifact->findSection("cpu.so");
  if (!so)
    return makeError(StatusCode::kUnavailable, path,
                     ": has no code for the cpu target (no 'cpu.so' section)");

  std::unique_ptr<CpuExecutor> executor(new CpuExecutor());
  ByteSpan bytes = artifact->sectionData(*so);
  StatusOr<std::unique_ptr<SharedObject>> library =
      SharedObject::loadFromMemory("cpu.so", bytes.data, bytes.size);
  if (!library.isOk())
    return library.status().withPrefix(path);
  executor->library_ = std::move(library).value();

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
  executor->artifact_ = std::move(artifact);
  const Artifact &a = *executor->artifact_;

  for (int i = 0; i < m.steps_size(); ++i) {
    const manifest::Step &s = m.steps(i);
    Step step;
    StatusOr<void *> symbol = executor->library_->lookup(s.kernel());
    if (!symbol.isOk())
      return symbol.status().withPrefix(strCat(path, ": step ", i));
    step.kernel = reinterpret_cast<MoecCpuKernel>(*symbol);
    for (const manifest::Argument &arg : s.args()) {
      if (arg.ref_case() == manifest::Argument::kBuffer)
        step.args.push_back(executor->bufferData(arg.buffer()));
      else
        step.args.push_back(
            const_cast<uint8_t *>(a.weightData(arg.weight()).data));
    }
    step.params.assign(s.params().begin(), s.params().end());
    executor->steps_.push_back(std::move(step));
  }
  // Pointers into `params` only once the vector no longer moves.
  for (Step &step : executor->steps_)
    step.args.push_back(step.params.empty() ? nullptr : step.params.data());
  // A prefill of T tokens sits at positions 0 .. T-1 (docs/artifact.md).
  for (int i = 0; i < m.inputs_size(); ++i) {
    const manifest::TensorSpec &in = m.inputs(i);
    if (in.name() == "positions" && in.shape_size() == 1 && in.shape(0) == -1 &&
        (in.dtype() == manifest::DTYPE_I32 ||
         in.dtype() == manifest::DTYPE_I64))
      executor->positionInputs_.push_back(i);
  }
  executor->inputSet_.assign(size_t(m.inputs_size()), false);
  return executor;
}

CpuExecutor::~CpuExecutor() { std::free(arena_); }

uint8_t *CpuExecutor::bufferData(uint32_t id) const {
  const manifest::Buffer *b = artifact_->findBuffer(id);
  return b ? arena_ + b->offset() : nullptr;
}

Status CpuExecutor::checkTokens(int64_t tokens) const {
  if (tokens < 1 || tokens > maxTokens())
    return makeError(StatusCode::kInvalidArgument, artifact_->path(),
                     ": token count ", tokens, " is not in [1, ", maxTokens(),
                     "]");
  return Status::ok();
}

StatusOr<TensorView> CpuExecutor::tensor(bool output, int index,
                                         int64_t tokens) {
  MOEC_RETURN_IF_ERROR(checkTokens(tokens));
  const manifest::Manifest &m = artifact_->manifest();
  const auto &list = output ? m.outputs() : m.inputs();
  if (index < 0 || index >= list.size())
    return makeError(StatusCode::kInvalidArgument, artifact_->path(), ": has ",
                     list.size(), output ? " outputs" : " inputs", ", no #",
                     index);
  TensorView view;
  view.spec = &list[index];
  const manifest::Buffer *b = artifact_->findBuffer(view.spec->buffer());
  view.data = arena_ + b->offset();
  for (int64_t d : view.spec->shape())
    view.shape.push_back(d == -1 ? tokens : d);
  view.bytes = bufferBytesAt(*b, tokens);
  return view;
}

Status CpuExecutor::setInput(int index, const void *data, uint64_t bytes,
                             int64_t tokens) {
  MOEC_ASSIGN_OR_RETURN(TensorView view, tensor(false, index, tokens));
  const manifest::TensorSpec &spec = *view.spec;
  if (bytes != view.bytes)
    return makeError(StatusCode::kInvalidArgument, "input '", spec.name(),
                     "': got ", bytes, " bytes, expected ", view.bytes, " for ",
                     tokens, " tokens");
  if (bytes > 0 && !data)
    return makeError(StatusCode::kInvalidArgument, "input '", spec.name(),
                     "': null data");
  if (int64_t bound = spec.index_bound()) {
    uint64_t size = dtypeSize(spec.dtype());
    for (uint64_t i = 0; i < bytes / size; ++i) {
      int64_t v;
      if (spec.dtype() == manifest::DTYPE_I32) {
        int32_t v32;
        std::memcpy(&v32, static_cast<const uint8_t *>(data) + i * 4, 4);
        v = v32;
      } else {
        std::memcpy(&v, static_cast<const uint8_t *>(data) + i * 8, 8);
      }
      if (v < 0 || v >= bound)
        return makeError(StatusCode::kInvalidArgument, "input '", spec.name(),
                         "': element ", i, " is ", v, ", outside [0, ", bound,
                         ")");
    }
  }
  if (bytes)
    std::memcpy(view.data, data, bytes);
  inputSet_[size_t(index)] = true;
  return Status::ok();
}

Status CpuExecutor::run(int64_t tokens) {
  MOEC_RETURN_IF_ERROR(checkTokens(tokens));
  for (int index : positionInputs_) {
    if (inputSet_[size_t(index)])
      continue;
    MOEC_ASSIGN_OR_RETURN(TensorView view, tensor(false, index, tokens));
    bool wide = view.spec->dtype() == manifest::DTYPE_I64;
    for (int64_t t = 0; t < tokens; ++t) {
      if (wide) {
        std::memcpy(view.data + t * 8, &t, 8);
      } else {
        int32_t t32 = int32_t(t);
        std::memcpy(view.data + t * 4, &t32, 4);
      }
    }
  }
  inputSet_.assign(inputSet_.size(), false);
  for (const Step &step : steps_)
    step.kernel(step.args.data(), tokens);
  return Status::ok();
}

} // namespace moec::runtime
