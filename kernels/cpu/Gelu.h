// GeLU activations, forward and backward.
//
// Tanh form (HF `gelu_new`, GPT-2): y = 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3)
//   dy/dx = 0.5 (1 + tanh(u)) + 0.5 x (1 - tanh(u)^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2)
// Erf form (HF `gelu`, BERT): y = 0.5 x (1 + erf(x / sqrt(2)))
//   dy/dx = 0.5 (1 + erf(x / sqrt(2))) + x exp(-x^2 / 2) / sqrt(2 pi)
#ifndef MEG_KERNELS_CPU_GELU_H
#define MEG_KERNELS_CPU_GELU_H

#include <cstdint>

namespace meg::kernels::cpu {

enum class GeluForm { Tanh, Erf };

void geluForward(GeluForm form, const float *x, int64_t n, float *y);
/// dx = dy * gelu'(x); dx is overwritten.
void geluBackward(GeluForm form, const float *x, const float *dy, int64_t n, float *dx);

} // namespace meg::kernels::cpu

#endif // MEG_KERNELS_CPU_GELU_H
