//===- Executor.cpp - One artifact bound to one device ----------*- C++ -*-===//
//
// The device-independent half of every executor: which inputs get default
// positions, and the checks on token counts and inputs that must run before
// any kernel indexes with an input's values.
//
//===----------------------------------------------------------------------===//

#include "runtime/executor/Executor.h"

#include <cstring>

namespace moec::runtime {

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
  inputSet_.assign(inputs.size(), false);
  stepWeightsVerified_.assign(m.steps()->size(), false);
}

Executor::~Executor() = default;

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
      int64_t v;
      if (spec.dtype() == manifest::DType::I32) {
        int32_t v32;
        std::memcpy(&v32, static_cast<const uint8_t *>(data) + i * 4, 4);
        v = v32;
      } else {
        std::memcpy(&v, static_cast<const uint8_t *>(data) + i * 8, 8);
      }
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
