// GeLU (tanh and erf forms) against double references; backward against central differences.
#include "kernels/cpu/Gelu.h"

#include "TestUtil.h"

namespace meg::kernels::cpu {
namespace {

using test::expectNear;
using test::numericGradient;
using test::randomFloats;
using test::toDouble;

double referenceGelu(GeluForm form, double x) {
  if (form == GeluForm::Tanh)
    return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
  return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0)));
}

TEST(Gelu, KnownValues) {
  // torch: F.gelu(1.0, approximate='tanh') = 0.8411920, F.gelu(1.0) = 0.8413447, F.gelu(-2.0) = -0.0455003.
  float one = 1.0f, minusTwo = -2.0f, y = 0;
  geluForward(GeluForm::Tanh, &one, 1, &y);
  EXPECT_NEAR(y, 0.8411920, 1e-6);
  geluForward(GeluForm::Erf, &one, 1, &y);
  EXPECT_NEAR(y, 0.8413447, 1e-6);
  geluForward(GeluForm::Erf, &minusTwo, 1, &y);
  EXPECT_NEAR(y, -0.0455003, 1e-6);
}

TEST(Gelu, ForwardMatchesReference) {
  const int64_t n = 4099;
  std::vector<float> x = randomFloats(n, 1, -6.0f, 6.0f), y(n);
  for (GeluForm form : {GeluForm::Tanh, GeluForm::Erf}) {
    geluForward(form, x.data(), n, y.data());
    std::vector<double> e(n);
    for (int64_t i = 0; i < n; ++i)
      e[i] = referenceGelu(form, x[i]);
    expectNear(y, e, 1e-6, form == GeluForm::Tanh ? "tanh" : "erf");
  }
}

TEST(Gelu, BackwardMatchesFiniteDifferences) {
  const int64_t n = 257;
  std::vector<float> x = randomFloats(n, 2, -5.0f, 5.0f), dy = randomFloats(n, 3), dx(n);
  std::vector<double> w = toDouble(dy);
  for (GeluForm form : {GeluForm::Tanh, GeluForm::Erf}) {
    geluBackward(form, x.data(), dy.data(), n, dx.data());
    auto loss = [&](const std::vector<double> &v) {
      double s = 0;
      for (int64_t i = 0; i < n; ++i)
        s += w[i] * referenceGelu(form, v[i]);
      return s;
    };
    expectNear(dx, numericGradient(loss, toDouble(x)), 1e-5, form == GeluForm::Tanh ? "tanh" : "erf");
  }
}

} // namespace
} // namespace meg::kernels::cpu
