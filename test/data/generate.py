#!/usr/bin/env python3
# ===- generate.py - tiny reference checkpoints for moec's e2e tests ---------===#
#
# Builds tiny, seeded, random-weight Mixture-of-Experts models with PyTorch and
# Hugging Face `transformers` (CPU only), saves each one the way published
# checkpoints look on the Hub (config.json + *.safetensors, per-expert tensor
# names, bf16 or DeepSeek-style block FP8) and writes reference outputs beside
# it (prompt.json, reference_logits.npy, reference.json, reference_routing.json,
# reference_generate.json, and for one model reference_long*.{json,npy}).
#
# Only this script needs torch/transformers; moec's test suite reads the files
# it writes and never imports either. See README.md beside it.
#
# ===-------------------------------------------------------------------------===#
"""Regenerates the tiny reference checkpoints under test/data/.

Usage (from the repository root):
    python3 -m venv .venv-gen
    .venv-gen/bin/pip install -r test/data/requirements-gen.txt
    .venv-gen/bin/python test/data/generate.py            # all models
    .venv-gen/bin/python test/data/generate.py --only mixtral-tiny
"""

import argparse
import copy
import json
import math
import os
import shutil
import sys
import tempfile

import numpy as np
import safetensors
import torch
import transformers
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import (
    AutoModelForCausalLM,
    DeepseekV3Config,
    DynamicCache,
    MixtralConfig,
    Qwen2MoeConfig,
    Qwen3MoeConfig,
)

DATA_DIR = os.path.dirname(os.path.abspath(__file__))

# One prompt for every model: ids below the smallest vocabulary (256).
PROMPT = [1, 17, 42, 99, 128, 7, 200, 3, 250, 64, 5]

# Every generated folder must stay small enough to commit.
MAX_FOLDER_BYTES = 2 * 1024 * 1024

# DeepSeek-V3's published YaRN settings, in the legacy `rope_scaling` form.
DEEPSEEK_YARN = {
    "beta_fast": 32,
    "beta_slow": 1,
    "factor": 40,
    "mscale": 1.0,
    "mscale_all_dim": 1.0,
    "original_max_position_embeddings": 4096,
    "type": "yarn",
}

# The DeepSeek-V3 FP8 release's quantization_config, verbatim.
FP8_QUANT_CONFIG = {
    "activation_scheme": "dynamic",
    "fmt": "e4m3",
    "quant_method": "fp8",
    "weight_block_size": [128, 128],
}
FP8_BLOCK = 128
FP8_MAX = 448.0
FP8_MIN_AMAX = 1e-4

ATTN_IMPL = "eager"

# Greedy generation reference: this many new tokens after PROMPT.
GEN_NEW_TOKENS = 40
# Where top-1 and top-2 logits are closer than this, another correct f32
# implementation may pick the other token; such steps are reported.
MIN_TRUSTED_MARGIN = 1e-4
# Bound on f32 differences between the cached and the no-cache computation of
# the same logits (both in transformers), used as a consistency check.
CACHE_CONSISTENCY_ATOL = 1e-4

# Long-context reference (one model, spec key "long_context"): a seeded prompt
# past 4096 positions and the logits of its last LONG_LAST positions.
LONG_PROMPT_LEN = 4100
LONG_LAST = 8


# ===-------------------------------------------------------------------------===#
# Model specifications
# ===-------------------------------------------------------------------------===#


def deepseek_v3_config(**sizes):
    """A DeepSeek-V3 config with the real model's routing/RoPE settings."""
    base = dict(
        vocab_size=320,
        num_hidden_layers=3,
        first_k_dense_replace=1,
        n_routed_experts=16,
        n_group=4,
        topk_group=2,
        num_experts_per_tok=4,
        n_shared_experts=1,
        routed_scaling_factor=2.5,
        norm_topk_prob=True,
        topk_method="noaux_tc",
        scoring_func="sigmoid",
        hidden_act="silu",
        rms_norm_eps=1e-6,
        rope_theta=10000.0,
        rope_scaling=dict(DEEPSEEK_YARN),
        max_position_embeddings=4096 * 40,
        attention_bias=False,
        tie_word_embeddings=False,
        # The tiny checkpoints carry no multi-token-prediction layer.
        num_nextn_predict_layers=0,
        bos_token_id=0,
        eos_token_id=1,
    )
    base.update(sizes)
    return DeepseekV3Config(**base)


def spec_deepseek_v3():
    cfg = deepseek_v3_config(
        hidden_size=64,
        intermediate_size=128,
        moe_intermediate_size=32,
        num_attention_heads=4,
        num_key_value_heads=4,
        q_lora_rank=48,
        kv_lora_rank=32,
        qk_nope_head_dim=32,
        qk_rope_head_dim=16,
        v_head_dim=24,
    )
    return dict(name="deepseek_v3-tiny", seed=1001, config=cfg, config_style="hub",
                expect_names=["model.layers.1.mlp.experts.3.gate_proj.weight",
                              "model.layers.2.mlp.experts.15.down_proj.weight",
                              "model.layers.1.mlp.gate.weight",
                              "model.layers.1.mlp.gate.e_score_correction_bias",
                              "model.layers.1.mlp.shared_experts.up_proj.weight",
                              "model.layers.0.mlp.gate_proj.weight",
                              "model.layers.0.self_attn.kv_a_proj_with_mqa.weight"])


def spec_deepseek_v3_fp8():
    # hidden 128 / intermediate 192 / q_lora 96 / moe_intermediate 48 give full,
    # partial and multi-block 128x128 tiles.
    cfg = deepseek_v3_config(
        hidden_size=128,
        intermediate_size=192,
        moe_intermediate_size=48,
        num_attention_heads=4,
        num_key_value_heads=4,
        q_lora_rank=96,
        kv_lora_rank=64,
        qk_nope_head_dim=32,
        qk_rope_head_dim=16,
        v_head_dim=32,
    )
    return dict(name="deepseek_v3-fp8-tiny", seed=2002, config=cfg, config_style="hub", fp8=True,
                expect_names=["model.layers.1.mlp.experts.3.gate_proj.weight",
                              "model.layers.1.mlp.experts.3.gate_proj.weight_scale_inv",
                              "model.layers.0.self_attn.q_b_proj.weight_scale_inv",
                              "model.layers.1.mlp.gate.e_score_correction_bias"])


def spec_mixtral():
    cfg = MixtralConfig(
        vocab_size=256,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        num_local_experts=8,
        num_experts_per_tok=2,
        hidden_act="silu",
        rms_norm_eps=1e-5,
        rope_theta=1e6,
        max_position_embeddings=32768,
        sliding_window=None,
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
    )
    # Plain RoPE (no YaRN), no sliding window and 32768 positions: the long
    # reference tests the KV cache past 4096 positions and nothing else.
    return dict(name="mixtral-tiny", seed=3003, config=cfg, config_style="hub", long_context=True,
                expect_names=["model.layers.0.block_sparse_moe.experts.0.w1.weight",
                              "model.layers.1.block_sparse_moe.experts.7.w2.weight",
                              "model.layers.1.block_sparse_moe.experts.5.w3.weight",
                              "model.layers.0.block_sparse_moe.gate.weight"])


def spec_qwen3_moe():
    # head_dim 32 != hidden/heads (16), as in the real Qwen3-MoE models.
    cfg = Qwen3MoeConfig(
        vocab_size=384,
        hidden_size=64,
        intermediate_size=128,
        moe_intermediate_size=32,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=32,
        num_experts=16,
        num_experts_per_tok=4,
        norm_topk_prob=True,
        decoder_sparse_step=1,
        mlp_only_layers=[],
        hidden_act="silu",
        rms_norm_eps=1e-6,
        rope_theta=1e6,
        max_position_embeddings=32768,
        attention_bias=False,
        use_sliding_window=False,
        tie_word_embeddings=False,
    )
    # Kept in transformers-5's native config form (rope_parameters, dtype),
    # and sharded, so both of those paths are exercised.
    return dict(name="qwen3_moe-tiny", seed=4004, config=cfg, config_style="native",
                max_shard_size="300KB",
                expect_names=["model.layers.0.mlp.experts.0.gate_proj.weight",
                              "model.layers.2.mlp.experts.15.up_proj.weight",
                              "model.layers.1.mlp.gate.weight",
                              "model.layers.0.self_attn.q_norm.weight",
                              "model.layers.0.self_attn.k_norm.weight"])


def spec_qwen2_moe():
    cfg = Qwen2MoeConfig(
        vocab_size=512,
        hidden_size=64,
        intermediate_size=128,
        moe_intermediate_size=32,
        shared_expert_intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        num_experts=12,
        num_experts_per_tok=4,
        norm_topk_prob=False,
        decoder_sparse_step=1,
        mlp_only_layers=[],
        qkv_bias=True,
        hidden_act="silu",
        rms_norm_eps=1e-6,
        rope_theta=1e6,
        max_position_embeddings=8192,
        use_sliding_window=False,
        tie_word_embeddings=False,
    )
    # layer_types is derived by transformers 5; Qwen1.5-MoE's config has none.
    return dict(name="qwen2_moe-tiny", seed=5005, config=cfg, config_style="hub", hub_drop=("layer_types",),
                expect_names=["model.layers.0.mlp.experts.11.down_proj.weight",
                              "model.layers.0.mlp.gate.weight",
                              "model.layers.0.mlp.shared_expert.gate_proj.weight",
                              "model.layers.1.mlp.shared_expert_gate.weight",
                              "model.layers.0.self_attn.q_proj.bias",
                              "model.layers.0.self_attn.k_proj.bias",
                              "model.layers.0.self_attn.v_proj.bias"])


SPECS = [spec_deepseek_v3, spec_mixtral, spec_qwen3_moe, spec_qwen2_moe, spec_deepseek_v3_fp8]


# ===-------------------------------------------------------------------------===#
# Weights
# ===-------------------------------------------------------------------------===#


def init_weights(model, seed):
    """Seeded init that keeps activations O(1), so logits and routing vary.

    Linear/expert weights ~ N(0, 1/fan_in), embeddings ~ N(0, 1), norm weights
    ~ 1 + N(0, 0.1) (not all-ones, so a dropped norm weight shows), biases and
    DeepSeek's e_score_correction_bias ~ N(0, 0.1) (the latter is a buffer that
    transformers initialises to zero).
    """
    gen = torch.Generator().manual_seed(seed)

    def normal(shape, std, mean=0.0):
        return torch.randn(shape, generator=gen, dtype=torch.float32) * std + mean

    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if name.endswith("norm.weight"):
                p.copy_(normal(p.shape, 0.1, 1.0))
            elif name.endswith("embed_tokens.weight"):
                p.copy_(normal(p.shape, 1.0))
            elif name.endswith(".bias"):
                p.copy_(normal(p.shape, 0.1))
            elif p.dim() >= 2:
                p.copy_(normal(p.shape, p.shape[-1] ** -0.5))
            else:
                raise RuntimeError(f"no init rule for parameter {name} {tuple(p.shape)}")
        for name, b in sorted(model.named_buffers()):
            if name.endswith("e_score_correction_bias"):
                b.copy_(normal(b.shape, 0.1))


def is_f32_tensor(name):
    """Tensors that real checkpoints keep in f32 (DeepSeek's correction bias)."""
    return name.endswith("e_score_correction_bias")


def round_params_to_bf16_(model):
    """Makes the f32 model hold exactly the values a bf16 checkpoint stores."""
    with torch.no_grad():
        for _, p in model.named_parameters():
            p.copy_(p.to(torch.bfloat16).to(torch.float32))


def is_fp8_weight(name):
    """Linear weights the DeepSeek-V3 FP8 release stores as e4m3 + scale_inv.

    Every projection in attention and in the (dense, routed and shared) MLPs;
    not embeddings, lm_head, norms, the router gate or its correction bias.
    """
    if not name.endswith("_proj.weight") and not name.endswith("_proj_with_mqa.weight"):
        return False
    return ".self_attn." in name or ".mlp." in name


def quantize_fp8_blockwise(w):
    """128x128 block FP8: scale = max(amax, 1e-4)/448, q = sat(w/scale).

    Returns (q [out,in] float8_e4m3fn, scale_inv [ceil(out/128),ceil(in/128)]
    f32, dequantized [out,in] f32 = q * scale_inv broadcast over blocks).
    """
    out_dim, in_dim = w.shape
    bo, bi = math.ceil(out_dim / FP8_BLOCK), math.ceil(in_dim / FP8_BLOCK)
    padded = torch.zeros(bo * FP8_BLOCK, bi * FP8_BLOCK, dtype=torch.float32)
    padded[:out_dim, :in_dim] = w.float()
    amax = padded.view(bo, FP8_BLOCK, bi, FP8_BLOCK).abs().amax(dim=(1, 3))
    scale = (amax.clamp(min=FP8_MIN_AMAX) / FP8_MAX).to(torch.float32)
    full = scale.repeat_interleave(FP8_BLOCK, 0).repeat_interleave(FP8_BLOCK, 1)[:out_dim, :in_dim]
    # Saturating cast: clamp first (a plain cast of an out-of-range value is NaN).
    q = (w.float() / full).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn)
    return q, scale, q.to(torch.float32) * full


def dequantize_fp8_loop(q, scale_inv):
    """Independent, block-by-block dequantization used to check the files."""
    out = torch.empty(q.shape, dtype=torch.float32)
    for i in range(scale_inv.shape[0]):
        for j in range(scale_inv.shape[1]):
            rs = slice(i * FP8_BLOCK, min((i + 1) * FP8_BLOCK, q.shape[0]))
            cs = slice(j * FP8_BLOCK, min((j + 1) * FP8_BLOCK, q.shape[1]))
            out[rs, cs] = q[rs, cs].to(torch.float32) * scale_inv[i, j]
    return out


# ===-------------------------------------------------------------------------===#
# Files
# ===-------------------------------------------------------------------------===#


def read_checkpoint(folder):
    """All tensors of a (possibly sharded) safetensors checkpoint, by name."""
    files = sorted(f for f in os.listdir(folder) if f.endswith(".safetensors"))
    index_path = os.path.join(folder, "model.safetensors.index.json")
    if os.path.exists(index_path):
        with open(index_path) as f:
            weight_map = json.load(f)["weight_map"]
        assert sorted(set(weight_map.values())) == files, (weight_map, files)
    tensors = {}
    for fname in files:
        with safe_open(os.path.join(folder, fname), "pt") as f:
            for key in f.keys():
                assert key not in tensors, f"duplicate tensor {key}"
                tensors[key] = f.get_tensor(key)
    return tensors


def rewrite_config(folder, style, extra=None, drop=()):
    """Post-processes the config.json that save_pretrained wrote.

    style "hub": the legacy form published checkpoints use (top-level
    rope_theta, rope_scaling only when not default, torch_dtype).
    style "native": what transformers 5 writes (rope_parameters, dtype).
    """
    path = os.path.join(folder, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    cfg.pop("auto_map", None)
    if style == "hub":
        rope = dict(cfg.pop("rope_parameters"))
        cfg["rope_theta"] = rope.pop("rope_theta")
        rope_type = rope.pop("rope_type", rope.get("type", "default"))
        if rope_type != "default":
            rope.setdefault("type", rope_type)
            cfg["rope_scaling"] = rope
        cfg["torch_dtype"] = cfg.pop("dtype")
        # Published configs leave these out rather than writing null.
        if cfg.get("head_dim", 0) is None:
            del cfg["head_dim"]
    for key in drop:
        cfg.pop(key, None)
    cfg.update(extra or {})
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")
    return cfg


def folder_bytes(folder):
    return sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))


# ===-------------------------------------------------------------------------===#
# Running and routing checks
# ===-------------------------------------------------------------------------===#


def router_modules(model):
    """(layer index, router module) for every MoE layer, in layer order."""
    found = []
    for name, mod in model.named_modules():
        if type(mod).__name__.lower().endswith("topkrouter"):
            layer = int(name.split(".layers.")[1].split(".")[0])
            found.append((layer, mod))
    return found


@torch.no_grad()
def run_model(model, tokens):
    """Prefill logits [T, vocab] f32 plus each router's input and outputs."""
    captured = {}
    hooks = []
    for layer, mod in router_modules(model):
        def hook(m, args, out, layer=layer):
            captured[layer] = dict(x=args[0].detach().reshape(-1, args[0].shape[-1]).clone(),
                                   weights=out[1].detach().float().clone(),
                                   indices=out[2].detach().clone())
        hooks.append(mod.register_forward_hook(hook))
    try:
        ids = torch.tensor([tokens], dtype=torch.long)
        logits = model(input_ids=ids, use_cache=False).logits[0].float()
    finally:
        for h in hooks:
            h.remove()
    return logits, captured


def design_router(x, gate_w, cfg, bias, use_bias=True):
    """DESIGN.md section 3 routing, written independently in numpy (f32).

    Returns (indices [T,k] sorted ascending, weights [T,k] aligned with them).
    """
    x = x.numpy().astype(np.float32)
    logits = x @ gate_w.numpy().astype(np.float32).T
    kind = cfg.model_type
    if kind == "deepseek_v3":
        scores = 1.0 / (1.0 + np.exp(-logits))
        n_group, topk_group = cfg.n_group, cfg.topk_group
        k, norm, scale = cfg.num_experts_per_tok, cfg.norm_topk_prob, cfg.routed_scaling_factor
    else:
        e = np.exp(logits - logits.max(-1, keepdims=True))
        scores = e / e.sum(-1, keepdims=True)
        n_group, topk_group, k, scale = 1, 1, cfg.num_experts_per_tok, 1.0
        norm = True if kind == "mixtral" else cfg.norm_topk_prob
    sel = scores + (bias.numpy() if (bias is not None and use_bias) else 0.0)
    sel = sel.astype(np.float32)
    t, n = sel.shape
    if n_group > 1:
        g = sel.reshape(t, n_group, n // n_group)
        group_score = np.sort(g, axis=-1)[..., -2:].sum(-1)
        keep = np.argsort(-group_score, axis=-1, kind="stable")[:, :topk_group]
        mask = np.ones((t, n_group), dtype=bool)
        np.put_along_axis(mask, keep, False, axis=-1)
        sel = np.where(np.repeat(mask, n // n_group, axis=-1), -np.inf, sel)
    idx = np.argsort(-sel, axis=-1, kind="stable")[:, :k]
    w = np.take_along_axis(scores, idx, axis=-1)
    if norm:
        w = w / (w.sum(-1, keepdims=True) + 1e-20)
    w = w * scale
    order = np.argsort(idx, axis=-1)
    return np.take_along_axis(idx, order, -1), np.take_along_axis(w, order, -1)


def check_routing(model, cfg, captured):
    """Asserts HF routing == DESIGN.md section 3, and that routing varies.

    Returns the per-layer routing (sorted indices, aligned weights) to save.
    """
    routing = {}
    for layer, mod in router_modules(model):
        cap = captured[layer]
        bias = getattr(mod, "e_score_correction_bias", None)
        hf_idx = cap["indices"].numpy()
        hf_w = cap["weights"].numpy()
        order = np.argsort(hf_idx, axis=-1)
        hf_idx = np.take_along_axis(hf_idx, order, -1)
        hf_w = np.take_along_axis(hf_w, order, -1)
        ref_idx, ref_w = design_router(cap["x"], mod.weight.detach(), cfg, bias)
        assert (hf_idx == ref_idx).all(), f"layer {layer}: selection differs from DESIGN.md §3\n{hf_idx}\n{ref_idx}"
        assert np.allclose(hf_w, ref_w, rtol=1e-5, atol=1e-6), f"layer {layer}: weights differ\n{hf_w}\n{ref_w}"
        distinct = {tuple(r) for r in hf_idx.tolist()}
        used = sorted(set(hf_idx.flatten().tolist()))
        print(f"  layer {layer}: {len(distinct)} distinct expert sets over {len(hf_idx)} tokens, "
              f"experts used {used}")
        assert len(distinct) > 1, f"layer {layer}: every token picks the same experts"
        entry = dict(indices=hf_idx.tolist(), weights=hf_w.astype(np.float32).tolist())
        if bias is not None:
            nb_idx, _ = design_router(cap["x"], mod.weight.detach(), cfg, bias, use_bias=False)
            changed = int((nb_idx != hf_idx).any(-1).sum())
            print(f"  layer {layer}: e_score_correction_bias changes the selection of {changed}/{len(hf_idx)} tokens")
            entry["tokens_whose_selection_the_bias_changes"] = changed
        routing[str(layer)] = entry
    if cfg.model_type == "deepseek_v3":
        assert any(e["tokens_whose_selection_the_bias_changes"] > 0 for e in routing.values()), \
            "the correction bias changes no selection: raise its scale"
    return routing


def check_logits(logits):
    std = float(logits.std())
    argmax = logits.argmax(-1).tolist()
    print(f"  logits std {std:.3f}, argmax per token {argmax}")
    assert torch.isfinite(logits).all()
    assert std > 0.1 and len(set(argmax)) > 1, "degenerate logits"


def versions():
    return {
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
        "safetensors_version": safetensors.__version__,
        "numpy_version": np.__version__,
    }


def load_reference_model(folder):
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation=ATTN_IMPL)
    return model.eval()


# ===-------------------------------------------------------------------------===#
# Generation references
# ===-------------------------------------------------------------------------===#


def top2_margins(logits):
    """Top-1 minus top-2 logit of each row of [N, vocab], as Python floats."""
    top2 = logits.topk(2, dim=-1).values
    return [float(v) for v in (top2[:, 0] - top2[:, 1]).tolist()]


def steps_choosing_otherwise(expected, logits, margins, what):
    """Rows whose argmax is not `expected`; each must have a margin < MIN_TRUSTED_MARGIN."""
    got = logits.argmax(-1).tolist()
    differ = [i for i, (g, e) in enumerate(zip(got, expected)) if g != e]
    for i in differ:
        assert margins[i] < MIN_TRUSTED_MARGIN, \
            f"{what}: step {i} picks {got[i]}, not {expected[i]}, with margin {margins[i]}"
    return differ


def check_full_attention(model, cache):
    """Every layer attends to the whole causal prefix: no sliding window.

    Qwen2-MoE's config turns sliding_window into 0 when use_sliding_window is
    false and derives only "full_attention" layer types; the cache agrees.
    """
    cfg = model.config
    assert getattr(cfg, "sliding_window", None) in (None, 0), cfg.sliding_window
    layer_types = getattr(cfg, "layer_types", None)
    assert layer_types is None or set(layer_types) == {"full_attention"}, layer_types
    kinds = {type(layer).__name__ for layer in cache.layers}
    assert kinds == {"DynamicLayer"}, f"cache layers {kinds}, expected full (not sliding) layers"


@torch.no_grad()
def greedy_reference(model, prefill_logits):
    """Greedy decoding of PROMPT with the KV cache, checked against no-cache forwards.

    `prefill_logits` are the saved reference logits of PROMPT. Returns the
    content of reference_generate.json.
    """
    ids = torch.tensor([PROMPT], dtype=torch.long)
    # eos_token_id=None: no EOS stopping criterion and no MinNewTokensLength
    # processor (which would set the EOS logit to -inf), so every step is the
    # plain argmax of the raw logits.
    out = model.generate(ids, do_sample=False, max_new_tokens=GEN_NEW_TOKENS, min_new_tokens=GEN_NEW_TOKENS,
                         use_cache=True, eos_token_id=None, output_scores=True, output_logits=True,
                         return_dict_in_generate=True)
    generated = out.sequences[0, len(PROMPT):].tolist()
    assert len(generated) == GEN_NEW_TOKENS, generated
    logits = torch.stack(out.logits)[:, 0].float()
    assert torch.equal(torch.stack(out.scores)[:, 0], logits), "a logits processor changed the scores"
    assert logits.argmax(-1).tolist() == generated
    check_full_attention(model, out.cache)
    margins = top2_margins(logits)
    close = [i for i, m in enumerate(margins) if m < MIN_TRUSTED_MARGIN]

    prefill_diff = float((logits[0] - prefill_logits[-1]).abs().max())
    assert prefill_diff <= CACHE_CONSISTENCY_ATOL, prefill_diff
    # Teacher forcing: one no-cache forward over prompt + generated; position
    # len(PROMPT)-1+i predicts generated token i.
    full = model(input_ids=out.sequences, use_cache=False).logits[0, len(PROMPT) - 1:-1].float()
    differ = steps_choosing_otherwise(generated, full, margins, "teacher-forced forward")
    full_diff = float((full - logits).abs().max())
    assert full_diff <= CACHE_CONSISTENCY_ATOL, full_diff

    eos = model.generation_config.eos_token_id
    eos_ids = [] if eos is None else [eos] if isinstance(eos, int) else list(eos)
    eos_steps = [i for i, t in enumerate(generated) if t in eos_ids]
    print(f"  generate: {generated}")
    print(f"  generate: min margin {min(margins):.6f} (step {margins.index(min(margins))}), "
          f"{len(close)} below {MIN_TRUSTED_MARGIN}; cached vs no-cache logits max abs {full_diff:.3g}, "
          f"first step vs reference_logits {prefill_diff:.3g}")
    return {
        "description": f"greedy generation of {GEN_NEW_TOKENS} tokens after the prompt: generated[i] is the argmax "
                       "of step i's logits; margins[i] is that step's top-1 minus top-2 logit",
        "prompt": PROMPT,
        "generated": generated,
        "margins": margins,
        "min_margin": min(margins),
        "steps_with_margin_below_1e-4": close,
        "model": "the f32 model that produced reference_logits.npy (eval, no_grad, float32 compute)",
        "attn_implementation": ATTN_IMPL,
        "call": f"model.generate(input_ids=[prompt], do_sample=False, max_new_tokens={GEN_NEW_TOKENS}, "
                f"min_new_tokens={GEN_NEW_TOKENS}, use_cache=True, eos_token_id=None, output_scores=True, "
                "output_logits=True, return_dict_in_generate=True)",
        "eos": f"eos_token_id=None overrides the generation config's eos_token_id ({eos}): no EOS stopping "
               "criterion and no MinNewTokensLengthLogitsProcessor, so exactly "
               f"{GEN_NEW_TOKENS} tokens; the config's EOS id is generated at steps {eos_steps}",
        "margins_source": "raw logits of each step (output_logits), bit-identical to output_scores: no logits "
                          "processor ran",
        "cache": "DynamicCache, full attention in every layer (no sliding window); step 0 is the cached prefill "
                 "of the prompt, then one token per step",
        "teacher_forced_check": {
            "forward": "model(input_ids=[prompt + generated], use_cache=False); position len(prompt)-1+i "
                       "predicts generated[i]",
            "argmax_differs_at_steps": differ,
            "max_abs_diff_vs_generate_logits": full_diff,
            "step0_max_abs_diff_vs_reference_logits_last_row": prefill_diff,
        },
        **versions(),
    }


@torch.no_grad()
def long_context_reference(model, seed):
    """Logits of the last LONG_LAST positions of a seeded LONG_PROMPT_LEN-token prompt.

    One no-cache forward over the whole prompt; the same positions computed
    with a cache (prefill, then one token per step) must agree. Returns the
    logits [LONG_LAST, vocab] and the content of reference_long.json.
    """
    cfg = model.config
    assert getattr(cfg, "sliding_window", None) is None, cfg.sliding_window
    assert cfg.max_position_embeddings >= LONG_PROMPT_LEN
    tokens = np.random.default_rng(seed).integers(0, cfg.vocab_size, size=LONG_PROMPT_LEN).tolist()
    ids = torch.tensor([tokens], dtype=torch.long)
    first = LONG_PROMPT_LEN - LONG_LAST
    logits = model(input_ids=ids, use_cache=False).logits[0, first:].float()
    check_logits(logits)
    margins = top2_margins(logits)

    cache = DynamicCache(config=cfg)
    model(input_ids=ids[:, :first], cache=cache, use_cache=True)
    stepped = torch.cat([model(input_ids=ids[:, i:i + 1], cache=cache, use_cache=True).logits[0, -1:]
                         for i in range(first, LONG_PROMPT_LEN)]).float()
    check_full_attention(model, cache)
    differ = steps_choosing_otherwise(logits.argmax(-1).tolist(), stepped, margins, "cached long context")
    cached_diff = float((stepped - logits).abs().max())
    assert cached_diff <= CACHE_CONSISTENCY_ATOL, cached_diff
    print(f"  long context: {LONG_PROMPT_LEN} tokens, min margin {min(margins):.6f}, "
          f"cached vs no-cache max abs {cached_diff:.3g}")
    meta = {
        "description": f"a seeded {LONG_PROMPT_LEN}-token prompt and, in reference_long_logits.npy, the float32 "
                       f"[{LONG_LAST}, vocab] logits of its last {LONG_LAST} positions",
        "tokens": tokens,
        "tokens_rng": f"numpy.random.default_rng({seed}).integers(0, vocab_size={cfg.vocab_size}, "
                      f"size={LONG_PROMPT_LEN})",
        "logits_file": "reference_long_logits.npy",
        "logits_positions": list(range(first, LONG_PROMPT_LEN)),
        "argmax": logits.argmax(-1).tolist(),
        "margins": margins,
        "forward": "model(input_ids=[tokens], use_cache=False): one prefill over every position, no cache, causal, "
                   "eval, no_grad, float32 compute",
        "attn_implementation": ATTN_IMPL,
        "cached_check": {
            "forward": f"prefill positions 0..{first - 1} into a DynamicCache, then one token per step",
            "argmax_differs_at_steps": differ,
            "max_abs_diff": cached_diff,
        },
        **versions(),
    }
    return logits, meta


# ===-------------------------------------------------------------------------===#
# Per-model generation
# ===-------------------------------------------------------------------------===#


def rope_facts(model, cfg):
    """Derived RoPE/attention numbers a compiler must reproduce."""
    rotary = model.model.rotary_emb
    attn = model.model.layers[0].self_attn
    facts = {
        "rope_style": ("interleaved pairs (x0,x1),(x2,x3),... (DeepSeek/GPT-J style)"
                       if getattr(cfg, "rope_interleave", False) else
                       "rotate_half: pairs (x[i], x[i+d/2]) (GPT-NeoX/Llama style)"),
        "rope_type": cfg.rope_parameters["rope_type"],
        "rope_inv_freq": [float(v) for v in rotary.inv_freq.tolist()],
        "rope_cos_sin_scaling": float(rotary.attention_scaling),
        "attention_softmax_scale": float(attn.scaling),
    }
    if cfg.model_type == "deepseek_v3":
        facts["rope_interleave"] = bool(cfg.rope_interleave)
        facts["rope_interleave_output_layout"] = (
            "transformers rotates pairs (x[2i], x[2i+1]) by inv_freq[i] and writes the results de-interleaved "
            "(all first members, then all second members) for both q and k; that common permutation leaves "
            "q.k unchanged, so any layout applied consistently to q and k is equivalent")
        facts["yarn_mscale"] = "0.1 * mscale_all_dim * ln(factor) + 1 (squared into attention_softmax_scale)"
        facts["rope_applies_to"] = (
            "the last qk_rope_head_dim channels of each q head and the shared k_rot "
            "(last qk_rope_head_dim channels of kv_a_proj_with_mqa's output)")
    return facts


def generate_one(spec, tmp_root):
    name, seed, cfg = spec["name"], spec["seed"], spec["config"]
    fp8 = spec.get("fp8", False)
    out = os.path.join(DATA_DIR, name)
    print(f"== {name} (seed {seed})")
    torch.manual_seed(seed)
    assert max(PROMPT) < cfg.vocab_size

    model = AutoModelForCausalLM.from_config(cfg, attn_implementation=ATTN_IMPL, dtype=torch.float32)
    model.eval()
    init_weights(model, seed)

    if os.path.exists(out):
        shutil.rmtree(out)

    hub_drop = tuple(spec.get("hub_drop", ()))
    extra = {}
    if cfg.model_type == "deepseek_v3":
        # head_dim/qk_head_dim are derived by transformers; rope_interleave is
        # left to its default (True) as in the published config.json.
        hub_drop += ("head_dim", "qk_head_dim", "rope_interleave")
    if fp8:
        extra["quantization_config"] = FP8_QUANT_CONFIG

    if not fp8:
        round_params_to_bf16_(model)
        logits, captured = run_model(model, PROMPT)
        # Save bf16 like real checkpoints; the correction bias stays f32.
        to_save = copy.deepcopy(model).to(torch.bfloat16)
        for (_, m_src), (_, m_dst) in zip(router_modules(model), router_modules(to_save)):
            if hasattr(m_src, "e_score_correction_bias"):
                m_dst.e_score_correction_bias.data = m_src.e_score_correction_bias.detach().clone()
        kwargs = {"max_shard_size": spec["max_shard_size"]} if "max_shard_size" in spec else {}
        to_save.save_pretrained(out, **kwargs)
        rewrite_config(out, spec["config_style"], extra, hub_drop)
        stored = read_checkpoint(out)
        # The files must be exactly what the reference ran: reload and compare.
        reloaded = load_reference_model(out)
        re_logits, _ = run_model(reloaded, PROMPT)
        assert torch.equal(re_logits, logits), \
            f"reloaded logits differ: max abs {float((re_logits - logits).abs().max())}"
        if "max_shard_size" in spec:
            shards = [f for f in os.listdir(out) if f.endswith(".safetensors")]
            assert len(shards) >= 2 and os.path.exists(os.path.join(out, "model.safetensors.index.json")), shards
        stored_desc = "bf16 (e_score_correction_bias f32)" if cfg.model_type == "deepseek_v3" else "bf16"
    else:
        # 1. Per-expert (Hub) names via save_pretrained of the f32 model.
        raw_dir = os.path.join(tmp_root, name + "-raw")
        model.save_pretrained(raw_dir)
        raw = read_checkpoint(raw_dir)
        # 2. Quantize; everything else is rounded to its stored dtype.
        stored, deq = {}, {}
        for key, t in raw.items():
            if is_fp8_weight(key):
                q, s, d = quantize_fp8_blockwise(t)
                stored[key], stored[key + "_scale_inv"], deq[key] = q, s, d
            elif is_f32_tensor(key):
                stored[key] = t.float().contiguous()
                deq[key] = stored[key]
            else:
                stored[key] = t.to(torch.bfloat16).contiguous()
                deq[key] = stored[key].float()
        # 3. The reference is the f32 model holding the dequantized values.
        deq_dir = os.path.join(tmp_root, name + "-deq")
        os.makedirs(deq_dir)
        shutil.copy(os.path.join(raw_dir, "config.json"), deq_dir)
        save_file(deq, os.path.join(deq_dir, "model.safetensors"), metadata={"format": "pt"})
        model = load_reference_model(deq_dir)
        logits, captured = run_model(model, PROMPT)
        # 4. The FP8 checkpoint itself.
        os.makedirs(out)
        for f in os.listdir(raw_dir):
            if f.endswith(".json"):
                shutil.copy(os.path.join(raw_dir, f), out)
        save_file(stored, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
        cfg_json = rewrite_config(out, spec["config_style"], extra, hub_drop)
        cfg_json["torch_dtype"] = "bfloat16"
        with open(os.path.join(out, "config.json"), "w") as f:
            json.dump(cfg_json, f, indent=2, sort_keys=True)
            f.write("\n")
        # 5. Read the files back and dequantize independently.
        back = read_checkpoint(out)
        assert set(back) == set(stored)
        partial = multi = 0
        for key, t in back.items():
            if key.endswith("_scale_inv"):
                continue
            if is_fp8_weight(key):
                assert t.dtype == torch.float8_e4m3fn, key
                s = back[key + "_scale_inv"]
                assert s.dtype == torch.float32
                assert list(s.shape) == [math.ceil(d / FP8_BLOCK) for d in t.shape], (key, s.shape)
                assert torch.equal(dequantize_fp8_loop(t, s), deq[key]), key
                partial += any(d % FP8_BLOCK for d in t.shape)
                multi += any(d > FP8_BLOCK for d in t.shape)
            else:
                assert torch.equal(t.float(), deq[key]), key
        print(f"  fp8 weights with partial edge blocks: {partial}, spanning >1 block: {multi}")
        assert partial > 0 and multi > 0
        stored_desc = ("F8_E4M3 + f32 weight_scale_inv for attention/MLP/expert projections; "
                       "bf16 embeddings, lm_head, norms and router gate; f32 e_score_correction_bias")

    check_logits(logits)
    routing = check_routing(model, model.config, captured)

    # Tensor naming: per-expert names, never transformers-5's fused layout.
    names = sorted(read_checkpoint(out))
    assert not any("gate_up_proj" in n or n.endswith("experts.down_proj") for n in names), names
    for n in spec["expect_names"]:
        assert n in names, f"expected tensor {n} in {name}"
    cfg_json = json.load(open(os.path.join(out, "config.json")))
    assert "auto_map" not in cfg_json

    with open(os.path.join(out, "prompt.json"), "w") as f:
        json.dump({"tokens": PROMPT}, f)
        f.write("\n")
    np.save(os.path.join(out, "reference_logits.npy"), logits.numpy().astype(np.float32))
    with open(os.path.join(out, "reference_routing.json"), "w") as f:
        json.dump({
            "description": "per MoE layer: for each prompt token, the selected expert indices (ascending) and "
                           "their final routing weights (after normalisation and scaling), aligned",
            "layers": routing,
        }, f)
        f.write("\n")
    reference = {
        "generator": "test/data/generate.py",
        "model_type": cfg.model_type,
        "seed": seed,
        **versions(),
        "stored_dtype": stored_desc,
        "reference_compute_dtype": "float32",
        "reference_weights": ("the f32 model holding each stored value upcast" if not fp8 else
                              "the f32 model holding q.float() * scale_inv (per 128x128 block) for every "
                              "FP8 weight; activations are not quantized"),
        "attn_implementation": ATTN_IMPL,
        "forward": "model(input_ids=[prompt]) prefill, positions 0..T-1, no cache, causal mask, eval, no_grad",
        "logits_shape": list(logits.shape),
        "tensor_names": "per-expert names as published on the Hub (transformers 5 fuses experts in memory "
                        "and save_pretrained writes them back per expert)",
        "config_style": ("published Hub form: rope_theta/rope_scaling/torch_dtype" if spec["config_style"] == "hub"
                         else "transformers-5 native form: rope_parameters/dtype"),
        **rope_facts(model, model.config),
    }
    if cfg.model_type == "deepseek_v3":
        reference["routing_notes"] = (
            "sigmoid scores; selection = scores + e_score_correction_bias; group score = sum of the top-2 "
            "selection scores in each of n_group contiguous groups; top topk_group groups kept (others -inf); "
            "top-k on selection scores; weights = unbiased scores, /(sum + 1e-20) when norm_topk_prob, "
            "x routed_scaling_factor; output += shared_experts(x); transformers ignores topk_method and "
            "scoring_func (hard-codes this behaviour)")
        reference["num_nextn_predict_layers_note"] = "0: no multi-token-prediction layer is stored"
    if fp8:
        reference["fp8"] = {
            "format": "float8_e4m3fn (max 448, no inf)",
            "block": [FP8_BLOCK, FP8_BLOCK],
            "scale": "scale_inv = max(amax(block), 1e-4) / 448, f32; q = saturate(w / scale_inv) to +-448",
            "dequant": "w = q * scale_inv[i // 128, j // 128]",
            "quantized": "*.self_attn.*_proj.weight, *.self_attn.kv_a_proj_with_mqa.weight, *.mlp.*_proj.weight "
                         "(dense, routed experts, shared experts)",
            "not_quantized": "embed_tokens, lm_head, all norms, mlp.gate.weight, mlp.gate.e_score_correction_bias",
        }
    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump(reference, f, indent=2, sort_keys=True)
        f.write("\n")
    with open(os.path.join(out, "reference_generate.json"), "w") as f:
        json.dump(greedy_reference(model, logits), f, indent=2, sort_keys=True)
        f.write("\n")
    if spec.get("long_context"):
        long_logits, long_meta = long_context_reference(model, seed)
        np.save(os.path.join(out, "reference_long_logits.npy"), long_logits.numpy().astype(np.float32))
        with open(os.path.join(out, "reference_long.json"), "w") as f:
            json.dump(long_meta, f, sort_keys=True)
            f.write("\n")

    for f in os.listdir(out):
        os.chmod(os.path.join(out, f), 0o644)
    size = folder_bytes(out)
    print(f"  wrote {out}: {len(names)} tensors, {size} bytes")
    assert size <= MAX_FOLDER_BYTES, f"{name} is {size} bytes, over {MAX_FOLDER_BYTES}"
    return name, size


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", help="generate only this folder (repeatable)")
    args = parser.parse_args(argv)

    torch.set_num_threads(1)  # one summation order, the same on every machine
    torch.use_deterministic_algorithms(True)
    specs = [s() for s in SPECS]
    if args.only:
        unknown = set(args.only) - {s["name"] for s in specs}
        if unknown:
            parser.error(f"unknown model(s) {sorted(unknown)}; known: {[s['name'] for s in specs]}")
        specs = [s for s in specs if s["name"] in args.only]
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, "
          f"safetensors {safetensors.__version__}, numpy {np.__version__}")
    sizes = []
    with tempfile.TemporaryDirectory() as tmp_root:
        for spec in specs:
            sizes.append(generate_one(spec, tmp_root))
    print("sizes:")
    for name, size in sizes:
        print(f"  {name}: {size} bytes ({size / 1024:.1f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
