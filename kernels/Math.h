// The math and small types the CPU kernels (kernels/cpu) and the CUDA kernels (kernels/cuda) share, written once
// and usable from host and device code (MEG_HOST_DEVICE is __host__ __device__ under nvcc, nothing otherwise):
//
//   GeLU (tanh form, HF `gelu_new`): y = 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3),
//     dy/dx = 0.5 (1 + tanh(u)) + 0.5 x (1 - tanh(u)^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2);
//   GeLU (erf form, HF `gelu`): y = 0.5 x (1 + erf(x / sqrt(2))), dy/dx = 0.5 (1 + erf(x / sqrt(2))) + x exp(-x^2/2)
//     / sqrt(2 pi).
//   AdamW (torch.optim.AdamW, torch 1.13 single-tensor order), at 1-based step t with g = grad * gradScale:
//     p *= 1 - lr wd;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
//     p += -(lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps)
//     (scalar factors in double, rounded to float once; element math in float).
//   clip_scale: coeff = min(1, max_norm / (norm + 1e-6)), norm = sqrt(sum of squares) (torch's clip_grad_norm_).
//   Shapes: row-major strides, element counts, numpy broadcasting (trailing dims aligned, size-1 dims stretch).
// Math functions are the C float ones (tanhf, erff, expf, sqrtf), which host and device both provide.
#ifndef MEG_KERNELS_MATH_H
#define MEG_KERNELS_MATH_H

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define MEG_HOST_DEVICE __host__ __device__
#else
#define MEG_HOST_DEVICE
#endif

namespace meg::kernels {

/// Highest tensor rank the kernels accept (CPU and CUDA).
constexpr int kMaxRank = 8;

enum class BinaryOp { Add, Sub, Mul, Div, Max };
enum class UnaryOp { Exp, Log, Tanh, Scale };
enum class GeluForm { Tanh, Erf };
/// Element types of cast.
enum class Elem { F32, I32, BF16, F16 };

//===-- Shapes -----------------------------------------------------------------------------------------------===//

MEG_HOST_DEVICE inline int64_t numel(const int64_t *shape, int rank) {
  int64_t n = 1;
  for (int d = 0; d < rank; ++d)
    n *= shape[d];
  return n;
}

/// Row-major strides of a contiguous tensor.
MEG_HOST_DEVICE inline void contiguousStrides(const int64_t *shape, int rank, int64_t *strides) {
  int64_t s = 1;
  for (int d = rank - 1; d >= 0; --d) {
    strides[d] = s;
    s *= shape[d];
  }
}

/// Broadcast shape of a and b into `out` (room for max(rankA, rankB) dims); false if they do not broadcast.
MEG_HOST_DEVICE inline bool broadcastShape(const int64_t *shapeA, int rankA, const int64_t *shapeB, int rankB,
                                           int64_t *out, int *rankOut) {
  int rank = rankA > rankB ? rankA : rankB;
  for (int d = 0; d < rank; ++d) {
    int da = d - (rank - rankA), db = d - (rank - rankB);
    int64_t sa = da >= 0 ? shapeA[da] : 1, sb = db >= 0 ? shapeB[db] : 1;
    if (sa != sb && sa != 1 && sb != 1)
      return false;
    out[d] = sa == 1 ? sb : sa;
  }
  *rankOut = rank;
  return true;
}

//===-- GeLU -------------------------------------------------------------------------------------------------===//

constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kInvSqrt2 = 0.7071067811865476f;
constexpr float kInvSqrt2Pi = 0.3989422804014327f;
constexpr float kGeluCubic = 0.044715f;

MEG_HOST_DEVICE inline float gelu(bool tanhForm, float v) {
  return tanhForm ? 0.5f * v * (1.0f + tanhf(kSqrt2OverPi * (v + kGeluCubic * v * v * v)))
                  : 0.5f * v * (1.0f + erff(v * kInvSqrt2));
}

/// dy * gelu'(v).
MEG_HOST_DEVICE inline float geluGrad(bool tanhForm, float v, float dy) {
  if (tanhForm) {
    float t = tanhf(kSqrt2OverPi * (v + kGeluCubic * v * v * v));
    float du = kSqrt2OverPi * (1.0f + 3.0f * kGeluCubic * v * v);
    return dy * (0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * du);
  }
  float cdf = 0.5f * (1.0f + erff(v * kInvSqrt2));
  return dy * (cdf + v * expf(-0.5f * v * v) * kInvSqrt2Pi);
}

//===-- AdamW and clipping -----------------------------------------------------------------------------------===//

/// The per-step factors of AdamW, from double scalars (bias1 = 1 - b1^t, bias2 = 1 - b2^t).
struct AdamFactors {
  float decay, negStepSize, bias2Sqrt, b1, b2, oneMinusB1, oneMinusB2, eps;
};

MEG_HOST_DEVICE inline AdamFactors adamFactors(double lr, double beta1, double beta2, double eps, double weightDecay,
                                               double bias1, double bias2) {
  return AdamFactors{float(1.0 - lr * weightDecay),
                     float(-(lr / bias1)),
                     float(sqrt(bias2)),
                     float(beta1),
                     float(beta2),
                     float(1.0 - beta1),
                     float(1.0 - beta2),
                     float(eps)};
}

/// One element of AdamW in place; g is the (scaled) gradient.
MEG_HOST_DEVICE inline void adamwElement(float &param, float &m, float &v, float g, const AdamFactors &f) {
  float p = param * f.decay;
  float mi = m * f.b1 + f.oneMinusB1 * g;
  float vi = v * f.b2 + f.oneMinusB2 * g * g;
  float denom = sqrtf(vi) / f.bias2Sqrt + f.eps;
  param = p + f.negStepSize * mi / denom;
  m = mi;
  v = vi;
}

/// clip_scale from a squared norm: the coefficient min(1, maxNorm / (norm + 1e-6)); *norm = sqrt(sumSq).
MEG_HOST_DEVICE inline float clipCoefficient(float sumSq, float maxNorm, float *norm) {
  float n = sqrtf(sumSq);
  float c = maxNorm / (n + 1e-6f);
  *norm = n;
  return c < 1.0f ? c : 1.0f;
}

//===-- Loss scaling -----------------------------------------------------------------------------------------===//

/// maximum: max(x, y), NaN if either is NaN (torch.maximum).
MEG_HOST_DEVICE inline float maximum(float x, float y) {
  if (x != x)
    return x;
  if (y != y)
    return y;
  return x > y ? x : y;
}

/// The dynamic loss scaler (Megatron-LM's DynamicGradScaler). growthInterval is --loss-scale-window; a fixed scale is
/// growth and backoff factors of 1 (the scale never changes).
struct LossScalerConfig {
  float growthFactor = 2, backoffFactor = 0.5f, minScale = 1;
  float growthInterval = 1000, hysteresis = 2;
};

/// loss_scale_update: after a step that overflowed (foundInf != 0) the growth tracker restarts and the hysteresis
/// tracker counts down; once it reaches 0 the scale backs off (never below minScale), and each further overflow
/// backs off again until a growth restores the tracker. After a clean step the update count advances and, every
/// growthInterval clean steps in a row, the scale grows and the hysteresis tracker is reset.
MEG_HOST_DEVICE inline void lossScaleUpdate(float foundInf, float &scale, float &growth, float &hysteresis,
                                            float &updates, const LossScalerConfig &c) {
  if (foundInf != 0.0f) {
    growth = 0;
    hysteresis -= 1;
    if (hysteresis <= 0) {
      float backed = scale * c.backoffFactor;
      scale = backed > c.minScale ? backed : c.minScale;
    }
    return;
  }
  updates += 1;
  growth += 1;
  if (growth == c.growthInterval) {
    growth = 0;
    hysteresis = c.hysteresis;
    scale *= c.growthFactor;
  }
}

} // namespace meg::kernels

#endif // MEG_KERNELS_MATH_H
