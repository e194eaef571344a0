// Shape helpers shared by the CPU kernels: element counts, row-major strides, and a strided N-operand loop.
//
// A StridedLoop walks a row-major index space `size[0..rank)` and gives, for every operand, the offset
// sum_d idx[d] * stride[op][d]. Broadcast operands use stride 0; transposed ones use permuted strides.
// coalesce() drops size-1 dims and merges neighbours that are contiguous in every operand, so the innermost loop
// is as long as possible.
#ifndef MEG_KERNELS_CPU_SHAPE_H
#define MEG_KERNELS_CPU_SHAPE_H

#include "kernels/Math.h"
#include "kernels/cpu/Parallel.h"

#include <cassert>
#include <cstdint>

namespace meg::kernels::cpu {

using kernels::contiguousStrides;
using kernels::kMaxRank;
using kernels::numel;

template <int N> struct StridedLoop {
  int rank = 0;
  int64_t size[kMaxRank] = {};
  int64_t stride[N][kMaxRank] = {};

  int64_t numel() const { return kernels::numel(size, rank); }
  int64_t innerSize() const { return rank ? size[rank - 1] : 1; }
  int64_t rows() const { return rank ? numel() / size[rank - 1] : 1; }

  /// Drops size-1 dims and merges dim d into d+1 where every operand is contiguous across the two.
  void coalesce() {
    int out = 0;
    for (int d = 0; d < rank; ++d) {
      if (size[d] == 1)
        continue;
      bool merge = out > 0;
      for (int op = 0; op < N && merge; ++op)
        merge = stride[op][out - 1] == stride[op][d] * size[d];
      if (merge) {
        size[out - 1] *= size[d];
        for (int op = 0; op < N; ++op)
          stride[op][out - 1] = stride[op][d];
        continue;
      }
      size[out] = size[d];
      for (int op = 0; op < N; ++op)
        stride[op][out] = stride[op][d];
      ++out;
    }
    rank = out;
  }
};

/// Runs fn(offsets, length, innerStrides) once per row (all dims but the last) of `loop`, rows in parallel.
/// `offsets[op]` is operand op's offset of the row's first element, `innerStrides[op]` its stride along the row.
template <int N, typename Fn> void parallelRows(const StridedLoop<N> &loop, Fn &&fn) {
  int64_t len = loop.innerSize();
  int64_t rows = loop.rows();
  if (len == 0 || rows == 0)
    return;
  int outer = loop.rank > 0 ? loop.rank - 1 : 0;
  int64_t inner[N];
  for (int op = 0; op < N; ++op)
    inner[op] = loop.rank ? loop.stride[op][loop.rank - 1] : 0;
  parallelFor(rows, grainFor(len), [&](int64_t begin, int64_t end) {
    int64_t idx[kMaxRank];
    int64_t off[N] = {};
    int64_t rest = begin;
    for (int d = outer - 1; d >= 0; --d) {
      idx[d] = rest % loop.size[d];
      rest /= loop.size[d];
      for (int op = 0; op < N; ++op)
        off[op] += idx[d] * loop.stride[op][d];
    }
    for (int64_t row = begin; row < end; ++row) {
      fn(static_cast<const int64_t *>(off), len, static_cast<const int64_t *>(inner));
      // Odometer step to the next row.
      for (int d = outer - 1; d >= 0; --d) {
        for (int op = 0; op < N; ++op)
          off[op] += loop.stride[op][d];
        if (++idx[d] < loop.size[d])
          break;
        for (int op = 0; op < N; ++op)
          off[op] -= idx[d] * loop.stride[op][d];
        idx[d] = 0;
      }
    }
  });
}

} // namespace meg::kernels::cpu

#endif // MEG_KERNELS_CPU_SHAPE_H
