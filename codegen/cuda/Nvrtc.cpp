//===- Nvrtc.cpp - Compiling CUDA C++ with NVRTC ----------------*- C++ -*-===//
//
// One table of NVRTC entry points resolved with dlsym from the first libnvrtc
// that loads. Only the C ABI is used (opaque program handle, int result), so
// no CUDA header is needed to build this file.
//
//===----------------------------------------------------------------------===//

#include "codegen/cuda/Nvrtc.h"

#include "llvm/ADT/SmallVector.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

#include <dlfcn.h>
#include <memory>
#include <vector>

using namespace mlir::moec::cuda;

namespace {
using nvrtcProgram = struct _nvrtcProgram *;
using nvrtcResult = int;

/// The NVRTC entry points moec calls, resolved once.
struct NvrtcLibrary {
  void *handle = nullptr;
  std::string loadError;
  const char *(*getErrorString)(nvrtcResult) = nullptr;
  nvrtcResult (*createProgram)(nvrtcProgram *, const char *, const char *, int,
                               const char *const *,
                               const char *const *) = nullptr;
  nvrtcResult (*compileProgram)(nvrtcProgram, int,
                                const char *const *) = nullptr;
  nvrtcResult (*destroyProgram)(nvrtcProgram *) = nullptr;
  nvrtcResult (*getProgramLogSize)(nvrtcProgram, size_t *) = nullptr;
  nvrtcResult (*getProgramLog)(nvrtcProgram, char *) = nullptr;
  nvrtcResult (*getPTXSize)(nvrtcProgram, size_t *) = nullptr;
  nvrtcResult (*getPTX)(nvrtcProgram, char *) = nullptr;
  nvrtcResult (*getCUBINSize)(nvrtcProgram, size_t *) = nullptr;
  nvrtcResult (*getCUBIN)(nvrtcProgram, char *) = nullptr;
};

/// Candidate library names, the unversioned one first so that a developer's
/// LD_LIBRARY_PATH wins; then the toolkit's own directory.
std::vector<std::string> candidateLibraries() {
  std::vector<std::string> names = {"libnvrtc.so", "libnvrtc.so.13"};
  std::error_code ec;
  for (llvm::sys::fs::directory_iterator it("/usr/local/cuda/lib64", ec), end;
       !ec && it != end; it.increment(ec)) {
    llvm::StringRef file = llvm::sys::path::filename(it->path());
    // Skip libnvrtc-builtins and the `.alt` variant.
    if (file.starts_with("libnvrtc.so"))
      names.push_back(it->path());
  }
  return names;
}

template <typename Fn> bool resolve(void *handle, const char *name, Fn &fn) {
  fn = reinterpret_cast<Fn>(dlsym(handle, name));
  return fn != nullptr;
}

NvrtcLibrary loadLibrary() {
  NvrtcLibrary lib;
  std::string tried;
  for (const std::string &name : candidateLibraries()) {
    lib.handle = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (lib.handle)
      break;
    tried += (tried.empty() ? "" : ", ") + name;
  }
  if (!lib.handle) {
    lib.loadError = "could not load libnvrtc (tried " + tried + ")";
    return lib;
  }
  bool ok =
      resolve(lib.handle, "nvrtcGetErrorString", lib.getErrorString) &&
      resolve(lib.handle, "nvrtcCreateProgram", lib.createProgram) &&
      resolve(lib.handle, "nvrtcCompileProgram", lib.compileProgram) &&
      resolve(lib.handle, "nvrtcDestroyProgram", lib.destroyProgram) &&
      resolve(lib.handle, "nvrtcGetProgramLogSize", lib.getProgramLogSize) &&
      resolve(lib.handle, "nvrtcGetProgramLog", lib.getProgramLog) &&
      resolve(lib.handle, "nvrtcGetPTXSize", lib.getPTXSize) &&
      resolve(lib.handle, "nvrtcGetPTX", lib.getPTX) &&
      resolve(lib.handle, "nvrtcGetCUBINSize", lib.getCUBINSize) &&
      resolve(lib.handle, "nvrtcGetCUBIN", lib.getCUBIN);
  if (!ok) {
    const char *err = dlerror();
    lib.loadError = std::string("libnvrtc lacks a required symbol: ") +
                    (err ? err : "unknown");
    dlclose(lib.handle);
    lib.handle = nullptr;
  }
  return lib;
}

/// The process-wide library; loaded once, thread-safely, on first use.
const NvrtcLibrary &getLibrary() {
  static const NvrtcLibrary lib = loadLibrary();
  return lib;
}

llvm::Error nvrtcError(llvm::StringRef kernelName, const llvm::Twine &what) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                 "NVRTC: kernel '" + kernelName + "': " + what);
}

enum class Output { Ptx, Cubin };

llvm::Expected<std::string> compile(llvm::StringRef source,
                                    llvm::StringRef kernelName,
                                    const TargetInfo &target, Output output) {
  const NvrtcLibrary &lib = getLibrary();
  if (!lib.handle)
    return nvrtcError(kernelName, "NVRTC unavailable: " + lib.loadError);
  if (output == Output::Cubin && !target.gpuArchitecture.starts_with("sm_"))
    return nvrtcError(kernelName, "no cubin for virtual architecture '" +
                                      target.gpuArchitecture + "'");

  std::string src = source.str(), name = (kernelName + ".cu").str();
  nvrtcProgram prog = nullptr;
  if (nvrtcResult rc = lib.createProgram(&prog, src.c_str(), name.c_str(), 0,
                                         nullptr, nullptr))
    return nvrtcError(kernelName, llvm::Twine("nvrtcCreateProgram failed: ") +
                                      lib.getErrorString(rc));
  // Destroy the program on every path out.
  auto destroy = [&](nvrtcProgram *p) { lib.destroyProgram(p); };
  std::unique_ptr<nvrtcProgram, decltype(destroy)> guard(&prog, destroy);

  std::vector<std::string> options = {
      "--gpu-architecture=" + target.gpuArchitecture.str(), "--std=c++17"};
  // The toolkit's headers, where present, for kernels that include them.
  if (llvm::sys::fs::is_directory("/usr/local/cuda/include"))
    options.push_back("-I/usr/local/cuda/include");
  llvm::SmallVector<const char *> argv;
  for (const std::string &option : options)
    argv.push_back(option.c_str());

  nvrtcResult rc = lib.compileProgram(prog, argv.size(), argv.data());
  if (rc) {
    size_t logSize = 0;
    std::string log;
    if (!lib.getProgramLogSize(prog, &logSize) && logSize > 1) {
      log.resize(logSize);
      lib.getProgramLog(prog, log.data());
      log.resize(logSize - 1);
    }
    return nvrtcError(kernelName, llvm::Twine("compilation for ") +
                                      target.gpuArchitecture + " failed (" +
                                      lib.getErrorString(rc) + "):\n" + log);
  }

  bool ptx = output == Output::Ptx;
  size_t size = 0;
  if ((rc = ptx ? lib.getPTXSize(prog, &size) : lib.getCUBINSize(prog, &size)))
    return nvrtcError(kernelName, llvm::Twine("could not get output size: ") +
                                      lib.getErrorString(rc));
  std::string result(size, '\0');
  if ((rc = ptx ? lib.getPTX(prog, result.data())
                : lib.getCUBIN(prog, result.data())))
    return nvrtcError(kernelName, llvm::Twine("could not get output: ") +
                                      lib.getErrorString(rc));
  // PTX comes NUL-terminated; a cubin is binary and kept whole.
  if (ptx && !result.empty() && result.back() == '\0')
    result.pop_back();
  return result;
}
} // namespace

bool mlir::moec::cuda::isNvrtcAvailable(std::string *why) {
  const NvrtcLibrary &lib = getLibrary();
  if (!lib.handle && why)
    *why = lib.loadError;
  return lib.handle != nullptr;
}

llvm::Expected<std::string>
mlir::moec::cuda::compileToPtx(llvm::StringRef source,
                               llvm::StringRef kernelName,
                               const TargetInfo &target) {
  return compile(source, kernelName, target, Output::Ptx);
}

llvm::Expected<std::string>
mlir::moec::cuda::compileToCubin(llvm::StringRef source,
                                 llvm::StringRef kernelName,
                                 const TargetInfo &target) {
  return compile(source, kernelName, target, Output::Cubin);
}
