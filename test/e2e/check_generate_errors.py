#!/usr/bin/env python3
"""Generation when the KV cache is short, and with a bf16 cache.

On mixtral-tiny compiled with `--kv-cache=f32 --max-sequences=4` (512 bytes of
cache per position: 2 layers x K and V x 2 heads x 16 x 4 bytes):

1. A cache too small for one request: with `--cache-mb 1` (2048 positions) a
   3000-token prompt ends that sequence with a clear error ("KV cache too
   small", moec-run exits 1), while the other sequences of the same run finish
   with the tokens and logits they get with the default cache.
2. A pool that holds the running sequences but not one full-length sequence
   per slot: 24 sequences of 60..83 prompt tokens and 40 new ones (2,676
   positions in all) pass through the same 2048-position pool, so released
   pages are reused; their logits equal, bit for bit, those of the default
   cache (room for 4 x 4096 positions).
3. moec-run --generate on an artifact without a KV cache names the fix.

Then, reported and not asserted: greedy generation of 40 tokens with
`--kv-cache=bf16` on each tiny checkpoint, and how many equal the f32
reference (transformers' generate, test/data/*/reference_generate.json); the
check only asserts that each run produced 40 tokens.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

from check_generate import MODELS, NEW_TOKENS, write_prompts


def run(args, expect=0):
    result = subprocess.run(args, capture_output=True, text=True)
    if result.returncode != expect:
        raise RuntimeError(f"{' '.join(args)} exited {result.returncode}, "
                           f"expected {expect}:\n{result.stdout}\n"
                           f"{result.stderr}")
    return result


def generate(moec_run, artifact, prompts, tmp, name, extra=(), expect=0):
    """(logits [len(prompts), NEW_TOKENS, vocab], {index: (ids, finish)},
    stderr) of one moec-run --prompts run."""
    prompts_file = write_prompts(prompts, tmp, name)
    logits_file = os.path.join(tmp, name + ".npy")
    result = run([moec_run, artifact, "--prompts", prompts_file, "--generate",
                  str(NEW_TOKENS), "--ignore-eos", "--dump-logits", logits_file,
                  *extra], expect)
    ends = {}
    for line in result.stdout.splitlines():
        if line.startswith("["):
            head, rest = line.split("]", 1)
            ids, finish = rest.rsplit("(", 1)
            ends[int(head[1:]) - 1] = ([int(t) for t in ids.split()],
                                       finish.rstrip(")"))
    logits = np.load(logits_file) if os.path.exists(logits_file) else None
    return logits, ends, result.stderr


def prompts_of(rng, vocab, lengths):
    return [[int(t) for t in rng.integers(0, vocab, size=n)] for n in lengths]


def check_short_cache(args, artifact, tmp):
    failures = []
    rng = np.random.default_rng(15)
    vocab = json.load(open(os.path.join(args.data, "mixtral-tiny",
                                        "config.json")))["vocab_size"]
    # 1. One request larger than the whole pool.
    prompts = prompts_of(rng, vocab, (5, 3000, 17, 9))
    small = [prompts[0], prompts[2], prompts[3]]
    want, want_ends, _ = generate(args.moec_run, artifact, small, tmp, "ref")
    got, ends, stderr = generate(args.moec_run, artifact, prompts, tmp, "short",
                                 ["--cache-mb", "1"], expect=1)
    expected = ("moec-run: sequence 2 failed: KV cache too small: sequence 2 "
                "needs 188 pages for 3000 tokens, but the pool has 128 pages "
                "of 16 tokens")
    if expected not in stderr:
        failures.append(f"too-small cache: expected '{expected}' in:\n{stderr}")
    if ends.get(1) != ([], "error"):
        failures.append(f"too-small cache: the long request ended {ends.get(1)}")
    for i, j in ((0, 0), (2, 1), (3, 2)):
        if ends.get(i) != want_ends[j] or want_ends[j][1] != "length":
            failures.append(f"too-small cache: sequence {i + 1} ended "
                            f"{ends.get(i)}, alone {want_ends[j]}")
        elif not np.array_equal(got[i].view(np.uint32), want[j].view(np.uint32)):
            failures.append(f"too-small cache: sequence {i + 1}'s logits differ "
                            "from the default cache's")
    print("  cache of 1 MiB: the 3000-token request fails alone, 3 others "
          "finish bit-identical to the default cache")

    # 2. Many sequences through one small pool.
    lengths = [60 + i for i in range(24)]
    prompts = prompts_of(rng, vocab, lengths)
    total = sum(lengths) + NEW_TOKENS * len(lengths)
    want, want_ends, _ = generate(args.moec_run, artifact, prompts, tmp, "big")
    got, ends, _ = generate(args.moec_run, artifact, prompts, tmp, "small",
                            ["--cache-mb", "1"])
    assert total > 2048
    if ends != want_ends or any(e[1] != "length" for e in ends.values()):
        failures.append("small pool: the sequences ended differently from the "
                        "default cache's")
    elif not np.array_equal(got.view(np.uint32), want.view(np.uint32)):
        bad = np.argwhere(got != want)[0]
        failures.append(f"small pool: sequence {bad[0] + 1} step {bad[1]} "
                        "differs from the default cache")
    print(f"  cache of 1 MiB (2048 positions): {len(prompts)} sequences, "
          f"{total} positions, bit-identical to the default cache")
    return failures


def check_no_cache(args, tmp):
    plain = os.path.join(tmp, "plain.moea")
    run([args.moec, os.path.join(args.data, "mixtral-tiny"), "--precision=f32",
         "-o", plain])
    result = run([args.moec_run, plain, "--tokens", "1,2,3", "--generate", "4"],
                 expect=1)
    want = ": has no KV cache, so it cannot generate; compile it with `moec " \
           "--kv-cache=bf16` (or f32)"
    if want not in result.stderr:
        return [f"no KV cache: expected '{want}' in:\n{result.stderr}"]
    print("  an artifact without a KV cache: refused, naming --kv-cache")
    return []


def report_bf16(args, tmp):
    failures = []
    for model in MODELS:
        folder = os.path.join(args.data, model)
        ref = json.load(open(os.path.join(folder, "reference_generate.json")))
        artifact = os.path.join(tmp, model + "-bf16.moea")
        run([args.moec, folder, "--precision=f32", "--kv-cache=bf16", "-o",
             artifact])
        _, ends, _ = generate(args.moec_run, artifact, [ref["prompt"]], tmp,
                              model + "-bf16")
        got = ends.get(0, ([], "?"))[0]
        want = ref["generated"]
        if len(got) != NEW_TOKENS:
            failures.append(f"{model} bf16 cache: {len(got)} tokens, expected "
                            f"{NEW_TOKENS}")
        equal = sum(g == w for g, w in zip(got, want))
        first = next((i for i, (g, w) in enumerate(zip(got, want)) if g != w),
                     None)
        print(f"  {model}: bf16 cache, {equal}/{len(want)} greedy tokens equal "
              f"to transformers' f32 generate"
              + ("" if first is None else
                 f" (first difference at token {first}, where the reference's "
                 f"top-2 margin is {ref['margins'][first]:.2e})"))
    return failures


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--moec", required=True)
    parser.add_argument("--moec-run", required=True)
    parser.add_argument("--data", required=True)
    args = parser.parse_args()
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        artifact = os.path.join(tmp, "mixtral-kv.moea")
        run([args.moec, os.path.join(args.data, "mixtral-tiny"),
             "--precision=f32", "--kv-cache=f32", "--max-sequences=4", "-o",
             artifact])
        failures += check_short_cache(args, artifact, tmp)
        failures += check_no_cache(args, tmp)
        failures += report_bf16(args, tmp)
    for f in failures:
        print("FAIL:", f)
    print("PASS" if not failures else f"{len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
