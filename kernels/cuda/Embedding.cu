// Embedding lookup on a (possibly vocabulary-split) table (kernels/cpu/Embedding.h):
//   forward:  out[t, :] = table[ids[t] - rowOffset, :] when that row is in [0, rows), else 0;
//   backward: dTable[row, :] = sum over tokens t with ids[t] - rowOffset == row of dy[t, :], added in token order.
// Backward is deterministic without atomics: thread (column d, row band) scans every token in order and adds the
// ones whose row falls in its band, so each dTable element has one writer and a fixed summation order (the CPU's).
#include "kernels/cuda/Common.cuh"
#include "kernels/cuda/Storage.cuh"

namespace meg::kernels::cuda {

namespace {

/// Row bands of the backward pass (more bands: more parallelism, more rescans of ids).
constexpr int64_t kRowBands = 64;

/// A move of storage bits (templated on the storage type; rows outside the shard are +0.0).
template <typename T>
__global__ void forwardKernel(const T *table, int64_t rows, int64_t dim, const int32_t *ids, int64_t tokens,
                              int64_t rowOffset, T *out) {
  MEG_GRID_STRIDE(i, tokens * dim) {
    int64_t t = i / dim, d = i % dim;
    int64_t row = int64_t(ids[t]) - rowOffset;
    out[i] = (row >= 0 && row < rows) ? table[row * dim + d] : store<T>(0.0f);
  }
}

__global__ void backwardKernel(const float *dy, const int32_t *ids, int64_t tokens, int64_t rowOffset, int64_t rows,
                               int64_t dim, int64_t bandRows, float *dTable) {
  int64_t d = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  int64_t lo = int64_t(blockIdx.y) * bandRows, hi = lo + bandRows < rows ? lo + bandRows : rows;
  if (d >= dim)
    return;
  for (int64_t t = 0; t < tokens; ++t) {
    int64_t row = int64_t(ids[t]) - rowOffset;
    if (row >= lo && row < hi)
      dTable[row * dim + d] += dy[t * dim + d];
  }
}

} // namespace

template <typename T>
cudaError_t embeddingForward(const T *table, int64_t rows, int64_t dim, const int32_t *ids, int64_t tokens,
                             int64_t rowOffset, T *out, cudaStream_t stream) {
  if (rows < 0 || dim < 0 || tokens < 0)
    return cudaErrorInvalidValue;
  if (tokens * dim == 0)
    return cudaSuccess;
  forwardKernel<<<blocksFor(tokens * dim), kThreads, 0, stream>>>(table, rows, dim, ids, tokens, rowOffset, out);
  return launched();
}

cudaError_t embeddingBackward(const float *dy, const int32_t *ids, int64_t tokens, int64_t rowOffset, int64_t rows,
                              int64_t dim, float *dTable, cudaStream_t stream) {
  if (rows < 0 || dim < 0 || tokens < 0 || (dim + kThreads - 1) / kThreads > kMaxBlocks)
    return cudaErrorInvalidValue;
  if (rows * dim == 0)
    return cudaSuccess;
  MEG_CUDA_TRY(cudaMemsetAsync(dTable, 0, size_t(rows * dim) * sizeof(float), stream));
  if (tokens == 0)
    return cudaSuccess;
  int64_t bands = rows < kRowBands ? rows : kRowBands;
  int64_t bandRows = (rows + bands - 1) / bands;
  dim3 grid(unsigned((dim + kThreads - 1) / kThreads), unsigned(bands));
  backwardKernel<<<grid, kThreads, 0, stream>>>(dy, ids, tokens, rowOffset, rows, dim, bandRows, dTable);
  return launched();
}

#define MEG_INSTANTIATE(T)                                                                                             \
  template cudaError_t embeddingForward<T>(const T *, int64_t, int64_t, const int32_t *, int64_t, int64_t, T *,         \
                                           cudaStream_t);
MEG_FOR_STORAGE(MEG_INSTANTIATE)
#undef MEG_INSTANTIATE

} // namespace meg::kernels::cuda
