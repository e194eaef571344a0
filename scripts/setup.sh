#!/usr/bin/env bash
# Install what meg needs and build it. Idempotent and quiet when everything is there.
#   1. Debian packages (apt-get update only when one is missing)
#   2. .venv for the parity tests: Debian's torch 1.13 + test/parity/requirements.txt (pinned, --no-deps)
#   3. cmake -G Ninja -S . -B build -DCMAKE_BUILD_TYPE=Release $MEG_CMAKE_ARGS && ninja -C build
# Environment: MEG_CMAKE_ARGS (extra configure arguments, e.g. -DMEG_ENABLE_CUDA=OFF; default none: CUDA is
# auto-detected), MEG_BUILD_DIR (default build), MEG_BUILD_JOBS (ninja -j; default ninja's), MEG_VENV (default .venv).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BUILD_DIR="${MEG_BUILD_DIR:-build}"
VENV="${MEG_VENV:-$ROOT/.venv}"
REQUIREMENTS="$ROOT/test/parity/requirements.txt"
LOG_DIR="$(mktemp -d "${TMPDIR:-/tmp}/meg-setup.XXXXXX")"
trap 'rm -rf "$LOG_DIR"' EXIT

# Run a command with its output in a log that is shown only when it fails.
quiet() {
  local name="$1"
  shift
  if ! "$@" >"$LOG_DIR/$name.log" 2>&1; then
    echo "setup: error: '$*' failed:" >&2
    if grep -q '^FAILED: ' "$LOG_DIR/$name.log"; then  # ninja: from the first failed step on
      sed -n '/^FAILED: /,$p' "$LOG_DIR/$name.log" | head -n 300 >&2
    else
      tail -n 150 "$LOG_DIR/$name.log" >&2
    fi
    exit 1
  fi
}

# --- 1. Debian packages --------------------------------------------------------------------------------------------
PACKAGES=(
  cmake ninja-build g++ llvm-14-dev llvm-14-tools libgtest-dev libbenchmark-dev
  libflatbuffers-dev flatbuffers-compiler libboost-graph-dev libopenblas-dev libopenblas-openmp-dev libopenmpi-dev openmpi-bin
  fortunes python3-torch python3-numpy python3-venv gnuplot-nox graphviz
  clang-14 libclang-rt-14-dev libstdc++-11-dev
)
missing=()
for p in "${PACKAGES[@]}"; do
  if [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" != "install ok installed" ]]; then
    missing+=("$p")
  fi
done
if ((${#missing[@]})); then
  SUDO=()
  if [[ "$(id -u)" != 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
      SUDO=(sudo)
    else
      echo "setup: error: packages missing (${missing[*]}) and not root and no sudo" >&2
      exit 1
    fi
  fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  quiet apt-update "${SUDO[@]}" apt-get update -qq
  quiet apt-install "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
echo "setup: packages ok"

# --- 2. Python venv for the parity tests ---------------------------------------------------------------------------
# Debian's torch is visible only to /usr/bin/python3 (the python3 first on PATH may be another one), so the venv is
# made from it with --system-site-packages. requirements.txt pins transformers and its whole dependency closure except
# torch and numpy, installed with --no-deps so pip never fetches torch from PyPI.
SYS_PYTHON=/usr/bin/python3
VENV_STAMP="$VENV/.meg-requirements"
want_stamp="$(cat "$REQUIREMENTS" <("$SYS_PYTHON" -c 'import sys; print(sys.version)') | sha256sum | cut -d' ' -f1)"
if [[ -x "$VENV/bin/python" && -f "$VENV_STAMP" && "$(cat "$VENV_STAMP")" == "$want_stamp" ]]; then
  echo "setup: venv ok"
else
  if grep -Eiq '^[[:space:]]*(torch|numpy)([^a-z0-9_-]|$)' "$REQUIREMENTS"; then
    echo "setup: error: $REQUIREMENTS must not list torch or numpy (they come from Debian)" >&2
    exit 1
  fi
  echo "setup: making $VENV"
  rm -rf "$VENV"
  quiet venv "$SYS_PYTHON" -m venv --system-site-packages "$VENV"
  quiet pip env PIP_DISABLE_PIP_VERSION_CHECK=1 "$VENV/bin/python" -m pip install --no-input -q --no-deps \
    -r "$REQUIREMENTS"
  # The venv must see Debian's torch and import the three reference models.
  quiet venv-check "$VENV/bin/python" -c '
import torch, numpy, safetensors.torch, transformers
from transformers import GPT2LMHeadModel, BertForPreTraining, MegatronBertForPreTraining
assert torch.__file__.startswith("/usr/lib/python3/"), "torch does not come from Debian: " + torch.__file__
assert numpy.__file__.startswith("/usr/lib/python3/"), "numpy does not come from Debian: " + numpy.__file__
'
  echo "$want_stamp" >"$VENV_STAMP"
  echo "setup: venv ok ($("$VENV/bin/python" -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)'))"
fi

# --- 3. Configure and build ----------------------------------------------------------------------------------------
# shellcheck disable=SC2206  # MEG_CMAKE_ARGS is a list of words on purpose
CMAKE_ARGS=(${MEG_CMAKE_ARGS:-})
quiet configure cmake -G Ninja -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DMEG_PARITY_PYTHON="$VENV/bin/python" \
  "${CMAKE_ARGS[@]}"
NINJA_ARGS=(-C "$BUILD_DIR")
if [[ -n "${MEG_BUILD_JOBS:-}" ]]; then
  NINJA_ARGS+=(-j "$MEG_BUILD_JOBS")
fi
if ! ninja "${NINJA_ARGS[@]}" -n 2>/dev/null | grep -q '^ninja: no work to do'; then
  echo "setup: building $BUILD_DIR"
fi
quiet build ninja "${NINJA_ARGS[@]}"
echo "setup: build ok ($(grep -m1 -o 'CUDA backend [A-Z]*' "$LOG_DIR/configure.log" || echo 'CUDA backend ?'))"
