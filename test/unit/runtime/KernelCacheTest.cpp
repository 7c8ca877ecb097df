//===- KernelCacheTest.cpp - NVRTC loader and the kernel cache --*- C++ -*-===//
//
// The on-disk cache of JIT-compiled cubins (runtime/nvrtc/KernelCache.h):
// miss then hit, a corrupt or truncated entry recompiled and replaced, a
// directory with unsafe permissions refused (compiling without the cache),
// the key's ingredients, and 16 processes compiling the same and different
// sources through one directory at once. Needs libnvrtc (no GPU); skips
// without it.
//
//===----------------------------------------------------------------------===//

#include "TestModel.h"

#include "runtime/executor/WeightFill.h"
#include "runtime/nvrtc/KernelCache.h"
#include "runtime/nvrtc/Nvrtc.h"

#include <gtest/gtest.h>

#include <dirent.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

using namespace moec::runtime;
using namespace moec::runtime::test;

namespace {

#define SKIP_WITHOUT_NVRTC()                                                   \
  do {                                                                         \
    auto nvrtc = Nvrtc::get();                                                 \
    if (!nvrtc.isOk())                                                         \
      GTEST_SKIP() << nvrtc.status().message();                                \
  } while (false)

std::string source(int variant) {
  return "extern \"C\" __global__ void scale(float *x, long long n) {\n"
         "  long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;\n"
         "  if (i < n) x[i] *= " +
         std::to_string(variant + 2) + ".0f;\n}\n";
}

bool isElf(const std::string &bytes) {
  return bytes.size() > 4 && bytes.compare(0, 4,
                                           "\x7f"
                                           "ELF") == 0;
}

// A cache folder inside a TempDir (created by the cache with mode 0700).
struct CacheDir {
  TempDir base;
  std::string path = base.file("cache");
  ~CacheDir() {
    std::string cmd = "rm -rf '" + path + "'";
    if (std::system(cmd.c_str()) != 0)
      ADD_FAILURE() << "cannot remove " << path;
  }
  std::vector<std::string> list() const {
    std::vector<std::string> names;
    if (DIR *d = opendir(path.c_str())) {
      while (dirent *e = readdir(d))
        if (std::string(e->d_name) != "." && std::string(e->d_name) != "..")
          names.push_back(e->d_name);
      closedir(d);
    }
    return names;
  }
};

TEST(Nvrtc, OptionsAreTheSharedContract) {
  EXPECT_EQ(
      nvrtcOptions("sm_90a"),
      (std::vector<std::string>{"--std=c++17", "--gpu-architecture=sm_90a",
                                "-default-device"}));
}

TEST(Nvrtc, CompileErrorCarriesTheLog) {
  SKIP_WITHOUT_NVRTC();
  auto cubin = (*Nvrtc::get())
                   ->compile("__global__ void k() { nope = 1; }", "bad.cu",
                             "sm_89", NvrtcOutput::kCubin);
  ASSERT_FALSE(cubin.isOk());
  EXPECT_EQ(cubin.status().code(), StatusCode::kInternal);
  EXPECT_NE(cubin.status().message().find("compilation for sm_89 failed"),
            std::string::npos);
  EXPECT_NE(cubin.status().message().find("nope"), std::string::npos);
}

TEST(Nvrtc, WeightFillKernelCompilesForEveryArch) {
  SKIP_WITHOUT_NVRTC();
  for (const char *arch : {"sm_80", "sm_89", "sm_90a"}) {
    auto ptx = (*Nvrtc::get())
                   ->compile(weightFillKernelSource(), "fill.cu", arch,
                             NvrtcOutput::kPtx);
    ASSERT_TRUE(ptx.isOk()) << arch << ": " << ptx.status().message();
    EXPECT_NE(ptx->find(".entry moec_fill_weight"), std::string::npos);
  }
}

TEST(KernelCache, KeyCoversEveryIngredient) {
  std::vector<std::string> opts = nvrtcOptions("sm_89");
  Sha256Digest base =
      kernelCacheKey("kernels.cu", "src", "13.0", "sm_89", opts, "id");
  EXPECT_EQ(base,
            kernelCacheKey("kernels.cu", "src", "13.0", "sm_89", opts, "id"));
  EXPECT_NE(base,
            kernelCacheKey("kernels.cu", "src2", "13.0", "sm_89", opts, "id"));
  EXPECT_NE(base,
            kernelCacheKey("kernels.cu", "src", "13.1", "sm_89", opts, "id"));
  EXPECT_NE(base,
            kernelCacheKey("kernels.cu", "src", "13.0", "sm_80", opts, "id"));
  EXPECT_NE(base, kernelCacheKey("kernels.cu", "src", "13.0", "sm_89",
                                 nvrtcOptions("sm_80"), "id"));
  EXPECT_NE(base,
            kernelCacheKey("kernels.cu", "src", "13.0", "sm_89", opts, "id2"));
  EXPECT_NE(base,
            kernelCacheKey("other.cu", "src", "13.0", "sm_89", opts, "id"));
  // Field boundaries matter ("ab" + "c" is not "a" + "bc").
  EXPECT_NE(kernelCacheKey("ab", "c", "", "", {}, ""),
            kernelCacheKey("a", "bc", "", "", {}, ""));
  EXPECT_NE(std::string(runtimeBuildId()).find("moec "), std::string::npos);
}

TEST(KernelCache, DefaultDirectoryFollowsTheEnvironment) {
  std::string saved[3];
  const char *names[3] = {"MOEC_CACHE_DIR", "XDG_CACHE_HOME", "HOME"};
  for (int i = 0; i < 3; ++i)
    if (const char *v = getenv(names[i]))
      saved[i] = v;
  setenv("MOEC_CACHE_DIR", "/x/moec-cache", 1);
  EXPECT_EQ(defaultKernelCacheDir(), "/x/moec-cache");
  unsetenv("MOEC_CACHE_DIR");
  setenv("XDG_CACHE_HOME", "/x/xdg", 1);
  EXPECT_EQ(defaultKernelCacheDir(), "/x/xdg/moec");
  unsetenv("XDG_CACHE_HOME");
  setenv("HOME", "/x/home", 1);
  EXPECT_EQ(defaultKernelCacheDir(), "/x/home/.cache/moec");
  for (int i = 0; i < 3; ++i) {
    if (saved[i].empty())
      unsetenv(names[i]);
    else
      setenv(names[i], saved[i].c_str(), 1);
  }
}

TEST(KernelCache, MissThenHit) {
  SKIP_WITHOUT_NVRTC();
  CacheDir dir;
  KernelCacheOptions options{dir.path, true};
  auto first = compileCached(source(0), "kernels.cu", "sm_89", options);
  ASSERT_TRUE(first.isOk()) << first.status().message();
  EXPECT_EQ(first->origin, CubinOrigin::kCompiled);
  EXPECT_TRUE(first->warning.empty()) << first->warning;
  EXPECT_TRUE(isElf(first->cubin));
  struct stat st;
  ASSERT_EQ(stat(dir.path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ASSERT_EQ(stat(first->entryPath.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  auto second = compileCached(source(0), "kernels.cu", "sm_89", options);
  ASSERT_TRUE(second.isOk());
  EXPECT_EQ(second->origin, CubinOrigin::kCacheHit);
  EXPECT_EQ(second->cubin, first->cubin);
  // Another arch is another entry.
  auto other = compileCached(source(0), "kernels.cu", "sm_80", options);
  ASSERT_TRUE(other.isOk());
  EXPECT_EQ(other->origin, CubinOrigin::kCompiled);
  EXPECT_EQ(dir.list().size(), 2u);
  // Disabled: compiled, nothing written.
  auto off = compileCached(source(1), "kernels.cu", "sm_89",
                           KernelCacheOptions{dir.path, false});
  ASSERT_TRUE(off.isOk());
  EXPECT_EQ(off->origin, CubinOrigin::kUncached);
  EXPECT_EQ(dir.list().size(), 2u);
}

TEST(KernelCache, CorruptOrTruncatedEntryIsRecompiledAndReplaced) {
  SKIP_WITHOUT_NVRTC();
  CacheDir dir;
  KernelCacheOptions options{dir.path, true};
  auto good = compileCached(source(0), "kernels.cu", "sm_89", options);
  ASSERT_TRUE(good.isOk());
  std::vector<uint8_t> bytes = readFile(good->entryPath);
  ASSERT_GT(bytes.size(), kKernelCacheHeaderSize);
  // A flipped payload byte (CRC), a flipped key byte, a truncation, an
  // empty file, garbage.
  std::vector<std::vector<uint8_t>> damaged;
  damaged.push_back(bytes);
  damaged.back()[bytes.size() / 2] ^= 0x10;
  damaged.push_back(bytes);
  damaged.back()[30] ^= 0x01;
  damaged.push_back(
      std::vector<uint8_t>(bytes.begin(), bytes.begin() + bytes.size() / 3));
  damaged.push_back({});
  damaged.push_back(std::vector<uint8_t>(100, 'x'));
  for (size_t i = 0; i < damaged.size(); ++i) {
    ASSERT_TRUE(writeFile(good->entryPath, damaged[i]));
    auto again = compileCached(source(0), "kernels.cu", "sm_89", options);
    ASSERT_TRUE(again.isOk()) << i;
    EXPECT_EQ(again->origin, CubinOrigin::kReplacedCorrupt) << i;
    EXPECT_EQ(again->cubin, good->cubin) << i;
    EXPECT_EQ(readFile(good->entryPath), bytes) << i;
  }
  auto hit = compileCached(source(0), "kernels.cu", "sm_89", options);
  ASSERT_TRUE(hit.isOk());
  EXPECT_EQ(hit->origin, CubinOrigin::kCacheHit);
}

TEST(KernelCache, EntryFormatIsChecked) {
  CacheDir dir;
  ASSERT_TRUE(prepareKernelCacheDir(dir.path).isOk());
  Sha256Digest key = Sha256::hash("k", 1), other = Sha256::hash("o", 1);
  ASSERT_TRUE(writeKernelCacheEntry(dir.path, key, "payload bytes").isOk());
  std::string payload;
  EXPECT_EQ(readKernelCacheEntry(dir.path, key, payload), CacheLookup::kHit);
  EXPECT_EQ(payload, "payload bytes");
  EXPECT_EQ(readKernelCacheEntry(dir.path, other, payload), CacheLookup::kMiss);
  // An entry renamed to another key's name is not that key's entry.
  ASSERT_EQ(rename(kernelCacheEntryPath(dir.path, key).c_str(),
                   kernelCacheEntryPath(dir.path, other).c_str()),
            0);
  EXPECT_EQ(readKernelCacheEntry(dir.path, other, payload),
            CacheLookup::kCorrupt);
  // No temp files are left behind.
  for (const std::string &name : dir.list())
    EXPECT_EQ(name.rfind(".tmp-", 0), std::string::npos) << name;
}

TEST(KernelCache, UnsafeDirectoryIsRefused) {
  TempDir base;
  std::string open = base.file("open");
  ASSERT_EQ(mkdir(open.c_str(), 0700), 0);
  ASSERT_EQ(chmod(open.c_str(), 0755), 0);
  Status s = prepareKernelCacheDir(open);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "kernel cache directory '" + open +
                             "' is accessible by group or others (mode "
                             "0755); run chmod 700 on it");
  // A symlink to a good directory is refused too.
  std::string good = base.file("good"), link = base.file("link");
  ASSERT_EQ(mkdir(good.c_str(), 0700), 0);
  ASSERT_EQ(symlink(good.c_str(), link.c_str()), 0);
  EXPECT_FALSE(prepareKernelCacheDir(link).isOk());
  EXPECT_TRUE(prepareKernelCacheDir(good).isOk());
  EXPECT_EQ(prepareKernelCacheDir("relative/dir").code(),
            StatusCode::kInvalidArgument);
  // A directory owned by someone else (root's /, when not root).
  if (geteuid() != 0) {
    Status owned = prepareKernelCacheDir("/");
    EXPECT_NE(owned.message().find("is owned by uid 0"), std::string::npos);
  }

  // compileCached falls back to compiling without the cache, and says so.
  auto nvrtc = Nvrtc::get();
  if (nvrtc.isOk()) {
    auto c = compileCached(source(0), "kernels.cu", "sm_89",
                           KernelCacheOptions{open, true});
    ASSERT_TRUE(c.isOk());
    EXPECT_EQ(c->origin, CubinOrigin::kUncached);
    EXPECT_NE(c->warning.find("kernel cache disabled: kernel cache directory"),
              std::string::npos)
        << c->warning;
    EXPECT_TRUE(isElf(c->cubin));
  }
  ::unlink(link.c_str());
  ::rmdir(good.c_str());
  ::rmdir(open.c_str());
}

// 16 processes (kernel-cache-worker) compile through one cache at once: 8
// the same source, 8 one of four others. Every process gets a valid cubin,
// equal ones for equal sources; afterwards the cache holds exactly one
// valid entry per source and no temp files.
TEST(KernelCache, ManyProcessesShareOneCache) {
  SKIP_WITHOUT_NVRTC();
  CacheDir dir;
  TempDir out;
  constexpr int kProcesses = 16;
  std::vector<pid_t> pids;
  std::vector<std::string> sourceFiles;
  for (int v = 0; v < 5; ++v) {
    sourceFiles.push_back(out.file("src" + std::to_string(v) + ".cu"));
    std::string text = source(v);
    ASSERT_TRUE(writeFile(sourceFiles.back(),
                          std::vector<uint8_t>(text.begin(), text.end())));
  }
  auto variantOf = [](int i) { return i % 2 == 0 ? 0 : 1 + (i / 2) % 4; };
  for (int i = 0; i < kProcesses; ++i) {
    std::string result = out.file("out" + std::to_string(i) + ".cubin");
    const char *argv[] = {MOEC_KERNEL_CACHE_WORKER,
                          dir.path.c_str(),
                          sourceFiles[size_t(variantOf(i))].c_str(),
                          "sm_89",
                          result.c_str(),
                          nullptr};
    pid_t pid;
    ASSERT_EQ(posix_spawn(&pid, argv[0], nullptr, nullptr,
                          const_cast<char **>(argv), environ),
              0);
    pids.push_back(pid);
  }
  for (pid_t pid : pids) {
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  }
  std::vector<std::string> byVariant(5);
  for (int i = 0; i < kProcesses; ++i) {
    std::vector<uint8_t> bytes =
        readFile(out.file("out" + std::to_string(i) + ".cubin"));
    std::string cubin(bytes.begin(), bytes.end());
    ASSERT_TRUE(isElf(cubin)) << "process " << i;
    std::string &expected = byVariant[size_t(variantOf(i))];
    if (expected.empty())
      expected = cubin;
    EXPECT_EQ(cubin, expected) << "process " << i;
  }
  std::vector<std::string> entries = dir.list();
  EXPECT_EQ(entries.size(), 5u);
  for (const std::string &name : entries)
    EXPECT_EQ(name.rfind(".tmp-", 0), std::string::npos) << name;
  // Every entry reads back whole.
  for (int v = 0; v < 5; ++v) {
    auto hit = compileCached(source(v), "kernels.cu", "sm_89",
                             KernelCacheOptions{dir.path, true});
    ASSERT_TRUE(hit.isOk());
    EXPECT_EQ(hit->origin, CubinOrigin::kCacheHit) << v;
    EXPECT_EQ(hit->cubin, byVariant[size_t(v)]) << v;
  }
}

} // namespace
