#!/usr/bin/env bash
# The whole test suite: installs and builds (scripts/setup.sh), then runs lit,
# GoogleTest, the Python reference checks and the clang-format check through
# ctest, then the fuzz targets' seed checks and short fuzz runs in
# build-fuzz/ (scripts/fuzz.sh), then the sanitizer builds: the suite under
# ASan + UBSan in build-asan/ and the runtime's threading tests under TSan in
# build-tsan/ (scripts/sanitizers.sh, docs/testing.md). Tests labelled `gpu`
# skip themselves on machines without a GPU.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/setup.sh"
ctest --test-dir "${MOEC_BUILD_DIR:-$root/build}" --output-on-failure -j "${MOEC_JOBS:-2}"
# The fuzz targets in their own build folder (clang; docs/fuzzing.md).
"$root/scripts/fuzz.sh"
# ASan + UBSan and TSan, each in its own build folder (docs/testing.md).
"$root/scripts/sanitizers.sh"
