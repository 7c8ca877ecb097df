//===- KernelCache.h - On-disk cache of JIT-compiled cubins -----*- C++ -*-===//
//
// The runtime JIT-compiles an artifact's `kernels.cu` with NVRTC when the
// artifact carries no cubin for the device; the result is kept in a per-user
// cache directory so that the next load is a file read (DESIGN.md §7). An
// entry's name is the SHA-256 of everything that determines the cubin; it is
// written to a private temp file, fsynced and published by an atomic
// rename, and checked (magic, key, length, CRC-32) on every read, so that a
// torn or corrupted entry is recompiled and replaced, never loaded.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_RUNTIME_NVRTC_KERNELCACHE_H
#define MOEC_RUNTIME_NVRTC_KERNELCACHE_H

#include "runtime/support/Checksum.h"
#include "runtime/support/Status.h"

#include <string>
#include <string_view>
#include <vector>

namespace moec::runtime {

/// This runtime's build id (compiler version and source revision), part of
/// every cache key, so that a rebuilt runtime never reuses stale entries.
const char *runtimeBuildId();

/// The default cache directory: `$MOEC_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/moec`, else `$HOME/.cache/moec` (the passwd entry's home
/// when `HOME` is unset). Empty when none can be determined.
std::string defaultKernelCacheDir();

/// The cache key: SHA-256 over the length-prefixed fields (a format tag,
/// `programName`, `source`, `nvrtcVersion`, `arch`, each of `options`,
/// `buildId`).
Sha256Digest kernelCacheKey(std::string_view programName,
                            std::string_view source,
                            std::string_view nvrtcVersion,
                            std::string_view arch,
                            const std::vector<std::string> &options,
                            std::string_view buildId);

/// Size of an entry's header: magic "MOECKC01", format 1 (u32), CRC-32 of
/// the payload (u32), payload length (u64), the 32-byte key, 8 zero bytes.
constexpr size_t kKernelCacheHeaderSize = 64;

/// Creates `dir` (and missing parents) with mode 0700 and checks that it is
/// a directory (not a symlink) owned by this user and closed to group and
/// others. `kIoError` / `kInvalidArgument` saying why when it is not.
Status prepareKernelCacheDir(const std::string &dir);

/// What a cache lookup found.
enum class CacheLookup { kMiss, kHit, kCorrupt };

/// Reads the entry for `key` in `dir` into `payload`: kHit when its header
/// and checksum are intact, kCorrupt when it exists but is not (truncated,
/// another key, bad CRC), kMiss when there is none.
CacheLookup readKernelCacheEntry(const std::string &dir,
                                 const Sha256Digest &key, std::string &payload);

/// Writes `payload` as the entry for `key` in `dir`: a private temp file
/// (`.tmp-*`, mode 0600), fsync, atomic rename over any old entry, fsync of
/// the directory. The temp file is removed on failure.
Status writeKernelCacheEntry(const std::string &dir, const Sha256Digest &key,
                             std::string_view payload);

/// The path of the entry for `key` in `dir`: `dir/<64 hex digits>.cubin`.
std::string kernelCacheEntryPath(const std::string &dir,
                                 const Sha256Digest &key);

/// Where a cubin came from.
enum class CubinOrigin {
  /// Read from the cache.
  kCacheHit,
  /// Compiled and stored (no entry existed).
  kCompiled,
  /// Compiled and stored over a corrupt entry.
  kReplacedCorrupt,
  /// Compiled without caching (cache disabled or unusable; see `warning`).
  kUncached,
};

/// A cubin from `compileCached`.
struct CachedCubin {
  /// The cubin (an ELF image).
  std::string cubin;
  /// Where it came from.
  CubinOrigin origin = CubinOrigin::kUncached;
  /// Why the cache was not used or not written (empty when it was).
  std::string warning;
  /// The entry's path (empty when uncached).
  std::string entryPath;
};

/// Where and whether to cache.
struct KernelCacheOptions {
  /// The cache directory; empty means `defaultKernelCacheDir()`.
  std::string directory;
  /// False compiles every time.
  bool enabled = true;
};

/// Returns the cubin of `source` for `arch` (NVRTC's spelling, e.g.
/// "sm_90a"): from the cache when a valid entry exists, else compiled with
/// NVRTC (`nvrtcOptions(arch)`) and stored. A cache that cannot be used
/// (unsafe permissions, read-only disk) only adds a `warning`; NVRTC being
/// unavailable or the compile failing is an error.
StatusOr<CachedCubin> compileCached(std::string_view source,
                                    std::string_view programName,
                                    std::string_view arch,
                                    const KernelCacheOptions &options = {});

} // namespace moec::runtime

#endif // MOEC_RUNTIME_NVRTC_KERNELCACHE_H
