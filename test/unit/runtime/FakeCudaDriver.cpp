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
// Tests steer it through the `moecFake*` functions: inject a failing call,
// read counters of outstanding allocations and contexts.
//
//===----------------------------------------------------------------------===//

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <map>
#include <mutex>
#include <set>
#include <string>

#define FAKE_EXPORT extern "C" __attribute__((visibility("default")))

namespace {
#define MOEC_FILL_FN static inline
#include "runtime/executor/WeightFill.inc"
#undef MOEC_FILL_FN

using Result = int;
constexpr Result kSuccess = 0, kInvalidValue = 1, kOutOfMemory = 2,
                 kNotInitialized = 3, kNoDevice = 100, kInvalidImage = 200,
                 kInvalidContext = 201, kNotFound = 500, kIllegalAddress = 700;

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

struct State {
  std::mutex mutex;
  bool initialized = false;
  int retained = 0, depth = 0;
  std::set<void *> allocations;
  std::map<std::string, Function *> functions;
  // Failure injection: the `failAfter`-th next call of `failCall` returns
  // `failCode`, and from then on every call does (a sticky context error).
  std::string failCall;
  int failAfter = -1;
  Result failCode = kIllegalAddress;
  bool broken = false;
  int launches = 0;
  int maxThreads = 1024;
  std::string ccEnv;
} state;

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
/// Clears injected failures and the broken state.
FAKE_EXPORT void moecFakeReset() {
  state.failAfter = -1;
  state.broken = false;
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
  // Compute capability from $MOEC_FAKE_CUDA_CC ("8.9" by default).
  const char *cc = std::getenv("MOEC_FAKE_CUDA_CC");
  int major = 8, minor = 9;
  if (cc)
    std::sscanf(cc, "%d.%d", &major, &minor);
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
  // The last release destroys the context: its memory goes, and so does a
  // sticky error (as with the real driver).
  if (--state.retained == 0) {
    for (void *mem : state.allocations)
      std::free(mem);
    state.allocations.clear();
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
  *module = m;
  return kSuccess;
}
FAKE_EXPORT Result cuModuleUnload(Module *m) {
  if (m->library)
    dlclose(m->library);
  delete m;
  return kSuccess;
}
FAKE_EXPORT Result cuModuleGetFunction(Function **f, Module *m,
                                       const char *name) {
  ENTER("cuModuleGetFunction");
  Function *&fn = state.functions[name];
  if (!fn) {
    fn = new Function();
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
  *f = fn;
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
  *stream = new int(0);
  return kSuccess;
}
FAKE_EXPORT Result cuStreamDestroy_v2(void *stream) {
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
