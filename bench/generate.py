#!/usr/bin/env python3
# ===- generate.py - whole-model generation: moec (FP8, bf16) vs PyTorch -----===#
#
# Compiles the Qwen3-30B-A3B-shaped checkpoint of make_qwen3_moe_bench.py with
# a KV cache (FP8 and bf16 weights), times prefill and decode with
# `moec-run --generate`, times PyTorch/transformers on the same checkpoint
# with a DynamicCache (bf16 and f32), and prints one markdown table.
#
# ===-------------------------------------------------------------------------===#
"""Whole-model generation benchmark: moec (FP8, bf16) vs PyTorch.

Usage (from the repository root; needs build/tools and the .venv-gen of
test/data/README.md, which has torch and transformers):
    .venv/bin/python bench/make_qwen3_moe_bench.py     # the checkpoint
    .venv-gen/bin/python bench/generate.py              # about 30 minutes
    .venv-gen/bin/python bench/generate.py --quick      # b1/b8 at 100 only

Cases: prefill of one 128-token prompt; decode at batch 1 and 8 after
prompts of 100 and 2000 tokens (the decode steps run at positions 100.. and
2000..). Both runtimes decode greedily through the EOS ids and get the same
thread count. See bench/README.md for what is timed on each side.
"""

import argparse
import datetime
import json
import os
import re
import statistics
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (name, batch, prompt length, decode steps timed). Prefill is timed on the
# "prefill" case only (one step of 128 rows); decode cases time their decode
# steps only.
CASES = [
    ("prefill T=128", 1, 128, 0),
    ("decode b1 @100", 1, 100, 16),
    ("decode b8 @100", 8, 100, 16),
    ("decode b1 @2000", 1, 2000, 16),
]
# Optional (--long-batch): 16,000 prompt rows to prefill per run.
LONG_BATCH = ("decode b8 @2000", 8, 2000, 8)
QUICK_CASES = ("prefill T=128", "decode b1 @100", "decode b8 @100")

# The artifact's (and PyTorch's) prefill chunk: one generation step's rows.
MAX_TOKENS = 128

# What the Qwen3MoeConfig that transformers builds from the folder must say:
# the widths of Qwen/Qwen3-30B-A3B (its config.json on the Hub).
EXPECTED_WIDTHS = {
    "hidden_size": 2048, "num_attention_heads": 32, "num_key_value_heads": 4,
    "head_dim": 128, "num_experts": 128, "num_experts_per_tok": 8,
    "moe_intermediate_size": 768, "vocab_size": 151936, "norm_topk_prob": True,
    "rms_norm_eps": 1e-6, "tie_word_embeddings": False,
}


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def load_average():
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def cpu_facts():
    """CPU model, count and the flags that pick a CPU code path."""
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = re.search(r"Model name:\s*(.*)", out)
    flags = re.search(r"Flags:\s*(.*)", out)
    flags = set(flags.group(1).split()) if flags else set()
    wanted = ["avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16"]
    have = [f for f in wanted if f in flags]
    return (model.group(1).strip() if model else "unknown CPU",
            os.cpu_count(), have)


def prompts_for(batch, length, vocab, seed):
    """`batch` seeded prompts of `length` ids below `vocab`."""
    rng = np.random.default_rng(seed + 1000 * batch + length)
    return rng.integers(0, vocab, size=(batch, length)).tolist()


# ===----------------------------------------------------------------------===#
# moec
# ===----------------------------------------------------------------------===#


def compile_moec(args, precision, path):
    cmd = [os.path.join(args.tools, "moec"), args.checkpoint, "--kv-cache=bf16",
           f"--precision={precision}", f"--max-tokens={MAX_TOKENS}",
           "--max-sequences=8", "-o", path]
    start = time.time()
    subprocess.run(cmd, check=True)
    log(f"moec --precision={precision}: {time.time() - start:.1f} s, "
        f"{os.path.getsize(path) / 2**30:.2f} GiB")


def run_moec(args, artifact, prompts, steps, scratch):
    """One moec-run; returns (prefill tok/s, decode tok/s, ids, code path)."""
    path = os.path.join(scratch, "prompts.txt")
    with open(path, "w") as f:
        for p in prompts:
            f.write(",".join(map(str, p)) + "\n")
    cmd = [os.path.join(args.tools, "moec-run"), artifact, "--prompts", path,
           "--generate", str(steps + 1), "--ignore-eos", "--verify=full",
           "--threads", str(args.threads)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    prefill = float(re.search(r"^prefill: .*\(([\d.]+) tokens/s\)", out, re.M).group(1))
    decode = float(re.search(r"^decode: .*\(([\d.]+) tokens/s\)", out, re.M).group(1))
    device = re.search(r"^model: .* on (.*), \d+ sequences?", out, re.M).group(1)
    ids = [list(map(int, m.group(1).split()))
           for m in re.finditer(r"^\[\d+\] ([\d ]+)  \(", out, re.M)]
    return prefill, decode, ids, device


# ===----------------------------------------------------------------------===#
# PyTorch
# ===----------------------------------------------------------------------===#


def load_torch(args, dtype_name):
    import torch
    from transformers import AutoModelForCausalLM
    dtype = {"bf16": torch.bfloat16, "f32": torch.float32}[dtype_name]
    start = time.time()
    model = AutoModelForCausalLM.from_pretrained(args.checkpoint, dtype=dtype)
    model.eval()
    cfg = model.config
    for key, want in EXPECTED_WIDTHS.items():
        got = getattr(cfg, key)
        assert got == want, f"config {key} = {got}, Qwen3-30B-A3B has {want}"
    assert cfg.model_type == "qwen3_moe"
    rope = getattr(cfg, "rope_parameters", None) or {}
    assert rope.get("rope_theta", getattr(cfg, "rope_theta", None)) == 1e6, rope
    # Warm-up (oneDNN primitives, allocator), as moec-run's load is not timed.
    run_torch(model, [[1] * 16], 2)
    log(f"PyTorch {dtype_name}: loaded and warmed up in {time.time() - start:.1f} s "
        f"(attention {cfg._attn_implementation}, experts "
        f"{getattr(cfg, '_experts_implementation_internal', None)})")
    return model


def run_torch(model, prompts, steps):
    """Greedy generation with a DynamicCache, prefill chunked by MAX_TOKENS.

    Returns (prefill tok/s, decode tok/s, ids). As in transformers'
    generate(), each forward computes logits for the last row only.
    """
    import torch
    from transformers import DynamicCache
    ids = torch.tensor(prompts, dtype=torch.long)
    batch, length = ids.shape
    cache = DynamicCache(config=model.config)
    out = []
    with torch.inference_mode():
        start = time.perf_counter()
        for s in range(0, length, MAX_TOKENS):
            chunk = ids[:, s:s + MAX_TOKENS]
            logits = model(input_ids=chunk, cache=cache, use_cache=True,
                           logits_to_keep=1).logits
        token = logits[:, -1].argmax(-1, keepdim=True)
        prefill_s = time.perf_counter() - start
        out.append(token)
        start = time.perf_counter()
        for _ in range(steps):
            logits = model(input_ids=token, cache=cache, use_cache=True,
                           logits_to_keep=1).logits
            token = logits[:, -1].argmax(-1, keepdim=True)
            out.append(token)
        decode_s = time.perf_counter() - start
    ids_out = torch.cat(out, dim=1).tolist()
    return (batch * length / prefill_s,
            batch * steps / decode_s if steps else 0.0, ids_out)


# ===----------------------------------------------------------------------===#
# Driver
# ===----------------------------------------------------------------------===#


def fmt(x):
    return f"{x:.1f}" if x < 100 else f"{x:.0f}"


def agreement(a, b):
    """Leading greedy ids two runs share, summed over the sequences."""
    same = 0
    for x, y in zip(a, b):
        for u, v in zip(x, y):
            if u != v:
                break
            same += 1
    return same


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=os.path.join(ROOT, "out", "bench", "qwen3_moe-2l"))
    ap.add_argument("--tools", default=os.path.join(ROOT, "build", "tools"))
    ap.add_argument("--threads", type=int, default=2,
                    help="moec-run --threads and torch.set_num_threads (default 2)")
    ap.add_argument("--repeat", type=int, default=3, help="rounds per case (median; default 3)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="only " + ", ".join(QUICK_CASES))
    ap.add_argument("--cases", help="comma-separated case names (default all)")
    ap.add_argument("--torch", default="bf16",
                    help="PyTorch dtypes: bf16, f32 or both (default bf16; '' for none)")
    ap.add_argument("--moec", default="fp8,bf16", help="moec builds (default fp8,bf16)")
    ap.add_argument("--long-batch", action="store_true",
                    help="also decode at batch 8 after 2000-token prompts")
    ap.add_argument("--keep-artifacts", action="store_true")
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args(argv)

    cases = CASES + ([LONG_BATCH] if args.long_batch else [])
    if args.quick:
        cases = [c for c in CASES if c[0] in QUICK_CASES]
    if args.cases:
        names = args.cases.split(",")
        cases = [c for c in CASES + [LONG_BATCH] if c[0] in names]
    with open(os.path.join(args.checkpoint, "config.json")) as f:
        cfg = json.load(f)
    vocab, layers = cfg["vocab_size"], cfg["num_hidden_layers"]
    model_name, ncpu, flags = cpu_facts()
    log(f"checkpoint {args.checkpoint}: {layers} layers; {ncpu} CPUs, {model_name}, "
        f"flags {' '.join(flags)}; load {load_average()}")

    scratch = os.path.join(args.checkpoint, "moea")
    os.makedirs(scratch, exist_ok=True)
    results = {}  # (runtime, case) -> (prefill, decode)
    ids = {}
    devices = set()
    loads = []

    # Every runtime, as a function of (prompts, steps) returning
    # (prefill tok/s, decode tok/s, ids, CPU code or "").
    builds = {"fp8": ("fp8", "moec FP8"), "bf16": ("f32", "moec bf16")}
    runtimes = []
    artifacts = []
    for key in filter(None, args.moec.split(",")):
        precision, label = builds[key]
        artifact = os.path.join(scratch, f"bench-{key}.moea")
        if not os.path.exists(artifact):
            compile_moec(args, precision, artifact)
        artifacts.append(artifact)
        runtimes.append((label, lambda p, n, a=artifact: run_moec(args, a, p, n, scratch)))
    torch_versions = ""
    if args.torch:
        import torch
        import transformers
        torch.set_num_threads(args.threads)
        torch_versions = f"torch {torch.__version__}, transformers {transformers.__version__}"
        for dtype_name in args.torch.split(","):
            model = load_torch(args, dtype_name)
            runtimes.append((f"PyTorch {dtype_name}",
                             lambda p, n, m=model: run_torch(m, p, n) + ("",)))

    # Each case runs every runtime in turn, `repeat` rounds, so that a
    # change in the machine's load falls on all of them alike.
    for name, batch, length, steps in cases:
        prompts = prompts_for(batch, length, vocab, args.seed)
        runs = {label: [] for label, _ in runtimes}
        for _ in range(args.repeat):
            for label, fn in runtimes:
                start = time.time()
                r = fn(prompts, steps)
                runs[label].append(r)
                loads.append(os.getloadavg()[0])
                if r[3]:
                    devices.add(r[3])
                log(f"{label} {name}: prefill {fmt(r[0])}, decode {fmt(r[1])} tok/s "
                    f"({time.time() - start:.0f} s, load {load_average()})")
        for label, rs in runs.items():
            results[(label, name)] = (statistics.median(r[0] for r in rs),
                                      statistics.median(r[1] for r in rs))
            ids[(label, name)] = rs[0][2]
    if not args.keep_artifacts:
        for artifact in artifacts:
            os.remove(artifact)

    # The table: each moec build against each PyTorch dtype.
    print()
    print(f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {model_name}, "
          f"{ncpu} CPUs ({' '.join(flags)}), {args.threads} threads each, "
          f"{layers} layers, {args.repeat} runs per case (median); "
          f"load average (1 min) {min(loads):.1f}-{max(loads):.1f} during the runs; "
          f"moec CPU code: {', '.join(sorted(devices))}; {torch_versions}")
    print()
    print("| case | moec | PyTorch | moec tok/s | PyTorch tok/s | ratio |")
    print("|---|---|---|---|---|---|")
    moecs = [builds[k][1] for k in filter(None, args.moec.split(","))]
    torches = [f"PyTorch {d}" for d in filter(None, args.torch.split(","))]
    for name, _, _, _ in cases:
        which = 0 if name.startswith("prefill") else 1
        for m in moecs:
            for t in torches:
                a, b = results[(m, name)][which], results[(t, name)][which]
                print(f"| {name} | {m[5:]} | {t[8:]} | {fmt(a)} | {fmt(b)} | {a / b:.2f}x |")
    print()
    # The acceptance, per moec build.
    for m in moecs:
        r = {n: results[(m, n)][1] for n, _, _, _ in cases if not n.startswith("prefill")}
        if "decode b1 @100" in r and "decode b1 @2000" in r:
            cost = r["decode b1 @100"] / r["decode b1 @2000"]
            print(f"{m}: decode cost at 2000 / at 100 (batch 1) = {cost:.2f} (want <= 1.5)")
        if "decode b8 @2000" in r and "decode b8 @100" in r:
            cost = r["decode b8 @100"] / r["decode b8 @2000"]
            print(f"{m}: decode cost at 2000 / at 100 (batch 8) = {cost:.2f}")
        for pos in ("100", "2000"):
            if f"decode b1 @{pos}" in r and f"decode b8 @{pos}" in r:
                gain = r[f"decode b8 @{pos}"] / r[f"decode b1 @{pos}"]
                print(f"{m}: batch-8 / batch-1 decode tokens/s at {pos} = {gain:.2f} (want >= 2)")
    # Greedy ids: random weights give small margins, so FP8 and bf16 parts
    # may part early; this only shows the runs computed the same model.
    if "decode b1 @100" in [c[0] for c in cases]:
        for m in moecs:
            for t in torches:
                a, b = ids.get((m, "decode b1 @100")), ids.get((t, "decode b1 @100"))
                if a and b:
                    print(f"{m} vs {t}, decode b1 @100: first {agreement(a, b)} of "
                          f"{len(b[0])} greedy ids agree")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({f"{k[0]} | {k[1]}": v for k, v in results.items()}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
