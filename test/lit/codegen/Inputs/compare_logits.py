#!/usr/bin/env python3
"""Compares two logits files (.npy, [tokens, vocab]) and fails beyond the given bounds.

Prints max-abs, relative L2 and DESIGN.md section 4's diff = 1 - 2 sum(xy) / sum(x^2 + y^2).

usage: compare_logits.py GOT.npy WANT.npy [--rel-l2 BOUND] [--diff BOUND]
"""

import argparse
import sys

import numpy as np


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("got")
    parser.add_argument("want")
    parser.add_argument("--rel-l2", type=float)
    parser.add_argument("--diff", type=float)
    args = parser.parse_args()
    got = np.load(args.got).astype(np.float64)
    want = np.load(args.want).astype(np.float64)
    want = want.reshape(-1, want.shape[-1])
    if got.shape != want.shape:
        print(f"FAIL: shape {got.shape}, expected {want.shape}")
        return 1
    rel = np.linalg.norm(got - want) / np.linalg.norm(want)
    diff = 1 - 2 * (got * want).sum() / (got * got + want * want).sum()
    agree = (got.argmax(-1) == want.argmax(-1)).mean()
    print(f"max-abs {np.abs(got - want).max():.3e} rel-l2 {rel:.3e} diff {diff:.3e} "
          f"argmax agreement {agree:.2f}")
    if args.rel_l2 is not None and not rel <= args.rel_l2:
        print(f"FAIL: rel-l2 {rel:.3e} > {args.rel_l2}")
        return 1
    if args.diff is not None and not diff <= args.diff:
        print(f"FAIL: diff {diff:.3e} > {args.diff}")
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
