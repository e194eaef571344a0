#!/usr/bin/env bash
# Generation with and without a KV cache: the wall time of `megrun --generate` to add NEW tokens after a prompt, with
# an inference plan (megc --mode infer: every new token reruns the whole window of SEQ positions) and with a decode
# plan (megc --mode decode: one one-token pass per position, prompt included, against per-layer KV caches of SEQ
# positions). Same seeded weights, greedy; the two texts must be identical. SEQ defaults to prompt + NEW so every infer
# pass is a full recomputation of the text (no sliding window). Prints, for each, the passes run and the seconds spent
# in them (megrun's own clock: the --dump-logits file's metadata) and the wall time of the whole megrun (plan load and
# weights included), and the ratio. A benchmark, not a test.
#
# Usage: test/bench/decode_throughput.sh [BUILD_DIR]          (default: build)
# Environment: MODEL (models/tiny-gpt.json; its n_positions is raised to SEQ when smaller), NEW (256),
#              PROMPT ("Once upon a time"), TP (1), THREADS (1).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="$(cd "${1:-$ROOT/build}" && pwd)"
MODEL="${MODEL:-$ROOT/models/tiny-gpt.json}" NEW="${NEW:-256}" PROMPT="${PROMPT:-Once upon a time}"
TP="${TP:-1}" THREADS="${THREADS:-1}"
SEQ="${SEQ:-$(( ${#PROMPT} + NEW ))}"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
MEGC="$BUILD/tools/megc/megc" MEGRUN="$BUILD/tools/megrun/megrun"

# The model with room for SEQ positions (learned position embeddings: n_positions rows).
/usr/bin/python3 - "$MODEL" "$SEQ" "$TMP/model.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
m["n_positions"] = m["n_ctx"] = max(m["n_positions"], int(sys.argv[2]))
json.dump(m, open(sys.argv[3], "w"), indent=2)
PY
"$MEGC" "$TMP/model.json" --emit plan -o "$TMP/train"
"$MEGRUN" "$TMP/train" --steps 0 --save-weights "$TMP/w.safetensors" >/dev/null
"$MEGC" "$TMP/model.json" --mode infer --micro-batch 1 --seq "$SEQ" --tp "$TP" --emit plan -o "$TMP/infer"
"$MEGC" "$TMP/model.json" --mode decode --micro-batch 1 --seq "$SEQ" --tp "$TP" --emit plan -o "$TMP/decode"

seconds() { # PLAN OUT: generate NEW tokens; prints "<passes> <seconds in the passes> <wall seconds of megrun>"
  local start end
  start=$(date +%s.%N)
  OMP_NUM_THREADS="$THREADS" OPENBLAS_NUM_THREADS="$THREADS" "$MEGRUN" "$1" --load-weights "$TMP/w.safetensors" \
    --generate "$PROMPT" --max-new-tokens "$NEW" --dump-logits "$TMP/logits.safetensors" > "$2"
  end=$(date +%s.%N)
  /usr/bin/python3 - "$TMP/logits.safetensors" "$start" "$end" <<'PY'
import json, struct, sys
with open(sys.argv[1], "rb") as f:
    (n,) = struct.unpack("<Q", f.read(8))
    meta = json.loads(f.read(n))["__metadata__"]
print(meta["passes"], meta["seconds"], "%.3f" % (float(sys.argv[3]) - float(sys.argv[2])))
PY
}
read -r infer_passes infer_s infer_wall <<< "$(seconds "$TMP/infer" "$TMP/infer.txt")"
read -r decode_passes decode_s decode_wall <<< "$(seconds "$TMP/decode" "$TMP/decode.txt")"
cmp -s "$TMP/infer.txt" "$TMP/decode.txt" || { echo "decode_throughput: the two texts differ" >&2; exit 1; }
echo "$(basename "$MODEL" .json), tp $TP, $THREADS thread(s), prompt ${#PROMPT} bytes + $NEW new tokens, window/cache $SEQ"
echo "infer plan (full window per token):   $infer_passes passes, $infer_s s in the passes, megrun $infer_wall s wall"
echo "decode plan (KV cache, 1 token/pass): $decode_passes passes, $decode_s s in the passes, megrun $decode_wall s wall"
/usr/bin/python3 -c "print('speed-up in the passes: %.1fx' % ($infer_s / max($decode_s, 1e-9)))"
