// Inverted dropout; see Dropout.h for the math.
//
// The global index of local element l is sum_d (l_d + offset_d) * globalStride_d = base + sum_d l_d * globalStride_d,
// so it is a strided loop over the local shape with the global strides as a second "operand".
#include "kernels/cpu/Dropout.h"

#include "kernels/cpu/Layout.h"
#include "kernels/cpu/Shape.h"

#include <cassert>

namespace meg::kernels::cpu {

namespace {

void applyMask(const float *x, const GlobalView &view, float p, const PhiloxKey &key, float *y) {
  int64_t n = numel(view.localShape, view.rank);
  if (p == 0.0f) {
    if (x != y)
      copy(x, n, y);
    return;
  }
  if (p >= 1.0f)
    return fill(y, n, 0.0f);
  assert(view.rank <= kMaxRank && "rank too high");
  const int64_t *global = view.globalShape ? view.globalShape : view.localShape;
  StridedLoop<2> loop;
  loop.rank = view.rank;
  int64_t globalStrides[kMaxRank];
  contiguousStrides(global, view.rank, globalStrides);
  int64_t base = 0;
  for (int d = 0; d < view.rank; ++d) {
    assert((!view.offset || view.offset[d] + view.localShape[d] <= global[d]) && "shard outside the global tensor");
    loop.size[d] = view.localShape[d];
    loop.stride[1][d] = globalStrides[d];
    if (view.offset)
      base += view.offset[d] * globalStrides[d];
  }
  contiguousStrides(view.localShape, view.rank, loop.stride[0]);
  loop.coalesce();
  float keepScale = 1.0f / (1.0f - p);
  parallelRows(loop, [&](const int64_t *off, int64_t len, const int64_t *inc) {
    for (int64_t i = 0; i < len; ++i) {
      uint64_t index = static_cast<uint64_t>(base + off[1] + i * inc[1]);
      y[off[0] + i * inc[0]] = dropoutKeep(key, index, p) ? x[off[0] + i * inc[0]] * keepScale : 0.0f;
    }
  });
}

} // namespace

void dropoutForward(const float *x, const GlobalView &view, float p, const PhiloxKey &key, float *y) {
  applyMask(x, view, p, key, y);
}

void dropoutBackward(const float *dy, const GlobalView &view, float p, const PhiloxKey &key, float *dx) {
  applyMask(dy, view, p, key, dx);
}

} // namespace meg::kernels::cpu
