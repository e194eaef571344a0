// Softmax over the last dim of [rows, n] (kernels/cpu/Softmax.h):
//   y_j = exp(x_j - max x) / sum_i exp(x_i - max x);   dx_j = y_j (dy_j - sum_i dy_i y_i).
// One block per row; the sum of exponentials and the backward dot product accumulate in double through the fixed
// block tree. The forward is templated on the storage type (kernels/cuda/Storage.cuh): the exponentials stay fp32
// until the normalized value is stored once (y is not used as fp32 scratch).
#include "kernels/cuda/Common.cuh"
#include "kernels/cuda/Storage.cuh"

namespace meg::kernels::cuda {

namespace {

template <typename T> __global__ void forwardKernel(const T *x, int64_t rows, int64_t n, T *y) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T *xr = x + r * n;
    T *yr = y + r * n;
    float mx = -INFINITY;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
      mx = fmaxf(mx, load(xr[j]));
    mx = blockMax(mx);
    double sum = 0;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
      sum += expf(load(xr[j]) - mx);
    float inv = float(1.0 / blockSum(sum));
    // Recomputed (the same expf of the same operands): the product is the fp32 kernel's e * inv.
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
      yr[j] = store<T>(expf(load(xr[j]) - mx) * inv);
  }
}

__global__ void backwardKernel(const float *y, const float *dy, int64_t rows, int64_t n, float *dx) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float *yr = y + r * n, *dyr = dy + r * n;
    double dot = 0;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
      dot += double(dyr[j]) * yr[j];
    float d = float(blockSum(dot));
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
      dx[r * n + j] = yr[j] * (dyr[j] - d);
  }
}

} // namespace

template <typename T> cudaError_t softmaxForward(const T *x, int64_t rows, int64_t n, T *y, cudaStream_t stream) {
  if (rows < 0 || n < 0)
    return cudaErrorInvalidValue;
  if (rows == 0 || n == 0)
    return cudaSuccess;
  forwardKernel<<<blocksFor(rows, 1), kThreads, 0, stream>>>(x, rows, n, y);
  return launched();
}

cudaError_t softmaxBackward(const float *y, const float *dy, int64_t rows, int64_t n, float *dx, cudaStream_t stream) {
  if (rows < 0 || n < 0)
    return cudaErrorInvalidValue;
  if (rows == 0 || n == 0)
    return cudaSuccess;
  backwardKernel<<<blocksFor(rows, 1), kThreads, 0, stream>>>(y, dy, rows, n, dx);
  return launched();
}

#define MEG_INSTANTIATE(T) template cudaError_t softmaxForward<T>(const T *, int64_t, int64_t, T *, cudaStream_t);
MEG_FOR_STORAGE(MEG_INSTANTIATE)
#undef MEG_INSTANTIATE

} // namespace meg::kernels::cuda
