#!/usr/bin/env bash
# Installs what moec needs on Debian 12 (idempotent, quick when done), creates
# the project's Python environment (.venv) and configures + builds in build/.
# Usage: scripts/setup.sh            (MOEC_BUILD_DIR overrides build/)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${MOEC_BUILD_DIR:-$root/build}"
jobs="${MOEC_JOBS:-2}"

packages=(cmake ninja-build ccache g++ python3 python3-venv clang-format
          llvm-22-dev libmlir-22-dev mlir-22-tools llvm-22-tools liblld-22-dev
          libonnx-dev libprotobuf-dev protobuf-compiler nlohmann-json3-dev
          flatbuffers-compiler libflatbuffers-dev
          libgtest-dev libgmock-dev libbenchmark-dev
          clang libclang-rt-14-dev
          libsodium23)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The Python packages the tests use (numpy, ml_dtypes, onnx, onnxruntime).
venv="$root/.venv"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$root/requirements.txt" | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: creating $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$root/requirements.txt"
  echo "$want" > "$stamp"
fi

# ccache keys on paths relative to the checkout, so a fresh clone elsewhere
# (CI) reuses what an earlier build compiled.
export CCACHE_BASEDIR="$root" CCACHE_NOHASHDIR=true
if [ ! -f "$build/build.ninja" ]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
        -DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache \
        -DMOEC_PYTHON="$venv/bin/python" >/dev/null
fi
cmake --build "$build" -j "$jobs"
