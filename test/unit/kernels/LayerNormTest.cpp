// LayerNorm against a double reference; backward against central differences; thread-count invariance.
#include "kernels/cpu/LayerNorm.h"

#include "TestUtil.h"

namespace meg::kernels::cpu {
namespace {

using test::dot;
using test::expectNear;
using test::expectThreadInvariant;
using test::numericGradient;
using test::randomFloats;
using test::toDouble;

constexpr float kEps = 1e-5f;

std::vector<double> referenceLayerNorm(const std::vector<double> &x, const std::vector<double> &g,
                                       const std::vector<double> &b, int64_t rows, int64_t n,
                                       std::vector<double> *mean = nullptr, std::vector<double> *rstd = nullptr) {
  std::vector<double> y(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    double mu = 0, var = 0;
    for (int64_t j = 0; j < n; ++j)
      mu += x[r * n + j];
    mu /= n;
    for (int64_t j = 0; j < n; ++j)
      var += (x[r * n + j] - mu) * (x[r * n + j] - mu);
    var /= n;
    double rs = 1 / std::sqrt(var + kEps);
    for (int64_t j = 0; j < n; ++j)
      y[r * n + j] = (x[r * n + j] - mu) * rs * g[j] + b[j];
    if (mean)
      mean->push_back(mu);
    if (rstd)
      rstd->push_back(rs);
  }
  return y;
}

TEST(LayerNorm, ForwardMatchesReference) {
  const int64_t rows = 33, n = 100;
  std::vector<float> x = randomFloats(rows * n, 1, -2.0f, 3.0f), g = randomFloats(n, 2), b = randomFloats(n, 3);
  std::vector<float> y(rows * n), mean(rows), rstd(rows);
  layerNormForward(x.data(), g.data(), b.data(), rows, n, kEps, y.data(), mean.data(), rstd.data());
  std::vector<double> em, er;
  expectNear(y, referenceLayerNorm(toDouble(x), toDouble(g), toDouble(b), rows, n, &em, &er), 1e-5, "y");
  expectNear(mean, em, 1e-6, "mean");
  expectNear(rstd, er, 1e-6, "rstd");

  // Without affine parameters: gain 1, bias 0.
  std::vector<float> plain(rows * n);
  layerNormForward(x.data(), nullptr, nullptr, rows, n, kEps, plain.data(), nullptr, nullptr);
  expectNear(plain, referenceLayerNorm(toDouble(x), std::vector<double>(n, 1.0), std::vector<double>(n, 0.0), rows, n),
             1e-5, "no affine");

  std::vector<float> m2(rows), r2(rows);
  layerNormStats(x.data(), rows, n, kEps, m2.data(), r2.data());
  EXPECT_EQ(m2, mean);
  EXPECT_EQ(r2, rstd);
}

TEST(LayerNorm, BackwardMatchesFiniteDifferences) {
  const int64_t rows = 4, n = 7;
  std::vector<float> x = randomFloats(rows * n, 4, -2.0f, 2.0f), g = randomFloats(n, 5), b = randomFloats(n, 6);
  std::vector<float> dy = randomFloats(rows * n, 7), y(rows * n), mean(rows), rstd(rows);
  layerNormForward(x.data(), g.data(), b.data(), rows, n, kEps, y.data(), mean.data(), rstd.data());
  // dx, dg and db are overwritten: start from stale values.
  std::vector<float> dx = randomFloats(rows * n, 13), dg = randomFloats(n, 8), db = randomFloats(n, 9);
  layerNormBackward(x.data(), g.data(), mean.data(), rstd.data(), dy.data(), rows, n, dx.data(), dg.data(), db.data());

  std::vector<double> w = toDouble(dy), xd = toDouble(x), gd = toDouble(g), bd = toDouble(b);
  expectNear(
      dx,
      numericGradient([&](const std::vector<double> &v) { return dot(w, referenceLayerNorm(v, gd, bd, rows, n)); }, xd),
      1e-5, "dx");
  std::vector<double> eg =
      numericGradient([&](const std::vector<double> &v) { return dot(w, referenceLayerNorm(xd, v, bd, rows, n)); }, gd);
  std::vector<double> eb =
      numericGradient([&](const std::vector<double> &v) { return dot(w, referenceLayerNorm(xd, gd, v, rows, n)); }, bd);
  expectNear(dg, eg, 1e-5, "dg");
  expectNear(db, eb, 1e-5, "db");

  // Null gain means gain 1.
  std::vector<float> dxPlain(rows * n);
  layerNormForward(x.data(), nullptr, nullptr, rows, n, kEps, y.data(), mean.data(), rstd.data());
  layerNormBackward(x.data(), nullptr, mean.data(), rstd.data(), dy.data(), rows, n, dxPlain.data(), nullptr, nullptr);
  std::vector<double> ones(n, 1.0), zeros(n, 0.0);
  expectNear(dxPlain,
             numericGradient(
                 [&](const std::vector<double> &v) { return dot(w, referenceLayerNorm(v, ones, zeros, rows, n)); }, xd),
             1e-5, "dx without gain");
}

TEST(LayerNorm, BackwardIsThreadCountInvariant) {
  const int64_t rows = 2003, n = 257;
  std::vector<float> x = randomFloats(rows * n, 10), g = randomFloats(n, 11), dy = randomFloats(rows * n, 12);
  std::vector<float> y(rows * n), mean(rows), rstd(rows);
  layerNormForward(x.data(), g.data(), nullptr, rows, n, kEps, y.data(), mean.data(), rstd.data());
  expectThreadInvariant(
      [&] {
        std::vector<float> out(rows * n + 2 * n, 0.0f);
        float *dx = out.data(), *dg = dx + rows * n, *db = dg + n;
        layerNormBackward(x.data(), g.data(), mean.data(), rstd.data(), dy.data(), rows, n, dx, dg, db);
        return out;
      },
      "layer norm backward");
  expectThreadInvariant(
      [&] {
        std::vector<float> out(rows * n);
        layerNormForward(x.data(), g.data(), nullptr, rows, n, kEps, out.data(), nullptr, nullptr);
        return out;
      },
      "layer norm forward");
}

} // namespace
} // namespace meg::kernels::cpu
