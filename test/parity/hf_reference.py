#!/usr/bin/env python3
"""Recompute meg's loss (and gradients) with Hugging Face transformers' own models and compare.

Input is what `megrun PLAN --save-weights W.safetensors` and `megrun PLAN --load-weights W --dump DIR` write
(docs: DESIGN.md section 6):
  W.safetensors + config.json   full fp32 tensors under Hugging Face names/shapes; config.json names the class in
                                `architectures`: GPT2LMHeadModel, BertForPreTraining (post-LN) or
                                MegatronBertForPreTraining (pre-LN)
  DIR/batch.safetensors         input_ids i32[b,s], labels i32[b,s] (-100 = ignore); GPT: already shifted, labels[:, t]
                                is the target of position t; BERT: MLM labels, plus token_type_ids i32[b,s],
                                attention_mask i32[b,s] and, when the NSP head is trained, next_sentence_label i32[b]
  DIR/loss.json                 {"loss": x}
  DIR/grads.safetensors         every parameter's gradient, Hugging Face names and shapes
Fine-tuning heads (megc --head): BertForMultipleChoice / MegatronBertForMultipleChoice take input_ids,
token_type_ids, attention_mask i32[b,C,s] and labels i32[b] (the answer's option); BertForSequenceClassification /
MegatronBertForSequenceClassification take [b,s] inputs and labels i32[b]; loss = cross_entropy(logits, labels).

The reference runs in fp32 (--fp64: in double, a practically exact reference) on the CPU in eval mode (dropout
off) and computes the loss itself from the logits:
  GPT:  cross_entropy(logits.view(-1, V), labels.view(-1), ignore_index=-100)   (no shift here: labels are shifted)
  BERT: cross_entropy(mlm_logits.view(-1, V), labels.view(-1), ignore_index=-100)
        + cross_entropy(nsp_logits, next_sentence_label)   (the total loss of BertForPreTraining; the NSP term only
        when the batch has next_sentence_label: without it the NSP head and pooler may be absent from the weights
        and the gradients)

Weights are loaded strictly: every parameter must be present with its exact shape and dtype float32, except tied
aliases (lm_head.weight, cls.predictions.decoder.{weight,bias}), which may be absent or must equal what they alias.
Unknown names are errors.

Errors:
  loss   |meg - ref| / |ref|
  grads  per tensor t, norm-wise:  ||meg_t - ref_t||_2 / max(||ref_t||_2, sqrt(numel_t) * rms)
         where rms is the root mean square of all reference gradient elements of the model. Norm-wise rather than
         element-wise because two correct fp32 implementations differ by ~1e-7 * (sum of |terms|) per element, which
         is unbounded relative to elements that cancel to ~0; the floor does the same for whole tensors whose exact
         gradient is zero, such as BERT's attention key bias (softmax is invariant to it), which are compared at the
         model's gradient scale instead of their rounding noise. Measured fp32 against fp64 on tiny models: <= 5e-6.
Each check prints one line `<check> ok: ...` or `<check> FAIL: ...`; the exit code is 1 on any mismatch or error.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys


def fail(msg: str) -> None:
    print("hf_reference: error: " + msg, file=sys.stderr)
    sys.exit(1)


try:
    import torch
    import torch.nn.functional as F
    from safetensors.torch import load_file
    import transformers
    from transformers import (BertForMultipleChoice, BertForPreTraining, BertForSequenceClassification,
                              GPT2LMHeadModel, MegatronBertForMultipleChoice, MegatronBertForPreTraining,
                              MegatronBertForSequenceClassification)
except ImportError as e:  # pragma: no cover - environment problem
    fail("%s (run with the venv python that scripts/setup.sh makes: .venv/bin/python)" % e)

MODELS = {
    "GPT2LMHeadModel": GPT2LMHeadModel,
    "BertForPreTraining": BertForPreTraining,
    "MegatronBertForPreTraining": MegatronBertForPreTraining,
    "BertForMultipleChoice": BertForMultipleChoice,
    "MegatronBertForMultipleChoice": MegatronBertForMultipleChoice,
    "BertForSequenceClassification": BertForSequenceClassification,
    "MegatronBertForSequenceClassification": MegatronBertForSequenceClassification,
}
# Classes whose loss is cross_entropy(logits, labels[b]) over a task head.
TASK_HEADS = ("ForMultipleChoice", "ForSequenceClassification")
IGNORE = -100
transformers.logging.set_verbosity_error()
# Parameters that only the next-sentence head uses (optional when the batch has no next_sentence_label).
NSP_PREFIXES = ("cls.seq_relationship.", "bert.pooler.")


def load_safetensors(path: str, what: str) -> dict:
    if not os.path.isfile(path):
        fail("%s: no such file (%s)" % (path, what))
    try:
        return load_file(path)
    except Exception as e:  # safetensors raises several types
        fail("%s: cannot read %s: %s" % (path, what, e))


def build_model(config_path: str):
    try:
        with open(config_path) as f:
            cfg = json.load(f)
    except (OSError, ValueError) as e:
        fail("%s: %s" % (config_path, e))
    archs = cfg.get("architectures") or []
    if len(archs) != 1 or archs[0] not in MODELS:
        fail("%s: `architectures` must be one of %s, got %s" % (config_path, sorted(MODELS), archs))
    cls = MODELS[archs[0]]
    config = cls.config_class.from_dict(cfg)
    # The plain attention path ("eager"); torch 1.13 has no SDPA anyway.
    if hasattr(config, "_attn_implementation"):
        try:
            config._attn_implementation = "eager"
        except AttributeError:
            pass
    torch.manual_seed(0)
    model = cls(config).float().eval()
    return archs[0], model


def tied_aliases(model) -> dict:
    """state_dict names that share a parameter with an earlier (canonical) name: alias -> canonical."""
    canonical = {}
    for name, p in model.named_parameters():  # deduplicated: the first name of each parameter
        canonical[id(p)] = name
    aliases = {}
    for name, t in model.state_dict(keep_vars=True).items():
        c = canonical.get(id(t))
        if c is not None and c != name:
            aliases[name] = c
    return aliases


def load_weights(model, path: str, nsp_used: bool) -> dict:
    sd = load_safetensors(path, "weights")
    aliases = tied_aliases(model)
    params = dict(model.named_parameters())
    errors = []
    for name, t in sd.items():
        if t.dtype != torch.float32:
            errors.append("%s has dtype %s, expected float32" % (name, t.dtype))
    for alias, canon in aliases.items():
        if alias in sd and canon in sd and not torch.equal(sd[alias], sd[canon]):
            errors.append("tied weight %s differs from %s" % (alias, canon))
    model_sd = model.state_dict()
    for name, t in sd.items():
        if name in model_sd and tuple(t.shape) != tuple(model_sd[name].shape):
            errors.append("%s has shape %s, expected %s" % (name, list(t.shape), list(model_sd[name].shape)))
    if errors:
        fail("%s: %s" % (path, "; ".join(errors)))
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [m for m in missing if m not in aliases]
    if not nsp_used:
        missing = [m for m in missing if not m.startswith(NSP_PREFIXES)]
    # A canonical parameter provided only through its alias still counts as missing: meg must write HF's names.
    missing += [c for c in set(aliases.values()) if c not in sd and c in params and c not in missing]
    if missing or unexpected:
        msg = []
        if missing:
            msg.append("missing keys: " + ", ".join(sorted(missing)))
        if unexpected:
            msg.append("unexpected keys: " + ", ".join(sorted(unexpected)))
        fail("%s: %s" % (path, "; ".join(msg)))
    model.tie_weights()
    return aliases


def load_batch(path: str, arch: str) -> dict:
    batch = load_safetensors(path, "batch")
    need = ["input_ids", "labels"]
    if arch != "GPT2LMHeadModel":
        need += ["token_type_ids", "attention_mask"]
    for k in need:
        if k not in batch:
            fail("%s: no tensor `%s` (has %s)" % (path, k, ", ".join(sorted(batch))))
    known = {"input_ids", "labels", "token_type_ids", "attention_mask", "next_sentence_label"}
    extra = sorted(set(batch) - known)
    if extra:
        fail("%s: unknown tensors %s" % (path, ", ".join(extra)))
    out = {}
    for k, t in batch.items():
        if t.is_floating_point():
            fail("%s: `%s` must be an integer tensor, got %s" % (path, k, t.dtype))
        out[k] = t.long()
    if arch.endswith(TASK_HEADS):
        rows = out["input_ids"].shape
        if len(rows) != (3 if arch.endswith("ForMultipleChoice") else 2):
            fail("%s: `input_ids` has shape %s, wrong rank for %s" % (path, list(rows), arch))
        for k in ("token_type_ids", "attention_mask"):
            if tuple(out[k].shape) != tuple(rows):
                fail("%s: `%s` has shape %s, expected %s" % (path, k, list(out[k].shape), list(rows)))
        if tuple(out["labels"].shape) != (rows[0],):
            fail("%s: `labels` has shape %s, expected [%d]" % (path, list(out["labels"].shape), rows[0]))
        return out
    b, s = out["input_ids"].shape
    for k in ("labels", "token_type_ids", "attention_mask"):
        if k in out and tuple(out[k].shape) != (b, s):
            fail("%s: `%s` has shape %s, expected [%d, %d]" % (path, k, list(out[k].shape), b, s))
    if "next_sentence_label" in out and tuple(out["next_sentence_label"].shape) != (b,):
        fail("%s: `next_sentence_label` has shape %s, expected [%d]" % (path, list(out["next_sentence_label"].shape), b))
    return out


def reference_loss(arch: str, model, batch: dict):
    V = model.config.vocab_size
    if arch == "GPT2LMHeadModel":
        logits = model(input_ids=batch["input_ids"], attention_mask=batch.get("attention_mask")).logits
        return F.cross_entropy(logits.reshape(-1, V), batch["labels"].reshape(-1), ignore_index=IGNORE)
    out = model(input_ids=batch["input_ids"], token_type_ids=batch["token_type_ids"],
                attention_mask=batch["attention_mask"])
    if arch.endswith(TASK_HEADS):
        return F.cross_entropy(out.logits, batch["labels"])
    loss = F.cross_entropy(out.prediction_logits.reshape(-1, V), batch["labels"].reshape(-1), ignore_index=IGNORE)
    if "next_sentence_label" in batch:
        loss = loss + F.cross_entropy(out.seq_relationship_logits.reshape(-1, 2),
                                      batch["next_sentence_label"].reshape(-1))
    return loss


def rel_err(a: float, b: float) -> float:
    if b == 0.0:
        return 0.0 if a == 0.0 else math.inf
    return abs(a - b) / abs(b)


def check_loss(path: str, ref: float, rtol: float) -> bool:
    try:
        with open(path) as f:
            meg = float(json.load(f)["loss"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        fail("%s: cannot read the loss: %s" % (path, e))
    err = rel_err(meg, ref)
    ok = err <= rtol
    print("loss %s: rel_err %.3g %s rtol %g (meg %.9g, reference %.9g)"
          % ("ok" if ok else "FAIL", err, "<=" if ok else ">", rtol, meg, ref))
    return ok


def grad_err(meg: torch.Tensor, ref: torch.Tensor, rms: float) -> float:
    meg = meg.double()
    ref = ref.double()
    den = max(ref.norm().item(), math.sqrt(ref.numel()) * rms)
    num = (meg - ref).norm().item()
    if den == 0.0:
        return 0.0 if num == 0.0 else math.inf
    return num / den


def check_grads(path: str, model, aliases: dict, nsp_used: bool, rtol: float) -> bool:
    grads = load_safetensors(path, "gradients")
    params = dict(model.named_parameters())
    errors = []
    unexpected = sorted(n for n in grads if n not in params and n not in aliases)
    if unexpected:
        errors.append("unexpected gradients: " + ", ".join(unexpected))
    present = {aliases.get(n, n) for n in grads}  # a tied parameter's gradient may come under its alias
    missing = sorted(n for n in params if n not in present)
    if not nsp_used:
        missing = [n for n in missing if not n.startswith(NSP_PREFIXES)]
    if missing:
        errors.append("missing gradients: " + ", ".join(missing))
    for name, g in grads.items():
        p = params.get(aliases.get(name, name))
        if p is not None and tuple(g.shape) != tuple(p.shape):
            errors.append("gradient %s has shape %s, expected %s" % (name, list(g.shape), list(p.shape)))
        if not g.is_floating_point():
            errors.append("gradient %s has dtype %s" % (name, g.dtype))
    if errors:
        fail("%s: %s" % (path, "; ".join(errors)))

    refs = {n: (p.grad if p.grad is not None else torch.zeros_like(p)).double() for n, p in params.items()}
    numel = sum(r.numel() for r in refs.values())
    rms = math.sqrt(sum(float((r * r).sum()) for r in refs.values()) / max(numel, 1))
    results = []
    for name, g in grads.items():
        results.append((grad_err(g, refs[aliases.get(name, name)], rms), name))
    results.sort(key=lambda r: (-r[0], r[1]))
    bad = [r for r in results if not r[0] <= rtol]
    worst_err, worst = results[0] if results else (0.0, "-")
    if not bad:
        print("grads ok: %d tensors, worst rel_err %.3g <= rtol %g (%s)" % (len(results), worst_err, rtol, worst))
        return True
    print("grads FAIL: %d of %d tensors over rtol %g, worst rel_err %.3g (%s)"
          % (len(bad), len(results), rtol, worst_err, worst))
    for err, name in bad:
        print("  grad %s: rel_err %.3g" % (name, err))
    return False


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", required=True, help="weights .safetensors (Hugging Face names)")
    ap.add_argument("--config", help="Hugging Face config.json (default: config.json beside --weights)")
    ap.add_argument("--batch", required=True, help="batch.safetensors from megrun --dump")
    ap.add_argument("--loss", help="loss.json from megrun --dump")
    ap.add_argument("--grads", help="grads.safetensors from megrun --dump")
    ap.add_argument("--rtol", type=float, default=1e-5, help="tolerance of the loss's relative error (1e-5)")
    ap.add_argument("--grad-rtol", type=float, help="tolerance of each gradient's norm-wise error (default: --rtol)")
    ap.add_argument("--fp64", action="store_true", help="compute the reference in double precision")
    ap.add_argument("--autocast-bf16", action="store_true",
                    help="compute the reference loss under torch's CPU autocast to bfloat16 (meg's --bf16 plans)")
    args = ap.parse_args()
    config = args.config or os.path.join(os.path.dirname(os.path.abspath(args.weights)), "config.json")
    grad_rtol = args.rtol if args.grad_rtol is None else args.grad_rtol

    torch.set_grad_enabled(True)
    arch, model = build_model(config)
    batch = load_batch(args.batch, arch)
    nsp_used = arch == "GPT2LMHeadModel" or arch.endswith(TASK_HEADS) or "next_sentence_label" in batch
    aliases = load_weights(model, args.weights, nsp_used)
    if args.fp64:
        model.double()
    vocab = model.config.vocab_size
    ids = batch["input_ids"]
    if ids.numel() and (ids.min() < 0 or ids.max() >= vocab):
        fail("%s: input_ids outside [0, %d)" % (args.batch, vocab))
    labels = batch["labels"]
    classes = ids.shape[1] if arch.endswith("ForMultipleChoice") else model.config.num_labels \
        if arch.endswith("ForSequenceClassification") else vocab
    if ((labels != IGNORE) & ((labels < 0) | (labels >= classes))).any():
        fail("%s: labels outside [0, %d) other than %d" % (args.batch, classes, IGNORE))

    if args.autocast_bf16 and (args.fp64 or args.grads):
        fail("--autocast-bf16 checks the loss only, in fp32 weights (no --fp64, no --grads)")
    model.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.autocast_bf16):
        loss = reference_loss(arch, model, batch)
    ref = loss.float().item()
    b, s = ids.shape[0], ids.shape[-1]
    precision = "fp64" if args.fp64 else "bf16 autocast" if args.autocast_bf16 else "fp32"
    print("reference: %s (transformers %s, torch %s, %s) b=%d s=%d loss %.9g"
          % (arch, transformers.__version__, torch.__version__, precision, b, s, ref))
    ok = True
    if args.loss:
        ok = check_loss(args.loss, ref, args.rtol) and ok
    if args.grads:
        loss.backward()
        ok = check_grads(args.grads, model, aliases, nsp_used, grad_rtol) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
