//===- gpu-check.cpp - GPU acceptance checks over artifacts -----*- C++ -*-===//
//
// Entry point of `gpu-check`; the command line lives in GpuCheck.cpp.
//
//===----------------------------------------------------------------------===//

#include "tools/GpuCheck.h"

int main(int argc, char **argv) {
  return moec::runtime::gpuCheckMain(argc, argv);
}
