// GeLU activations; see Gelu.h for the math.
#include "kernels/cpu/Gelu.h"

#include "kernels/cpu/Parallel.h"

#include <cmath>

namespace meg::kernels::cpu {

namespace {
constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kInvSqrt2 = 0.7071067811865476f;
constexpr float kInvSqrt2Pi = 0.3989422804014327f;
constexpr float kCubic = 0.044715f;

template <typename Fn> void elementwise(int64_t n, Fn &&fn) {
  parallelFor(n, kChunkWork / 16, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i)
      fn(i);
  });
}
} // namespace

void geluForward(GeluForm form, const float *x, int64_t n, float *y) {
  if (form == GeluForm::Tanh) {
    elementwise(n, [&](int64_t i) {
      float v = x[i];
      y[i] = 0.5f * v * (1.0f + std::tanh(kSqrt2OverPi * (v + kCubic * v * v * v)));
    });
    return;
  }
  elementwise(n, [&](int64_t i) {
    float v = x[i];
    y[i] = 0.5f * v * (1.0f + std::erf(v * kInvSqrt2));
  });
}

void geluBackward(GeluForm form, const float *x, const float *dy, int64_t n, float *dx) {
  if (form == GeluForm::Tanh) {
    elementwise(n, [&](int64_t i) {
      float v = x[i];
      float t = std::tanh(kSqrt2OverPi * (v + kCubic * v * v * v));
      float du = kSqrt2OverPi * (1.0f + 3.0f * kCubic * v * v);
      dx[i] = dy[i] * (0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * du);
    });
    return;
  }
  elementwise(n, [&](int64_t i) {
    float v = x[i];
    float cdf = 0.5f * (1.0f + std::erf(v * kInvSqrt2));
    dx[i] = dy[i] * (cdf + v * std::exp(-0.5f * v * v) * kInvSqrt2Pi);
  });
}

} // namespace meg::kernels::cpu
