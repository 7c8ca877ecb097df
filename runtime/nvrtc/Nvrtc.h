//===- Nvrtc.h - NVRTC loaded with dlopen -----------------------*- C++ -*-===//
//
// The one place libnvrtc is loaded (dlopen, so that nothing links against
// CUDA) and called: CUDA C++ text in, PTX or a cubin out. The compiler
// (codegen/cuda/Nvrtc.h, which wraps this) and the runtime's JIT use the
// same options, `nvrtcOptions`, so that a cubin built by `moec` and one
// JIT-compiled on the target machine come from the same compile.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_RUNTIME_NVRTC_NVRTC_H
#define MOEC_RUNTIME_NVRTC_NVRTC_H

#include "runtime/support/Status.h"

#include <string>
#include <string_view>
#include <vector>

namespace moec::runtime {

/// The NVRTC options of every compile of moec CUDA code, in order:
/// `--std=c++17 --gpu-architecture=<arch> -default-device`. `arch` is
/// NVRTC's spelling ("sm_89", "sm_90a", "compute_90").
std::vector<std::string> nvrtcOptions(std::string_view arch);

/// What `Nvrtc::compile` produces.
enum class NvrtcOutput { kPtx, kCubin };

/// libnvrtc's entry points, resolved once per process.
class Nvrtc {
public:
  /// The process-wide library, loaded (thread-safely) on first use. A
  /// missing or incomplete libnvrtc is `kUnavailable`, saying what was
  /// tried.
  static StatusOr<const Nvrtc *> get();

  /// NVRTC's version, "13.0".
  const std::string &version() const { return version_; }

  /// Compiles `source` (one translation unit, called `programName` in
  /// NVRTC's log) for `arch` with `nvrtcOptions(arch)`. A failed compile is
  /// `kInternal` with a message "compilation for <arch> failed (<NVRTC
  /// error>):" followed by NVRTC's log; callers put their own prefix in
  /// front (which kernel, which artifact).
  StatusOr<std::string> compile(std::string_view source,
                                std::string_view programName,
                                std::string_view arch,
                                NvrtcOutput output) const;

  struct Symbols;

private:
  Nvrtc() = default;
  const Symbols *symbols_ = nullptr;
  std::string version_;
};

} // namespace moec::runtime

#endif // MOEC_RUNTIME_NVRTC_NVRTC_H
