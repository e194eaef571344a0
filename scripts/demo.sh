#!/usr/bin/env bash
# The main job (README quick start, first command): set up, then train a small GPT (4 layers, 256 hidden, byte-level)
# on Debian's fortunes corpus on the CPU with tensor parallelism tp = 2 (two ranks as threads), then show the result:
# validation loss and perplexity next to the corpus's unigram entropy, a greedy and a sampled continuation, the JSONL
# log and a PNG loss curve. MEG_DEMO_STEPS sets the number of training steps (default 150: a few minutes on 2 cores).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
bash scripts/setup.sh

STEPS=${MEG_DEMO_STEPS:-150}
OUT=$ROOT/out/demo
BIN=$ROOT/build/tools
mkdir -p "$OUT"

# The corpus: every fortunes text file (not the .dat indexes or .u8 duplicates); each fortune (ended by a `%` line)
# is a document. megdata writes byte-level token ids with an end-of-document id between fortunes.
ls -d /usr/share/games/fortunes/* | grep -vE '\.(dat|u8)$' | sort > "$OUT/corpus.files"
xargs cat < "$OUT/corpus.files" > "$OUT/corpus.txt"
xargs "$BIN/megdata/megdata" --separator=% -o "$OUT/corpus.tok" < "$OUT/corpus.files" | sed 's/^megdata:/demo: corpus:/'

# Compile: tensor parallel over 2 ranks, AdamW with warm-up and cosine decay (Megatron's flag names).
TRAIN_FLAGS=(--tp 2 --train-iters "$STEPS" --lr 2e-3 --min-lr 2e-4 --lr-warmup-iters 15 --lr-decay-style cosine
  --clip-grad 1.0 --weight-decay 0.01)
"$BIN/megc/megc" models/demo-gpt.json "${TRAIN_FLAGS[@]}" --emit plan -o "$OUT/plan"
# What each rank holds and what crosses between the two ranks per training step (the Megatron minimum: 2 all-reduces
# per layer forward, 2 backward, plus the embedding, the output layer's input gradient, the parallel cross-entropy's
# reductions and the clipping norm; never a gather of the logits).
"$BIN/megc/megc" models/demo-gpt.json "${TRAIN_FLAGS[@]}" --emit report |
  grep -E "^(model|parameters|parameters per rank|arena bytes per rank|FLOPs per step per rank|tp collectives|tp bytes)" |
  sed 's/ (as many received.*//; s/ (every node.*//' | sed 's/^/demo: /'

# Train (a progress line per step: loss, lr, tokens/s, ETA), evaluating the held-out tail of the corpus (the last 10%
# of its windows, never trained on) every 25 steps and at the end; the last evaluation is the result.
"$BIN/megrun/megrun" "$OUT/plan" --data "$OUT/corpus.tok" --steps "$STEPS" --seed 1 --log "$OUT/train.jsonl" \
  --eval-interval 25 --eval-batches 16 --save-weights "$OUT/weights.safetensors" | tee "$OUT/train.txt"
grep "^eval at step" "$OUT/train.txt" | tail -1 | sed 's/^/demo: validation: /'

# The baseline the model must beat: the unigram (byte-frequency) entropy of the corpus, in nats.
/usr/bin/python3 - "$OUT/corpus.txt" <<'PY'
import collections, math, sys
data = open(sys.argv[1], "rb").read()
counts = collections.Counter(data)
h = -sum(c / len(data) * math.log(c / len(data)) for c in counts.values())
print(f"demo: unigram entropy of the corpus {h:.3f} nats/byte (perplexity {math.exp(h):.1f})")
PY

# Continuations from the trained model (an inference plan of the same model reads the saved weights): greedy, which
# a small model soon turns into a loop ("the the the ..."), then sampled from the 40 most likely bytes at temperature
# 0.8, seeded (the same --seed gives the same text).
"$BIN/megc/megc" models/demo-gpt.json --mode infer --micro-batch 1 --emit plan -o "$OUT/infer"
GENERATE=("$BIN/megrun/megrun" "$OUT/infer" --load-weights "$OUT/weights.safetensors" --generate "The meaning of life is"
  --max-new-tokens 120)
"${GENERATE[@]}" | sed 's/^sample:/demo: greedy:/'
"${GENERATE[@]}" --top-k 40 --temperature 0.8 --seed 1 | sed 's/^sample:/demo: sampled:/'

# The loss curve.
/usr/bin/python3 - "$OUT/train.jsonl" "$OUT/loss.dat" "$OUT/val.dat" <<'PY'
import json, sys
with open(sys.argv[2], "w") as train, open(sys.argv[3], "w") as val:
    for line in open(sys.argv[1]):
        r = json.loads(line)
        train.write(f"{r['step']} {r['loss']}\n")
        if "val_loss" in r:
            val.write(f"{r['step']} {r['val_loss']}\n")
PY
gnuplot -e "set terminal png size 800,500; set output '$OUT/loss.png'; set xlabel 'step'; set ylabel 'loss (nats)';
  set title 'meg: GPT (4 x 256) on fortunes, tp = 2, CPU';
  plot '$OUT/loss.dat' with lines title 'train loss', '$OUT/val.dat' with linespoints title 'validation loss'"
echo "demo: first and last logged losses: $(head -1 "$OUT/loss.dat" | cut -d' ' -f2) -> $(tail -1 "$OUT/loss.dat" | cut -d' ' -f2)"
echo "demo: log $OUT/train.jsonl, curve $OUT/loss.png, weights $OUT/weights.safetensors"
