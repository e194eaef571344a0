// Data movement of 4- or 2-byte elements (kernels/cpu/Layout.h; the bits are moved, never converted): transpose (y's dim d is x's dim perm[d]), slice
// (y = x[..., start : start + length, ...] along dim), select (y = x[..., index, ...], the dim disappears), their
// backward (dy written into zeros of the full shape), and mask_padding (elements whose GLOBAL index along dim is
// >= valid become value). Slice-like ops view the tensor as [outer, dim, inner]. One thread per output element.
// The backward and mask_padding are templated on the storage type (kernels/cuda/Storage.cuh).
#include "kernels/cuda/Common.cuh"
#include "kernels/cuda/Storage.cuh"

namespace meg::kernels::cuda {

namespace {

template <typename W> __global__ void transposeKernel(Strided<1> g, int64_t n, const W *x, W *y) {
  MEG_GRID_STRIDE(i, n) {
    int64_t off;
    g.offsets(i, &off);
    y[i] = x[off];
  }
}

/// y [outer, length, inner] = x [outer, full, inner] at dim offset start.
template <typename W>
__global__ void sliceKernel(const W *x, int64_t full, int64_t start, int64_t length, int64_t inner, int64_t n, W *y) {
  MEG_GRID_STRIDE(i, n) {
    int64_t in = i % inner, rest = i / inner, c = rest % length, o = rest / length;
    y[i] = x[(o * full + start + c) * inner + in];
  }
}

/// dx [outer, full, inner] = zeros with dy [outer, length, inner] at dim offset start.
template <typename T>
__global__ void sliceBackwardKernel(const T *dy, int64_t full, int64_t start, int64_t length, int64_t inner,
                                    int64_t n, T *dx) {
  MEG_GRID_STRIDE(i, n) {
    int64_t in = i % inner, rest = i / inner, c = rest % full, o = rest / full;
    int64_t local = c - start;
    dx[i] = (local >= 0 && local < length) ? dy[(o * length + local) * inner + in] : store<T>(0.0f);
  }
}

template <typename T>
__global__ void maskPaddingKernel(const T *x, int64_t size, int64_t inner, int64_t firstMasked, float value,
                                  int64_t n, T *y) {
  MEG_GRID_STRIDE(i, n) {
    int64_t c = (i / inner) % size;
    y[i] = c >= firstMasked ? store<T>(value) : x[i];
  }
}

/// outer, dim size and inner of `shape` around `dim`.
void around(const int64_t *shape, int rank, int dim, int64_t &outer, int64_t &inner) {
  outer = product(shape, dim);
  inner = product(shape + dim + 1, rank - dim - 1);
}

} // namespace

cudaError_t transpose(const void *x, const int64_t *shape, int rank, const int *perm, void *y, cudaStream_t stream,
                      int elemBytes) {
  if (rank < 0 || rank > kMaxRank || x == y || (elemBytes != 2 && elemBytes != 4))
    return cudaErrorInvalidValue;
  Strided<1> g;
  g.rank = rank;
  int64_t strides[kMaxRank];
  contiguousStrides(shape, rank, strides);
  bool seen[kMaxRank] = {};
  for (int d = 0; d < rank; ++d) {
    if (perm[d] < 0 || perm[d] >= rank || seen[perm[d]])
      return cudaErrorInvalidValue;
    seen[perm[d]] = true;
    g.size[d] = shape[perm[d]];
    g.stride[0][d] = strides[perm[d]];
  }
  int64_t n = product(shape, rank);
  if (n == 0)
    return cudaSuccess;
  if (elemBytes == 2)
    transposeKernel<<<blocksFor(n), kThreads, 0, stream>>>(g, n, static_cast<const uint16_t *>(x),
                                                            static_cast<uint16_t *>(y));
  else
    transposeKernel<<<blocksFor(n), kThreads, 0, stream>>>(g, n, static_cast<const uint32_t *>(x),
                                                            static_cast<uint32_t *>(y));
  return launched();
}

cudaError_t slice(const void *x, const int64_t *shape, int rank, int dim, int64_t start, int64_t length, void *y,
                  cudaStream_t stream, int elemBytes) {
  if (dim < 0 || dim >= rank || start < 0 || length < 0 || start + length > shape[dim] ||
      (elemBytes != 2 && elemBytes != 4))
    return cudaErrorInvalidValue;
  int64_t outer, inner;
  around(shape, rank, dim, outer, inner);
  int64_t n = outer * length * inner;
  if (n == 0)
    return cudaSuccess;
  if (elemBytes == 2)
    sliceKernel<<<blocksFor(n), kThreads, 0, stream>>>(static_cast<const uint16_t *>(x), shape[dim], start, length,
                                                        inner, n, static_cast<uint16_t *>(y));
  else
    sliceKernel<<<blocksFor(n), kThreads, 0, stream>>>(static_cast<const uint32_t *>(x), shape[dim], start, length,
                                                        inner, n, static_cast<uint32_t *>(y));
  return launched();
}

template <typename T>
cudaError_t sliceBackward(const T *dy, const int64_t *shape, int rank, int dim, int64_t start, int64_t length, T *dx,
                          cudaStream_t stream) {
  if (dim < 0 || dim >= rank || start < 0 || length < 0 || start + length > shape[dim])
    return cudaErrorInvalidValue;
  int64_t outer, inner;
  around(shape, rank, dim, outer, inner);
  int64_t n = outer * shape[dim] * inner;
  if (n == 0)
    return cudaSuccess;
  sliceBackwardKernel<<<blocksFor(n), kThreads, 0, stream>>>(dy, shape[dim], start, length, inner, n, dx);
  return launched();
}

cudaError_t select(const void *x, const int64_t *shape, int rank, int dim, int64_t index, void *y, cudaStream_t stream,
                   int elemBytes) {
  return slice(x, shape, rank, dim, index, 1, y, stream, elemBytes);
}

template <typename T>
cudaError_t selectBackward(const T *dy, const int64_t *shape, int rank, int dim, int64_t index, T *dx,
                           cudaStream_t stream) {
  return sliceBackward(dy, shape, rank, dim, index, 1, dx, stream);
}

template <typename T>
cudaError_t maskPadding(const T *x, const int64_t *shape, int rank, int dim, int64_t dimOffset, int64_t valid,
                        float value, T *y, cudaStream_t stream) {
  if (dim < 0 || dim >= rank)
    return cudaErrorInvalidValue;
  int64_t outer, inner;
  around(shape, rank, dim, outer, inner);
  int64_t n = outer * shape[dim] * inner;
  if (n == 0)
    return cudaSuccess;
  maskPaddingKernel<<<blocksFor(n), kThreads, 0, stream>>>(x, shape[dim], inner, valid - dimOffset, value, n, y);
  return launched();
}

#define MEG_INSTANTIATE(T)                                                                                             \
  template cudaError_t sliceBackward<T>(const T *, const int64_t *, int, int, int64_t, int64_t, T *, cudaStream_t);    \
  template cudaError_t selectBackward<T>(const T *, const int64_t *, int, int, int64_t, T *, cudaStream_t);            \
  template cudaError_t maskPadding<T>(const T *, const int64_t *, int, int, int64_t, int64_t, float, T *, cudaStream_t);
MEG_FOR_STORAGE(MEG_INSTANTIATE)
#undef MEG_INSTANTIATE

} // namespace meg::kernels::cuda
