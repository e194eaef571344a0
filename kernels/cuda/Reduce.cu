// Reductions and index picks (math as kernels/cpu/Reduce.h and kernels/cpu/Adam.h's sumOfSquares):
//   reduce: out = sum (in double) or max (NaN propagates) of x over the reduced dims; out's layout is x's with those
//     dims removed. One warp per output element: lanes stride over the reduced index space, then a fixed shuffle tree.
//   sumSquares: sum_i x_i^2 in double: a fixed grid of blocks writes partials, one block adds them in block order.
//   pick: out[r] = x[r, ids[r] - colOffset] when in [0, cols), else 0; pickBackward: dx = 0 except
//     dx[r, ids[r] - colOffset] = dy[r];  validMask: out = ids != ignore.
#include "kernels/cuda/Common.cuh"
#include "kernels/cuda/Storage.cuh"

namespace meg::kernels::cuda {

namespace {

struct ReduceGeometry {
  Strided<1> kept;    ///< output index space; stride[0] = x's strides of the kept dims
  Strided<1> reduced; ///< reduced index space; stride[0] = x's strides of the reduced dims
  int64_t outputs = 1, perOutput = 1;
};

/// Templated on the storage type: fp32 max / double sum of the loaded values, one rounded store.
template <typename T> __global__ void reduceKernel(bool isMax, ReduceGeometry g, const T *x, T *out) {
  int lane = threadIdx.x & 31;
  int64_t warp = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  int64_t warps = (int64_t(gridDim.x) * blockDim.x) >> 5;
  for (int64_t o = warp; o < g.outputs; o += warps) {
    int64_t base;
    g.kept.offsets(o, &base);
    if (isMax) {
      float acc = -INFINITY;
      for (int64_t r = lane; r < g.perOutput; r += 32) {
        int64_t off;
        g.reduced.offsets(r, &off);
        acc = maxNaN(acc, load(x[base + off]));
      }
      acc = warpMax(acc);
      if (lane == 0)
        out[o] = store<T>(acc);
    } else {
      double acc = 0;
      for (int64_t r = lane; r < g.perOutput; r += 32) {
        int64_t off;
        g.reduced.offsets(r, &off);
        acc += load(x[base + off]);
      }
      acc = warpSum(acc);
      if (lane == 0)
        out[o] = store<T>(float(acc));
    }
  }
}

constexpr int kSumSquaresBlocks = int(kSumSquaresScratch);

__global__ void sumSquaresPartials(const float *x, int64_t n, double *partial) {
  double sum = 0;
  MEG_GRID_STRIDE(i, n) { sum += double(x[i]) * x[i]; }
  sum = blockSum(sum);
  if (threadIdx.x == 0)
    partial[blockIdx.x] = sum;
}

__global__ void sumSquaresTotal(const double *partial, int blocks, float *out) {
  double sum = 0;
  for (int b = threadIdx.x; b < blocks; b += blockDim.x)
    sum += partial[b];
  sum = blockSum(sum);
  if (threadIdx.x == 0)
    *out = float(sum);
}

__global__ void pickKernel(const float *x, const int32_t *ids, int64_t rows, int64_t cols, int64_t colOffset,
                           float *out) {
  MEG_GRID_STRIDE(r, rows) {
    int64_t c = int64_t(ids[r]) - colOffset;
    out[r] = (c >= 0 && c < cols) ? x[r * cols + c] : 0.0f;
  }
}

__global__ void pickBackwardKernel(const float *dy, const int32_t *ids, int64_t rows, int64_t cols, int64_t colOffset,
                                   float *dx) {
  MEG_GRID_STRIDE(i, rows * cols) {
    int64_t r = i / cols, c = i % cols;
    dx[i] = c == int64_t(ids[r]) - colOffset ? dy[r] : 0.0f;
  }
}

__global__ void validMaskKernel(const int32_t *ids, int64_t n, int32_t ignoreId, float *out) {
  MEG_GRID_STRIDE(i, n) { out[i] = ids[i] != ignoreId ? 1.0f : 0.0f; }
}

} // namespace

template <typename T>
cudaError_t reduce(bool isMax, const T *x, const int64_t *shape, int rank, const bool *reduceDim, T *out,
                   cudaStream_t stream) {
  if (rank > kMaxRank || rank < 0)
    return cudaErrorInvalidValue;
  ReduceGeometry g;
  int64_t strides[kMaxRank];
  contiguousStrides(shape, rank, strides);
  for (int d = 0; d < rank; ++d) {
    Strided<1> &s = reduceDim[d] ? g.reduced : g.kept;
    s.size[s.rank] = shape[d];
    s.stride[0][s.rank] = strides[d];
    ++s.rank;
  }
  g.outputs = product(g.kept.size, g.kept.rank);
  g.perOutput = product(g.reduced.size, g.reduced.rank);
  if (g.outputs == 0)
    return cudaSuccess;
  // perOutput == 0 leaves each warp's identity (0 or -inf), as the CPU kernel.
  reduceKernel<<<blocksFor(g.outputs * 32), kThreads, 0, stream>>>(isMax, g, x, out);
  return launched();
}

cudaError_t sumSquares(const float *x, int64_t n, float *out, double *scratch, cudaStream_t stream) {
  if (n < 0 || !scratch)
    return cudaErrorInvalidValue;
  sumSquaresPartials<<<kSumSquaresBlocks, kThreads, 0, stream>>>(x, n, scratch);
  MEG_CUDA_TRY(launched());
  sumSquaresTotal<<<1, kThreads, 0, stream>>>(scratch, kSumSquaresBlocks, out);
  return launched();
}

cudaError_t pick(const float *x, const int32_t *ids, int64_t rows, int64_t cols, int64_t colOffset, float *out,
                 cudaStream_t stream) {
  if (rows < 0 || cols < 0)
    return cudaErrorInvalidValue;
  if (rows == 0)
    return cudaSuccess;
  pickKernel<<<blocksFor(rows), kThreads, 0, stream>>>(x, ids, rows, cols, colOffset, out);
  return launched();
}

cudaError_t pickBackward(const float *dy, const int32_t *ids, int64_t rows, int64_t cols, int64_t colOffset,
                         float *dx, cudaStream_t stream) {
  if (rows < 0 || cols < 0)
    return cudaErrorInvalidValue;
  if (rows * cols == 0)
    return cudaSuccess;
  pickBackwardKernel<<<blocksFor(rows * cols), kThreads, 0, stream>>>(dy, ids, rows, cols, colOffset, dx);
  return launched();
}

cudaError_t validMask(const int32_t *ids, int64_t n, int32_t ignoreId, float *out, cudaStream_t stream) {
  if (n < 0)
    return cudaErrorInvalidValue;
  if (n == 0)
    return cudaSuccess;
  validMaskKernel<<<blocksFor(n), kThreads, 0, stream>>>(ids, n, ignoreId, out);
  return launched();
}

#define MEG_INSTANTIATE(T)                                                                                             \
  template cudaError_t reduce<T>(bool, const T *, const int64_t *, int, const bool *, T *, cudaStream_t);
MEG_FOR_STORAGE(MEG_INSTANTIATE)
#undef MEG_INSTANTIATE

} // namespace meg::kernels::cuda
