#!/usr/bin/env bash
# Set up (scripts/setup.sh: packages, parity venv, build) and run every test: GoogleTest units, the lit suite and the
# Hugging Face parity tests, all through ctest. Exits non-zero when anything fails.
# Environment: as for setup.sh, plus MEG_TEST_JOBS (ctest -j, default 2).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
BUILD_DIR="${MEG_BUILD_DIR:-build}"
echo "test: ctest --test-dir $BUILD_DIR"
ctest --test-dir "$BUILD_DIR" --output-on-failure -j "${MEG_TEST_JOBS:-2}"
