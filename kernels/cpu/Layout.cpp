// Data movement kernels; see Layout.h for the semantics.
#include "kernels/cpu/Layout.h"

#include "kernels/cpu/Parallel.h"
#include "kernels/cpu/Shape.h"

#include <cassert>
#include <cstring>

namespace meg::kernels::cpu {

void transpose(const float *x, const int64_t *shape, int rank, const int *perm, float *y, float beta) {
  assert(rank <= kMaxRank && "rank too high");
  int64_t xStrides[kMaxRank];
  contiguousStrides(shape, rank, xStrides);
  StridedLoop<2> loop;
  loop.rank = rank;
  for (int d = 0; d < rank; ++d) {
    loop.size[d] = shape[perm[d]];
    loop.stride[1][d] = xStrides[perm[d]];
  }
  contiguousStrides(loop.size, rank, loop.stride[0]);
  loop.coalesce();
  parallelRows(loop, [&](const int64_t *off, int64_t len, const int64_t *inc) {
    float *dst = y + off[0];
    const float *src = x + off[1];
    int64_t s = inc[1];
    if (beta == 0) {
      if (s == 1) {
        std::memcpy(dst, src, sizeof(float) * len);
        return;
      }
      for (int64_t i = 0; i < len; ++i)
        dst[i] = src[i * s];
      return;
    }
    for (int64_t i = 0; i < len; ++i)
      dst[i] = beta * dst[i] + src[i * s];
  });
}

void invertPermutation(const int *perm, int rank, int *inverse) {
  for (int d = 0; d < rank; ++d)
    inverse[perm[d]] = d;
}

namespace {
/// A tensor viewed as [outer, shape[dim], inner] around `dim`.
struct AroundDim {
  int64_t outer = 1, size = 1, inner = 1;
  AroundDim(const int64_t *shape, int rank, int dim) {
    assert(dim >= 0 && dim < rank && "dim out of range");
    for (int d = 0; d < dim; ++d)
      outer *= shape[d];
    size = shape[dim];
    for (int d = dim + 1; d < rank; ++d)
      inner *= shape[d];
  }
};
} // namespace

void slice(const float *x, const int64_t *shape, int rank, int dim, int64_t start, int64_t length, float *y) {
  AroundDim v(shape, rank, dim);
  assert(start >= 0 && length >= 0 && start + length <= v.size && "slice out of range");
  int64_t block = length * v.inner;
  parallelFor(v.outer, grainFor(block), [&](int64_t begin, int64_t end) {
    for (int64_t o = begin; o < end; ++o)
      std::memcpy(y + o * block, x + (o * v.size + start) * v.inner, sizeof(float) * block);
  });
}

void sliceBackward(const float *dy, const int64_t *shape, int rank, int dim, int64_t start, int64_t length, float *dx) {
  AroundDim v(shape, rank, dim);
  assert(start >= 0 && length >= 0 && start + length <= v.size && "slice out of range");
  int64_t block = length * v.inner;
  int64_t row = v.size * v.inner;
  parallelFor(v.outer, grainFor(row), [&](int64_t begin, int64_t end) {
    for (int64_t o = begin; o < end; ++o) {
      float *dst = dx + o * row;
      std::memset(dst, 0, sizeof(float) * start * v.inner);
      std::memcpy(dst + start * v.inner, dy + o * block, sizeof(float) * block);
      std::memset(dst + (start + length) * v.inner, 0, sizeof(float) * (v.size - start - length) * v.inner);
    }
  });
}

void select(const float *x, const int64_t *shape, int rank, int dim, int64_t index, float *y) {
  slice(x, shape, rank, dim, index, 1, y);
}

void selectBackward(const float *dy, const int64_t *shape, int rank, int dim, int64_t index, float *dx) {
  sliceBackward(dy, shape, rank, dim, index, 1, dx);
}

void copy(const float *x, int64_t n, float *y) {
  parallelFor(n, kChunkWork,
              [&](int64_t begin, int64_t end) { std::memcpy(y + begin, x + begin, sizeof(float) * (end - begin)); });
}

void fill(float *x, int64_t n, float value) {
  parallelFor(n, kChunkWork, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i)
      x[i] = value;
  });
}

} // namespace meg::kernels::cpu
