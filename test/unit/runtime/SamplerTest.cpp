//===- SamplerTest.cpp - greedy and seeded top-k / top-p / temperature sampling ===//
#include "runtime/train/Sampler.h"

#include "gtest/gtest.h"

#include <algorithm>
#include <cmath>
#include <vector>

using namespace meg::runtime;

namespace {

/// Logits whose softmax is `probs`.
std::vector<float> logitsOf(const std::vector<double> &probs) {
  std::vector<float> logits;
  for (double p : probs)
    logits.push_back(float(std::log(p)));
  return logits;
}

SamplingOptions sampling(double temperature = 1.0, int64_t topK = 0, double topP = 1.0, uint64_t seed = 7) {
  SamplingOptions o;
  o.greedy = false;
  o.temperature = temperature;
  o.topK = topK;
  o.topP = topP;
  o.seed = seed;
  return o;
}

/// 256 pseudo-random logits (a fixed LCG), as a byte-level model's.
std::vector<float> byteLogits(uint32_t state) {
  std::vector<float> logits(256);
  for (float &l : logits) {
    state = state * 1664525u + 1013904223u;
    l = float(state >> 8) / float(1 << 24) * 8.0f - 4.0f;
  }
  return logits;
}

TEST(SamplerTest, GreedyIsTheFirstArgmax) {
  std::vector<float> logits = {0.5f, 2.0f, -1.0f, 2.0f};
  EXPECT_EQ(Sampler(SamplingOptions()).sample(logits, 3), 1);
  EXPECT_EQ(Sampler(sampling(0.0)).sample(logits, 3), 1); // temperature 0: greedy
  std::vector<double> probs = Sampler(SamplingOptions()).distribution(logits);
  EXPECT_EQ(probs, (std::vector<double>{0, 1, 0, 0}));
}

TEST(SamplerTest, TopKOneIsArgmax) {
  for (uint32_t s = 0; s < 20; ++s) {
    std::vector<float> logits = byteLogits(s);
    int32_t argmax = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
    for (double temperature : {0.3, 0.8, 1.0, 5.0}) {
      Sampler topOne(sampling(temperature, 1, 1.0, s));
      for (uint64_t position = 0; position < 50; ++position)
        ASSERT_EQ(topOne.sample(logits, position), argmax);
    }
  }
}

TEST(SamplerTest, TopKKeepsTheKMostLikely) {
  std::vector<double> probs = Sampler(sampling(1.0, 2)).distribution(logitsOf({0.1, 0.4, 0.2, 0.3}));
  EXPECT_EQ(probs[0], 0);
  EXPECT_NEAR(probs[1], 0.4 / 0.7, 1e-6);
  EXPECT_EQ(probs[2], 0);
  EXPECT_NEAR(probs[3], 0.3 / 0.7, 1e-6);
}

TEST(SamplerTest, TopPKeepsTheSmallestSetWithEnoughMass) {
  std::vector<float> logits = logitsOf({0.1, 0.5, 0.15, 0.25});
  // Sorted: 0.5 (id 1), 0.25 (id 3), 0.15 (id 2), 0.1 (id 0).
  auto kept = [&](double topP) {
    std::vector<double> probs = Sampler(sampling(1.0, 0, topP)).distribution(logits);
    std::vector<int> ids;
    for (size_t i = 0; i < probs.size(); ++i)
      if (probs[i] > 0)
        ids.push_back(int(i));
    return ids;
  };
  EXPECT_EQ(kept(0.3), (std::vector<int>{1}));
  EXPECT_EQ(kept(0.5 - 1e-6), (std::vector<int>{1}));
  EXPECT_EQ(kept(0.6), (std::vector<int>{1, 3}));
  EXPECT_EQ(kept(0.74), (std::vector<int>{1, 3}));
  EXPECT_EQ(kept(0.8), (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(kept(0.95), (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(kept(1.0), (std::vector<int>{0, 1, 2, 3}));
  // What is kept is renormalized.
  std::vector<double> probs = Sampler(sampling(1.0, 0, 0.6)).distribution(logits);
  EXPECT_NEAR(probs[1], 0.5 / 0.75, 1e-6);
  EXPECT_NEAR(probs[3], 0.25 / 0.75, 1e-6);
}

TEST(SamplerTest, TopPAppliesAfterTemperatureAndTopK) {
  // Temperature 0.5 squares and renormalizes: 0.5^2, 0.25^2, 0.15^2, 0.1^2 -> 0.25 / 0.355 = 0.704 for the first.
  std::vector<float> logits = logitsOf({0.1, 0.5, 0.15, 0.25});
  std::vector<double> probs = Sampler(sampling(0.5, 0, 0.7)).distribution(logits);
  EXPECT_EQ(probs, (std::vector<double>{0, 1, 0, 0}));
  // Top-k 2 first: the mass of {1, 3} is the whole, so top-p 0.9 keeps both.
  probs = Sampler(sampling(1.0, 2, 0.9)).distribution(logits);
  EXPECT_NEAR(probs[1], 2.0 / 3.0, 1e-6);
  EXPECT_NEAR(probs[3], 1.0 / 3.0, 1e-6);
}

TEST(SamplerTest, TemperatureScalesLogits) {
  std::vector<float> logits = {1.0f, 0.0f, -0.5f, 2.0f};
  for (double temperature : {0.25, 0.5, 1.0, 2.0, 10.0}) {
    std::vector<double> probs = Sampler(sampling(temperature)).distribution(logits);
    double total = 0;
    for (size_t i = 0; i < logits.size(); ++i) {
      total += probs[i];
      EXPECT_NEAR(probs[i] / probs[0], std::exp((logits[i] - logits[0]) / temperature), 1e-9) << temperature;
    }
    EXPECT_NEAR(total, 1.0, 1e-12);
  }
  // Lower temperature sharpens: the most likely id gains.
  EXPECT_GT(Sampler(sampling(0.5)).distribution(logits)[3], Sampler(sampling(2.0)).distribution(logits)[3]);
}

TEST(SamplerTest, SameSeedSameDraws) {
  std::vector<float> logits = byteLogits(11);
  Sampler a(sampling(0.8, 40, 0.95, 3)), b(sampling(0.8, 40, 0.95, 3)), other(sampling(0.8, 40, 0.95, 4));
  int differ = 0;
  for (uint64_t position = 0; position < 500; ++position) {
    ASSERT_EQ(a.sample(logits, position), b.sample(logits, position));
    differ += a.sample(logits, position) != other.sample(logits, position);
  }
  EXPECT_GT(differ, 400); // 40 candidates: another seed agrees rarely
  EXPECT_EQ(samplingUniform(3, 17), samplingUniform(3, 17));
  EXPECT_NE(samplingUniform(3, 17), samplingUniform(3, 18));
  EXPECT_NE(samplingUniform(3, 17), samplingUniform(4, 17));
}

TEST(SamplerTest, UniformIsInUnitInterval) {
  double sum = 0;
  const int n = 100000;
  for (uint64_t position = 0; position < n; ++position) {
    double u = samplingUniform(99, position);
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    sum += u;
  }
  EXPECT_NEAR(sum / n, 0.5, 0.005);
}

TEST(SamplerTest, DrawsFollowTheDistribution) {
  // Frequencies over many positions match the filtered distribution (standard error <= 0.0011 at n = 200000; the
  // tolerance is 5 of them).
  std::vector<float> logits = logitsOf({0.05, 0.5, 0.3, 0.15});
  const int n = 200000;
  for (SamplingOptions options : {sampling(1.0), sampling(0.7), sampling(1.0, 2), sampling(1.0, 0, 0.85)}) {
    Sampler sampler(options);
    std::vector<double> expected = sampler.distribution(logits);
    std::vector<int> counts(logits.size(), 0);
    for (uint64_t position = 0; position < n; ++position)
      ++counts[size_t(sampler.sample(logits, position))];
    for (size_t i = 0; i < logits.size(); ++i) {
      if (expected[i] == 0)
        EXPECT_EQ(counts[i], 0) << "id " << i << " was filtered out";
      EXPECT_NEAR(double(counts[i]) / n, expected[i], 0.0055) << "id " << i << ", temperature "
                                                              << options.temperature << ", top-k " << options.topK
                                                              << ", top-p " << options.topP;
    }
  }
}

TEST(SamplerTest, ChecksOptions) {
  EXPECT_FALSE(bool(sampling(0.0).check()));
  EXPECT_FALSE(bool(sampling(1.0, 0, 1.0).check()));
  EXPECT_EQ(llvm::toString(sampling(-0.5).check()), "--temperature must be >= 0 (got -0.5)");
  EXPECT_EQ(llvm::toString(sampling(1.0, -1).check()), "--top-k must be >= 0 (got -1)");
  EXPECT_EQ(llvm::toString(sampling(1.0, 0, 0.0).check()), "--top-p must be in (0, 1] (got 0)");
  EXPECT_EQ(llvm::toString(sampling(1.0, 0, 1.5).check()), "--top-p must be in (0, 1] (got 1.5)");
}

} // namespace
