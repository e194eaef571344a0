// Layer normalization over the last dim of a [rows, n] tensor (biased variance, as torch.nn.LayerNorm).
//
// Forward:  mean = sum_j x_j / n,  rstd = 1 / sqrt(sum_j (x_j - mean)^2 / n + eps),
//           xhat_j = (x_j - mean) rstd,  y_j = g_j xhat_j + b_j.
// Backward: with gdy_j = g_j dy_j,
//           dx_j = rstd (gdy_j - mean_i(gdy_i) - xhat_j mean_i(gdy_i xhat_i)),
//           dg_j = sum_rows dy_j xhat_j,  db_j = sum_rows dy_j.
// dg/db are summed over rows in row order inside column blocks: bit-identical for any thread count.
#ifndef MEG_KERNELS_CPU_LAYERNORM_H
#define MEG_KERNELS_CPU_LAYERNORM_H

#include <cstdint>

namespace meg::kernels::cpu {

/// g and b may be null (gain 1, bias 0); mean and rstd (per row) may be null.
void layerNormForward(const float *x, const float *g, const float *b, int64_t rows, int64_t n, float eps, float *y,
                      float *mean, float *rstd);

/// Recomputes the per-row statistics the forward pass writes.
void layerNormStats(const float *x, int64_t rows, int64_t n, float eps, float *mean, float *rstd);

/// mean and rstd are the forward's statistics; g may be null (gain 1). dx, dg and db are overwritten (as the CUDA
/// kernel's). Any of dx, dg, db may be null.
void layerNormBackward(const float *x, const float *g, const float *mean, const float *rstd, const float *dy,
                       int64_t rows, int64_t n, float *dx, float *dg, float *db);

} // namespace meg::kernels::cpu

#endif // MEG_KERNELS_CPU_LAYERNORM_H
