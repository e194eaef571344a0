// Softmax over the last dim of [rows, n] (kernels/cpu/Softmax.h):
//   y_j = exp(x_j - max x) / sum_i exp(x_i - max x);   dx_j = y_j (dy_j - sum_i dy_i y_i).
// One block per row; the sum of exponentials and the backward dot product accumulate in double through the fixed
// block tree.
#include "kernels/cuda/Common.cuh"

namespace meg::kernels::cuda {

namespace {

__global__ void forwardKernel(const float *x, int64_t rows, int64_t n, float *y) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float *xr = x + r * n;
    float *yr = y + r * n;
    float mx = -INFINITY;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
      mx = fmaxf(mx, xr[j]);
    mx = blockMax(mx);
    double sum = 0;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
      float e = expf(xr[j] - mx);
      yr[j] = e;
      sum += e;
    }
    float inv = float(1.0 / blockSum(sum));
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
      yr[j] *= inv;
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

cudaError_t softmaxForward(const float *x, int64_t rows, int64_t n, float *y, cudaStream_t stream) {
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

} // namespace meg::kernels::cuda
