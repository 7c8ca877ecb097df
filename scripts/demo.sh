#!/usr/bin/env bash
# The demo: builds moec if needed, imports the bundled tiny DeepSeek-V3
# checkpoint (test/data/deepseek_v3-tiny: MLA, YaRN, 16 experts in 4 groups,
# a shared expert) and prints its graph at the furthest phase this build
# reaches, with a one-line summary per op kind on stderr.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/setup.sh" >/dev/null
build="${MOEC_BUILD_DIR:-$root/build}"
model="${1:-$root/test/data/deepseek_v3-tiny}"
phase="${MOEC_DEMO_PHASE:-moe}"
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
"$build/tools/moec" "$model" --compile-to="$phase" -o "$out"
cat "$out"
echo "--- $model at phase '$phase': op counts" >&2
grep -oE '= moe\.[a-z_0-9]+' "$out" | sort | uniq -c | sort -rn >&2
