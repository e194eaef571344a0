#!/usr/bin/env bash
# Forward throughput of GPT-2 124M (models/gpt2.json) on the CPU: megrun vs Hugging Face's GPT2LMHeadModel in
# Debian's torch, same micro-batch and sequence length, same thread count, both fp32 with dropout off (megrun runs
# its train plan forward, loss included, with --no-dropout; torch runs eval mode with labels). Prints both figures
# and their ratio. A benchmark program, not a test: nothing is asserted.
#
# Usage: test/bench/forward_cpu.sh [BUILD_DIR]          (default: build)
# Environment: MB (micro-batch, 8), SEQ (1024), STEPS (timed steps after one warm-up, 3), THREADS (2),
#              PYTHON (the parity venv's python, .venv/bin/python).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="$(cd "${1:-$ROOT/build}" && pwd)"
MB="${MB:-8}" SEQ="${SEQ:-1024}" STEPS="${STEPS:-3}" THREADS="${THREADS:-2}"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

echo "gpt2 124M forward, micro-batch $MB, seq $SEQ, $THREADS threads, $STEPS timed steps after 1 warm-up"
"$BUILD/tools/megc/megc" "$ROOT/models/gpt2.json" --micro-batch "$MB" --seq "$SEQ" --emit plan -o "$TMP/plan"
OMP_NUM_THREADS="$THREADS" OPENBLAS_NUM_THREADS="$THREADS" \
  "$BUILD/tools/megrun/megrun" "$TMP/plan" --steps "$((STEPS + 1))" --no-dropout --log "$TMP/log.jsonl" >/dev/null
# Mean over the timed steps (the first step is the warm-up: it also faults in the arena).
meg="$(/usr/bin/python3 -c '
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])][1:]
print("%.1f" % (sum(r["tokens_per_s"] for r in rows) / len(rows)))' "$TMP/log.jsonl")"
echo "megrun: $meg tokens/s"
torch_line="$("$PYTHON" "$ROOT/test/bench/torch_forward.py" --config "$ROOT/models/gpt2.json" --micro-batch "$MB" \
  --seq "$SEQ" --steps "$STEPS" --threads "$THREADS")"
echo "$torch_line"
torch_tps="$(echo "$torch_line" | sed -e 's/^torch: \([0-9.]*\) tokens.*/\1/')"
/usr/bin/python3 -c 'import sys; print("ratio megrun/torch: %.2f" % (float(sys.argv[1]) / float(sys.argv[2])))' \
  "$meg" "$torch_tps"
