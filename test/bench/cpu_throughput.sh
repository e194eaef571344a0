#!/usr/bin/env bash
# CPU throughput of a GPT (default GPT-2 124M, models/gpt2.json): megrun vs Hugging Face's GPT2LMHeadModel in
# Debian's torch, same micro-batch and sequence length, same thread count, both fp32 with dropout off. MODE=forward
# times the forward pass with the loss (megrun: the plan's forward steps, i.e. --eval's work; torch: no_grad);
# MODE=train times a whole training step (megrun: the train plan: forward, backward, clipping, AdamW; torch: the
# same with autograd and torch.optim.AdamW). Prints both figures and their ratio. A benchmark, not a test.
#
# Usage: test/bench/cpu_throughput.sh [BUILD_DIR]          (default: build)
# Environment: MODE (forward|train, forward), MODEL (models/gpt2.json), MB (micro-batch, 8), SEQ (1024),
#              STEPS (timed steps after one warm-up, 3), THREADS (2), PYTHON (the parity venv's python).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="$(cd "${1:-$ROOT/build}" && pwd)"
MB="${MB:-8}" SEQ="${SEQ:-1024}" STEPS="${STEPS:-3}" THREADS="${THREADS:-2}" MODE="${MODE:-forward}"
MODEL="${MODEL:-$ROOT/models/gpt2.json}"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

echo "$(basename "$MODEL" .json) $MODE, micro-batch $MB, seq $SEQ, $THREADS threads, $STEPS timed steps after 1 warm-up"
"$BUILD/tools/megc/megc" "$MODEL" --micro-batch "$MB" --seq "$SEQ" --emit plan -o "$TMP/plan"
if [ "$MODE" = train ]; then
  OMP_NUM_THREADS="$THREADS" "$BUILD/tools/megrun/megrun" "$TMP/plan" --steps "$((STEPS + 1))" --no-dropout \
    --log "$TMP/log.jsonl" >/dev/null
  # Mean over the timed steps (the first step is the warm-up: it also faults in the arena).
  meg="$(/usr/bin/python3 -c '
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])][1:]
print("%.1f" % (sum(r["tokens_per_s"] for r in rows) / len(rows)))' "$TMP/log.jsonl")"
else
  # Forward only: evaluation runs the plan's forward steps on random tokens and reports its own tokens/s.
  meg="$(OMP_NUM_THREADS="$THREADS" "$BUILD/tools/megrun/megrun" "$TMP/plan" --eval --eval-batches "$STEPS" |
    sed -n -e 's/.*(\([0-9.]*\) tokens\/s).*/\1/p')"
fi
echo "megrun: $meg tokens/s"
torch_line="$("$PYTHON" "$ROOT/test/bench/torch_throughput.py" --config "$MODEL" --micro-batch "$MB" \
  --seq "$SEQ" --steps "$STEPS" --threads "$THREADS" $([ "$MODE" = train ] && echo --train))"
echo "$torch_line"
torch_tps="$(echo "$torch_line" | sed -e 's/^torch: \([0-9.]*\) tokens.*/\1/')"
/usr/bin/python3 -c 'import sys; print("ratio megrun/torch: %.2f" % (float(sys.argv[1]) / float(sys.argv[2])))' \
  "$meg" "$torch_tps"
