//===- moec.cpp - The moec compiler -----------------------------*- C++ -*-===//
//
// Entry point of `moec`; everything lives in the driver library so that the
// tool stays thin.
//
//===----------------------------------------------------------------------===//

#include "tools/Driver.h"

int main(int argc, char **argv) { return mlir::moec::moecMain(argc, argv); }
