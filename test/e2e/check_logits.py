#!/usr/bin/env python3
"""Numeric check of the HF importer through the reference interpreter.

Runs every tiny checkpoint of test/data (`*-tiny`) through `moec-interp`
(HF importer -> moe IR -> naive f32 interpreter) on its prompt.json tokens and
compares the logits with reference_logits.npy (transformers, f32, eager):
relative L2 error <= --tol (1e-4) for every model, FP8 included (its
reference is the dequantized model). Prints max-abs, rel-L2, the DESIGN.md §4
`diff` metric and the argmax agreement per model. Also checks the first
moe.rope's inverse frequencies and cos/sin scale against reference.json, and,
with --moec, the same logits through the printed IR of each of --phases.
Exits non-zero on any failure.

Usage: check_logits.py --interp path/to/moec-interp [--moec path/to/moec]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np


def diff_metric(x, y):
    """DESIGN.md §4: 1 - 2*sum(xy) / sum(x^2 + y^2)."""
    x = x.astype(np.float64)
    y = y.astype(np.float64)
    return 1.0 - 2.0 * np.sum(x * y) / np.sum(x * x + y * y)


def run(cmd):
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(
            "command failed (exit %d): %s\n%s%s"
            % (proc.returncode, " ".join(cmd), proc.stdout, proc.stderr)
        )
    return proc.stdout


def compare(name, got, ref, tol):
    """Prints one line of metrics and returns whether `got` passes."""
    if got.shape != ref.shape:
        print("%-34s FAIL: shape %s, reference %s" % (name, got.shape, ref.shape))
        return False
    err = got.astype(np.float64) - ref.astype(np.float64)
    max_abs = float(np.max(np.abs(err)))
    rel_l2 = float(np.linalg.norm(err) / np.linalg.norm(ref.astype(np.float64)))
    agree = int(np.sum(np.argmax(got, axis=-1) == np.argmax(ref, axis=-1)))
    ok = bool(np.all(np.isfinite(got))) and rel_l2 <= tol
    print(
        "%-34s max-abs %.3e  rel-L2 %.3e  diff %.3e  argmax %d/%d  %s"
        % (
            name,
            max_abs,
            rel_l2,
            diff_metric(got, ref),
            agree,
            ref.shape[0],
            "ok" if ok else "FAIL (rel-L2 > %g)" % tol,
        )
    )
    return ok


def check_rope(interp, source, model_dir):
    """Compares the first moe.rope's frequencies with reference.json."""
    with open(os.path.join(model_dir, "reference.json")) as f:
        reference = json.load(f)
    if "rope_inv_freq" not in reference:
        return True
    got = json.loads(run([interp, source, "--print-rope"]))
    want = np.array(reference["rope_inv_freq"], dtype=np.float64)
    freqs = np.array(got["inv_freq"], dtype=np.float64)
    scale = reference.get("rope_cos_sin_scaling", 1.0)
    ok = (
        freqs.shape == want.shape
        and np.allclose(freqs, want, rtol=1e-6, atol=0.0)
        and abs(got["cos_sin_scale"] - scale) <= 1e-12
    )
    if not ok:
        print(
            "  rope FAIL: inv_freq %s (want %s), cos/sin scale %r (want %r)"
            % (freqs.tolist(), want.tolist(), got["cos_sin_scale"], scale)
        )
    return ok


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--interp", required=True, help="moec-interp binary")
    parser.add_argument("--moec", help="moec binary (checks printed IR too)")
    parser.add_argument(
        "--phases",
        default="import,moe",
        help="phases whose printed IR is also interpreted (with --moec)",
    )
    parser.add_argument(
        "--data",
        default=os.path.join(os.path.dirname(__file__), "..", "data"),
        help="folder holding the *-tiny checkpoints",
    )
    parser.add_argument("--tol", type=float, default=1e-4, help="max rel-L2")
    args = parser.parse_args()

    models = sorted(
        d
        for d in os.listdir(args.data)
        if d.endswith("-tiny") and os.path.isdir(os.path.join(args.data, d))
    )
    if not models:
        print("no *-tiny checkpoints in %s" % args.data)
        return 1
    failures = []
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="moec-e2e-") as tmp:
        for model in models:
            model_dir = os.path.join(args.data, model)
            with open(os.path.join(model_dir, "prompt.json")) as f:
                tokens = ",".join(str(t) for t in json.load(f)["tokens"])
            ref = np.load(os.path.join(model_dir, "reference_logits.npy"))
            sources = [("checkpoint", model_dir)]
            if args.moec:
                for phase in filter(None, args.phases.split(",")):
                    mlir = os.path.join(tmp, "%s.%s.mlir" % (model, phase))
                    try:
                        run([args.moec, model_dir, "--compile-to=" + phase,
                             "-o", mlir])
                    except RuntimeError as error:
                        print("%s (%s): %s" % (model, phase, error))
                        failures.append("%s/%s" % (model, phase))
                        continue
                    sources.append((phase + " IR", mlir))
            for label, source in sources:
                name = "%s (%s)" % (model, label)
                out = os.path.join(tmp, "logits.npy")
                if os.path.exists(out):
                    os.remove(out)
                try:
                    run([args.interp, source, "--tokens", tokens,
                         "--dump-logits", out])
                    ok = compare(name, np.load(out), ref, args.tol)
                    if label == "checkpoint":
                        ok = check_rope(args.interp, source, model_dir) and ok
                except RuntimeError as error:
                    print("%s: %s" % (name, error))
                    ok = False
                if not ok:
                    failures.append(name)
    print("%d models in %.1f s" % (len(models), time.monotonic() - start))
    if failures:
        print("FAILED: " + ", ".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
