#!/usr/bin/env python3
"""End-to-end check of gpu-check and moec-run's CUDA path.

Writes the runtime test model with real CUDA kernels (kernels.cu, JIT-compiled
by the runtime) twice, with stored and with device-filled weights, plus
model.tokens.txt / model.logits.npy (numpy reference) and bench.bench.txt.

--fake: runs everything on FakeCudaDriver (MOEC_CUDA_DRIVER_LIBRARY) with the
host kernels (MOEC_FAKE_CUDA_KERNELS): gpu-check (a) (outputs and per step),
(b), (c) pass, a wrong reference fails, a wrong kernel (--fake-kernels-wrong:
step 1's bias add off by 0.1%) fails the per-step check naming step 1 and its
kernels only, no driver exits 77; moec-run --device auto/cuda runs on
"cuda" with numpy's logits, --device cuda without a driver is unavailable.
Without --fake (ctest label gpu): gpu-check on the real driver; exits 77
(skip) without a device.

Usage: check_gpu_check.py --driver runtime-test-driver --gpu-check gpu-check
         --moec-run moec-run [--fake FAKE.so --fake-kernels KERNELS.so
         --fake-kernels-wrong WRONG.so]
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile

import numpy as np


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def run(cmd, expect_rc, env=None):
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if expect_rc is not None and p.returncode != expect_rc:
        fail(f"{' '.join(cmd)}: exit {p.returncode}, expected {expect_rc}\n"
             f"stdout:\n{p.stdout}\nstderr:\n{p.stderr}")
    return p


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--driver", required=True)
    ap.add_argument("--gpu-check", required=True)
    ap.add_argument("--moec-run", required=True)
    ap.add_argument("--fake")
    ap.add_argument("--fake-kernels")
    ap.add_argument("--fake-kernels-wrong")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        models = os.path.join(tmp, "models")
        os.mkdir(models)
        info = run([args.driver, "write-cuda-models", models], 0).stdout
        vocab, hidden, max_tokens = map(int, re.findall(r"\d+", info))
        load = lambda n: np.fromfile(os.path.join(models, n), np.float32)
        embed = load("embed.f32").reshape(vocab, hidden)
        bias = load("bias.f32")
        head = load("head.f32").reshape(vocab, hidden)
        tokens = [3, 1, 4, 1, 5, 9, 2, 36][:max_tokens]
        ref = (embed[tokens] + bias) @ head.T
        with open(os.path.join(models, "model.tokens.txt"), "w") as f:
            f.write(" ".join(map(str, tokens)) + "\n")
        np.save(os.path.join(models, "model.logits.npy"), ref.astype(np.float32))
        with open(os.path.join(models, "bench.bench.txt"), "w") as f:
            f.write("1\n4\n8\n")

        env = dict(os.environ, MOEC_CACHE_DIR=os.path.join(tmp, "cache"))
        if args.fake:
            env["MOEC_CUDA_DRIVER_LIBRARY"] = args.fake
            env["MOEC_FAKE_CUDA_KERNELS"] = args.fake_kernels
        out = os.path.join(tmp, "out")
        p = run([args.gpu_check, "--bench", "--iters", "3", "--warmup", "1",
                 "--out", out, models], None, env)
        if not args.fake and p.returncode == 77:
            print(p.stdout.strip())
            print("SKIP: no CUDA device")
            sys.exit(77)
        if p.returncode != 0:
            fail(f"gpu-check exit {p.returncode}\n{p.stdout}\n{p.stderr}")
        for needle in ["ok   model (a) T=1 'logits'", "ok   model (a) T=7",
                       "ok   model (b) T=8 logits vs reference",
                       "ok   bench (a) T=8 'logits'", "bench bench on ",
                       "ok   model (a) per-step: 3 steps x 3 token counts, "
                       "9 results compared, 0 failure(s)",
                       "ok   bench (a) per-step: 3 steps x 3 token counts",
                       "  per step at 8 tokens:",
                       "gpu-check: all checks passed"]:
            if needle not in p.stdout:
                fail(f"gpu-check output lacks {needle!r}:\n{p.stdout}")
        rows = [l for l in p.stdout.splitlines()
                if re.match(r"\s+[148]\s+\d+\.\d+", l)]
        if len(rows) != 3:
            fail(f"expected 3 bench rows:\n{p.stdout}")
        md = open(os.path.join(out, "gpu-check.md")).read()
        for needle in ["### model: CPU vs GPU",
                       "### model: CPU vs GPU per step",
                       "| moe.add | 1 | 3 | 0 | 0 | - | 0 | 0 |",
                       "### model: logits vs reference",
                       "### bench: launch time", "| tokens | ms | TFLOP/s |",
                       "### bench: per step", "| 8 | 2 | "]:
            if needle not in md:
                fail(f"gpu-check.md lacks {needle!r}:\n{md}")
        print("gpu-check: (a) CPU vs GPU, (b) reference, (c) bench pass")

        if not args.fake:
            print("PASS")
            return

        # A wrong reference fails (b), and the exit status says so.
        np.save(os.path.join(models, "model.logits.npy"),
                (ref * 1.01).astype(np.float32))
        p = run([args.gpu_check, models], 1, env)
        if "FAIL model (b) T=8 logits vs reference" not in p.stdout:
            fail(f"a wrong reference passed:\n{p.stdout}")
        # --no-per-step compares the outputs only.
        p = run([args.gpu_check, "--no-per-step", models], 1, env)
        if "per-step" in p.stdout or "ok   model (a) T=7" not in p.stdout:
            fail(f"--no-per-step:\n{p.stdout}")
        # A wrong kernel (step 1 only) is caught per step and named.
        wrong = dict(env, MOEC_FAKE_CUDA_KERNELS=args.fake_kernels_wrong)
        p = run([args.gpu_check, models], 1, wrong)
        for t in [1, 7, 8]:
            needle = (f"FAIL model (a) T={t} step 1 moe.add (cuda "
                      "'moec_test_cuda_add', cpu 'moec_test_add') result 0 "
                      "'y' f32: rel-L2 ")
            if needle not in p.stdout:
                fail(f"the wrong kernel was not caught at T={t}:\n{p.stdout}")
        # The whole-model bound (rel-L2 <= 1e-3) lets this one through.
        if "ok   model (a) T=7 'logits'" not in p.stdout:
            fail(f"whole-model check of the wrong kernel:\n{p.stdout}")
        if re.search(r"FAIL model \(a\) T=\d+ step [02] ", p.stdout):
            fail(f"steps 0 and 2 were blamed too:\n{p.stdout}")
        if "FAIL model (a) per-step: 3 steps x 3 token counts, 9 results " \
           "compared, 3 failure(s)" not in p.stdout:
            fail(f"per-step summary:\n{p.stdout}")
        print("gpu-check: --no-per-step; a wrong kernel is caught at step 1")
        # No driver: skip.
        nodrv = dict(env, MOEC_CUDA_DRIVER_LIBRARY="/nonexistent/libcuda.so.1")
        p = run([args.gpu_check, models], 77, nodrv)
        if not p.stdout.startswith("no CUDA device: CUDA unavailable: "):
            fail(f"no-device message: {p.stdout}")
        print("gpu-check: wrong references fail, no device exits 77")

        model = os.path.join(models, "model.moea")
        npy = os.path.join(tmp, "logits.npy")
        ids = ",".join(map(str, tokens))
        for device in ["auto", "cuda"]:
            o = run([args.moec_run, model, "--tokens", ids, "--device", device,
                     "--dump-logits", npy], 0, env).stdout
            if "on cuda" not in o:
                fail(f"--device {device} did not run on cuda:\n{o}")
            got = np.load(npy)
            if np.max(np.abs(got - ref)) > 1e-5 * np.max(np.abs(ref)):
                fail(f"--device {device}: logits differ from numpy")
        o = run([args.moec_run, model, "--tokens", ids, "--device", "cpu"], 0,
                env).stdout
        if "on cpu" not in o:
            fail(f"--device cpu:\n{o}")
        o = run([args.moec_run, model, "--info"], 0, env).stdout
        if "cuda:      4 launches in 3 steps" not in o or "kernels.cu" not in o:
            fail(f"--info lacks the CUDA summary:\n{o}")
        o = run([args.moec_run, model, "--tokens", ids], 0, nodrv).stdout
        if "on cpu" not in o:
            fail(f"--device auto without a driver did not fall back:\n{o}")
        e = run([args.moec_run, model, "--tokens", ids, "--device", "cuda"], 1,
                nodrv).stderr
        if "device 'cuda' is unavailable: CUDA unavailable" not in e:
            fail(f"--device cuda without a driver: {e}")
        print("moec-run: cuda/auto on the fake driver, fallback without one")
    print("PASS")


if __name__ == "__main__":
    main()
