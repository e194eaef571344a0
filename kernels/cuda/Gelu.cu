// GeLU, forward and backward: kernels/Math.h's gelu / geluGrad (tanh and erf forms), the CPU kernel's math.
// One thread per element, templated on the storage type (kernels/cuda/Storage.cuh).
#include "kernels/cuda/Common.cuh"
#include "kernels/cuda/Storage.cuh"

namespace meg::kernels::cuda {

namespace {

template <typename T> __global__ void geluForwardKernel(bool tanhForm, const T *x, int64_t n, T *y) {
  MEG_GRID_STRIDE(i, n) { y[i] = store<T>(gelu(tanhForm, load(x[i]))); }
}

template <typename T>
__global__ void geluBackwardKernel(bool tanhForm, const T *x, const T *dy, int64_t n, T *dx) {
  MEG_GRID_STRIDE(i, n) { dx[i] = store<T>(geluGrad(tanhForm, load(x[i]), load(dy[i]))); }
}

} // namespace

template <typename T>
cudaError_t geluForward(cpu::GeluForm form, const T *x, int64_t n, T *y, cudaStream_t stream) {
  if (n < 0)
    return cudaErrorInvalidValue;
  if (n == 0)
    return cudaSuccess;
  geluForwardKernel<<<blocksFor(n), kThreads, 0, stream>>>(form == cpu::GeluForm::Tanh, x, n, y);
  return launched();
}

template <typename T>
cudaError_t geluBackward(cpu::GeluForm form, const T *x, const T *dy, int64_t n, T *dx, cudaStream_t stream) {
  if (n < 0)
    return cudaErrorInvalidValue;
  if (n == 0)
    return cudaSuccess;
  geluBackwardKernel<<<blocksFor(n), kThreads, 0, stream>>>(form == cpu::GeluForm::Tanh, x, dy, n, dx);
  return launched();
}

#define MEG_INSTANTIATE(T)                                                                                             \
  template cudaError_t geluForward<T>(cpu::GeluForm, const T *, int64_t, T *, cudaStream_t);                           \
  template cudaError_t geluBackward<T>(cpu::GeluForm, const T *, const T *, int64_t, T *, cudaStream_t);
MEG_FOR_STORAGE(MEG_INSTANTIATE)
#undef MEG_INSTANTIATE

} // namespace meg::kernels::cuda
