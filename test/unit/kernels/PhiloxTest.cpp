// Philox4x32-10 against the Random123 known-answer vectors, and meg's key/counter mapping.
#include "kernels/Philox.h"

#include <gtest/gtest.h>

namespace meg::kernels {
namespace {

struct Kat {
  Philox4x32 ctr;
  uint32_t k0, k1;
  Philox4x32 expected;
};

TEST(Philox, Random123KnownAnswers) {
  const Kat kats[] = {
      {{{0, 0, 0, 0}}, 0, 0, {{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}}},
      {{{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}},
       0xffffffff,
       0xffffffff,
       {{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}}},
      {{{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}},
       0xa4093822,
       0x299f31d0,
       {{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}}},
  };
  for (const Kat &kat : kats) {
    Philox4x32 out = philox4x32(kat.ctr, kat.k0, kat.k1);
    for (int w = 0; w < 4; ++w)
      EXPECT_EQ(out.v[w], kat.expected.v[w]) << "word " << w;
  }
}

TEST(Philox, UniformUsesDocumentedMapping) {
  uint64_t seed = 0x0123456789abcdefull, index = 0x0000000500000007ull;
  uint32_t stream = 11, step = 42;
  Philox4x32 raw = philox4x32({{0x00000007u, 0x00000005u, step, stream}}, 0x89abcdefu, 0x01234567u);
  EXPECT_EQ(uniform(seed, stream, step, index), static_cast<float>(raw.v[0] >> 8) / 16777216.0f);
  PhiloxKey key{seed, stream, step};
  EXPECT_EQ(uniform(key, index), uniform(seed, stream, step, index));
}

TEST(Philox, UniformRangeAndMoments) {
  const int n = 200000;
  double sum = 0, sumSq = 0;
  for (int i = 0; i < n; ++i) {
    float u = uniform(7, 1, 3, static_cast<uint64_t>(i));
    ASSERT_GE(u, 0.0f);
    ASSERT_LT(u, 1.0f);
    sum += u;
    sumSq += static_cast<double>(u) * u;
  }
  double mean = sum / n, var = sumSq / n - mean * mean;
  // Standard error of the mean is sqrt(1/12 / n) ~ 6.5e-4: allow 5 sigma.
  EXPECT_NEAR(mean, 0.5, 3.3e-3);
  EXPECT_NEAR(var, 1.0 / 12.0, 2e-3);
}

TEST(Philox, StreamsStepsAndSeedsDiffer) {
  int sameStream = 0, sameStep = 0, sameSeed = 0;
  for (uint64_t i = 0; i < 1000; ++i) {
    float base = uniform(1, 2, 3, i);
    sameStream += base == uniform(1, 5, 3, i);
    sameStep += base == uniform(1, 2, 4, i);
    sameSeed += base == uniform(1ull << 32 | 1, 2, 3, i);
  }
  // Independent 24-bit draws collide with probability 2^-24 each.
  EXPECT_LE(sameStream, 1);
  EXPECT_LE(sameStep, 1);
  EXPECT_LE(sameSeed, 1);
}

} // namespace
} // namespace meg::kernels
