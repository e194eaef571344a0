#!/usr/bin/env bash
# meg GPU bundle: one command that proves and benchmarks meg's CUDA path on this host (scripts/gpu-bundle.sh builds
# the bundle; README "GPU bundle").
#
# Usage: ./run.sh [RESULT_DIR]          (default ./results)
#   1. CPU-side checks: the bundle's ldd self-check, megc compiles plans, megrun trains a few steps on the CPU.
#      Without a GPU (nvidia-smi absent or listing no device) it then says so in one line and exits 0.
#   2. The CUDA libraries (cudart, cuBLASLt, NCCL) are found on this host and named (scripts/cuda-libs.sh).
#   3. The GPU suite (bin/meg_gpu_tests: every kernel against the CPU kernel, training steps CUDA vs CPU, tp 2 and 4
#      on one GPU); a skipped test is a failure here.
#   4. The bf16 curve: 100 steps of the tiny GPT in bf16 on the GPU against the same 100 steps in fp32 on the CPU
#      (same seed, init and data), every step's loss within a relative 2e-2.
#   5. NCCL: megrun --ranks env as torchrun starts it (2 processes, tp 2, when there are 2 GPUs; else a world of one)
#      against --ranks threads on one GPU, 10 steps, losses within 1e-3.
#   6. The benchmark: GPT-2 124M, 355M and 1.5B, bf16, at tp 1 (bin/gpu_throughput) and tp 2 and 4 on one GPU (megrun
#      --ranks threads), beside PyTorch eager and torch.compile (scripts/gpu_torch_baseline.py, bf16 autocast), same
#      model, micro-batch, sequence, in this run: tokens/s, ms/step, TFLOP/s and MFU, the formula printed.
# Writes RESULT_DIR/summary.txt (the table) and RESULT_DIR/logs/; exits 1 when anything failed.
# Environment: PYTHON (python3 with torch), SKIP_TORCH=1, PEAK_TFLOPS (default from the GPU's name), BENCH_MODELS
# ("gpt2 gpt2-medium gpt2-xl"), BENCH_TPS ("1 2 4"), BENCH_MB (4), BENCH_SEQ (1024), BENCH_STEPS (per model:
# 10/6/4), CURVE_STEPS (100), MEG_CUDA_LIB_DIRS, CUDA_HOME.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RESULT="$(mkdir -p "${1:-$HERE/results}" && cd "${1:-$HERE/results}" && pwd)"
LOGS="$RESULT/logs"
WORK="$RESULT/work"
rm -rf "$LOGS" "$WORK"
mkdir -p "$LOGS" "$WORK"
BIN="$HERE/bin"
PYTHON="${PYTHON:-python3}"
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
START=$(date +%s)
FAILED=()

say() { echo "run.sh: $*"; }
elapsed() { echo "$(( $(date +%s) - START )) s"; }
# check NAME CMD...: runs CMD with its output in logs/NAME.log; records a failure.
check() {
  local name="$1"
  shift
  if "$@" >"$LOGS/$name.log" 2>&1; then
    say "ok: $name"
    return 0
  fi
  say "FAILED: $name (logs/$name.log: $(tail -n 1 "$LOGS/$name.log"))"
  FAILED+=("$name")
  return 1
}
finish() {
  if ((${#FAILED[@]})); then
    say "FAILED: ${FAILED[*]} ($(elapsed); logs in $LOGS)"
    exit 1
  fi
  exit 0
}

# --- 1. CPU-side checks ---------------------------------------------------------------------------------------------
TINY="$HERE/models/tiny-gpt.json"
check check-ldd bash "$HERE/scripts/check-ldd.sh" "$HERE"
check megc-plans bash -c "
  '$BIN/megc' '$TINY' --emit plan -o '$WORK/tiny-tp1' &&
  '$BIN/megc' '$TINY' --tp 2 --emit plan -o '$WORK/tiny-tp2' &&
  '$BIN/megc' '$TINY' --bf16 --emit plan -o '$WORK/tiny-bf16' &&
  '$BIN/megc' '$HERE/models/gpt2.json' --micro-batch 4 --seq 1024 --bf16 --emit report | head -n 9"
check megrun-cpu env OMP_NUM_THREADS="${OMP_NUM_THREADS:-4}" "$BIN/megrun" "$WORK/tiny-tp2" --backend cpu --data "$HERE/data/corpus.txt" --steps 3 \
  --log "$WORK/cpu-tp2.jsonl"

gpus="$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ' || true)"
if [ "${gpus:-0}" = 0 ]; then
  ((${#FAILED[@]})) && finish
  if command -v nvidia-smi >/dev/null 2>&1; then why="nvidia-smi lists no device"; else why="nvidia-smi not found"; fi
  say "no GPU on this host ($why): the CPU-side checks passed; the GPU suite, bf16 curve and benchmark were not run"
  exit 0
fi
nvidia-smi -L | tee "$LOGS/nvidia-smi.log"
nvidia-smi >>"$LOGS/nvidia-smi.log" 2>&1
GPU_NAME="$(nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1)"

# --- 2. CUDA libraries ----------------------------------------------------------------------------------------------
. "$HERE/scripts/cuda-libs.sh"
find_cuda_libs "$HERE" | tee "$LOGS/cuda-libs.log"
[ "${PIPESTATUS[0]}" = 0 ] || { FAILED+=(cuda-libs); finish; }
check check-ldd-cuda bash "$HERE/scripts/check-ldd.sh" "$HERE" --require-cuda || finish

# --- 3. The GPU suite -----------------------------------------------------------------------------------------------
gpu_suite() {
  MEG_MEGC="$BIN/megc" MEG_MODELS_DIR="$HERE/models" MEG_IR_DOC="$HERE/data/ir.md" "$BIN/meg_gpu_tests" --gtest_brief=0 || return 1
}
check gpu-tests gpu_suite
skipped="$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) tests\{0,1\}, listed below.*/\1/p' "$LOGS/gpu-tests.log")"
if [ -n "$skipped" ] || grep -q '^\[  SKIPPED \]' "$LOGS/gpu-tests.log"; then
  say "FAILED: gpu-tests: ${skipped:-some} tests skipped on a host with a GPU ($(grep -m 1 -B 1 '^\[  SKIPPED \]' \
    "$LOGS/gpu-tests.log" | head -n 1))"
  FAILED+=(gpu-tests-skipped)
fi
SUITE="$(grep -E '^\[ +(PASSED|FAILED|SKIPPED) +\] [0-9]+ test' "$LOGS/gpu-tests.log" | sed 's/, listed below://' |
  tr '\n' ' ')"
say "gpu suite: ${SUITE:-no summary} ($(elapsed))"

# --- 4. bf16 on the GPU against fp32 on the CPU ---------------------------------------------------------------------
CURVE_STEPS="${CURVE_STEPS:-100}"
curve() {
  "$BIN/megc" "$TINY" --emit plan -o "$WORK/curve-fp32" &&
    "$BIN/megc" "$TINY" --bf16 --emit plan -o "$WORK/curve-bf16" &&
    OMP_NUM_THREADS="${OMP_NUM_THREADS:-4}" "$BIN/megrun" "$WORK/curve-fp32" --backend cpu --data "$HERE/data/corpus.txt" --steps "$CURVE_STEPS" --seed 5 \
      --log "$RESULT/curve-cpu-fp32.jsonl" >/dev/null &&
    "$BIN/megrun" "$WORK/curve-bf16" --backend cuda --data "$HERE/data/corpus.txt" --steps "$CURVE_STEPS" --seed 5 \
      --log "$RESULT/curve-gpu-bf16.jsonl" >/dev/null || return 1
  # Step by step: |gpu - cpu| / |cpu| <= 2e-2.
  paste -d ' ' <(sed -n 's/.*"loss":\([^,}]*\).*/\1/p' "$RESULT/curve-cpu-fp32.jsonl") \
    <(sed -n 's/.*"loss":\([^,}]*\).*/\1/p' "$RESULT/curve-gpu-bf16.jsonl") |
    awk -v want="$CURVE_STEPS" '
      { n++; d = $2 - $1; if (d < 0) d = -d; r = d / ($1 < 0 ? -$1 : $1); if (r > worst) { worst = r; at = n }
        if (n == 1) first = $1 " / " $2; last = $1 " / " $2 }
      END { printf "bf16 curve: %d steps, loss cpu fp32 / gpu bf16: step 1 %s, step %d %s; worst relative difference %.2e at step %d (bound 2e-2)\n", n, first, n, last, worst, at
            exit !(n == want && worst <= 2e-2) }'
}
check bf16-curve curve && say "$(tail -n 1 "$LOGS/bf16-curve.log")"

# --- 4b. One process per GPU over NCCL (megrun --ranks env, as torchrun starts it) ----------------------------------
# Two or more GPUs: tp 2 as two processes, NCCL between them, against tp 2 on one GPU (--ranks threads); one GPU: a
# world of one process (NCCL bootstrap, no collective) against --ranks threads. 10 steps of the tiny GPT in fp32,
# every loss within a relative 1e-3 (NCCL sums in its own order).
nccl() {
  local world=1 plan="$WORK/tiny-tp1" port
  [ "$gpus" -ge 2 ] && world=2 plan="$WORK/tiny-tp2"
  port=$((20000 + RANDOM % 40000))
  "$BIN/megrun" "$plan" --backend cuda --ranks threads --data "$HERE/data/corpus.txt" --steps 10 \
    --log "$RESULT/nccl-threads.jsonl" >/dev/null || return 1
  local pids=() r rc=0
  for ((r = world - 1; r >= 0; r--)); do
    RANK=$r LOCAL_RANK=$r WORLD_SIZE=$world MASTER_ADDR=127.0.0.1 MASTER_PORT=$((port - 1)) \
      MEG_RENDEZVOUS_PORT=$port MEG_RENDEZVOUS_TIMEOUT=60 timeout 300 "$BIN/megrun" "$plan" --backend cuda \
      --ranks env --data "$HERE/data/corpus.txt" --steps 10 --log "$RESULT/nccl-env.jsonl" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || rc=1; done
  [ "$rc" = 0 ] || return 1
  paste -d ' ' <(sed -n 's/.*"loss":\([^,}]*\).*/\1/p' "$RESULT/nccl-threads.jsonl") \
    <(sed -n 's/.*"loss":\([^,}]*\).*/\1/p' "$RESULT/nccl-env.jsonl") |
    awk -v w="$world" '{ n++; d = $2 - $1; if (d < 0) d = -d; r = d / ($1 < 0 ? -$1 : $1); if (r > worst) worst = r }
      END { printf "nccl: %d process(es), %d steps against --ranks threads, worst relative loss difference %.2e (bound 1e-3)\n", w, n, worst
            exit !(n == 10 && worst <= 1e-3) }'
}
check nccl nccl && say "$(tail -n 1 "$LOGS/nccl.log")"

# --- 5. The benchmark -----------------------------------------------------------------------------------------------
if [ -n "${PEAK_TFLOPS:-}" ]; then PEAK="$PEAK_TFLOPS" PEAK_WHY="PEAK_TFLOPS"
else
  case "$GPU_NAME" in
    *H100*PCIe*) PEAK=756 PEAK_WHY="H100 PCIe dense bf16" ;;
    *H100*NVL*) PEAK=835 PEAK_WHY="H100 NVL dense bf16" ;;
    *H100* | *H200* | *H800* | *GH200*) PEAK=989 PEAK_WHY="H100/H200 SXM dense bf16" ;;
    *A100*) PEAK=312 PEAK_WHY="A100 dense bf16" ;;
    *) PEAK=989 PEAK_WHY="assumed H100 SXM dense bf16; set PEAK_TFLOPS" ;;
  esac
fi
MB="${BENCH_MB:-4}" SEQ="${BENCH_SEQ:-1024}"
TABLE="$WORK/table.txt"
: >"$TABLE"
# row MODEL WHAT TOKENS_PER_S FLOPS_PER_TOKEN
row() {
  awk -v m="$1" -v w="$2" -v t="$3" -v f="$4" -v p="$PEAK" -v tok="$((MB * SEQ))" 'BEGIN {
    if (t + 0 <= 0) { printf "%-12s %-22s %12s %10s %9s %7s\n", m, w, "failed", "-", "-", "-"; exit }
    tf = t * f / 1e12; printf "%-12s %-22s %12.0f %10.1f %9.1f %6.1f%%\n", m, w, t, 1e3 * tok / t, tf, 100 * tf / p }' \
    >>"$TABLE"
}
bench_model() {
  local model="$1" steps="$2" cfg="$HERE/models/$1.json" report layers hidden heads params fpt tp tps
  report="$("$BIN/megc" "$cfg" --micro-batch "$MB" --seq "$SEQ" --bf16 --emit report)" || return 1
  layers="$(sed -n 's/^layers: \([0-9]*\), hidden: \([0-9]*\).*/\1/p' <<<"$report")"
  hidden="$(sed -n 's/^layers: \([0-9]*\), hidden: \([0-9]*\).*/\2/p' <<<"$report")"
  params="$(sed -n 's/^parameters with vocab padding: //p' <<<"$report")"
  heads="$(sed -n 's/^layers: .*, heads: \([0-9]*\),.*/\1/p' <<<"$report")"
  fpt=$((6 * params + 12 * layers * hidden * SEQ))
  echo "$model: flops/token = 6 N + 12 L h s = 6 * $params + 12 * $layers * $hidden * $SEQ = $fpt" >>"$WORK/formulas.txt"
  for tp in ${BENCH_TPS:-1 2 4}; do
    if (( heads % tp != 0 )); then # GPT-2 1.5B has 25 heads: tp 1 only (or 5)
      printf "%-12s %-22s %s\n" "$model" "meg bf16 tp $tp" "not run: $heads heads do not split over tp $tp" >>"$TABLE"
      continue
    fi
    "$BIN/megc" "$cfg" --tp "$tp" --micro-batch "$MB" --seq "$SEQ" --bf16 --emit plan -o "$WORK/$model-tp$tp" ||
      return 1
    if [ "$tp" = 1 ]; then
      "$BIN/gpu_throughput" "$WORK/$model-tp1" --steps "$steps" --warmup 2 --peak-tflops "$PEAK" || return 1
      tps="$(sed -n 's/^tokens\/s: //p' "$LOGS/bench-$model.log" | tail -n 1)"
    else
      "$BIN/megrun" "$WORK/$model-tp$tp" --backend cuda --ranks threads --steps $((steps + 2)) \
        --log "$WORK/$model-tp$tp.jsonl" || return 1
      # Mean time per step after the two warm-up steps, as tokens/s.
      tps="$(sed -n 's/.*"tokens_per_s":\([^,}]*\).*/\1/p' "$WORK/$model-tp$tp.jsonl" | tail -n +3 |
        awk -v tok=$((MB * SEQ)) '{ s += tok / $1; n++ } END { if (n) printf "%.1f", n * tok / s }')"
    fi
    row "$model" "meg bf16 tp $tp$([ "$tp" != 1 ] && echo ' (1 GPU)')" "${tps:-0}" "$fpt"
  done
  if [ "${SKIP_TORCH:-0}" != 1 ]; then
    "$PYTHON" "$HERE/scripts/gpu_torch_baseline.py" --config "$cfg" --micro-batch "$MB" --seq "$SEQ" \
      --steps "$steps" --warmup 3 || return 1
    for mode in eager compile; do
      tps="$(sed -n "s/^torch $mode bf16: \([0-9.]*\) tokens\/s.*/\1/p" "$LOGS/bench-$model.log")"
      row "$model" "torch $mode bf16" "${tps:-0}" "$fpt"
    done
  fi
}
set -- ${BENCH_MODELS:-gpt2 gpt2-medium gpt2-xl}
for model in "$@"; do
  case "$model" in gpt2) s=10 ;; gpt2-medium) s=6 ;; *) s=4 ;; esac
  check "bench-$model" bench_model "$model" "${BENCH_STEPS:-$s}"
  say "benchmark $model done ($(elapsed))"
done

{
  echo "meg GPU bundle on $GPU_NAME ($(nvidia-smi --query-gpu=driver_version --format=csv,noheader | head -n 1) driver), $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  sed -n 's/^commit: /bundle commit: /p' "$HERE/BUILD-INFO"
  echo "gpu suite: $SUITE"
  grep -h '^bf16 curve' "$LOGS/bf16-curve.log" 2>/dev/null || echo "bf16 curve: failed"
  grep -h '^nccl' "$LOGS/nccl.log" 2>/dev/null || echo "nccl: failed"
  echo
  echo "benchmark: micro-batch $MB, seq $SEQ, bf16 (meg: bf16 plans; torch: bf16 autocast), one GPU"
  echo "MFU = tokens/s * flops/token / peak, flops/token = 6 N + 12 L h s (N parameters with vocab padding, L layers,"
  echo "h hidden, s sequence: forward + backward matmuls, PaLM appendix B); peak = $PEAK TFLOP/s ($PEAK_WHY)"
  cat "$WORK/formulas.txt" 2>/dev/null
  printf "%-12s %-22s %12s %10s %9s %7s\n" model run tokens/s ms/step TFLOP/s MFU
  cat "$TABLE"
  echo
  echo "total: $(elapsed); failed: ${FAILED[*]:-none}"
} | tee "$RESULT/summary.txt"
finish
