#!/usr/bin/env python3
"""Checkpoint test helpers (standard library only; run with Debian's python3, lit's %syspython).

  ckpt_tool.py kill-resume --megrun M --reference REF.jsonl [--kill-at K] -- PLAN_DIR --steps N --save CKPT --log L ...
      Starts `M PLAN_DIR ... --save-interval 1` in the background, polls the log until it has step >= K (K random
      in [3, 8] unless given), waits a random 0-100 ms (so the kill lands in a step or in a checkpoint write),
      kills it with SIGKILL, then runs the same command with `--resume CKPT`, which must
      finish the run. The final log must list steps 1..N once each, and every step's "loss", "lr" and "grad_norm"
      must be the same strings as in REF.jsonl (an uninterrupted run): bit-identical, not merely close.
  ckpt_tool.py info CKPT         prints the checkpoint's metadata (runtime/train/Checkpoint.h format)
  ckpt_tool.py flip CKPT OFFSET  flips the low bit of the byte at OFFSET (negative: from the end), in place
  ckpt_tool.py truncate CKPT N   cuts the file to its first N bytes (negative: drops -N bytes), in place
"""
import argparse
import json
import os
import random
import re
import signal
import struct
import subprocess
import sys
import time

HEADER = 24  # "MEGCKPT1", u64 payload size, u64 xxHash64(payload)


def fail(msg):
    print("ckpt_tool: error: " + msg, file=sys.stderr)
    sys.exit(1)


def metadata(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"MEGCKPT1":
        fail(f"{path}: not a meg checkpoint")
    (n,) = struct.unpack("<Q", data[HEADER:HEADER + 8])
    return json.loads(data[HEADER + 8:HEADER + 8 + n]).get("__metadata__", {})


def log_steps(path):
    """The complete lines of a JSONL log as {step: {field: raw JSON text}}, and the steps in order."""
    fields, order = {}, []
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return fields, order
    for line in text.split("\n")[:-1]:  # a line without its newline is still being written
        raw = dict(re.findall(r'"(\w+)":([^,}]+)', line))
        step = int(raw["step"])
        fields[step] = raw
        order.append(step)
    return fields, order


def kill_resume(args):
    cmd = [args.megrun] + args.command
    if "--log" not in cmd or "--save" not in cmd:
        fail("the megrun command needs --log and --save")
    log = cmd[cmd.index("--log") + 1]
    ckpt = cmd[cmd.index("--save") + 1]
    for path in (log, ckpt):
        if os.path.exists(path):
            os.remove(path)
    rng = random.SystemRandom()
    k = args.kill_at if args.kill_at is not None else rng.randint(3, 8)
    proc = subprocess.Popen(cmd + ["--save-interval", "1"], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    last = 0
    while True:
        _, order = log_steps(log)
        last = order[-1] if order else 0
        if last >= k:
            time.sleep(rng.uniform(0.0, 0.1))
            os.kill(proc.pid, signal.SIGKILL)
            break
        if proc.poll() is not None:
            fail(f"megrun exited ({proc.returncode}) at step {last} before the kill at step {k}")
        if time.monotonic() > deadline:
            proc.kill()
            fail("megrun did not reach step %d in 300 s" % k)
        time.sleep(0.002)
    rc = proc.wait()
    if rc != -signal.SIGKILL:
        fail(f"megrun was not killed (exit status {rc}): it finished before the kill?")
    _, order = log_steps(log)
    killed = order[-1] if order else 0
    if not os.path.exists(ckpt):
        fail(f"no checkpoint {ckpt} after the kill at step {killed}")
    saved = int(metadata(ckpt)["step"])
    resumed = subprocess.run(cmd + ["--resume", ckpt], stdout=subprocess.DEVNULL)
    if resumed.returncode != 0:
        fail(f"the resumed run failed (exit status {resumed.returncode})")

    ref, ref_order = log_steps(args.reference)
    got, got_order = log_steps(log)
    if got_order != ref_order:
        fail(f"the resumed log has steps {got_order}, the uninterrupted run {ref_order}")
    for step in ref_order:
        for key in ("loss", "lr", "grad_norm"):
            if got[step].get(key) != ref[step].get(key):
                fail(f"step {step}: {key} {got[step].get(key)} differs from the uninterrupted run's "
                     f"{ref[step].get(key)} (killed at step {killed}, checkpoint at step {saved})")
    print(f"killed with step {killed} logged (kill point {k}), checkpoint at step {saved}; "
          f"steps {saved + 1}..{ref_order[-1]} resumed")
    print(f"resume ok: {len(ref_order)} steps, loss, lr and grad_norm identical to the uninterrupted run")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    kr = sub.add_parser("kill-resume")
    kr.add_argument("--megrun", required=True)
    kr.add_argument("--reference", required=True)
    kr.add_argument("--kill-at", type=int)
    kr.add_argument("command", nargs=argparse.REMAINDER)
    info = sub.add_parser("info")
    info.add_argument("ckpt")
    flip = sub.add_parser("flip")
    flip.add_argument("ckpt")
    flip.add_argument("offset", type=int)
    trunc = sub.add_parser("truncate")
    trunc.add_argument("ckpt")
    trunc.add_argument("size", type=int)
    args = ap.parse_args()
    if args.what == "kill-resume":
        if args.command and args.command[0] == "--":
            args.command = args.command[1:]
        kill_resume(args)
    elif args.what == "info":
        for key, value in sorted(metadata(args.ckpt).items()):
            print(f"{key}: {value}")
    elif args.what == "flip":
        with open(args.ckpt, "r+b") as f:
            data = bytearray(f.read())
            data[args.offset] ^= 1
            f.seek(0)
            f.write(data)
    else:
        with open(args.ckpt, "r+b") as f:
            size = args.size if args.size >= 0 else os.fstat(f.fileno()).st_size + args.size
            f.truncate(size)


if __name__ == "__main__":
    main()
