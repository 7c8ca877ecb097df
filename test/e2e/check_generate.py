#!/usr/bin/env python3
"""Generation with the paged KV cache against transformers and against itself.

For every tiny HF checkpoint, compiled in f32 with `--kv-cache=f32`:

1. Greedy generation of 40 tokens (EOS ignored) equals transformers'
   `generate(do_sample=False)` token for token (test/data/*/reference_generate.json);
   a divergence is accepted only where the reference's top-2 margin is < 1e-4.
2. Incremental decode equals prefill: the logits each token was sampled from
   (`moec-run --generate --dump-logits`) match, at every position, the logits of
   one stateless run over the whole prefix (rel-L2 <= 1e-5).
3. Batch invariance, bit for bit: eight prompts of different lengths generated
   together, each alone, and together with prefill chunks of 5 rows give
   identical logits for every sequence at every step.

For the DeepSeek checkpoints (multi-head latent attention), also:

4. The cache is the compressed one: the manifest's KV cache holds, per layer,
   (kv_lora_rank + qk_rope_head_dim) values per position, f32.
5. Absorbed equals expanded: the prompt's logits of the artifact with the
   latent cache (absorbed attention) match those of the stateless forward
   compiled without --kv-cache (expanded K/V) within rel-L2 1e-5 per position.
6. Compiled with FP8 GEMMs (kv_b's GEMM an fp8_matmul, whose weight the
   absorbed attention takes dequantized), decode equals prefill as in 2.

Then for mixtral-tiny, long context: eight sequences (prompts of 4093..4100 of the
4100 tokens of reference_long.json, sharing their prefix pages) each generate one
token, whose logits are positions 4092..4099 of transformers' no-cache forward
(max-abs <= 1e-4).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import moea  # noqa: E402

MODELS = ["deepseek_v3-tiny", "deepseek_v3-fp8-tiny", "mixtral-tiny",
          "qwen2_moe-tiny", "qwen3_moe-tiny"]
NEW_TOKENS = 40
MARGIN = 1e-4
REL_L2 = 1e-5
LONG_MAX_ABS = 1e-4


def run(args, **kwargs):
    result = subprocess.run(args, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({result.returncode}):\n"
                           f"{result.stdout}\n{result.stderr}")
    return result.stdout


def write_prompts(prompts, tmp, name):
    """Writes `prompts` as a --prompts file tmp/name.txt; returns its path."""
    prompts_file = os.path.join(tmp, name + ".txt")
    with open(prompts_file, "w") as f:
        for p in prompts:
            f.write(",".join(map(str, p)) + "\n")
    return prompts_file


def generate(moec_run, artifact, prompts, tmp, name, extra=()):
    """Returns the [len(prompts), NEW_TOKENS, vocab] logits and the ids."""
    prompts_file = write_prompts(prompts, tmp, name)
    logits_file = os.path.join(tmp, name + ".npy")
    out = run([moec_run, artifact, "--prompts", prompts_file, "--generate",
               str(NEW_TOKENS), "--ignore-eos", "--dump-logits", logits_file,
               *extra])
    ids = {}
    for line in out.splitlines():
        if line.startswith("["):
            head, rest = line.split("]", 1)
            ids[int(head[1:]) - 1] = [int(t) for t in rest.split("(")[0].split()]
    return np.load(logits_file), [ids[i] for i in range(len(prompts))]


def prefill_logits(moec_run, artifact, tokens, tmp):
    path = os.path.join(tmp, "prefill.npy")
    run([moec_run, artifact, "--tokens", ",".join(map(str, tokens)), "--top",
         "0", "--dump-logits", path])
    return np.load(path)


def check_decode_vs_prefill(args, label, artifact, prompt, logits, got, tmp):
    """The logits of each generated token against one prefill over the
    whole prefix (rel-L2 <= REL_L2 at every step)."""
    full = prefill_logits(args.moec_run, artifact, prompt + got[:-1], tmp)
    worst = 0.0
    for i in range(len(got)):
        row = full[len(prompt) - 1 + i].astype(np.float64)
        step = logits[0, i].astype(np.float64)
        rel = np.linalg.norm(step - row) / np.linalg.norm(row)
        worst = max(worst, rel)
        if rel > REL_L2:
            print(f"  {label}: decode vs prefill worst rel-L2 {worst:.3e}")
            return [f"{label}: decode step {i} rel-L2 {rel:.3e} against "
                    f"prefill > {REL_L2}"]
    print(f"  {label}: decode vs prefill worst rel-L2 {worst:.3e}")
    return []


def check_model(args, model, tmp):
    folder = os.path.join(args.data, model)
    ref = json.load(open(os.path.join(folder, "reference_generate.json")))
    prompt, want, margins = ref["prompt"], ref["generated"], ref["margins"]
    artifact = os.path.join(tmp, model + ".moea")
    run([args.moec, folder, "--precision=f32", "--kv-cache=f32",
         "--max-sequences=8", "-o", artifact])
    failures = []

    # 1. Greedy equality with transformers.
    logits, ids = generate(args.moec_run, artifact, [prompt], tmp, model)
    got = ids[0]
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            if margins[i] < MARGIN:
                print(f"  {model}: step {i} diverges at a near-tie "
                      f"(margin {margins[i]:.2e}); the rest is not compared")
            else:
                failures.append(f"{model}: token {i} is {g}, transformers "
                                f"generated {w} (margin {margins[i]:.3e})")
            break
    else:
        if len(got) != len(want):
            failures.append(f"{model}: {len(got)} tokens, expected {len(want)}")
    print(f"  {model}: greedy {sum(g == w for g, w in zip(got, want))}/"
          f"{len(want)} tokens equal to transformers")

    # 2. Incremental decode against one prefill over the whole prefix.
    failures += check_decode_vs_prefill(args, model, artifact, prompt, logits,
                                        got, tmp)

    # 3. Batch invariance: together, alone, chunked.
    rng = np.random.default_rng(7)
    vocab = logits.shape[-1]
    prompts = [[int(t) for t in rng.integers(0, vocab, size=n)]
               for n in (1, 3, 7, 12, 17, 23, 31, 40)]
    together, _ = generate(args.moec_run, artifact, prompts, tmp, "together")
    chunked, _ = generate(args.moec_run, artifact, prompts, tmp, "chunked",
                          ["--max-tokens-per-step", "5"])
    alone = np.stack([generate(args.moec_run, artifact, [p], tmp, "alone")[0][0]
                      for p in prompts])
    for name, other in (("alone", alone), ("chunked by 5", chunked)):
        if not np.array_equal(together.view(np.uint32), other.view(np.uint32)):
            bad = np.argwhere(together != other)[0]
            failures.append(f"{model}: batch invariance: sequence {bad[0]} step "
                            f"{bad[1]} differs between together and {name}")
    print(f"  {model}: 8 sequences bit-identical together, alone and chunked")
    if model.startswith("deepseek"):
        failures += check_latent_cache(args, model, artifact, prompt, tmp)
    return failures


def check_latent_cache(args, model, artifact, prompt, tmp):
    """Checks 4 and 5: the compressed cache's size and absorbed == expanded."""
    failures = []
    config = json.load(open(os.path.join(args.data, model, "config.json")))
    want = (config["kv_lora_rank"] + config["qk_rope_head_dim"]) * 4
    manifest = moea.decode_manifest(moea.read_sections(artifact)["manifest"])
    per_layer = {}
    for t in manifest["kv_cache"]["tensors"]:
        if t["dtype"] != "F32":
            failures.append(f"{model}: {t['name']} is {t['dtype']}, not F32")
        # page_shape is [page_tokens, heads, dim]: one position is heads * dim.
        per_layer.setdefault(t["layer"], 0)
        per_layer[t["layer"]] += t["page_shape"][1] * t["page_shape"][2] * 4
    if len(per_layer) != config["num_hidden_layers"]:
        failures.append(f"{model}: KV cache for {len(per_layer)} layers, "
                        f"expected {config['num_hidden_layers']}")
    for layer, got in sorted(per_layer.items()):
        if got != want:
            failures.append(f"{model}: layer {layer} caches {got} bytes per "
                            f"token, expected (kv_lora_rank + "
                            f"qk_rope_head_dim) * 4 = {want}")
    print(f"  {model}: KV cache bytes per token per layer "
          f"{sorted(set(per_layer.values()))} (want {want})")

    stateless = os.path.join(tmp, model + "-stateless.moea")
    run([args.moec, os.path.join(args.data, model), "--precision=f32", "-o",
         stateless])
    expanded = prefill_logits(args.moec_run, stateless, prompt, tmp)
    absorbed = prefill_logits(args.moec_run, artifact, prompt, tmp)
    worst = 0.0
    for i in range(len(prompt)):
        row = expanded[i].astype(np.float64)
        rel = np.linalg.norm(absorbed[i].astype(np.float64) - row) / \
            np.linalg.norm(row)
        worst = max(worst, rel)
    if not worst <= REL_L2:
        failures.append(f"{model}: absorbed vs expanded prompt logits rel-L2 "
                        f"{worst:.3e} > {REL_L2}")
    print(f"  {model}: absorbed (latent cache) vs expanded (stateless) "
          f"worst rel-L2 {worst:.3e}")

    # With FP8 GEMMs, kv_b enters the absorbed attention dequantized (its
    # block scales folded at compile time): it compiles and decodes as it
    # prefills.
    fp8 = os.path.join(tmp, model + "-fp8.moea")
    run([args.moec, os.path.join(args.data, model), "--precision=fp8",
         "--kv-cache=f32", "--max-sequences=8", "-o", fp8])
    logits, ids = generate(args.moec_run, fp8, [prompt], tmp, model + "-fp8")
    failures += check_decode_vs_prefill(args, model + " (fp8)", fp8, prompt,
                                        logits, ids[0], tmp)
    return failures


def check_long(args, tmp):
    folder = os.path.join(args.data, "mixtral-tiny")
    ref = json.load(open(os.path.join(folder, "reference_long.json")))
    want = np.load(os.path.join(folder, "reference_long_logits.npy"))
    tokens, positions = ref["tokens"], ref["logits_positions"]
    artifact = os.path.join(tmp, "mixtral-long.moea")
    run([args.moec, folder, "--precision=f32", "--kv-cache=f32",
         "--max-sequences=8", "-o", artifact])
    prompts_file = write_prompts([tokens[:p + 1] for p in positions], tmp,
                                 "long")
    logits_file = os.path.join(tmp, "long.npy")
    run([args.moec_run, artifact, "--prompts", prompts_file, "--generate", "1",
         "--ignore-eos", "--dump-logits", logits_file])
    got = np.load(logits_file)[:, 0]
    err = np.abs(got.astype(np.float64) - want).max()
    print(f"  mixtral-tiny: positions {positions[0]}..{positions[-1]} max-abs "
          f"{err:.3e} against transformers")
    if not err <= LONG_MAX_ABS:
        return [f"long context: max-abs {err:.3e} > {LONG_MAX_ABS}"]
    return []


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--moec", required=True)
    parser.add_argument("--moec-run", required=True)
    parser.add_argument("--data", required=True)
    args = parser.parse_args()
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in MODELS:
            failures += check_model(args, model, tmp)
        failures += check_long(args, tmp)
    for f in failures:
        print("FAIL:", f)
    print("PASS" if not failures else f"{len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
