#!/usr/bin/env python3
"""Make a Hugging Face checkpoint as the hub publishes it, from transformers' own save_pretrained, for meg to load.

  hub_checkpoint.py make OUT     writes
    OUT/orig/      GPT2LMHeadModel(seeded, weights moved off their init).save_pretrained(safe_serialization=True):
                   config.json + model.safetensors, fp32, `transformer.` names (what transformers writes today)
    OUT/hub/       the same checkpoint rewritten as the hub publishes GPT-2: names without `transformer.`, the
                   attention-mask buffers `h.N.attn.bias` (lower-triangular [1, 1, n_positions, n_positions]) and
                   `h.N.attn.masked_bias` added, every tensor fp16, split into two shards
                   (model-00001-of-00002.safetensors, model-00002-of-00002.safetensors) with
                   model.safetensors.index.json, and config.json
    OUT/rounded.safetensors   the original names in fp32 holding the fp16-rounded values (what OUT/hub must equal)
    OUT/bad-missing/, OUT/bad-shape/, OUT/bad-shard/   the hub folder with one tensor left out (shard and index),
                   one tensor of another shape, and an index naming a shard that is not there
  hub_checkpoint.py check-export DIR WEIGHTS   loads DIR (a folder megrun --save-weights wrote) with
                   GPT2LMHeadModel.from_pretrained and checks that every parameter equals WEIGHTS' (a safetensors
                   file or folder of the same model, any dtype, names with or without `transformer.`)
  hub_checkpoint.py compare-loss A.json B.json RTOL   |a - b| / |b| <= RTOL for two {"loss": x} files
Each check prints one `ok:` line or exits 1 with `hub_checkpoint: error: ...`.
"""
from __future__ import annotations

import json
import os
import shutil
import sys

import torch
from safetensors.torch import load_file, save_file
import transformers
from transformers import GPT2Config, GPT2LMHeadModel

transformers.logging.set_verbosity_error()


def fail(msg: str) -> None:
    print("hub_checkpoint: error: " + msg, file=sys.stderr)
    sys.exit(1)


def make(out: str) -> None:
    torch.manual_seed(7)
    cfg = GPT2Config(vocab_size=256, n_positions=64, n_embd=64, n_layer=2, n_head=4, activation_function="gelu_new",
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    model = GPT2LMHeadModel(cfg).float().eval()
    with torch.no_grad():  # off the init, so that every tensor (LayerNorm gains, biases) matters
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    orig = os.path.join(out, "orig")
    model.save_pretrained(orig, safe_serialization=True)
    sd = load_file(os.path.join(orig, "model.safetensors"))

    hub = {}
    for name, t in sd.items():
        assert name.startswith("transformer."), name
        hub[name[len("transformer."):]] = t.half()
    n = cfg.n_positions
    for layer in range(cfg.n_layer):
        hub["h.%d.attn.bias" % layer] = torch.tril(torch.ones(n, n)).view(1, 1, n, n).half()
        hub["h.%d.attn.masked_bias" % layer] = torch.tensor(-1e4).half()
    write_sharded(os.path.join(out, "hub"), hub, os.path.join(orig, "config.json"))
    save_file({k: t.half().float() for k, t in sd.items()}, os.path.join(out, "rounded.safetensors"))

    missing = dict(hub)
    del missing["h.1.mlp.c_proj.weight"]
    write_sharded(os.path.join(out, "bad-missing"), missing, os.path.join(orig, "config.json"))
    shape = dict(hub)
    shape["h.0.ln_1.weight"] = torch.ones(cfg.n_embd + 1).half()
    write_sharded(os.path.join(out, "bad-shape"), shape, os.path.join(orig, "config.json"))
    bad = os.path.join(out, "bad-shard")
    shutil.copytree(os.path.join(out, "hub"), bad)
    os.remove(os.path.join(bad, "model-00002-of-00002.safetensors"))
    print("made: orig %d tensors, hub %d tensors in 2 shards (fp16)" % (len(sd), len(hub)))


def write_sharded(folder: str, tensors: dict, config: str) -> None:
    os.makedirs(folder, exist_ok=True)
    names = sorted(tensors)
    half = len(names) // 2
    weight_map = {}
    total = 0
    for i, part in enumerate((names[:half], names[half:])):
        file = "model-%05d-of-00002.safetensors" % (i + 1)
        save_file({k: tensors[k].contiguous() for k in part}, os.path.join(folder, file), metadata={"format": "pt"})
        for k in part:
            weight_map[k] = file
            total += tensors[k].numel() * tensors[k].element_size()
    with open(os.path.join(folder, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    shutil.copy(config, os.path.join(folder, "config.json"))


def read_weights(path: str) -> dict:
    if os.path.isdir(path):
        path = os.path.join(path, "model.safetensors")
    sd = load_file(path)
    return {(k if k.startswith(("transformer.", "lm_head.")) else "transformer." + k): t.float() for k, t in sd.items()}


def check_export(folder: str, weights: str) -> None:
    model, info = GPT2LMHeadModel.from_pretrained(folder, output_loading_info=True)
    if info["missing_keys"] or info["unexpected_keys"] or info["mismatched_keys"]:
        fail("%s: from_pretrained: %s" % (folder, info))
    want = read_weights(weights)
    got = dict(model.named_parameters())
    for name, t in want.items():
        if name not in got:
            continue  # buffers
        if not torch.equal(got[name].detach(), t):
            fail("%s: %s differs from %s" % (folder, name, weights))
    print("ok: %s loads in GPT2LMHeadModel.from_pretrained, %d parameters equal" % (folder, len(got)))


def compare_loss(a: str, b: str, rtol: float) -> None:
    la, lb = (float(json.load(open(p))["loss"]) for p in (a, b))
    rel = abs(la - lb) / abs(lb)
    if rel > rtol:
        fail("loss %.9g vs %.9g: rel_err %.3g > %g" % (la, lb, rel, rtol))
    print("ok: loss %.9g vs %.9g rel_err %.3g <= %g" % (la, lb, rel, rtol))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "make":
        make(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "check-export":
        check_export(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 5 and sys.argv[1] == "compare-loss":
        compare_loss(sys.argv[2], sys.argv[3], float(sys.argv[4]))
    else:
        fail("usage: hub_checkpoint.py make OUT | check-export DIR WEIGHTS | compare-loss A.json B.json RTOL")
