//===- HalfTest.cpp - bf16 / f16 conversions (kernels/Half.h) -----------------===//
#include "kernels/Half.h"
#include "kernels/cpu/Elementwise.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

using namespace meg::kernels;

namespace {

float fromBits(uint32_t u) { return bitsFloat(u); }

TEST(HalfTest, Bf16ExactValuesAndWidening) {
  EXPECT_EQ(floatToBf16(1.0f), 0x3F80);
  EXPECT_EQ(floatToBf16(-2.0f), 0xC000);
  EXPECT_EQ(floatToBf16(0.0f), 0x0000);
  EXPECT_EQ(floatToBf16(-0.0f), 0x8000);
  EXPECT_EQ(bf16ToFloat(0x3F80), 1.0f);
  EXPECT_EQ(bf16ToFloat(0x4049), 3.140625f);
  // Every bf16 value survives the round trip (NaNs stay NaNs).
  for (uint32_t b = 0; b < 0x10000; ++b) {
    float f = bf16ToFloat(uint16_t(b));
    if (std::isnan(f))
      EXPECT_TRUE(std::isnan(bf16ToFloat(floatToBf16(f)))) << b;
    else
      EXPECT_EQ(floatToBf16(f), b) << b;
  }
}

TEST(HalfTest, Bf16RoundsToNearestEven) {
  // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to the even mantissa (1); 1 + 3 * 2^-8 to 1 + 2^-6.
  EXPECT_EQ(floatToBf16(1.0f + std::ldexp(1.0f, -8)), 0x3F80);
  EXPECT_EQ(floatToBf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3F82);
  // Just above / below the halfway point.
  EXPECT_EQ(floatToBf16(fromBits(0x3F808001)), 0x3F81);
  EXPECT_EQ(floatToBf16(fromBits(0x3F807FFF)), 0x3F80);
  // The largest finite float rounds up to infinity; the largest finite bf16 stays.
  EXPECT_EQ(floatToBf16(std::numeric_limits<float>::max()), 0x7F80);
  EXPECT_EQ(floatToBf16(fromBits(0x7F7F0000)), 0x7F7F);
}

TEST(HalfTest, Bf16SpecialValues) {
  EXPECT_EQ(floatToBf16(INFINITY), 0x7F80);
  EXPECT_EQ(floatToBf16(-INFINITY), 0xFF80);
  EXPECT_TRUE(std::isinf(bf16ToFloat(0x7F80)));
  uint16_t nan = floatToBf16(std::numeric_limits<float>::quiet_NaN());
  EXPECT_TRUE(std::isnan(bf16ToFloat(nan)));
  // A NaN whose payload sits only in the dropped bits stays a NaN (never becomes infinity), sign kept.
  EXPECT_TRUE(std::isnan(bf16ToFloat(floatToBf16(fromBits(0x7F800001)))));
  EXPECT_EQ(floatToBf16(fromBits(0xFF800001)) & 0x8000, 0x8000);
  // Float subnormals: the smallest rounds to zero, a bf16 subnormal is kept.
  EXPECT_EQ(floatToBf16(fromBits(0x00000001)), 0x0000);
  EXPECT_EQ(floatToBf16(fromBits(0x00010000)), 0x0001);
  EXPECT_EQ(bf16ToFloat(0x0001), fromBits(0x00010000));
}

TEST(HalfTest, F16ExactValuesAndWidening) {
  EXPECT_EQ(f16ToFloat(0x3C00), 1.0f);
  EXPECT_EQ(f16ToFloat(0xC000), -2.0f);
  EXPECT_EQ(f16ToFloat(0x7BFF), 65504.0f);
  EXPECT_EQ(f16ToFloat(0x0001), std::ldexp(1.0f, -24)); // smallest subnormal
  EXPECT_EQ(f16ToFloat(0x03FF), std::ldexp(1023.0f, -24));
  EXPECT_EQ(f16ToFloat(0x0400), std::ldexp(1.0f, -14)); // smallest normal
  EXPECT_TRUE(std::signbit(f16ToFloat(0x8000)));
  EXPECT_EQ(floatToF16(1.0f), 0x3C00);
  EXPECT_EQ(floatToF16(65504.0f), 0x7BFF);
  EXPECT_EQ(floatToF16(-0.0f), 0x8000);
  // Every f16 value survives the round trip.
  for (uint32_t h = 0; h < 0x10000; ++h) {
    float f = f16ToFloat(uint16_t(h));
    if (std::isnan(f))
      EXPECT_TRUE(std::isnan(f16ToFloat(floatToF16(f)))) << h;
    else
      EXPECT_EQ(floatToF16(f), h) << h;
  }
}

TEST(HalfTest, F16RoundsToNearestEven) {
  // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: to even (1); 1 + 3 * 2^-11 up to 1 + 2^-9.
  EXPECT_EQ(floatToF16(1.0f + std::ldexp(1.0f, -11)), 0x3C00);
  EXPECT_EQ(floatToF16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3C02);
  EXPECT_EQ(floatToF16(1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20)), 0x3C01);
  // Overflow: 65519.996 rounds down to 65504, 65520 (the halfway point, 65504 odd) up to infinity.
  EXPECT_EQ(floatToF16(std::nextafter(65520.0f, 0.0f)), 0x7BFF);
  EXPECT_EQ(floatToF16(65520.0f), 0x7C00);
  EXPECT_EQ(floatToF16(-1e6f), 0xFC00);
  // Subnormals: halfway between 0 and the smallest (2^-25) goes to 0, above it to 0x0001; 1.5 * 2^-24 ties to
  // even (2 * 2^-24); 2.5 * 2^-24 ties to even (2 * 2^-24); the largest subnormal plus half an ulp rounds up to the
  // smallest normal.
  EXPECT_EQ(floatToF16(std::ldexp(1.0f, -25)), 0x0000);
  EXPECT_EQ(floatToF16(std::ldexp(1.5f, -25)), 0x0001);
  EXPECT_EQ(floatToF16(std::ldexp(1.5f, -24)), 0x0002);
  EXPECT_EQ(floatToF16(std::ldexp(2.5f, -24)), 0x0002);
  EXPECT_EQ(floatToF16(std::ldexp(1023.5f, -24)), 0x0400);
  EXPECT_EQ(floatToF16(-std::ldexp(3.0f, -24)), 0x8003);
  EXPECT_EQ(floatToF16(std::ldexp(1.0f, -30)), 0x0000);
  EXPECT_EQ(floatToF16(-std::ldexp(1.0f, -30)), 0x8000);
}

TEST(HalfTest, F16SpecialValues) {
  EXPECT_EQ(floatToF16(INFINITY), 0x7C00);
  EXPECT_EQ(floatToF16(-INFINITY), 0xFC00);
  EXPECT_TRUE(std::isinf(f16ToFloat(0x7C00)));
  EXPECT_TRUE(std::isnan(f16ToFloat(0x7E00)));
  EXPECT_TRUE(std::isnan(f16ToFloat(floatToF16(std::numeric_limits<float>::quiet_NaN()))));
  // A NaN with payload only in the low bits stays a NaN.
  EXPECT_TRUE(std::isnan(f16ToFloat(floatToF16(fromBits(0x7F800001)))));
  EXPECT_EQ(floatToF16(fromBits(0xFFC00000)) & 0x8000, 0x8000);
}

TEST(HalfTest, CastKernelConvertsEveryElementType) {
  std::vector<float> x = {1.0f, -2.5f, 1.0f + std::ldexp(1.0f, -8), 65520.0f, NAN, -INFINITY, 3.7f};
  std::vector<uint16_t> bf(x.size()), h(x.size());
  cpu::cast(x.data(), Elem::F32, bf.data(), Elem::BF16, int64_t(x.size()));
  cpu::cast(x.data(), Elem::F32, h.data(), Elem::F16, int64_t(x.size()));
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_EQ(bf[i], floatToBf16(x[i])) << i;
    EXPECT_EQ(h[i], floatToF16(x[i])) << i;
  }
  // 16 -> 16 goes through fp32 (exact widening, one rounding).
  std::vector<uint16_t> hb(x.size());
  cpu::cast(h.data(), Elem::F16, hb.data(), Elem::BF16, int64_t(x.size()));
  for (size_t i = 0; i < x.size(); ++i)
    EXPECT_EQ(hb[i], floatToBf16(f16ToFloat(h[i]))) << i;
  std::vector<float> back(x.size());
  cpu::cast(bf.data(), Elem::BF16, back.data(), Elem::F32, int64_t(x.size()));
  EXPECT_EQ(back[0], 1.0f);
  EXPECT_EQ(back[1], -2.5f);
  EXPECT_EQ(back[2], 1.0f);
  EXPECT_TRUE(std::isnan(back[4]));
  std::vector<int32_t> ints(x.size());
  cpu::cast(back.data(), Elem::F32, ints.data(), Elem::I32, 2);
  EXPECT_EQ(ints[0], 1);
  EXPECT_EQ(ints[1], -2);
}

} // namespace
