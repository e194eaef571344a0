// Data movement: transpose (general permutation), slice, select, copy, and their backward.
//
// transpose: y[i_0, ..., i_{r-1}] = x[j] with j[perm[d]] = i_d, i.e. y's dim d is x's dim perm[d] (numpy.transpose).
//   Its backward is the transpose by the inverse permutation.
// slice:  y = x[..., start : start + length, ...] along `dim`; backward writes dy into a zeroed dx of x's shape.
// select: y = x[..., index, ...] along `dim` (the dim disappears); backward likewise.
#ifndef MEG_KERNELS_CPU_LAYOUT_H
#define MEG_KERNELS_CPU_LAYOUT_H

#include <cstdint>

namespace meg::kernels::cpu {

/// y = beta * y + transpose(x); with beta == 0, y is only written. `shape` is x's shape.
void transpose(const float *x, const int64_t *shape, int rank, const int *perm, float *y, float beta = 0);

/// inverse[perm[d]] = d.
void invertPermutation(const int *perm, int rank, int *inverse);

/// `shape` is x's shape; y has shape[dim] replaced by `length`.
void slice(const float *x, const int64_t *shape, int rank, int dim, int64_t start, int64_t length, float *y);

/// `shape` is dx's (the full tensor's) shape; dx is zeroed, then the slice is written from dy.
void sliceBackward(const float *dy, const int64_t *shape, int rank, int dim, int64_t start, int64_t length, float *dx);

/// `shape` is x's shape; y has x's shape without `dim`.
void select(const float *x, const int64_t *shape, int rank, int dim, int64_t index, float *y);

/// `shape` is dx's shape; dx is zeroed, then dx[..., index, ...] = dy.
void selectBackward(const float *dy, const int64_t *shape, int rank, int dim, int64_t index, float *dx);

/// y[i] = x[i].
void copy(const float *x, int64_t n, float *y);

/// x[i] = value.
void fill(float *x, int64_t n, float value);

} // namespace meg::kernels::cpu

#endif // MEG_KERNELS_CPU_LAYOUT_H
