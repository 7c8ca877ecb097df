//===- Nvrtc.cpp - NVRTC loaded with dlopen ---------------------*- C++ -*-===//
//
// One table of NVRTC entry points resolved with dlsym from the first libnvrtc
// that loads: the unversioned name first (so that a developer's
// LD_LIBRARY_PATH wins), then the versioned sonames, then the toolkit's own
// lib64. Only the C ABI is used (opaque program handle, int result), so no
// CUDA header is needed to build this file.
//
//===----------------------------------------------------------------------===//

#include "runtime/nvrtc/Nvrtc.h"

#include <dirent.h>
#include <dlfcn.h>
#include <memory>

namespace moec::runtime {

namespace {
using nvrtcProgram = struct _nvrtcProgram *;
using nvrtcResult = int;
} // namespace

/// The NVRTC entry points moec calls.
struct Nvrtc::Symbols {
  void *handle = nullptr;
  const char *(*getErrorString)(nvrtcResult) = nullptr;
  nvrtcResult (*version)(int *, int *) = nullptr;
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

std::vector<std::string> nvrtcOptions(std::string_view arch) {
  return {"--std=c++17", "--gpu-architecture=" + std::string(arch),
          "-default-device"};
}

namespace {

std::vector<std::string> candidateLibraries() {
  std::vector<std::string> names = {"libnvrtc.so", "libnvrtc.so.13",
                                    "libnvrtc.so.12"};
  const char *dir = "/usr/local/cuda/lib64";
  if (DIR *d = opendir(dir)) {
    while (dirent *e = readdir(d)) {
      std::string file = e->d_name;
      // Skip libnvrtc-builtins and the `.alt` variant.
      if (file.rfind("libnvrtc.so", 0) == 0)
        names.push_back(std::string(dir) + "/" + file);
    }
    closedir(d);
  }
  return names;
}

template <typename Fn> bool resolve(void *handle, const char *name, Fn &fn) {
  fn = reinterpret_cast<Fn>(dlsym(handle, name));
  return fn != nullptr;
}

struct Loaded {
  Nvrtc::Symbols symbols;
  std::string error;
};

Loaded load() {
  Loaded out;
  Nvrtc::Symbols &s = out.symbols;
  std::string tried;
  for (const std::string &name : candidateLibraries()) {
    s.handle = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (s.handle)
      break;
    tried += (tried.empty() ? "" : ", ") + name;
  }
  if (!s.handle) {
    out.error = "could not load libnvrtc (tried " + tried + ")";
    return out;
  }
  bool ok = resolve(s.handle, "nvrtcGetErrorString", s.getErrorString) &&
            resolve(s.handle, "nvrtcVersion", s.version) &&
            resolve(s.handle, "nvrtcCreateProgram", s.createProgram) &&
            resolve(s.handle, "nvrtcCompileProgram", s.compileProgram) &&
            resolve(s.handle, "nvrtcDestroyProgram", s.destroyProgram) &&
            resolve(s.handle, "nvrtcGetProgramLogSize", s.getProgramLogSize) &&
            resolve(s.handle, "nvrtcGetProgramLog", s.getProgramLog) &&
            resolve(s.handle, "nvrtcGetPTXSize", s.getPTXSize) &&
            resolve(s.handle, "nvrtcGetPTX", s.getPTX) &&
            resolve(s.handle, "nvrtcGetCUBINSize", s.getCUBINSize) &&
            resolve(s.handle, "nvrtcGetCUBIN", s.getCUBIN);
  if (!ok) {
    const char *err = dlerror();
    out.error = std::string("libnvrtc lacks a required symbol: ") +
                (err ? err : "unknown");
    dlclose(s.handle);
    s.handle = nullptr;
  }
  return out;
}

} // namespace

StatusOr<const Nvrtc *> Nvrtc::get() {
  // Loaded once; the handle stays open for the life of the process.
  static const Loaded loaded = load();
  static const Nvrtc *instance = [] {
    if (!loaded.symbols.handle)
      return static_cast<Nvrtc *>(nullptr);
    auto *nvrtc = new Nvrtc();
    nvrtc->symbols_ = &loaded.symbols;
    int major = 0, minor = 0;
    if (loaded.symbols.version(&major, &minor) == 0)
      nvrtc->version_ = strCat(major, ".", minor);
    else
      nvrtc->version_ = "unknown";
    return nvrtc;
  }();
  if (!instance)
    return makeError(StatusCode::kUnavailable,
                     "NVRTC unavailable: ", loaded.error);
  return instance;
}

StatusOr<std::string> Nvrtc::compile(std::string_view source,
                                     std::string_view programName,
                                     std::string_view arch,
                                     NvrtcOutput output) const {
  const Symbols &lib = *symbols_;
  if (output == NvrtcOutput::kCubin && arch.rfind("sm_", 0) != 0)
    return makeError(StatusCode::kInvalidArgument,
                     "no cubin for virtual architecture '", arch, "'");
  std::string src(source), name(programName);
  nvrtcProgram prog = nullptr;
  if (nvrtcResult rc = lib.createProgram(&prog, src.c_str(), name.c_str(), 0,
                                         nullptr, nullptr))
    return makeError(StatusCode::kInternal,
                     "nvrtcCreateProgram failed: ", lib.getErrorString(rc));
  // Destroy the program on every path out.
  auto destroy = [&](nvrtcProgram *p) { lib.destroyProgram(p); };
  std::unique_ptr<nvrtcProgram, decltype(destroy)> guard(&prog, destroy);

  std::vector<std::string> options = nvrtcOptions(arch);
  std::vector<const char *> argv;
  for (const std::string &option : options)
    argv.push_back(option.c_str());
  nvrtcResult rc = lib.compileProgram(prog, int(argv.size()), argv.data());
  if (rc) {
    size_t logSize = 0;
    std::string log;
    if (!lib.getProgramLogSize(prog, &logSize) && logSize > 1) {
      log.resize(logSize);
      lib.getProgramLog(prog, log.data());
      log.resize(logSize - 1);
    }
    return makeError(StatusCode::kInternal, "compilation for ", arch,
                     " failed (", lib.getErrorString(rc), "):\n", log);
  }

  bool ptx = output == NvrtcOutput::kPtx;
  size_t size = 0;
  if ((rc = ptx ? lib.getPTXSize(prog, &size) : lib.getCUBINSize(prog, &size)))
    return makeError(StatusCode::kInternal,
                     "could not get the output size: ", lib.getErrorString(rc));
  std::string result(size, '\0');
  if ((rc = ptx ? lib.getPTX(prog, result.data())
                : lib.getCUBIN(prog, result.data())))
    return makeError(StatusCode::kInternal,
                     "could not get the output: ", lib.getErrorString(rc));
  // PTX comes NUL-terminated; a cubin is binary and kept whole.
  if (ptx && !result.empty() && result.back() == '\0')
    result.pop_back();
  return result;
}

} // namespace moec::runtime
