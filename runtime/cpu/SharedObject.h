//===- SharedObject.h - Shared object loaded from memory --------*- C++ -*-===//
//
// Loads the `cpu.so` bytes of an artifact without a file on disk: they are
// written to an anonymous `memfd_create` file that `dlopen` opens through
// `/proc/self/fd/N`. The descriptor stays open until the library is closed:
// glibc recognises already-loaded libraries by path, so a reused descriptor
// number would otherwise hand a second model the first model's library.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_RUNTIME_CPU_SHAREDOBJECT_H
#define MOEC_RUNTIME_CPU_SHAREDOBJECT_H

#include "runtime/support/Status.h"

#include <cstddef>
#include <memory>
#include <string>

namespace moec::runtime {

/// A `dlopen`ed shared object whose bytes came from memory.
class SharedObject {
public:
  /// Loads the `size` bytes at `data` (an ELF shared object); `name` labels
  /// the memfd and the messages.
  static StatusOr<std::unique_ptr<SharedObject>>
  loadFromMemory(const std::string &name, const void *data, size_t size);

  /// `dlclose`s the library, then closes its descriptor.
  ~SharedObject();
  SharedObject(const SharedObject &) = delete;
  SharedObject &operator=(const SharedObject &) = delete;

  /// The address of the exported symbol `symbol`, or a `kNotFound` error
  /// naming it.
  StatusOr<void *> lookup(const std::string &symbol) const;

private:
  SharedObject() = default;

  std::string name_;
  // "/proc/self/fd/N", the name the dynamic loader knows the library by.
  std::string path_;
  void *handle_ = nullptr;
  int fd_ = -1;
};

} // namespace moec::runtime

#endif // MOEC_RUNTIME_CPU_SHAREDOBJECT_H
