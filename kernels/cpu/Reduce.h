// Reductions and index picks.
//
// reduceSum / reduceMax: out = sum / max of x over the dims d with reduceDim[d] true. out's layout is x's shape
//   with those dims removed (or kept as size 1: the same layout). Sums accumulate in double, in row-major order of
//   the reduced dims. An empty reduction gives 0 (sum) or -inf (max); max propagates NaN.
// reduceSumBackward: dx = dy broadcast back over the reduced dims.
// reduceMaxBackward: ties share the gradient equally, as torch.amax does: dx = dy / count where x == max, else 0,
//   with count the number of elements equal to the max in that reduction.
// pick:     out[r] = x[r, ids[r] - colOffset] if 0 <= ids[r] - colOffset < cols, else 0 (x is [rows, cols], a
//   vocabulary slice starting at colOffset on a tensor-parallel rank). Backward: dx[r, ids[r] - colOffset] = dy[r],
//   every other element 0.
// validMask: out[i] = 1 if ids[i] != ignoreId else 0.
#ifndef MEG_KERNELS_CPU_REDUCE_H
#define MEG_KERNELS_CPU_REDUCE_H

#include <cstdint>

namespace meg::kernels::cpu {

void reduceSum(const float *x, const int64_t *shape, int rank, const bool *reduceDim, float *out);
/// `shape` is x's shape; dx is overwritten.
void reduceSumBackward(const float *dy, const int64_t *shape, int rank, const bool *reduceDim, float *dx);

void reduceMax(const float *x, const int64_t *shape, int rank, const bool *reduceDim, float *out);
/// y is reduceMax's output for x; dx is overwritten.
void reduceMaxBackward(const float *x, const float *y, const float *dy, const int64_t *shape, int rank,
                       const bool *reduceDim, float *dx);

void pick(const float *x, const int32_t *ids, int64_t rows, int64_t cols, int64_t colOffset, float *out);
/// dx ([rows, cols]) is overwritten.
void pickBackward(const float *dy, const int32_t *ids, int64_t rows, int64_t cols, int64_t colOffset, float *dx);

void validMask(const int32_t *ids, int64_t n, int32_t ignoreId, float *out);

} // namespace meg::kernels::cpu

#endif // MEG_KERNELS_CPU_REDUCE_H
