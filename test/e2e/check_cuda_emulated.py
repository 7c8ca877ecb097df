"""Every emitted CUDA kernel of every test model, run on the host, per step.

For each tiny Hugging Face checkpoint and each ONNX test model of
check_cuda_artifacts.py, and three synthetic models of wider shapes (below),
with the f32 and the FP8 pipelines:
`moec --target=cpu,sm_89` writes an artifact; test/emu/build_kernels.py
compiles its `kernels.cu` against the host emulation of the CUDA execution
model (test/emu/cuda_emu.h) into a shared object of FakeCudaDriver kernels;
`gpu-check` then runs the artifact on FakeCudaDriver
(MOEC_CUDA_DRIVER_LIBRARY) with those kernels (MOEC_FAKE_CUDA_KERNELS) and
compares the whole model and every step alone (per-step mode) against the
CPU kernels, within gpu-check's bounds. Every model runs the sm_89 path
(`__CUDA_ARCH__ 890`: e4m3 mma.sync in the FP8 GEMM); deepseek_v3-tiny FP8
wide_moe FP8 and one f32 model also run the sm_80 (bf16 mma.sync) and sm_90a
(wgmma) paths. gpu-check runs at 1, 7, 32 and 128 tokens (128 reaches
several GEMM row tiles and dispatch chunks; the wide models 1, 7, 40). First, test/emu/selftest.cu checks the
emulation's own rules (collectives, threads that return early, a missing
barrier, a divergent barrier, a deadlock). docs/cuda.md, "Host emulation of the kernels". No GPU is needed.

Usage: check_cuda_emulated.py --moec moec --gpu-check gpu-check
         --fake-driver libmoec_fake_cuda.so --data test/data [--jobs N]
         [--only SUBSTRING]
"""
import argparse
import concurrent.futures
import ctypes
import json
import math
import os
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import check_cuda_artifacts  # noqa: E402

BUILD = os.path.join(HERE, "..", "emu", "build_kernels.py")
# (model, precision) -> the instruction paths run besides sm_89.
EXTRA_ARCHS = {
    ("deepseek_v3-tiny", "fp8"): ["sm_80", "sm_90a"],
    ("onnx_qmoe_fp8_deepseek", "f32"): ["sm_80", "sm_90a"],
    ("wide_moe", "fp8"): ["sm_80", "sm_90a"],
}

# Shapes the tiny models do not reach, as MLIR at the `moe` phase.
# wide_moe: one DeepSeek-style MoE layer, hidden 256, 64 experts of 256 in 8
# groups, top-8, a shared expert: a router of 64 threads for 2 tokens per
# block, dispatch in several 256-pair chunks, FP8 grouped GEMMs with K = 256
# (the 3-stage cp.async ring wraps), 128-wide scale blocks.
WIDE_MOE = """module attributes {{moe.checkpoint = "{folder}"}} {{
func.func @forward(%x: tensor<?x256xf32>) -> tensor<?x256xf32> {{
{weights}
  %n = moe.rms_norm %x, %norm {{epsilon = 1.0E-6 : f64}}
      : tensor<?x256xf32>, tensor<256xf32> -> tensor<?x256xf32>
  %y = moe.moe %n router %gate bias %bias experts %wg, %wu, %wd
      shared %sg, %su, %sd {{routing = #moe.routing<scoring = sigmoid, k = 8,
      n_group = 8, topk_group = 4, group_score = top2_sum,
      norm_topk_prob = true, routed_scaling_factor = 2.5>}}
      : (tensor<?x256xf32>, tensor<64x256xf32>, tensor<64xf32>,
         tensor<64x256x256xf32>, tensor<64x256x256xf32>,
         tensor<64x256x256xf32>, tensor<256x256xf32>, tensor<256x256xf32>,
         tensor<256x256xf32>) -> tensor<?x256xf32>
  %z = moe.add %x, %y : tensor<?x256xf32>
  return %z : tensor<?x256xf32>
}}
}}
"""
WIDE_MOE_WEIGHTS = [("norm", (256,)), ("gate", (64, 256)), ("bias", (64,)),
                    ("wg", (64, 256, 256)), ("wu", (64, 256, 256)),
                    ("wd", (64, 256, 256)), ("sg", (256, 256)),
                    ("su", (256, 256)), ("sd", (256, 256))]
# The DeepSeek-V3 router itself: 256 experts, 256 threads for 8 tokens.
WIDE_ROUTER = """func.func @forward(%x: tensor<?x7168xf32>,
    %gate: tensor<256x7168xbf16>, %bias: tensor<256xf32>)
    -> (tensor<?x9xf32>, tensor<?x9xi32>) {
  %w, %i = moe.router %x, %gate bias %bias
      {routing = #moe.routing<scoring = sigmoid, k = 8, n_group = 8,
       topk_group = 4, group_score = top2_sum, norm_topk_prob = true,
       routed_scaling_factor = 2.5>, shared_experts = 1 : i64}
      : tensor<?x7168xf32>, tensor<256x7168xbf16>, tensor<256xf32>
      -> tensor<?x9xf32>, tensor<?x9xi32>
  return %w, %i : tensor<?x9xf32>, tensor<?x9xi32>
}
"""
# Attention: GQA with head dim 256 (16-key tiles, bf16), expanded MLA
# (192/128, causal).
WIDE_ATTENTION = """func.func @forward(%q: tensor<?x8x256xbf16>,
    %k: tensor<?x2x256xbf16>, %v: tensor<?x2x256xbf16>,
    %q2: tensor<?x16x192xf32>, %k2: tensor<?x16x192xf32>,
    %v2: tensor<?x16x128xf32>)
    -> (tensor<?x8x256xbf16>, tensor<?x16x128xf32>) {
  %o = moe.attention %q, %k, %v {scale = 0.0625 : f64}
      : tensor<?x8x256xbf16>, tensor<?x2x256xbf16>, tensor<?x2x256xbf16>
      -> tensor<?x8x256xbf16>
  %o2 = moe.attention %q2, %k2, %v2 {scale = 0.07216878364870322 : f64,
                                     causal}
      : tensor<?x16x192xf32>, tensor<?x16x192xf32>, tensor<?x16x128xf32>
      -> tensor<?x16x128xf32>
  return %o, %o2 : tensor<?x8x256xbf16>, tensor<?x16x128xf32>
}
"""

# Rows wide enough for multi-warp block reductions (the tiny models' norms and
# softmaxes fit one warp): DeepSeek-V3's hidden 7168 through rms_norm and
# add_rms_norm with a bf16 weight, and a 4096-wide softmax.
WIDE_NORM = """func.func @forward(%x: tensor<?x7168xf32>,
    %r: tensor<?x7168xf32>, %g: tensor<7168xbf16>, %p: tensor<?x4096xf32>)
    -> (tensor<?x7168xf32>, tensor<?x7168xf32>, tensor<?x7168xf32>,
        tensor<?x4096xf32>) {
  %n = moe.rms_norm %x, %g {epsilon = 1.0e-06 : f64}
      : tensor<?x7168xf32>, tensor<7168xbf16> -> tensor<?x7168xf32>
  %s, %m = moe.add_rms_norm %r, %n, %g {epsilon = 1.0e-06 : f64}
      : tensor<?x7168xf32>, tensor<7168xbf16> -> tensor<?x7168xf32>
  %sm = moe.softmax %p : tensor<?x4096xf32>
  return %n, %s, %m, %sm : tensor<?x7168xf32>, tensor<?x7168xf32>,
      tensor<?x7168xf32>, tensor<?x4096xf32>
}
"""


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, array in tensors:
        data = array.astype(np.float32).tobytes()
        header[name] = {"dtype": "F32", "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def synthetic_models(tmp):
    """[(name, source)]: the wide shapes above, written under tmp."""
    folder = os.path.join(tmp, "wide_moe.ckpt")
    os.mkdir(folder)
    rng = np.random.default_rng(7)
    tensors = [(name, rng.uniform(0.5, 1.5, shape) if name == "norm"
                else rng.uniform(-1, 1, shape) / 16)
               for name, shape in WIDE_MOE_WEIGHTS]
    write_safetensors(os.path.join(folder, "model.safetensors"), tensors)
    weights = "\n".join(
        f'  %{name} = moe.weight [#moe.tensor_ref<"model.safetensors", '
        f'"{name}">] stored tensor<{"x".join(map(str, shape))}xf32> : '
        f'tensor<{"x".join(map(str, shape))}xf32>'
        for name, shape in WIDE_MOE_WEIGHTS)
    models = []
    for name, text in (
            ("wide_moe", WIDE_MOE.format(folder=folder, weights=weights)),
            ("wide_router", WIDE_ROUTER), ("wide_attention", WIDE_ATTENTION),
            ("wide_norm", WIDE_NORM)):
        path = os.path.join(tmp, name + ".mlir")
        with open(path, "w") as f:
            f.write(text)
        models.append((name, path))
    return models


SELFTEST = os.path.join(HERE, "..", "emu", "selftest.cu")


def launch(so, kernel, grid, block, out, tokens):
    """Runs `kernel` of the emulated kernels `so` on the ctypes buffer
    `out`, as FakeCudaDriver would."""
    lib = ctypes.CDLL(so)
    fn = getattr(lib, kernel)
    values = [ctypes.c_void_p(ctypes.addressof(out)), ctypes.c_void_p(None),
              ctypes.c_longlong(tokens)]
    params = (ctypes.c_void_p * 3)(*[ctypes.addressof(v) for v in values])
    fn(params, (ctypes.c_uint * 3)(grid, 1, 1), (ctypes.c_uint * 3)(block, 1, 1),
       ctypes.c_uint(0))


def self_check(tmp):
    """The emulation's own rules on test/emu/selftest.cu; [] when all hold."""
    so = os.path.join(tmp, "selftest.so")
    p = subprocess.run([sys.executable, BUILD, SELFTEST, so],
                       capture_output=True, text=True)
    if p.returncode != 0:
        return ["build_kernels.py selftest.cu: " + p.stdout + p.stderr]
    problems = []
    for order in ("forward", "reverse"):
        os.environ["MOEC_EMU_ORDER"] = order
        out = (ctypes.c_int * (64 * 8))()
        launch(so, "emu_shuffles", 1, 64, out, 0)
        for t in range(64):
            lane, base = t % 32, t - t % 32
            ballot = sum(1 << i for i in range(0, 32, 3))
            want = [base + (lane ^ 5), t - 3 if lane >= 3 else t,
                    t + 3 if lane + 3 < 32 else t, base + 7,
                    ballot - (1 << 32) if ballot >= 1 << 31 else ballot,
                    int(base == 32), 1, base + (lane ^ 1)]
            got = list(out[8 * t:8 * t + 8])
            if got != want:
                problems.append(f"{order}: emu_shuffles thread {t}: "
                                f"{got} != {want}")
                break
        out = (ctypes.c_int * 2)()
        launch(so, "emu_early_return", 2, 128, out, 40)
        if list(out) != [780, 780]:
            problems.append(f"{order}: emu_early_return: {list(out)}")
        out = (ctypes.c_float * 64)()
        launch(so, "emu_missing_barrier", 1, 64, out, 0)
        if not any(math.isnan(v) for v in out):
            problems.append(f"{order}: a missing barrier went unnoticed")
    os.environ.pop("MOEC_EMU_ORDER")
    for kernel, message in (("emu_divergent_barrier", "divergent barrier"),
                            ("emu_deadlock", "deadlock")):
        code = ("import ctypes, sys; sys.path.insert(0, %r); "
                "import check_cuda_emulated as c; "
                "c.launch(%r, %r, 1, 64, (ctypes.c_float * 64)(), 0)"
                % (HERE, so, kernel))
        p = subprocess.run([sys.executable, "-c", code], capture_output=True,
                           text=True)
        if p.returncode == 0 or message not in p.stderr:
            problems.append(f"{kernel}: not reported (exit {p.returncode}, "
                            f"{p.stderr.strip()[-300:]!r})")
    return problems


def run_case(args, tmp, name, source, precision):
    """(label, [(arch, ok, seconds, detail)])."""
    label = f"{name}-{precision}"
    folder = os.path.join(tmp, label)
    os.mkdir(folder)
    models = os.path.join(folder, "models")
    os.mkdir(models)
    artifact = os.path.join(models, label + ".moea")
    t0 = time.time()
    p = subprocess.run([args.moec, source, "-o", artifact,
                        f"--precision={precision}", "--target=cpu,sm_89"]
                       + (["--from=moe"] if source.endswith(".mlir") else []),
                       capture_output=True, text=True)
    if p.returncode != 0:
        return label, [("moec", False, time.time() - t0, p.stderr[-3000:])]
    results = []
    for arch in ["sm_89"] + EXTRA_ARCHS.get((name, precision), []):
        t0 = time.time()
        so = os.path.join(folder, f"kernels.{arch}.so")
        p = subprocess.run([sys.executable, BUILD, artifact, so,
                            "--arch", arch], capture_output=True, text=True)
        if p.returncode != 0:
            results.append((arch, False, time.time() - t0,
                            "build_kernels.py failed:\n" + p.stdout
                            + p.stderr[-4000:]))
            continue
        # Threads of a block run in ascending order between barriers for the
        # f32 pipeline and in descending order for the FP8 one, so that a
        # missing barrier reads unwritten shared memory whichever way the
        # data flows (both pipelines have nearly every op kind).
        order = "reverse" if precision == "fp8" and arch == "sm_89" \
            else "forward"
        env = dict(os.environ, MOEC_CUDA_DRIVER_LIBRARY=args.fake_driver,
                   MOEC_FAKE_CUDA_KERNELS=so, MOEC_EMU_ORDER=order,
                   MOEC_CACHE_DIR=os.path.join(folder, "cache"))
        env.pop("MOEC_FAKE_CUDA_CC", None)
        # The extra paths run at up to 32 tokens (the GEMM paths differ only
        # in the MMA instructions, which 64-row tiles already exercise).
        # The wide synthetic models run at 1, 7 and 40 tokens (40 x top-8:
        # two dispatch chunks).
        tokens = args.tokens if arch == "sm_89" else "1,7,32"
        if name.startswith("wide_"):
            tokens = "1,7,40" if arch == "sm_89" else "1,7"
        p = subprocess.run([args.gpu_check, "--per-step", "--tokens",
                            tokens, models],
                           capture_output=True, text=True, env=env)
        out = p.stdout + p.stderr
        ok = (p.returncode == 0 and "all checks passed" in out
              and "per-step:" in out and " 0 failure(s)" in out)
        results.append((f"{arch} {order}", ok, time.time() - t0,
                        out[-6000:]))
    return label, results


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--moec", required=True)
    ap.add_argument("--gpu-check", required=True)
    ap.add_argument("--fake-driver", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--only", help="models whose label contains this")
    ap.add_argument("--tokens", default="1,7,32,128",
                    help="gpu-check --tokens: the token counts of check (a)")
    args = ap.parse_args()

    started = time.time()
    failures = 0
    passed = 0
    with tempfile.TemporaryDirectory() as tmp, \
            concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        models = [(name, source) for name, source, _, _ in
                  check_cuda_artifacts.cases(args.data)]
        synthetic = synthetic_models(tmp)
        # The router and attention blocks have no weights to quantize;
        # wide_moe runs FP8 only (its f32 GEMMs are the tiny models' SIMT
        # kernel, and its expert scheduling is the FP8 one's).
        cases = [(name, source, precision)
                 for name, source in models + synthetic
                 for precision in ("f32", "fp8")
                 if not name.startswith("wide_")
                 or precision == ("fp8" if name == "wide_moe" else "f32")]
        cases = [c for c in cases
                 if not args.only or args.only in f"{c[0]}-{c[2]}"]
        # The slowest first, so that two jobs finish together.
        cases.sort(key=lambda c: not c[0].startswith("wide_moe"))
        problems = self_check(tmp)
        for problem in problems:
            print("FAIL emulation self-check:", problem)
        failures += len(problems)
        if not problems:
            print("PASS emulation self-check (collectives, early return, "
                  "missing barrier, divergent barrier, deadlock)")
        futures = [pool.submit(run_case, args, tmp, *c) for c in cases]
        for future in futures:
            label, results = future.result()
            for arch, ok, seconds, detail in results:
                print(f"{'PASS' if ok else 'FAIL'} {label} {arch} "
                      f"({seconds:.1f} s)", flush=True)
                if ok:
                    passed += 1
                else:
                    failures += 1
                    print(detail, flush=True)
    print(f"{passed} passed, {failures} failed, "
          f"{time.time() - started:.0f} s")
    return 1 if failures or not passed else 0


if __name__ == "__main__":
    sys.exit(main())
