#!/usr/bin/env bash
# The demo, the milestone's vertical slice: builds moec if needed, compiles the
# bundled tiny DeepSeek-V3 checkpoint (test/data/deepseek_v3-tiny: MLA with
# YaRN, 16 experts in 4 groups, a shared expert) into ONE FP8 artifact with
# the CPU shared object and NVRTC cubins for sm_80, sm_89 and sm_90a, runs it
# (on a GPU when one is usable, else on the CPU) on the checkpoint's prompt,
# prints the compile summary and the top tokens, and compares the logits with
# the transformers reference saved beside the checkpoint.
# Usage: scripts/demo.sh [checkpoint-folder] [extra moec options...]
# (MOEC_DEMO_TARGETS overrides the targets, e.g. MOEC_DEMO_TARGETS=cpu.)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/setup.sh" >/dev/null
build="${MOEC_BUILD_DIR:-$root/build}"
python="$root/.venv/bin/python"
model="${1:-$root/test/data/deepseek_v3-tiny}"
shift || true
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
targets="${MOEC_DEMO_TARGETS:-cpu,sm_80,sm_89,sm_90}"
tokens="1,17,42,99,128,7,200,3,250,64,5"
if [ -f "$model/prompt.json" ]; then
  tokens="$("$python" -c 'import json,sys; print(",".join(map(str, json.load(open(sys.argv[1]))["tokens"])))' "$model/prompt.json")"
fi
echo "== moec $model -o model.moea --target=$targets $*"
"$build/tools/moec" "$model" -o "$out/model.moea" --target="$targets" "$@"
echo
echo "== moec-run model.moea --info | grep code"
"$build/tools/moec-run" "$out/model.moea" --info | grep -E '^(targets|cuda):' || true
echo
echo "== moec-run model.moea --tokens $tokens --top 3 --repeat 10"
"$build/tools/moec-run" "$out/model.moea" --tokens "$tokens" --top 3 --repeat 10 \
  --dump-logits "$out/logits.npy"
if [ -f "$model/reference_logits.npy" ]; then
  echo
  echo "== logits vs transformers ($model/reference_logits.npy)"
  "$python" - "$out/logits.npy" "$model/reference_logits.npy" <<'PY'
import sys
import numpy as np
x = np.load(sys.argv[2]).astype(np.float64)
y = np.load(sys.argv[1]).astype(np.float64)
diff = 1 - 2 * (x * y).sum() / (x * x + y * y).sum()
rel = np.linalg.norm(x - y) / np.linalg.norm(x)
same = int((x.argmax(1) == y.argmax(1)).sum())
print(f"diff (DESIGN.md section 4) {diff:.2e}, relative L2 {rel:.2e}, "
      f"same top token at {same}/{len(x)} positions")
if diff > 2e-2:
    print("note: above the FP8 bound 2e-2. On this random tiny DeepSeek-V3, FP8 "
          "noise flips near-tied expert choices (docs/fp8.md, 'Routing flips'); "
          "--precision=f32 matches to ~1e-6, --fp8-keep-attention to 1.4e-2")
PY
fi
