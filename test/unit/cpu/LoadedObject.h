//===- LoadedObject.h - Load a shared object from memory --------*- C++ -*-===//
//
// Test helper: loads the bytes of a shared object through an anonymous
// memory file (`memfd_create` + `dlopen("/proc/self/fd/N")`), as the runtime
// does, and looks up kernels with the CPU kernel ABI.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_TEST_UNIT_CPU_LOADEDOBJECT_H
#define MOEC_TEST_UNIT_CPU_LOADEDOBJECT_H

#include <dlfcn.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <string>

namespace moec::test {

/// The runtime's CPU kernel ABI.
using KernelFn = void (*)(void *const *args, int64_t tokens);

/// A shared object loaded from bytes; `handle` is null and `error` says why
/// when loading failed.
class LoadedObject {
public:
  explicit LoadedObject(const std::string &bytes) {
    int fd = memfd_create("moec-cpu-test", MFD_CLOEXEC);
    if (fd < 0) {
      error = "memfd_create failed";
      return;
    }
    size_t written = 0;
    while (written < bytes.size()) {
      ssize_t n = write(fd, bytes.data() + written, bytes.size() - written);
      if (n <= 0)
        break;
      written += static_cast<size_t>(n);
    }
    if (written == bytes.size()) {
      std::string path = "/proc/self/fd/" + std::to_string(fd);
      handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (!handle)
        error = dlerror();
    } else {
      error = "short write to the memory file";
    }
    // dlopen keeps its own mapping; the descriptor is no longer needed.
    close(fd);
  }
  LoadedObject(const LoadedObject &) = delete;
  LoadedObject &operator=(const LoadedObject &) = delete;
  ~LoadedObject() {
    if (handle)
      dlclose(handle);
  }

  /// The exported kernel `name`, or null.
  KernelFn kernel(const char *name) const {
    return handle ? reinterpret_cast<KernelFn>(dlsym(handle, name)) : nullptr;
  }

  void *handle = nullptr;
  std::string error;
};

} // namespace moec::test

#endif // MOEC_TEST_UNIT_CPU_LOADEDOBJECT_H
