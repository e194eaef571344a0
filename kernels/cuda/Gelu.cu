// GeLU, forward and backward: kernels/Math.h's gelu / geluGrad (tanh and erf forms), the CPU kernel's math.
// One thread per element.
#include "kernels/cuda/Common.cuh"

namespace meg::kernels::cuda {

namespace {

__global__ void geluForwardKernel(bool tanhForm, const float *x, int64_t n, float *y) {
  MEG_GRID_STRIDE(i, n) { y[i] = gelu(tanhForm, x[i]); }
}

__global__ void geluBackwardKernel(bool tanhForm, const float *x, const float *dy, int64_t n, float *dx) {
  MEG_GRID_STRIDE(i, n) { dx[i] = geluGrad(tanhForm, x[i], dy[i]); }
}

} // namespace

cudaError_t geluForward(cpu::GeluForm form, const float *x, int64_t n, float *y, cudaStream_t stream) {
  if (n < 0)
    return cudaErrorInvalidValue;
  if (n == 0)
    return cudaSuccess;
  geluForwardKernel<<<blocksFor(n), kThreads, 0, stream>>>(form == cpu::GeluForm::Tanh, x, n, y);
  return launched();
}

cudaError_t geluBackward(cpu::GeluForm form, const float *x, const float *dy, int64_t n, float *dx,
                         cudaStream_t stream) {
  if (n < 0)
    return cudaErrorInvalidValue;
  if (n == 0)
    return cudaSuccess;
  geluBackwardKernel<<<blocksFor(n), kThreads, 0, stream>>>(form == cpu::GeluForm::Tanh, x, dy, n, dx);
  return launched();
}

} // namespace meg::kernels::cuda
