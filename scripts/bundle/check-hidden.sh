#!/usr/bin/env bash
# The unpacked bundle with this machine's OpenBLAS, Open MPI, LLVM and GCC runtime libraries hidden, as on a GPU host
# that has none of them: in a private mount namespace (unshare -m; needs root or user namespaces) the system's
# folders for them are covered by empty tmpfs mounts and their libraries in the common folder by /dev/null; then
# check-ldd.sh, megc and a 2-step CPU training run of megrun must work from the bundle alone.
# Usage: check-hidden.sh BUNDLE_DIR. Exit 0 when it passed, 1 when it failed, 2 when it cannot hide (no unshare).
set -uo pipefail
BUNDLE="$(cd "${1:?usage: check-hidden.sh BUNDLE_DIR}" && pwd -P)"
if ! unshare -m true 2>/dev/null; then
  echo "check-hidden: skipped: unshare -m is not permitted here"
  exit 2
fi
exec unshare -m bash -s "$BUNDLE" <<'INNER'
set -uo pipefail
BUNDLE="$1"
MULTI=/usr/lib/$(gcc -dumpmachine 2>/dev/null || echo x86_64-linux-gnu)
hidden=()
for dir in "$MULTI"/openblas* "$MULTI"/openmpi /usr/lib/llvm-*; do
  [ -d "$dir" ] && mount -t tmpfs none "$dir" && hidden+=("$dir")
done
for lib in "$MULTI"/libopenblas* "$MULTI"/libblas.so* "$MULTI"/liblapack.so* "$MULTI"/libmpi* "$MULTI"/libopen-* \
  "$MULTI"/libgomp.so* "$MULTI"/libgfortran.so* "$MULTI"/libquadmath.so* "$MULTI"/libLLVM*; do
  [ -e "$lib" ] && mount --bind /dev/null "$lib" && hidden+=("$lib")
done
echo "check-hidden: hid ${#hidden[@]} system folders and libraries (OpenBLAS, Open MPI, LLVM, libgomp, libgfortran, libquadmath; not libtinfo: bash needs it)"
bash "$BUNDLE/scripts/check-ldd.sh" "$BUNDLE" || exit 1
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
"$BUNDLE/bin/megc" "$BUNDLE/models/tiny-gpt.json" --tp 2 --emit plan -o "$WORK/plan" || exit 1
OPENBLAS_NUM_THREADS=1 "$BUNDLE/bin/megrun" "$WORK/plan" --backend cpu --steps 2 --data "$BUNDLE/data/corpus.txt" \
  --log "$WORK/log.jsonl" >/dev/null || exit 1
[ "$(wc -l <"$WORK/log.jsonl")" = 2 ] || { echo "check-hidden: megrun wrote no 2-step log"; exit 1; }
echo "check-hidden: ok: megc compiled a tp 2 plan and megrun trained 2 steps on the CPU with the system's libraries hidden"
INNER
