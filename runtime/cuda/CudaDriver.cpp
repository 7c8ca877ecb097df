//===- CudaDriver.cpp - The CUDA driver API loaded with dlopen --*- C++ -*-===//
//
// Resolves the driver's versioned symbols (`cuMemAlloc_v2`, ...: the ABI
// cuda.h's macros select) and turns every way a machine can lack CUDA into
// one `kUnavailable` message: no libcuda, a libcuda without a required
// symbol, the toolkit's stub library (cuInit returns
// CUDA_ERROR_STUB_LIBRARY), no device. Optional symbols (tensor maps) may be
// missing; their users check.
//
//===----------------------------------------------------------------------===//

#include "runtime/cuda/CudaDriver.h"

#include <cstdlib>
#include <dlfcn.h>

namespace moec::runtime {

namespace {

// Resolves the first of `names` that the library exports.
template <typename Fn>
bool resolve(void *handle, Fn &fn, std::initializer_list<const char *> names,
             std::string &missing) {
  for (const char *name : names)
    if (void *symbol = dlsym(handle, name)) {
      fn = reinterpret_cast<Fn>(symbol);
      return true;
    }
  missing = *names.begin();
  return false;
}

Status unavailable(const std::string &library, const std::string &why) {
  return makeError(StatusCode::kUnavailable, "CUDA unavailable: ", library,
                   ": ", why);
}

} // namespace

std::string cudaArchFor(int major, int minor) {
  return strCat("sm_", major, minor, major == 9 && minor == 0 ? "a" : "");
}

CudaDriver::~CudaDriver() {
  if (handle)
    dlclose(handle);
}

// Names of the errors a driver that cannot describe itself (the stub) may
// return while loading.
static const char *fallbackErrorName(cu::Result result) {
  switch (result) {
  case 2:
    return "CUDA_ERROR_OUT_OF_MEMORY";
  case 3:
    return "CUDA_ERROR_NOT_INITIALIZED";
  case 34:
    return "CUDA_ERROR_STUB_LIBRARY";
  case 35:
    return "CUDA_ERROR_INSUFFICIENT_DRIVER";
  case 100:
    return "CUDA_ERROR_NO_DEVICE";
  case 101:
    return "CUDA_ERROR_INVALID_DEVICE";
  case 999:
    return "CUDA_ERROR_UNKNOWN";
  default:
    return nullptr;
  }
}

std::string CudaDriver::errorText(cu::Result result) const {
  const char *name = nullptr, *text = nullptr;
  if (!getErrorName || getErrorName(result, &name) != cu::kSuccess || !name)
    name = fallbackErrorName(result);
  if (!getErrorString || getErrorString(result, &text) != cu::kSuccess || !text)
    text = nullptr;
  return strCat(name ? name : "CUDA error", " ",
                text ? strCat("(", text, ")") : strCat("(code ", result, ")"));
}

StatusOr<std::unique_ptr<CudaDriver>>
CudaDriver::load(const std::string &library) {
  std::unique_ptr<CudaDriver> d(new CudaDriver());
  d->library = library;
  d->handle = dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!d->handle) {
    const char *err = dlerror();
    return unavailable(library, strCat("cannot load the CUDA driver (",
                                       err ? err : "dlopen failed",
                                       "); is the NVIDIA driver installed?"));
  }
  void *h = d->handle;
  std::string missing;
  bool ok =
      resolve(h, d->init, {"cuInit"}, missing) &&
      resolve(h, d->driverGetVersion, {"cuDriverGetVersion"}, missing) &&
      resolve(h, d->getErrorName, {"cuGetErrorName"}, missing) &&
      resolve(h, d->getErrorString, {"cuGetErrorString"}, missing) &&
      resolve(h, d->deviceGetCount, {"cuDeviceGetCount"}, missing) &&
      resolve(h, d->deviceGet, {"cuDeviceGet"}, missing) &&
      resolve(h, d->deviceGetName, {"cuDeviceGetName"}, missing) &&
      resolve(h, d->deviceGetAttribute, {"cuDeviceGetAttribute"}, missing) &&
      resolve(h, d->deviceTotalMem, {"cuDeviceTotalMem_v2"}, missing) &&
      resolve(h, d->devicePrimaryCtxRetain, {"cuDevicePrimaryCtxRetain"},
              missing) &&
      resolve(h, d->devicePrimaryCtxRelease,
              {"cuDevicePrimaryCtxRelease_v2", "cuDevicePrimaryCtxRelease"},
              missing) &&
      resolve(h, d->ctxPushCurrent, {"cuCtxPushCurrent_v2"}, missing) &&
      resolve(h, d->ctxPopCurrent, {"cuCtxPopCurrent_v2"}, missing) &&
      resolve(h, d->moduleLoadData, {"cuModuleLoadData"}, missing) &&
      resolve(h, d->moduleUnload, {"cuModuleUnload"}, missing) &&
      resolve(h, d->moduleGetFunction, {"cuModuleGetFunction"}, missing) &&
      resolve(h, d->funcGetAttribute, {"cuFuncGetAttribute"}, missing) &&
      resolve(h, d->funcSetAttribute, {"cuFuncSetAttribute"}, missing) &&
      resolve(h, d->memAlloc, {"cuMemAlloc_v2"}, missing) &&
      resolve(h, d->memFree, {"cuMemFree_v2"}, missing) &&
      resolve(h, d->memGetInfo, {"cuMemGetInfo_v2"}, missing) &&
      resolve(h, d->memcpyHtoDAsync, {"cuMemcpyHtoDAsync_v2"}, missing) &&
      resolve(h, d->memcpyDtoHAsync, {"cuMemcpyDtoHAsync_v2"}, missing) &&
      resolve(h, d->memsetD8Async, {"cuMemsetD8Async"}, missing) &&
      resolve(h, d->streamCreate, {"cuStreamCreate"}, missing) &&
      resolve(h, d->streamDestroy, {"cuStreamDestroy_v2"}, missing) &&
      resolve(h, d->streamSynchronize, {"cuStreamSynchronize"}, missing) &&
      resolve(h, d->launchKernel, {"cuLaunchKernel"}, missing) &&
      resolve(h, d->eventCreate, {"cuEventCreate"}, missing) &&
      resolve(h, d->eventDestroy, {"cuEventDestroy_v2"}, missing) &&
      resolve(h, d->eventRecord, {"cuEventRecord"}, missing) &&
      resolve(h, d->eventElapsedTime,
              {"cuEventElapsedTime_v2", "cuEventElapsedTime"}, missing);
  if (!ok)
    return unavailable(
        library, strCat("the driver lacks '", missing, "' (driver too old?)"));
  // Optional: older drivers (and devices without TMA) run artifacts without
  // tensor maps; the executor refuses maps when this is missing.
  std::string optionalMissing;
  resolve(h, d->tensorMapEncodeTiled, {"cuTensorMapEncodeTiled"},
          optionalMissing);
  if (cu::Result rc = d->init(0); rc != cu::kSuccess) {
    std::string why = strCat("cuInit failed: ", d->errorText(rc));
    if (rc == cu::kErrorStubLibrary)
      why += "; this is the CUDA toolkit's stub library, not a driver";
    else if (rc == cu::kErrorNoDevice)
      why += "; no CUDA device";
    return unavailable(library, why);
  }
  if (d->driverGetVersion(&d->driverVersion) != cu::kSuccess)
    d->driverVersion = 0;
  if (cu::Result rc = d->deviceGetCount(&d->deviceCount); rc != cu::kSuccess)
    return unavailable(library,
                       strCat("cuDeviceGetCount failed: ", d->errorText(rc)));
  if (d->deviceCount < 1)
    return unavailable(library, "no CUDA device");
  return d;
}

StatusOr<const CudaDriver *> CudaDriver::get() {
  // Never unloaded: libcuda must outlive every context, and static
  // destructors run in no useful order at exit.
  struct Loaded {
    const CudaDriver *driver = nullptr;
    Status status;
  };
  // The only environment knob of the driver table (docs/runtime-cuda.md).
  static const Loaded loaded = [] {
    const char *override = std::getenv("MOEC_CUDA_DRIVER_LIBRARY");
    StatusOr<std::unique_ptr<CudaDriver>> d =
        load(override && *override ? override : "libcuda.so.1");
    Loaded out;
    if (d.isOk())
      out.driver = std::move(d).value().release();
    else
      out.status = d.status();
    return out;
  }();
  if (!loaded.driver)
    return loaded.status;
  return loaded.driver;
}

} // namespace moec::runtime
