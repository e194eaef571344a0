# Sourced by the bundle's run.sh: find_cuda_libs BUNDLE finds the CUDA libraries the bundle's binaries need
# (BUNDLE/lib/CUDA_LIBS: cudart, cuBLASLt, NCCL sonames, written by scripts/gpu-bundle.sh) on this host, prints where
# each came from, and prepends the folders to LD_LIBRARY_PATH. Looks, in order, in MEG_CUDA_LIB_DIRS (colon list),
# LD_LIBRARY_PATH, the CUDA toolkit (CUDA_HOME, /usr/local/cuda, /usr/local/cuda-*), PyTorch's nvidia-* wheels
# (site-packages/nvidia/*/lib of $PYTHON, default python3) and the loader's cache (ldconfig -p). Returns 1, naming
# what is missing and where it looked, when one is not found.

cuda_lib_dirs() {
  local d
  IFS=: read -ra d <<<"${MEG_CUDA_LIB_DIRS:-}"
  for x in "${d[@]}"; do [ -n "$x" ] && echo "MEG_CUDA_LIB_DIRS $x"; done
  IFS=: read -ra d <<<"${LD_LIBRARY_PATH:-}"
  for x in "${d[@]}"; do [ -n "$x" ] && echo "LD_LIBRARY_PATH $x"; done
  for home in "${CUDA_HOME:-}" /usr/local/cuda $(ls -d /usr/local/cuda-* 2>/dev/null | sort -rV); do
    [ -n "$home" ] || continue
    for sub in lib64 lib targets/x86_64-linux/lib; do
      [ -d "$home/$sub" ] && echo "toolkit $home/$sub"
    done
  done
  local nv
  nv="$("${PYTHON:-python3}" -c 'import nvidia; print("\n".join(nvidia.__path__))' 2>/dev/null || true)"
  if [ -n "$nv" ]; then
    while read -r root; do
      find "$root" -maxdepth 3 -type d -name lib 2>/dev/null | sort | sed 's/^/PyTorch-wheel /'
    done <<<"$nv"
  fi
}

find_cuda_libs() {
  local bundle="$1" soname dirs found kind dir missing=() add=""
  dirs="$(cuda_lib_dirs)"
  while read -r soname; do
    [ -n "$soname" ] || continue
    found=""
    while read -r kind dir; do
      [ -n "$dir" ] || continue
      if [ -e "$dir/$soname" ]; then
        found="$dir"
        echo "run.sh: $soname from $dir ($kind)"
        case ":$add:" in *":$dir:"*) ;; *) add="${add:+$add:}$dir" ;; esac
        break
      fi
    done <<<"$dirs"
    if [ -z "$found" ]; then
      found="$( (ldconfig -p 2>/dev/null || /sbin/ldconfig -p 2>/dev/null) | awk -v s="$soname" '$1 == s { print $NF; exit }')"
      [ -n "$found" ] && echo "run.sh: $soname from $found (the system loader)"
    fi
    [ -n "$found" ] || missing+=("$soname")
  done <"$bundle/lib/CUDA_LIBS"
  if ((${#missing[@]})); then
    echo "run.sh: error: CUDA libraries not found: ${missing[*]} (looked in MEG_CUDA_LIB_DIRS, LD_LIBRARY_PATH, the CUDA toolkit under CUDA_HOME and /usr/local/cuda*, PyTorch's site-packages/nvidia/*/lib of ${PYTHON:-python3}, and ldconfig -p; the bundle was built with CUDA 13: set MEG_CUDA_LIB_DIRS to the folders that hold them)" >&2
    return 1
  fi
  export LD_LIBRARY_PATH="$add${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  echo "run.sh: LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
}
