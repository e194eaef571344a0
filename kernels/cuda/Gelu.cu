// GeLU, forward and backward (math as kernels/cpu/Gelu.h):
//   tanh form: y = 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3),
//              dy/dx = 0.5 (1 + tanh(u)) + 0.5 x (1 - tanh(u)^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2);
//   erf form:  y = 0.5 x (1 + erf(x / sqrt(2))),  dy/dx = 0.5 (1 + erf(x / sqrt(2))) + x exp(-x^2 / 2) / sqrt(2 pi).
// One thread per element, float math in the CPU kernel's order.
#include "kernels/cuda/Common.cuh"

namespace meg::kernels::cuda {

namespace {

constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kInvSqrt2 = 0.7071067811865476f;
constexpr float kInvSqrt2Pi = 0.3989422804014327f;
constexpr float kCubic = 0.044715f;

__global__ void geluForwardKernel(bool tanhForm, const float *x, int64_t n, float *y) {
  MEG_GRID_STRIDE(i, n) {
    float v = x[i];
    y[i] = tanhForm ? 0.5f * v * (1.0f + tanhf(kSqrt2OverPi * (v + kCubic * v * v * v)))
                    : 0.5f * v * (1.0f + erff(v * kInvSqrt2));
  }
}

__global__ void geluBackwardKernel(bool tanhForm, const float *x, const float *dy, int64_t n, float *dx) {
  MEG_GRID_STRIDE(i, n) {
    float v = x[i];
    if (tanhForm) {
      float t = tanhf(kSqrt2OverPi * (v + kCubic * v * v * v));
      float du = kSqrt2OverPi * (1.0f + 3.0f * kCubic * v * v);
      dx[i] = dy[i] * (0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * du);
    } else {
      float cdf = 0.5f * (1.0f + erff(v * kInvSqrt2));
      dx[i] = dy[i] * (cdf + v * expf(-0.5f * v * v) * kInvSqrt2Pi);
    }
  }
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
