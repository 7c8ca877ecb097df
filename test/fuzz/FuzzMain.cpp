//===- FuzzMain.cpp - libFuzzer entry point of every target ---------------===//
//
// Linked into each `fuzz-<name>` executable together with libFuzzer, which
// provides `main`. Whether the reader accepted an input does not matter
// here: the sanitizers and libFuzzer report crashes, leaks, hangs and
// undefined behaviour.
//
//===----------------------------------------------------------------------===//

#include "FuzzTarget.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  (void)moec::fuzz::runFuzzInput(data, size);
  return 0;
}
