#!/usr/bin/env python3
"""Tokens/s of Hugging Face's GPT2LMHeadModel on the CPU (Debian's torch), for comparison with megrun.

Builds the model from a meg model description (a Hugging Face config.json, e.g. models/gpt2.json) with random
weights (nothing is downloaded), fp32, dropout off, and times on random token ids of shape [micro_batch, seq]
either the forward pass with the loss (default, under no_grad) or, with --train, a whole training step: forward,
backward, clip_grad_norm_(1.0) and torch.optim.AdamW.step() (what a meg train plan does). Prints one line:
  torch: <tokens/s> tokens/s (<seconds> s/step, b=<B> s=<S>, <threads> threads, torch <version>)
Run with the parity venv's python (.venv/bin/python: Debian's torch + transformers).
"""
import argparse
import json
import sys
import time

import torch
import transformers
from transformers import GPT2Config, GPT2LMHeadModel


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", required=True, help="model description / HF config.json")
    ap.add_argument("--micro-batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up step")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--train", action="store_true", help="time training steps instead of forward passes")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()
    with open(args.config) as f:
        cfg = json.load(f)
    cfg.pop("meg", None)
    config = GPT2Config.from_dict(cfg)
    if hasattr(config, "_attn_implementation"):
        try:
            config._attn_implementation = "eager"
        except AttributeError:
            pass
    torch.manual_seed(0)
    model = GPT2LMHeadModel(config).float().eval()
    ids = torch.randint(0, config.vocab_size, (args.micro_batch, args.seq))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)

    def step():
        if not args.train:
            with torch.no_grad():
                model(input_ids=ids, labels=ids)
            return
        optimizer.zero_grad(set_to_none=True)
        model(input_ids=ids, labels=ids).loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    step()  # warm-up
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    seconds = (time.perf_counter() - start) / args.steps
    tokens = args.micro_batch * args.seq / seconds
    print("torch: %.1f tokens/s (%.3f s/step, %s, b=%d s=%d, %d threads, torch %s)"
          % (tokens, seconds, "train" if args.train else "forward", args.micro_batch, args.seq, args.threads,
             torch.__version__))
    return 0


if __name__ == "__main__":
    sys.exit(main())
