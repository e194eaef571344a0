#!/usr/bin/env bash
# Builds the libFuzzer targets (test/fuzz, cmake/Fuzz.cmake: clang-14, ASan + UBSan) in build-fuzz/ and runs each for
# SECONDS (default 30) on its seed corpus, printing per target the executions, executions per second, coverage
# (libFuzzer's cov: edges and ft: features) and crashes.
# Exits non-zero when a target crashes, leaks, times out on one input or runs out of memory; the input is kept in
# build-fuzz/fuzz-artifacts/ (add it to test/fuzz/corpus/<target>/ with a regression test when fixed).
# Environment: MEG_FUZZ_BUILD_DIR (default build-fuzz), MEG_FUZZ_TARGETS (default: all six), MEG_FUZZ_JOBS (ninja -j),
# MEG_FUZZ_PARALLEL (non-empty: run the targets at the same time instead of one after another).
#   bash scripts/fuzz.sh [SECONDS]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SECONDS_PER_TARGET="${1:-30}"
BUILD="${MEG_FUZZ_BUILD_DIR:-build-fuzz}"
TARGETS="${MEG_FUZZ_TARGETS:-ir config plan safetensors checkpoint tokens}"
LAUNCHER=()
command -v ccache > /dev/null && LAUNCHER=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
if [[ ! -f "$BUILD/build.ninja" ]]; then
  mkdir -p "$BUILD"
  cmake -G Ninja -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Debug -DMEG_FUZZ=ON -DMEG_ENABLE_CUDA=OFF \
    -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_C_COMPILER=clang-14 "${LAUNCHER[@]}" > "$BUILD/configure.log" 2>&1 ||
    { cat "$BUILD/configure.log"; exit 1; }
fi
ninja -C "$BUILD" ${MEG_FUZZ_JOBS:+-j "$MEG_FUZZ_JOBS"} $(printf 'fuzz-%s ' $TARGETS) | tail -1

# Seeds beyond test/fuzz/corpus: the IR lit tests and the model descriptions.
extra_seeds() {
  case "$1" in
    ir) echo test/lit/ir ;;
    config) echo models ;;
  esac
}
ARTIFACTS="$BUILD/fuzz-artifacts"
mkdir -p "$ARTIFACTS"
# One target's run; its exit status goes to $BUILD/fuzz-$t.rc.
run_target() {
  local t=$1 rc=0
  local work="$BUILD/fuzz-corpus/$t" # new inputs accumulate here across runs
  mkdir -p "$work"
  "$BUILD/test/fuzz/fuzz-$t" -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$ARTIFACTS/$t-" "$work" "test/fuzz/corpus/$t" $(extra_seeds "$t") \
    > "$BUILD/fuzz-$t.log" 2>&1 || rc=$?
  echo "$rc" > "$BUILD/fuzz-$t.rc"
}
if [[ -n "${MEG_FUZZ_PARALLEL:-}" ]]; then
  for t in $TARGETS; do run_target "$t" & done
  wait
else
  for t in $TARGETS; do run_target "$t"; done
fi
failed=0
for t in $TARGETS; do
  log="$BUILD/fuzz-$t.log"
  rc=$(cat "$BUILD/fuzz-$t.rc")
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(grep -oE '\bcov: [0-9]+ ft: [0-9]+' "$log" | tail -1)
  crashes=0
  if [[ $rc -ne 0 ]]; then
    crashes=1
    failed=1
  fi
  echo "fuzz-$t: ${execs:-?} executions, ${speed:-?} exec/s, ${cov:-cov: ?}, crashes: $crashes"
  if [[ $rc -ne 0 ]]; then
    grep -E "^(==[0-9]+==ERROR|SUMMARY|artifact_prefix|Test unit written|.*runtime error)" "$log" | head -5 | sed 's/^/  /'
    echo "  (log: $log)"
  fi
done
exit $failed
