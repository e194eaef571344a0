#!/usr/bin/env bash
# Regenerates the generated seeds of test/fuzz/corpus (plans, checkpoints, safetensors, token files) with the tools
# of a normal build: bash test/fuzz/make-seeds.sh [BUILD_DIR] (default build). The hand-written seeds (IR, configs,
# near-valid inputs) are committed as they are. Every seed stays under 100 KB.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN="$(cd "${1:-$ROOT/build}" && pwd)/tools"
C="$ROOT/test/fuzz/corpus"
T="$(mktemp -d)"
trap 'rm -rf "$T"' EXIT
cd "$T"
export OPENBLAS_NUM_THREADS=1
# A one-layer GPT-2 with hidden size 8: small plans and checkpoints.
cp "$C/config/seed-gpt.json" .
"$BIN/megc/megc" seed-gpt.json --emit plan -o train
"$BIN/megc/megc" seed-gpt.json --tp 2 --emit plan -o tp2
"$BIN/megc/megc" seed-gpt.json --mode infer --emit plan -o infer
cp train/rank-0.megplan "$C/plan/gpt-train.megplan"
cp tp2/rank-1.megplan "$C/plan/gpt-tp2-rank1.megplan"
cp infer/rank-0.megplan "$C/plan/gpt-infer.megplan"
for m in elementwise layout collectives; do
  "$BIN/megc/megc" "$ROOT/test/lit/ir/roundtrip-$m.mir" --emit plan -o "$m"
  cp "$m/rank-0.megplan" "$C/plan/$m.megplan"
done
printf 'Hello world.\nThe quick brown fox.\n' > text.txt
"$BIN/megdata/megdata" text.txt -o "$C/tokens/byte-eod.tok" > /dev/null
"$BIN/megdata/megdata" text.txt --eod=false -o "$C/tokens/byte.tok" > /dev/null
"$BIN/megrun/megrun" train --data text.txt --steps 1 --save one.ckpt > /dev/null
"$BIN/megrun/megrun" tp2 --data text.txt --steps 2 --save tp2.ckpt > /dev/null
# The checkpoint target frames its input (magic, size, checksum) unless it starts with the magic: the payloads, and
# one whole file.
tail -c +25 one.ckpt > "$C/checkpoint/one-step.payload"
tail -c +25 tp2.ckpt > "$C/checkpoint/tp2.payload"
cp one.ckpt "$C/checkpoint/one-step.ckpt"
"$BIN/megrun/megrun" train --steps 0 --save-weights bf16.safetensors --save-weights-dtype BF16 > /dev/null
cp bf16.safetensors "$C/safetensors/gpt-bf16.safetensors"
tail -c +25 one.ckpt > "$C/safetensors/checkpoint-payload.safetensors"
