"""Every test model compiles to an artifact with CUDA code for three GPUs.

For each tiny Hugging Face checkpoint and each ONNX test model, with the f32
and the FP8 pipelines, `moec --target=cpu:host,sm_80,sm_89,sm_90` must write an
artifact whose `kernels.cu` NVRTC compiled into `cubin.sm_80`,
`cubin.sm_89` and `cubin.sm_90a`; every step must have CUDA launches, and
every launched kernel must be a global function of every cubin (what the
runtime's cuModuleGetFunction will look up). No GPU is needed.

With `--out DIR` the artifacts also go to DIR for `gpu-check` on a GPU
machine: `NAME.moea`, and for token models `NAME.tokens.txt` and the
reference `NAME.logits.npy` (docs/runtime-cuda.md). The CPU code is compiled
for this machine's variant only (`cpu:host`): this test is about the CUDA
code, and a second CPU variant would double the CPU compile time.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import moea  # noqa: E402

CUBINS = {"sm_80": "cubin.sm_80", "sm_89": "cubin.sm_89",
          "sm_90": "cubin.sm_90a"}


def cases(data):
    """(name, source, tokens or None, reference logits (a path or an array)
    or None)."""
    found = []
    for name in sorted(os.listdir(data)):
        folder = os.path.join(data, name)
        if not name.endswith("-tiny") or not os.path.isdir(folder):
            continue
        tokens = json.load(open(os.path.join(folder, "prompt.json")))["tokens"]
        found.append((name, folder, tokens,
                      os.path.join(folder, "reference_logits.npy")))
    onnx = os.path.join(data, "onnx")
    ref = np.load(os.path.join(onnx, "decoder_tiny.npz"))
    found.append(("onnx_decoder_tiny", os.path.join(onnx, "decoder_tiny.onnx"),
                  ref["input_ids"].tolist(), ref["logits"]))
    # decoder_batched's reference is at positions 5.. (gpu-check feeds the
    # tokens at the default positions 0..T-1), so it gets check (a) only.
    found.append(("onnx_decoder_batched",
                  os.path.join(onnx, "decoder_batched.onnx"), None, None))
    # The MoE blocks take an f32 activation, no tokens: check (a) only.
    # std_ops_router and std_ops_elementwise import op by op into the
    # generic token-wise ops (GenericEmitter.cpp).
    for block in ("moe_contrib", "moe_std_softmax", "moe_std_sigmoid",
                  "qmoe_fp8_deepseek", "qmoe_int8_deepseek",
                  "qmoe_int4_deepseek", "std_ops_router",
                  "std_ops_elementwise"):
        found.append((f"onnx_{block}", os.path.join(onnx, block + ".onnx"),
                      None, None))
    return found


def check(path, targets):
    """Problems with the CUDA code of the artifact at `path`."""
    problems = []
    sections = moea.read_sections(path)
    if "kernels.cu" not in sections:
        return ["no kernels.cu section"], 0, 0
    manifest = moea.decode_manifest(sections["manifest"])
    steps = len(manifest["steps"])
    launched = {launch["kernel"] for step in manifest["steps"]
                for launch in step["cuda"]}
    if any(not step["cuda"] for step in manifest["steps"]):
        problems.append("a step has no CUDA launch")
    source = sections["kernels.cu"].decode()
    for target in targets:
        cubin = sections.get(CUBINS[target])
        if cubin is None:
            problems.append(f"no {CUBINS[target]} section")
            continue
        missing = launched - moea.elf_functions(cubin)
        if missing:
            problems.append(f"{CUBINS[target]} lacks {sorted(missing)[:5]}")
    missing = [k for k in launched if k not in source]
    if missing:
        problems.append(f"kernels.cu does not define {missing[:5]}")
    return problems, steps, len(launched)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moec", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--targets", default="sm_80,sm_89,sm_90")
    parser.add_argument("--out", help="also write the gpu-check bundle here")
    parser.add_argument("--precision", action="append",
                        choices=("f32", "fp8"),
                        help="only these pipelines (default: both)")
    parser.add_argument("--moec-arg", action="append", default=[],
                        help="one more moec option for every artifact, e.g. "
                        "--moec-arg=--cuda-tma=false")
    args = parser.parse_args()
    targets = args.targets.split(",")

    failures = 0
    total = 0
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        for name, source, tokens, reference in cases(args.data):
            for precision in args.precision or ("f32", "fp8"):
                total += 1
                label = f"{name}-{precision}"
                path = os.path.join(tmp, label + ".moea")
                t0 = time.time()
                run = subprocess.run(
                    [args.moec, source, "-o", path, f"--precision={precision}",
                     "--target=cpu:host," + ",".join(targets), *args.moec_arg],
                    capture_output=True, text=True)
                seconds = time.time() - t0
                if run.returncode != 0:
                    print(f"FAIL {label}: moec failed:\n{run.stderr[-3000:]}")
                    failures += 1
                    continue
                problems, steps, kernels = check(path, targets)
                status = "FAIL" if problems else "PASS"
                print(f"{status} {label:34s} {steps:3d} steps, {kernels:3d} "
                      f"kernels, cubins {','.join(targets)} in {seconds:5.1f} s"
                      + ("" if not problems else ": " + "; ".join(problems)))
                failures += bool(problems)
                if args.out and not problems:
                    os.makedirs(args.out, exist_ok=True)
                    shutil.copy(path, os.path.join(args.out, label + ".moea"))
                    if tokens is not None:
                        with open(os.path.join(args.out, label + ".tokens.txt"),
                                  "w") as f:
                            f.write(",".join(str(t) for t in tokens) + "\n")
                    if reference is not None:
                        logits = (np.load(reference) if isinstance(reference, str)
                                  else reference)
                        np.save(os.path.join(args.out, label + ".logits.npy"),
                                logits.astype(np.float32))
    print(f"{total - failures} passed, {failures} failed "
          f"({time.time() - started:.0f} s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
