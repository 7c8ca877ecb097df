#!/usr/bin/env python3
# ===- moe_layer.py - one MoE layer: moec (f32, FP8) vs onnxruntime ---------===#
#
# Builds an MoE layer with DeepSeek-V2-Lite's routed-expert shapes as an ONNX
# model (com.microsoft.MoE, interleaved SwiGLU, seeded random weights stored
# as external data), runs it with onnxruntime on the CPU and with moec-run on
# an f32 and an FP8 artifact, and prints median times, tokens/s, the ratios
# and the error of each moec build against onnxruntime.
#
# ===-------------------------------------------------------------------------===#
"""Benchmarks one MoE layer: moec (f32 and FP8 artifacts) vs onnxruntime.

Usage (from the repository root, after scripts/setup.sh):
    .venv/bin/python bench/moe_layer.py            # DeepSeek-V2-Lite shapes
    .venv/bin/python bench/moe_layer.py --quick    # a small layer, < 1 minute

The model is `y = MoE(x)` with `x = Embedding[ids]`: the C API of moec feeds
i32 token ids, so a Gather from a [vocab, hidden] table in front turns the
token ids both runtimes receive into the float activations of the layer. The
router is `x · Wg` (softmax over the experts, top-k, renormalised) and the
experts are SwiGLU. See bench/README.md for what is measured and how.
"""

import argparse
import dataclasses
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto as TP
from onnx import helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL_NAME = "moe_layer.onnx"
DATA_NAME = "moe_layer.onnx.data"
# External data is aligned so that onnxruntime can map it in place.
ALIGN = 4096


@dataclasses.dataclass(frozen=True)
class Layer:
    """The shapes of one MoE layer (routed experts only)."""
    hidden: int
    experts: int
    k: int
    inter: int
    vocab: int

    def flops(self, tokens):
        """Multiply-adds x 2 of the router and the k experts' three GEMMs."""
        return 2 * tokens * self.hidden * (self.experts
                                           + 3 * self.k * self.inter)

    def weight_bytes(self):
        return 4 * (self.vocab * self.hidden + self.hidden * self.experts
                    + 3 * self.experts * self.inter * self.hidden)


# DeepSeek-V2-Lite: hidden 2048, 64 routed experts, top-6, moe_intermediate
# 1408, softmax routing (its 2 shared experts are left out: onnxruntime's MoE
# op has none). The vocabulary is only the embedding in front of the layer.
FULL = Layer(hidden=2048, experts=64, k=6, inter=1408, vocab=1024)
QUICK = Layer(hidden=512, experts=16, k=6, inter=352, vocab=256)

# Bounds on moec vs onnxruntime (the correctness line). f32 must agree to
# rounding; FP8 is reported with DESIGN.md section 4's `diff` (the e2e tests
# bound it by 2e-2 on logits).
F32_REL_L2 = 1e-4
FP8_DIFF = 2e-2


# ===----------------------------------------------------------------------===#
# The ONNX model
# ===----------------------------------------------------------------------===#


class ExternalData:
    """Streams tensors into one external-data file next to the model and
    returns initializers that point at them (location relative to the model's
    folder, as moec's ONNX reader requires)."""

    def __init__(self, folder):
        self.file = open(os.path.join(folder, DATA_NAME), "wb")
        self.offset = 0

    def tensor(self, name, shape, chunks):
        """Writes the float32 arrays of `chunks` one after the other as the
        tensor `name` of `shape` and returns its TensorProto."""
        pad = -self.offset % ALIGN
        self.file.write(b"\0" * pad)
        self.offset += pad
        start = self.offset
        for chunk in chunks:
            data = np.ascontiguousarray(chunk, dtype=np.float32).tobytes()
            self.file.write(data)
            self.offset += len(data)
        length = self.offset - start
        assert length == 4 * int(np.prod(shape)), name
        proto = TP()
        proto.name = name
        proto.data_type = TP.FLOAT
        proto.dims.extend(shape)
        proto.data_location = TP.EXTERNAL
        for key, value in (("location", DATA_NAME), ("offset", str(start)),
                           ("length", str(length))):
            entry = proto.external_data.add()
            entry.key, entry.value = key, value
        return proto

    def close(self):
        self.file.close()


def build_model(layer, folder, seed):
    """Writes `folder/moe_layer.onnx` and its external data. Weights are
    drawn expert by expert, so memory stays at one expert's weights."""
    h, e, i = layer.hidden, layer.experts, layer.inter
    rng = np.random.default_rng(seed)
    data = ExternalData(folder)

    def normal(shape, scale):
        return rng.standard_normal(shape, dtype=np.float32) * np.float32(scale)

    # Activations of unit scale, router logits of unit scale, and experts
    # scaled like a trained layer (outputs of the order of the inputs).
    embed = data.tensor("embed.weight", [layer.vocab, h],
                        [normal((layer.vocab, h), 1.0)])
    gate = data.tensor("mlp.gate.weight", [h, e], [normal((h, e), h ** -0.5)])

    def fc1_rows():
        # onnxruntime's fused SwiGLU (swiglu_fusion = 1): rows g0, u0, g1, ...
        for _ in range(e):
            w1, w3 = normal((i, h), h ** -0.5), normal((i, h), h ** -0.5)
            yield np.stack([w1, w3], axis=1).reshape(2 * i, h)

    fc1 = data.tensor("mlp.fc1", [e, 2 * i, h], fc1_rows())
    fc2 = data.tensor("mlp.fc2", [e, h, i],
                      (normal((h, i), i ** -0.5) for _ in range(e)))
    data.close()

    nodes = [
        helper.make_node("Gather", ["embed.weight", "input_ids"], ["x"],
                         name="embed", axis=0),
        helper.make_node("MatMul", ["x", "mlp.gate.weight"], ["router_logits"],
                         name="mlp.router"),
        helper.make_node("MoE", ["x", "router_logits", "mlp.fc1", "",
                                 "mlp.fc2"], ["y"], name="mlp.moe",
                         domain="com.microsoft", k=layer.k,
                         activation_type="swiglu", swiglu_fusion=1,
                         normalize_routing_weights=1),
    ]
    graph = helper.make_graph(
        nodes, "moe_layer",
        [helper.make_tensor_value_info("input_ids", TP.INT32, ["T"])],
        [helper.make_tensor_value_info("y", TP.FLOAT, ["T", h])],
        [embed, gate, fc1, fc2])
    model = helper.make_model(
        graph, producer_name="moec-bench",
        opset_imports=[helper.make_opsetid("", 21),
                       helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 10
    # moec's importer needs the types of the values between the nodes.
    model = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    onnx.save(model, os.path.join(folder, MODEL_NAME))


def prepare_model(layer, folder, seed, regenerate):
    """Builds the model unless `folder` already holds this layer and seed."""
    stamp_path = os.path.join(folder, "layer.json")
    stamp = dict(dataclasses.asdict(layer), seed=seed)
    if not regenerate and os.path.exists(stamp_path):
        with open(stamp_path) as f:
            if json.load(f) == stamp:
                return False
    os.makedirs(folder, exist_ok=True)
    if os.path.exists(stamp_path):
        os.remove(stamp_path)
    build_model(layer, folder, seed)
    with open(stamp_path, "w") as f:
        json.dump(stamp, f)
    return True


# ===----------------------------------------------------------------------===#
# Running
# ===----------------------------------------------------------------------===#


def median_min_ms(times):
    return float(np.median(times)) * 1e3, float(np.min(times)) * 1e3


def ort_session(path, threads):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, options,
                                providers=["CPUExecutionProvider"])


def run_ort(session, ids, repeat):
    """Median and minimum ms of `repeat` runs (the first included, as
    moec-run does) and the output of the last."""
    feeds = {"input_ids": ids}
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        (y,) = session.run(None, feeds)
        times.append(time.perf_counter() - start)
    return median_min_ms(times), y


def compile_moec(tools, model, artifact, precision, max_tokens):
    """Compiles `model` with moec; returns seconds and the precision line."""
    start = time.perf_counter()
    result = subprocess.run(
        [os.path.join(tools, "moec"), model, "-o", artifact,
         f"--precision={precision}", f"--max-tokens={max_tokens}"],
        capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"moe_layer.py: moec --precision={precision} failed:\n"
                 + result.stdout + result.stderr)
    summary = re.search(r"precision: *(.*)", result.stdout + result.stderr)
    return seconds, summary.group(1).strip() if summary else "?"


def run_moec(tools, artifact, ids, repeat, dump, threads):
    """Runs moec-run with `threads` CPU threads; returns ((median ms, min ms),
    load ms, output)."""
    result = subprocess.run(
        [os.path.join(tools, "moec-run"), artifact, "--device", "cpu",
         "--tokens", ",".join(str(t) for t in ids), "--top", "0",
         "--threads", str(threads),
         "--repeat", str(repeat), "--dump-logits", dump],
        capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"moe_layer.py: moec-run {artifact} failed:\n"
                 + result.stdout + result.stderr)
    run = re.search(r"run: median ([0-9.]+) ms .*\(min ([0-9.]+) ms",
                    result.stdout)
    load = re.search(r"load: ([0-9.]+) ms", result.stdout)
    return ((float(run.group(1)), float(run.group(2))), float(load.group(1)),
            np.load(dump))


def errors(got, want):
    """Relative L2, DESIGN.md's diff and max-abs of `got` against `want`."""
    got, want = got.astype(np.float64), want.astype(np.float64)
    rel = np.linalg.norm(got - want) / np.linalg.norm(want)
    diff = 1 - 2 * (got * want).sum() / (got * got + want * want).sum()
    return rel, diff, np.abs(got - want).max()


# ===----------------------------------------------------------------------===#
# Main
# ===----------------------------------------------------------------------===#


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def parse_args():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help=f"a small layer ({QUICK.hidden} hidden, "
                        f"{QUICK.experts} experts, top-{QUICK.k}, expert "
                        f"{QUICK.inter}) instead of DeepSeek-V2-Lite's")
    parser.add_argument("--tokens", default="1,128",
                        help="comma-separated token counts (default 1,128)")
    parser.add_argument("--repeat", type=int,
                        help="runs per configuration (default 20 quick, 10 full)")
    parser.add_argument("--threads", type=int, default=1,
                        help="threads of both runtimes: onnxruntime's intra-op "
                        "threads and moec-run --threads (default 1)")
    parser.add_argument("--out",
                        help="folder for the model, its weights and the "
                        "artifacts (default: out/bench/moe_layer-{quick,full} "
                        "in the repository, which git ignores)")
    parser.add_argument("--regenerate", action="store_true",
                        help="rebuild the ONNX model even if --out holds one "
                        "of the same shapes and seed")
    parser.add_argument("--keep-artifacts", action="store_true",
                        help="keep the .moea files (deleted by default: the "
                        "f32 one is as large as the weights)")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--tools", default=os.path.join(ROOT, "build", "tools"),
                        help="where moec and moec-run are (default build/tools)")
    return parser.parse_args()


def main():
    args = parse_args()
    layer = QUICK if args.quick else FULL
    repeat = args.repeat or (20 if args.quick else 10)
    counts = [int(t) for t in args.tokens.split(",")]
    max_tokens = max(counts)
    name = "quick" if args.quick else "full"
    folder = os.path.abspath(args.out or os.path.join(ROOT, "out", "bench",
                                                      f"moe_layer-{name}"))
    for tool in ("moec", "moec-run"):
        if not os.access(os.path.join(args.tools, tool), os.X_OK):
            sys.exit(f"moe_layer.py: {args.tools}/{tool} not found "
                     "(build first: scripts/setup.sh)")

    print(f"moe_layer ({name}): hidden {layer.hidden}, {layer.experts} routed "
          f"experts, top-{layer.k} softmax (renormalised), expert "
          f"{layer.inter}, SwiGLU; embedding [{layer.vocab}, {layer.hidden}] "
          "in front")
    print(f"date {datetime.datetime.now().isoformat(timespec='seconds')}, "
          f"{os.cpu_count()} CPUs ({cpu_model()}), load average "
          + " ".join(f"{v:.2f}" for v in os.getloadavg())
          + f", onnxruntime {ort.__version__} with {args.threads} intra-op "
          f"thread(s), moec-run --threads {args.threads}, {repeat} runs each")

    phases = []

    def phase(label, start):
        seconds = time.perf_counter() - start
        phases.append((label, seconds))
        print(f"  [{seconds:7.1f} s] {label}", flush=True)

    start = time.perf_counter()
    built = prepare_model(layer, folder, args.seed, args.regenerate)
    phase(f"{'built' if built else 'reused'} the ONNX model "
          f"({layer.weight_bytes() / 2**20:.0f} MiB of f32 weights in "
          f"{os.path.join(folder, DATA_NAME)})", start)
    model_path = os.path.join(folder, MODEL_NAME)

    ids_rng = np.random.default_rng(args.seed + 1)
    all_ids = ids_rng.integers(0, layer.vocab, size=max_tokens, dtype=np.int32)

    # onnxruntime: the reference output and its timing for every count.
    start = time.perf_counter()
    session = ort_session(model_path, args.threads)
    phase("onnxruntime: session created", start)
    ort_ms, reference = {}, {}
    for t in counts:
        start = time.perf_counter()
        ort_ms[t], reference[t] = run_ort(session, all_ids[:t], repeat)
        phase(f"onnxruntime: {repeat} runs at {t} tokens", start)
    del session

    rows = []
    for precision in ("f32", "fp8"):
        artifact = os.path.join(folder, f"moe_layer-{precision}.moea")
        start = time.perf_counter()
        seconds, summary = compile_moec(args.tools, model_path, artifact,
                                        precision, max_tokens)
        phase(f"moec --precision={precision}: compiled "
              f"({os.path.getsize(artifact) / 2**20:.0f} MiB; {summary})",
              start)
        for t in counts:
            start = time.perf_counter()
            dump = os.path.join(folder, f"y-{precision}-{t}.npy")
            times, load_ms, y = run_moec(args.tools, artifact, all_ids[:t],
                                         repeat, dump, args.threads)
            os.remove(dump)
            phase(f"moec-run {precision}: load {load_ms:.0f} ms + {repeat} "
                  f"runs at {t} tokens", start)
            rows.append((precision, t, times, errors(y, reference[t])))
        if not args.keep_artifacts:
            os.remove(artifact)

    print()
    # Rates and the ratio use the median; the minimum shows the noise.
    print(f"{'tokens':>6}  {'runtime':<16} {'median ms':>10} {'min ms':>10} "
          f"{'tokens/s':>9} {'GFLOP/s':>8} {'time vs ort':>11}")

    def line(t, label, times, ratio):
        ms, fastest = times
        print(f"{t:>6}  {label:<16} {ms:>10.3f} {fastest:>10.3f} "
              f"{t / ms * 1e3:>9.1f} {layer.flops(t) / ms * 1e-6:>8.1f} "
              f"{ratio:>11}")

    for t in counts:
        line(t, "onnxruntime f32", ort_ms[t], "")
        for precision, count, times, _ in rows:
            if count == t:
                line(t, "moec " + precision, times,
                     f"{times[0] / ort_ms[t][0]:.2f}x")
    print()
    failed = False
    for precision, t, _, (rel, diff, max_abs) in rows:
        if precision == "f32":
            ok = rel <= F32_REL_L2
            bound = f"rel-l2 <= {F32_REL_L2:g}"
        else:
            ok = diff <= FP8_DIFF
            bound = f"diff <= {FP8_DIFF:g}"
        failed |= not ok
        print(f"correctness moec {precision} vs onnxruntime, {t} tokens: "
              f"rel-l2 {rel:.3e} diff {diff:.3e} max-abs {max_abs:.3e} "
              f"({bound}: {'ok' if ok else 'FAIL'})")
    print(f"total {sum(s for _, s in phases):.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
