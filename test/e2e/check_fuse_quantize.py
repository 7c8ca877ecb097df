#!/usr/bin/env python3
"""`--moec-fuse-quantize` does not change the FP8 numbers.

For every tiny checkpoint of test/data (`*-tiny`), compiles the model to the
`fp8` phase twice from the same `fused` IR: with `moec --compile-to=fp8`
(lower-to-fp8, fuse-quantize, canonicalize, CSE) and with the phase as it was
before the fusion (lower-to-fp8, canonicalize, CSE through moec-opt). Both are
run by `moec-interp` on the checkpoint's prompt.json tokens, and the logits
must be bit-identical (compared as raw float32 bits, so NaN and -0.0 count).
The fused IR must also hold at least one fused `quantize` and the unfused IR
none, so that the comparison is not vacuous. Prints, per model, how many
`moe.quantize` the fusion removed and how many it left.

Usage: check_fuse_quantize.py --moec moec --moec-opt moec-opt \
           --interp moec-interp [--data test/data]
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

# The fp8 phase as it was before --moec-fuse-quantize joined it.
UNFUSED_FP8 = "builtin.module(func.func(moec-lower-to-fp8),canonicalize,cse)"


def run(cmd):
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(
            "command failed (exit %d): %s\n%s%s"
            % (proc.returncode, " ".join(cmd), proc.stdout, proc.stderr)
        )
    return proc.stdout


def count_quantize(path):
    """Returns (fused `quantize` attributes, `moe.quantize` ops) in `path`."""
    with open(path) as f:
        text = f.read()
    fused = len(re.findall(r"\bquantize = #moe\.block_scale<", text))
    separate = len(re.findall(r"= moe\.quantize ", text))
    return fused, separate


def logits(interp, mlir, tokens, out):
    if os.path.exists(out):
        os.remove(out)
    run([interp, mlir, "--tokens", tokens, "--dump-logits", out])
    return np.load(out)


def check_model(args, model, tmp):
    model_dir = os.path.join(args.data, model)
    with open(os.path.join(model_dir, "prompt.json")) as f:
        tokens = ",".join(str(t) for t in json.load(f)["tokens"])
    fused_phase = os.path.join(tmp, model + ".fused.mlir")
    with_fusion = os.path.join(tmp, model + ".fp8.mlir")
    without = os.path.join(tmp, model + ".fp8-unfused.mlir")
    run([args.moec, model_dir, "--compile-to=fused", "-o", fused_phase])
    run([args.moec, fused_phase, "--from=fused", "--compile-to=fp8",
         "-o", with_fusion])
    run([args.moec_opt, fused_phase, "--pass-pipeline=" + UNFUSED_FP8,
         "-o", without])

    fused, left = count_quantize(with_fusion)
    unfused_fused, before = count_quantize(without)
    a = logits(args.interp, with_fusion, tokens, os.path.join(tmp, "a.npy"))
    b = logits(args.interp, without, tokens, os.path.join(tmp, "b.npy"))
    same = (
        a.dtype == np.float32
        and a.dtype == b.dtype
        and a.shape == b.shape
        and np.array_equal(a.view(np.uint32), b.view(np.uint32))
    )
    max_abs = (
        float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))
        if a.shape == b.shape
        else float("nan")
    )
    ok = same and fused > 0 and unfused_fused == 0 and before == fused + left
    print(
        "%-22s moe.quantize %2d -> %2d (%2d fused)  logits %s  max-abs %.3e  %s"
        % (
            model,
            before,
            left,
            fused,
            "x".join(str(d) for d in a.shape),
            max_abs,
            "bit-identical" if same else "DIFFER",
        )
    )
    if fused == 0:
        print("  FAIL: nothing was fused")
    if unfused_fused != 0 or before != fused + left:
        print("  FAIL: %d fused in the unfused IR; %d != %d + %d"
              % (unfused_fused, before, fused, left))
    return ok


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--moec", required=True, help="moec binary")
    parser.add_argument("--moec-opt", required=True, help="moec-opt binary")
    parser.add_argument("--interp", required=True, help="moec-interp binary")
    parser.add_argument(
        "--data",
        default=os.path.join(os.path.dirname(__file__), "..", "data"),
        help="folder holding the *-tiny checkpoints",
    )
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
    with tempfile.TemporaryDirectory(prefix="moec-fuse-quantize-") as tmp:
        for model in models:
            try:
                ok = check_model(args, model, tmp)
            except RuntimeError as error:
                print("%s: %s" % (model, error))
                ok = False
            if not ok:
                failures.append(model)
    print("%d models in %.1f s" % (len(models), time.monotonic() - start))
    if failures:
        print("FAILED: " + ", ".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
