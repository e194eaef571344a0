#!/usr/bin/env bash
# Compiles every model under models/ at tp 1, 2, 4, 8 and dp x tp = 2 x 2 and times `megc verify` on each plan set
# (issue 14: a good plan set passes in under a second). Prints one line per plan set: ranks, plan bytes, verify's
# wall and CPU seconds; a layout megc refuses (heads not divisible by tp) is listed with megc's reason; a model
# whose micro-batch cannot be split over dp = 2 is compiled with --micro-batch 2 for that layout. Exits
# non-zero when verify rejects a plan set megc wrote. Times are printed, never asserted.
# Environment: MEGC (default build/tools/megc/megc).
#   bash scripts/verify-models.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MEGC="${MEGC:-$ROOT/build/tools/megc/megc}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
failed=0
printf '%-24s %-30s %5s %10s %8s %8s\n' model layout ranks bytes wall_s cpu_s
for model in "$ROOT"/models/*.json; do
  name="$(basename "$model" .json)"
  for layout in "--tp 1" "--tp 2" "--tp 4" "--tp 8" "--dp 2 --tp 2"; do
    rm -rf "$WORK/plan"
    # shellcheck disable=SC2086
    if ! "$MEGC" "$model" $layout --emit plan -o "$WORK/plan" 2> "$WORK/err"; then
      # A micro-batch of 1 cannot be split over dp: use 2.
      if grep -q 'is not divisible by dp' "$WORK/err"; then
        layout="$layout --micro-batch 2"
        rm -rf "$WORK/plan"
        # shellcheck disable=SC2086
        "$MEGC" "$model" $layout --emit plan -o "$WORK/plan" 2> "$WORK/err" || true
      fi
    fi
    if [[ ! -d "$WORK/plan" ]]; then
      printf '%-24s %-30s not compiled: %s\n' "$name" "$layout" "$(head -c 120 "$WORK/err")"
      continue
    fi
    ranks=$(ls "$WORK/plan" | grep -c '\.megplan$')
    bytes=$(cat "$WORK/plan"/*.megplan | wc -c)
    if ! /usr/bin/time -f '%e %U %S' -o "$WORK/time" "$MEGC" verify "$WORK/plan" > "$WORK/out" 2>&1; then
      printf '%-24s %-30s verify failed: %s\n' "$name" "$layout" "$(head -c 200 "$WORK/out")"
      failed=1
      continue
    fi
    read -r wall user sys < "$WORK/time"
    printf '%-24s %-30s %5s %10s %8s %8s\n' "$name" "$layout" "$ranks" "$bytes" "$wall" \
      "$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')"
  done
done
exit $failed
