#!/usr/bin/env bash
# Builds, on this machine, everything a GPU machine needs to run the GPU tests
# and the GPU benchmark of docs/runtime-cuda.md with no compiler there:
#
#   OUT/bin/gpu-check, OUT/bin/moec-run  the runtime only (no MLIR/LLVM)
#   OUT/lib/                             shared libraries a CUDA image may lack
#                                        (none today: the runtime links only
#                                        glibc and libstdc++)
#   OUT/models/                          every test model, f32 and FP8, for the
#                                        CPU and TARGETS, with tokens + references
#   OUT/models-cpasync/                  the FP8 ones again without TMA loads
#   OUT/bench/                           one DeepSeek-V3 MoE layer (hidden 7168,
#                                        256 experts, top-8, expert 2048, 1 shared)
#                                        and its routed experts alone, weights
#                                        filled on the GPU, 1/16/128/4096 tokens
#   OUT/run.sh                           the one command to run there
#
# usage: scripts/gpu-bundle.sh [OUT] (default: out/gpu); TARGETS (default
# sm_90) picks the CUDA targets. Then carry OUT and run `OUT/run.sh`, which
# writes its logs and tables under $OUT (the device tool's output folder) or
# OUT/logs.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root/out/gpu}"
targets="${TARGETS:-sm_90}"
build="$root/build"
venv="$root/.venv"

"$root/scripts/setup.sh" >/dev/null
export CCACHE_BASEDIR="$root" CCACHE_NOHASHDIR=true
cmake --build "$build" -j "$(nproc)" --target moec moec-run gpu-check

rm -rf "$out"
mkdir -p "$out/bin" "$out/lib" "$out/bench"
cp "$build/tools/gpu-check" "$build/tools/moec-run" "$out/bin/"
# Carry whatever the runtime links beyond glibc and libstdc++ (a CUDA image
# has those, newer). Nothing since the manifest is a FlatBuffer (header-only);
# the copy stays so that a new dependency cannot be forgotten.
ldd "$out/bin/gpu-check" "$out/bin/moec-run" | awk '/=> \// {print $3}' |
  sort -u | grep -Ev '/(libc|libm|libdl|libpthread|librt|libstdc\+\+|libgcc_s|ld-linux[^/]*)\.so' |
  while read -r lib; do cp -L "$lib" "$out/lib/"; done

"$venv/bin/python" "$root/test/e2e/check_cuda_artifacts.py" \
  --moec "$build/tools/moec" --data "$root/test/data" --targets "$targets" \
  --out "$out/models"

# The FP8 models once more with the cp.async ring on sm_90a (no TMA): if a
# TMA GEMM fails on the GPU, these tell whether the rest of the kernel does.
"$venv/bin/python" "$root/test/e2e/check_cuda_artifacts.py" \
  --moec "$build/tools/moec" --data "$root/test/data" --targets "$targets" \
  --precision fp8 --moec-arg=--cuda-tma=false --out "$out/models-cpasync"

"$venv/bin/python" "$root/bench/gpu/make_moe_layer.py" "$out/bench/mlir"
# Each benchmark twice on sm_90a: FP8 GEMM operands loaded by TMA (the
# default) and by the cp.async ring (`--cuda-tma=false`, suffix _cpasync), so
# one run measures both and a TMA failure still leaves numbers.
for name in dsv3_moe_layer dsv3_routed_experts; do
  for variant in "" _cpasync; do
    tma=true
    [ -n "$variant" ] && tma=false
    "$build/tools/moec" "$out/bench/mlir/$name.mlir" --target="$targets" \
      --max-tokens=4096 --bench-device-weights=1 --cuda-tma=$tma \
      -o "$out/bench/$name$variant.moea"
    printf '1\n16\n128\n4096\n' > "$out/bench/$name$variant.bench.txt"
  done
done
rm -rf "$out/bench/mlir"

cat > "$out/run.sh" <<'RUN'
#!/usr/bin/env bash
# GPU checks (every model: CPU vs GPU on random inputs, GPU vs the saved
# references) and the benchmark; logs and tables under $OUT or ./logs.
here="$(cd "$(dirname "$0")" && pwd)"
logs="${OUT:-$here/logs}"
mkdir -p "$logs"
export LD_LIBRARY_PATH="$here/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export MOEC_CACHE_DIR="${MOEC_CACHE_DIR:-$logs/kernel-cache}"
nvidia-smi > "$logs/nvidia-smi.txt" 2>&1 || true
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# check_each FOLDER LOGS BUDGET [gpu-check options]: gpu-check on every
# artifact of FOLDER in a process of its own (a kernel that traps takes its
# process's CUDA context down, not the next artifact's), each under 60 s,
# none started once BUDGET seconds have passed. Exit status: 77 without a
# GPU, 1 if any failed or was not run, else 0. Logs: LOGS/NAME/, LOGS/NAME.log
# and LOGS/summary.txt.
check_each() {
  local folder=$1 out=$2 budget=$3
  shift 3
  local start=$SECONDS status=0 rc name one artifact
  mkdir -p "$out"
  for artifact in "$folder"/*.moea; do
    name="$(basename "$artifact" .moea)"
    if (( SECONDS - start > budget )); then
      echo "$name: not run (the part's $budget s were spent)" | tee -a "$out/summary.txt"
      status=1
      continue
    fi
    one="$work/$(basename "$folder")/$name"
    mkdir -p "$one"
    ln -sf "$folder/$name".* "$one/"
    timeout -k 5 60 "$here/bin/gpu-check" "$@" --out "$out/$name" "$one" \
      > "$out/$name.log" 2>&1
    rc=$?
    echo "$name: exit $rc ($(grep -c '^FAIL' "$out/$name.log") failed checks)" |
      tee -a "$out/summary.txt"
    if [ $rc = 77 ]; then
      cat "$out/$name.log"
      return 77
    fi
    [ $rc != 0 ] && status=1
  done
  return $status
}

# Exit 1 if a check failed, 77 if there is no GPU, else 0. The three parts'
# budgets plus one artifact's limit each stay within 600 s.
check_each "$here/models" "$logs/models" "${MOEC_MODELS_BUDGET:-180}"
models=$?
check_each "$here/bench" "$logs/bench" "${MOEC_BENCH_BUDGET:-150}" --bench
bench=$?
# Last, as it only matters when the TMA path fails: the FP8 models without
# TMA.
check_each "$here/models-cpasync" "$logs/models-cpasync" \
  "${MOEC_CPASYNC_BUDGET:-90}"
cpasync=$?
echo "gpu-check models: exit $models, bench: exit $bench," \
  "models without TMA: exit $cpasync" | tee "$logs/exit.txt"
if [ $models = 77 ] && [ $bench = 77 ]; then exit 77; fi
if [ $models != 0 ] || [ $bench != 0 ]; then exit 1; fi
exit 0
RUN
chmod +x "$out/run.sh"
du -sh "$out"
