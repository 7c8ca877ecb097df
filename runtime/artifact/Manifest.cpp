//===- Manifest.cpp - Manifest helpers and consistency checks ---*- C++ -*-===//
//
// `verifyManifest` walks every message of a parsed manifest once and refuses
// anything the executor could trip over: unknown enum values (proto3 enums
// are open), duplicate ids, ranges outside the arena or the weights section,
// shapes that disagree with their buffers, dangling step arguments. All size
// arithmetic is checked for overflow.
//
//===----------------------------------------------------------------------===//

#include "runtime/artifact/Manifest.h"

#include "runtime/artifact/Format.h"

#include <algorithm>
#include <set>

namespace moec::runtime {

using namespace manifest;

uint64_t dtypeSize(DType dtype) {
  switch (dtype) {
  case DTYPE_F32:
  case DTYPE_I32:
    return 4;
  case DTYPE_BF16:
  case DTYPE_F16:
    return 2;
  case DTYPE_F8E4M3FN:
  case DTYPE_F8E5M2:
  case DTYPE_I8:
  case DTYPE_U8:
    return 1;
  case DTYPE_I64:
    return 8;
  default:
    return 0;
  }
}

const char *dtypeName(DType dtype) {
  switch (dtype) {
  case DTYPE_F32:
    return "f32";
  case DTYPE_BF16:
    return "bf16";
  case DTYPE_F16:
    return "f16";
  case DTYPE_F8E4M3FN:
    return "f8e4m3fn";
  case DTYPE_F8E5M2:
    return "f8e5m2";
  case DTYPE_I32:
    return "i32";
  case DTYPE_I64:
    return "i64";
  case DTYPE_I8:
    return "i8";
  case DTYPE_U8:
    return "u8";
  default:
    return "unspecified";
  }
}

const char *precisionName(Precision precision) {
  switch (precision) {
  case PRECISION_F32:
    return "f32";
  case PRECISION_BF16:
    return "bf16";
  case PRECISION_FP8:
    return "fp8";
  default:
    return "unspecified";
  }
}

uint64_t bufferBytesAt(const Buffer &buffer, int64_t tokens) {
  uint64_t elements = buffer.elements_case() == Buffer::kElementsPerToken
                          ? buffer.elements_per_token() * uint64_t(tokens)
                          : buffer.fixed_elements();
  return elements * dtypeSize(buffer.dtype());
}

std::string shapeString(const google::protobuf::RepeatedField<int64_t> &shape) {
  std::string out = "[";
  for (int i = 0; i < shape.size(); ++i) {
    if (i)
      out += ", ";
    out += shape[i] == -1 ? std::string("T") : std::to_string(shape[i]);
  }
  return out + "]";
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
std::string quoted(const std::string &s) {
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

Status corrupt(const std::string &what) {
  return Status(StatusCode::kCorrupt, what);
}

bool isCIdentifier(const std::string &s) {
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

bool isCudaTarget(const std::string &t) {
  if (t.size() < 4 || t.compare(0, 3, "sm_") != 0)
    return false;
  std::string arch = t.substr(3);
  if (arch.back() == 'a')
    arch.pop_back();
  if (arch.empty() || arch.size() > 4)
    return false;
  return std::all_of(arch.begin(), arch.end(),
                     [](char c) { return c >= '0' && c <= '9'; });
}

bool hasCudaTarget(const Manifest &m) {
  return std::any_of(m.targets().begin(), m.targets().end(),
                     [](const std::string &t) { return isCudaTarget(t); });
}

uint64_t weightsExtent(const Manifest &m) {
  uint64_t extent = 0;
  for (const Weight &w : m.weights())
    extent = std::max(extent, w.offset() + w.bytes());
  return extent;
}

uint32_t tensorMapSwizzleBytes(TensorMapSwizzle swizzle) {
  switch (swizzle) {
  case TENSOR_MAP_SWIZZLE_32B:
    return 32;
  case TENSOR_MAP_SWIZZLE_64B:
    return 64;
  case TENSOR_MAP_SWIZZLE_128B:
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
bool isTargetName(const std::string &t) {
  return t == "cpu" || isCudaTarget(t);
}

// Checks a dtype value: known to this runtime and not unspecified.
Status checkDType(const std::string &where, int dtype) {
  if (!DType_IsValid(dtype) || dtypeSize(DType(dtype)) == 0)
    return corrupt(strCat(where, ": dtype ", dtype, " is not a known dtype"));
  return Status::ok();
}

//===----------------------------------------------------------------------===//
// Buffers
//===----------------------------------------------------------------------===//

Status checkBuffers(const Manifest &m, ManifestIndex &index) {
  for (int i = 0; i < m.buffers_size(); ++i) {
    const Buffer &b = m.buffers(i);
    std::string where =
        strCat("buffers[", i, "] (id ", b.id(), ", ", quoted(b.name()), ")");
    if (!index.bufferById.emplace(b.id(), i).second)
      return corrupt(strCat(where, ": id ", b.id(), " is used twice"));
    MOEC_RETURN_IF_ERROR(checkDType(where, b.dtype()));
    uint64_t elements = 0;
    switch (b.elements_case()) {
    case Buffer::kElementsPerToken:
      if (b.elements_per_token() == 0)
        return corrupt(strCat(where, ": elements_per_token is 0"));
      if (mulOverflows(b.elements_per_token(), uint64_t(m.max_tokens()),
                       elements))
        return corrupt(strCat(where, ": elements_per_token ",
                              b.elements_per_token(), " * max_tokens ",
                              m.max_tokens(), " overflows"));
      break;
    case Buffer::kFixedElements:
      if (b.fixed_elements() == 0)
        return corrupt(strCat(where, ": fixed_elements is 0"));
      elements = b.fixed_elements();
      break;
    default:
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
StatusOr<uint64_t>
elementCount(const std::string &where,
             const google::protobuf::RepeatedField<int64_t> &shape) {
  uint64_t count = 1;
  for (int d = 0; d < shape.size(); ++d) {
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
  // Benchmark artifacts carry no weight bytes: the runtime fills them, so
  // only the layout (alignment, no overflow) is checked.
  bool filled = m.weights_device_filled();
  if (m.weights_size() > 0 && !ctx.weightsSectionSize && !filled)
    return corrupt(strCat("the manifest lists ", m.weights_size(),
                          " weights but the file has no 'weights' section"));
  uint64_t sectionSize = ctx.weightsSectionSize.value_or(0);
  for (int i = 0; i < m.weights_size(); ++i) {
    const Weight &w = m.weights(i);
    std::string where =
        strCat("weights[", i, "] (id ", w.id(), ", ", quoted(w.name()), ")");
    if (!index.weightById.emplace(w.id(), i).second)
      return corrupt(strCat(where, ": id ", w.id(), " is used twice"));
    MOEC_RETURN_IF_ERROR(checkDType(where, w.dtype()));
    MOEC_ASSIGN_OR_RETURN(uint64_t count, elementCount(where, w.shape()));
    uint64_t bytes = 0, end = 0;
    if (mulOverflows(count, dtypeSize(w.dtype()), bytes))
      return corrupt(strCat(where, ": byte size overflows"));
    if (w.bytes() != bytes)
      return corrupt(strCat(where, ": bytes ", w.bytes(), " but shape ",
                            shapeString(w.shape()), " of ",
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
  for (int i = 0; i < m.weights_size(); ++i) {
    const Weight &w = m.weights(i);
    std::string where =
        strCat("weights[", i, "] (id ", w.id(), ", ", quoted(w.name()), ")");
    if (!w.has_scale()) {
      if (w.block_shape_size() != 0)
        return corrupt(strCat(where, ": has block_shape but no scale"));
      continue;
    }
    auto it = index.weightById.find(w.scale());
    if (it == index.weightById.end())
      return corrupt(
          strCat(where, ": scale refers to unknown weight id ", w.scale()));
    const Weight &s = m.weights(it->second);
    if (it->second == i || s.has_scale())
      return corrupt(strCat(where, ": scale weight id ", w.scale(),
                            " must be a plain weight"));
    if (s.dtype() != DTYPE_F32)
      return corrupt(strCat(where, ": scale weight ", quoted(s.name()), " is ",
                            dtypeName(s.dtype()), ", expected f32"));
    int rank = w.shape_size(), blockRank = w.block_shape_size();
    if (blockRank == 0 || blockRank > rank)
      return corrupt(strCat(where, ": block_shape has rank ", blockRank,
                            ", expected 1..", rank));
    if (s.shape_size() != rank)
      return corrupt(strCat(where, ": scale ", quoted(s.name()), " has rank ",
                            s.shape_size(), ", expected ", rank));
    for (int d = 0; d < rank; ++d) {
      int64_t expected = w.shape(d);
      if (d >= rank - blockRank) {
        int64_t block = w.block_shape(d - (rank - blockRank));
        if (block <= 0)
          return corrupt(
              strCat(where, ": block_shape has non-positive entry ", block));
        expected = (w.shape(d) + block - 1) / block;
      }
      if (s.shape(d) != expected)
        return corrupt(strCat(where, ": scale ", quoted(s.name()),
                              " has shape ", shapeString(s.shape()),
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
  const auto &list = inputs ? m.inputs() : m.outputs();
  const char *field = inputs ? "inputs" : "outputs";
  std::set<std::string> names;
  for (int i = 0; i < list.size(); ++i) {
    const TensorSpec &t = list[i];
    std::string where = strCat(field, "[", i, "] (", quoted(t.name()), ")");
    if (t.name().empty() || !names.insert(t.name()).second)
      return corrupt(strCat(where, ": the name is empty or used twice"));
    auto it = index.bufferById.find(t.buffer());
    if (it == index.bufferById.end())
      return corrupt(
          strCat(where, ": buffer refers to unknown buffer id ", t.buffer()));
    const Buffer &b = m.buffers(it->second);
    if (t.dtype() != b.dtype())
      return corrupt(strCat(where, ": dtype ", dtypeName(t.dtype()),
                            " differs from buffer ", quoted(b.name()), " (",
                            dtypeName(b.dtype()), ")"));
    if (t.shape_size() == 0)
      return corrupt(strCat(where, ": shape is empty"));
    bool perToken = t.shape(0) == -1;
    uint64_t count = 1;
    for (int d = perToken ? 1 : 0; d < t.shape_size(); ++d) {
      if (t.shape(d) <= 0)
        return corrupt(strCat(where, ": shape ", shapeString(t.shape()),
                              " has dimension ", d, " = ", t.shape(d),
                              " (only dimension 0 may be -1, the tokens)"));
      if (mulOverflows(count, uint64_t(t.shape(d)), count))
        return corrupt(strCat(where, ": element count overflows"));
    }
    bool bufferPerToken = b.elements_case() == Buffer::kElementsPerToken;
    uint64_t bufferCount =
        bufferPerToken ? b.elements_per_token() : b.fixed_elements();
    if (perToken != bufferPerToken || count != bufferCount)
      return corrupt(
          strCat(where, ": shape ", shapeString(t.shape()),
                 " does not match buffer ", quoted(b.name()), " (",
                 bufferPerToken ? "elements_per_token " : "fixed_elements ",
                 bufferCount, ")"));
    if (t.index_bound() < 0 || (t.index_bound() > 0 && t.dtype() != DTYPE_I32 &&
                                t.dtype() != DTYPE_I64))
      return corrupt(strCat(where, ": index_bound ", t.index_bound(),
                            " needs an i32 or i64 tensor and must be >= 0"));
  }
  return Status::ok();
}

//===----------------------------------------------------------------------===//
// Steps and targets
//===----------------------------------------------------------------------===//

/// Most arguments and integer parameters one step may have.
constexpr int kMaxStepOperands = 4096;

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
  if (launch.tensor_maps_size() > kMaxTensorMapsPerLaunch)
    return corrupt(strCat(launchWhere, ": ", launch.tensor_maps_size(),
                          " tensor maps, at most ", kMaxTensorMapsPerLaunch,
                          " allowed"));
  for (int j = 0; j < launch.tensor_maps_size(); ++j) {
    const TensorMap &map = launch.tensor_maps(j);
    std::string where = strCat(launchWhere, ": tensor_maps[", j, "]");
    if (map.arg() >= uint32_t(s.args_size()))
      return corrupt(strCat(where, ": arg ", map.arg(), " is not an argument (",
                            s.args_size(), " arguments)"));
    // The argument was checked to exist; its dtype and reserved bytes.
    const Argument &arg = s.args(int(map.arg()));
    DType argDType = DTYPE_UNSPECIFIED;
    uint64_t argBytes = 0, argOffset = 0;
    std::string argName;
    if (arg.ref_case() == Argument::kBuffer) {
      const Buffer &b = m.buffers(index.bufferById.at(arg.buffer()));
      argDType = b.dtype();
      argBytes = b.bytes();
      argOffset = b.offset();
      argName = strCat("buffer ", quoted(b.name()));
    } else {
      const Weight &w = m.weights(index.weightById.at(arg.weight()));
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
    int rank = map.dims_size();
    if (rank < 1 || rank > kMaxTensorMapRank)
      return corrupt(
          strCat(where, ": rank ", rank, ", expected 1..", kMaxTensorMapRank));
    if (map.strides_size() != rank - 1 || map.box_size() != rank)
      return corrupt(strCat(where, ": ", rank, " dims need ", rank - 1,
                            " strides and ", rank, " box extents, got ",
                            map.strides_size(), " and ", map.box_size()));
    for (int d = 0; d < rank; ++d)
      if (map.dims(d) < 1 || map.dims(d) > (uint64_t(1) << 32))
        return corrupt(strCat(where, ": dims[", d, "] is ", map.dims(d),
                              ", expected 1..2^32"));
    // Byte stride of each dimension (strides[d - 1] for d >= 1); each must
    // step over the whole previous dimension, so that no two elements
    // overlap (cuda.h: strides[i] >= strides[i-1] * dims[i]).
    uint64_t previous = elementBytes;
    for (int d = 1; d < rank; ++d) {
      uint64_t stride = map.strides(d - 1), needed = 0;
      if (stride % 16 != 0 || stride >= (uint64_t(1) << 40))
        return corrupt(strCat(where, ": strides[", d - 1, "] is ", stride,
                              ", expected a multiple of 16 below 2^40"));
      if (mulOverflows(previous, map.dims(d - 1), needed) || stride < needed)
        return corrupt(strCat(where, ": strides[", d - 1, "] ", stride,
                              " is less than the ", needed,
                              " bytes of dimension ", d - 1));
      previous = stride;
    }
    for (int d = 0; d < rank; ++d) {
      uint32_t box = map.box(d);
      if (box < 1 || box > kMaxTensorMapBox)
        return corrupt(strCat(where, ": box[", d, "] is ", box,
                              ", expected 1..", kMaxTensorMapBox));
    }
    uint64_t innerBytes = uint64_t(map.box(0)) * elementBytes;
    if (innerBytes % 16 != 0)
      return corrupt(strCat(where, ": box[0] ", map.box(0), " x ", elementBytes,
                            " bytes is not a multiple of 16"));
    if (!TensorMapSwizzle_IsValid(map.swizzle()))
      return corrupt(strCat(where, ": swizzle ", int(map.swizzle()),
                            " is not a known swizzle"));
    uint32_t swizzleBytes = tensorMapSwizzleBytes(map.swizzle());
    if (swizzleBytes && innerBytes > swizzleBytes)
      return corrupt(strCat(where, ": box[0] ", map.box(0), " x ", elementBytes,
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
    for (int d = 0; d < rank && !overflow; ++d) {
      if (d > 0)
        stride = map.strides(d - 1);
      uint64_t term = 0;
      overflow = mulOverflows(map.dims(d) - 1, stride, term) ||
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
  if (cudaTargets && s.cuda_size() == 0)
    return corrupt(strCat(stepWhere,
                          ": has no CUDA launches, but the manifest targets a "
                          "GPU"));
  if (s.cuda_size() > kMaxCudaLaunchesPerStep)
    return corrupt(strCat(stepWhere, ": ", s.cuda_size(),
                          " CUDA launches, at most ", kMaxCudaLaunchesPerStep,
                          " allowed"));
  static const char *const kAxis[3] = {"x", "y", "z"};
  static const int64_t kGridLimit[3] = {kMaxCudaGridX, kMaxCudaGridYZ,
                                        kMaxCudaGridYZ};
  for (int l = 0; l < s.cuda_size(); ++l) {
    const CudaLaunch &launch = s.cuda(l);
    std::string where =
        strCat(stepWhere, ": cuda[", l, "] (", quoted(launch.kernel()), ")");
    if (!isCIdentifier(launch.kernel()))
      return corrupt(strCat(where, ": kernel is not a C identifier"));
    if (launch.grid_size() != 3 || launch.block_size() != 3)
      return corrupt(strCat(where, ": has ", launch.grid_size(), " grid and ",
                            launch.block_size(),
                            " block extents, expected 3 each"));
    uint64_t threads = 1;
    for (int d = 0; d < 3; ++d) {
      MOEC_RETURN_IF_ERROR(checkGridExtent(strCat(where, ": grid ", kAxis[d]),
                                           launch.grid(d), m.max_tokens(),
                                           kGridLimit[d]));
      uint32_t b = launch.block(d);
      if (b < 1 || b > kMaxCudaBlockThreads)
        return corrupt(strCat(where, ": block ", kAxis[d], " is ", b,
                              ", expected 1..", kMaxCudaBlockThreads));
      threads *= b;
    }
    if (threads > kMaxCudaBlockThreads)
      return corrupt(strCat(where, ": block ", launch.block(0), "x",
                            launch.block(1), "x", launch.block(2), " has ",
                            threads, " threads, at most ", kMaxCudaBlockThreads,
                            " allowed"));
    if (launch.shared_bytes() > kMaxCudaSharedBytes)
      return corrupt(strCat(where, ": shared_bytes ", launch.shared_bytes(),
                            " exceeds ", kMaxCudaSharedBytes));
    MOEC_RETURN_IF_ERROR(checkTensorMaps(m, index, where, s, launch));
  }
  return Status::ok();
}

Status checkSteps(const Manifest &m, const ManifestIndex &index) {
  bool cudaTargets = hasCudaTarget(m);
  for (int i = 0; i < m.steps_size(); ++i) {
    const Step &s = m.steps(i);
    std::string where = strCat("steps[", i, "] (", quoted(s.kernel()), ")");
    if (!isCIdentifier(s.kernel()))
      return corrupt(strCat(where, ": kernel is not a C identifier"));
    if (s.args_size() > kMaxStepOperands || s.params_size() > kMaxStepOperands)
      return corrupt(strCat(where, ": more than ", kMaxStepOperands,
                            " arguments or parameters"));
    for (int a = 0; a < s.args_size(); ++a) {
      const Argument &arg = s.args(a);
      switch (arg.ref_case()) {
      case Argument::kBuffer:
        if (!index.bufferById.count(arg.buffer()))
          return corrupt(strCat(where, ": argument ", a,
                                " refers to unknown buffer id ", arg.buffer()));
        break;
      case Argument::kWeight:
        if (!index.weightById.count(arg.weight()))
          return corrupt(strCat(where, ": argument ", a,
                                " refers to unknown weight id ", arg.weight()));
        break;
      default:
        return corrupt(strCat(where, ": argument ", a,
                              " is neither a buffer nor a weight"));
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
  auto hasSection = [&](const std::string &name) {
    return std::find(ctx.sectionNames.begin(), ctx.sectionNames.end(), name) !=
           ctx.sectionNames.end();
  };
  std::set<std::string> seen;
  for (int i = 0; i < m.targets_size(); ++i) {
    const std::string &t = m.targets(i);
    std::string where = strCat("targets[", i, "] (", quoted(t), ")");
    if (!isTargetName(t))
      return corrupt(strCat(where, ": not 'cpu' or 'sm_<NN>[a]'"));
    if (!seen.insert(t).second)
      return corrupt(strCat(where, ": listed twice"));
    if (t == "cpu" && m.cpu_objects_size() == 0 && !hasSection("cpu.so"))
      return corrupt(strCat(
          where, ": the file has no 'cpu.so' section and no cpu_objects"));
    if (t != "cpu" && !hasSection("kernels.cu") && !hasSection("cubin." + t))
      return corrupt(strCat(where,
                            ": the file has neither 'kernels.cu' nor 'cubin.",
                            quoted(t).substr(1)));
  }
  for (int i = 0; i < m.precision_size(); ++i) {
    const PrecisionEntry &p = m.precision(i);
    if (p.op_class().empty() || !Precision_IsValid(p.precision()) ||
        p.precision() == PRECISION_UNSPECIFIED)
      return corrupt(strCat("precision[", i, "] (", quoted(p.op_class()),
                            "): needs an op_class and a known precision"));
  }
  return Status::ok();
}

// True for 1..64 characters of [A-Za-z0-9._-] (LLVM CPU names).
bool isCpuName(const std::string &s) {
  if (s.empty() || s.size() > 64)
    return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
  });
}

Status checkCpuObjects(const Manifest &m, const ManifestContext &ctx) {
  if (m.cpu_objects_size() == 0)
    return Status::ok();
  if (std::find(m.targets().begin(), m.targets().end(), "cpu") ==
      m.targets().end())
    return corrupt("cpu_objects: listed, but the targets do not include "
                   "'cpu'");
  std::set<std::string> sections;
  for (int i = 0; i < m.cpu_objects_size(); ++i) {
    const CpuObject &o = m.cpu_objects(i);
    std::string where =
        strCat("cpu_objects[", i, "] (", quoted(o.section()), ")");
    if (!checkSectionNameSyntax(o.section()).empty() ||
        o.section().size() <= kCpuSharedObjectPrefix.size() ||
        !isCpuSharedObjectName(o.section()))
      return corrupt(strCat(where, ": the section is not named "
                                   "'cpu.so.<variant>' (at most 31 "
                                   "characters of [A-Za-z0-9._-])"));
    if (!sections.insert(o.section()).second)
      return corrupt(strCat(where, ": listed twice"));
    if (std::find(ctx.sectionNames.begin(), ctx.sectionNames.end(),
                  o.section()) == ctx.sectionNames.end())
      return corrupt(strCat(where, ": the file has no such section"));
    if (!isCpuName(o.cpu()))
      return corrupt(strCat(where, ": cpu ", quoted(o.cpu()),
                            " is not 1 to 64 characters of [A-Za-z0-9._-]"));
    std::set<std::string> features;
    for (const std::string &f : o.features()) {
      if (findCpuFeature(f) < 0)
        return corrupt(strCat(where, ": feature ", quoted(f),
                              " is not one this runtime can detect"));
      if (!features.insert(f).second)
        return corrupt(
            strCat(where, ": feature ", quoted(f), " is listed twice"));
    }
  }
  return Status::ok();
}

} // namespace

std::vector<CpuCodeVariant> getCpuCodeVariants(const Manifest &m) {
  std::vector<CpuCodeVariant> variants;
  for (const CpuObject &o : m.cpu_objects())
    variants.push_back(CpuCodeVariant{
        o.section(), o.cpu(),
        std::vector<std::string>(o.features().begin(), o.features().end())});
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
  return index;
}

} // namespace moec::runtime
