#!/usr/bin/env bash
# The demo: builds moec if needed and compiles the bundled example to the
# canonical `moe` phase, printing the IR.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/setup.sh" >/dev/null
build="${MOEC_BUILD_DIR:-$root/build}"
"$build/tools/moec" "$root/examples/deepseek-v3-moe-layer.mlir" --compile-to=moe
