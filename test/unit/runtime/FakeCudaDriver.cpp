//===- FakeCudaDriver.cpp - A host-memory CUDA driver for tests -*- C++ -*-===//
//
// Implements the driver entry points the runtime's CudaDriver table resolves,
// on the host, so that the CUDA executor, the C API's device selection,
// moec-run and gpu-check run end to end on a machine without a GPU. Device
// pointers are host pointers; a module is a host shared object whose
// kernels take (void **params, grid[3], block[3], sharedBytes) and run the
// whole grid synchronously; a cubin section holding "MOECFAKECUBIN <path>"
// names that object, any other image (a real NVRTC cubin from the JIT) uses
// $MOEC_FAKE_CUDA_KERNELS. `moec_fill_weight` is built in (WeightFill.inc).
// cuTensorMapEncodeTiled checks its arguments against cuda.h's documented
// rules and writes a `moec_emu::TensorMapImage` (host addresses), which the
// host emulation's TMA copies read. Tests steer it through the `moecFake*`
// functions: inject a failing call, read counters of outstanding
// allocations and contexts, read back the tensor map encode calls. The
// compute capability is $MOEC_FAKE_CUDA_CC ("8.9" by default).
//
//===----------------------------------------------------------------------===//

#include "test/emu/tensor_map_image.h"

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#define FAKE_EXPORT extern "C" __attribute__((visibility("default")))

namespace {
#define MOEC_FILL_FN static inline
#include "runtime/executor/WeightFill.inc"
#undef MOEC_FILL_FN

using Result = int;
constexpr Result kSuccess = 0, kInvalidValue = 1, kOutOfMemory = 2,
                 kNotInitialized = 3, kNoDevice = 100, kInvalidImage = 200,
                 kInvalidContext = 201, kNotFound = 500, kIllegalAddress = 700,
                 kNotSupported = 801;

using HostKernel = void (*)(void **params, const unsigned *grid,
                            const unsigned *block, unsigned sharedBytes);

struct Module {
  void *library = nullptr;
};
struct Function {
  HostKernel kernel = nullptr;
  bool fill = false;
  std::string name;
  int maxDynamicShared = 48 * 1024;
};
struct Event {
  std::chrono::steady_clock::time_point at;
};
// One cuTensorMapEncodeTiled call, as the tests read it back.
struct TensorMapEncode {
  Result result = kSuccess;
  const void *map = nullptr;
  int dataType = 0, interleave = 0, swizzle = 0, l2Promotion = 0, oobFill = 0;
  uint32_t rank = 0;
  unsigned long long address = 0;
  uint64_t dims[5] = {}, strides[4] = {};
  uint32_t box[5] = {}, elementStrides[5] = {};
};

struct State {
  std::mutex mutex;
  bool initialized = false;
  int retained = 0, depth = 0;
  std::set<void *> allocations;
  // Modules and streams of the context, destroyed with it.
  std::set<Module *> modules;
  std::set<int *> streams;
  // Owned here, so that they are freed at exit (LeakSanitizer).
  std::map<std::string, std::unique_ptr<Function>> functions;
  // Failure injection: the `failAfter`-th next call of `failCall` returns
  // `failCode`, and from then on every call does (a sticky context error).
  std::string failCall;
  int failAfter = -1;
  Result failCode = kIllegalAddress;
  bool broken = false;
  int launches = 0;
  int maxThreads = 1024;
  std::string ccEnv;
  std::vector<TensorMapEncode> encodes;
} state;

// The compute capability from $MOEC_FAKE_CUDA_CC ("8.9" by default).
void computeCapability(int &major, int &minor) {
  major = 8;
  minor = 9;
  if (const char *cc = std::getenv("MOEC_FAKE_CUDA_CC"))
    std::sscanf(cc, "%d.%d", &major, &minor);
}

// Every entry point starts here: counts down an injected failure.
Result enter(const char *call) {
  if (state.broken)
    return state.failCode;
  if (state.failAfter >= 0 && state.failCall == call) {
    if (state.failAfter == 0) {
      state.failAfter = -1;
      state.broken = state.failCode == kIllegalAddress;
      return state.failCode;
    }
    --state.failAfter;
  }
  return kSuccess;
}

#define ENTER(name)                                                            \
  if (Result rc = enter(name); rc != kSuccess)                                 \
  return rc

} // namespace

//===----------------------------------------------------------------------===//
// Test controls
//===----------------------------------------------------------------------===//

/// The `after`-th next call (0 = the next) of `call` (e.g. "cuLaunchKernel")
/// fails with `code`; 700 (illegal address) also breaks every later call.
FAKE_EXPORT void moecFakeFail(const char *call, int after, int code) {
  state.failCall = call;
  state.failAfter = after;
  state.failCode = code;
}
/// Clears injected failures, the broken state and the recorded tensor map
/// encodes.
FAKE_EXPORT void moecFakeReset() {
  state.failAfter = -1;
  state.broken = false;
  state.encodes.clear();
}
/// cuTensorMapEncodeTiled calls since the last reset, failed ones included.
FAKE_EXPORT int moecFakeTensorMapEncodes() { return int(state.encodes.size()); }
/// One argument of encode call `call`: "result", "map" (its address),
/// "dataType", "rank", "address", "interleave", "swizzle", "l2Promotion",
/// "oobFill", or entry `index` of "dims", "strides", "box",
/// "elementStrides". -1 for an unknown call or field.
FAKE_EXPORT long long moecFakeTensorMapEncodeField(int call, const char *field,
                                                   int index) {
  if (call < 0 || call >= int(state.encodes.size()) || index < 0 || index > 4)
    return -1;
  const TensorMapEncode &e = state.encodes[size_t(call)];
  std::string f = field;
  if (f == "result")
    return e.result;
  if (f == "map")
    return (long long)reinterpret_cast<uintptr_t>(e.map);
  if (f == "dataType")
    return e.dataType;
  if (f == "rank")
    return e.rank;
  if (f == "address")
    return (long long)e.address;
  if (f == "interleave")
    return e.interleave;
  if (f == "swizzle")
    return e.swizzle;
  if (f == "l2Promotion")
    return e.l2Promotion;
  if (f == "oobFill")
    return e.oobFill;
  if (f == "dims")
    return (long long)e.dims[index];
  if (f == "strides")
    return index < 4 ? (long long)e.strides[index] : -1;
  if (f == "box")
    return e.box[index];
  if (f == "elementStrides")
    return e.elementStrides[index];
  return -1;
}
FAKE_EXPORT int moecFakeAllocations() { return int(state.allocations.size()); }
FAKE_EXPORT int moecFakeRetainedContexts() { return state.retained; }
FAKE_EXPORT int moecFakeContextDepth() { return state.depth; }
FAKE_EXPORT int moecFakeLaunches() { return state.launches; }
FAKE_EXPORT void moecFakeSetMaxThreads(int n) { state.maxThreads = n; }
/// The dynamic shared memory `kernel` was opted in to (48 KiB default).
FAKE_EXPORT int moecFakeSharedOptIn(const char *kernel) {
  auto it = state.functions.find(kernel);
  return it == state.functions.end() ? -1 : it->second->maxDynamicShared;
}

//===----------------------------------------------------------------------===//
// Driver entry points
//===----------------------------------------------------------------------===//

FAKE_EXPORT Result cuInit(unsigned) {
  if (const char *e = std::getenv("MOEC_FAKE_CUDA_INIT_ERROR"))
    return std::atoi(e);
  state.initialized = true;
  return kSuccess;
}
FAKE_EXPORT Result cuDriverGetVersion(int *v) {
  *v = 13000;
  return kSuccess;
}
FAKE_EXPORT Result cuGetErrorName(Result e, const char **s) {
  switch (e) {
  case kSuccess:
    *s = "CUDA_SUCCESS";
    break;
  case kInvalidValue:
    *s = "CUDA_ERROR_INVALID_VALUE";
    break;
  case kOutOfMemory:
    *s = "CUDA_ERROR_OUT_OF_MEMORY";
    break;
  case kNoDevice:
    *s = "CUDA_ERROR_NO_DEVICE";
    break;
  case kInvalidImage:
    *s = "CUDA_ERROR_INVALID_IMAGE";
    break;
  case kNotFound:
    *s = "CUDA_ERROR_NOT_FOUND";
    break;
  case kNotSupported:
    *s = "CUDA_ERROR_NOT_SUPPORTED";
    break;
  case kIllegalAddress:
    *s = "CUDA_ERROR_ILLEGAL_ADDRESS";
    break;
  default:
    *s = nullptr;
    return kInvalidValue;
  }
  return kSuccess;
}
FAKE_EXPORT Result cuGetErrorString(Result e, const char **s) {
  switch (e) {
  case kOutOfMemory:
    *s = "out of memory";
    break;
  case kNoDevice:
    *s = "no CUDA-capable device is detected";
    break;
  case kIllegalAddress:
    *s = "an illegal memory access was encountered";
    break;
  default:
    *s = "fake error";
    break;
  }
  return kSuccess;
}
FAKE_EXPORT Result cuDeviceGetCount(int *n) {
  if (!state.initialized)
    return kNotInitialized;
  const char *e = std::getenv("MOEC_FAKE_CUDA_DEVICES");
  *n = e ? std::atoi(e) : 1;
  return kSuccess;
}
FAKE_EXPORT Result cuDeviceGet(int *d, int ordinal) {
  *d = ordinal;
  return kSuccess;
}
FAKE_EXPORT Result cuDeviceGetName(char *name, int length, int) {
  std::snprintf(name, size_t(length), "moec fake GPU");
  return kSuccess;
}
FAKE_EXPORT Result cuDeviceGetAttribute(int *value, int attribute, int) {
  int major, minor;
  computeCapability(major, minor);
  switch (attribute) {
  case 75:
    *value = major;
    break;
  case 76:
    *value = minor;
    break;
  case 16:
    *value = 4;
    break;
  case 97:
    *value = 227 * 1024;
    break;
  default:
    *value = 0;
    break;
  }
  return kSuccess;
}
FAKE_EXPORT Result cuDeviceTotalMem_v2(size_t *bytes, int) {
  *bytes = size_t(1) << 30;
  return kSuccess;
}
FAKE_EXPORT Result cuDevicePrimaryCtxRetain(void **ctx, int) {
  ENTER("cuDevicePrimaryCtxRetain");
  static int context;
  *ctx = &context;
  ++state.retained;
  return kSuccess;
}
FAKE_EXPORT Result cuDevicePrimaryCtxRelease_v2(int) {
  // The last release destroys the context: its memory, modules and streams
  // go, and so does a sticky error (as with the real driver).
  if (--state.retained == 0) {
    for (void *mem : state.allocations)
      std::free(mem);
    state.allocations.clear();
    for (Module *m : state.modules) {
      if (m->library)
        dlclose(m->library);
      delete m;
    }
    state.modules.clear();
    for (int *stream : state.streams)
      delete stream;
    state.streams.clear();
    state.broken = false;
  }
  return kSuccess;
}
FAKE_EXPORT Result cuCtxPushCurrent_v2(void *ctx) {
  ENTER("cuCtxPushCurrent");
  if (!ctx || state.retained <= 0)
    return kInvalidContext;
  ++state.depth;
  return kSuccess;
}
FAKE_EXPORT Result cuCtxPopCurrent_v2(void **ctx) {
  if (state.depth <= 0)
    return kInvalidContext;
  --state.depth;
  if (ctx)
    *ctx = nullptr;
  return kSuccess;
}
FAKE_EXPORT Result cuModuleLoadData(Module **module, const void *image) {
  ENTER("cuModuleLoadData");
  if (state.depth <= 0)
    return kInvalidContext;
  const char *text = static_cast<const char *>(image);
  std::string path;
  if (std::strncmp(text, "MOECFAKECUBIN ", 14) == 0)
    path = std::string(text + 14, std::strcspn(text + 14, "\n"));
  else if (std::memcmp(text,
                       "\x7f"
                       "ELF",
                       4) == 0)
    path = std::getenv("MOEC_FAKE_CUDA_KERNELS")
               ? std::getenv("MOEC_FAKE_CUDA_KERNELS")
               : "";
  else
    return kInvalidImage;
  auto *m = new Module();
  if (!path.empty() && !(m->library = dlopen(path.c_str(), RTLD_NOW))) {
    delete m;
    return kInvalidImage;
  }
  state.modules.insert(m);
  *module = m;
  return kSuccess;
}
FAKE_EXPORT Result cuModuleUnload(Module *m) {
  if (!state.modules.erase(m))
    return kInvalidValue;
  if (m->library)
    dlclose(m->library);
  delete m;
  return kSuccess;
}
FAKE_EXPORT Result cuModuleGetFunction(Function **f, Module *m,
                                       const char *name) {
  ENTER("cuModuleGetFunction");
  std::unique_ptr<Function> &fn = state.functions[name];
  if (!fn) {
    fn = std::make_unique<Function>();
    fn->name = name;
  }
  if (std::strcmp(name, "moec_fill_weight") == 0) {
    fn->fill = true;
  } else {
    void *symbol = m->library ? dlsym(m->library, name) : nullptr;
    if (!symbol)
      return kNotFound;
    fn->kernel = reinterpret_cast<HostKernel>(symbol);
  }
  *f = fn.get();
  return kSuccess;
}
FAKE_EXPORT Result cuFuncGetAttribute(int *value, int attribute, Function *f) {
  *value = attribute == 0   ? state.maxThreads
           : attribute == 8 ? f->maxDynamicShared
                            : 0;
  return kSuccess;
}
FAKE_EXPORT Result cuFuncSetAttribute(Function *f, int attribute, int value) {
  ENTER("cuFuncSetAttribute");
  if (attribute != 8 || value < 0 || value > 227 * 1024)
    return kInvalidValue;
  f->maxDynamicShared = value;
  return kSuccess;
}
FAKE_EXPORT Result cuMemAlloc_v2(unsigned long long *p, size_t bytes) {
  ENTER("cuMemAlloc");
  if (bytes == 0)
    return kInvalidValue;
  if (bytes > (size_t(1) << 30))
    return kOutOfMemory;
  void *mem = std::aligned_alloc(256, (bytes + 255) / 256 * 256);
  // Device memory starts as garbage, not zeros.
  std::memset(mem, 0xA5, bytes);
  state.allocations.insert(mem);
  *p = reinterpret_cast<unsigned long long>(mem);
  return kSuccess;
}
FAKE_EXPORT Result cuMemFree_v2(unsigned long long p) {
  void *mem = reinterpret_cast<void *>(p);
  if (!state.allocations.erase(mem))
    return kInvalidValue;
  std::free(mem);
  return kSuccess;
}
FAKE_EXPORT Result cuMemGetInfo_v2(size_t *free, size_t *total) {
  *free = *total = size_t(1) << 30;
  return kSuccess;
}
FAKE_EXPORT Result cuMemcpyHtoDAsync_v2(unsigned long long dst, const void *src,
                                        size_t bytes, void *) {
  ENTER("cuMemcpyHtoDAsync");
  std::memcpy(reinterpret_cast<void *>(dst), src, bytes);
  return kSuccess;
}
FAKE_EXPORT Result cuMemcpyDtoHAsync_v2(void *dst, unsigned long long src,
                                        size_t bytes, void *) {
  ENTER("cuMemcpyDtoHAsync");
  std::memcpy(dst, reinterpret_cast<const void *>(src), bytes);
  return kSuccess;
}
FAKE_EXPORT Result cuMemsetD8Async(unsigned long long dst, unsigned char v,
                                   size_t bytes, void *) {
  ENTER("cuMemsetD8Async");
  std::memset(reinterpret_cast<void *>(dst), v, bytes);
  return kSuccess;
}
FAKE_EXPORT Result cuStreamCreate(void **stream, unsigned) {
  ENTER("cuStreamCreate");
  int *s = new int(0);
  state.streams.insert(s);
  *stream = s;
  return kSuccess;
}
FAKE_EXPORT Result cuStreamDestroy_v2(void *stream) {
  if (!state.streams.erase(static_cast<int *>(stream)))
    return kInvalidValue;
  delete static_cast<int *>(stream);
  return kSuccess;
}
FAKE_EXPORT Result cuStreamSynchronize(void *) {
  ENTER("cuStreamSynchronize");
  return kSuccess;
}
FAKE_EXPORT Result cuLaunchKernel(Function *f, unsigned gx, unsigned gy,
                                  unsigned gz, unsigned bx, unsigned by,
                                  unsigned bz, unsigned shared, void *,
                                  void **params, void **extra) {
  ENTER("cuLaunchKernel");
  if (!f || extra || bx * by * bz > unsigned(state.maxThreads) ||
      shared > unsigned(f->maxDynamicShared) || gx == 0 || gy == 0 || gz == 0)
    return kInvalidValue;
  ++state.launches;
  if (f->fill) {
    // moec_fill_weight(out, count, seed, id, kind)
    auto *out = *static_cast<unsigned char **>(params[0]);
    unsigned long long count = *static_cast<unsigned long long *>(params[1]);
    unsigned long long seed = *static_cast<unsigned long long *>(params[2]);
    unsigned id = *static_cast<unsigned *>(params[3]);
    int kind = *static_cast<int *>(params[4]);
    for (unsigned long long i = 0; i < count; ++i)
      moecFillElement(out, i, seed, id, kind);
    return kSuccess;
  }
  unsigned grid[3] = {gx, gy, gz}, block[3] = {bx, by, bz};
  f->kernel(params, grid, block, shared);
  return kSuccess;
}
FAKE_EXPORT Result cuEventCreate(Event **e, unsigned) {
  ENTER("cuEventCreate");
  *e = new Event();
  return kSuccess;
}
FAKE_EXPORT Result cuEventDestroy_v2(Event *e) {
  delete e;
  return kSuccess;
}
FAKE_EXPORT Result cuEventRecord(Event *e, void *) {
  ENTER("cuEventRecord");
  e->at = std::chrono::steady_clock::now();
  return kSuccess;
}
FAKE_EXPORT Result cuEventElapsedTime_v2(float *ms, Event *a, Event *b) {
  *ms = std::chrono::duration<float, std::milli>(b->at - a->at).count();
  return kSuccess;
}

//===----------------------------------------------------------------------===//
// Tensor maps
//===----------------------------------------------------------------------===//

namespace {

// Bytes per element of a CUtensorMapDataType (cuda.h's table); 0 for the
// packed 4/6-bit types and unknown values.
uint32_t tensorMapElementBytes(int dataType) {
  static const uint32_t kBytes[13] = {1, 2, 4, 4, 8, 8, 2, 4, 8, 2, 4, 4, 4};
  return dataType >= 0 && dataType < 13 ? kBytes[dataType] : 0;
}

// cuTensorMapEncodeTiled's documented requirements (cuda.h, CUDA 13, and
// the Programming Guide's swizzle alignment) for the tiled, non-packed case:
// kInvalidValue on a violation, kNotSupported for valid arguments the
// TensorMapImage cannot represent (interleave, element strides != 1, the 128B
// atom swizzles, NaN fill, packed types).
Result checkTensorMapArgs(const TensorMapEncode &e, const void *map,
                          const uint64_t *dims, const uint64_t *strides,
                          const uint32_t *box, const uint32_t *elementStrides) {
  if (!map || reinterpret_cast<uintptr_t>(map) % 64 != 0 || !dims || !box ||
      !elementStrides || (e.rank > 1 && !strides))
    return kInvalidValue;
  if (e.dataType >= 13 && e.dataType <= 15)
    return kNotSupported;
  uint32_t elementBytes = tensorMapElementBytes(e.dataType);
  if (elementBytes == 0 || e.rank < 1 || e.rank > 5 || e.address % 16 != 0 ||
      e.interleave < 0 || e.interleave > 2 || e.swizzle < 0 || e.swizzle > 6 ||
      e.l2Promotion < 0 || e.l2Promotion > 3 || e.oobFill < 0 || e.oobFill > 1)
    return kInvalidValue;
  // NaN fill is for floating-point types only (f16, f32, f64, bf16, tf32).
  bool isFloat = e.dataType >= 6;
  if (e.oobFill == 1 && !isFloat)
    return kInvalidValue;
  uint64_t previous = elementBytes;
  for (uint32_t d = 0; d < e.rank; ++d) {
    if (dims[d] < 1 || dims[d] > (uint64_t(1) << 32) || box[d] < 1 ||
        box[d] > 256 || elementStrides[d] < 1 || elementStrides[d] > 8)
      return kInvalidValue;
    if (d > 0) {
      // Each stride covers the previous dimension (cuda.h's formula:
      // strides[i] = strides[i-1] * (dims[i] + padding)).
      uint64_t stride = strides[d - 1], needed = 0;
      if (stride % 16 != 0 || stride >= (uint64_t(1) << 40) ||
          __builtin_mul_overflow(previous, dims[d - 1], &needed) ||
          stride < needed)
        return kInvalidValue;
      previous = stride;
    }
  }
  uint64_t innerBytes = uint64_t(box[0]) * elementBytes;
  if (innerBytes % 16 != 0)
    return kInvalidValue;
  static const uint64_t kSpan[7] = {0, 32, 64, 128, 128, 128, 128};
  if (e.swizzle != 0 && innerBytes > kSpan[e.swizzle])
    return kInvalidValue;
  // CUDA Programming Guide, TMA swizzle patterns (Table 12): swizzled
  // tensors need 128-byte aligned global memory. Not in cuda.h's list, so
  // the real driver may only fail at the copy; refused here so that a
  // runtime passing such an address is caught at load.
  if (e.swizzle != 0 && e.address % 128 != 0)
    return kInvalidValue;
  if (e.interleave != 0 || e.swizzle > 3 || e.oobFill != 0)
    return kNotSupported;
  for (uint32_t d = 0; d < e.rank; ++d)
    if (elementStrides[d] != 1)
      return kNotSupported;
  return kSuccess;
}

} // namespace

/// Encodes a tiled tensor map as a `moec_emu::TensorMapImage` after checking
/// the arguments; only devices of compute capability >= 9.0 have TMA.
FAKE_EXPORT Result cuTensorMapEncodeTiled(
    void *map, int dataType, uint32_t rank, void *address, const uint64_t *dims,
    const uint64_t *strides, const uint32_t *box,
    const uint32_t *elementStrides, int interleave, int swizzle,
    int l2Promotion, int oobFill) {
  ENTER("cuTensorMapEncodeTiled");
  TensorMapEncode e;
  e.map = map;
  e.dataType = dataType;
  e.rank = rank;
  e.address = reinterpret_cast<uintptr_t>(address);
  e.interleave = interleave;
  e.swizzle = swizzle;
  e.l2Promotion = l2Promotion;
  e.oobFill = oobFill;
  for (uint32_t d = 0; d < rank && d < 5; ++d) {
    e.dims[d] = dims ? dims[d] : 0;
    e.box[d] = box ? box[d] : 0;
    e.elementStrides[d] = elementStrides ? elementStrides[d] : 0;
    if (d > 0)
      e.strides[d - 1] = strides ? strides[d - 1] : 0;
  }
  int major, minor;
  computeCapability(major, minor);
  if (state.depth <= 0)
    e.result = kInvalidContext;
  else if (major < 9)
    e.result = kNotSupported;
  else
    e.result = checkTensorMapArgs(e, map, dims, strides, box, elementStrides);
  state.encodes.push_back(e);
  if (e.result != kSuccess)
    return e.result;
  moec_emu::TensorMapImage image;
  std::memset(&image, 0, sizeof(image));
  image.magic = moec_emu::kTensorMapMagic;
  image.elementBytes = tensorMapElementBytes(dataType);
  image.rank = rank;
  static const uint32_t kSpan[4] = {0, 32, 64, 128};
  image.swizzleBytes = kSpan[swizzle];
  image.address = e.address;
  for (uint32_t d = 0; d < rank; ++d) {
    image.dims[d] = dims[d];
    image.box[d] = box[d];
    if (d > 0)
      image.strides[d - 1] = strides[d - 1];
  }
  std::memcpy(map, &image, sizeof(image));
  return kSuccess;
}
