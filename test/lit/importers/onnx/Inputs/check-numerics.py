#!/usr/bin/env python3
# ===- check-numerics.py - imported ONNX models vs onnxruntime --------------===#
#
# Imports an ONNX test model with `moec --compile-to=<phase>`, runs the result
# in moec-interp (the f32 reference interpreter) on the input saved beside the
# model, and compares with the saved output (onnxruntime's, or the numpy
# reference for the fp8 QMoE model). The initializers are copied into a
# safetensors file because moec-interp reads weights from safetensors.
#
# ===-------------------------------------------------------------------------===#
"""Usage: check-numerics.py MODEL.onnx WORKDIR [--phase moe] [--tol 1e-4]

Prints `max abs diff <d> (tolerance <t>), rel-L2 <r>: OK` or fails. Models whose input is
a float tensor `x` (the MoE block models) are wrapped in a function that
embeds token i as row i of a table holding `x`, which moe.embed copies
exactly. Models with `input_ids` run on their saved `position_ids`; those
with [batch, seq] inputs (batch 1) compare their folded [tokens, vocab]
logits.
"""

import argparse
import json
import os
import re
import struct
import subprocess
import sys

import numpy as np
import onnx
from onnx import numpy_helper

DTYPES = {np.dtype("float32"): "F32", np.dtype("int64"): "I64",
          np.dtype("uint8"): "U8", np.dtype("float16"): "F16"}


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": list(shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("workdir")
    parser.add_argument("--phase", default="moe")
    parser.add_argument("--tol", type=float, default=1e-4)
    args = parser.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    base = os.path.basename(args.model)
    saved = np.load(args.model[: -len(".onnx")] + ".npz")

    tensors = {}
    for init in onnx.load(args.model).graph.initializer:
        if init.data_type == onnx.TensorProto.FLOAT8E4M3FN:
            tensors[init.name] = ("F8_E4M3", init.dims, init.raw_data)
        else:
            array = numpy_helper.to_array(init)
            tensors[init.name] = (DTYPES[array.dtype], array.shape,
                                  array.tobytes())

    ir = subprocess.run(["moec", args.model, f"--compile-to={args.phase}"],
                        check=True, capture_output=True, text=True).stdout
    ir = ir.replace(f'"{base}"', '"model.safetensors"')
    if "x" in saved.files:
        # Feed the float input through an embedding of rows 0..T-1.
        x = saved["x"]
        tensors["__x"] = ("F32", x.shape, x.astype(np.float32).tobytes())
        ir = ir.replace("func.func @forward(", "func.func @block(")
        ty = f"tensor<?x{x.shape[1]}xf32>"
        table = f"tensor<{x.shape[0]}x{x.shape[1]}xf32>"
        wrapper = f"""
  func.func @forward(%tokens: tensor<?xi64>, %positions: tensor<?xi64>) -> {ty} {{
    %table = moe.weight [#moe.tensor_ref<"model.safetensors", "__x">] stored {table} : {table}
    %x = moe.embed %table, %tokens : {table}, tensor<?xi64> -> {ty}
    %y = func.call @block(%x) : ({ty}) -> {ty}
    return %y : {ty}
  }}
}}"""
        ir = ir[: ir.rstrip().rfind("}")] + wrapper
        tokens = list(range(x.shape[0]))
        expected = saved["y"]
    else:
        # [batch, seq] models (batch 1) import with the batch folded into
        # the tokens.
        tokens = saved["input_ids"].ravel().tolist()
        expected = saved["logits"].reshape(len(tokens), -1)
    positions = []
    if "position_ids" in saved.files:
        positions = ["--positions",
                     ",".join(map(str, saved["position_ids"].ravel()))]
    write_safetensors(os.path.join(args.workdir, "model.safetensors"), tensors)
    with open(os.path.join(args.workdir, "config.json"), "w") as f:
        f.write("{}\n")
    mlir = os.path.join(args.workdir, "model.mlir")
    with open(mlir, "w") as f:
        f.write(ir)
    out = os.path.join(args.workdir, "out.npy")
    subprocess.run(["moec-interp", mlir, "--checkpoint", args.workdir,
                    "--tokens", ",".join(map(str, tokens)), *positions,
                    "--dump-logits", out], check=True, capture_output=True)
    got = np.load(out)
    diff = float(np.abs(got - expected).max())
    verdict = "OK" if got.shape == expected.shape and diff <= args.tol else "FAIL"
    rel = float(np.linalg.norm(got - expected) / np.linalg.norm(expected))
    print(f"{base}: max abs diff {diff:.3g} (tolerance {args.tol:g}), "
          f"rel-L2 {rel:.3g}: {verdict}")
    return 0 if verdict == "OK" else 1


if __name__ == "__main__":
    sys.exit(main())
