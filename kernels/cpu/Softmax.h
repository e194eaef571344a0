// Softmax over the last dim of a [rows, n] tensor.
//
// y_j = exp(x_j - max x) / sum_i exp(x_i - max x);   dx_j = y_j (dy_j - sum_i dy_i y_i).
#ifndef MEG_KERNELS_CPU_SOFTMAX_H
#define MEG_KERNELS_CPU_SOFTMAX_H

#include <cstdint>

namespace meg::kernels::cpu {

void softmaxForward(const float *x, int64_t rows, int64_t n, float *y);
/// dx is overwritten (dx == dy is allowed).
void softmaxBackward(const float *y, const float *dy, int64_t rows, int64_t n, float *dx);

} // namespace meg::kernels::cpu

#endif // MEG_KERNELS_CPU_SOFTMAX_H
