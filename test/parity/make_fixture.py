#!/usr/bin/env python3
"""Write tiny random Hugging Face models with a batch, loss and gradients in megrun's --save-weights/--dump format.

This stands in for megrun so that hf_reference.py can be tested on its own. For each model it writes OUT/<model>/:
  weights.safetensors, config.json   like `megrun --save-weights` (Hugging Face names, tied aliases left out)
  batch.safetensors, loss.json, grads.safetensors   like `megrun --dump` (gradients of every parameter)
and, for negative tests:
  loss.perturbed.json                the loss times (1 + 1e-4)
  grads.perturbed.safetensors        one gradient (the first MLP input weight) times (1 + 1e-3)
  weights.badkeys.safetensors        one LayerNorm weight left out and one unknown tensor added
  weights.tied.safetensors           with the tied aliases written too (must still load)
The loss and gradients come from the models' own `labels=` path (HF shifts GPT labels itself), so they check
hf_reference.py's own loss code and its label convention. Models: gpt2 (GPT2LMHeadModel), bert (BertForPreTraining,
post-LN), megatron-bert (MegatronBertForPreTraining, pre-LN). fp32, CPU, fixed seeds.
"""
from __future__ import annotations

import argparse
import json
import os

import torch
from safetensors.torch import save_file
import transformers
from transformers import (BertConfig, BertForPreTraining, GPT2Config, GPT2LMHeadModel, MegatronBertConfig,
                          MegatronBertForPreTraining)

IGNORE = -100
transformers.logging.set_verbosity_error()
B, S, V, H, LAYERS, HEADS = 2, 16, 100, 32, 2, 4


def make_model(kind: str):
    if kind == "gpt2":
        cfg = GPT2Config(vocab_size=V, n_positions=2 * S, n_embd=H, n_layer=LAYERS, n_head=HEADS,
                         activation_function="gelu_new", initializer_range=0.2)
        cls = GPT2LMHeadModel
    else:
        cfg_cls, cls = ((BertConfig, BertForPreTraining) if kind == "bert"
                        else (MegatronBertConfig, MegatronBertForPreTraining))
        cfg = cfg_cls(vocab_size=V, hidden_size=H, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                      intermediate_size=4 * H, max_position_embeddings=2 * S, type_vocab_size=2, hidden_act="gelu",
                      initializer_range=0.2)
    cfg.architectures = [cls.__name__]
    model = cls(cfg).float().eval()
    with torch.no_grad():  # move LayerNorm gains/biases and all biases off 1/0 so that every tensor matters
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return cfg, model


def make_batch(kind: str) -> dict:
    ids = torch.randint(0, V, (B, S))
    if kind == "gpt2":
        hf_labels = ids.clone()
        hf_labels[torch.rand(B, S) < 0.2] = IGNORE
        # meg's labels are already shifted: labels[:, t] is the target of position t.
        labels = torch.cat([hf_labels[:, 1:], torch.full((B, 1), IGNORE)], dim=1)
        return {"input_ids": ids, "labels": labels, "hf_labels": hf_labels}
    mask = torch.ones(B, S, dtype=torch.long)
    mask[1, S - 4:] = 0  # the second sequence is padded
    types = torch.zeros(B, S, dtype=torch.long)
    types[:, S // 2:] = 1
    labels = torch.full((B, S), IGNORE)
    pick = torch.rand(B, S) < 0.3
    pick[:, 1] = True  # at least one prediction per sequence
    pick &= mask.bool()
    labels[pick] = torch.randint(0, V, (int(pick.sum()),))
    return {"input_ids": ids, "labels": labels, "token_type_ids": types, "attention_mask": mask,
            "next_sentence_label": torch.randint(0, 2, (B,))}


def hf_loss(kind: str, model, batch: dict):
    if kind == "gpt2":
        return model(input_ids=batch["input_ids"], labels=batch["hf_labels"]).loss
    return model(input_ids=batch["input_ids"], token_type_ids=batch["token_type_ids"],
                 attention_mask=batch["attention_mask"], labels=batch["labels"],
                 next_sentence_label=batch["next_sentence_label"]).loss


def write_json(path: str, obj) -> None:
    with open(path, "w") as f:
        json.dump(obj, f)
        f.write("\n")


def write(kind: str, out: str, seed: int) -> None:
    torch.manual_seed(seed)
    cfg, model = make_model(kind)
    batch = make_batch(kind)
    loss = hf_loss(kind, model, batch)
    loss.backward()

    os.makedirs(out, exist_ok=True)
    params = {n: p.detach().contiguous() for n, p in model.named_parameters()}  # tied aliases deduplicated
    save_file(params, os.path.join(out, "weights.safetensors"))
    cfg.to_json_file(os.path.join(out, "config.json"))
    save_file({k: v.to(torch.int32).contiguous() for k, v in batch.items() if k != "hf_labels"},
              os.path.join(out, "batch.safetensors"))
    write_json(os.path.join(out, "loss.json"), {"loss": loss.item()})
    grads = {n: p.grad.detach().contiguous() for n, p in model.named_parameters()}
    save_file(grads, os.path.join(out, "grads.safetensors"))

    # Negative cases.
    write_json(os.path.join(out, "loss.perturbed.json"), {"loss": loss.item() * (1 + 1e-4)})
    target = next(n for n in grads if n.endswith(("mlp.c_fc.weight", "intermediate.dense.weight")))
    bad = dict(grads)
    bad[target] = grads[target] * (1 + 1e-3)
    save_file(bad, os.path.join(out, "grads.perturbed.safetensors"))
    ln = next(n for n in params if n.endswith(("ln_1.weight", "LayerNorm.weight", "layernorm.weight")))
    badkeys = {n: t for n, t in params.items() if n != ln}
    badkeys["extra.weight"] = torch.zeros(3)
    save_file(badkeys, os.path.join(out, "weights.badkeys.safetensors"))
    # state_dict() holds the parameters and their tied aliases (the buffers are not persistent); clones because
    # safetensors refuses tensors that share memory.
    save_file({n: t.clone().contiguous() for n, t in model.state_dict().items()},
              os.path.join(out, "weights.tied.safetensors"))
    print("%s: %s loss %.9g, %d parameters (%s)" % (kind, type(model).__name__, loss.item(), len(params), out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", help="output folder (one subfolder per model)")
    ap.add_argument("--model", choices=["gpt2", "bert", "megatron-bert", "all"], default="all")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    kinds = ["gpt2", "bert", "megatron-bert"] if args.model == "all" else [args.model]
    for kind in kinds:
        write(kind, os.path.join(args.out, kind), args.seed)


if __name__ == "__main__":
    main()
