#!/usr/bin/env python3
"""Compare two `megrun --dump` directories (e.g. a tp = 4 run against tp = 1) or two `--log` JSONL files.

  compare_dumps.py dumps A B [--rtol 1e-5]   loss.json and every tensor of grads.safetensors
  compare_dumps.py logs A.jsonl B.jsonl [--rtol 1e-5]   the loss of every step
  compare_dumps.py logs A.jsonl B.jsonl --atol 1e-6      the same, absolute: |a - b| <= atol
  compare_dumps.py weights A.safetensors B.safetensors --atol 1e-6   every tensor elementwise, absolute

Errors: loss |a - b| / |b|; gradients per tensor, norm-wise ||a - b||_2 / max(||b||_2, sqrt(numel) * rms(all of
B's gradient elements)) -- the measure test/parity/hf_reference.py uses, for the reason given there (elementwise
relative error is unbounded where exact gradients cancel to ~0). Prints the worst of each and exits 1 on a mismatch.
Needs only the standard library and numpy (Debian's python3-numpy).
"""
import argparse
import json
import math
import struct
import sys

import numpy as np

DTYPES = {"F32": np.float32, "F64": np.float64, "I32": np.int32, "I64": np.int64, "BF16": None, "F16": np.float16}


def fail(msg):
    print("compare_dumps: error: " + msg, file=sys.stderr)
    sys.exit(1)


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        fail(f"{path}: shorter than a safetensors header")
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = DTYPES.get(info["dtype"])
        if dtype is None:
            fail(f"{path}: tensor {name}: unsupported dtype {info['dtype']}")
        begin, end = info["data_offsets"]
        out[name] = np.frombuffer(data[base + begin:base + end], dtype=dtype).reshape(info["shape"])
    return out


def compare_dumps(a, b, rtol):
    la = json.load(open(f"{a}/loss.json"))["loss"]
    lb = json.load(open(f"{b}/loss.json"))["loss"]
    loss_err = abs(la - lb) / max(abs(lb), 1e-30)
    ga = read_safetensors(f"{a}/grads.safetensors")
    gb = read_safetensors(f"{b}/grads.safetensors")
    if set(ga) != set(gb):
        fail(f"gradient names differ: only in A {sorted(set(ga) - set(gb))}, only in B {sorted(set(gb) - set(ga))}")
    total = sum(float(np.sum(np.square(t.astype(np.float64)))) for t in gb.values())
    count = sum(t.size for t in gb.values())
    rms = math.sqrt(total / max(count, 1))
    worst, worst_name = 0.0, ""
    for name in sorted(gb):
        x, y = ga[name].astype(np.float64), gb[name].astype(np.float64)
        if x.shape != y.shape:
            fail(f"gradient {name}: shape {list(x.shape)} vs {list(y.shape)}")
        err = float(np.linalg.norm(x - y)) / max(float(np.linalg.norm(y)), math.sqrt(y.size) * rms, 1e-30)
        if err > worst:
            worst, worst_name = err, name
    ok = loss_err <= rtol and worst <= rtol
    print(f"loss {'ok' if loss_err <= rtol else 'FAIL'}: rel_err {loss_err:.3e} (a {la:.9g}, b {lb:.9g})")
    print(f"grads {'ok' if worst <= rtol else 'FAIL'}: {len(gb)} tensors, max rel_err {worst:.3e} ({worst_name})")
    return ok


def compare_logs(a, b, rtol, atol=None):
    la = [json.loads(line)["loss"] for line in open(a) if line.strip()]
    lb = [json.loads(line)["loss"] for line in open(b) if line.strip()]
    if len(la) != len(lb) or not la:
        fail(f"the logs have {len(la)} and {len(lb)} steps")
    if atol is None:
        errs = [abs(x - y) / max(abs(y), 1e-30) for x, y in zip(la, lb)]
    else:
        errs = [abs(x - y) for x, y in zip(la, lb)]
    worst = max(range(len(errs)), key=lambda i: errs[i])
    ok = errs[worst] <= (rtol if atol is None else atol)
    print(f"trajectory {'ok' if ok else 'FAIL'}: {len(la)} steps, max {'rel' if atol is None else 'abs'}_err "
          f"{errs[worst]:.3e} at step {worst + 1} (first {lb[0]:.6f}, last {lb[-1]:.6f})")
    return ok


def compare_weights(a, b, atol):
    wa, wb = read_safetensors(a), read_safetensors(b)
    if set(wa) != set(wb):
        fail(f"tensor names differ: only in A {sorted(set(wa) - set(wb))}, only in B {sorted(set(wb) - set(wa))}")
    worst, worst_name = 0.0, ""
    for name in sorted(wb):
        x, y = wa[name].astype(np.float64), wb[name].astype(np.float64)
        if x.shape != y.shape:
            fail(f"tensor {name}: shape {list(x.shape)} vs {list(y.shape)}")
        err = float(np.max(np.abs(x - y))) if y.size else 0.0
        if err > worst:
            worst, worst_name = err, name
    ok = worst <= atol
    print(f"weights {'ok' if ok else 'FAIL'}: {len(wb)} tensors, max abs_err {worst:.3e} ({worst_name})")
    return ok


def main():
    p = argparse.ArgumentParser()
    p.add_argument("kind", choices=["dumps", "logs", "weights"])
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--rtol", type=float, default=1e-5)
    p.add_argument("--atol", type=float, default=None)
    args = p.parse_args()
    if args.kind == "weights":
        if args.atol is None:
            fail("weights needs --atol")
        ok = compare_weights(args.a, args.b, args.atol)
    elif args.kind == "dumps":
        ok = compare_dumps(args.a, args.b, args.rtol)
    else:
        ok = compare_logs(args.a, args.b, args.rtol, args.atol)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
