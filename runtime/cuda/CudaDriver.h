//===- CudaDriver.h - The CUDA driver API loaded with dlopen ----*- C++ -*-===//
//
// One symbol table for the CUDA driver API (libcuda.so.1), resolved with
// dlsym, so that the runtime builds and runs without CUDA installed and a
// missing driver, the toolkit's stub library or a machine without a GPU is a
// `kUnavailable` status instead of a link error or a crash. The types are
// declared here (no cuda.h needed); test/unit/runtime/CudaApiTypesTest.cpp
// checks them against cuda.h where the toolkit is installed.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_RUNTIME_CUDA_CUDADRIVER_H
#define MOEC_RUNTIME_CUDA_CUDADRIVER_H

#include "runtime/support/Status.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

// The driver's opaque handle types, with cuda.h's tags (so that they are the
// same types where both headers are included).
struct CUctx_st;
struct CUmod_st;
struct CUfunc_st;
struct CUstream_st;
struct CUevent_st;

namespace moec::runtime {

/// The driver API's types and the few constants the runtime uses (values
/// from cuda.h, CUDA 12/13).
namespace cu {
using Result = int;
using Device = int;
using DevicePtr = unsigned long long;
using Context = CUctx_st *;
using Module = CUmod_st *;
using Function = CUfunc_st *;
using Stream = CUstream_st *;
using Event = CUevent_st *;

constexpr Result kSuccess = 0;
constexpr Result kErrorOutOfMemory = 2;
constexpr Result kErrorStubLibrary = 34;
constexpr Result kErrorNoDevice = 100;
constexpr Result kErrorNotFound = 500;

constexpr int kDeviceAttrMultiprocessorCount = 16;
constexpr int kDeviceAttrComputeCapabilityMajor = 75;
constexpr int kDeviceAttrComputeCapabilityMinor = 76;
constexpr int kDeviceAttrMaxSharedMemoryPerBlockOptin = 97;

constexpr int kFuncAttrMaxThreadsPerBlock = 0;
constexpr int kFuncAttrMaxDynamicSharedSizeBytes = 8;

constexpr unsigned kStreamNonBlocking = 1;
constexpr unsigned kEventDefault = 0;

/// cuda.h's CUtensorMap: a TMA descriptor, 128 opaque bytes. The driver
/// requires 64-byte alignment; cuda.h 13 declares 128, which is kept here so
/// that the type matches the header's.
struct alignas(128) TensorMap {
  uint64_t opaque[16];
};

/// CUtensorMapDataType values the runtime encodes (raw bits: no format
/// conversion happens on a tiled copy without NaN fill).
constexpr int kTensorMapDataTypeUint8 = 0;
constexpr int kTensorMapDataTypeUint16 = 1;
constexpr int kTensorMapDataTypeInt32 = 3;
constexpr int kTensorMapDataTypeInt64 = 5;
constexpr int kTensorMapDataTypeFloat32 = 7;
/// CUtensorMapInterleave, CUtensorMapL2promotion, CUtensorMapFloatOOBfill.
constexpr int kTensorMapInterleaveNone = 0;
constexpr int kTensorMapL2Promotion128B = 2;
constexpr int kTensorMapFloatOobFillNone = 0;
/// CUtensorMapSwizzle: the manifest's TensorMapSwizzle values are these.
constexpr int kTensorMapSwizzleNone = 0;
constexpr int kTensorMapSwizzle32B = 1;
constexpr int kTensorMapSwizzle64B = 2;
constexpr int kTensorMapSwizzle128B = 3;
} // namespace cu

/// The loaded driver: every entry point the runtime calls. Member names are
/// the API names without `cu` (and without the `_v2` that cuda.h's macros
/// add; the table resolves the versioned symbols). All are required except
/// those marked optional.
struct CudaDriver {
  /// Loads `library` (e.g. "libcuda.so.1" or a path), resolves every
  /// symbol, calls cuInit(0) and counts devices. `kUnavailable` naming the
  /// library and the reason when any of that fails (a stub driver says so).
  static StatusOr<std::unique_ptr<CudaDriver>> load(const std::string &library);

  /// The process-wide driver: `load("libcuda.so.1")`, or the library named
  /// by `$MOEC_CUDA_DRIVER_LIBRARY` (for tests with a fake driver). Loaded
  /// once; later calls return the same driver or the same error.
  static StatusOr<const CudaDriver *> get();

  /// Closes the library.
  ~CudaDriver();

  /// "CUDA_ERROR_OUT_OF_MEMORY (out of memory)" for `result`.
  std::string errorText(cu::Result result) const;

  /// The library that was loaded.
  std::string library;
  /// The dlopen handle.
  void *handle = nullptr;
  /// Devices cuDeviceGetCount reported (>= 1).
  int deviceCount = 0;
  /// cuDriverGetVersion, e.g. 13000.
  int driverVersion = 0;

  cu::Result (*init)(unsigned flags) = nullptr;
  cu::Result (*driverGetVersion)(int *version) = nullptr;
  cu::Result (*getErrorName)(cu::Result error, const char **name) = nullptr;
  cu::Result (*getErrorString)(cu::Result error, const char **text) = nullptr;
  cu::Result (*deviceGetCount)(int *count) = nullptr;
  cu::Result (*deviceGet)(cu::Device *device, int ordinal) = nullptr;
  cu::Result (*deviceGetName)(char *name, int length,
                              cu::Device device) = nullptr;
  cu::Result (*deviceGetAttribute)(int *value, int attribute,
                                   cu::Device device) = nullptr;
  cu::Result (*deviceTotalMem)(size_t *bytes, cu::Device device) = nullptr;
  cu::Result (*devicePrimaryCtxRetain)(cu::Context *context,
                                       cu::Device device) = nullptr;
  cu::Result (*devicePrimaryCtxRelease)(cu::Device device) = nullptr;
  cu::Result (*ctxPushCurrent)(cu::Context context) = nullptr;
  cu::Result (*ctxPopCurrent)(cu::Context *context) = nullptr;
  cu::Result (*moduleLoadData)(cu::Module *module, const void *image) = nullptr;
  cu::Result (*moduleUnload)(cu::Module module) = nullptr;
  cu::Result (*moduleGetFunction)(cu::Function *function, cu::Module module,
                                  const char *name) = nullptr;
  cu::Result (*funcGetAttribute)(int *value, int attribute,
                                 cu::Function function) = nullptr;
  cu::Result (*funcSetAttribute)(cu::Function function, int attribute,
                                 int value) = nullptr;
  cu::Result (*memAlloc)(cu::DevicePtr *pointer, size_t bytes) = nullptr;
  cu::Result (*memFree)(cu::DevicePtr pointer) = nullptr;
  cu::Result (*memGetInfo)(size_t *free, size_t *total) = nullptr;
  cu::Result (*memcpyHtoDAsync)(cu::DevicePtr dst, const void *src,
                                size_t bytes, cu::Stream stream) = nullptr;
  cu::Result (*memcpyDtoHAsync)(void *dst, cu::DevicePtr src, size_t bytes,
                                cu::Stream stream) = nullptr;
  cu::Result (*memsetD8Async)(cu::DevicePtr dst, unsigned char value,
                              size_t bytes, cu::Stream stream) = nullptr;
  cu::Result (*streamCreate)(cu::Stream *stream, unsigned flags) = nullptr;
  cu::Result (*streamDestroy)(cu::Stream stream) = nullptr;
  cu::Result (*streamSynchronize)(cu::Stream stream) = nullptr;
  cu::Result (*launchKernel)(cu::Function function, unsigned gridX,
                             unsigned gridY, unsigned gridZ, unsigned blockX,
                             unsigned blockY, unsigned blockZ,
                             unsigned sharedBytes, cu::Stream stream,
                             void **params, void **extra) = nullptr;
  cu::Result (*eventCreate)(cu::Event *event, unsigned flags) = nullptr;
  cu::Result (*eventDestroy)(cu::Event event) = nullptr;
  cu::Result (*eventRecord)(cu::Event event, cu::Stream stream) = nullptr;
  cu::Result (*eventElapsedTime)(float *ms, cu::Event start,
                                 cu::Event end) = nullptr;

  /// Optional (CUDA 12.0+ drivers): nullptr when the driver lacks it, which
  /// is only an error for an artifact with tensor maps on a device with TMA
  /// (compute capability >= 9.0). Enum parameters are passed as int.
  cu::Result (*tensorMapEncodeTiled)(
      cu::TensorMap *map, int dataType, uint32_t rank, void *address,
      const uint64_t *dims, const uint64_t *strides, const uint32_t *box,
      const uint32_t *elementStrides, int interleave, int swizzle,
      int l2Promotion, int oobFill) = nullptr;

private:
  CudaDriver() = default;
};

/// The CUDA arch whose code runs on a device of compute capability
/// `major`.`minor`: "sm_<major><minor>", with the arch-specific "sm_90a"
/// for 9.0 (wgmma needs it).
std::string cudaArchFor(int major, int minor);

} // namespace moec::runtime

#endif // MOEC_RUNTIME_CUDA_CUDADRIVER_H
