#!/usr/bin/env bash
# The whole test suite: installs and builds (scripts/setup.sh), then runs lit,
# GoogleTest, the Python reference checks and the clang-format check through
# ctest. Tests labelled `gpu` skip themselves on machines without a GPU.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/setup.sh"
ctest --test-dir "${MOEC_BUILD_DIR:-$root/build}" --output-on-failure -j "${MOEC_JOBS:-2}"
