#!/usr/bin/env python3
"""Compare the logits two `megrun --generate ... --dump-logits FILE` runs computed, position by position.

  compare_logits.py A.safetensors REF.safetensors [--rtol 1e-5]

Each file holds f32 `logits` [positions, vocab]: row p is what the run computed at text position p (the logits that
predict token p + 1). Both must cover the same positions. Error per position: max_v |a - b| / max_v |b| (the row's
largest logit sets the scale: logits are O(1) and single ones can be ~0). Prints the worst and exits 1 when any
position exceeds rtol. Needs only the standard library and numpy.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare_dumps import read_safetensors  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("ref")
    ap.add_argument("--rtol", type=float, default=1e-5)
    args = ap.parse_args()
    a = read_safetensors(args.a)["logits"].astype(np.float64)
    b = read_safetensors(args.ref)["logits"].astype(np.float64)
    if a.shape != b.shape or a.ndim != 2:
        print(f"compare_logits: error: shapes differ: {list(a.shape)} vs {list(b.shape)}", file=sys.stderr)
        return 1
    err = np.abs(a - b).max(axis=1) / np.maximum(np.abs(b).max(axis=1), 1e-30)
    worst = int(err.argmax())
    if not np.all(np.isfinite(a)) or err[worst] > args.rtol:
        print(f"logits differ: position {worst} rel_err {err[worst]:.3e} > {args.rtol:g}")
        return 1
    print(f"logits ok: {a.shape[0]} positions x {a.shape[1]}, max rel_err {err[worst]:.3e} (position {worst})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
