"""Checks a BERT batch.safetensors (megrun --dump) against runtime/data/BertData.h's layout and prints a summary:
every row is [CLS] A [SEP] B [SEP] [PAD]... with token types 0/1, attention 1 but on padding, MLM labels only on A
and B tokens. Usage: check_bert_batch.py BATCH.safetensors MODEL_VOCAB. Standard library + numpy (%syspython)."""
import json
import struct
import sys

import numpy as np


def fail(msg):
    print("check_bert_batch: error: " + msg)
    sys.exit(1)


data = open(sys.argv[1], "rb").read()
vocab = int(sys.argv[2])
cls, sep, mask_id, pad = vocab - 2, vocab - 3, vocab - 1, 0
(n,) = struct.unpack("<Q", data[:8])
header = json.loads(data[8:8 + n])
t = {}
for name, info in header.items():
    if name == "__metadata__":
        continue
    a, b = info["data_offsets"]
    t[name] = np.frombuffer(data[8 + n + a:8 + n + b], dtype=np.int32).reshape(info["shape"])
ids, types, attn, labels, nsp = (t[k] for k in ("input_ids", "token_type_ids", "attention_mask", "labels",
                                                 "next_sentence_label"))
rows, seq = ids.shape
targets = candidates = 0
for r in range(rows):
    length = int(attn[r].sum())
    if not (attn[r, :length] == 1).all() or (attn[r, length:] != 0).any():
        fail(f"row {r}: attention mask is not ones then zeros")
    seps = [j for j in range(length) if ids[r, j] == sep]
    if ids[r, 0] != cls or len(seps) != 2 or seps[1] != length - 1 or seps[0] < 2 or seps[0] > length - 3:
        fail(f"row {r}: not [CLS] A [SEP] B [SEP]: {ids[r].tolist()}")
    want_types = [0] * (seps[0] + 1) + [1] * (length - seps[0] - 1) + [0] * (seq - length)
    if types[r].tolist() != want_types:
        fail(f"row {r}: token types {types[r].tolist()}")
    if (ids[r, length:] != pad).any():
        fail(f"row {r}: padding is not {pad}")
    for j in [0, seps[0], length - 1] + list(range(length, seq)):
        if labels[r, j] != -100:
            fail(f"row {r}: label on special position {j}")
    candidates += length - 3
    targets += int((labels[r] != -100).sum())
    if (labels[r] != -100).sum() == 0:
        fail(f"row {r}: no MLM target")
if not set(nsp.tolist()) <= {0, 1}:
    fail(f"next_sentence_label {nsp.tolist()}")
print(f"bert batch: {rows} rows of [CLS] A [SEP] B [SEP] ok; next_sentence_label {nsp.tolist()}; "
      f"{targets} MLM targets in {candidates} tokens")
