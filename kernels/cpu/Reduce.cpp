// Reductions and index picks; see Reduce.h for the math.
//
// Every reduction is split into tasks = (output row, block of up to kBlock contiguous output columns). A task owns
// its outputs and visits the input positions that reduce into them in row-major order of the reduced dims, so the
// result does not depend on the thread count, and backward tasks write disjoint parts of dx.
#include "kernels/cpu/Reduce.h"

#include "kernels/cpu/Parallel.h"
#include "kernels/cpu/Shape.h"

#include <cassert>
#include <cmath>
#include <cstring>
#include <limits>

namespace meg::kernels::cpu {

namespace {

constexpr int64_t kBlock = 64;

struct ReducePlan {
  int keptRank = 0, redRank = 0;
  int64_t keptSize[kMaxRank], keptStride[kMaxRank];
  int64_t redSize[kMaxRank], redStride[kMaxRank];
  int64_t inner = 1;    ///< trailing kept elements, contiguous in x and in out
  int64_t outRows = 1;  ///< numel(out) / inner
  int64_t redCount = 1; ///< input elements per output element
  int64_t inNumel = 1;

  ReducePlan(const int64_t *shape, int rank, const bool *reduceDim) {
    assert(rank <= kMaxRank && "rank too high");
    int64_t strides[kMaxRank];
    contiguousStrides(shape, rank, strides);
    inNumel = numel(shape, rank);
    // Merge runs of same-kind dims (x is contiguous), skipping size-1 dims.
    int groups = 0;
    bool kind[kMaxRank];
    int64_t size[kMaxRank], stride[kMaxRank];
    for (int d = 0; d < rank; ++d) {
      if (shape[d] == 1)
        continue;
      if (groups > 0 && kind[groups - 1] == reduceDim[d]) {
        size[groups - 1] *= shape[d];
        stride[groups - 1] = strides[d];
        continue;
      }
      kind[groups] = reduceDim[d];
      size[groups] = shape[d];
      stride[groups] = strides[d];
      ++groups;
    }
    if (groups > 0 && !kind[groups - 1])
      inner = size[--groups];
    for (int g = 0; g < groups; ++g) {
      if (kind[g]) {
        redSize[redRank] = size[g];
        redStride[redRank++] = stride[g];
        redCount *= size[g];
      } else {
        keptSize[keptRank] = size[g];
        keptStride[keptRank++] = stride[g];
        outRows *= size[g];
      }
    }
  }

  int64_t colBlocks() const { return (inner + kBlock - 1) / kBlock; }

  /// Runs fn(xOffset, outOffset, width) for every task; fn visits the task's inputs with forEachReduced.
  template <typename Fn> void forEachTask(Fn &&fn) const {
    int64_t blocks = colBlocks();
    int64_t width = inner < kBlock ? inner : kBlock;
    parallelFor(outRows * blocks, grainFor(redCount * width), [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) {
        int64_t row = t / blocks, c0 = (t % blocks) * kBlock;
        int64_t xOff = c0, rest = row;
        for (int d = keptRank - 1; d >= 0; --d) {
          xOff += (rest % keptSize[d]) * keptStride[d];
          rest /= keptSize[d];
        }
        fn(xOff, row * inner + c0, inner - c0 < kBlock ? inner - c0 : kBlock);
      }
    });
  }

  /// Calls fn(offset) for every reduced position from `base`, row-major over the reduced dims.
  template <typename Fn> void forEachReduced(int64_t base, Fn &&fn) const {
    if (redRank == 0) {
      fn(base);
      return;
    }
    int last = redRank - 1;
    int64_t idx[kMaxRank] = {};
    int64_t off = base;
    while (true) {
      for (int64_t t = 0; t < redSize[last]; ++t)
        fn(off + t * redStride[last]);
      int d = last - 1;
      for (; d >= 0; --d) {
        off += redStride[d];
        if (++idx[d] < redSize[d])
          break;
        off -= idx[d] * redStride[d];
        idx[d] = 0;
      }
      if (d < 0)
        return;
    }
  }
};

void fillOut(float *out, int64_t n, float value) {
  for (int64_t i = 0; i < n; ++i)
    out[i] = value;
}

} // namespace

void reduceSum(const float *x, const int64_t *shape, int rank, const bool *reduceDim, float *out) {
  ReducePlan p(shape, rank, reduceDim);
  if (p.inNumel == 0)
    return fillOut(out, p.outRows * p.inner, 0.0f);
  p.forEachTask([&](int64_t xOff, int64_t oOff, int64_t width) {
    double acc[kBlock] = {};
    p.forEachReduced(xOff, [&](int64_t off) {
      for (int64_t c = 0; c < width; ++c)
        acc[c] += x[off + c];
    });
    for (int64_t c = 0; c < width; ++c)
      out[oOff + c] = static_cast<float>(acc[c]);
  });
}

void reduceSumBackward(const float *dy, const int64_t *shape, int rank, const bool *reduceDim, float *dx) {
  ReducePlan p(shape, rank, reduceDim);
  if (p.inNumel == 0)
    return;
  p.forEachTask([&](int64_t xOff, int64_t oOff, int64_t width) {
    p.forEachReduced(xOff, [&](int64_t off) {
      for (int64_t c = 0; c < width; ++c)
        dx[off + c] = dy[oOff + c];
    });
  });
}

void reduceMax(const float *x, const int64_t *shape, int rank, const bool *reduceDim, float *out) {
  ReducePlan p(shape, rank, reduceDim);
  if (p.inNumel == 0)
    return fillOut(out, p.outRows * p.inner, -std::numeric_limits<float>::infinity());
  p.forEachTask([&](int64_t xOff, int64_t oOff, int64_t width) {
    float acc[kBlock];
    for (int64_t c = 0; c < width; ++c)
      acc[c] = -std::numeric_limits<float>::infinity();
    p.forEachReduced(xOff, [&](int64_t off) {
      for (int64_t c = 0; c < width; ++c) {
        float v = x[off + c];
        if (!std::isnan(acc[c]) && (v > acc[c] || std::isnan(v)))
          acc[c] = v;
      }
    });
    for (int64_t c = 0; c < width; ++c)
      out[oOff + c] = acc[c];
  });
}

void reduceMaxBackward(const float *x, const float *y, const float *dy, const int64_t *shape, int rank,
                       const bool *reduceDim, float *dx) {
  ReducePlan p(shape, rank, reduceDim);
  if (p.inNumel == 0)
    return;
  p.forEachTask([&](int64_t xOff, int64_t oOff, int64_t width) {
    int64_t count[kBlock] = {};
    p.forEachReduced(xOff, [&](int64_t off) {
      for (int64_t c = 0; c < width; ++c)
        count[c] += x[off + c] == y[oOff + c];
    });
    p.forEachReduced(xOff, [&](int64_t off) {
      for (int64_t c = 0; c < width; ++c)
        dx[off + c] = x[off + c] == y[oOff + c] ? dy[oOff + c] / static_cast<float>(count[c]) : 0.0f;
    });
  });
}

void pick(const float *x, const int32_t *ids, int64_t rows, int64_t cols, int64_t colOffset, float *out) {
  parallelFor(rows, kChunkWork, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      int64_t c = static_cast<int64_t>(ids[r]) - colOffset;
      out[r] = (c >= 0 && c < cols) ? x[r * cols + c] : 0.0f;
    }
  });
}

void pickBackward(const float *dy, const int32_t *ids, int64_t rows, int64_t cols, int64_t colOffset, float *dx) {
  parallelFor(rows, grainFor(cols), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      std::memset(dx + r * cols, 0, sizeof(float) * cols);
      int64_t c = static_cast<int64_t>(ids[r]) - colOffset;
      if (c >= 0 && c < cols)
        dx[r * cols + c] = dy[r];
    }
  });
}

void validMask(const int32_t *ids, int64_t n, int32_t ignoreId, float *out) {
  parallelFor(n, kChunkWork, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i)
      out[i] = ids[i] != ignoreId ? 1.0f : 0.0f;
  });
}

} // namespace meg::kernels::cpu
