//===- KernelCacheWorker.cpp - One process of the cache stress test -*- C++
//-*-===//
//
// `kernel-cache-worker CACHE_DIR SOURCE.cu ARCH OUT.cubin`: compiles SOURCE
// through the kernel cache in CACHE_DIR and writes the cubin it got to OUT.
// KernelCacheTest.ManyProcessesShareOneCache starts 16 of these at once.
//
//===----------------------------------------------------------------------===//

#include "TestModel.h"

#include "runtime/nvrtc/KernelCache.h"

#include <cstdio>

using namespace moec::runtime;

int main(int argc, char **argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: kernel-cache-worker DIR SOURCE ARCH OUT\n");
    return 2;
  }
  std::vector<uint8_t> source = test::readFile(argv[2]);
  auto cubin = compileCached(
      std::string_view(reinterpret_cast<const char *>(source.data()),
                       source.size()),
      "kernels.cu", argv[3], KernelCacheOptions{argv[1], true});
  if (!cubin.isOk()) {
    std::fprintf(stderr, "kernel-cache-worker: %s\n",
                 cubin.status().toString().c_str());
    return 1;
  }
  if (!cubin->warning.empty()) {
    std::fprintf(stderr, "kernel-cache-worker: %s\n", cubin->warning.c_str());
    return 1;
  }
  return test::writeFile(argv[4], std::vector<uint8_t>(cubin->cubin.begin(),
                                                       cubin->cubin.end()))
             ? 0
             : 1;
}
