#!/usr/bin/env python3
"""One artifact, several CPU variants: the runtime runs the best one it can.

Compiles mixtral-tiny and a small MoE layer (bench/moe_layer.py's builder,
hidden 256, 8 experts: GEMMs wide enough for every vector width) with the
default `--target=cpu` (x86-64-v2 plus this machine's level), with the f32
and the FP8 pipelines. Then, with `moec-run`:

- the manifest lists `cpu.so.x86-64-v2` and the host's level (one section
  when they are the same), `--info` says which one runs;
- unforced, the host's level runs; with `MOEC_CPU_FEATURES=x86-64-v2` the
  portable one does (the line `on cpu (cpu.so.x86-64-v2)`), and its outputs
  agree with the host variant's: f32 relative L2 <= 1e-5 (different vector
  widths sum in a different order; measured 3e-7), FP8 `diff` <= 1e-6 (an
  activation's FP8 rounding may flip; measured 2e-10); mixtral-tiny's f32 logits
  from both variants match the transformers reference (relative L2 <= 1e-4);
- an artifact built with only `--target=cpu:x86-64-v4` is refused on a host
  forced down to x86-64-v3 (exit 1, the message names the five AVX-512
  features), and `--info` says why none runs;
- `--target=cpu:host` carries one section, the host's level, with the same
  bytes as that section of the default artifact.

Usage: check_cpu_variants.py --moec moec --moec-run moec-run --data test/data
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import moe_layer  # noqa: E402
import moea  # noqa: E402

LAYER = moe_layer.Layer(hidden=256, experts=8, k=2, inter=192, vocab=64)
LEVELS = ("x86-64-v2", "x86-64-v3", "x86-64-v4")
AVX512 = "avx512bw, avx512cd, avx512dq, avx512f, avx512vl"


def run(cmd, env=None, expect=0):
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != expect:
        raise RuntimeError("exit %d (expected %d): %s\n%s%s" % (
            proc.returncode, expect, " ".join(cmd), proc.stdout, proc.stderr))
    return proc


def forced(level):
    return dict(os.environ, MOEC_CPU_FEATURES=level)


def unforced():
    env = dict(os.environ)
    env.pop("MOEC_CPU_FEATURES", None)
    return env


def rel_l2(x, y):
    return float(np.linalg.norm(x - y) / np.linalg.norm(y))


def diff(x, y):
    return 1.0 - 2.0 * float((x * y).sum()) / float((x * x + y * y).sum())


def cpu_sections(artifact):
    return sorted(n for n in moea.read_sections(artifact) if n.startswith("cpu.so"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--moec", required=True)
    parser.add_argument("--moec-run", dest="moec_run", required=True)
    parser.add_argument("--data", required=True)
    args = parser.parse_args()
    failures = 0

    def check(ok, line):
        nonlocal failures
        print(("PASS " if ok else "FAIL ") + line)
        failures += not ok

    with tempfile.TemporaryDirectory() as tmp:
        moe_layer.build_model(LAYER, tmp, seed=11)
        mixtral = os.path.join(args.data, "mixtral-tiny")
        reference = np.load(os.path.join(mixtral, "reference_logits.npy"))
        with open(os.path.join(mixtral, "prompt.json")) as f:
            prompt = ",".join(str(t) for t in json.load(f)["tokens"])
        layer_ids = ",".join(str((7 * i + 3) % LAYER.vocab) for i in range(16))
        models = [("mixtral-tiny", mixtral, prompt),
                  ("moe-layer", os.path.join(tmp, "moe_layer.onnx"), layer_ids)]

        host = None
        for name, source, ids in models:
            for precision in ("f32", "fp8"):
                artifact = os.path.join(tmp, f"{name}-{precision}.moea")
                run([args.moec, source, "-o", artifact,
                     f"--precision={precision}", "--max-tokens=32"])
                sections = cpu_sections(artifact)
                if host is None:
                    info = run([args.moec_run, artifact, "--info"],
                               unforced()).stdout
                    match = re.search(r"this host runs cpu\.so\.(\S+)", info)
                    host = match.group(1) if match else "?"
                    print(f"host level: {host}")
                want = sorted({"cpu.so.x86-64-v2", f"cpu.so.{host}"})
                check(sections == want,
                      f"{name} {precision}: sections {sections} (want {want})")

                logits = {}
                for label, env in (("host", unforced()),
                                   ("v2", forced("x86-64-v2"))):
                    dump = os.path.join(tmp, f"{name}-{precision}-{label}.npy")
                    out = run([args.moec_run, artifact, "--device", "cpu",
                               "--tokens", ids, "--top", "0", "--dump-logits",
                               dump], env).stdout
                    ran = re.search(r"on cpu \((\S+)\)", out)
                    want_code = ("cpu.so." + host if label == "host"
                                 else "cpu.so.x86-64-v2")
                    check(ran is not None and ran.group(1) == want_code,
                          f"{name} {precision} {label}: runs "
                          f"{ran.group(1) if ran else '?'} (want {want_code})")
                    logits[label] = np.load(dump).astype(np.float64)
                a, b = logits["v2"], logits["host"]
                e, d = rel_l2(a, b), diff(a, b)
                same = bool(np.array_equal(a, b))
                bound = 1e-5 if precision == "f32" else 1e-6
                measure = e if precision == "f32" else d
                check(measure <= bound,
                      f"{name} {precision}: x86-64-v2 vs {host}: "
                      f"{'identical' if same else 'differ'}, relL2={e:.2e} "
                      f"diff={d:.2e} maxabs={float(np.abs(a - b).max()):.2e} "
                      f"(bound {bound:.0e} on "
                      f"{'relL2' if precision == 'f32' else 'diff'})")
                if name == "mixtral-tiny" and precision == "f32":
                    for label, x in logits.items():
                        r = rel_l2(x, reference)
                        check(r <= 1e-4, f"{name} f32 {label} vs transformers: "
                              f"relL2={r:.2e} (<=1e-4)")

        # Only AVX-512 code: refused on a host forced below it.
        v4 = os.path.join(tmp, "v4-only.moea")
        run([args.moec, mixtral, "-o", v4, "--target=cpu:x86-64-v4",
             "--precision=f32"])
        check(cpu_sections(v4) == ["cpu.so.x86-64-v4"],
              f"--target=cpu:x86-64-v4: sections {cpu_sections(v4)}")
        proc = run([args.moec_run, v4, "--device", "cpu", "--tokens", "1,2"],
                   forced("x86-64-v3"), expect=1)
        want = ("no CPU code in the artifact runs on this host "
                "(MOEC_CPU_FEATURES=x86-64-v3), which lacks features the code "
                "needs: cpu.so.x86-64-v4 (x86-64-v4): " + AVX512)
        check(want in proc.stderr and "unavailable" in proc.stderr,
              f"forced to x86-64-v3, the v4-only artifact is refused: "
              f"{proc.stderr.strip()}")
        info = run([args.moec_run, v4, "--info"], forced("x86-64-v3")).stdout
        check("none runs: " + want in info, "--info says why none runs")

        one = os.path.join(tmp, "host-only.moea")
        run([args.moec, mixtral, "-o", one, "--target=cpu:host",
             "--precision=f32", "--max-tokens=32"])
        check(cpu_sections(one) == [f"cpu.so.{host}"],
              f"--target=cpu:host: sections {cpu_sections(one)}")
        # Compiling a second variant first leaves no trace in the next one.
        alone = moea.read_sections(one)[f"cpu.so.{host}"]
        paired = moea.read_sections(os.path.join(
            tmp, "mixtral-tiny-f32.moea"))[f"cpu.so.{host}"]
        check(alone == paired, f"cpu.so.{host} alone and next to "
              "cpu.so.x86-64-v2 are the same bytes")
    print("%s" % ("all passed" if not failures else f"{failures} failed"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
