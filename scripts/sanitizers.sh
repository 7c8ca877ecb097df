#!/usr/bin/env bash
# The sanitizer builds and their tests (docs/testing.md), run by
# scripts/test.sh after the main suite; expects scripts/setup.sh to have run.
#   asan: the readers of untrusted input and the runtime built with ASan +
#         UBSan in build-asan/ (MOEC_SANITIZE=address), then their GoogleTest
#         suites and the runtime's e2e checks (moec-run, the format).
#   tsan: the runtime only (RuntimeTest, GenerateTest, moec-run; no MLIR code)
#         with TSan in build-tsan/ (MOEC_SANITIZE=thread), then the runtime's
#         threading tests, and moec-run's thread pool on a real model.
# Usage: scripts/sanitizers.sh [asan] [tsan]     (no argument: both)
# MOEC_ASAN_BUILD_DIR, MOEC_TSAN_BUILD_DIR, MOEC_BUILD_DIR and MOEC_JOBS
# override the folders and the parallelism.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
jobs="${MOEC_JOBS:-2}"
venv="$root/.venv"
stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(asan tsan)

# As in setup.sh: ccache keys on paths relative to the checkout, so CI's
# fresh clone reuses what an earlier sanitizer build compiled.
export CCACHE_BASEDIR="$root" CCACHE_NOHASHDIR=true

header() {
  echo
  echo "===================================================================="
  echo "== sanitizers: $*  [${SECONDS}s]"
  echo "===================================================================="
}

# configure DIR KIND: a Release build with MOEC_SANITIZE=KIND, like setup.sh's.
configure() {
  if [ ! -f "$1/build.ninja" ]; then
    cmake -S "$root" -B "$1" -G Ninja -DCMAKE_BUILD_TYPE=Release \
          -DCMAKE_C_COMPILER_LAUNCHER=ccache \
          -DCMAKE_CXX_COMPILER_LAUNCHER=ccache \
          -DMOEC_PYTHON="$venv/bin/python" -DMOEC_SANITIZE="$2" >/dev/null
  fi
}

# Reports go to files (log_path) as well as failing the process, so that a
# finding in a subprocess whose exit status a Python driver does not look at
# (or expects to be non-zero) still fails the stage. check_reports DIR prints
# them and fails when there are any.
check_reports() {
  local reports
  reports="$(find "$1" -type f 2>/dev/null | sort)"
  if [ -n "$reports" ]; then
    echo "sanitizers: reports in $1:"
    for f in $reports; do
      echo "---- $f"
      cat "$f"
    done
    return 1
  fi
  echo "sanitizers: no reports"
}

run_asan() {
  local build="${MOEC_ASAN_BUILD_DIR:-$root/build-asan}"
  local logs="$build/sanitizer-reports"
  header "ASan + UBSan: build of the readers and the runtime ($build)"
  configure "$build" address
  # The stated subset (docs/testing.md): every parser of untrusted input
  # (safetensors, config.json, the ONNX reader, .npy, the artifact and its
  # manifest) and the whole runtime with its e2e checks. The MLIR compiler
  # (passes, codegen, the interpreter) is left out: built with ASan from a
  # cold cache it alone would take about half of CI's time on two cores.
  local targets=(SafetensorsTest ModelConfigTest OnnxReaderTest RuntimeTest
                 CudaRuntimeTest GenerateTest runtime-test-driver moec-run)
  # gtest_discover_tests runs each test binary at build time.
  ASAN_OPTIONS=detect_leaks=0 cmake --build "$build" -j "$jobs" \
      --target "${targets[@]}"

  header "ASan + UBSan: the unit suites and the runtime's e2e checks"
  rm -rf "$logs" && mkdir -p "$logs"
  # detect_leaks: LeakSanitizer at exit. UBSan is compiled with
  # -fno-sanitize-recover=all: its first finding aborts the process too.
  export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:allow_user_poisoning=0:handle_abort=1:check_initialization_order=1:strict_init_order=1:detect_stack_use_after_return=1:log_path=$logs/asan"
  export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1:log_path=$logs/ubsan"
  export LSAN_OPTIONS="log_path=$logs/lsan"
  export MOEC_TEST_DATA="$root/test/data"
  local t
  for t in test/unit/hf/SafetensorsTest test/unit/hf/ModelConfigTest \
           test/unit/onnx/OnnxReaderTest test/unit/runtime/RuntimeTest \
           test/unit/runtime/CudaRuntimeTest \
           test/unit/generate/GenerateTest; do
    echo "---- $t"
    "$build/$t" --gtest_brief=1
  done
  ctest --test-dir "$build" --output-on-failure \
        -R '^(moec-run-e2e|runtime-format-vs-python)$'
  unset ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS
  check_reports "$logs"
}

run_tsan() {
  local build="${MOEC_TSAN_BUILD_DIR:-$root/build-tsan}"
  local main="${MOEC_BUILD_DIR:-$root/build}"
  local logs="$build/sanitizer-reports" status=0
  header "TSan: build of the runtime ($build)"
  configure "$build" thread
  cmake --build "$build" -j "$jobs" --target RuntimeTest GenerateTest moec-run

  # The runtime's threading tests: every CpuRuntimeTest starts and joins a
  # thread pool, CApiReportsErrors checks the per-thread last error, the
  # large round trip hashes on a second thread, and anything named
  # Concurrent or Thread (one model used from several threads; the
  # scheduler's adds and cancels from several threads while one drives; the
  # same through the C API's generator on a KV-cache artifact,
  # KvCacheRunTest.ConcurrentAddAndCancelWhileOneThreadSteps).
  local tests='^(CpuRuntimeTest\.|ArtifactTest\.RoundTripRandomSectionsWithLargeStreamedWeights$)|Concurrent|Thread'
  header "TSan: ctest -R '$tests'"
  rm -rf "$logs" && mkdir -p "$logs"
  export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:log_path=$logs/tsan"
  ctest --test-dir "$build" --output-on-failure -j "$jobs" -R "$tests" ||
    status=1

  # The pool's parallel loops on a real model: the main build's moec compiles
  # a MoE layer (f32 and FP8), the TSan moec-run runs it on 1, 4 and
  # MOEC_NUM_THREADS=3 threads. The generated kernels are not instrumented;
  # the pool's hand-off between threads is.
  header "TSan: check_cpu_threads.py (moec-run --threads, MOEC_NUM_THREADS)"
  "$venv/bin/python" "$root/test/e2e/check_cpu_threads.py" \
      --moec "$main/tools/moec" --moec-run "$build/tools/moec-run" ||
    status=1
  unset TSAN_OPTIONS

  check_reports "$logs" || status=1
  return "$status"
}

for stage in "${stages[@]}"; do
  case "$stage" in
    asan) run_asan ;;
    tsan) run_tsan ;;
    *) echo "sanitizers.sh: unknown stage '$stage' (asan, tsan)" >&2; exit 2 ;;
  esac
done
header "passed: ${stages[*]}"
