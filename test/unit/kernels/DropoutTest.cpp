// Dropout: masks by global index (shards see slices of the unsharded mask), keep fraction, scaling, backward.
#include "kernels/cpu/Dropout.h"

#include "TestUtil.h"

namespace meg::kernels::cpu {
namespace {

using test::dot;
using test::expectNear;
using test::numericGradient;
using test::randomFloats;
using test::toDouble;

const PhiloxKey kKey{99, 4, 17};

std::vector<double> referenceDropout(const std::vector<double> &x, float p, const PhiloxKey &key) {
  std::vector<double> y(x.size());
  for (size_t i = 0; i < x.size(); ++i)
    y[i] = uniform(key, i) >= p ? x[i] / (1.0 - p) : 0.0;
  return y;
}

TEST(Dropout, ZeroProbabilityIsIdentity) {
  std::vector<float> x = randomFloats(1000, 1), y(1000);
  int64_t shape[] = {10, 100};
  dropoutForward(x.data(), {shape, nullptr, nullptr, 2}, 0.0f, kKey, y.data());
  EXPECT_TRUE(test::bitEqual(x, y));
}

TEST(Dropout, MatchesReferenceAndKeepFraction) {
  const int64_t n = 200000;
  int64_t shape[] = {400, 500};
  std::vector<float> x = randomFloats(n, 2), y(n);
  for (float p : {0.1f, 0.5f}) {
    dropoutForward(x.data(), {shape, nullptr, nullptr, 2}, p, kKey, y.data());
    expectNear(y, referenceDropout(toDouble(x), p, kKey), 1e-6);
    int64_t kept = 0;
    for (int64_t i = 0; i < n; ++i)
      kept += y[i] != 0.0f;
    double fraction = static_cast<double>(kept) / n;
    // Binomial standard deviation sqrt(p(1-p)/n) <= 1.2e-3: allow 5 sigma.
    EXPECT_NEAR(fraction, 1.0 - p, 6e-3) << "p " << p;
  }
}

TEST(Dropout, ShardMasksAreSlicesOfTheUnshardedMask) {
  // Global [4, 6, 8], split along dim 1 into two [4, 3, 8] shards, and along the last dim into [4, 6, 4] shards.
  int64_t global[] = {4, 6, 8};
  const int64_t n = 4 * 6 * 8;
  std::vector<float> x = randomFloats(n, 3), full(n);
  dropoutForward(x.data(), {global, nullptr, nullptr, 3}, 0.4f, kKey, full.data());
  for (int dim : {1, 2}) {
    for (int64_t shard = 0; shard < 2; ++shard) {
      int64_t local[] = {4, 6, 8}, offset[] = {0, 0, 0};
      local[dim] /= 2;
      offset[dim] = shard * local[dim];
      std::vector<float> lx, expected;
      for (int64_t a = 0; a < local[0]; ++a)
        for (int64_t b = 0; b < local[1]; ++b)
          for (int64_t c = 0; c < local[2]; ++c) {
            int64_t g = ((a + offset[0]) * 6 + b + offset[1]) * 8 + c + offset[2];
            lx.push_back(x[g]);
            expected.push_back(full[g]);
          }
      std::vector<float> ly(lx.size());
      dropoutForward(lx.data(), {local, global, offset, 3}, 0.4f, kKey, ly.data());
      EXPECT_TRUE(test::bitEqual(ly, expected)) << "dim " << dim << " shard " << shard;
    }
  }
}

TEST(Dropout, BackwardMatchesFiniteDifferences) {
  int64_t shape[] = {3, 7};
  std::vector<float> x = randomFloats(21, 4), dy = randomFloats(21, 5), dx(21);
  dropoutBackward(dy.data(), {shape, nullptr, nullptr, 2}, 0.3f, kKey, dx.data());
  std::vector<double> w = toDouble(dy);
  expectNear(dx,
             numericGradient([&](const std::vector<double> &v) { return dot(w, referenceDropout(v, 0.3f, kKey)); },
                             toDouble(x)),
             1e-6);
  // In place, and p == 1 drops everything.
  std::vector<float> inPlace = dy;
  dropoutBackward(inPlace.data(), {shape, nullptr, nullptr, 2}, 0.3f, kKey, inPlace.data());
  EXPECT_TRUE(test::bitEqual(inPlace, dx));
  dropoutForward(x.data(), {shape, nullptr, nullptr, 2}, 1.0f, kKey, dx.data());
  EXPECT_EQ(dx, std::vector<float>(21, 0.0f));
}

} // namespace
} // namespace meg::kernels::cpu
