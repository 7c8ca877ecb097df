//===- SharedObject.cpp - Shared object loaded from memory ------*- C++ -*-===//
//
// memfd_create + write + dlopen("/proc/self/fd/N"). RTLD_NOW resolves every
// undefined symbol at load time, so a library that needs something the
// process lacks fails here, with dlerror's message, not in the middle of a
// run; RTLD_LOCAL keeps two models' kernels from interposing each other.
//
//===----------------------------------------------------------------------===//

#include "runtime/cpu/SharedObject.h"

#include <cerrno>
#include <cstring>
#include <dlfcn.h>
#include <sys/mman.h>
#include <unistd.h>

namespace moec::runtime {

StatusOr<std::unique_ptr<SharedObject>>
SharedObject::loadFromMemory(const std::string &name, const void *data,
                             size_t size) {
  if (size < 4 || std::memcmp(data,
                              "\x7f"
                              "ELF",
                              4) != 0)
    return makeError(StatusCode::kCorrupt, name, ": not an ELF shared object");
  std::unique_ptr<SharedObject> so(new SharedObject());
  so->name_ = name;
  so->fd_ = memfd_create(name.c_str(), MFD_CLOEXEC);
  if (so->fd_ < 0)
    return makeError(StatusCode::kUnavailable, name,
                     ": memfd_create failed: ", std::strerror(errno));
  const auto *p = static_cast<const uint8_t *>(data);
  for (size_t left = size; left > 0;) {
    ssize_t n = ::write(so->fd_, p, left);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return makeError(StatusCode::kIoError, name,
                       ": writing to the memfd failed: ", std::strerror(errno));
    p += n;
    left -= size_t(n);
  }
  so->path_ = strCat("/proc/self/fd/", so->fd_);
  dlerror();
  so->handle_ = dlopen(so->path_.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!so->handle_) {
    const char *err = dlerror();
    return makeError(StatusCode::kCorrupt, name,
                     ": dlopen failed: ", err ? err : "unknown error");
  }
  return so;
}

SharedObject::~SharedObject() {
  if (handle_)
    dlclose(handle_);
  if (fd_ >= 0)
    ::close(fd_);
}

StatusOr<void *> SharedObject::lookup(const std::string &symbol) const {
  dlerror();
  void *address = dlsym(handle_, symbol.c_str());
  if (!address)
    return makeError(StatusCode::kNotFound, name_, ": kernel symbol '", symbol,
                     "' is not exported");
  // dlsym also searches the library's dependencies; a step must name a
  // function of the artifact's own code, never e.g. libc's `free`.
  Dl_info info;
  if (dladdr(address, &info) == 0 || !info.dli_fname || path_ != info.dli_fname)
    return makeError(StatusCode::kNotFound, name_, ": kernel symbol '", symbol,
                     "' is not defined by this library (it resolves to ",
                     info.dli_fname ? info.dli_fname : "unknown", ")");
  return address;
}

} // namespace moec::runtime
