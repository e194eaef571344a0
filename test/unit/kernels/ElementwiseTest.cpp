// Elementwise kernels against double references; backward against central differences.
#include "kernels/cpu/Elementwise.h"

#include "TestUtil.h"

#include <limits>

namespace meg::kernels::cpu {
namespace {

using test::dot;
using test::expectNear;
using test::numericGradient;
using test::randomFloats;
using test::toDouble;

using Shape = std::vector<int64_t>;

int64_t count(const Shape &s) {
  int64_t n = 1;
  for (int64_t d : s)
    n *= d;
  return n;
}

Shape broadcast(const Shape &a, const Shape &b) {
  Shape out(std::max(a.size(), b.size()));
  int rank = 0;
  EXPECT_TRUE(
      broadcastShape(a.data(), static_cast<int>(a.size()), b.data(), static_cast<int>(b.size()), out.data(), &rank));
  return out;
}

/// Offset in an operand of shape `s` of the broadcast element with multi-index `idx` (in `out`'s rank).
int64_t broadcastOffset(const Shape &s, const Shape &idx) {
  int64_t off = 0;
  size_t lead = idx.size() - s.size();
  for (size_t d = 0; d < s.size(); ++d)
    off = off * s[d] + (s[d] == 1 ? 0 : idx[lead + d]);
  return off;
}

Shape unravel(int64_t i, const Shape &shape) {
  Shape idx(shape.size());
  for (int d = static_cast<int>(shape.size()) - 1; d >= 0; --d) {
    idx[d] = i % shape[d];
    i /= shape[d];
  }
  return idx;
}

double apply(BinaryOp op, double x, double y) {
  switch (op) {
  case BinaryOp::Add:
    return x + y;
  case BinaryOp::Sub:
    return x - y;
  case BinaryOp::Mul:
    return x * y;
  case BinaryOp::Div:
    return x / y;
  case BinaryOp::Max:
    return std::max(x, y);
  }
  return 0;
}

std::vector<double> referenceBinary(BinaryOp op, const std::vector<double> &a, const Shape &sa,
                                    const std::vector<double> &b, const Shape &sb) {
  Shape so = broadcast(sa, sb);
  std::vector<double> out(count(so));
  for (int64_t i = 0; i < count(so); ++i) {
    Shape idx = unravel(i, so);
    out[i] = apply(op, a[broadcastOffset(sa, idx)], b[broadcastOffset(sb, idx)]);
  }
  return out;
}

struct ShapePair {
  Shape a, b;
};

const ShapePair kPairs[] = {
    {{3, 4, 5}, {3, 4, 5}}, // equal
    {{3, 4, 5}, {5}},       // bias add
    {{3, 4, 5}, {1, 4, 5}}, // suffix with a leading 1
    {{5}, {3, 4, 5}},       // a is the suffix
    {{3, 4, 5}, {4, 1}},    // middle broadcast
    {{4, 1}, {3, 1, 5}},    // both broadcast
    {{3, 4, 5}, {}},        // scalar
    {{2, 1, 3, 1}, {1, 4, 1, 5}},
};

const BinaryOp kOps[] = {BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div};

TEST(Elementwise, BinaryBroadcastMatchesReference) {
  for (const ShapePair &p : kPairs) {
    for (BinaryOp op : kOps) {
      SCOPED_TRACE(testing::Message() << "op " << static_cast<int>(op) << " rank " << p.a.size() << "/" << p.b.size());
      std::vector<float> a = randomFloats(count(p.a), 1), b = randomFloats(count(p.b), 2, 0.5f, 2.0f);
      Shape so = broadcast(p.a, p.b);
      std::vector<float> out(count(so));
      binary(op, a.data(), p.a.data(), static_cast<int>(p.a.size()), b.data(), p.b.data(), static_cast<int>(p.b.size()),
             out.data());
      expectNear(out, referenceBinary(op, toDouble(a), p.a, toDouble(b), p.b), 1e-6);
    }
  }
}

TEST(Elementwise, BroadcastToMatchesReference) {
  for (auto [x, out] : {std::pair<Shape, Shape>{{1}, {3, 4}}, {{4}, {2, 3, 4}}, {{3, 1}, {2, 3, 5}}, {{2, 1, 4}, {2, 3, 4}},
                        {{2, 3, 4}, {2, 3, 4}}}) {
    auto in = randomFloats(count(x), 7);
    std::vector<float> got(count(out), -1.0f);
    broadcastTo(in.data(), x.data(), int(x.size()), out.data(), int(out.size()), got.data());
    Shape idx(out.size(), 0);
    for (int64_t flat = 0; flat < count(out); ++flat) {
      int64_t rest = flat;
      for (size_t d = out.size(); d-- > 0;) {
        idx[d] = rest % out[d];
        rest /= out[d];
      }
      ASSERT_EQ(got[flat], in[broadcastOffset(x, idx)]) << "element " << flat;
    }
  }
}

TEST(Elementwise, IncompatibleShapesDoNotBroadcast) {
  int64_t a[] = {3, 4}, b[] = {5}, out[2];
  int rank = 0;
  EXPECT_FALSE(broadcastShape(a, 2, b, 1, out, &rank));
  int64_t c[] = {2, 1, 4}, d[] = {3, 1};
  int64_t out3[3];
  ASSERT_TRUE(broadcastShape(c, 3, d, 2, out3, &rank));
  EXPECT_EQ(rank, 3);
  EXPECT_EQ(Shape(out3, out3 + 3), (Shape{2, 3, 4}));
}

TEST(Elementwise, BinaryBackwardMatchesFiniteDifferences) {
  for (const ShapePair &p : kPairs) {
    for (BinaryOp op : kOps) {
      SCOPED_TRACE(testing::Message() << "op " << static_cast<int>(op) << " rank " << p.a.size() << "/" << p.b.size());
      std::vector<float> a = randomFloats(count(p.a), 3), b = randomFloats(count(p.b), 4, 0.5f, 2.0f);
      Shape so = broadcast(p.a, p.b);
      std::vector<float> dy = randomFloats(count(so), 5);
      std::vector<double> w = toDouble(dy);
      std::vector<float> da(a.size()), db(b.size()), scratch(count(so));
      binaryBackward(op, a.data(), p.a.data(), static_cast<int>(p.a.size()), b.data(), p.b.data(),
                     static_cast<int>(p.b.size()), dy.data(), da.data(), db.data(), scratch.data());
      std::vector<double> ad = toDouble(a), bd = toDouble(b);
      expectNear(da,
                 numericGradient(
                     [&](const std::vector<double> &x) { return dot(w, referenceBinary(op, x, p.a, bd, p.b)); }, ad),
                 1e-5, "da");
      expectNear(db,
                 numericGradient(
                     [&](const std::vector<double> &x) { return dot(w, referenceBinary(op, ad, p.a, x, p.b)); }, bd),
                 1e-5, "db");
    }
  }
}

TEST(Elementwise, ReduceToShapeSumsBroadcastDims) {
  Shape sy = {3, 4, 5};
  std::vector<float> dy = randomFloats(count(sy), 6);
  for (const Shape &sx : {Shape{3, 4, 5}, Shape{5}, Shape{4, 1}, Shape{3, 1, 5}, Shape{}, Shape{1, 1, 1}}) {
    std::vector<double> expected(count(sx), 0.0);
    for (int64_t i = 0; i < count(sy); ++i)
      expected[broadcastOffset(sx, unravel(i, sy))] += dy[i];
    std::vector<float> dx(count(sx));
    reduceToShape(dy.data(), sy.data(), 3, sx.data(), static_cast<int>(sx.size()), dx.data());
    expectNear(dx, expected, 1e-6, "rank " + std::to_string(sx.size()));
  }
}

TEST(Elementwise, UnaryForward) {
  const int64_t n = 1000;
  std::vector<float> x = randomFloats(n, 7, -3.0f, 3.0f), pos = randomFloats(n, 8, 0.1f, 5.0f), y(n);
  std::vector<double> e(n);
  expForward(x.data(), n, y.data());
  for (int64_t i = 0; i < n; ++i)
    e[i] = std::exp(static_cast<double>(x[i]));
  expectNear(y, e, 1e-6, "exp");
  logForward(pos.data(), n, y.data());
  for (int64_t i = 0; i < n; ++i)
    e[i] = std::log(static_cast<double>(pos[i]));
  expectNear(y, e, 1e-6, "log");
  tanhForward(x.data(), n, y.data());
  for (int64_t i = 0; i < n; ++i)
    e[i] = std::tanh(static_cast<double>(x[i]));
  expectNear(y, e, 1e-6, "tanh");
  scale(x.data(), n, -2.5f, y.data());
  for (int64_t i = 0; i < n; ++i)
    e[i] = -2.5 * x[i];
  expectNear(y, e, 1e-7, "scale");
}

TEST(Elementwise, UnaryBackwardMatchesFiniteDifferences) {
  const int64_t n = 64;
  std::vector<float> x = randomFloats(n, 9, -2.0f, 2.0f), pos = randomFloats(n, 10, 0.2f, 3.0f);
  std::vector<float> dy = randomFloats(n, 11), y(n), dx(n);
  std::vector<double> w = toDouble(dy);
  auto lossOf = [&](double (*f)(double)) {
    return [&w, f](const std::vector<double> &v) {
      double s = 0;
      for (size_t i = 0; i < v.size(); ++i)
        s += w[i] * f(v[i]);
      return s;
    };
  };
  expForward(x.data(), n, y.data());
  expBackward(y.data(), dy.data(), n, dx.data());
  expectNear(dx, numericGradient(lossOf([](double v) { return std::exp(v); }), toDouble(x)), 1e-5, "exp");
  logBackward(pos.data(), dy.data(), n, dx.data());
  expectNear(dx, numericGradient(lossOf([](double v) { return std::log(v); }), toDouble(pos)), 1e-5, "log");
  tanhForward(x.data(), n, y.data());
  tanhBackward(y.data(), dy.data(), n, dx.data());
  expectNear(dx, numericGradient(lossOf([](double v) { return std::tanh(v); }), toDouble(x)), 1e-5, "tanh");
  scale(dy.data(), n, 0.75f, dx.data());
  expectNear(dx, numericGradient(lossOf([](double v) { return 0.75 * v; }), toDouble(x)), 1e-6, "scale");
}

// The padding mask against a plain reference: whole tensors and shards of the masked dim (offset > 0, shards wholly
// valid, straddling `valid`, wholly padding), out of place and in place.
TEST(Elementwise, MaskPaddingUsesTheGlobalIndex) {
  const int64_t outer = 3, inner = 5, full = 12, valid = 7;
  const float value = -std::numeric_limits<float>::infinity();
  std::vector<float> global = randomFloats(size_t(outer * full * inner), 11);
  for (int64_t shard : {12, 4, 3}) {
    for (int64_t offset = 0; offset < full; offset += shard) {
      // The local block [outer, shard, inner] of the global [outer, full, inner].
      std::vector<float> x(size_t(outer * shard * inner)), want(x.size());
      for (int64_t o = 0; o < outer; ++o)
        for (int64_t j = 0; j < shard; ++j)
          for (int64_t i = 0; i < inner; ++i) {
            size_t l = size_t((o * shard + j) * inner + i);
            x[l] = global[size_t((o * full + offset + j) * inner + i)];
            want[l] = offset + j >= valid ? value : x[l];
          }
      std::vector<float> y(x.size(), 42.0f);
      maskPadding(x.data(), outer, shard, inner, offset, valid, value, y.data());
      EXPECT_EQ(y, want) << "shard " << shard << " at " << offset;
      maskPadding(x.data(), outer, shard, inner, offset, valid, value, x.data());
      EXPECT_EQ(x, want) << "in place, shard " << shard << " at " << offset;
    }
  }
  // valid = the whole dim masks nothing; valid = 0 masks everything.
  std::vector<float> y(global.size());
  maskPadding(global.data(), outer, full, inner, 0, full, value, y.data());
  EXPECT_EQ(y, global);
  maskPadding(global.data(), outer, full, inner, 0, 0, 0.0f, y.data());
  EXPECT_EQ(y, std::vector<float>(global.size(), 0.0f));
}

} // namespace
} // namespace meg::kernels::cpu
