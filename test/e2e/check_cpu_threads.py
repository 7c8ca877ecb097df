#!/usr/bin/env python3
"""The CPU kernels' threads do not change a single bit.

Builds a small MoE layer with bench/moe_layer.py's ONNX builder (hidden 256,
8 experts, top-2, expert size 192: its grouped GEMMs are large enough to be
spread over threads), compiles it with the f32 and the FP8 pipelines, runs
each artifact with `moec-run --threads 1` and `--threads 4` (and with
`MOEC_NUM_THREADS=3`) at several token counts, and requires the outputs to be
byte-identical (raw float32 bits, so NaN and -0.0 count). One CPU variant
(`--target=cpu:host`): the split over threads is the same for every variant.

Usage: check_cpu_threads.py --moec moec --moec-run moec-run
"""

import argparse
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import moe_layer  # noqa: E402

LAYER = moe_layer.Layer(hidden=256, experts=8, k=2, inter=192, vocab=64)
COUNTS = (1, 5, 16, 64)


def run(cmd, env=None):
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError("command failed (exit %d): %s\n%s%s" % (
            proc.returncode, " ".join(cmd), proc.stdout, proc.stderr))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--moec", required=True)
    parser.add_argument("--moec-run", dest="moec_run", required=True)
    args = parser.parse_args()
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        moe_layer.build_model(LAYER, tmp, seed=7)
        model = os.path.join(tmp, "moe_layer.onnx")
        for precision in ("f32", "fp8"):
            artifact = os.path.join(tmp, f"layer-{precision}.moea")
            run([args.moec, model, "-o", artifact, f"--precision={precision}",
                 f"--max-tokens={max(COUNTS)}", "--target=cpu:host"])
            for t in COUNTS:
                ids = ",".join(str((7 * i + 3) % LAYER.vocab) for i in range(t))
                outputs = {}
                for label, extra, env in (
                        ("1", ["--threads", "1"], None),
                        ("4", ["--threads", "4"], None),
                        ("env3", [], dict(os.environ, MOEC_NUM_THREADS="3"))):
                    dump = os.path.join(tmp, f"y-{precision}-{t}-{label}.npy")
                    run([args.moec_run, artifact, "--device", "cpu", "--tokens",
                         ids, "--top", "0", "--dump-logits", dump] + extra, env)
                    with open(dump, "rb") as f:
                        outputs[label] = f.read()
                same = all(v == outputs["1"] for v in outputs.values())
                print(f"{precision} T={t}: threads 1/4/env 3 "
                      f"{'bit-identical' if same else 'DIFFER'}")
                failures += not same
    if failures:
        print(f"FAILED: {failures} configuration(s) differ")
        return 1
    print("PASSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
