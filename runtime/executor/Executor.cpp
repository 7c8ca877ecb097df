//===- Executor.cpp - One artifact bound to one device ----------*- C++ -*-===//
//
// The device-independent half of every executor: which inputs get default
// positions, and the checks on token counts and inputs that must run before
// any kernel indexes with an input's values.
//
//===----------------------------------------------------------------------===//

#include "runtime/executor/Executor.h"

#include <algorithm>
#include <cstring>

namespace moec::runtime {

namespace {
/// Element `i` of integer data of `dtype` (i32 or i64), unaligned.
int64_t loadIndexValue(manifest::DType dtype, const void *data, uint64_t i) {
  const auto *bytes = static_cast<const uint8_t *>(data);
  if (dtype == manifest::DType::I64) {
    int64_t v;
    std::memcpy(&v, bytes + i * 8, 8);
    return v;
  }
  int32_t v32;
  std::memcpy(&v32, bytes + i * 4, 4);
  return v32;
}
} // namespace

Executor::Executor(std::shared_ptr<const Artifact> artifact)
    : artifact_(std::move(artifact)) {
  const manifest::Manifest &m = artifact_->manifest();
  const auto &inputs = *m.inputs();
  // A prefill of T tokens sits at positions 0 .. T-1 (docs/artifact.md).
  for (uint32_t i = 0; i < inputs.size(); ++i) {
    const manifest::TensorSpec &in = *inputs[i];
    if (text(in.name()) == "positions" && in.shape()->size() == 1 &&
        in.shape()->Get(0) == -1 &&
        (in.dtype() == manifest::DType::I32 ||
         in.dtype() == manifest::DType::I64))
      positionInputs_.push_back(int(i));
  }
  // The manifest verifier checked these inputs' shapes for a KV cache.
  if (m.kv_cache()) {
    positionsInput_ = findInputIndex(m, "positions");
    slotsInput_ = findInputIndex(m, "slots");
    pageTableInput_ = findInputIndex(m, "page_table");
    logitsRowsInput_ = findInputIndex(m, "logits_rows");
  }
  inputSet_.assign(inputs.size(), false);
  stepWeightsVerified_.assign(m.steps()->size(), false);
}

Executor::~Executor() = default;

uint64_t Executor::kvCachePageBytes() const {
  const manifest::KvCache *cache = kvCache();
  if (!cache)
    return 0;
  uint64_t bytes = 0;
  for (const manifest::KvCacheTensor *t : *cache->tensors())
    bytes += kvCacheTensorPageBytes(*t);
  return bytes;
}

Status Executor::resizeKvCache(int64_t) {
  return makeError(StatusCode::kUnavailable, artifact_->path(), ": the ",
                   device(), " executor keeps no KV cache");
}

Status Executor::copyKvCachePage(int32_t, int32_t) { return resizeKvCache(0); }

Status
Executor::prepareKvCacheInputs(int64_t tokens,
                               const std::function<uint8_t *(int)> &data) {
  const manifest::KvCache *cache = kvCache();
  if (!cache)
    return Status::ok();
  int64_t maxSequences = cache->max_sequences(), maxPages = cache->max_pages();
  int64_t pageTokens = cache->page_tokens();
  auto *slots = reinterpret_cast<int32_t *>(data(slotsInput_));
  auto *table = reinterpret_cast<int32_t *>(data(pageTableInput_));
  if (!inputSet_[size_t(slotsInput_)])
    std::memset(slots, 0, size_t(tokens) * sizeof(int32_t));
  if (!inputSet_[size_t(pageTableInput_)]) {
    std::memset(table, 0, size_t(maxSequences * maxPages) * sizeof(int32_t));
    for (int64_t j = 0; j < std::min(maxPages, kvCachePages_); ++j)
      table[j] = int32_t(j);
  }
  if (logitsRowsInput_ >= 0) {
    auto *rows = reinterpret_cast<int32_t *>(data(logitsRowsInput_));
    if (!inputSet_[size_t(logitsRowsInput_)]) {
      selectedRows_ = tokens;
      for (int64_t t = 0; t < tokens; ++t)
        rows[t] = int32_t(t);
    }
    if (selectedRows_ > tokens)
      return makeError(StatusCode::kInvalidArgument, artifact_->path(),
                       ": input 'logits_rows' selects ", selectedRows_,
                       " rows of a run of ", tokens);
    for (int64_t r = 0; r < selectedRows_; ++r)
      if (rows[r] < 0 || rows[r] >= tokens)
        return makeError(StatusCode::kInvalidArgument, artifact_->path(),
                         ": input 'logits_rows': entry ", r, " is ", rows[r],
                         ", not a row of this run of ", tokens);
  }
  // setInput checked slots and positions against their bounds; what the
  // page table says about them is checked here, per slot up to its last
  // position.
  const uint8_t *positions = data(positionsInput_);
  manifest::DType positionType =
      artifact_->manifest().inputs()->Get(uint32_t(positionsInput_))->dtype();
  std::vector<int64_t> last(size_t(maxSequences), -1);
  for (int64_t t = 0; t < tokens; ++t) {
    int64_t position = loadIndexValue(positionType, positions, uint64_t(t));
    int32_t slot = slots[t];
    if (slot < 0 || slot >= maxSequences || position < 0 ||
        position >= maxPages * pageTokens)
      return makeError(StatusCode::kInvalidArgument, artifact_->path(),
                       ": row ", t, " has slot ", slot, " and position ",
                       position, ", outside the KV cache's ", maxSequences,
                       " slots of ", maxPages * pageTokens, " positions");
    last[size_t(slot)] = std::max(last[size_t(slot)], position);
  }
  for (int64_t s = 0; s < maxSequences; ++s)
    for (int64_t j = 0;
         last[size_t(s)] >= 0 && j <= last[size_t(s)] / pageTokens; ++j) {
      int32_t page = table[s * maxPages + j];
      if (page < 0 || page >= kvCachePages_)
        return makeError(StatusCode::kInvalidArgument, artifact_->path(),
                         ": input 'page_table': slot ", s, " page ", j,
                         " is page ", page, ", outside the ", kvCachePages_,
                         " pages of the KV cache");
    }
  return Status::ok();
}

Status Executor::checkTokens(int64_t tokens) const {
  if (tokens < 1 || tokens > maxTokens())
    return makeError(StatusCode::kInvalidArgument, artifact_->path(),
                     ": token count ", tokens, " is not in [1, ", maxTokens(),
                     "]");
  return Status::ok();
}

StatusOr<const manifest::TensorSpec *> Executor::findTensor(bool output,
                                                            int index) const {
  const manifest::Manifest &m = artifact_->manifest();
  const auto &list = output ? *m.outputs() : *m.inputs();
  if (index < 0 || uint32_t(index) >= list.size())
    return makeError(StatusCode::kInvalidArgument, artifact_->path(), ": has ",
                     list.size(), output ? " outputs" : " inputs", ", no #",
                     index);
  return list[uint32_t(index)];
}

Status Executor::checkInput(int index, const void *data, uint64_t bytes,
                            int64_t tokens) const {
  MOEC_RETURN_IF_ERROR(checkTokens(tokens));
  MOEC_ASSIGN_OR_RETURN(const manifest::TensorSpec *found,
                        findTensor(false, index));
  const manifest::TensorSpec &spec = *found;
  uint64_t expected =
      bufferBytesAt(*artifact_->findBuffer(spec.buffer()), tokens);
  if (bytes != expected)
    return makeError(StatusCode::kInvalidArgument, "input '", text(spec.name()),
                     "': got ", bytes, " bytes, expected ", expected, " for ",
                     tokens, " tokens");
  if (bytes > 0 && !data)
    return makeError(StatusCode::kInvalidArgument, "input '", text(spec.name()),
                     "': null data");
  if (int64_t bound = spec.index_bound()) {
    uint64_t size = dtypeSize(spec.dtype());
    for (uint64_t i = 0; i < bytes / size; ++i) {
      int64_t v = loadIndexValue(spec.dtype(), data, i);
      if (v < 0 || v >= bound)
        return makeError(StatusCode::kInvalidArgument, "input '",
                         text(spec.name()), "': element ", i, " is ", v,
                         ", outside [0, ", bound, ")");
    }
  }
  return Status::ok();
}

Status Executor::checkStep(int index) const {
  int steps = int(artifact_->manifest().steps()->size());
  if (index < 0 || index >= steps)
    return makeError(StatusCode::kInvalidArgument, artifact_->path(), ": has ",
                     steps, " steps, no #", index);
  return Status::ok();
}

Status Executor::verifyStepWeights(int index) {
  if (stepWeightsVerified_[size_t(index)])
    return Status::ok();
  const manifest::Step &step =
      *artifact_->manifest().steps()->Get(uint32_t(index));
  for (const manifest::Argument *arg : *step.args())
    if (arg->kind() == manifest::ArgumentKind::WEIGHT)
      MOEC_RETURN_IF_ERROR(artifact_->verifyWeight(arg->id()));
  stepWeightsVerified_[size_t(index)] = true;
  return Status::ok();
}

Status Executor::checkArenaRange(uint64_t offset, uint64_t bytes,
                                 const void *data) const {
  uint64_t arena = artifact_->manifest().arena_bytes();
  if (offset > arena || bytes > arena - offset)
    return makeError(StatusCode::kInvalidArgument, artifact_->path(),
                     ": arena range [", offset, ", +", bytes,
                     ") exceeds arena_bytes ", arena);
  if (bytes > 0 && !data)
    return makeError(StatusCode::kInvalidArgument, artifact_->path(),
                     ": arena copy with null host memory");
  return Status::ok();
}

void Executor::writePositions(const manifest::TensorSpec &spec, uint8_t *out,
                              int64_t tokens) {
  bool wide = spec.dtype() == manifest::DType::I64;
  for (int64_t t = 0; t < tokens; ++t) {
    if (wide) {
      std::memcpy(out + t * 8, &t, 8);
    } else {
      int32_t t32 = int32_t(t);
      std::memcpy(out + t * 4, &t32, 4);
    }
  }
}

} // namespace moec::runtime
