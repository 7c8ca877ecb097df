//===- ReplayMain.cpp - Run a fuzz target on files, without libFuzzer -----===//
//
// `replay-<name> [--expect=accept|reject] FILE...` runs the target's reader
// once on each file and prints whether it accepted it. It exits with 1 when
// any file is not treated as expected (default: accepted), so the seed
// tests fail for a target that rejects its valid inputs.
//
//===----------------------------------------------------------------------===//

#include "FuzzTarget.h"

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <vector>

int main(int argc, char **argv) {
  bool expectAccept = true;
  int files = 0, unexpected = 0;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--expect=accept") == 0) {
      expectAccept = true;
      continue;
    }
    if (std::strcmp(argv[i], "--expect=reject") == 0) {
      expectAccept = false;
      continue;
    }
    std::ifstream in(argv[i], std::ios::binary);
    if (!in) {
      std::fprintf(stderr, "replay: cannot read '%s'\n", argv[i]);
      return 2;
    }
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                               std::istreambuf_iterator<char>());
    ++files;
    // libFuzzer never passes a null pointer, not even for an empty input.
    static const uint8_t empty = 0;
    moec::fuzz::FuzzOutcome outcome = moec::fuzz::runFuzzInput(
        bytes.empty() ? &empty : bytes.data(), bytes.size());
    bool asExpected = outcome.accepted == expectAccept;
    unexpected += asExpected ? 0 : 1;
    if (outcome.accepted)
      std::printf("%s: accepted%s\n", argv[i],
                  asExpected ? "" : " (UNEXPECTED)");
    else
      std::printf("%s: rejected%s: %s\n", argv[i],
                  asExpected ? "" : " (UNEXPECTED)", outcome.error.c_str());
  }
  if (files == 0) {
    std::fprintf(stderr, "usage: %s [--expect=accept|reject] FILE...\n",
                 argv[0]);
    return 2;
  }
  std::printf("%d of %d files %s as expected\n", files - unexpected, files,
              expectAccept ? "accepted" : "rejected");
  return unexpected == 0 ? 0 : 1;
}
