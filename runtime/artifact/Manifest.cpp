//===- Manifest.cpp - Manifest helpers and consistency checks ---*- C++ -*-===//
//
// `readManifest` runs the FlatBuffers verifier (bounds, required fields,
// depth and table limits) and checks the alignment of 8-byte vector elements
// that it misses; `verifyManifest` then walks every table once and
// refuses anything the executor could trip over: unknown enum values
// (FlatBuffers enums are open), duplicate ids, ranges outside the arena or
// the weights section, shapes that disagree with their buffers, dangling
// step arguments. All size arithmetic is checked for overflow.
//
//===----------------------------------------------------------------------===//

#include "runtime/artifact/Manifest.h"

#include "runtime/artifact/Format.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>

namespace moec::runtime {

using namespace manifest;

//===----------------------------------------------------------------------===//
// Reading and writing the FlatBuffer
//===----------------------------------------------------------------------===//

namespace {

/// FlatBuffers' verifier (2.0.8) checks that a vector's length prefix is
/// 4-byte aligned, not that its elements are aligned for their type
/// (google/flatbuffers#8397): a vector of 8-byte scalars or structs can
/// start 4 bytes off, and reading it is a misaligned load. Checks the
/// manifest's vectors of 8-byte elements, after the verifier ran. Empty
/// vectors are never read and pass.
Status checkVectorAlignment(const Manifest &m, const uint8_t *base) {
  auto misaligned = [](const auto *v) {
    return v && v->size() != 0 && uintptr_t(v->Data()) % 8 != 0;
  };
  auto fail = [&](const auto *v, const std::string &field) {
    return makeError(StatusCode::kCorrupt,
                     "not a valid FlatBuffers Manifest: ", field,
                     ": its 8-byte elements start at offset ", v->Data() - base,
                     ", not a multiple of 8");
  };
  for (const auto *list : {m.inputs(), m.outputs()})
    for (uint32_t i = 0; i < list->size(); ++i)
      if (misaligned(list->Get(i)->shape()))
        return fail(
            list->Get(i)->shape(),
            strCat(list == m.inputs() ? "inputs[" : "outputs[", i, "].shape"));
  for (uint32_t i = 0; i < m.weights()->size(); ++i) {
    const Weight &w = *m.weights()->Get(i);
    if (misaligned(w.shape()))
      return fail(w.shape(), strCat("weights[", i, "].shape"));
    if (misaligned(w.block_shape()))
      return fail(w.block_shape(), strCat("weights[", i, "].block_shape"));
  }
  for (uint32_t i = 0; i < m.steps()->size(); ++i) {
    const Step &s = *m.steps()->Get(i);
    if (misaligned(s.params()))
      return fail(s.params(), strCat("steps[", i, "].params"));
    for (uint32_t j = 0; j < s.cuda()->size(); ++j) {
      const CudaLaunch &l = *s.cuda()->Get(j);
      auto at = [&] { return strCat("steps[", i, "].cuda[", j, "]"); };
      if (misaligned(l.grid()))
        return fail(l.grid(), at() + ".grid");
      for (uint32_t k = 0; k < l.tensor_maps()->size(); ++k) {
        const TensorMap &t = *l.tensor_maps()->Get(k);
        if (misaligned(t.dims()))
          return fail(t.dims(), strCat(at(), ".tensor_maps[", k, "].dims"));
        if (misaligned(t.strides()))
          return fail(t.strides(),
                      strCat(at(), ".tensor_maps[", k, "].strides"));
      }
    }
  }
  if (const Generation *g = m.generation(); g && misaligned(g->eos_token_ids()))
    return fail(g->eos_token_ids(), "generation.eos_token_ids");
  if (const KvCache *c = m.kv_cache())
    for (uint32_t i = 0; i < c->tensors()->size(); ++i)
      if (misaligned(c->tensors()->Get(i)->page_shape()))
        return fail(c->tensors()->Get(i)->page_shape(),
                    strCat("kv_cache.tensors[", i, "].page_shape"));
  return Status::ok();
}

} // namespace

StatusOr<const Manifest *> readManifest(const uint8_t *data, uint64_t size) {
  if (size > kMaxManifestBytes)
    return makeError(StatusCode::kCorrupt, "size ", size,
                     " exceeds the 2 GiB FlatBuffers limit");
  if (size < 8 || !flatbuffers::BufferHasIdentifier(data, ManifestIdentifier()))
    return makeError(StatusCode::kCorrupt,
                     "not a FlatBuffers Manifest (no file identifier \"",
                     ManifestIdentifier(), "\")");
  // Every table takes at least 4 bytes (its vtable offset), so a manifest
  // that does not share tables has at most size / 4 of them; one that does
  // (a DAG) cannot make the verifier do more than linear work.
  flatbuffers::Verifier verifier(data, size_t(size), kManifestVerifierMaxDepth,
                                 flatbuffers::uoffset_t(size / 4 + 16));
  if (!VerifyManifestBuffer(verifier))
    return makeError(StatusCode::kCorrupt,
                     "not a valid FlatBuffers Manifest (the verifier refused "
                     "an offset, a bound, a missing required field, or the "
                     "depth or table limits)");
  const Manifest *manifest = GetManifest(data);
  MOEC_RETURN_IF_ERROR(checkVectorAlignment(*manifest, data));
  return manifest;
}

std::vector<uint8_t> packManifest(const ManifestT &manifest) {
  flatbuffers::FlatBufferBuilder builder(4096);
  FinishManifestBuffer(builder, Manifest::Pack(builder, &manifest));
  return std::vector<uint8_t>(builder.GetBufferPointer(),
                              builder.GetBufferPointer() + builder.GetSize());
}

Hash toHash(const Sha256Digest &digest) {
  return Hash(flatbuffers::span<const uint8_t, 32>(digest.data(), 32));
}

Sha256Digest fromHash(const Hash &hash) {
  Sha256Digest digest;
  std::memcpy(digest.data(), hash.bytes()->Data(), digest.size());
  return digest;
}

//===----------------------------------------------------------------------===//
// Field helpers
//===----------------------------------------------------------------------===//

uint64_t dtypeSize(DType dtype) {
  switch (dtype) {
  case DType::F32:
  case DType::I32:
    return 4;
  case DType::BF16:
  case DType::F16:
    return 2;
  case DType::F8E4M3FN:
  case DType::F8E5M2:
  case DType::I8:
  case DType::U8:
    return 1;
  case DType::I64:
    return 8;
  default:
    return 0;
  }
}

const char *dtypeName(DType dtype) {
  switch (dtype) {
  case DType::F32:
    return "f32";
  case DType::BF16:
    return "bf16";
  case DType::F16:
    return "f16";
  case DType::F8E4M3FN:
    return "f8e4m3fn";
  case DType::F8E5M2:
    return "f8e5m2";
  case DType::I32:
    return "i32";
  case DType::I64:
    return "i64";
  case DType::I8:
    return "i8";
  case DType::U8:
    return "u8";
  default:
    return "unspecified";
  }
}

const char *precisionName(Precision precision) {
  switch (precision) {
  case Precision::F32:
    return "f32";
  case Precision::BF16:
    return "bf16";
  case Precision::FP8:
    return "fp8";
  default:
    return "unspecified";
  }
}

bool isPerToken(const Buffer &b) {
  return b.elements_type() == Elements::ElementsPerToken;
}

uint64_t bufferElements(const Buffer &b) {
  if (const ElementsPerToken *e = b.elements_as_ElementsPerToken())
    return e->count();
  if (const FixedElements *e = b.elements_as_FixedElements())
    return e->count();
  return 0;
}

void setElementsPerToken(BufferT &b, uint64_t count) {
  ElementsPerTokenT e;
  e.count = count;
  b.elements.Set(std::move(e));
}

void setFixedElements(BufferT &b, uint64_t count) {
  FixedElementsT e;
  e.count = count;
  b.elements.Set(std::move(e));
}

uint64_t bufferBytesAt(const Buffer &buffer, int64_t tokens) {
  uint64_t elements = isPerToken(buffer)
                          ? bufferElements(buffer) * uint64_t(tokens)
                          : bufferElements(buffer);
  return elements * dtypeSize(buffer.dtype());
}

namespace {

template <typename Dims> std::string formatShape(const Dims &shape) {
  std::string out = "[";
  bool first = true;
  for (int64_t d : shape) {
    if (!first)
      out += ", ";
    first = false;
    out += d == -1 ? std::string("T") : std::to_string(d);
  }
  return out + "]";
}

} // namespace

std::string shapeString(const flatbuffers::Vector<int64_t> &shape) {
  return formatShape(shape);
}

std::string shapeString(const std::vector<int64_t> &shape) {
  return formatShape(shape);
}

namespace {

bool mulOverflows(uint64_t a, uint64_t b, uint64_t &out) {
  return __builtin_mul_overflow(a, b, &out);
}

bool addOverflows(uint64_t a, uint64_t b, uint64_t &out) {
  return __builtin_add_overflow(a, b, &out);
}

// `s` in single quotes, with non-printable bytes escaped and long names cut,
// so that a corrupted name cannot garble a message.
std::string quoted(std::string_view s) {
  static const char kHex[] = "0123456789abcdef";
  std::string out = "'";
  for (size_t i = 0; i < s.size() && i < 80; ++i) {
    unsigned char c = s[i];
    if (c >= 0x20 && c < 0x7F && c != '\\' && c != '\'') {
      out.push_back(char(c));
    } else {
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out + (s.size() > 80 ? "...'" : "'");
}

std::string quoted(const flatbuffers::String *s) { return quoted(text(s)); }

Status corrupt(const std::string &what) {
  return Status(StatusCode::kCorrupt, what);
}

bool isCIdentifier(std::string_view s) {
  if (s.empty() || s.size() > 255)
    return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
      return false;
  }
  return true;
}

} // namespace

bool isCudaTarget(std::string_view t) {
  if (t.size() < 4 || t.substr(0, 3) != "sm_")
    return false;
  std::string_view arch = t.substr(3);
  if (arch.back() == 'a')
    arch.remove_suffix(1);
  if (arch.empty() || arch.size() > 4)
    return false;
  return std::all_of(arch.begin(), arch.end(),
                     [](char c) { return c >= '0' && c <= '9'; });
}

bool hasCudaTarget(const Manifest &m) {
  return std::any_of(
      m.targets()->begin(), m.targets()->end(),
      [](const flatbuffers::String *t) { return isCudaTarget(text(t)); });
}

uint64_t weightsExtent(const Manifest &m) {
  uint64_t extent = 0;
  for (const Weight *w : *m.weights())
    extent = std::max(extent, w->offset() + w->bytes());
  return extent;
}

uint32_t tensorMapSwizzleBytes(TensorMapSwizzle swizzle) {
  switch (swizzle) {
  case TensorMapSwizzle::SWIZZLE_32B:
    return 32;
  case TensorMapSwizzle::SWIZZLE_64B:
    return 64;
  case TensorMapSwizzle::SWIZZLE_128B:
    return 128;
  default:
    return 0;
  }
}

int64_t gridExtentAt(const GridExtent &g, int64_t tokens) {
  int64_t product = tokens * g.per_token();
  int64_t extent =
      product / g.divisor() + (product % g.divisor() != 0) + g.constant();
  return std::max<int64_t>(extent, 1);
}

namespace {

// "cpu" or "sm_<NN>[a]".
bool isTargetName(std::string_view t) { return t == "cpu" || isCudaTarget(t); }

// Checks a dtype value: known to this runtime and not unspecified.
Status checkDType(const std::string &where, DType dtype) {
  if (dtypeSize(dtype) == 0)
    return corrupt(
        strCat(where, ": dtype ", int(dtype), " is not a known dtype"));
  return Status::ok();
}

//===----------------------------------------------------------------------===//
// Buffers
//===----------------------------------------------------------------------===//

Status checkBuffers(const Manifest &m, ManifestIndex &index) {
  const auto &buffers = *m.buffers();
  for (uint32_t i = 0; i < buffers.size(); ++i) {
    const Buffer &b = *buffers[i];
    std::string where =
        strCat("buffers[", i, "] (id ", b.id(), ", ", quoted(b.name()), ")");
    if (!index.bufferById.emplace(b.id(), int(i)).second)
      return corrupt(strCat(where, ": id ", b.id(), " is used twice"));
    MOEC_RETURN_IF_ERROR(checkDType(where, b.dtype()));
    uint64_t elements = 0;
    if (const ElementsPerToken *perToken = b.elements_as_ElementsPerToken()) {
      if (perToken->count() == 0)
        return corrupt(strCat(where, ": elements_per_token is 0"));
      if (mulOverflows(perToken->count(), uint64_t(m.max_tokens()), elements))
        return corrupt(strCat(where, ": elements_per_token ", perToken->count(),
                              " * max_tokens ", m.max_tokens(), " overflows"));
    } else if (const FixedElements *fixed = b.elements_as_FixedElements()) {
      if (fixed->count() == 0)
        return corrupt(strCat(where, ": fixed_elements is 0"));
      elements = fixed->count();
    } else {
      return corrupt(
          strCat(where, ": has neither elements_per_token nor fixed_elements"));
    }
    uint64_t needed = 0, end = 0;
    if (mulOverflows(elements, dtypeSize(b.dtype()), needed))
      return corrupt(strCat(where, ": byte size overflows"));
    if (b.bytes() < needed)
      return corrupt(strCat(where, ": bytes ", b.bytes(), " is less than the ",
                            needed, " bytes it needs at max_tokens ",
                            m.max_tokens()));
    if (b.offset() % kManifestOffsetAlignment != 0)
      return corrupt(strCat(where, ": offset ", b.offset(),
                            " is not a multiple of ",
                            kManifestOffsetAlignment));
    if (addOverflows(b.offset(), b.bytes(), end) || end > m.arena_bytes())
      return corrupt(strCat(where, ": offset ", b.offset(), " + ", b.bytes(),
                            " bytes exceeds arena_bytes ", m.arena_bytes()));
  }
  return Status::ok();
}

//===----------------------------------------------------------------------===//
// Weights
//===----------------------------------------------------------------------===//

// Element count of `shape` (all dims > 0), or an error naming `where`.
StatusOr<uint64_t> elementCount(const std::string &where,
                                const flatbuffers::Vector<int64_t> &shape) {
  uint64_t count = 1;
  for (uint32_t d = 0; d < shape.size(); ++d) {
    if (shape[d] <= 0)
      return corrupt(strCat(where, ": shape dimension ", d, " is ", shape[d],
                            ", expected > 0"));
    if (mulOverflows(count, uint64_t(shape[d]), count))
      return corrupt(strCat(where, ": element count overflows"));
  }
  return count;
}

Status checkWeights(const Manifest &m, const ManifestContext &ctx,
                    ManifestIndex &index) {
  const auto &weights = *m.weights();
  // Benchmark artifacts carry no weight bytes: the runtime fills them, so
  // only the layout (alignment, no overflow) is checked.
  bool filled = m.weights_device_filled();
  if (weights.size() > 0 && !ctx.weightsSectionSize && !filled)
    return corrupt(strCat("the manifest lists ", weights.size(),
                          " weights but the file has no 'weights' section"));
  uint64_t sectionSize = ctx.weightsSectionSize.value_or(0);
  for (uint32_t i = 0; i < weights.size(); ++i) {
    const Weight &w = *weights[i];
    std::string where =
        strCat("weights[", i, "] (id ", w.id(), ", ", quoted(w.name()), ")");
    if (!index.weightById.emplace(w.id(), int(i)).second)
      return corrupt(strCat(where, ": id ", w.id(), " is used twice"));
    MOEC_RETURN_IF_ERROR(checkDType(where, w.dtype()));
    MOEC_ASSIGN_OR_RETURN(uint64_t count, elementCount(where, *w.shape()));
    uint64_t bytes = 0, end = 0;
    if (mulOverflows(count, dtypeSize(w.dtype()), bytes))
      return corrupt(strCat(where, ": byte size overflows"));
    if (w.bytes() != bytes)
      return corrupt(strCat(where, ": bytes ", w.bytes(), " but shape ",
                            shapeString(*w.shape()), " of ",
                            dtypeName(w.dtype()), " needs ", bytes));
    if (w.offset() % kManifestOffsetAlignment != 0)
      return corrupt(strCat(where, ": offset ", w.offset(),
                            " is not a multiple of ",
                            kManifestOffsetAlignment));
    if (addOverflows(w.offset(), w.bytes(), end) || end > kMaxDeviceBytes ||
        (!filled && end > sectionSize))
      return corrupt(strCat(
          where, ": offset ", w.offset(), " + ", w.bytes(), " bytes exceeds ",
          filled ? strCat("the limit ", kMaxDeviceBytes)
                 : strCat("the weights section (", sectionSize, " bytes)")));
  }
  // Scales, once every id is known.
  for (uint32_t i = 0; i < weights.size(); ++i) {
    const Weight &w = *weights[i];
    std::string where =
        strCat("weights[", i, "] (id ", w.id(), ", ", quoted(w.name()), ")");
    const auto &blockShape = *w.block_shape();
    if (!w.scale()) {
      if (blockShape.size() != 0)
        return corrupt(strCat(where, ": has block_shape but no scale"));
      continue;
    }
    uint32_t scaleId = *w.scale();
    auto it = index.weightById.find(scaleId);
    if (it == index.weightById.end())
      return corrupt(
          strCat(where, ": scale refers to unknown weight id ", scaleId));
    const Weight &s = *weights[uint32_t(it->second)];
    if (uint32_t(it->second) == i || s.scale())
      return corrupt(strCat(where, ": scale weight id ", scaleId,
                            " must be a plain weight"));
    if (s.dtype() != DType::F32)
      return corrupt(strCat(where, ": scale weight ", quoted(s.name()), " is ",
                            dtypeName(s.dtype()), ", expected f32"));
    const auto &shape = *w.shape();
    const auto &scaleShape = *s.shape();
    uint32_t rank = shape.size(), blockRank = blockShape.size();
    if (blockRank == 0 || blockRank > rank)
      return corrupt(strCat(where, ": block_shape has rank ", blockRank,
                            ", expected 1..", rank));
    if (scaleShape.size() != rank)
      return corrupt(strCat(where, ": scale ", quoted(s.name()), " has rank ",
                            scaleShape.size(), ", expected ", rank));
    for (uint32_t d = 0; d < rank; ++d) {
      int64_t expected = shape[d];
      if (d >= rank - blockRank) {
        int64_t block = blockShape[d - (rank - blockRank)];
        if (block <= 0)
          return corrupt(
              strCat(where, ": block_shape has non-positive entry ", block));
        // ceil(dim / block) without `dim + block - 1`, which overflows
        // int64 for a block near 2^63 (both are positive here).
        expected = shape[d] / block + (shape[d] % block != 0);
      }
      if (scaleShape[d] != expected)
        return corrupt(strCat(where, ": scale ", quoted(s.name()),
                              " has shape ", shapeString(scaleShape),
                              " but dimension ", d, " should be ", expected));
    }
  }
  return Status::ok();
}

//===----------------------------------------------------------------------===//
// Inputs and outputs
//===----------------------------------------------------------------------===//

Status checkTensors(const Manifest &m, const ManifestIndex &index,
                    bool inputs) {
  const auto &list = inputs ? *m.inputs() : *m.outputs();
  const char *field = inputs ? "inputs" : "outputs";
  std::set<std::string, std::less<>> names;
  for (uint32_t i = 0; i < list.size(); ++i) {
    const TensorSpec &t = *list[i];
    std::string where = strCat(field, "[", i, "] (", quoted(t.name()), ")");
    if (t.name()->size() == 0 || !names.emplace(text(t.name())).second)
      return corrupt(strCat(where, ": the name is empty or used twice"));
    auto it = index.bufferById.find(t.buffer());
    if (it == index.bufferById.end())
      return corrupt(
          strCat(where, ": buffer refers to unknown buffer id ", t.buffer()));
    const Buffer &b = *m.buffers()->Get(uint32_t(it->second));
    if (t.dtype() != b.dtype())
      return corrupt(strCat(where, ": dtype ", dtypeName(t.dtype()),
                            " differs from buffer ", quoted(b.name()), " (",
                            dtypeName(b.dtype()), ")"));
    const auto &shape = *t.shape();
    if (shape.size() == 0)
      return corrupt(strCat(where, ": shape is empty"));
    bool perToken = shape[0] == -1;
    uint64_t count = 1;
    for (uint32_t d = perToken ? 1 : 0; d < shape.size(); ++d) {
      if (shape[d] <= 0)
        return corrupt(strCat(where, ": shape ", shapeString(shape),
                              " has dimension ", d, " = ", shape[d],
                              " (only dimension 0 may be -1, the tokens)"));
      if (mulOverflows(count, uint64_t(shape[d]), count))
        return corrupt(strCat(where, ": element count overflows"));
    }
    bool bufferPerToken = isPerToken(b);
    uint64_t bufferCount = bufferElements(b);
    if (perToken != bufferPerToken || count != bufferCount)
      return corrupt(
          strCat(where, ": shape ", shapeString(shape),
                 " does not match buffer ", quoted(b.name()), " (",
                 bufferPerToken ? "elements_per_token " : "fixed_elements ",
                 bufferCount, ")"));
    if (t.index_bound() < 0 ||
        (t.index_bound() > 0 && t.dtype() != DType::I32 &&
         t.dtype() != DType::I64))
      return corrupt(strCat(where, ": index_bound ", t.index_bound(),
                            " needs an i32 or i64 tensor and must be >= 0"));
  }
  return Status::ok();
}

//===----------------------------------------------------------------------===//
// Steps and targets
//===----------------------------------------------------------------------===//

/// Most arguments and integer parameters one step may have.
constexpr uint32_t kMaxStepOperands = 4096;

// Checks one axis of a launch grid: the extent at max_tokens (the largest,
// since every term is non-negative) must fit the axis' limit.
Status checkGridExtent(const std::string &where, const GridExtent &g,
                       int64_t maxTokens, int64_t limit) {
  if (g.per_token() < 0 || g.divisor() < 1 || g.constant() < 0)
    return corrupt(strCat(where, ": per_token ", g.per_token(), ", divisor ",
                          g.divisor(), ", constant ", g.constant(),
                          " (expected per_token >= 0, divisor >= 1, "
                          "constant >= 0)"));
  int64_t product = 0, extent = 0;
  if (__builtin_mul_overflow(maxTokens, g.per_token(), &product) ||
      __builtin_add_overflow(product / g.divisor() +
                                 (product % g.divisor() != 0),
                             g.constant(), &extent) ||
      extent > limit)
    return corrupt(strCat(where, ": extent at max_tokens ", maxTokens,
                          " exceeds the CUDA limit ", limit));
  return Status::ok();
}

// Checks the tensor maps of one launch against cuda.h's rules for
// cuTensorMapEncodeTiled (so that the encode at load cannot fail on a valid
// manifest) and against the argument they describe: every byte the map can
// address lies inside the argument's reserved bytes (docs/artifact.md, "CUDA
// kernel ABI").
Status checkTensorMaps(const Manifest &m, const ManifestIndex &index,
                       const std::string &launchWhere, const Step &s,
                       const CudaLaunch &launch) {
  const auto &maps = *launch.tensor_maps();
  const auto &args = *s.args();
  if (maps.size() > uint32_t(kMaxTensorMapsPerLaunch))
    return corrupt(strCat(launchWhere, ": ", maps.size(),
                          " tensor maps, at most ", kMaxTensorMapsPerLaunch,
                          " allowed"));
  for (uint32_t j = 0; j < maps.size(); ++j) {
    const TensorMap &map = *maps[j];
    std::string where = strCat(launchWhere, ": tensor_maps[", j, "]");
    if (map.arg() >= args.size())
      return corrupt(strCat(where, ": arg ", map.arg(), " is not an argument (",
                            args.size(), " arguments)"));
    // The argument was checked to exist; its dtype and reserved bytes.
    const Argument &arg = *args.Get(map.arg());
    DType argDType = DType::UNSPECIFIED;
    uint64_t argBytes = 0, argOffset = 0;
    std::string argName;
    if (arg.kind() == ArgumentKind::KV_CACHE)
      return corrupt(strCat(where, ": arg ", map.arg(),
                            " is a KV cache tensor, which has no tensor map"));
    if (arg.kind() == ArgumentKind::BUFFER) {
      const Buffer &b =
          *m.buffers()->Get(uint32_t(index.bufferById.at(arg.id())));
      argDType = b.dtype();
      argBytes = b.bytes();
      argOffset = b.offset();
      argName = strCat("buffer ", quoted(b.name()));
    } else {
      const Weight &w =
          *m.weights()->Get(uint32_t(index.weightById.at(arg.id())));
      argDType = w.dtype();
      argBytes = w.bytes();
      argOffset = w.offset();
      argName = strCat("weight ", quoted(w.name()));
    }
    where += strCat(" (arg ", map.arg(), ", ", argName, ")");
    MOEC_RETURN_IF_ERROR(checkDType(where, map.dtype()));
    if (map.dtype() != argDType)
      return corrupt(strCat(where, ": dtype ", dtypeName(map.dtype()),
                            " differs from the argument's (",
                            dtypeName(argDType), ")"));
    // Every dtype this runtime knows is 1, 2, 4 or 8 bytes: a TMA type.
    uint64_t elementBytes = dtypeSize(map.dtype());
    const auto &dims = *map.dims();
    const auto &strides = *map.strides();
    const auto &box = *map.box();
    uint32_t rank = dims.size();
    if (rank < 1 || rank > uint32_t(kMaxTensorMapRank))
      return corrupt(
          strCat(where, ": rank ", rank, ", expected 1..", kMaxTensorMapRank));
    if (strides.size() != rank - 1 || box.size() != rank)
      return corrupt(strCat(where, ": ", rank, " dims need ", rank - 1,
                            " strides and ", rank, " box extents, got ",
                            strides.size(), " and ", box.size()));
    for (uint32_t d = 0; d < rank; ++d)
      if (dims[d] < 1 || dims[d] > (uint64_t(1) << 32))
        return corrupt(strCat(where, ": dims[", d, "] is ", dims[d],
                              ", expected 1..2^32"));
    // Byte stride of each dimension (strides[d - 1] for d >= 1); each must
    // step over the whole previous dimension, so that no two elements
    // overlap (cuda.h: strides[i] >= strides[i-1] * dims[i]).
    uint64_t previous = elementBytes;
    for (uint32_t d = 1; d < rank; ++d) {
      uint64_t stride = strides[d - 1], needed = 0;
      if (stride % 16 != 0 || stride >= (uint64_t(1) << 40))
        return corrupt(strCat(where, ": strides[", d - 1, "] is ", stride,
                              ", expected a multiple of 16 below 2^40"));
      if (mulOverflows(previous, dims[d - 1], needed) || stride < needed)
        return corrupt(strCat(where, ": strides[", d - 1, "] ", stride,
                              " is less than the ", needed,
                              " bytes of dimension ", d - 1));
      previous = stride;
    }
    for (uint32_t d = 0; d < rank; ++d) {
      uint32_t extent = box[d];
      if (extent < 1 || extent > kMaxTensorMapBox)
        return corrupt(strCat(where, ": box[", d, "] is ", extent,
                              ", expected 1..", kMaxTensorMapBox));
    }
    uint64_t innerBytes = uint64_t(box[0]) * elementBytes;
    if (innerBytes % 16 != 0)
      return corrupt(strCat(where, ": box[0] ", box[0], " x ", elementBytes,
                            " bytes is not a multiple of 16"));
    if (map.swizzle() > TensorMapSwizzle::MAX)
      return corrupt(strCat(where, ": swizzle ", int(map.swizzle()),
                            " is not a known swizzle"));
    uint32_t swizzleBytes = tensorMapSwizzleBytes(map.swizzle());
    if (swizzleBytes && innerBytes > swizzleBytes)
      return corrupt(strCat(where, ": box[0] ", box[0], " x ", elementBytes,
                            " bytes exceeds the ", swizzleBytes,
                            "-byte swizzle span"));
    // CUDA Programming Guide, TMA swizzle patterns (Table 12): a swizzled
    // tensor's global address must be 128-byte aligned. The arena and the
    // weights are device allocations (256-byte aligned), so the offset
    // decides.
    if (swizzleBytes && argOffset % kTensorMapSwizzledAlignment != 0)
      return corrupt(strCat(
          where, ": a swizzled map needs a ", kTensorMapSwizzledAlignment,
          "-byte aligned argument, but its offset is ", argOffset));
    // The last byte the map addresses: sum((dims[d] - 1) * stride[d]) +
    // element size. Boxes past the dims read zeros, not memory.
    bool overflow = false;
    uint64_t stride = elementBytes, span = elementBytes;
    for (uint32_t d = 0; d < rank && !overflow; ++d) {
      if (d > 0)
        stride = strides[d - 1];
      uint64_t term = 0;
      overflow = mulOverflows(dims[d] - 1, stride, term) ||
                 addOverflows(span, term, span);
    }
    if (overflow || span > argBytes)
      return corrupt(strCat(where, ": addresses ",
                            overflow ? std::string("more than 2^64")
                                     : std::to_string(span),
                            " bytes, but the argument has ", argBytes));
  }
  return Status::ok();
}

// Checks the CUDA launches of step `s` (docs/artifact.md, "CUDA kernel ABI").
Status checkLaunches(const Manifest &m, const ManifestIndex &index,
                     const std::string &stepWhere, const Step &s,
                     bool cudaTargets) {
  const auto &launches = *s.cuda();
  if (cudaTargets && launches.size() == 0)
    return corrupt(strCat(stepWhere,
                          ": has no CUDA launches, but the manifest targets a "
                          "GPU"));
  if (launches.size() > uint32_t(kMaxCudaLaunchesPerStep))
    return corrupt(strCat(stepWhere, ": ", launches.size(),
                          " CUDA launches, at most ", kMaxCudaLaunchesPerStep,
                          " allowed"));
  static const char *const kAxis[3] = {"x", "y", "z"};
  static const int64_t kGridLimit[3] = {kMaxCudaGridX, kMaxCudaGridYZ,
                                        kMaxCudaGridYZ};
  for (uint32_t l = 0; l < launches.size(); ++l) {
    const CudaLaunch &launch = *launches[l];
    const auto &grid = *launch.grid();
    const auto &block = *launch.block();
    std::string where =
        strCat(stepWhere, ": cuda[", l, "] (", quoted(launch.kernel()), ")");
    if (!isCIdentifier(text(launch.kernel())))
      return corrupt(strCat(where, ": kernel is not a C identifier"));
    if (grid.size() != 3 || block.size() != 3)
      return corrupt(strCat(where, ": has ", grid.size(), " grid and ",
                            block.size(), " block extents, expected 3 each"));
    uint64_t threads = 1;
    for (uint32_t d = 0; d < 3; ++d) {
      MOEC_RETURN_IF_ERROR(checkGridExtent(strCat(where, ": grid ", kAxis[d]),
                                           *grid.Get(d), m.max_tokens(),
                                           kGridLimit[d]));
      uint32_t b = block[d];
      if (b < 1 || b > kMaxCudaBlockThreads)
        return corrupt(strCat(where, ": block ", kAxis[d], " is ", b,
                              ", expected 1..", kMaxCudaBlockThreads));
      threads *= b;
    }
    if (threads > kMaxCudaBlockThreads)
      return corrupt(strCat(where, ": block ", block[0], "x", block[1], "x",
                            block[2], " has ", threads, " threads, at most ",
                            kMaxCudaBlockThreads, " allowed"));
    if (launch.shared_bytes() > kMaxCudaSharedBytes)
      return corrupt(strCat(where, ": shared_bytes ", launch.shared_bytes(),
                            " exceeds ", kMaxCudaSharedBytes));
    MOEC_RETURN_IF_ERROR(checkTensorMaps(m, index, where, s, launch));
  }
  return Status::ok();
}

Status checkSteps(const Manifest &m, const ManifestIndex &index) {
  bool cudaTargets = hasCudaTarget(m);
  const auto &steps = *m.steps();
  for (uint32_t i = 0; i < steps.size(); ++i) {
    const Step &s = *steps[i];
    const auto &args = *s.args();
    std::string where = strCat("steps[", i, "] (", quoted(s.kernel()), ")");
    if (!isCIdentifier(text(s.kernel())))
      return corrupt(strCat(where, ": kernel is not a C identifier"));
    if (args.size() > kMaxStepOperands || s.params()->size() > kMaxStepOperands)
      return corrupt(strCat(where, ": more than ", kMaxStepOperands,
                            " arguments or parameters"));
    for (uint32_t a = 0; a < args.size(); ++a) {
      const Argument &arg = *args.Get(a);
      switch (arg.kind()) {
      case ArgumentKind::BUFFER:
        if (!index.bufferById.count(arg.id()))
          return corrupt(strCat(where, ": argument ", a,
                                " refers to unknown buffer id ", arg.id()));
        break;
      case ArgumentKind::WEIGHT:
        if (!index.weightById.count(arg.id()))
          return corrupt(strCat(where, ": argument ", a,
                                " refers to unknown weight id ", arg.id()));
        break;
      case ArgumentKind::KV_CACHE:
        if (!m.kv_cache() || arg.id() >= m.kv_cache()->tensors()->size())
          return corrupt(strCat(where, ": argument ", a,
                                " refers to unknown KV cache tensor ",
                                arg.id()));
        break;
      default:
        return corrupt(strCat(where, ": argument ", a,
                              " is neither a buffer, a weight nor a KV "
                              "cache tensor"));
      }
    }
    MOEC_RETURN_IF_ERROR(checkLaunches(m, index, where, s, cudaTargets));
  }
  if (m.cuda_workspace_bytes() > kMaxDeviceBytes)
    return corrupt(strCat("cuda_workspace_bytes ", m.cuda_workspace_bytes(),
                          " exceeds the limit ", kMaxDeviceBytes));
  return Status::ok();
}

Status checkTargets(const Manifest &m, const ManifestContext &ctx) {
  auto hasSection = [&](std::string_view name) {
    return std::find(ctx.sectionNames.begin(), ctx.sectionNames.end(), name) !=
           ctx.sectionNames.end();
  };
  const auto &targets = *m.targets();
  std::set<std::string, std::less<>> seen;
  for (uint32_t i = 0; i < targets.size(); ++i) {
    std::string_view t = text(targets[i]);
    std::string where = strCat("targets[", i, "] (", quoted(t), ")");
    if (!isTargetName(t))
      return corrupt(strCat(where, ": not 'cpu' or 'sm_<NN>[a]'"));
    if (!seen.emplace(t).second)
      return corrupt(strCat(where, ": listed twice"));
    if (t == "cpu" && cpuObjects(m).empty() && !hasSection("cpu.so"))
      return corrupt(strCat(
          where, ": the file has no 'cpu.so' section and no cpu_objects"));
    if (t != "cpu" && !hasSection("kernels.cu") &&
        !hasSection(strCat("cubin.", t)))
      return corrupt(strCat(where,
                            ": the file has neither 'kernels.cu' nor 'cubin.",
                            quoted(t).substr(1)));
  }
  const auto &precision = *m.precision();
  for (uint32_t i = 0; i < precision.size(); ++i) {
    const PrecisionEntry &p = *precision[i];
    if (p.op_class()->size() == 0 || p.precision() > Precision::MAX ||
        p.precision() == Precision::UNSPECIFIED)
      return corrupt(strCat("precision[", i, "] (", quoted(p.op_class()),
                            "): needs an op_class and a known precision"));
  }
  return Status::ok();
}

// True for 1..64 characters of [A-Za-z0-9._-] (LLVM CPU names).
bool isCpuName(std::string_view s) {
  if (s.empty() || s.size() > 64)
    return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
  });
}

Status checkCpuObjects(const Manifest &m, const ManifestContext &ctx) {
  std::vector<const CpuObject *> objects = cpuObjects(m);
  if (objects.empty())
    return Status::ok();
  const auto &targets = *m.targets();
  if (std::none_of(
          targets.begin(), targets.end(),
          [](const flatbuffers::String *t) { return text(t) == "cpu"; }))
    return corrupt("cpu_objects: listed, but the targets do not include "
                   "'cpu'");
  std::set<std::string, std::less<>> sections;
  for (size_t i = 0; i < objects.size(); ++i) {
    const CpuObject &o = *objects[i];
    std::string_view section = text(o.section());
    std::string where = strCat("cpu_objects[", i, "] (", quoted(section), ")");
    if (!checkSectionNameSyntax(section).empty() ||
        section.size() <= kCpuSharedObjectPrefix.size() ||
        !isCpuSharedObjectName(section))
      return corrupt(strCat(where, ": the section is not named "
                                   "'cpu.so.<variant>' (at most 31 "
                                   "characters of [A-Za-z0-9._-])"));
    if (!sections.emplace(section).second)
      return corrupt(strCat(where, ": listed twice"));
    if (std::find(ctx.sectionNames.begin(), ctx.sectionNames.end(), section) ==
        ctx.sectionNames.end())
      return corrupt(strCat(where, ": the file has no such section"));
    if (!isCpuName(text(o.cpu())))
      return corrupt(strCat(where, ": cpu ", quoted(o.cpu()),
                            " is not 1 to 64 characters of [A-Za-z0-9._-]"));
    std::set<std::string, std::less<>> features;
    for (const flatbuffers::String *f : *o.features()) {
      if (findCpuFeature(text(f)) < 0)
        return corrupt(strCat(where, ": feature ", quoted(f),
                              " is not one this runtime can detect"));
      if (!features.emplace(text(f)).second)
        return corrupt(
            strCat(where, ": feature ", quoted(f), " is listed twice"));
    }
  }
  return Status::ok();
}

// The vocabulary token ids must lie in: the `tokens` input's index_bound
// (0 when there is no such input or it is unchecked).
int64_t tokenBound(const Manifest &m) {
  for (const TensorSpec *t : *m.inputs())
    if (text(t->name()) == "tokens")
      return t->index_bound();
  return 0;
}

Status checkTokenId(const std::string &field, int64_t id, int64_t bound) {
  if (id < 0 || (bound > 0 && id >= bound))
    return corrupt(strCat("generation: ", field, " ", id, " is not in [0, ",
                          bound > 0 ? std::to_string(bound) : "2^63",
                          ") (the vocabulary of input 'tokens')"));
  return Status::ok();
}

Status checkGeneration(const Manifest &m) {
  const Generation *g = m.generation();
  if (!g)
    return Status::ok();
  int64_t bound = tokenBound(m);
  for (uint32_t i = 0; i < g->eos_token_ids()->size(); ++i)
    MOEC_RETURN_IF_ERROR(checkTokenId(strCat("eos_token_ids[", i, "]"),
                                      g->eos_token_ids()->Get(i), bound));
  if (g->bos_token_id())
    MOEC_RETURN_IF_ERROR(
        checkTokenId("bos_token_id", *g->bos_token_id(), bound));
  if (g->pad_token_id())
    MOEC_RETURN_IF_ERROR(
        checkTokenId("pad_token_id", *g->pad_token_id(), bound));
  auto bad = [](const char *field, double value, const char *range) {
    return corrupt(
        strCat("generation: ", field, " ", value, " is not ", range));
  };
  if (g->temperature() &&
      !(std::isfinite(*g->temperature()) && *g->temperature() >= 0))
    return bad("temperature", *g->temperature(), "finite and >= 0");
  if (g->top_k() && *g->top_k() < 0)
    return bad("top_k", double(*g->top_k()), ">= 0");
  if (g->top_p() && !(*g->top_p() > 0 && *g->top_p() <= 1))
    return bad("top_p", *g->top_p(), "in (0, 1]");
  if (g->repetition_penalty() && !(std::isfinite(*g->repetition_penalty()) &&
                                   *g->repetition_penalty() > 0))
    return bad("repetition_penalty", *g->repetition_penalty(),
               "finite and > 0");
  return Status::ok();
}

/// Largest page extent, page count and sequence count of a KV cache.
constexpr int64_t kMaxKvCacheExtent = int64_t(1) << 20;

/// The input named `name`, or null.
const TensorSpec *findInput(const Manifest &m, std::string_view name) {
  int index = findInputIndex(m, name);
  return index < 0 ? nullptr : m.inputs()->Get(uint32_t(index));
}

Status checkKvCache(const Manifest &m) {
  const KvCache *c = m.kv_cache();
  if (!c) {
    for (uint32_t i = 0; i < m.steps()->size(); ++i)
      if (m.steps()->Get(i)->selected_rows())
        return corrupt(strCat("steps[", i,
                              "]: runs on selected rows, which "
                              "only an artifact with a kv_cache has"));
    return Status::ok();
  }
  auto inRange = [](int64_t v) { return v >= 1 && v <= kMaxKvCacheExtent; };
  if (!inRange(c->page_tokens()) || !inRange(c->max_sequences()) ||
      !inRange(c->max_pages()))
    return corrupt(strCat("kv_cache: page_tokens ", c->page_tokens(),
                          ", max_sequences ", c->max_sequences(),
                          " and max_pages ", c->max_pages(),
                          " must each be in [1, ", kMaxKvCacheExtent, "]"));
  if (c->tensors()->size() == 0)
    return corrupt("kv_cache: has no tensors");
  std::set<std::string, std::less<>> names;
  for (uint32_t i = 0; i < c->tensors()->size(); ++i) {
    const KvCacheTensor &t = *c->tensors()->Get(i);
    std::string where =
        strCat("kv_cache.tensors[", i, "] (", quoted(t.name()), ")");
    if (t.name()->size() == 0 || !names.emplace(text(t.name())).second)
      return corrupt(strCat(where, ": the name is empty or used twice"));
    if (t.dtype() != DType::F32 && t.dtype() != DType::BF16)
      return corrupt(strCat(where, ": dtype ", dtypeName(t.dtype()),
                            " is not f32 or bf16"));
    if (t.layer() < 0)
      return corrupt(strCat(where, ": layer ", t.layer(), " is negative"));
    const auto &shape = *t.page_shape();
    if (shape.size() != 3 || shape[0] != c->page_tokens() ||
        !inRange(shape[1]) || !inRange(shape[2]))
      return corrupt(strCat(where, ": page_shape must be [page_tokens (",
                            c->page_tokens(),
                            "), heads, dim] with heads and "
                            "dim in [1, ",
                            kMaxKvCacheExtent, "]"));
  }
  // The step's rows say where they go: positions, slots and the page table.
  const TensorSpec *positions = findInput(m, "positions");
  const TensorSpec *slots = findInput(m, "slots");
  const TensorSpec *table = findInput(m, "page_table");
  auto isRows = [](const TensorSpec *t) {
    return t && t->shape()->size() == 1 && t->shape()->Get(0) == -1 &&
           (t->dtype() == DType::I32 || t->dtype() == DType::I64);
  };
  if (!isRows(positions) || !isRows(slots) || slots->dtype() != DType::I32)
    return corrupt("kv_cache: needs the inputs 'positions' ([-1], i32 or "
                   "i64) and 'slots' ([-1], i32)");
  if (!table || table->dtype() != DType::I32 || table->shape()->size() != 2 ||
      table->shape()->Get(0) != c->max_sequences() ||
      table->shape()->Get(1) != c->max_pages())
    return corrupt(strCat("kv_cache: needs the input 'page_table' (i32 [",
                          c->max_sequences(), ", ", c->max_pages(), "])"));
  bool selects = std::any_of(m.steps()->begin(), m.steps()->end(),
                             [](const Step *s) { return s->selected_rows(); });
  const TensorSpec *rows = findInput(m, "logits_rows");
  if (selects && (!isRows(rows) || rows->dtype() != DType::I32))
    return corrupt("kv_cache: steps on selected rows need the input "
                   "'logits_rows' ([-1], i32)");
  if (slots->index_bound() != c->max_sequences() ||
      positions->index_bound() != c->max_pages() * c->page_tokens())
    return corrupt("kv_cache: the index_bound of 'slots' must be "
                   "max_sequences and that of 'positions' max_pages * "
                   "page_tokens");
  return Status::ok();
}

} // namespace

int findInputIndex(const Manifest &m, std::string_view name) {
  for (uint32_t i = 0; i < m.inputs()->size(); ++i)
    if (text(m.inputs()->Get(i)->name()) == name)
      return int(i);
  return -1;
}

uint64_t kvCacheTensorPageBytes(const KvCacheTensor &t) {
  uint64_t elements = 1;
  for (int64_t d : *t.page_shape())
    elements *= uint64_t(d);
  return elements * dtypeSize(t.dtype());
}

std::vector<const CpuObject *> cpuObjects(const Manifest &m) {
  if (!m.cpu_objects())
    return {};
  return std::vector<const CpuObject *>(m.cpu_objects()->begin(),
                                        m.cpu_objects()->end());
}

std::vector<CpuCodeVariant> getCpuCodeVariants(const Manifest &m) {
  std::vector<CpuCodeVariant> variants;
  for (const CpuObject *o : cpuObjects(m)) {
    CpuCodeVariant variant{o->section()->str(), o->cpu()->str(), {}};
    for (const flatbuffers::String *f : *o->features())
      variant.features.push_back(f->str());
    variants.push_back(std::move(variant));
  }
  return variants;
}

StatusOr<ManifestIndex> verifyManifest(const Manifest &m,
                                       const ManifestContext &ctx) {
  if (m.max_tokens() < 1 || m.max_tokens() > kMaxTokensLimit)
    return corrupt(strCat("max_tokens ", m.max_tokens(), " is not in [1, ",
                          kMaxTokensLimit, "]"));
  ManifestIndex index;
  MOEC_RETURN_IF_ERROR(checkBuffers(m, index));
  MOEC_RETURN_IF_ERROR(checkWeights(m, ctx, index));
  MOEC_RETURN_IF_ERROR(checkTensors(m, index, /*inputs=*/true));
  MOEC_RETURN_IF_ERROR(checkTensors(m, index, /*inputs=*/false));
  MOEC_RETURN_IF_ERROR(checkTargets(m, ctx));
  MOEC_RETURN_IF_ERROR(checkCpuObjects(m, ctx));
  MOEC_RETURN_IF_ERROR(checkSteps(m, index));
  MOEC_RETURN_IF_ERROR(checkGeneration(m));
  MOEC_RETURN_IF_ERROR(checkKvCache(m));
  return index;
}

StatusOr<ManifestIndex> verifyManifest(const ManifestT &manifest,
                                       const ManifestContext &ctx) {
  std::vector<uint8_t> bytes = packManifest(manifest);
  MOEC_ASSIGN_OR_RETURN(const Manifest *m,
                        readManifest(bytes.data(), bytes.size()));
  return verifyManifest(*m, ctx);
}

} // namespace moec::runtime
