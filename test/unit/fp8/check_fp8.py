#!/usr/bin/env python3
"""Bit-exact check of runtime/fp8 against numpy + ml_dtypes.

Generates seeded random inputs (mixed with the special values that matter:
saturation band, exact rounding ties, subnormals, +-0, NaN, +-Inf), runs
fp8-driver on them, recomputes the results with numpy float32 arithmetic and
ml_dtypes casts exactly as specified in runtime/fp8/Fp8.h, and compares every
output bit for bit. Prints per-case counts and the first mismatches; exits
non-zero on any mismatch.

Usage: check_fp8.py --driver path/to/fp8-driver [--seed N]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

import ml_dtypes
import numpy as np

F32 = np.float32
E4M3 = ml_dtypes.float8_e4m3fn
E5M2 = ml_dtypes.float8_e5m2
AMAX_FLOOR = F32(1e-4)
MIN_VALUES_PER_CASE = 10**6
MAX_SHOWN = 10


class Driver:
    """Runs fp8-driver on raw byte buffers through files in a temp dir."""

    def __init__(self, path, tmpdir):
        self.path = path
        self.tmpdir = tmpdir

    def __call__(self, mode, data, *args):
        src = os.path.join(self.tmpdir, "in.bin")
        dst = os.path.join(self.tmpdir, "out.bin")
        np.ascontiguousarray(data).tofile(src)
        cmd = [self.path, mode, src, dst] + [str(a) for a in args]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"error: {' '.join(cmd)} failed ({proc.returncode}):\n"
                     f"{proc.stderr}")
        return np.fromfile(dst, dtype=np.uint8)


# ===---------------------------------------------------------------------=== #
# Reference semantics (mirrors the contract in runtime/fp8/Fp8.h)
# ===---------------------------------------------------------------------=== #


def ref_cast(x, fmt):
    """Saturating RNE cast: clip to the finite range, then ml_dtypes' cast."""
    fmax = F32(ml_dtypes.finfo(fmt).max)
    with np.errstate(invalid="ignore"):
        return np.clip(x, -fmax, fmax).astype(fmt).view(np.uint8)


def block_scales(amax, pow2):
    """f32 scales from f32 block amaxes: floor, / 448, optional pow2 ceil."""
    amax = np.maximum(amax.astype(F32), AMAX_FLOOR)
    scales = (amax / F32(448)).astype(F32)
    if pow2:
        mant, exp = np.frexp(scales)
        exp = np.where(mant == F32(0.5), exp - 1, exp)
        scales = np.ldexp(F32(1), exp).astype(F32)
    assert scales.dtype == F32
    return scales


def ref_blocks(x, br, bc, pow2):
    """Returns (q bytes, scales, dequantized) for a [rows, cols] f32 matrix."""
    rows, cols = x.shape
    nbr, nbc = -(-rows // br), -(-cols // bc)
    finite_abs = np.where(np.isfinite(x), np.abs(x), F32(0))
    padded = np.zeros((nbr * br, nbc * bc), dtype=F32)
    padded[:rows, :cols] = finite_abs
    amax = padded.reshape(nbr, br, nbc, bc).max(axis=(1, 3))
    scales = block_scales(amax, pow2)
    full = np.repeat(np.repeat(scales, br, axis=0), bc, axis=1)[:rows, :cols]
    with np.errstate(over="ignore", invalid="ignore"):
        q = ref_cast((x / full).astype(F32), E4M3)
        deq = (q.view(E4M3).astype(F32) * full).astype(F32)
    return q.reshape(-1), scales.reshape(-1), deq.reshape(-1)


# ===---------------------------------------------------------------------=== #
# Input generators
# ===---------------------------------------------------------------------=== #


def finite_values(fmt):
    """Sorted non-negative finite values of `fmt`, as f32."""
    vals = np.arange(256, dtype=np.uint8).view(fmt).astype(F32)
    vals = vals[np.isfinite(vals) & (vals >= 0)]
    return np.unique(vals)


def midpoints(fmt):
    """Exact midpoints between adjacent non-negative values of `fmt`,
    including the one between the max and the next (non-existent) value."""
    vals = finite_values(fmt).astype(np.float64)
    step_at_max = vals[-1] - vals[-2]
    vals = np.append(vals, vals[-1] + step_at_max)
    mids = (vals[:-1] + vals[1:]) / 2
    assert np.all(mids.astype(F32).astype(np.float64) == mids)
    return mids.astype(F32)


def random_signs(rng, n):
    return np.where(rng.random(n) < 0.5, F32(-1), F32(1))


def special_values(rng, n):
    """+-0, +-Inf, NaNs with random payloads and signs, f32 extremes."""
    fixed = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan,
                      np.finfo(F32).max, -np.finfo(F32).max,
                      np.finfo(F32).tiny, -np.finfo(F32).tiny], dtype=F32)
    payload = rng.integers(1, 1 << 23, n, dtype=np.uint32)
    sign = rng.integers(0, 2, n, dtype=np.uint32) << 31
    nans = (sign | np.uint32(0x7F800000) | payload).view(F32)
    return np.concatenate([np.resize(fixed, n), nans])


def f32_subnormals(rng, n):
    bits = rng.integers(1, 1 << 23, n, dtype=np.uint32)
    bits |= rng.integers(0, 2, n, dtype=np.uint32) << 31
    return bits.view(F32)


def cast_inputs(rng, fmt, n):
    """About `n` f32 values stressing the cast to `fmt`."""
    info = ml_dtypes.finfo(fmt)
    fmax = float(info.max)
    lo = np.log2(float(info.smallest_subnormal)) - 4
    hi = np.log2(fmax) + 3
    k = n // 8
    mids = midpoints(fmt)
    ties = np.resize(mids, 3 * k) * random_signs(rng, 3 * k)
    ties = np.concatenate([ties[:k],
                           np.nextafter(ties[k:2 * k], F32(np.inf)),
                           np.nextafter(ties[2 * k:], F32(-np.inf))])
    parts = [
        # Every f32 bit pattern is equally likely: NaN payloads, Inf, tiny.
        rng.integers(0, 1 << 32, k, dtype=np.uint64).astype(np.uint32)
        .view(F32),
        # Log-uniform over (and a bit beyond) the format's range.
        (np.exp2(rng.uniform(lo, hi, 2 * k)) * random_signs(rng, 2 * k))
        .astype(F32),
        # The saturation band around the max, e.g. 448..464..480 for E4M3FN.
        (rng.uniform(0.9 * fmax, 1.2 * fmax, k) * random_signs(rng, k))
        .astype(F32),
        ties.astype(F32),
        f32_subnormals(rng, k // 2),
        special_values(rng, k // 2),
    ]
    x = np.concatenate(parts).astype(F32)
    rng.shuffle(x)
    return x


def near_tie_matrix(rng, rows, cols, br, bc, pow2):
    """Each block has a random amax A; the other entries are the f32 values x
    closest to t * scale for which the f32 quotient x / scale is exactly an
    e4m3 midpoint t. These distinguish f32 division from x * (1 / scale) or
    an unrounded f64 quotient."""
    nbr, nbc = -(-rows // br), -(-cols // bc)
    amax = np.exp2(rng.uniform(-20, 20, (nbr, nbc))).astype(F32)
    scale = block_scales(amax, pow2)
    full = np.repeat(np.repeat(scale, br, 0), bc, 1)[:rows, :cols]
    t = rng.choice(midpoints(E4M3)[:-1], (rows, cols)) * \
        random_signs(rng, rows * cols).reshape(rows, cols)
    # Pow2 scales can be up to 2x amax / 448: halve t to keep |x| < A.
    amax_full = np.repeat(np.repeat(amax, br, 0), bc, 1)[:rows, :cols]
    t = np.where(np.abs(t) * full >= amax_full, t / F32(2), t).astype(F32)
    x = (t * full).astype(F32)
    hit = np.zeros(x.shape, dtype=bool)
    best = x.copy()
    # Walk a few ulps either way; keep a random one of the candidates that hit.
    for steps in rng.permutation(np.arange(-3, 4)):
        cand = x
        toward = F32(np.inf) if steps > 0 else F32(-np.inf)
        for _ in range(abs(steps)):
            cand = np.nextafter(cand, toward)
        ok = (cand / full).astype(F32) == t
        best = np.where(ok & ~hit, cand, best)
        hit |= ok
    best[::br, ::bc] = amax
    return best.astype(F32)


def block_matrix(rng, rows, cols, br, bc, kind, pow2):
    """A [rows, cols] f32 matrix; `kind` picks the stress pattern."""
    if kind == "neartie":
        return near_tie_matrix(rng, rows, cols, br, bc, pow2)
    if kind == "ties":
        # Block-wise constant 2^k times e4m3 values and exact midpoints, with
        # 448 * 2^k in each block: amax / 448 = 2^k, so x / scale hits every
        # rounding tie exactly, with and without pow2 scales.
        mids = midpoints(E4M3)[:-1]  # 464 would raise the amax.
        pool = np.concatenate([mids, finite_values(E4M3)])
        x = rng.choice(pool, (rows, cols)) * random_signs(rng, rows * cols) \
            .reshape(rows, cols)
        nbr, nbc = -(-rows // br), -(-cols // bc)
        x[::br, ::bc] = F32(448)
        kb = rng.integers(-30, 30, (nbr, nbc))
        k = np.repeat(np.repeat(kb, br, 0), bc, 1)[:rows, :cols]
        return np.ldexp(x, k).astype(F32)

    # Gaussian rows with magnitudes from 1e-9 (below the amax floor) to 1e9.
    row_scale = np.power(10.0, rng.uniform(-9, 9, (rows, 1)))
    x = (rng.standard_normal((rows, cols)) * row_scale).astype(F32)
    if rows == 0 or cols == 0:
        return x
    # Some rows get huge / non-finite / f32-subnormal entries.
    n_special = max(1, rows // 16)
    for r in rng.choice(rows, n_special):
        cols_hit = rng.choice(cols, max(1, cols // 8))
        x[r, cols_hit] = rng.choice(
            np.array([np.nan, -np.nan, np.inf, -np.inf, 3e38, -3e38, 1e30,
                      np.finfo(F32).max, 1e-40, -1e-42], dtype=F32),
            len(cols_hit))
    # One edge block made only of NaN/Inf and one all-zero block: both hit
    # the amax floor.
    x[-min(rows, br):, -min(cols, bc):] = rng.choice(
        np.array([np.nan, np.inf, -np.inf], dtype=F32),
        (min(rows, br), min(cols, bc)))
    x[:min(rows, br), :min(cols, bc)] = F32(0)
    if rows > br or cols > bc:
        x[-min(rows, br):, :min(cols, bc)] = F32(0)
    return x


# ===---------------------------------------------------------------------=== #
# Comparison and cases
# ===---------------------------------------------------------------------=== #


def compare(name, what, inputs, got, ref, in_fmt):
    """Counts bit mismatches between `got` and `ref`; prints the first few."""
    assert got.shape == ref.shape, (name, what, got.shape, ref.shape)
    bad = np.nonzero(got != ref)[0]
    for i in bad[:MAX_SHOWN]:
        shown = in_fmt(inputs[i]) if inputs is not None else "-"
        print(f"  MISMATCH {name} {what}[{i}]: input {shown} "
              f"got {got[i]:#x} want {ref[i]:#x}")
    return len(bad)


def f32_hex(v):
    bits = int(np.asarray(v, dtype=F32).view(np.uint32))
    return f"{float(v)!r} ({bits:#010x})"


def check_cast(run, rng, fmt, mode, n):
    x = cast_inputs(rng, fmt, n)
    fmax = F32(ml_dtypes.finfo(fmt).max)
    ax = np.abs(x)
    finite = np.isfinite(x)
    print(f"  {mode} inputs: {np.isnan(x).sum():,d} NaN, "
          f"{np.isinf(x).sum():,d} Inf, "
          f"{(finite & (ax > fmax)).sum():,d} finite > max, "
          f"{np.isin(ax, midpoints(fmt)).sum():,d} exact ties, "
          f"{(finite & (ax > 0) & (ax < np.finfo(F32).tiny)).sum():,d} "
          f"f32 subnormals, {(x == 0).sum():,d} zeros")
    got = run(mode, x)
    bad = compare(mode, "q", x, got, ref_cast(x, fmt), f32_hex)
    return len(x), bad


def check_blocks(run, rng, shapes, br, bc, pow2):
    count = bad = 0
    for rows, cols, kind in shapes:
        x = block_matrix(rng, rows, cols, br, bc, kind, pow2)
        out = run("blocks", x, rows, cols, br, bc, int(pow2))
        q_ref, s_ref, d_ref = ref_blocks(x, br, bc, pow2)
        nq, ns = q_ref.size, s_ref.size
        if out.size != nq + 4 * ns + 4 * nq:
            sys.exit(f"error: blocks {rows}x{cols}: output has {out.size} "
                     f"bytes, expected {nq + 4 * ns + 4 * nq}")
        tag = f"{rows}x{cols}/{br}x{bc}{'/pow2' if pow2 else ''}/{kind}"
        flat = x.reshape(-1)
        bad += compare(tag, "q", flat, out[:nq], q_ref, f32_hex)
        bad += compare(tag, "scale", None, out[nq:nq + 4 * ns].view(np.uint32),
                       s_ref.view(np.uint32), None)
        bad += compare(tag, "dequant", flat,
                       out[nq + 4 * ns:].view(np.uint32),
                       d_ref.view(np.uint32), f32_hex)
        count += nq
    return count, bad


def check_widen(run, mode, fmt):
    codes = np.arange(1 << 16, dtype=np.uint16)
    got = run(mode, codes).view(np.uint32)
    ref = codes.view(fmt).astype(F32).view(np.uint32)
    return codes.size, compare(mode, "f32", codes, got, ref, hex)


def check_decode(run, mode, fmt):
    codes = np.arange(256, dtype=np.uint8)
    got = run(mode, codes).view(np.uint32)
    ref = codes.view(fmt).astype(F32).view(np.uint32)
    return codes.size, compare(mode, "f32", codes, got, ref, hex)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--driver", required=True, help="fp8-driver binary")
    parser.add_argument("--seed", type=int, default=20240917)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)

    # (rows, cols, kind): partial edge blocks, exact block multiples, 1x1 and
    # empty matrices, exact-tie and near-tie patterns.
    weights = [(300, 200, "random"), (1024, 768, "random"),
               (129, 257, "random"), (257, 129, "random"),
               (128, 128, "random"), (1, 1, "random"), (0, 5, "random"),
               (7, 0, "random"), (640, 400, "ties"), (512, 300, "neartie")]
    tokens = [(2000, 500, "random"), (3, 1000, "random"), (1, 1, "random"),
              (0, 128, "random"), (100, 1000, "ties"),
              (300, 300, "neartie")]
    pow2_weights = [(700, 700, "random"), (300, 200, "random"),
                    (384, 300, "ties"), (256, 300, "neartie")]
    pow2_tokens = [(1000, 333, "random"), (257, 384, "ties"),
                   (100, 500, "neartie")]

    start = time.time()
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        run = Driver(args.driver, tmp)
        cases = [
            ("(a) e4m3fn cast", True,
             lambda: check_cast(run, rng, E4M3, "e4m3fn", 1_100_000)),
            ("(b) e5m2 cast", True,
             lambda: check_cast(run, rng, E5M2, "e5m2", 1_100_000)),
            ("(c) 128x128 blocks", True,
             lambda: check_blocks(run, rng, weights, 128, 128, False)),
            ("(d) 1x128 token groups", True,
             lambda: check_blocks(run, rng, tokens, 1, 128, False)),
            ("(e) pow2 scales", True,
             lambda: tuple(map(sum, zip(
                 check_blocks(run, rng, pow2_weights, 128, 128, True),
                 check_blocks(run, rng, pow2_tokens, 1, 128, True))))),
            ("(f) bf16 -> f32", False,
             lambda: check_widen(run, "bf16", ml_dtypes.bfloat16)),
            ("(f) f16 -> f32", False,
             lambda: check_widen(run, "f16", np.float16)),
            ("(g) e4m3fn decode", False,
             lambda: check_decode(run, "dec-e4m3fn", E4M3)),
            ("(g) e5m2 decode", False,
             lambda: check_decode(run, "dec-e5m2", E5M2)),
        ]
        for name, needs_million, fn in cases:
            t0 = time.time()
            count, bad = fn()
            status = "ok" if bad == 0 else "FAIL"
            print(f"{name:26s} {count:>9,d} values  {bad:>7,d} mismatches  "
                  f"{time.time() - t0:5.2f}s  {status}")
            if needs_million and count < MIN_VALUES_PER_CASE:
                print(f"  FAIL {name}: only {count} values, expected at least "
                      f"{MIN_VALUES_PER_CASE}")
                bad += 1
            failed |= bad != 0
    print(f"total {time.time() - start:.2f}s: {'FAIL' if failed else 'PASS'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
