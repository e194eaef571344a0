// GeLU activations; the math is kernels/Math.h's.
#include "kernels/cpu/Gelu.h"

#include "kernels/cpu/Parallel.h"

#include <cmath>

namespace meg::kernels::cpu {

namespace {
template <typename Fn> void elementwise(int64_t n, Fn &&fn) {
  parallelFor(n, kChunkWork / 16, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i)
      fn(i);
  });
}
} // namespace

void geluForward(GeluForm form, const float *x, int64_t n, float *y) {
  bool tanhForm = form == GeluForm::Tanh;
  elementwise(n, [&](int64_t i) { y[i] = gelu(tanhForm, x[i]); });
}

void geluBackward(GeluForm form, const float *x, const float *dy, int64_t n, float *dx) {
  bool tanhForm = form == GeluForm::Tanh;
  elementwise(n, [&](int64_t i) { dx[i] = geluGrad(tanhForm, x[i], dy[i]); });
}

} // namespace meg::kernels::cpu
