#!/usr/bin/env bash
# The demo: builds moec if needed, compiles the bundled tiny DeepSeek-V3
# checkpoint (test/data/deepseek_v3-tiny: MLA with YaRN, 16 experts in 4
# groups, a shared expert) into one FP8 artifact for the CPU, and runs it on
# the checkpoint's prompt, printing the compile summary and the top tokens.
# Usage: scripts/demo.sh [checkpoint-folder] [extra moec options...]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/setup.sh" >/dev/null
build="${MOEC_BUILD_DIR:-$root/build}"
model="${1:-$root/test/data/deepseek_v3-tiny}"
shift || true
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
tokens="1,17,42,99,128,7,200,3,250,64,5"
if [ -f "$model/prompt.json" ]; then
  tokens="$("$root/.venv/bin/python" -c 'import json,sys; print(",".join(map(str, json.load(open(sys.argv[1]))["tokens"])))' "$model/prompt.json")"
fi
echo "== moec $model -o model.moea $*"
"$build/tools/moec" "$model" -o "$out/model.moea" "$@"
echo
echo "== moec-run model.moea --tokens $tokens --top 3 --repeat 10"
"$build/tools/moec-run" "$out/model.moea" --tokens "$tokens" --top 3 --repeat 10
