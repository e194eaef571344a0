// AdamW (torch.optim.AdamW semantics), the sum of squares for global-norm gradient clipping and the overflow test
// of loss scaling.
//
// At step t >= 1, per element, with g = grad * gradScale (the clip_grad_norm_ coefficient):
//   p *= 1 - lr * wd                            (decoupled weight decay, applied first)
//   m  = b1 m + (1 - b1) g;   v = b2 v + (1 - b2) g^2
//   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
// which equals p -= lr * mhat / (sqrt(vhat) + eps) with mhat = m / (1 - b1^t), vhat = v / (1 - b2^t), computed in
// torch's order (torch 1.13 single-tensor AdamW): kernels/Math.h's adamFactors and adamwElement, shared with the
// CUDA kernel. Scalar factors are computed in double, element math in float.
// accumulate sums the micro-batches' gradients of a step in fp32 (acc += scale x, from zero at the first).
// sumOfSquares accumulates in double over fixed blocks (boundaries depend on n only) summed in block order.
#ifndef MEG_KERNELS_CPU_ADAM_H
#define MEG_KERNELS_CPU_ADAM_H

#include <cstdint>

namespace meg::kernels::cpu {

struct AdamConfig {
  // Doubles, like torch's Python scalars: derived factors such as 1 - beta1 are rounded to float only once.
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weightDecay = 0.0;
};

/// One AdamW update of n parameters in place with the gradient scaled by gradScale; `step` is the 1-based step
/// count t.
void adamwStep(float *param, const float *grad, float *m, float *v, int64_t n, const AdamConfig &config,
               float gradScale, int64_t step);

/// Gradient accumulation: acc = (first ? 0 : acc) + scale * x, then out = acc (out may be null).
void accumulate(float *acc, const float *x, int64_t n, float scale, bool first, float *out);

/// sum_i x_i^2 in double; bit-identical for any thread count.
double sumOfSquares(const float *x, int64_t n);

/// Whether any of x[0..n) is inf or NaN (the loss scaler's overflow test).
bool anyNonfinite(const float *x, int64_t n);

} // namespace meg::kernels::cpu

#endif // MEG_KERNELS_CPU_ADAM_H
