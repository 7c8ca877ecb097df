#!/usr/bin/env python3
# ===- make_qwen3_moe_bench.py - a Qwen3-30B-A3B-shaped random checkpoint ----===#
#
# Writes a Hugging Face checkpoint folder (config.json, generation_config.json,
# model.safetensors in bf16) with exactly the widths of Qwen/Qwen3-30B-A3B but
# only a few decoder layers and seeded random weights, for the whole-model
# generation benchmark (bench/generate.py). Needs only numpy.
#
# ===-------------------------------------------------------------------------===#
"""Writes a Qwen3-30B-A3B-shaped checkpoint with random weights.

Usage (from the repository root):
    .venv/bin/python bench/make_qwen3_moe_bench.py            # 2 layers
    .venv/bin/python bench/make_qwen3_moe_bench.py --layers 4 --out DIR

The folder defaults to out/bench/qwen3_moe-<L>l/ (git ignores out/). The
safetensors file is written tensor by tensor (bf16, Hub tensor names, one
file), so memory stays near one tensor's f32 draw. The same seed and layer
count give a byte-identical folder.
"""

import argparse
import json
import os
import struct
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Qwen/Qwen3-30B-A3B's config.json as published on the Hub (transformers
# 4.51 wrote it; Qwen3MoeConfig reads it). Only num_hidden_layers (48 there)
# is replaced. bench/generate.py checks these widths against the
# Qwen3MoeConfig that transformers builds from the folder.
QWEN3_30B_A3B_CONFIG = {
    "architectures": ["Qwen3MoeForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "bos_token_id": 151643,
    "decoder_sparse_step": 1,
    "eos_token_id": 151645,
    "head_dim": 128,
    "hidden_act": "silu",
    "hidden_size": 2048,
    "initializer_range": 0.02,
    "intermediate_size": 6144,
    "max_position_embeddings": 40960,
    "max_window_layers": 48,
    "mlp_only_layers": [],
    "model_type": "qwen3_moe",
    "moe_intermediate_size": 768,
    "norm_topk_prob": True,
    "num_attention_heads": 32,
    "num_experts": 128,
    "num_experts_per_tok": 8,
    "num_hidden_layers": 48,
    "num_key_value_heads": 4,
    "output_router_logits": False,
    "rms_norm_eps": 1e-06,
    "rope_scaling": None,
    "rope_theta": 1000000.0,
    "router_aux_loss_coef": 0.001,
    "sliding_window": None,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "transformers_version": "4.51.0",
    "use_cache": True,
    "use_sliding_window": False,
    "vocab_size": 151936,
}

# Its generation_config.json (sampling defaults; the benchmark decodes
# greedily on both sides, so only the EOS ids matter, and it ignores them).
QWEN3_30B_A3B_GENERATION_CONFIG = {
    "bos_token_id": 151643,
    "do_sample": True,
    "eos_token_id": [151645, 151643],
    "pad_token_id": 151643,
    "temperature": 0.6,
    "top_k": 20,
    "top_p": 0.95,
    "transformers_version": "4.51.0",
}

# Elements drawn per numpy call, to bound the f32 temporaries.
CHUNK = 1 << 24


def tensor_specs(cfg):
    """(name, shape, init) in file order; init is ("normal", std, mean)."""
    h, v = cfg["hidden_size"], cfg["vocab_size"]
    d, nq, nkv = cfg["head_dim"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    e, inter = cfg["num_experts"], cfg["moe_intermediate_size"]

    def linear(out, inp):
        return ((out, inp), ("normal", inp ** -0.5, 0.0))

    norm = ("normal", 0.1, 1.0)
    specs = [("model.embed_tokens.weight", (v, h), ("normal", 1.0, 0.0))]
    for layer in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        specs.append((p + "input_layernorm.weight", (h,), norm))
        specs.append((p + "self_attn.q_proj.weight",) + linear(nq * d, h))
        specs.append((p + "self_attn.k_proj.weight",) + linear(nkv * d, h))
        specs.append((p + "self_attn.v_proj.weight",) + linear(nkv * d, h))
        specs.append((p + "self_attn.o_proj.weight",) + linear(h, nq * d))
        specs.append((p + "self_attn.q_norm.weight", (d,), norm))
        specs.append((p + "self_attn.k_norm.weight", (d,), norm))
        specs.append((p + "post_attention_layernorm.weight", (h,), norm))
        specs.append((p + "mlp.gate.weight",) + linear(e, h))
        for x in range(e):
            q = f"{p}mlp.experts.{x}."
            specs.append((q + "gate_proj.weight",) + linear(inter, h))
            specs.append((q + "up_proj.weight",) + linear(inter, h))
            specs.append((q + "down_proj.weight",) + linear(h, inter))
    specs.append(("model.norm.weight", (h,), norm))
    specs.append(("lm_head.weight",) + linear(v, h))
    return specs


def to_bf16(x):
    """Rounds f32 to bf16 (nearest, ties to even) and returns the uint16 bits."""
    u = x.astype(np.float32).view(np.uint32)
    u = u + (np.uint32(0x7FFF) + ((u >> 16) & np.uint32(1)))
    return (u >> 16).astype("<u2")


def write_safetensors(path, specs, seed):
    """Streams the tensors of `specs` into one safetensors file."""
    header, offset = {}, 0
    for name, shape, _ in specs:
        n = int(np.prod(shape)) * 2
        header[name] = {"dtype": "BF16", "shape": list(shape),
                        "data_offsets": [offset, offset + n]}
        offset += n
    header["__metadata__"] = {"format": "pt"}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    rng = np.random.default_rng(seed)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for name, shape, (_, std, mean) in specs:
            left = int(np.prod(shape))
            while left:
                n = min(left, CHUNK)
                x = rng.standard_normal(n, dtype=np.float32) * np.float32(std)
                f.write(to_bf16(x + np.float32(mean)).tobytes())
                left -= n
    return offset


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, default=2, help="decoder layers (default 2)")
    ap.add_argument("--seed", type=int, default=15015)
    ap.add_argument("--out", help="folder (default out/bench/qwen3_moe-<L>l)")
    args = ap.parse_args(argv)
    out = args.out or os.path.join(ROOT, "out", "bench", f"qwen3_moe-{args.layers}l")
    os.makedirs(out, exist_ok=True)
    cfg = dict(QWEN3_30B_A3B_CONFIG, num_hidden_layers=args.layers)
    stamp = {"layers": args.layers, "seed": args.seed}
    stamp_path = os.path.join(out, "bench.json")
    if os.path.exists(stamp_path) and os.path.exists(os.path.join(out, "model.safetensors")):
        with open(stamp_path) as f:
            if json.load(f) == stamp:
                print(f"{out}: up to date")
                return 0
    for name, data in (("config.json", cfg),
                       ("generation_config.json", QWEN3_30B_A3B_GENERATION_CONFIG)):
        with open(os.path.join(out, name), "w") as f:
            json.dump(data, f, indent=2, sort_keys=True)
            f.write("\n")
    if os.path.exists(stamp_path):
        os.remove(stamp_path)
    specs = tensor_specs(cfg)
    size = write_safetensors(os.path.join(out, "model.safetensors"), specs, args.seed)
    with open(stamp_path, "w") as f:
        json.dump(stamp, f)
        f.write("\n")
    params = size // 2
    print(f"{out}: {args.layers} layers, {len(specs)} tensors, "
          f"{params / 1e9:.2f} B parameters, {size / 2**30:.2f} GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
