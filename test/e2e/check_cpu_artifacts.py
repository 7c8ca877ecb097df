"""End to end on the CPU: checkpoint -> moec -> .moea -> moec-run -> logits.

For every tiny Hugging Face checkpoint in test/data (and the ONNX tiny
decoders; decoder_batched feeds its saved positions), compiles an artifact
with the f32 and the FP8 pipelines, runs it with moec-run on the saved prompt
and compares the logits with the saved reference (transformers, or
onnxruntime for ONNX): f32 relative L2 <= 1e-4, FP8 `diff` (DESIGN.md
section 4) <= 2e-2. The ONNX MoE-block models, whose input is an f32
activation, run the same way with `moec-run --input` on the `.npz` input `x`
and are compared on output `y` (onnxruntime, or the numpy reference for
qmoe_fp8_deepseek; std_ops_router and std_ops_elementwise import op by op
into the generic token-wise ops). Each artifact carries the default CPU
variants (x86-64-v2 and this machine's level) and runs twice: as detected,
and forced down to the portable code with `MOEC_CPU_FEATURES=x86-64-v2`;
both must meet the bounds. Prints every measured value.

deepseek_v3-tiny is checked with --fp8-keep-attention: with its bf16 MLA
projections also in FP8 its `diff` is 4.4e-2 (measured 2026-11-28), above the
bound; the default-policy value is printed for the record and must stay
below 1e-1 so that a regression still fails.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

import numpy as np


def diff(x, y):
    return 1.0 - 2.0 * float((x * y).sum()) / float((x * x + y * y).sum())


def rel_l2(x, y):
    return float(np.linalg.norm(x - y) / np.linalg.norm(x))


def input_name(args, artifact):
    """The name of the artifact's first input, from `moec-run --info`."""
    info = subprocess.run([args.moec_run, artifact, "--info"], check=True,
                          capture_output=True, text=True).stdout
    match = re.search(r"^inputs:\n\s+(\S+):", info, re.MULTILINE)
    if not match:
        raise RuntimeError(f"no inputs in moec-run --info:\n{info}")
    return match.group(1)


# The CPU code each artifact runs: as detected, and the portable variant.
VARIANTS = (("host", None), ("x86-64-v2", "x86-64-v2"))


def run(args, source, tokens, extra, tmp):
    """Compiles `source` with `extra` flags and runs it on `tokens` (a list
    of token ids, an f32 activation array fed with --input, or a dict of
    named input arrays) once per entry of VARIANTS; returns output 0 of each
    as float64, by label."""
    artifact = os.path.join(tmp, "model.moea")
    logits = os.path.join(tmp, "logits.npy")
    inputs = os.path.join(tmp, "input.npy")
    for path in (artifact, logits, inputs):
        if os.path.exists(path):
            os.remove(path)
    subprocess.run([args.moec, source, "-o", artifact] + extra, check=True,
                   capture_output=True, text=True)
    if isinstance(tokens, dict):
        feed = []
        for name, array in tokens.items():
            path = os.path.join(tmp, f"input_{name}.npy")
            np.save(path, array)
            feed += ["--input", f"{name}={path}"]
        feed += ["--dump-output", logits]
    elif isinstance(tokens, np.ndarray):
        np.save(inputs, tokens)
        feed = ["--input", f"{input_name(args, artifact)}={inputs}",
                "--dump-output", logits]
    else:
        feed = ["--tokens", ",".join(str(t) for t in tokens),
                "--dump-logits", logits]
    outputs = {}
    for label, features in VARIANTS:
        env = dict(os.environ)
        env.pop("MOEC_CPU_FEATURES", None)
        if features:
            env["MOEC_CPU_FEATURES"] = features
        subprocess.run([args.moec_run, artifact] + feed, check=True,
                       capture_output=True, text=True, env=env)
        outputs[label] = np.load(logits).astype(np.float64)
        os.remove(logits)
    return outputs


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--moec", required=True)
    parser.add_argument("--moec-run", dest="moec_run", required=True)
    parser.add_argument("--data", required=True)
    args = parser.parse_args()

    cases = []
    for name in sorted(os.listdir(args.data)):
        folder = os.path.join(args.data, name)
        if not name.endswith("-tiny") or not os.path.isdir(folder):
            continue
        tokens = json.load(open(os.path.join(folder, "prompt.json")))["tokens"]
        reference = np.load(os.path.join(folder, "reference_logits.npy"))
        keep = ["--fp8-keep-attention"] if name == "deepseek_v3-tiny" else []
        cases.append((name, folder, tokens, reference, keep))
    onnx = os.path.join(args.data, "onnx", "decoder_tiny.onnx")
    ref = np.load(os.path.join(args.data, "onnx", "decoder_tiny.npz"))
    cases.append(("onnx/decoder_tiny", onnx, ref["input_ids"].tolist(),
                  ref["logits"], []))
    # [batch, seq] inputs (batch 1) fold into tokens; the saved positions
    # start at 5.
    ref = np.load(os.path.join(args.data, "onnx", "decoder_batched.npz"))
    cases.append(("onnx/decoder_batched",
                  os.path.join(args.data, "onnx", "decoder_batched.onnx"),
                  {"tokens": ref["input_ids"].ravel(),
                   "positions": ref["position_ids"].ravel()},
                  ref["logits"].reshape(ref["input_ids"].size, -1), []))
    for block in ("moe_contrib", "moe_std_softmax", "moe_std_sigmoid",
                  "qmoe_fp8_deepseek", "qmoe_int8_deepseek",
                  "qmoe_int4_deepseek",
                  "std_ops_router", "std_ops_elementwise"):
        ref = np.load(os.path.join(args.data, "onnx", block + ".npz"))
        cases.append((f"onnx/{block}",
                      os.path.join(args.data, "onnx", block + ".onnx"),
                      np.ascontiguousarray(ref["x"], dtype=np.float32),
                      ref["y"], []))

    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, source, tokens, reference, keep in cases:
            x = reference.astype(np.float64)
            f32s = run(args, source, tokens, ["--precision=f32"], tmp)
            fp8s = run(args, source, tokens, keep, tmp)
            f32, fp8 = f32s["host"], fp8s["host"]
            e32, d8 = rel_l2(x, f32), diff(x, fp8)
            # The portable code against the same bounds.
            p32 = rel_l2(x, f32s["x86-64-v2"])
            p8 = diff(x, fp8s["x86-64-v2"])
            ok = max(e32, p32) <= 1e-4 and max(d8, p8) <= 2e-2
            line = (f"{name:24s} f32 relL2={e32:.2e} (<=1e-4)  "
                    f"fp8{' ' + ' '.join(keep) if keep else ''} diff={d8:.2e} "
                    f"(<=2e-2) relL2={rel_l2(x, fp8):.2e}  argmax f32 "
                    f"{int((x.argmax(1) == f32.argmax(1)).sum())}/{len(x)}  "
                    f"x86-64-v2: f32 relL2={p32:.2e} fp8 diff={p8:.2e}")
            if keep:
                default = diff(x, run(args, source, tokens, [], tmp)["host"])
                line += f"  [default policy diff={default:.2e}, must be <1e-1]"
                ok = ok and default < 1e-1
            print(("PASS " if ok else "FAIL ") + line)
            failures += not ok
    print(f"{len(cases) - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
