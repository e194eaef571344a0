// GeLU activations, forward and backward: tanh form (HF `gelu_new`, GPT-2) and erf form (HF `gelu`, BERT); the math
// is kernels/Math.h's gelu / geluGrad, shared with the CUDA kernels.
#ifndef MEG_KERNELS_CPU_GELU_H
#define MEG_KERNELS_CPU_GELU_H

#include "kernels/Math.h"

#include <cstdint>

namespace meg::kernels::cpu {

using kernels::GeluForm;

void geluForward(GeluForm form, const float *x, int64_t n, float *y);
/// dx = dy * gelu'(x); dx is overwritten.
void geluBackward(GeluForm form, const float *x, const float *dy, int64_t n, float *dx);

} // namespace meg::kernels::cpu

#endif // MEG_KERNELS_CPU_GELU_H
