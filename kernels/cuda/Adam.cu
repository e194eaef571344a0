// AdamW (torch.optim.AdamW) and clip_scale, on device scalars so a step never waits for the host; the math is
// kernels/Math.h's adamFactors / adamwElement / clipCoefficient, shared with the CPU kernel.
// lr and gradScale are device scalars written by earlier steps (lr_schedule, clip_scale); the bias corrections
// 1 - beta^step are computed on the host (std::pow) and passed by value or, for CUDA graph replays, read from device
// memory the host fills before each step.
#include "kernels/cuda/Common.cuh"

#include <cmath>

namespace meg::kernels::cuda {

namespace {

struct AdamScalars {
  double beta1, beta2, eps, weightDecay, bias1, bias2;
};

__global__ void adamwKernel(float *param, const float *grad, float *m, float *v, int64_t n, AdamScalars c,
                            const float *lrPtr, const float *scalePtr, const double *biasPtr) {
  if (biasPtr) {
    c.bias1 = biasPtr[0];
    c.bias2 = biasPtr[1];
  }
  const AdamFactors f = adamFactors(double(*lrPtr), c.beta1, c.beta2, c.eps, c.weightDecay, c.bias1, c.bias2);
  float gradScale = *scalePtr;
  MEG_GRID_STRIDE(i, n) { adamwElement(param[i], m[i], v[i], grad[i] * gradScale, f); }
}

__global__ void accumulateKernel(float *acc, const float *x, int64_t n, float scale, bool first, float *out) {
  MEG_GRID_STRIDE(i, n) {
    float a = (first ? 0.0f : acc[i]) + scale * x[i];
    acc[i] = a;
    if (out)
      out[i] = a;
  }
}

__global__ void clipScaleKernel(const float *sumSq, float maxNorm, float *coeff, float *norm) {
  *coeff = clipCoefficient(*sumSq, maxNorm, norm);
}

} // namespace

void adamwBiasCorrections(const cpu::AdamConfig &config, int64_t step, double out[2]) {
  out[0] = 1.0 - std::pow(config.beta1, double(step));
  out[1] = 1.0 - std::pow(config.beta2, double(step));
}

cudaError_t adamwStep(float *param, const float *grad, float *m, float *v, int64_t n, const cpu::AdamConfig &config,
                      const float *lr, const float *gradScale, int64_t step, cudaStream_t stream) {
  if (n < 0 || step < 1)
    return cudaErrorInvalidValue;
  if (n == 0)
    return cudaSuccess;
  double bias[2];
  adamwBiasCorrections(config, step, bias);
  AdamScalars c{config.beta1, config.beta2, config.eps, config.weightDecay, bias[0], bias[1]};
  adamwKernel<<<blocksFor(n), kThreads, 0, stream>>>(param, grad, m, v, n, c, lr, gradScale, nullptr);
  return launched();
}

cudaError_t adamwStep(float *param, const float *grad, float *m, float *v, int64_t n, const cpu::AdamConfig &config,
                      const float *lr, const float *gradScale, const double *biasCorrections, cudaStream_t stream) {
  if (n < 0 || !biasCorrections)
    return cudaErrorInvalidValue;
  if (n == 0)
    return cudaSuccess;
  AdamScalars c{config.beta1, config.beta2, config.eps, config.weightDecay, 0.0, 0.0};
  adamwKernel<<<blocksFor(n), kThreads, 0, stream>>>(param, grad, m, v, n, c, lr, gradScale, biasCorrections);
  return launched();
}

cudaError_t accumulate(float *acc, const float *x, int64_t n, float scale, bool first, float *out,
                       cudaStream_t stream) {
  if (n == 0)
    return cudaSuccess;
  accumulateKernel<<<blocksFor(n), kThreads, 0, stream>>>(acc, x, n, scale, first, out == acc ? nullptr : out);
  return launched();
}

cudaError_t clipScale(const float *sumSq, float maxNorm, float *coeff, float *norm, cudaStream_t stream) {
  if (!(maxNorm > 0.0f))
    return cudaErrorInvalidValue;
  clipScaleKernel<<<1, 1, 0, stream>>>(sumSq, maxNorm, coeff, norm);
  return launched();
}

} // namespace meg::kernels::cuda
