#!/usr/bin/env bash
# The bundle's self-check: every library the loader resolves for every binary in BUNDLE/bin (their whole closure,
# as the binaries load them through their $ORIGIN/../lib run path) must come from BUNDLE/lib, the system base
# (glibc, libstdc++, libgcc_s) or CUDA (cudart, cuBLAS, cuBLASLt, NCCL, which the host provides). A library from
# anywhere else (a system OpenBLAS, Open MPI or LLVM) fails the check: the bundle would not start on a host without
# it. Also fails on a shipped library no binary uses, and on a binary whose run path is not $ORIGIN-relative.
#
# Usage: check-ldd.sh BUNDLE_DIR [--require-cuda]
#   --require-cuda: the CUDA libraries must resolve too (run.sh passes it on a GPU host, after setting
#   LD_LIBRARY_PATH); without it an unresolved CUDA library is reported, not failed.
# Prints one line per binary and a summary; exit 1 on any failure.
set -uo pipefail
BUNDLE="$(cd "${1:?usage: check-ldd.sh BUNDLE_DIR [--require-cuda]}" && pwd -P)"
REQUIRE_CUDA=0
[ "${2:-}" = --require-cuda ] && REQUIRE_CUDA=1
. "$BUNDLE/scripts/libs.sh"

fail=0
declare -A used=()
for bin in "$BUNDLE"/bin/*; do
  name="$(basename "$bin")"
  if command -v readelf >/dev/null 2>&1; then
    rpath="$(readelf -d "$bin" | sed -n 's/.*(\(RPATH\|RUNPATH\)).*\[\(.*\)\]/\1 \2/p')"
    if [ "$rpath" != 'RPATH $ORIGIN/../lib' ]; then
      echo "check-ldd: FAIL $name: run path '${rpath:-none}' (expected RPATH \$ORIGIN/../lib)"
      fail=1
    fi
  fi
  if ! pairs="$(ldd_pairs "$bin")"; then
    echo "check-ldd: FAIL $name: ldd failed: $(ldd "$bin" 2>&1 >/dev/null | head -n 1)"
    fail=1
    continue
  fi
  bundled=0 base=0 cuda=() bad=()
  while read -r soname path; do
    [ -n "$soname" ] || continue
    if is_cuda_lib "$soname"; then
      if [ "$path" = not ]; then
        cuda+=("$soname (not found)")
        [ "$REQUIRE_CUDA" = 1 ] && bad+=("$soname: not found")
      else
        cuda+=("$soname ($(dirname "$path"))")
      fi
    elif is_base_lib "$soname"; then
      base=$((base + 1))
    elif [ "$path" != not ] && [ "$(cd "$(dirname "$path")" && pwd -P)" = "$BUNDLE/lib" ]; then
      bundled=$((bundled + 1))
      used[$soname]=1
    else
      bad+=("$soname from $path")
    fi
  done <<<"$pairs"
  if ((${#bad[@]})); then
    fail=1
    for b in "${bad[@]}"; do echo "check-ldd: FAIL $name needs $b (neither in the bundle, the system base nor CUDA)"; done
  fi
  echo "check-ldd: $name: $bundled from the bundle, $base system base, cuda: ${cuda[*]:-none}"
done
for lib in "$BUNDLE"/lib/*.so*; do
  soname="$(basename "$lib")"
  if command -v readelf >/dev/null 2>&1; then
    rpath="$(readelf -d "$lib" | sed -n 's/.*(\(RPATH\|RUNPATH\)).*\[\(.*\)\]/\2/p')"
    if [ -n "$rpath" ] && [ "$rpath" != '$ORIGIN' ]; then
      echo "check-ldd: FAIL lib/$soname: run path '$rpath' (expected none or \$ORIGIN)"
      fail=1
    fi
  fi
  if [ -z "${used[$soname]:-}" ]; then
    echo "check-ldd: FAIL lib/$soname is shipped but no binary loads it"
    fail=1
  fi
done
if [ "$fail" = 0 ]; then
  echo "check-ldd: ok: every binary of $BUNDLE resolves from the bundle, the system base and CUDA"
else
  echo "check-ldd: FAILED"
fi
exit "$fail"
