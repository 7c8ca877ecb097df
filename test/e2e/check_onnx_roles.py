"""The FP8 policy flags on an ONNX model whose names say nothing.

Rewrites test/data/onnx/decoder_tiny.onnx with the `onnx` package into a
temporary folder, renaming every initializer to `w0`, `w1`, ..., every other
tensor between nodes to `t0`, `t1`, ... and every node to `n0`, `n1`, ...
(graph inputs and outputs keep their names). The ONNX importer gives weights
their `#moe.role` from the graph's structure (docs/importers-onnx.md), so for
each policy (the default, --fp8-keep-attention, --fp8-keep-lm-head=false,
--fp8-keep-first-layers=1, --fp8-keep-last-layers=1) the `fp8` phase of the
renamed model must give every weight the same role and layer and quantize
exactly the weights it quantizes on the original names; each flag must
change which weights are quantized compared with the default, and the
weights of the roles or layers it names must stay unquantized. Artifacts of
both models under the default policy and under --fp8-keep-attention
--fp8-keep-first-layers=1 must produce bit-identical logits under moec-run.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
import onnx

POLICIES = {
    "default": [],
    "keep-attention": ["--fp8-keep-attention"],
    "lower-lm-head": ["--fp8-keep-lm-head=false"],
    "keep-first-layers": ["--fp8-keep-first-layers=1"],
    "keep-last-layers": ["--fp8-keep-last-layers=1"],
}


def rename(source, target):
    """Writes `source` with every name inside the graph replaced."""
    model = onnx.load(source)
    graph = model.graph
    keep = {v.name for v in graph.input} | {v.name for v in graph.output}
    names = {}
    for i, init in enumerate(graph.initializer):
        names[init.name] = f"w{i}"
    for node in graph.node:
        for output in node.output:
            if output and output not in keep and output not in names:
                names[output] = f"t{len(names)}"
    for init in graph.initializer:
        init.name = names[init.name]
    for i, node in enumerate(graph.node):
        node.name = f"n{i}"
        node.input[:] = [names.get(n, n) for n in node.input]
        node.output[:] = [names.get(n, n) for n in node.output]
    for info in graph.value_info:
        info.name = names.get(info.name, info.name)
    onnx.save(model, target)


WEIGHT = re.compile(r"= moe\.weight \[(.*?)\] stored .*?(?: role <([^>]*)>)?"
                    r"( \{[^\n]*)? : ")


def weights(moec, model, flags):
    """(role, quantized) of every moe.weight at the fp8 phase, in IR order."""
    ir = subprocess.run([moec, model, "--compile-to=fp8"] + flags,
                        check=True, capture_output=True, text=True).stdout
    found = []
    for match in WEIGHT.finditer(ir):
        role = match.group(2) or "unknown"
        quantized = "#moe.quantize" in (match.group(3) or "")
        found.append((role, quantized))
    if not found:
        raise RuntimeError(f"no moe.weight in the fp8 phase of {model}")
    return found


def quantized_roles(found):
    return sorted(role for role, quantized in found if quantized)


def run_logits(args, model, flags, tokens, folder):
    artifact = os.path.join(folder, "model.moea")
    logits = os.path.join(folder, "logits.npy")
    subprocess.run([args.moec, model, "-o", artifact] + flags, check=True,
                   capture_output=True, text=True)
    subprocess.run([args.moec_run, artifact, "--tokens",
                    ",".join(str(t) for t in tokens), "--dump-logits", logits],
                   check=True, capture_output=True, text=True)
    return np.load(logits)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--moec", required=True)
    parser.add_argument("--moec-run", dest="moec_run", required=True)
    parser.add_argument("--data", required=True)
    args = parser.parse_args()

    original = os.path.join(args.data, "onnx", "decoder_tiny.onnx")
    tokens = np.load(os.path.join(args.data, "onnx",
                                  "decoder_tiny.npz"))["input_ids"].tolist()
    failures = []

    def check(ok, what):
        print(("ok    " if ok else "FAIL  ") + what)
        if not ok:
            failures.append(what)

    with tempfile.TemporaryDirectory() as tmp:
        renamed = os.path.join(tmp, "anonymous.onnx")
        rename(original, renamed)
        hints = ("q_proj", "layers", "lm_head", "gate", "experts", "norm",
                 "embed")
        names = [i.name for i in onnx.load(renamed).graph.initializer]
        check(not any(h in n for n in names for h in hints),
              f"no initializer of the renamed model names its role "
              f"({len(names)} initializers)")

        results = {}
        for policy, flags in POLICIES.items():
            before = weights(args.moec, original, flags)
            after = weights(args.moec, renamed, flags)
            results[policy] = after
            check(before == after,
                  f"{policy}: the renamed model's {len(after)} weights have "
                  f"the original's roles and FP8 choices "
                  f"({len(quantized_roles(after))} quantized)")

        default = results["default"]
        roles = [role for role, _ in default]
        check(all(role != "unknown" for role in roles),
              "default: every weight of the renamed model has a role")
        for policy in POLICIES:
            if policy != "default":
                check(quantized_roles(results[policy]) !=
                      quantized_roles(default),
                      f"{policy}: quantizes other weights than the default")

        def layer(role):
            match = re.search(r"layer = (\d+)", role)
            return int(match.group(1)) if match else None

        layers = [layer(role) for role in roles if layer(role) is not None]
        check(bool(layers), "default: weights have decoder layers")
        last = max(layers, default=-1)
        check(not any(q and role.startswith("attn_")
                      for role, q in results["keep-attention"]),
              "keep-attention: no attention projection is quantized")
        check(any(q and role.startswith("attn_") for role, q in default),
              "default: attention projections are quantized")
        check(any(q and role == "lm_head"
                  for role, q in results["lower-lm-head"]),
              "lower-lm-head: the lm_head is quantized")
        check(not any(q and role == "lm_head" for role, q in default),
              "default: the lm_head is kept")
        check(not any(q and layer(role) == 0
                      for role, q in results["keep-first-layers"]),
              "keep-first-layers=1: nothing of layer 0 is quantized")
        check(not any(q and layer(role) == last
                      for role, q in results["keep-last-layers"]),
              f"keep-last-layers=1: nothing of layer {last} is quantized")

        for flags in ([], ["--fp8-keep-attention",
                           "--fp8-keep-first-layers=1"]):
            a = run_logits(args, original, flags, tokens, tmp)
            b = run_logits(args, renamed, flags, tokens, tmp)
            check(a.shape == b.shape and np.array_equal(a, b),
                  f"logits {' '.join(flags) or '(default policy)'}: renamed "
                  f"and original are bit-identical {a.shape}")

    if failures:
        print(f"{len(failures)} check(s) failed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
