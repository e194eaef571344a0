#!/usr/bin/env python3
"""Recompute meg's zero-shot results (megrun --task wikitext|lambada --task-result R.json) with Hugging Face's
GPT2LMHeadModel on the same weights, and compare.

The data pipeline is Megatron-LM's tasks/zeroshot_gpt (datasets.py, detokenizer.py, evaluate.py), written out here
in Python from its documented behaviour, independently of meg's C++:
  wikitext  original tokens = len(text.strip().split(" ")); Megatron's wikitext detokenizer (its regular expressions);
            tokens of the whole detokenized text; windows of seq + 1 tokens every K (--overlapping-eval, default seq),
            later windows scoring only their last K targets; loss = sum of -log p(target) / (tokens - 1);
            ppl = exp(min(20, loss)); adjusted_ppl = exp(min(20, loss * (tokens - 1) / (original - 1)))
  lambada   jsonl {"text"}; the target is the last token, or (--strict-lambada) " " + the last whitespace word with the
            context text[:rfind(word)].strip(); an example is correct when argmax(logits) is the target at every target
            position
Tokens: bytes (UTF-8) by default, or GPT2Tokenizer(vocab.json, merges.txt) with --vocab/--merges.
The model runs in fp32 on the CPU in eval mode; losses are summed in double. Checks (one line each, exit 1 on a
mismatch): wikitext ppl and adjusted_ppl within --rtol relative, tokens and original_tokens equal; lambada the same
per-example correctness (hence the same correct count).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hf_reference import build_model, fail, load_weights  # noqa: E402

import torch  # noqa: E402


def wikitext_detokenizer(s: str) -> str:
    s = s.replace("s '", "s'")
    s = re.sub(r"/' [0-9]/", r"/'[0-9]/", s)
    s = s.replace(" @-@ ", "-").replace(" @,@ ", ",").replace(" @.@ ", ".")
    for p in ":;.!?,":
        s = s.replace(" %s " % p, "%s " % p)
    s = re.sub(r"\(\s*([^\)]*?)\s*\)", r"(\1)", s)
    s = re.sub(r"\[\s*([^\]]*?)\s*\]", r"[\1]", s)
    s = re.sub(r"{\s*([^}]*?)\s*}", r"{\1}", s)
    s = re.sub(r"\"\s*([^\"]*?)\s*\"", r'"\1"', s)
    s = re.sub(r"'\s*([^']*?)\s*'", r"'\1'", s)
    s = s.replace("= = = =", "====").replace("= = =", "===").replace("= =", "==")
    s = s.replace(" " + chr(176) + " ", chr(176))
    s = s.replace(" \n", "\n").replace("\n ", "\n")
    s = s.replace(" N ", " 1 ").replace(" 's", "'s")
    return s


def make_tokenize(args):
    if args.vocab:
        from transformers import GPT2Tokenizer
        tok = GPT2Tokenizer(args.vocab, args.merges)
        return tok.encode, (tok.eos_token_id if tok.eos_token_id is not None else 0)
    return (lambda text: list(text.encode("utf-8"))), 0


def logits_of(model, rows):
    with torch.no_grad():
        return model(input_ids=torch.tensor(rows, dtype=torch.long)).logits.double()


def wikitext(model, args, tokenize, pad):
    with open(args.data, "rb") as f:
        text = f.read().decode("utf-8")
    original = len(text.strip().split(" "))
    tokens = tokenize(wikitext_detokenizer(text))
    seq = args.seq
    k = max(1, args.overlapping_eval or seq)
    targets = len(tokens) - 1
    windows = max(math.ceil(max(targets - k, 0) / k) + 1, 1)
    total = 0.0
    scored = 0
    for i in range(windows):
        w = tokens[i * k:i * k + seq + 1]
        mask = [1] * len(w)
        w = w + [pad] * (seq + 1 - len(w))
        mask = (mask + [0] * (seq + 1 - len(mask)))[1:]
        if k != seq and i != 0:
            mask[:-k] = [0] * (seq - k)
        logp = torch.log_softmax(logits_of(model, [w[:-1]])[0], -1)
        for t in range(seq):
            if mask[t]:
                total -= logp[t, w[t + 1]].item()
                scored += 1
    assert scored == targets
    loss = total / (len(tokens) - 1)
    ratio = (len(tokens) - 1) / (original - 1)
    return {"ppl": math.exp(min(20, loss)), "adjusted_ppl": math.exp(min(20, loss * ratio)), "tokens": len(tokens),
            "original_tokens": original, "windows": windows, "loss": loss}


def lambada(model, args, tokenize, pad):
    per_example = []
    with open(args.data) as f:
        for line in f:
            if not line.strip():
                continue
            text = json.loads(line)["text"]
            if args.strict_lambada:
                word = text.split()[-1]
                context, target = tokenize(text[:text.rfind(word)].strip()), tokenize(" " + word)
            else:
                toks = tokenize(text)
                context, target = toks[:-1], toks[-1:]
            inp = (context + target)[:-1]
            inp = inp + [pad] * (args.seq - len(inp))
            pred = logits_of(model, [inp])[0].argmax(-1).tolist()
            ok = all(pred[len(context) - 1 + j] == target[j] for j in range(len(target)))
            per_example.append(int(ok))
    return {"correct": sum(per_example), "total": len(per_example), "per_example": per_example}


def ratio_of(r: dict) -> float:
    return (r["tokens"] - 1) / (r["original_tokens"] - 1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", required=True)
    ap.add_argument("--config", required=True)
    ap.add_argument("--task", required=True, choices=["wikitext", "lambada"])
    ap.add_argument("--data", required=True)
    ap.add_argument("--seq", type=int, required=True, help="the window (the infer plan's seq)")
    ap.add_argument("--overlapping-eval", type=int, default=0)
    ap.add_argument("--strict-lambada", action="store_true")
    ap.add_argument("--vocab")
    ap.add_argument("--merges")
    ap.add_argument("--result", required=True, help="megrun's --task-result JSON")
    ap.add_argument("--rtol", type=float, default=1e-5)
    ap.add_argument("--expect-mixed", action="store_true",
                    help="lambada: fail unless some examples are correct and some are not (a test that can fail)")
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    arch, model = build_model(args.config)
    load_weights(model, args.weights, True)
    tokenize, pad = make_tokenize(args)
    try:
        with open(args.result) as f:
            meg = json.load(f)
    except (OSError, ValueError) as e:
        fail("%s: %s" % (args.result, e))
    ok = True
    if args.task == "wikitext":
        ref = wikitext(model, args, tokenize, pad)
        print("reference: %s ppl %.9g adjusted_ppl %.9g loss %.9g tokens %d original_tokens %d windows %d"
              % (arch, ref["ppl"], ref["adjusted_ppl"], ref["loss"], ref["tokens"], ref["original_tokens"],
                 ref["windows"]))
        if ref["loss"] * ratio_of(ref) >= 20:
            print("note: loss x token ratio %.3g reaches Megatron's cap of 20: adjusted_ppl is exp(20) on both sides"
                  % (ref["loss"] * ratio_of(ref)))
        for key in ("ppl", "adjusted_ppl"):
            err = abs(meg[key] - ref[key]) / abs(ref[key])
            good = err <= args.rtol
            ok &= good
            print("%s %s: meg %.9g reference %.9g rel_err %.3g (rtol %g)"
                  % (key, "ok" if good else "FAIL", meg[key], ref[key], err, args.rtol))
        for key in ("tokens", "original_tokens", "windows"):
            good = meg[key] == ref[key]
            ok &= good
            print("%s %s: meg %d reference %d" % (key, "ok" if good else "FAIL", meg[key], ref[key]))
    else:
        ref = lambada(model, args, tokenize, pad)
        good = meg["per_example"] == ref["per_example"] and meg["correct"] == ref["correct"] and \
            meg["total"] == ref["total"]
        ok &= good
        print("lambada %s: meg %d/%d correct, reference %d/%d, per-example %s"
              % ("ok" if good else "FAIL", meg["correct"], meg["total"], ref["correct"], ref["total"],
                 "identical" if meg["per_example"] == ref["per_example"] else "different"))
        if args.expect_mixed and not 0 < ref["correct"] < ref["total"]:
            ok = False
            print("mixed FAIL: the reference gets %d of %d right; the test needs both outcomes"
                  % (ref["correct"], ref["total"]))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
