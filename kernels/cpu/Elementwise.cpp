// Elementwise kernels; see Elementwise.h for the math.
#include "kernels/cpu/Elementwise.h"
#include "kernels/Half.h"

#include "kernels/cpu/Parallel.h"
#include "kernels/cpu/Reduce.h"
#include "kernels/cpu/Shape.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>

namespace meg::kernels::cpu {

namespace {

template <typename Fn> void withOp(BinaryOp op, Fn &&fn) {
  switch (op) {
  case BinaryOp::Add:
    return fn([](float x, float y) { return x + y; });
  case BinaryOp::Sub:
    return fn([](float x, float y) { return x - y; });
  case BinaryOp::Mul:
    return fn([](float x, float y) { return x * y; });
  case BinaryOp::Div:
    return fn([](float x, float y) { return x / y; });
  case BinaryOp::Max:
    return fn([](float x, float y) { return maximum(x, y); });
  }
}

/// True if `shape` (leading 1s ignored) equals the trailing dims of `full`.
bool isSuffix(const int64_t *shape, int rank, const int64_t *full, int fullRank) {
  int lead = 0;
  while (lead < rank && shape[lead] == 1)
    ++lead;
  int tail = rank - lead;
  if (tail > fullRank)
    return false;
  for (int d = 0; d < tail; ++d)
    if (shape[lead + d] != full[fullRank - tail + d])
      return false;
  return true;
}

/// Strides of an operand broadcast to `outShape` (0 along missing and size-1 dims).
void broadcastStrides(const int64_t *shape, int rank, int outRank, int64_t *strides) {
  int64_t own[kMaxRank];
  contiguousStrides(shape, rank, own);
  int lead = outRank - rank;
  for (int d = 0; d < outRank; ++d)
    strides[d] = (d < lead || shape[d - lead] == 1) ? 0 : own[d - lead];
}

template <typename Op>
void binaryImpl(Op f, const float *a, const int64_t *shapeA, int rankA, const float *b, const int64_t *shapeB,
                int rankB, float *out) {
  int64_t shape[kMaxRank];
  int rank = 0;
  [[maybe_unused]] bool ok = broadcastShape(shapeA, rankA, shapeB, rankB, shape, &rank);
  assert(ok && "operands do not broadcast");
  int64_t n = numel(shape, rank), na = numel(shapeA, rankA), nb = numel(shapeB, rankB);
  if (n == 0)
    return;
  if (na == n && nb == n) {
    parallelFor(n, kChunkWork, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i)
        out[i] = f(a[i], b[i]);
    });
    return;
  }
  // Bias-style broadcast: one operand repeats along the leading dims.
  if (na == n && isSuffix(shapeB, rankB, shape, rank)) {
    parallelFor(n / nb, grainFor(nb), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r)
        for (int64_t j = 0; j < nb; ++j)
          out[r * nb + j] = f(a[r * nb + j], b[j]);
    });
    return;
  }
  if (nb == n && isSuffix(shapeA, rankA, shape, rank)) {
    parallelFor(n / na, grainFor(na), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r)
        for (int64_t j = 0; j < na; ++j)
          out[r * na + j] = f(a[j], b[r * na + j]);
    });
    return;
  }
  StridedLoop<3> loop;
  loop.rank = rank;
  for (int d = 0; d < rank; ++d)
    loop.size[d] = shape[d];
  contiguousStrides(shape, rank, loop.stride[0]);
  broadcastStrides(shapeA, rankA, rank, loop.stride[1]);
  broadcastStrides(shapeB, rankB, rank, loop.stride[2]);
  loop.coalesce();
  parallelRows(loop, [&](const int64_t *off, int64_t len, const int64_t *inc) {
    float *o = out + off[0];
    const float *pa = a + off[1], *pb = b + off[2];
    for (int64_t i = 0; i < len; ++i)
      o[i] = f(pa[i * inc[1]], pb[i * inc[2]]);
  });
}

template <typename Fn> void unary(int64_t n, Fn &&fn) {
  parallelFor(n, kChunkWork / 8, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i)
      fn(i);
  });
}

} // namespace

void broadcastTo(const float *x, const int64_t *shapeX, int rankX, const int64_t *shapeOut, int rankOut, float *out) {
  assert(rankX <= rankOut && "broadcast to a lower rank");
  StridedLoop<2> loop;
  loop.rank = rankOut;
  for (int d = 0; d < rankOut; ++d)
    loop.size[d] = shapeOut[d];
  contiguousStrides(shapeOut, rankOut, loop.stride[0]);
  broadcastStrides(shapeX, rankX, rankOut, loop.stride[1]);
  loop.coalesce();
  if (loop.numel() == 0)
    return;
  parallelRows(loop, [&](const int64_t *off, int64_t len, const int64_t *inc) {
    float *o = out + off[0];
    const float *px = x + off[1];
    for (int64_t i = 0; i < len; ++i)
      o[i] = px[i * inc[1]];
  });
}

void binary(BinaryOp op, const float *a, const int64_t *shapeA, int rankA, const float *b, const int64_t *shapeB,
            int rankB, float *out) {
  withOp(op, [&](auto f) { binaryImpl(f, a, shapeA, rankA, b, shapeB, rankB, out); });
}

void binaryBackward(BinaryOp op, const float *a, const int64_t *shapeA, int rankA, const float *b,
                    const int64_t *shapeB, int rankB, const float *dy, float *da, float *db, float *scratch) {
  int64_t shape[kMaxRank];
  int rank = 0;
  [[maybe_unused]] bool ok = broadcastShape(shapeA, rankA, shapeB, rankB, shape, &rank);
  assert(ok && "operands do not broadcast");
  auto negate = [](float *x, const int64_t *s, int r) { scale(x, numel(s, r), -1.0f, x); };
  switch (op) {
  case BinaryOp::Add:
  case BinaryOp::Sub:
    if (da)
      reduceToShape(dy, shape, rank, shapeA, rankA, da);
    if (db) {
      reduceToShape(dy, shape, rank, shapeB, rankB, db);
      if (op == BinaryOp::Sub)
        negate(db, shapeB, rankB);
    }
    return;
  case BinaryOp::Mul:
    assert(scratch && "mul backward needs scratch");
    if (da) {
      binary(BinaryOp::Mul, dy, shape, rank, b, shapeB, rankB, scratch);
      reduceToShape(scratch, shape, rank, shapeA, rankA, da);
    }
    if (db) {
      binary(BinaryOp::Mul, dy, shape, rank, a, shapeA, rankA, scratch);
      reduceToShape(scratch, shape, rank, shapeB, rankB, db);
    }
    return;
  case BinaryOp::Div:
    assert(scratch && "div backward needs scratch");
    if (da) {
      binary(BinaryOp::Div, dy, shape, rank, b, shapeB, rankB, scratch);
      reduceToShape(scratch, shape, rank, shapeA, rankA, da);
    }
    if (db) {
      // db = -R((a / b) * dy / b); each pass reads and writes the same element, so in place is safe.
      binary(BinaryOp::Div, a, shapeA, rankA, b, shapeB, rankB, scratch);
      binary(BinaryOp::Mul, scratch, shape, rank, dy, shape, rank, scratch);
      binary(BinaryOp::Div, scratch, shape, rank, b, shapeB, rankB, scratch);
      reduceToShape(scratch, shape, rank, shapeB, rankB, db);
      negate(db, shapeB, rankB);
    }
    return;
  case BinaryOp::Max:
    assert(false && "maximum has no backward");
    return;
  }
}

void reduceToShape(const float *dy, const int64_t *shapeY, int rankY, const int64_t *shapeX, int rankX, float *dx) {
  assert(rankX <= rankY && rankY <= kMaxRank && "bad ranks for reduceToShape");
  bool mask[kMaxRank];
  int lead = rankY - rankX;
  for (int d = 0; d < rankY; ++d) {
    mask[d] = d < lead || shapeX[d - lead] == 1;
    assert((mask[d] || shapeX[d - lead] == shapeY[d]) && "shape does not broadcast to the gradient's shape");
  }
  reduceSum(dy, shapeY, rankY, mask, dx);
}

void expForward(const float *x, int64_t n, float *y) {
  unary(n, [&](int64_t i) { y[i] = std::exp(x[i]); });
}

void expBackward(const float *y, const float *dy, int64_t n, float *dx) {
  unary(n, [&](int64_t i) { dx[i] = dy[i] * y[i]; });
}

void logForward(const float *x, int64_t n, float *y) {
  unary(n, [&](int64_t i) { y[i] = std::log(x[i]); });
}

void logBackward(const float *x, const float *dy, int64_t n, float *dx) {
  unary(n, [&](int64_t i) { dx[i] = dy[i] / x[i]; });
}

void tanhForward(const float *x, int64_t n, float *y) {
  unary(n, [&](int64_t i) { y[i] = std::tanh(x[i]); });
}

void tanhBackward(const float *y, const float *dy, int64_t n, float *dx) {
  unary(n, [&](int64_t i) { dx[i] = dy[i] * (1.0f - y[i] * y[i]); });
}

void scale(const float *x, int64_t n, float factor, float *y) {
  unary(n, [&](int64_t i) { y[i] = factor * x[i]; });
}

void unary(UnaryOp op, const float *x, int64_t n, float factor, float *y) {
  switch (op) {
  case UnaryOp::Exp:
    return expForward(x, n, y);
  case UnaryOp::Log:
    return logForward(x, n, y);
  case UnaryOp::Tanh:
    return tanhForward(x, n, y);
  case UnaryOp::Scale:
    return scale(x, n, factor, y);
  }
}

void cast(const void *x, Elem from, void *y, Elem to, int64_t n) {
  if (from == to) {
    if (x != y)
      std::memcpy(y, x, size_t(n) * size_t(elemBytes(from)));
    return;
  }
  assert((x != y || elemBytes(from) == elemBytes(to)) && "an in-place cast must keep the element size");
  unary(n, [&](int64_t i) { storeFromFloat(y, to, i, loadAsFloat(x, from, i)); });
}

void maskPadding(const float *x, int64_t outer, int64_t n, int64_t inner, int64_t dimOffset, int64_t valid,
                 float value, float *y) {
  // Local indices j >= keep along the middle dim are masked.
  int64_t keep = std::clamp<int64_t>(valid - dimOffset, 0, n);
  parallelFor(outer, grainFor(n * inner), [&](int64_t begin, int64_t end) {
    for (int64_t o = begin; o < end; ++o) {
      const float *src = x + o * n * inner;
      float *dst = y + o * n * inner;
      if (src != dst)
        std::copy(src, src + keep * inner, dst);
      std::fill(dst + keep * inner, dst + n * inner, value);
    }
  });
}

} // namespace meg::kernels::cpu
