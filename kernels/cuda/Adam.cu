// AdamW (torch.optim.AdamW, kernels/cpu/Adam.h) and clip_scale, on device scalars so a step never waits for the host:
//   g = grad * gradScale;  p *= 1 - lr wd;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
//   p += -(lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps)   (factors in double, element math in float,
//   in the CPU kernel's order);  clip: coeff = min(1, max_norm / (sqrt(sumsq) + 1e-6)).
// lr and gradScale are device scalars written by earlier steps (lr_schedule, clip_scale).
#include "kernels/cuda/Common.cuh"

#include <cmath>

namespace meg::kernels::cuda {

namespace {

struct AdamScalars {
  double beta1, beta2, eps, weightDecay, bias1, bias2Sqrt;
};

__global__ void adamwKernel(float *param, const float *grad, float *m, float *v, int64_t n, AdamScalars c,
                            const float *lrPtr, const float *scalePtr) {
  double lr = double(*lrPtr);
  float gradScale = *scalePtr;
  const float decay = float(1.0 - lr * c.weightDecay);
  const float negStepSize = float(-(lr / c.bias1));
  const float bias2Sqrt = float(c.bias2Sqrt);
  const float b1 = float(c.beta1), b2 = float(c.beta2);
  const float oneMinusB1 = float(1.0 - c.beta1), oneMinusB2 = float(1.0 - c.beta2);
  const float eps = float(c.eps);
  MEG_GRID_STRIDE(i, n) {
    float g = grad[i] * gradScale;
    float p = param[i] * decay;
    float mi = m[i] * b1 + oneMinusB1 * g;
    float vi = v[i] * b2 + oneMinusB2 * g * g;
    float denom = sqrtf(vi) / bias2Sqrt + eps;
    param[i] = p + negStepSize * mi / denom;
    m[i] = mi;
    v[i] = vi;
  }
}

__global__ void clipScaleKernel(const float *sumSq, float maxNorm, float *coeff, float *norm) {
  float n = sqrtf(*sumSq);
  float c = maxNorm / (n + 1e-6f);
  *coeff = c < 1.0f ? c : 1.0f;
  *norm = n;
}

} // namespace

cudaError_t adamwStep(float *param, const float *grad, float *m, float *v, int64_t n, const cpu::AdamConfig &config,
                      const float *lr, const float *gradScale, int64_t step, cudaStream_t stream) {
  if (n < 0 || step < 1)
    return cudaErrorInvalidValue;
  if (n == 0)
    return cudaSuccess;
  AdamScalars c{config.beta1,
                config.beta2,
                config.eps,
                config.weightDecay,
                1.0 - std::pow(config.beta1, double(step)),
                std::sqrt(1.0 - std::pow(config.beta2, double(step)))};
  adamwKernel<<<blocksFor(n), kThreads, 0, stream>>>(param, grad, m, v, n, c, lr, gradScale);
  return launched();
}

cudaError_t clipScale(const float *sumSq, float maxNorm, float *coeff, float *norm, cudaStream_t stream) {
  if (!(maxNorm > 0.0f))
    return cudaErrorInvalidValue;
  clipScaleKernel<<<1, 1, 0, stream>>>(sumSq, maxNorm, coeff, norm);
  return launched();
}

} // namespace meg::kernels::cuda
