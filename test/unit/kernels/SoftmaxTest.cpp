// Row softmax against a double reference; backward against central differences.
#include "kernels/cpu/Softmax.h"

#include "TestUtil.h"

namespace meg::kernels::cpu {
namespace {

using test::dot;
using test::expectNear;
using test::numericGradient;
using test::randomFloats;
using test::toDouble;

std::vector<double> referenceSoftmax(const std::vector<double> &x, int64_t rows, int64_t n) {
  std::vector<double> y(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    double mx = -INFINITY, sum = 0;
    for (int64_t j = 0; j < n; ++j)
      mx = std::max(mx, x[r * n + j]);
    for (int64_t j = 0; j < n; ++j)
      sum += std::exp(x[r * n + j] - mx);
    for (int64_t j = 0; j < n; ++j)
      y[r * n + j] = std::exp(x[r * n + j] - mx) / sum;
  }
  return y;
}

TEST(Softmax, ForwardMatchesReference) {
  const int64_t rows = 37, n = 129;
  std::vector<float> x = randomFloats(rows * n, 1, -8.0f, 8.0f), y(rows * n);
  softmaxForward(x.data(), rows, n, y.data());
  std::vector<double> e = referenceSoftmax(toDouble(x), rows, n);
  // Relative per element: probabilities span many orders of magnitude.
  for (size_t i = 0; i < y.size(); ++i)
    ASSERT_NEAR(y[i], e[i], 1e-5 * e[i] + 1e-12) << i;
}

TEST(Softmax, LargeLogitsDoNotOverflow) {
  float x[] = {1000.0f, 1000.0f, -1000.0f}, y[3];
  softmaxForward(x, 1, 3, y);
  EXPECT_FLOAT_EQ(y[0], 0.5f);
  EXPECT_FLOAT_EQ(y[1], 0.5f);
  EXPECT_EQ(y[2], 0.0f);
}

TEST(Softmax, BackwardMatchesFiniteDifferences) {
  const int64_t rows = 5, n = 9;
  std::vector<float> x = randomFloats(rows * n, 2, -3.0f, 3.0f), dy = randomFloats(rows * n, 3);
  std::vector<float> y(rows * n), dx(rows * n);
  softmaxForward(x.data(), rows, n, y.data());
  softmaxBackward(y.data(), dy.data(), rows, n, dx.data());
  std::vector<double> w = toDouble(dy);
  expectNear(
      dx,
      numericGradient([&](const std::vector<double> &v) { return dot(w, referenceSoftmax(v, rows, n)); }, toDouble(x)),
      1e-5);
}

} // namespace
} // namespace meg::kernels::cpu
