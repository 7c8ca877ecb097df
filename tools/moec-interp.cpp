//===- moec-interp.cpp - Reference interpreter of moe IR --------*- C++ -*-===//
//
// Entry point of `moec-interp`, the naive f32 interpreter of `moe`-dialect IR
// used as a test oracle (docs/interpreter.md); everything lives in the
// MoecInterpreter library so that the tool stays thin.
//
//===----------------------------------------------------------------------===//

#include "tools/Interpreter.h"

int main(int argc, char **argv) {
  return mlir::moec::interpreterMain(argc, argv);
}
