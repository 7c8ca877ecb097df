//===- moec-run.cpp - Run a compiled moec artifact --------------*- C++ -*-===//
//
// Entry point of `moec-run`; the command line lives in MoecRun.cpp.
//
//===----------------------------------------------------------------------===//

#include "tools/MoecRun.h"

int main(int argc, char **argv) {
  return moec::runtime::moecRunMain(argc, argv);
}
