// AdamW against the textbook formula in double; sum of squares against a double sum and across thread counts; the
// loss scaler's overflow test, maximum and update rule (Megatron-LM's DynamicGradScaler) against hand-worked cases.
#include "kernels/cpu/Adam.h"
#include "kernels/Math.h"
#include "kernels/cpu/Elementwise.h"

#include <cmath>
#include <limits>

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

TEST(LossScaling, AnyNonfiniteFindsInfAndNanAnywhere) {
  std::vector<float> x = randomFloats(10001, 21);
  EXPECT_FALSE(anyNonfinite(x.data(), int64_t(x.size())));
  EXPECT_FALSE(anyNonfinite(x.data(), 0));
  for (float bad : {std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                    std::numeric_limits<float>::quiet_NaN()})
    for (size_t at : {size_t(0), size_t(5000), x.size() - 1}) {
      std::vector<float> y = x;
      y[at] = bad;
      EXPECT_TRUE(anyNonfinite(y.data(), int64_t(y.size()))) << bad << " at " << at;
    }
  float big = std::numeric_limits<float>::max();
  EXPECT_FALSE(anyNonfinite(&big, 1));
}

TEST(LossScaling, MaximumPropagatesNan) {
  float a[4] = {1, -2, std::numeric_limits<float>::quiet_NaN(), 0}, b[4] = {0.5f, 3, 1, 0};
  int64_t shape[1] = {4};
  float out[4];
  binary(BinaryOp::Max, a, shape, 1, b, shape, 1, out);
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], 3.0f);
  EXPECT_TRUE(std::isnan(out[2]));
  EXPECT_EQ(out[3], 0.0f);
  EXPECT_TRUE(std::isnan(maximum(1.0f, std::numeric_limits<float>::quiet_NaN())));
}

// Megatron's rule with hysteresis 2, window 3: overflow, overflow (backoff), clean x3 (growth, hysteresis reset),
// overflow (kept), overflow (backoff), overflow (backoff again), overflows at the floor.
TEST(LossScaling, UpdateFollowsMegatronsDynamicGradScaler) {
  LossScalerConfig c;
  c.growthInterval = 3;
  c.hysteresis = 2;
  c.minScale = 64;
  float scale = 1024, growth = 0, hysteresis = 2, updates = 0;
  struct Step {
    bool inf;
    float scale, growth, hysteresis, updates;
  } steps[] = {{true, 1024, 0, 1, 0},  {true, 512, 0, 0, 0},   {false, 512, 1, 0, 1}, {false, 512, 2, 0, 2},
               {false, 1024, 0, 2, 3}, {true, 1024, 0, 1, 3},  {true, 512, 0, 0, 3},  {true, 256, 0, -1, 3},
               {true, 128, 0, -2, 3},  {true, 64, 0, -3, 3},   {true, 64, 0, -4, 3},  {false, 64, 1, -4, 4}};
  int i = 0;
  for (const Step &s : steps) {
    lossScaleUpdate(s.inf ? 1.0f : 0.0f, scale, growth, hysteresis, updates, c);
    EXPECT_EQ(scale, s.scale) << "step " << i;
    EXPECT_EQ(growth, s.growth) << "step " << i;
    EXPECT_EQ(hysteresis, s.hysteresis) << "step " << i;
    EXPECT_EQ(updates, s.updates) << "step " << i;
    ++i;
  }
  // A fixed scale: factors of 1.
  LossScalerConfig fixed;
  fixed.growthFactor = fixed.backoffFactor = 1;
  fixed.growthInterval = 1;
  fixed.minScale = 8;
  scale = 8, growth = 0, hysteresis = 2, updates = 0;
  for (bool inf : {true, true, true, false, false})
    lossScaleUpdate(inf ? 1.0f : 0.0f, scale, growth, hysteresis, updates, fixed);
  EXPECT_EQ(scale, 8.0f);
  EXPECT_EQ(updates, 2.0f);
}

} // namespace
} // namespace meg::kernels::cpu
