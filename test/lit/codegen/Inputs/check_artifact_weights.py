#!/usr/bin/env python3
"""Checks the weights section of a .moea artifact against its checkpoint.

Independent of the compiler: the container is parsed from docs/artifact.md, the
manifest is decoded by `flatc --json`, the checkpoint is read as raw safetensors
and FP8 references are computed with numpy + ml_dtypes (DESIGN.md section 4:
amax over finite values, floored at 1e-4, / 448, optionally rounded up to a power
of two; saturating cast). Every check compares bytes exactly.

usage: check_artifact_weights.py --artifact A.moea --checkpoint DIR|MODEL.onnx
                                 --schema manifest.fbs --mode {fp8,f32,pow2,fp8-checkpoint,onnx}
"""

import argparse
import json
import os
import re
import struct
import subprocess
import sys
import tempfile

import ml_dtypes
import numpy as np

F8 = ml_dtypes.float8_e4m3fn
DTYPES = {"F32": np.float32, "BF16": ml_dtypes.bfloat16, "F8E4M3FN": F8,
          "I32": np.int32}
ST_DTYPES = {"F32": np.float32, "BF16": ml_dtypes.bfloat16, "F8_E4M3": F8}
checks = 0


def fail(message):
    print(f"FAIL: {message}")
    sys.exit(1)


def expect(condition, message):
    global checks
    checks += 1
    if not condition:
        fail(message)


# --- the container and its manifest -------------------------------------------------

def read_sections(data):
    """{name: bytes} of the sections of a format 2.0 artifact (160-byte trailer)."""
    table, count = struct.unpack_from("<QI", data, len(data) - 160)
    sections = {}
    for i in range(count):
        _, _, _, _, off, size, _, _, name = struct.unpack_from(
            "<IHBBQQII32s", data, table + 64 * i)
        sections[name.rstrip(b"\0").decode()] = data[off:off + size]
    return sections


def decode_manifest(raw, schema):
    """The FlatBuffers manifest as a dict, every field present."""
    with tempfile.TemporaryDirectory() as tmp:
        binary = os.path.join(tmp, "manifest.bin")
        with open(binary, "wb") as f:
            f.write(raw)
        subprocess.run(["flatc", "--json", "--strict-json", "--defaults-json", "-o", tmp,
                        schema, "--", binary], check=True, capture_output=True)
        with open(os.path.join(tmp, "manifest.json")) as f:
            return json.load(f)


class Artifact:
    def __init__(self, path, schema):
        data = open(path, "rb").read()
        self.sections = read_sections(data)
        self.manifest = decode_manifest(self.sections["manifest"], schema)
        self.weights = self.manifest["weights"]
        self.by_name = {}
        for w in self.weights:
            self.by_name.setdefault(w["name"], []).append(w)

    def weight(self, name, dtype=None):
        found = [w for w in self.by_name.get(name, [])
                 if dtype is None or w["dtype"] == dtype]
        expect(len(found) >= 1, f"the artifact has no weight {name!r} ({dtype}); it has "
               f"{sorted(self.by_name)}")
        return found[0]

    def array(self, w):
        dtype = DTYPES[w["dtype"]]
        off, size = w["offset"], w["bytes"]
        raw = self.sections["weights"][off:off + size]
        return np.frombuffer(raw, dtype=dtype).reshape(w["shape"])

    def scale_of(self, w):
        expect("scale" in w, f"{w['name']} has no scale")
        (scale,) = [s for s in self.weights if s["id"] == w["scale"]]
        return self.array(scale)


def check_layout(art):
    """Every weight 64-byte aligned, inside the section, exact size, zeros between."""
    section = art.sections["weights"]
    spans = sorted((w["offset"], w["bytes"], w["name"]) for w in art.weights)
    end = 0
    for off, size, name in spans:
        expect(off % 64 == 0, f"{name}: offset {off} is not 64-byte aligned")
        expect(off >= end, f"{name}: overlaps the weight before it")
        expect(not any(section[end:off]), f"padding before {name} is not zero")
        elem = np.dtype(DTYPES[[w for w in art.weights if w["name"] == name][0]
                               ["dtype"]]).itemsize
        shape = [w for w in art.weights if w["name"] == name][0]["shape"]
        expect(size == int(np.prod(shape)) * elem, f"{name}: {size} bytes for {shape}")
        end = off + size
    expect(end == len(section), f"section of {len(section)} bytes, weights end at {end}")


# --- the checkpoint and the FP8 reference --------------------------------------------

class Checkpoint:
    def __init__(self, folder):
        self.tensors = {}
        for name in sorted(os.listdir(folder)):
            if not name.endswith(".safetensors"):
                continue
            data = open(os.path.join(folder, name), "rb").read()
            (n,) = struct.unpack_from("<Q", data, 0)
            header = json.loads(data[8:8 + n])
            for key, info in header.items():
                if key == "__metadata__":
                    continue
                begin, end = info["data_offsets"]
                self.tensors[key] = np.frombuffer(
                    data[8 + n + begin:8 + n + end],
                    dtype=ST_DTYPES[info["dtype"]]).reshape(info["shape"])

    def __getitem__(self, name):
        return self.tensors[name]


def quantize(x, block=(128, 128), pow2=False):
    """DESIGN.md section 4 on the last two dimensions of x (f32)."""
    x = np.asarray(x, dtype=np.float32)
    rows, cols = x.shape[-2:]
    br, bc = block
    nr, nc = -(-rows // br), -(-cols // bc)
    q = np.empty(x.shape, dtype=F8)
    scales = np.empty(x.shape[:-2] + (nr, nc), dtype=np.float32)
    for index in np.ndindex(*x.shape[:-2]):
        for i in range(nr):
            for j in range(nc):
                tile = x[index][i * br:(i + 1) * br, j * bc:(j + 1) * bc]
                finite = tile[np.isfinite(tile)]
                amax = np.float32(np.abs(finite).max()) if finite.size else np.float32(0)
                scale = np.float32(max(amax, np.float32(1e-4)) / np.float32(448))
                if pow2:
                    scale = np.float32(2.0 ** np.ceil(np.log2(np.float64(scale))))
                scales[index + (i, j)] = scale
                q[index][i * br:(i + 1) * br, j * bc:(j + 1) * bc] = np.clip(
                    tile / scale, -448, 448).astype(F8)
    return q, scales


def same_bytes(got, want, what):
    expect(got.shape == want.shape, f"{what}: shape {got.shape}, expected {want.shape}")
    expect(got.dtype == want.dtype, f"{what}: dtype {got.dtype}, expected {want.dtype}")
    differ = np.count_nonzero(got.view(np.uint8) != want.view(np.uint8))
    expect(differ == 0, f"{what}: {differ} bytes differ")
    print(f"ok: {what} {list(got.shape)} {got.dtype} equals the reference byte for byte")


# --- what each build must hold -------------------------------------------------------

def experts(ckpt, layer, proj):
    prefix = f"model.layers.{layer}.block_sparse_moe.experts"
    return [ckpt[f"{prefix}.{e}.{proj}.weight"] for e in range(8)]


def check_mixtral(art, ckpt, mode):
    pow2 = mode == "pow2"
    # bf16 tensors kept as stored: embeddings, norms, router gate, lm_head.
    for name in ["model.embed_tokens.weight", "model.layers.0.input_layernorm.weight",
                 "model.layers.1.post_attention_layernorm.weight", "model.norm.weight",
                 "model.layers.1.block_sparse_moe.gate.weight", "lm_head.weight"]:
        same_bytes(art.array(art.weight(name)), ckpt[name], name)
    gate_up = "concat(model.layers.{0}.block_sparse_moe.experts.*.w1.weight, " \
              "model.layers.{0}.block_sparse_moe.experts.*.w3.weight)"
    qkv = "concat(" + ", ".join(f"model.layers.{{0}}.self_attn.{p}_proj.weight"
                                for p in "qkv") + ")"
    for layer in (0, 1):
        w1, w3, w2 = (np.stack(experts(ckpt, layer, p)) for p in ("w1", "w3", "w2"))
        if mode == "f32":
            # Stacked in expert order, gate rows then up rows per expert, as bf16.
            fused = art.array(art.weight(gate_up.format(layer)))
            same_bytes(fused, np.concatenate([w1, w3], axis=1),
                       f"layer {layer} stacked experts w1|w3")
            same_bytes(art.array(art.weight(
                f"model.layers.{layer}.block_sparse_moe.experts.*.w2.weight")), w2,
                f"layer {layer} stacked experts w2")
            continue
        # Quantized while streaming, one expert at a time.
        down = art.weight(f"model.layers.{layer}.block_sparse_moe.experts.*.w2.weight",
                          "F8E4M3FN")
        expect(down["block_shape"] == [128, 128], f"w2 block shape {down['block_shape']}")
        q, s = quantize(w2.astype(np.float32), pow2=pow2)
        same_bytes(art.array(down), q, f"layer {layer} FP8 experts w2")
        same_bytes(art.scale_of(down), s, f"layer {layer} FP8 experts w2 scales")
        # Gate/up rows are not a multiple of 128: concatenated, then quantized.
        fused = art.weight(f"quantize({gate_up.format(layer)})")
        q, s = quantize(np.concatenate([w1, w3], axis=1).astype(np.float32), pow2=pow2)
        same_bytes(art.array(fused), q, f"layer {layer} FP8 experts w1|w3")
        same_bytes(art.scale_of(fused), s, f"layer {layer} FP8 experts w1|w3 scales")
        attn = f"model.layers.{layer}.self_attn."
        fused = art.weight(f"quantize({qkv.format(layer)})")
        q, s = quantize(np.concatenate([ckpt[attn + f"{p}_proj.weight"] for p in "qkv"])
                        .astype(np.float32), pow2=pow2)
        same_bytes(art.array(fused), q, f"layer {layer} FP8 q|k|v")
        same_bytes(art.scale_of(fused), s, f"layer {layer} FP8 q|k|v scales")
        o = art.weight(attn + "o_proj.weight")
        q, s = quantize(ckpt[attn + "o_proj.weight"].astype(np.float32), pow2=pow2)
        same_bytes(art.array(o), q, f"layer {layer} FP8 o_proj")
        same_bytes(art.scale_of(o), s, f"layer {layer} FP8 o_proj scales")


def check_fp8_checkpoint(art, ckpt):
    # Stored FP8 passes straight through, with its weight_scale_inv.
    for name in ["model.layers.0.self_attn.o_proj.weight",
                 "model.layers.0.mlp.down_proj.weight"]:
        w = art.weight(name, "F8E4M3FN")
        same_bytes(art.array(w), ckpt[name], name)
        same_bytes(art.scale_of(w), ckpt[name + "_scale_inv"], name + " scales")
    count = len([k for k in ckpt.tensors if re.fullmatch(
        r"model\.layers\.1\.mlp\.experts\.\d+\.down_proj\.weight", k)])
    stacked = art.weight("model.layers.1.mlp.experts.*.down_proj.weight", "F8E4M3FN")
    prefix = "model.layers.1.mlp.experts"
    same_bytes(art.array(stacked),
               np.stack([ckpt[f"{prefix}.{e}.down_proj.weight"] for e in range(count)]),
               f"{count} stacked FP8 experts")
    same_bytes(art.scale_of(stacked),
               np.stack([ckpt[f"{prefix}.{e}.down_proj.weight_scale_inv"]
                         for e in range(count)]), f"{count} stacked expert scales")


def check_onnx(art, path):
    # Initializers read through the ONNX reader; MatMul weights are stored [K, N] and
    # transposed (#moe.transpose) while streaming.
    import onnx
    from onnx import numpy_helper
    inits = {i.name: numpy_helper.to_array(i) for i in onnx.load(path).graph.initializer}
    same_bytes(art.array(art.weight("embed_tokens.weight")), inits["embed_tokens.weight"],
               "ONNX embed_tokens.weight")
    same_bytes(art.array(art.weight("lm_head.weight")),
               np.ascontiguousarray(inits["lm_head.weight"].T), "ONNX lm_head.weight, transposed")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--artifact", required=True)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--schema", required=True)
    parser.add_argument("--mode", choices=["fp8", "f32", "pow2", "fp8-checkpoint", "onnx"],
                        required=True)
    args = parser.parse_args()
    art = Artifact(args.artifact, args.schema)
    check_layout(art)
    if args.mode == "onnx":
        check_onnx(art, args.checkpoint)
        print(f"PASS: {checks} checks, {len(art.weights)} weights")
        return
    ckpt = Checkpoint(args.checkpoint)
    if args.mode == "fp8-checkpoint":
        check_fp8_checkpoint(art, ckpt)
    else:
        check_mixtral(art, ckpt, args.mode)
    print(f"PASS: {checks} checks, {len(art.weights)} weights")


if __name__ == "__main__":
    main()
