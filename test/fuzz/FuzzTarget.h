//===- FuzzTarget.h - What every fuzz target implements ---------*- C++ -*-===//
//
// Each file of test/fuzz feeds one reader of untrusted input. It defines
// `runFuzzInput`, which the libFuzzer entry point (FuzzMain.cpp) calls on
// every mutated input and the replay tool (ReplayMain.cpp) calls on seed
// files, so that ctest can check that a valid seed reaches the success path.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_TEST_FUZZ_FUZZTARGET_H
#define MOEC_TEST_FUZZ_FUZZTARGET_H

#include <cstddef>
#include <cstdint>
#include <string>

namespace moec::fuzz {

/// What the reader under test made of one input.
struct FuzzOutcome {
  /// True when the reader accepted the input (its success path ran).
  bool accepted = false;
  /// The reader's message when it rejected the input.
  std::string error;

  /// An accepted input.
  static FuzzOutcome accept() { return {true, {}}; }
  /// A rejected input, with the reader's `message`.
  static FuzzOutcome reject(std::string message) {
    return {false, std::move(message)};
  }
};

/// Runs the target's reader on the `size` bytes at `data`. Defined once per
/// target; it must not keep state from one input to the next.
FuzzOutcome runFuzzInput(const uint8_t *data, size_t size);

} // namespace moec::fuzz

#endif // MOEC_TEST_FUZZ_FUZZTARGET_H
