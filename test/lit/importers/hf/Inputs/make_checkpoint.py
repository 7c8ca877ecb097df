"""Writes a tiny Mixtral-shaped checkpoint, optionally broken in one way.

Usage: make_checkpoint.py CASE OUT_DIR. Standard library only, so that the
importer's cross-checks of config.json against the tensors can be tested
without torch. Values are zeros: only headers matter here.
"""
import json
import os
import struct
import sys

H, I, V, HEADS, KV, E, LAYERS = 8, 16, 32, 2, 1, 4, 1
HEAD_DIM = H // HEADS


def config():
    return {
        "model_type": "mixtral", "vocab_size": V, "hidden_size": H,
        "intermediate_size": I, "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS, "num_key_value_heads": KV,
        "num_local_experts": E, "num_experts_per_tok": 2,
        "rms_norm_eps": 1e-5, "rope_theta": 1e6, "tie_word_embeddings": False,
        "max_position_embeddings": 128, "hidden_act": "silu",
    }


def tensors():
    t = {"model.embed_tokens.weight": ("BF16", [V, H]),
         "model.norm.weight": ("BF16", [H]), "lm_head.weight": ("BF16", [V, H])}
    for l in range(LAYERS):
        p = f"model.layers.{l}."
        t[p + "input_layernorm.weight"] = ("BF16", [H])
        t[p + "post_attention_layernorm.weight"] = ("BF16", [H])
        t[p + "self_attn.q_proj.weight"] = ("BF16", [HEADS * HEAD_DIM, H])
        t[p + "self_attn.k_proj.weight"] = ("BF16", [KV * HEAD_DIM, H])
        t[p + "self_attn.v_proj.weight"] = ("BF16", [KV * HEAD_DIM, H])
        t[p + "self_attn.o_proj.weight"] = ("BF16", [H, HEADS * HEAD_DIM])
        t[p + "block_sparse_moe.gate.weight"] = ("BF16", [E, H])
        for e in range(E):
            q = f"{p}block_sparse_moe.experts.{e}."
            t[q + "w1.weight"] = ("BF16", [I, H])
            t[q + "w3.weight"] = ("BF16", [I, H])
            t[q + "w2.weight"] = ("BF16", [H, I])
    return t


SIZES = {"BF16": 2, "F32": 4, "F8_E4M3": 1, "I32": 4}


def write_safetensors(path, t):
    header, offset = {}, 0
    for name, (dtype, shape) in t.items():
        n = SIZES[dtype]
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    text = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + bytes(offset))


def main():
    case, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    cfg, t = config(), tensors()
    q = "model.layers.0.self_attn.q_proj.weight"
    fp8 = {"quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic",
           "weight_block_size": [128, 128]}
    if case == "valid":
        pass
    elif case == "missing-tensor":
        del t["model.layers.0.block_sparse_moe.experts.3.w2.weight"]
    elif case == "wrong-shape":
        t["model.layers.0.self_attn.k_proj.weight"] = ("BF16", [8, H])
    elif case == "int-dtype":
        t["model.norm.weight"] = ("I32", [H])
    elif case == "fp8-no-quant-config":
        t[q] = ("F8_E4M3", [H, H])
        t[q + "_scale_inv"] = ("F32", [1, 1])
    elif case == "fp8-no-scale":
        cfg["quantization_config"] = fp8
        t[q] = ("F8_E4M3", [H, H])
    elif case == "fp8-bad-scale-shape":
        cfg["quantization_config"] = fp8
        t[q] = ("F8_E4M3", [H, H])
        t[q + "_scale_inv"] = ("F32", [2, 1])
    elif case == "fp8-bad-scale-dtype":
        cfg["quantization_config"] = fp8
        t[q] = ("F8_E4M3", [H, H])
        t[q + "_scale_inv"] = ("BF16", [1, 1])
    elif case == "scale-without-fp8":
        cfg["quantization_config"] = fp8
        t[q + "_scale_inv"] = ("F32", [1, 1])
    elif case == "fp8-norm":
        cfg["quantization_config"] = fp8
        t["model.norm.weight"] = ("F8_E4M3", [H])
    elif case == "no-config":
        write_safetensors(os.path.join(out, "model.safetensors"), t)
        return
    elif case == "unsupported-arch":
        cfg["model_type"] = "llama"
    else:
        sys.exit(f"unknown case {case}")
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f)
    write_safetensors(os.path.join(out, "model.safetensors"), t)


if __name__ == "__main__":
    main()
