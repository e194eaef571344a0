// AdamW (torch.optim.AdamW) and clip_scale, on device scalars so a step never waits for the host; the math is
// kernels/Math.h's adamFactors / adamwElement / clipCoefficient, shared with the CPU kernel.
// lr and gradScale are device scalars written by earlier steps (lr_schedule, clip_scale).
#include "kernels/cuda/Common.cuh"

#include <cmath>

namespace meg::kernels::cuda {

namespace {

struct AdamScalars {
  double beta1, beta2, eps, weightDecay, bias1, bias2;
};

__global__ void adamwKernel(float *param, const float *grad, float *m, float *v, int64_t n, AdamScalars c,
                            const float *lrPtr, const float *scalePtr) {
  const AdamFactors f = adamFactors(double(*lrPtr), c.beta1, c.beta2, c.eps, c.weightDecay, c.bias1, c.bias2);
  float gradScale = *scalePtr;
  MEG_GRID_STRIDE(i, n) { adamwElement(param[i], m[i], v[i], grad[i] * gradScale, f); }
}

__global__ void clipScaleKernel(const float *sumSq, float maxNorm, float *coeff, float *norm) {
  *coeff = clipCoefficient(*sumSq, maxNorm, norm);
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
                1.0 - std::pow(config.beta2, double(step))};
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
