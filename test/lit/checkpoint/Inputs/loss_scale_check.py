#!/usr/bin/env python3
"""Checks an fp16 run with dynamic loss scaling step by step (standard library only; lit's %syspython).

  loss_scale_check.py --megrun M --steps N --initial S --hysteresis H --window W --dir D -- PLAN_DIR [flags]
      Runs `M PLAN_DIR ... --steps k --resume D/k-1.ckpt --save D/k.ckpt --log D/run.jsonl` for k = 1..N (step 1
      without --resume), so there is a checkpoint after every step, each rank's parameters and optimizer state in it
      (runtime/train/Checkpoint.h: a 24-byte header, then safetensors with tensors "rank<r>/<param|state>/<name>").
      Then checks, and prints one line per property (FileCheck reads them):
        - the log's "skipped" and "loss_scale" follow Megatron-LM's DynamicGradScaler exactly (growth x2 after W
          clean steps in a row, which resets the hysteresis tracker to H; backoff x0.5 once H overflows have counted
          the tracker down to 0, and on every overflow after that);
        - across a skipped step every parameter, both Adam moments and the count of updates of EVERY rank are
          byte-identical to the checkpoint before it; across a clean step the parameters change;
        - every rank holds the same loss scale, trackers and count of updates (all ranks skipped the same steps),
          and the count equals the clean steps so far;
        - the losses are finite.
      Prints the skipped steps and the scale after each of them.
"""
import argparse
import json
import math
import os
import struct
import subprocess
import sys

HEADER = 24  # "MEGCKPT1", u64 payload size, u64 xxHash64(payload)
SCALER = ("loss_scale", "loss_scale.growth_tracker", "loss_scale.hysteresis_tracker", "optimizer.updates")


def fail(msg):
    print("loss_scale_check: error: " + msg, file=sys.stderr)
    sys.exit(1)


def tensors(path):
    """{name: raw bytes} of a checkpoint."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[HEADER:HEADER + 8])
    header = json.loads(data[HEADER + 8:HEADER + 8 + n])
    body = data[HEADER + 8 + n:]
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        begin, end = t["data_offsets"]
        out[name] = body[begin:end]
    return out


def scalar(raw):
    return struct.unpack("<f", raw)[0]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--megrun", required=True)
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--initial", type=float, required=True)
    p.add_argument("--hysteresis", type=int, required=True)
    p.add_argument("--window", type=int, required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("command", nargs=argparse.REMAINDER)
    args = p.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    log = os.path.join(args.dir, "run.jsonl")
    ckpt = lambda k: os.path.join(args.dir, f"{k}.ckpt")
    for k in range(1, args.steps + 1):
        cmd = [args.megrun] + command + ["--steps", str(k), "--save", ckpt(k), "--log", log]
        if k > 1:
            cmd += ["--resume", ckpt(k - 1)]
        if subprocess.run(cmd, stdout=subprocess.DEVNULL).returncode != 0:
            fail(f"megrun failed at step {k}: {' '.join(cmd)}")

    records = [json.loads(line) for line in open(log)]
    if [r["step"] for r in records] != list(range(1, args.steps + 1)):
        fail("the log does not list steps 1..N once each")
    # Megatron's update rule from the initial scale; the log has the scale after each step's update.
    scale, growth, hysteresis = args.initial, 0, args.hysteresis
    for r in records:
        if r["skipped"]:
            growth = 0
            hysteresis -= 1
            if hysteresis <= 0:
                scale = max(scale * 0.5, 1.0)
        else:
            growth += 1
            if growth == args.window:
                growth, hysteresis, scale = 0, args.hysteresis, scale * 2
        if r["loss_scale"] != scale:
            fail(f"step {r['step']}: loss_scale {r['loss_scale']}, Megatron's rule gives {scale}")
        if r["loss"] is None or not math.isfinite(r["loss"]):
            fail(f"step {r['step']}: loss {r['loss']} is not finite")
    print(f"scale rule ok: {len(records)} steps, hysteresis {args.hysteresis}, window {args.window}")

    before = None
    clean = 0
    for k in range(1, args.steps + 1):
        now = tensors(ckpt(k))
        skipped = records[k - 1]["skipped"]
        clean += 0 if skipped else 1
        # The checkpoint holds each tensor once: its writer refuses ranks whose copies of it differ, so every rank
        # held this scaler state.
        for name in SCALER:
            scalar(now[f"state/{name}"])
        updates = scalar(now["state/optimizer.updates"])
        if updates != clean:
            fail(f"step {k}: optimizer.updates is {updates}, {clean} clean steps so far")
        if before is not None:
            kept = [n for n in now if n.split("/", 1)[1] not in SCALER[:3]]
            changed = [n for n in kept if now[n] != before[n]]
            params = [n for n in kept if n.split("/")[0] == "param"]
            if skipped and changed:
                fail(f"step {k} was skipped but changed {changed[0]} (and {len(changed) - 1} more)")
            if not skipped and all(now[n] == before[n] for n in params):
                fail(f"step {k} was not skipped but no parameter changed")
        before = now
    skips = [r["step"] for r in records if r["skipped"]]
    print(f"skipped steps byte-identical ok: {len(skips)} skipped, the ranks agree on every step")
    print("skipped: " + " ".join(f"{s}(scale {records[s - 1]['loss_scale']:g})" for s in skips))
    print(f"final loss {records[-1]['loss']:.6f}, first {records[0]['loss']:.6f}")


if __name__ == "__main__":
    main()
