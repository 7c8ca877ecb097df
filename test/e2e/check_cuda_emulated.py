"""Every emitted CUDA kernel of every test model, run on the host, per step.

For each tiny Hugging Face checkpoint and each ONNX test model of
check_cuda_artifacts.py, and three synthetic models of wider shapes (below),
with the f32 and the FP8 pipelines:
`moec --target=cpu:host,sm_89` writes an artifact (one CPU variant: the
CPU side is only the reference here); test/emu/build_kernels.py
compiles its `kernels.cu` against the host emulation of the CUDA execution
model (test/emu/cuda_emu.h) into a shared object of FakeCudaDriver kernels;
`gpu-check` then runs the artifact on FakeCudaDriver
(MOEC_CUDA_DRIVER_LIBRARY) with those kernels (MOEC_FAKE_CUDA_KERNELS) and
compares the whole model and every step alone (per-step mode) against the
CPU kernels, within gpu-check's bounds. Every model runs the sm_89 path
(`__CUDA_ARCH__ 890`: e4m3 mma.sync in the FP8 GEMM); deepseek_v3-tiny FP8
wide_moe FP8 and one f32 model also run the sm_80 (bf16 mma.sync) and sm_90a
(wgmma; on a fake 9.0 device, so that the runtime encodes the TMA maps)
paths. gpu-check runs at 1, 7, 32 and 128 tokens (128 reaches
several GEMM row tiles and dispatch chunks; the wide models 1, 7, 40). First, test/emu/selftest.cu checks the
emulation's own rules (collectives, threads that return early, a missing
barrier, a divergent barrier, a deadlock; TMA loads and swizzles, mbarrier
waits, wgmma on swizzled TMA tiles). docs/cuda.md, "Host emulation of the
kernels". No GPU is needed.

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


def launch(so, kernel, grid, block, out, tokens, maps=()):
    """Runs `kernel` of the emulated kernels `so` on the ctypes buffer
    `out`, as FakeCudaDriver would; `maps`: 128-byte tensor maps passed by
    value after `tokens`."""
    lib = ctypes.CDLL(so)
    fn = getattr(lib, kernel)
    values = [ctypes.c_void_p(ctypes.addressof(out)), ctypes.c_void_p(None),
              ctypes.c_longlong(tokens)]
    values += [(ctypes.c_char * 128).from_buffer_copy(m) for m in maps]
    params = (ctypes.c_void_p * len(values))(
        *[ctypes.addressof(v) for v in values])
    fn(params, (ctypes.c_uint * 3)(grid, 1, 1), (ctypes.c_uint * 3)(block, 1, 1),
       ctypes.c_uint(0))


# test/emu/tensor_map_image.h: what FakeCudaDriver's cuTensorMapEncodeTiled
# writes into a CUtensorMap.
TENSOR_MAP_MAGIC = 0x4D414D54


def tensor_map(array, dims, strides, box, swizzle):
    """The 128-byte image of a tensor map over numpy `array` (kept alive by
    the caller): dims and box innermost first, byte strides of dims[1:]."""
    rank = len(dims)
    pad = lambda v, n: list(v) + [0] * (n - len(v))  # noqa: E731
    return struct.pack("<4IQ5Q4Q5I3I", TENSOR_MAP_MAGIC, array.itemsize,
                       rank, swizzle, array.ctypes.data, *pad(dims, 5),
                       *pad(strides, 4), *pad(box, 5), 0, 0, 0)


def aligned_bytes(n, align=1024):
    """A zeroed uint8 numpy array of n bytes at an `align`-aligned address."""
    raw = np.zeros(n + align, np.uint8)
    skip = -raw.ctypes.data % align
    return raw[skip:skip + n]


def swizzled(offset, span):
    """Where the TMA unit puts byte `offset` of a box written from a
    pattern-aligned shared address (CUDA Programming Guide, "The Swizzle
    Modes": the 16-byte chunk x of 128-byte row y goes to chunk
    (y % (span / 16)) ^ x)."""
    if not span:
        return offset
    y, x = offset // 128, offset % 128 // 16
    return y * 128 + ((y % (span // 16)) ^ x) * 16 + offset % 16


def e4m3_value(b):
    """The value of an e4m3 byte (no NaN codes here)."""
    sign = -1.0 if b & 0x80 else 1.0
    e, m = (b >> 3) & 15, b & 7
    return sign * (m * 2.0 ** -9 if e == 0 else (1 + m / 8) * 2.0 ** (e - 7))


def tma_gemm(so, out, mode, rng, kernel="emu_tma_wgmma"):
    """Runs selftest.cu's emu_tma_wgmma (A [50, 64], B expert 1 of
    [2, 100, 64]) or emu_tma_ring (A [50, 304], B [1, 100, 304]) in `mode`
    on random e4m3 operands into `out`; returns the reference product."""
    k, experts, expert = (64, 2, 1) if kernel == "emu_tma_wgmma" else \
        (304, 1, 0)
    # Exponents -1..1: products and their sums stay exact in f32.
    codes = [s | e << 3 | m for s in (0, 0x80) for e in range(6, 9)
             for m in range(8)]
    a = aligned_bytes(50 * k)
    a[:] = rng.choice(codes, a.size)
    b = aligned_bytes(experts * 100 * k)
    b[:] = rng.choice(codes, b.size)
    value = np.array([e4m3_value(c) for c in range(256)])
    fa = np.zeros((64, k))
    fa[:50] = value[a.reshape(50, k)]
    fb = np.zeros((128, k))
    fb[:100] = value[b.reshape(experts, 100, k)[expert]]
    launch(so, kernel, 1, 128, out, mode,
           [tensor_map(a, [k, 50], [k], [64, 64], 64),
            tensor_map(b, [k, 100, experts], [k, 100 * k], [64, 64, 1], 64)])
    return (fa @ fb.T).astype(np.float32)


def tma_rule(so, kind, mode):
    """Runs a selftest.cu kernel that breaks an mbarrier or TMA rule (by
    `mode`); the emulation must abort."""
    if kind in ("gemm", "ring"):
        tma_gemm(so, (ctypes.c_float * (64 * 128))(), mode,
                 np.random.default_rng(0),
                 "emu_tma_ring" if kind == "ring" else "emu_tma_wgmma")
        return
    f = aligned_bytes(256).view(np.float32)
    tm = tensor_map(f, [64, 1], [256], [64, 1], 0) if mode != 2 else bytes(128)
    launch(so, "emu_mbar_rules", 1, 64, (ctypes.c_float * 64)(), mode, [tm])


def tma_problems(so):
    """The TMA, mbarrier and swizzled-wgmma models (selftest.cu's emu_tma_*
    and emu_mbar_* kernels); [] when all hold."""
    problems = []
    rng = np.random.default_rng(3)
    # Round trip: a [40, 160] u8 matrix (and a [3, 10, 64] tensor) through
    # boxes partly outside on every side, each swizzle span.
    g = aligned_bytes(40 * 160)
    g[:] = rng.integers(0, 256, g.size, dtype=np.uint8)
    g3 = aligned_bytes(3 * 10 * 64)
    g3[:] = rng.integers(0, 256, g3.size, dtype=np.uint8)
    maps, want = [], np.full(5 * 2048, 0xFF, np.uint8)
    for i, span in enumerate((0, 32, 64, 128)):
        inner = span or 64
        c0, c1 = 160 - inner // 2, -3
        maps.append(tensor_map(g, [160, 40], [160], [inner, 16], span))
        for r in range(16):
            for k in range(inner):
                row, col = c1 + r, c0 + k
                v = g[row * 160 + col] if 0 <= row < 40 and col < 160 else 0
                want[2048 * i + swizzled(r * inner + k, span)] = v
    maps.append(tensor_map(g3, [64, 10, 3], [64, 640], [64, 8, 2], 64))
    for e in range(2):
        for r in range(8):
            for k in range(64):
                row, z = 5 + r, 2 + e
                v = g3[z * 640 + row * 64 + k] if row < 10 and z < 3 else 0
                want[4 * 2048 + swizzled((e * 8 + r) * 64 + k, 64)] = v
    for order in ("forward", "reverse"):
        os.environ["MOEC_EMU_ORDER"] = order
        out = (ctypes.c_uint8 * (5 * 2048))()
        launch(so, "emu_tma_roundtrip", 1, 64, out, 160, maps)
        got = np.frombuffer(out, np.uint8)
        if not np.array_equal(got, want):
            bad = int(np.flatnonzero(got != want)[0])
            problems.append(f"{order}: emu_tma_roundtrip: tile {bad // 2048} "
                            f"byte {bad % 2048}: {got[bad]} != {want[bad]}")
        # A read that does not wait for the copy sees poison.
        f = aligned_bytes(256).view(np.float32)
        f[:] = np.arange(64)
        out = (ctypes.c_float * 64)()
        launch(so, "emu_tma_no_wait", 1, 64, out, 0,
               [tensor_map(f, [64, 1], [256], [64, 1], 0)])
        if not all(math.isnan(v) for v in out):
            problems.append(f"{order}: a read without waiting for the TMA "
                            f"copy went unnoticed")
        # wgmma on 64B-swizzled TMA tiles against a plain GEMM (exact:
        # every partial sum fits f32's 24 bits).
        # The same through the GEMM's 3-slot ring over 5 K stages.
        for kernel in ("emu_tma_wgmma", "emu_tma_ring"):
            out = (ctypes.c_float * (64 * 128))()
            ref = tma_gemm(so, out, 0, rng, kernel)
            got = np.frombuffer(out, np.float32).reshape(64, 128)
            if not np.array_equal(got, ref):
                r, c = np.unravel_index(np.argmax(np.abs(got - ref)),
                                        ref.shape)
                problems.append(f"{order}: {kernel}: D[{r}][{c}] = "
                                f"{got[r, c]}, want {ref[r, c]}")
    os.environ.pop("MOEC_EMU_ORDER")
    # Rules the emulation must report (each aborts its process).
    cases = [("rules", 0, "forward", "deadlock", "mbarrier bar+0",
              "no pending arrival or copy can complete"),
             ("rules", 1, "forward", "overshooting"),
             ("rules", 2, "forward", "tensor map not encoded"),
             ("rules", 3, "forward", "has not been seen complete"),
             ("gemm", 1, "forward", "has not seen with mbarrier.try_wait"),
             ("gemm", 2, "reverse", "is still writing"),
             ("ring", 1, "forward", "deadlock", "mbarrier bars+0")]
    for kind, mode, order, *messages in cases:
        code = ("import sys; sys.path.insert(0, %r); "
                "import check_cuda_emulated as c; c.tma_rule(%r, %r, %d)"
                % (HERE, so, kind, mode))
        p = subprocess.run([sys.executable, "-c", code], capture_output=True,
                           text=True, env=dict(os.environ,
                                               MOEC_EMU_ORDER=order))
        if p.returncode == 0 or not all(m in p.stderr for m in messages):
            problems.append(f"{kernel} mode {mode}: {messages} not reported "
                            f"(exit {p.returncode}, "
                            f"{p.stderr.strip()[-400:]!r})")
    return problems


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
    return problems + tma_problems(so)


def run_case(args, tmp, name, source, precision):
    """(label, [(arch, ok, seconds, detail)])."""
    label = f"{name}-{precision}"
    folder = os.path.join(tmp, label)
    os.mkdir(folder)
    models = os.path.join(folder, "models")
    os.mkdir(models)
    artifact = os.path.join(models, label + ".moea")
    t0 = time.time()
    extra = EXTRA_ARCHS.get((name, precision), [])
    # The sm_90a path runs on a fake 9.0 device (so that the runtime encodes
    # the TMA maps), which loads cubin.sm_90a.
    targets = "cpu:host,sm_89" + (",sm_90" if "sm_90a" in extra else "")
    p = subprocess.run([args.moec, source, "-o", artifact,
                        f"--precision={precision}", f"--target={targets}"]
                       + (["--from=moe"] if source.endswith(".mlir") else []),
                       capture_output=True, text=True)
    if p.returncode != 0:
        return label, [("moec", False, time.time() - t0, p.stderr[-3000:])]
    results = []
    for arch in ["sm_89"] + extra:
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
        if arch == "sm_90a":
            env["MOEC_FAKE_CUDA_CC"] = "9.0"
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
                  "missing barrier, divergent barrier, deadlock, TMA, "
                  "mbarrier, swizzled wgmma)")
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
