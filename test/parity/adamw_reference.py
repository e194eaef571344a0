#!/usr/bin/env python3
"""Replay meg's training steps with Hugging Face transformers + torch.optim.AdamW and compare losses and weights.

Input is what megrun writes (DESIGN.md section 6):
  W0.safetensors + config.json   the initial weights (`megrun PLAN --steps 0 --save-weights W0`)
  DUMPS/step-<t>/batch.safetensors   the batch of every step t = 1..N
                                 (`megrun PLAN --load-weights W0 --steps N --dump DUMPS --dump-every-step`)
  LOG.jsonl                      that run's log: one {"step", "loss", "lr", "grad_norm", ...} per step
  WN.safetensors                 that run's weights after the N steps (`--save-weights WN`)

The reference is the model class config.json names (test/parity/hf_reference.py builds and loads it) in fp32 on
the CPU, dropout off (run megrun with --no-dropout), trained the way meg's optimizer pass does it:
  - loss as hf_reference.py computes it (labels already shifted);
  - torch.nn.utils.clip_grad_norm_(params, --clip) (coefficient min(1, clip / (norm + 1e-6)));
  - torch.optim.AdamW(betas, eps) with two parameter groups: weight decay on parameters with >= 2 dimensions (in
    the Hugging Face shapes), none on the others (biases, LayerNorm gains);
  - LambdaLR reproducing Megatron's schedule as runtime/cpu/OptimizerOps.cpp scheduledLr computes it, step t
    1-based: lr * t / warmup for t <= warmup; then constant, or linear/cosine decay from lr to min_lr over
    (t - warmup) / (decay_iters - warmup), min_lr from decay_iters on. meg rounds the scheduled lr to f32 (it is a
    tensor); so does the reference.

Checks (each prints `<check> ok: ...` or `<check> FAIL: ...`; exit code 1 on any failure):
  losses   every step's loss, |meg - ref| / |ref| <= --rtol
  lr       every step's lr equals the reference's to f32 rounding (the log prints 9 digits)
  clipping the gradient norm (log: 6 digits) within --rtol + 5e-6 of the reference's; with --expect-clipping at
           least one step must have norm > --clip, so clipping is really exercised
  weights  final weights per tensor, norm-wise as hf_reference.py measures gradients:
           ||meg_t - ref_t||_2 / max(||ref_t||_2, sqrt(numel_t) * rms), rms over all reference weights; also
           printed (not checked) the same measure on the updates W_N - W_0, which is far more sensitive.
           One exception: GPT-2's attention key bias (the middle third of each c_attn.bias) has an exactly zero
           gradient (softmax is invariant to adding q . b_k to every score of a query), so each implementation's
           AdamW moves it only by its own fp32 rounding noise amplified by 1 / eps (|g| ~ 1e-11 << eps): two
           correct implementations disagree there at ~1e-5 of the tensor, run to run. c_attn.bias is therefore
           compared on its query and value thirds, and the key bias is checked separately ("gauge"): in meg and
           in the reference it must move by less than 1% of what the query and value biases move.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_reference as hf  # noqa: E402  (also imports torch and transformers, or says how to get them)

import torch  # noqa: E402


def scheduled_lr(a, step: int) -> float:
    """runtime/cpu/OptimizerOps.cpp scheduledLr, in double."""
    if a.warmup > 0 and step <= a.warmup:
        return a.lr * step / a.warmup
    if a.style == "constant" or step >= a.decay_iters or a.decay_iters <= a.warmup:
        return a.lr if a.style == "constant" else a.min_lr
    ratio = (step - a.warmup) / (a.decay_iters - a.warmup)
    coeff = 0.5 * (math.cos(math.pi * ratio) + 1.0) if a.style == "cosine" else 1.0 - ratio
    return a.min_lr + (a.lr - a.min_lr) * coeff


def f32(x: float) -> float:
    return float(torch.tensor(x, dtype=torch.float32).item())


def read_log(path: str, steps: int) -> list:
    rows = []
    try:
        with open(path) as f:
            for line in f:
                if line.strip():
                    rows.append(json.loads(line))
    except (OSError, ValueError) as e:
        hf.fail("%s: %s" % (path, e))
    if [r.get("step") for r in rows] != list(range(1, steps + 1)):
        hf.fail("%s: expected steps 1..%d, got %s" % (path, steps, [r.get("step") for r in rows]))
    return rows


def is_key_bias_tensor(name: str, t) -> bool:
    return name.endswith(".attn.c_attn.bias") and t.dim() == 1 and t.numel() % 3 == 0


def split_key_bias(d: dict) -> tuple:
    """(d with each c_attn.bias cut to its query and value thirds, {name: key third})."""
    out, keys = {}, {}
    for n, t in d.items():
        if is_key_bias_tensor(n, t):
            q, k, v = t.chunk(3)
            out[n + "[q,v]"] = torch.cat([q, v])
            keys[n] = k
        else:
            out[n] = t
    return out, keys


def norm_errors(meg: dict, ref: dict, base: dict | None = None) -> list:
    """Per tensor ||a - b|| / max(||b||, sqrt(n) * rms(all of b)), with a, b = meg, ref (minus base when given)."""
    def val(d, n):
        t = d[n].double()
        return t - base[n].double() if base is not None else t
    refs = {n: val(ref, n) for n in ref}
    total = sum(float((r * r).sum()) for r in refs.values())
    count = sum(r.numel() for r in refs.values())
    rms = math.sqrt(total / max(count, 1))
    out = []
    for n, r in refs.items():
        num = (val(meg, n) - r).norm().item()
        den = max(r.norm().item(), math.sqrt(r.numel()) * rms)
        out.append((0.0 if num == 0.0 else (num / den if den > 0 else math.inf), n))
    out.sort(key=lambda e: (-e[0], e[1]))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", required=True, help="initial weights W0.safetensors (config.json beside them)")
    ap.add_argument("--config", help="config.json (default: beside --weights)")
    ap.add_argument("--dumps", required=True, help="directory with step-<t>/batch.safetensors")
    ap.add_argument("--log", required=True, help="megrun --log of the run")
    ap.add_argument("--final", required=True, help="megrun --save-weights after the run")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--lr", type=float, required=True)
    ap.add_argument("--min-lr", type=float, default=0.0)
    ap.add_argument("--warmup", type=int, default=0)
    ap.add_argument("--decay-iters", type=int, default=0)
    ap.add_argument("--style", choices=["constant", "linear", "cosine"], default="constant")
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--beta1", type=float, default=0.9)
    ap.add_argument("--beta2", type=float, default=0.999)
    ap.add_argument("--eps", type=float, default=1e-8)
    ap.add_argument("--rtol", type=float, default=1e-5)
    ap.add_argument("--expect-clipping", action="store_true", help="fail unless some step's norm exceeds --clip")
    ap.add_argument("--save-reference", help="also write the reference's final weights here (safetensors)")
    a = ap.parse_args()
    config = a.config or os.path.join(os.path.dirname(os.path.abspath(a.weights)), "config.json")

    torch.set_grad_enabled(True)
    arch, model = hf.build_model(config)
    aliases = hf.load_weights(model, a.weights, nsp_used=True)
    model.eval()  # dropout off, as megrun --no-dropout
    params = dict(model.named_parameters())
    initial = {n: p.detach().clone() for n, p in params.items()}
    decay = [p for p in params.values() if p.dim() >= 2]
    no_decay = [p for p in params.values() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=a.lr, betas=(a.beta1, a.beta2), eps=a.eps)
    # LambdaLR multiplies the base lr by lambda(e) before optimizer step e + 1.
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: f32(scheduled_lr(a, e + 1)) / a.lr)
    log = read_log(a.log, a.steps)
    print("reference: %s (transformers %s, torch %s, fp32) %d AdamW steps, %d decayed / %d not decayed tensors"
          % (arch, hf.transformers.__version__, torch.__version__, a.steps, len(decay), len(no_decay)))

    loss_errs, lr_errs, norm_errs, clipped = [], [], [], []
    for t in range(1, a.steps + 1):
        batch = hf.load_batch(os.path.join(a.dumps, "step-%d" % t, "batch.safetensors"), arch)
        opt.zero_grad(set_to_none=True)
        loss = hf.reference_loss(arch, model, batch)
        loss.backward()
        norm = float(torch.nn.utils.clip_grad_norm_(list(params.values()), a.clip))
        lr = opt.param_groups[0]["lr"]
        opt.step()
        sched.step()
        row = log[t - 1]
        ref_loss = loss.item()
        loss_errs.append(hf.rel_err(float(row["loss"]), ref_loss))
        lr_errs.append(hf.rel_err(float(row["lr"]), lr) if lr else abs(float(row["lr"])))
        if "grad_norm" in row:
            norm_errs.append(hf.rel_err(float(row["grad_norm"]), norm))
        if norm > a.clip:
            clipped.append(t)
        print("step %d: loss meg %s ref %.9g (rel_err %.3g), lr %.9g, grad_norm meg %s ref %.6g%s"
              % (t, row["loss"], ref_loss, loss_errs[-1], lr, row.get("grad_norm", "-"), norm,
                 " (clipped)" if norm > a.clip else ""))

    ok = True
    worst = max(loss_errs)
    good = worst <= a.rtol
    ok &= good
    print("losses %s: %d steps, max rel_err %.3g %s rtol %g"
          % ("ok" if good else "FAIL", a.steps, worst, "<=" if good else ">", a.rtol))
    good = max(lr_errs) <= 1e-7
    ok &= good
    print("lr %s: max rel_err %.3g (f32 rounding)" % ("ok" if good else "FAIL", max(lr_errs)))
    if norm_errs:
        good = max(norm_errs) <= a.rtol + 5e-6 and (bool(clipped) or not a.expect_clipping)
        ok &= good
        print("clipping %s: grad_norm max rel_err %.3g, clipped at steps %s (max_norm %g)"
              % ("ok" if good else "FAIL", max(norm_errs), clipped or "none", a.clip))

    final = hf.load_safetensors(a.final, "final weights")
    meg, ref, base = {}, {}, {}
    for name, t in final.items():
        canon = aliases.get(name, name)
        if canon not in params:
            hf.fail("%s: unexpected tensor %s" % (a.final, name))
        if canon in meg:
            continue
        meg[canon] = t
        ref[canon] = params[canon].detach()
        base[canon] = initial[canon]
    missing = sorted(set(params) - set(meg))
    if missing:
        hf.fail("%s: missing tensors %s" % (a.final, ", ".join(missing)))
    if a.save_reference:
        from safetensors.torch import save_file
        save_file({n: t.contiguous() for n, t in ref.items()}, a.save_reference)
    full = norm_errors(meg, ref)
    (meg, meg_k), (ref, ref_k), (base, base_k) = split_key_bias(meg), split_key_bias(ref), split_key_bias(base)
    werrs = norm_errors(meg, ref)
    uerrs = norm_errors(meg, ref, base)
    good = werrs[0][0] <= a.rtol
    ok &= good
    print("weights %s: %d tensors, worst rel_err %.3g %s rtol %g (%s)"
          % ("ok" if good else "FAIL", len(werrs), werrs[0][0], "<=" if good else ">", a.rtol, werrs[0][1]))
    for err, name in werrs:
        if err > a.rtol:
            print("  weight %s: rel_err %.3g" % (name, err))
    print("updates: worst rel_err %.3g (%s), median %.3g (W_N - W_0, not checked)"
          % (uerrs[0][0], uerrs[0][1], sorted(e for e, _ in uerrs)[len(uerrs) // 2]))
    if meg_k:
        worst_ratio, worst_name = 0.0, ""
        for n in sorted(meg_k):
            qv = (ref[n + "[q,v]"].double() - base[n + "[q,v]"].double()).norm().item()
            for moved in ((meg_k[n] - base_k[n]).double().norm().item(), (ref_k[n] - base_k[n]).double().norm().item()):
                ratio = moved / qv if qv > 0 else (0.0 if moved == 0 else math.inf)
                if ratio >= worst_ratio:
                    worst_ratio, worst_name = ratio, n
        good = worst_ratio < 1e-2
        ok &= good
        print("gauge %s: the attention key biases moved at most %.3g of the query/value biases' move (%s)"
              % ("ok" if good else "FAIL", worst_ratio, worst_name))
        print("whole tensors: worst rel_err %.3g (%s), key bias included (not checked)" % full[0])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
