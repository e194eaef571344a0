# Shared by scripts/gpu-bundle.sh and the bundle's scripts (sourced, not run): which libraries a GPU host provides.
#   is_base_lib SONAME   the system base every Linux host has (glibc, libstdc++, libgcc_s): never shipped
#   is_cuda_lib SONAME   cudart, cuBLAS, cuBLASLt, NCCL: never shipped, found on the GPU host (cuda-libs.sh)
#   ldd_pairs FILE       "SONAME PATH" per library the loader resolves for FILE (PATH "not" when not found)
#   max_glibc FILE...    the highest GLIBC_x.y symbol version the files need (objdump; "unknown" without it)

is_base_lib() {
  case "$1" in
    linux-vdso.so.* | ld-linux*.so.* | libc.so.6 | libm.so.6 | libdl.so.2 | libpthread.so.0 | librt.so.1 | \
      libutil.so.1 | libresolv.so.2 | libstdc++.so.6 | libgcc_s.so.1) return 0 ;;
  esac
  return 1
}

is_cuda_lib() {
  case "$1" in
    libcudart.so.* | libcublas.so.* | libcublasLt.so.* | libnccl.so.*) return 0 ;;
  esac
  return 1
}

ldd_pairs() {
  ldd "$1" | awk '
    $2 == "=>" && $3 == "not" { print $1, "not"; next }
    $2 == "=>" { print $1, $3; next }
    { n = split($1, parts, "/"); print parts[n], $1 }'
}

max_glibc() {
  if ! command -v objdump >/dev/null 2>&1; then
    echo unknown
    return
  fi
  objdump -T "$@" 2>/dev/null | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n 1
}
