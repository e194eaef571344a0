// Sum/max reductions over every dim subset, their backward (max ties split equally), pick and validMask.
#include "kernels/cpu/Reduce.h"

#include "TestUtil.h"

namespace meg::kernels::cpu {
namespace {

using test::dot;
using test::expectNear;
using test::expectThreadInvariant;
using test::numericGradient;
using test::randomFloats;
using test::toDouble;

const std::vector<int64_t> kShape = {3, 4, 5, 2};

/// Index of x's element i in the reduced output (reduced dims dropped).
int64_t outIndex(int64_t i, const std::vector<int64_t> &shape, const bool *mask) {
  int64_t out = 0, stride = 1;
  for (int d = static_cast<int>(shape.size()) - 1; d >= 0; --d) {
    int64_t idx = i % shape[d];
    i /= shape[d];
    if (!mask[d]) {
      out += idx * stride;
      stride *= shape[d];
    }
  }
  return out;
}

int64_t outCount(const std::vector<int64_t> &shape, const bool *mask) {
  int64_t n = 1;
  for (size_t d = 0; d < shape.size(); ++d)
    n *= mask[d] ? 1 : shape[d];
  return n;
}

std::vector<double> referenceSum(const std::vector<double> &x, const std::vector<int64_t> &shape, const bool *mask) {
  std::vector<double> out(outCount(shape, mask), 0.0);
  for (size_t i = 0; i < x.size(); ++i)
    out[outIndex(i, shape, mask)] += x[i];
  return out;
}

std::vector<double> referenceMax(const std::vector<double> &x, const std::vector<int64_t> &shape, const bool *mask) {
  std::vector<double> out(outCount(shape, mask), -INFINITY);
  for (size_t i = 0; i < x.size(); ++i)
    out[outIndex(i, shape, mask)] = std::max(out[outIndex(i, shape, mask)], x[i]);
  return out;
}

/// Runs fn(mask) for all 16 subsets of kShape's dims.
template <typename Fn> void forEveryMask(Fn fn) {
  for (int bits = 0; bits < 16; ++bits) {
    bool mask[4];
    for (int d = 0; d < 4; ++d)
      mask[d] = (bits >> d) & 1;
    SCOPED_TRACE(testing::Message() << "mask bits " << bits);
    fn(mask);
  }
}

TEST(Reduce, SumAndMaxMatchReference) {
  std::vector<float> x = randomFloats(120, 1);
  forEveryMask([&](const bool *mask) {
    std::vector<float> out(outCount(kShape, mask));
    reduceSum(x.data(), kShape.data(), 4, mask, out.data());
    expectNear(out, referenceSum(toDouble(x), kShape, mask), 1e-6, "sum");
    reduceMax(x.data(), kShape.data(), 4, mask, out.data());
    expectNear(out, referenceMax(toDouble(x), kShape, mask), 0.0, "max");
  });
}

TEST(Reduce, WideRowsUseColumnBlocks) {
  // Reduce over the leading dim of [300, 200] (bias-gradient shape: several 64-column blocks) and over the last dim.
  std::vector<int64_t> shape = {300, 200};
  std::vector<float> x = randomFloats(300 * 200, 2);
  for (bool first : {true, false}) {
    bool mask[2] = {first, !first};
    std::vector<float> out(first ? 200 : 300);
    reduceSum(x.data(), shape.data(), 2, mask, out.data());
    expectNear(out, referenceSum(toDouble(x), shape, mask), 1e-6);
    expectThreadInvariant(
        [&] {
          std::vector<float> o(out.size());
          reduceSum(x.data(), shape.data(), 2, mask, o.data());
          return o;
        },
        "reduce sum");
  }
}

TEST(Reduce, SumBackwardMatchesFiniteDifferences) {
  std::vector<float> x = randomFloats(120, 3);
  forEveryMask([&](const bool *mask) {
    std::vector<float> dy = randomFloats(outCount(kShape, mask), 4), dx(120);
    reduceSumBackward(dy.data(), kShape.data(), 4, mask, dx.data());
    std::vector<double> w = toDouble(dy);
    expectNear(dx,
               numericGradient([&](const std::vector<double> &v) { return dot(w, referenceSum(v, kShape, mask)); },
                               toDouble(x)),
               1e-6);
  });
}

TEST(Reduce, MaxBackwardMatchesFiniteDifferencesWithoutTies) {
  std::vector<float> x = randomFloats(120, 5); // distinct values: max is differentiable
  forEveryMask([&](const bool *mask) {
    std::vector<float> y(outCount(kShape, mask)), dy = randomFloats(y.size(), 6), dx(120);
    reduceMax(x.data(), kShape.data(), 4, mask, y.data());
    reduceMaxBackward(x.data(), y.data(), dy.data(), kShape.data(), 4, mask, dx.data());
    std::vector<double> w = toDouble(dy);
    expectNear(dx,
               numericGradient([&](const std::vector<double> &v) { return dot(w, referenceMax(v, kShape, mask)); },
                               toDouble(x), 1e-7),
               1e-6);
  });
}

TEST(Reduce, MaxBackwardSplitsTiesEqually) {
  // Rows of [3, 4]; reduce the last dim. Row 0 has a two-way tie, row 1 a three-way tie, row 2 none.
  std::vector<int64_t> shape = {3, 4};
  bool mask[2] = {false, true};
  float x[] = {1, 3, 3, 2, 5, 5, -1, 5, 0, 7, 1, 2};
  float y[3], dy[] = {1.0f, 3.0f, 2.0f}, dx[12];
  reduceMax(x, shape.data(), 2, mask, y);
  EXPECT_EQ(y[0], 3.0f);
  EXPECT_EQ(y[1], 5.0f);
  EXPECT_EQ(y[2], 7.0f);
  reduceMaxBackward(x, y, dy, shape.data(), 2, mask, dx);
  const float expected[] = {0, 0.5f, 0.5f, 0, 1, 1, 0, 1, 0, 2, 0, 0};
  for (int i = 0; i < 12; ++i)
    EXPECT_EQ(dx[i], expected[i]) << i;
}

TEST(Reduce, EmptyReductionAndNaN) {
  std::vector<int64_t> shape = {2, 0};
  bool mask[2] = {false, true};
  float out[2] = {7, 7};
  reduceSum(nullptr, shape.data(), 2, mask, out);
  EXPECT_EQ(out[0], 0.0f);
  reduceMax(nullptr, shape.data(), 2, mask, out);
  EXPECT_EQ(out[1], -INFINITY);
  float x[] = {1, NAN, 2};
  int64_t three[] = {3};
  bool all[] = {true};
  reduceMax(x, three, 1, all, out);
  EXPECT_TRUE(std::isnan(out[0]));
}

TEST(Reduce, PickOnVocabularyShard) {
  const int64_t rows = 6, cols = 5, offset = 10;
  std::vector<float> x = randomFloats(rows * cols, 7);
  std::vector<int32_t> ids = {10, 14, 9, 15, 12, -100};
  std::vector<float> out(rows);
  pick(x.data(), ids.data(), rows, cols, offset, out.data());
  std::vector<double> expected = {x[0 * 5 + 0], x[1 * 5 + 4], 0, 0, x[4 * 5 + 2], 0};
  expectNear(out, expected, 0.0, "pick");

  std::vector<float> dy = randomFloats(rows, 8), dx(rows * cols, std::nanf(""));
  pickBackward(dy.data(), ids.data(), rows, cols, offset, dx.data());
  std::vector<double> w = toDouble(dy);
  auto loss = [&](const std::vector<double> &v) {
    double s = 0;
    for (int64_t r = 0; r < rows; ++r) {
      int64_t c = ids[r] - offset;
      s += (c >= 0 && c < cols) ? w[r] * v[r * cols + c] : 0.0;
    }
    return s;
  };
  expectNear(dx, numericGradient(loss, toDouble(x)), 1e-6, "pick backward");
}

TEST(Reduce, ValidMask) {
  std::vector<int32_t> ids = {3, -100, 0, -100, 7};
  std::vector<float> out(5);
  validMask(ids.data(), 5, -100, out.data());
  EXPECT_EQ(out, (std::vector<float>{1, 0, 1, 0, 1}));
}

} // namespace
} // namespace meg::kernels::cpu
