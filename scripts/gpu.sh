#!/usr/bin/env bash
# Build meg with CUDA on a GPU host, run the GPU test suite, then the throughput benchmark (meg's CUDA backend and a
# PyTorch baseline, bf16 eager and torch.compile) and print a short table. For GPU sessions; CI does not run it.
#
# Usage: scripts/gpu.sh [BUILD_DIR]              (default: build-gpu)
# Environment: MODEL (models/gpt2.json), MB (micro-batch, 4), SEQ (1024), STEPS (10), PYTHON (python3 with torch),
#              PRECISION (bf16: megc --bf16, as the torch baseline; fp16; fp32 for meg's fp32 plan),
#              CUDA_HOME (/usr/local/cuda), SKIP_TORCH=1 to leave out the torch baseline.
# cuBLASLt / NCCL: the toolkit's, or those of PyTorch's pip wheels (site-packages/nvidia/{cublas,nccl}), found here
# and passed to CMake as MEG_CUDA_EXTRA_ROOTS. The host also needs meg's usual build dependencies (LLVM 14,
# FlatBuffers, OpenBLAS, Boost, GoogleTest: scripts/setup.sh installs them on Debian); a missing one stops CMake with
# its name.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${1:-$ROOT/build-gpu}"
MODEL="${MODEL:-$ROOT/models/gpt2.json}" MB="${MB:-4}" SEQ="${SEQ:-1024}" STEPS="${STEPS:-10}"
PRECISION="${PRECISION:-bf16}"
case "$PRECISION" in bf16) PFLAG=--bf16 ;; fp16) PFLAG=--fp16 ;; fp32) PFLAG= ;;
  *) echo "gpu.sh: PRECISION must be bf16, fp16 or fp32 (got '$PRECISION')" >&2; exit 1 ;; esac
PYTHON="${PYTHON:-python3}"
CUDA_HOME="${CUDA_HOME:-/usr/local/cuda}"
NVCC="$(command -v nvcc || echo "$CUDA_HOME/bin/nvcc")"
[ -x "$NVCC" ] || { echo "gpu.sh: no nvcc (PATH or $CUDA_HOME/bin)" >&2; exit 1; }
nvidia-smi -L 2>/dev/null || echo "gpu.sh: nvidia-smi not found (the tests will say whether a device is usable)"

# cuBLASLt / NCCL from PyTorch's wheels when the toolkit lacks them.
EXTRA=""
if [ ! -f "$CUDA_HOME/include/cublasLt.h" ] || [ ! -f "$CUDA_HOME/include/nccl.h" ]; then
  NV="$("$PYTHON" -c 'import nvidia, os; print(os.path.dirname(nvidia.__file__) if nvidia.__file__ else list(nvidia.__path__)[0])' 2>/dev/null || true)"
  for pkg in cublas nccl cuda_runtime; do
    [ -n "$NV" ] && [ -d "$NV/$pkg" ] && EXTRA="${EXTRA:+$EXTRA;}$NV/$pkg"
  done
  echo "gpu.sh: cuBLASLt/NCCL roots from PyTorch's wheels: ${EXTRA:-none found}"
fi

start=$(date +%s)
cmake -G Ninja -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DMEG_ENABLE_CUDA=ON \
  -DCMAKE_CUDA_COMPILER="$NVCC" ${EXTRA:+"-DMEG_CUDA_EXTRA_ROOTS=$EXTRA"}
ninja -C "$BUILD" megc megrun meg_gpu_tests gpu_throughput
build_s=$(( $(date +%s) - start ))

# Wheel libraries are not on the loader path by default.
if [ -n "$EXTRA" ]; then
  IFS=';' read -ra roots <<< "$EXTRA"
  for r in "${roots[@]}"; do export LD_LIBRARY_PATH="$r/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"; done
fi

set +e
"$BUILD/test/gpu/meg_gpu_tests" --gtest_brief=1 2>&1 | tee "$BUILD/gpu-tests.log"
tests_rc=${PIPESTATUS[0]}
set -e
summary="$(grep -E '^\[ +(PASSED|FAILED|SKIPPED) +\] [0-9]+ test' "$BUILD/gpu-tests.log" | sed 's/, listed below://' |
  tr '\n' ' ')"

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
"$BUILD/tools/megc/megc" "$MODEL" --micro-batch "$MB" --seq "$SEQ" --mode train $PFLAG --emit plan -o "$TMP/plan"
"$BUILD/test/gpu/gpu_throughput" "$TMP/plan" --steps "$STEPS" | tee "$TMP/meg.txt"
torch_lines=""
if [ "${SKIP_TORCH:-0}" != 1 ]; then
  torch_lines="$("$PYTHON" "$ROOT/test/bench/gpu_torch_baseline.py" --config "$MODEL" --micro-batch "$MB" \
    --seq "$SEQ" --steps "$STEPS" 2>&1 | grep '^torch ' || echo "torch baseline failed")"
fi

echo
echo "=== meg GPU summary ($(basename "$MODEL" .json), micro-batch $MB, seq $SEQ) ==="
printf '%-28s %s\n' "build (s)" "$build_s"
printf '%-28s %s (exit %s)\n' "meg_gpu_tests" "$summary" "$tests_rc"
printf '%-28s %s\n' "meg $PRECISION tokens/s" "$(sed -n 's/^tokens\/s: //p' "$TMP/meg.txt")"
printf '%-28s %s\n' "meg $PRECISION ms/step" "$(sed -n 's/^ms\/step: //p' "$TMP/meg.txt")"
printf '%-28s %s\n' "meg TFLOP/s" "$(sed -n 's/^TFLOP\/s: //p' "$TMP/meg.txt")"
printf '%-28s %s\n' "meg MFU" "$(sed -n 's/^MFU: //p' "$TMP/meg.txt")"
[ -n "$torch_lines" ] && echo "$torch_lines" | while read -r line; do
  printf '%-28s %s\n' "${line%%:*}" "${line#*: }"
done
exit "$tests_rc"
