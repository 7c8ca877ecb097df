#!/usr/bin/env bash
# Builds the libFuzzer targets of test/fuzz in build-fuzz/ (clang with ASan
# and UBSan, ccache; docs/fuzzing.md) and runs its ctest: every valid seed
# must reach its reader's success path, and every target is fuzzed for
# MOEC_FUZZ_SECONDS (default 10) seconds without a finding.
# Usage: scripts/fuzz.sh   (after scripts/setup.sh; MOEC_FUZZ_BUILD_DIR
# overrides build-fuzz/, MOEC_JOBS the parallelism, MOEC_FUZZ_CXX clang++)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${MOEC_FUZZ_BUILD_DIR:-$root/build-fuzz}"
jobs="${MOEC_JOBS:-2}"
cxx="${MOEC_FUZZ_CXX:-clang++}"

# The same ccache keys as scripts/setup.sh: paths relative to the checkout.
export CCACHE_BASEDIR="$root" CCACHE_NOHASHDIR=true
if [ ! -f "$build/build.ninja" ]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
        -DMOEC_FUZZ=ON -DCMAKE_CXX_COMPILER="$cxx" \
        -DCMAKE_C_COMPILER="${cxx%++}" \
        -DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache \
        >/dev/null
fi
if [ -n "${MOEC_FUZZ_SECONDS:-}" ]; then
  cmake -B "$build" -DMOEC_FUZZ_SECONDS="$MOEC_FUZZ_SECONDS" >/dev/null
fi
cmake --build "$build" -j "$jobs"
ctest --test-dir "$build" --output-on-failure -j "$jobs"
