#!/usr/bin/env bash
# Build the relocatable GPU bundle: megc, megrun, megdata, the GPU test binary (meg_gpu_tests), the GPU benchmark
# (gpu_throughput), the models, the PyTorch baseline and run.sh, with every library they need that is not part of
# the system base (glibc, libstdc++, libgcc_s) or of CUDA shipped in lib/ and found through an $ORIGIN run path.
# cudart, cuBLAS, cuBLASLt and NCCL are NOT shipped: run.sh finds them on the GPU host (the CUDA toolkit's folders,
# the loader's, or PyTorch's nvidia-* wheels) and says which it used.
#
# Usage: scripts/gpu-bundle.sh [OUT_DIR]      (default out/; after the README's setup, on a machine with nvcc)
# Environment: MEG_BUNDLE_BUILD (build dir, default build-bundle), CUDA_HOME (/usr/local/cuda), MEG_BUILD_JOBS
# (ninja -j), MEG_BUNDLE_ARCH (CUDA architectures, default 90: H100/H200).
# Prints the archive's path as its last line. The archive is checked: unpacked into a temporary folder, every binary
# and shipped library must resolve from the bundle, the system base or CUDA (scripts/bundle/check-ldd.sh), and it
# must be at most 48 MiB.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$(mkdir -p "${1:-$ROOT/out}" && cd "${1:-$ROOT/out}" && pwd)"
BUILD="${MEG_BUNDLE_BUILD:-$ROOT/build-bundle}"
CUDA_HOME="${CUDA_HOME:-/usr/local/cuda}"
NAME=meg-gpu-bundle
LIMIT_MIB=48
say() { echo "gpu-bundle: $*" >&2; }
die() { echo "gpu-bundle: error: $*" >&2; exit 1; }

NVCC="$(command -v nvcc || echo "$CUDA_HOME/bin/nvcc")"
[ -x "$NVCC" ] || die "no nvcc (PATH or $CUDA_HOME/bin): the bundle needs the CUDA toolkit to build"
LAUNCHER=()
if command -v ccache >/dev/null 2>&1; then
  LAUNCHER=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache
            -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
fi

# A build of its own: the tools find their libraries in ../lib and nothing else (no CMake run path into the build
# tree, the toolkit or the system's OpenBLAS and Open MPI folders). DT_RPATH, not RUNPATH: the executable's RPATH
# also serves the dependencies of the libraries it loads (those without a run path of their own; the shipped ones
# that have one get $ORIGIN below).
# No MPI: a shipped Open MPI only works with the same Open MPI's mpirun and plugins on the host (and its libevent
# needs glibc 2.36); the bundle's multi-GPU launch is torchrun / srun with --ranks env (NCCL over a TCP rendezvous).
# glibc-compat.o: arc4random for the static LLVMSupport, so that the binaries need glibc 2.34, not 2.36.
say "configuring $BUILD"
mkdir -p "$BUILD"
cc -O2 -c "$ROOT/scripts/bundle/glibc-compat.c" -o "$BUILD/glibc-compat.o"
cmake -G Ninja -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DMEG_ENABLE_CUDA=ON \
  -DCMAKE_CUDA_COMPILER="$NVCC" -DCMAKE_CUDA_ARCHITECTURES="${MEG_BUNDLE_ARCH:-90}" -DCMAKE_SKIP_RPATH=ON \
  -DCMAKE_DISABLE_FIND_PACKAGE_MPI=ON \
  "-DCMAKE_EXE_LINKER_FLAGS=-Wl,--disable-new-dtags,-rpath,'\$ORIGIN/../lib' $BUILD/glibc-compat.o" \
  "${LAUNCHER[@]}" >/dev/null
say "building megc megrun megdata meg_gpu_tests gpu_throughput"
ninja -C "$BUILD" ${MEG_BUILD_JOBS:+-j "$MEG_BUILD_JOBS"} megc megrun megdata meg_gpu_tests gpu_throughput >/dev/null

STAGE="$BUILD/bundle/$NAME"
rm -rf "$BUILD/bundle"
mkdir -p "$STAGE"/{bin,lib,models,scripts,data}
for tool in tools/megc/megc tools/megrun/megrun tools/megdata/megdata test/gpu/meg_gpu_tests test/gpu/gpu_throughput; do
  cp "$BUILD/$tool" "$STAGE/bin/"
  strip --strip-unneeded "$STAGE/bin/$(basename "$tool")"
done

# Libraries: what the loader resolves for the binaries, less the system base and CUDA (scripts/bundle/libs.sh).
. "$ROOT/scripts/bundle/libs.sh"
: >"$STAGE/lib/CUDA_LIBS"
for bin in "$STAGE"/bin/*; do
  while read -r soname path; do
    if is_cuda_lib "$soname"; then
      grep -qx "$soname" "$STAGE/lib/CUDA_LIBS" || echo "$soname" >>"$STAGE/lib/CUDA_LIBS"
    elif ! is_base_lib "$soname"; then
      [ "$path" != "not" ] || die "$(basename "$bin") needs $soname, which this machine's loader does not find"
      [ -f "$STAGE/lib/$soname" ] || { cp -L "$path" "$STAGE/lib/$soname" && chmod u+w "$STAGE/lib/$soname" &&
        strip --strip-unneeded "$STAGE/lib/$soname"; }
    fi
  done < <(ldd_pairs "$bin")
done
sort -o "$STAGE/lib/CUDA_LIBS" "$STAGE/lib/CUDA_LIBS"
# A shipped library with a run path of its own (Debian's Open MPI libraries have one, should MPI come back) would
# look for its dependencies there: point it at its own folder.
python3 "$ROOT/scripts/bundle/set-origin-runpath.py" "$STAGE"/lib/*.so* >/dev/null

cp "$ROOT"/models/*.json "$STAGE/models/"
cp "$ROOT/scripts/bundle/run.sh" "$STAGE/run.sh" && chmod +x "$STAGE/run.sh"
cp "$ROOT/scripts/bundle/check-ldd.sh" "$ROOT/scripts/bundle/libs.sh" "$ROOT/scripts/bundle/cuda-libs.sh" \
  "$ROOT/test/bench/gpu_torch_baseline.py" "$STAGE/scripts/"
# A byte-level training text for the bf16-vs-fp32 curve: the project's own documentation (plain English).
cat "$ROOT/README.md" "$ROOT"/docs/*.md >"$STAGE/data/corpus.txt"
# The op examples the GPU suite runs (meg_gpu_tests reads them from MEG_IR_DOC; run.sh sets it).
cp "$ROOT/docs/ir.md" "$STAGE/data/ir.md"
{
  echo "meg GPU bundle"
  echo "commit: $(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo ' (with local changes)')"
  echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -m), $("$NVCC" --version | tail -n 1)"
  echo "cuda architectures: ${MEG_BUNDLE_ARCH:-90}"
  echo "needs from the host: $(tr '\n' ' ' <"$STAGE/lib/CUDA_LIBS")(run.sh finds them), glibc >= $(max_glibc "$STAGE"/bin/* "$STAGE"/lib/*.so*)"
  echo "shipped libraries: $(cd "$STAGE/lib" && ls -- *.so* | tr '\n' ' ')"
} >"$STAGE/BUILD-INFO"

ARCHIVE="$OUT/$NAME.tar.xz"
say "packing $ARCHIVE"
tar -C "$BUILD/bundle" -cf - "$NAME" | xz -9 -T0 >"$ARCHIVE.tmp"
mv "$ARCHIVE.tmp" "$ARCHIVE"
bytes=$(stat -c %s "$ARCHIVE")
(( bytes <= LIMIT_MIB * 1024 * 1024 )) || die "$ARCHIVE is $bytes bytes, over the $LIMIT_MIB MiB limit"

# The archive as a GPU host gets it: unpacked somewhere else, no LD_LIBRARY_PATH.
CHECK="$(mktemp -d "${TMPDIR:-/tmp}/meg-bundle-check.XXXXXX")"
trap 'rm -rf "$CHECK"' EXIT
tar -C "$CHECK" -xJf "$ARCHIVE"
env -u LD_LIBRARY_PATH bash "$CHECK/$NAME/scripts/check-ldd.sh" "$CHECK/$NAME" >&2 ||
  die "the unpacked bundle needs libraries from outside it (above)"
# ... and with this machine's OpenBLAS, Open MPI, LLVM and GCC runtime hidden (where unshare -m is permitted).
hidden=0
env -u LD_LIBRARY_PATH bash "$ROOT/scripts/bundle/check-hidden.sh" "$CHECK/$NAME" >&2 || hidden=$?
[ "$hidden" = 0 ] || [ "$hidden" = 2 ] || die "the unpacked bundle does not run with the system's libraries hidden"
say "$(cat "$STAGE/BUILD-INFO" | sed -n 's/^needs from the host: //p')"
say "archive: $(awk -v b="$bytes" 'BEGIN { printf "%.1f MiB", b / 1048576 }') (unpacked $(du -sh "$STAGE" | cut -f1))"
echo "$ARCHIVE"
