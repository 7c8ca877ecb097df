//===- gpu-check.cpp - GPU acceptance checks over artifacts -----*- C++ -*-===//
//
// Entry point of `gpu-check`; the checks and the command line live in
// runtime/check/GpuCheck.cpp (library MoecGpuCheck).
//
//===----------------------------------------------------------------------===//

#include "runtime/check/GpuCheck.h"

int main(int argc, char **argv) {
  return moec::runtime::gpuCheckMain(argc, argv);
}
