// AdamW against the textbook formula in double; sum of squares against a double sum and across thread counts.
#include "kernels/cpu/Adam.h"

#include "TestUtil.h"

namespace meg::kernels::cpu {
namespace {

using test::expectNear;
using test::randomFloats;

TEST(Adam, MatchesReferenceOverSeveralSteps) {
  const int64_t n = 10007;
  AdamConfig config;
  config.lr = 1e-2;
  config.beta1 = 0.9;
  config.beta2 = 0.95;
  config.eps = 1e-8;
  config.weightDecay = 0.1;
  std::vector<float> p = randomFloats(n, 1), m(n, 0.0f), v(n, 0.0f);
  std::vector<double> rp(p.begin(), p.end()), rm(n, 0.0), rv(n, 0.0);
  for (int64_t step = 1; step <= 5; ++step) {
    std::vector<float> g = randomFloats(n, 10 + step);
    adamwStep(p.data(), g.data(), m.data(), v.data(), n, config, 1.0f, step);
    for (int64_t i = 0; i < n; ++i) {
      rp[i] *= 1 - config.lr * config.weightDecay;
      rm[i] = config.beta1 * rm[i] + (1 - config.beta1) * g[i];
      rv[i] = config.beta2 * rv[i] + (1 - config.beta2) * g[i] * g[i];
      double mhat = rm[i] / (1 - std::pow(config.beta1, step));
      double vhat = rv[i] / (1 - std::pow(config.beta2, step));
      rp[i] -= config.lr * mhat / (std::sqrt(vhat) + config.eps);
    }
    SCOPED_TRACE(testing::Message() << "step " << step);
    expectNear(p, rp, 1e-5, "param");
    expectNear(m, rm, 1e-5, "m");
    expectNear(v, rv, 1e-5, "v");
  }
}

TEST(Adam, SumOfSquaresIsExactEnoughAndThreadInvariant) {
  for (int64_t n : {0, 1, 4095, 4097, 3000001}) {
    std::vector<float> x = randomFloats(n, 20);
    double expected = 0;
    for (float f : x)
      expected += static_cast<double>(f) * f;
    double got = sumOfSquares(x.data(), n);
    EXPECT_NEAR(got, expected, 1e-12 * (expected + 1)) << n;
    double other;
    {
      test::ThreadCount one(1);
      other = sumOfSquares(x.data(), n);
    }
    EXPECT_EQ(got, other) << n; // bitwise: same blocks, same order
  }
}

} // namespace
} // namespace meg::kernels::cpu
