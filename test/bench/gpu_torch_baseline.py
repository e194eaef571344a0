#!/usr/bin/env python3
"""Training throughput of a GPT-2-shaped model in PyTorch on one GPU, the baseline next to meg's gpu_throughput.

A self-contained GPT-2 (pre-LN blocks, causal attention through scaled_dot_product_attention, GeLU-tanh MLP of 4h,
learned positions, tied output layer) built from a meg model description (HF config.json keys), random weights and
tokens, AdamW with clip_grad_norm_(1.0): what a meg train plan does. Timed in bf16 autocast (fp32 master weights),
eager and torch.compile, after warm-up. Prints one line per mode:
  torch <mode>: <tokens/s> tokens/s, <ms> ms/step
Needs only torch (no transformers), so it runs on GPU hosts that have PyTorch's wheels and nothing else.
"""
import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, h, heads):
        super().__init__()
        self.heads = heads
        self.ln_1, self.ln_2 = nn.LayerNorm(h), nn.LayerNorm(h)
        self.c_attn, self.c_proj = nn.Linear(h, 3 * h), nn.Linear(h, h)
        self.c_fc, self.c_out = nn.Linear(h, 4 * h), nn.Linear(4 * h, h)

    def forward(self, x):
        b, s, h = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(h, dim=2)
        q, k, v = (t.view(b, s, self.heads, h // self.heads).transpose(1, 2) for t in (q, k, v))
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, s, h)
        x = x + self.c_proj(a)
        return x + self.c_out(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class Gpt(nn.Module):
    def __init__(self, vocab, positions, h, heads, layers):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, h), nn.Embedding(positions, h)
        self.blocks = nn.ModuleList(Block(h, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(h)

    def forward(self, ids):
        x = self.wte(ids) + self.wpe(torch.arange(ids.shape[1], device=ids.device))
        for block in self.blocks:
            x = block(x)
        logits = self.ln_f(x) @ self.wte.weight.t()
        return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), ids[:, 1:].reshape(-1))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--micro-batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--modes", default="eager,compile")
    args = ap.parse_args()
    with open(args.config) as f:
        cfg = json.load(f)
    vocab = int(math.ceil(cfg["vocab_size"] / 128) * 128)
    torch.manual_seed(0)
    dev = torch.device("cuda")
    for mode in args.modes.split(","):
        model = Gpt(vocab, cfg["n_positions"], cfg["n_embd"], cfg["n_head"], cfg["n_layer"]).to(dev)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
        run = torch.compile(model) if mode == "compile" else model
        ids = torch.randint(0, cfg["vocab_size"], (args.micro_batch, args.seq), device=dev)

        def step():
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = run(ids)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)

        for _ in range(args.warmup):
            step()
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(args.steps):
            step()
        torch.cuda.synchronize()
        per_step = (time.perf_counter() - start) / args.steps
        print("torch %s bf16: %.1f tokens/s, %.2f ms/step" % (mode, args.micro_batch * args.seq / per_step,
                                                             per_step * 1e3))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
