// Layer normalization; see LayerNorm.h for the math. Row statistics accumulate in double.
#include "kernels/cpu/LayerNorm.h"

#include "kernels/cpu/Parallel.h"

#include <cmath>

namespace meg::kernels::cpu {

namespace {

constexpr int64_t kColumnBlock = 64;

void rowStats(const float *xr, int64_t n, float eps, float &mean, float &rstd) {
  double sum = 0;
  for (int64_t j = 0; j < n; ++j)
    sum += xr[j];
  double mu = sum / static_cast<double>(n);
  double sq = 0;
  for (int64_t j = 0; j < n; ++j) {
    double d = xr[j] - mu;
    sq += d * d;
  }
  mean = static_cast<float>(mu);
  rstd = static_cast<float>(1.0 / std::sqrt(sq / static_cast<double>(n) + eps));
}

} // namespace

void layerNormForward(const float *x, const float *g, const float *b, int64_t rows, int64_t n, float eps, float *y,
                      float *mean, float *rstd) {
  parallelFor(rows, grainFor(4 * n), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float *xr = x + r * n;
      float *yr = y + r * n;
      float mu, rs;
      rowStats(xr, n, eps, mu, rs);
      for (int64_t j = 0; j < n; ++j) {
        float xhat = (xr[j] - mu) * rs;
        yr[j] = (g ? g[j] * xhat : xhat) + (b ? b[j] : 0.0f);
      }
      if (mean)
        mean[r] = mu;
      if (rstd)
        rstd[r] = rs;
    }
  });
}

void layerNormStats(const float *x, int64_t rows, int64_t n, float eps, float *mean, float *rstd) {
  parallelFor(rows, grainFor(3 * n), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r)
      rowStats(x + r * n, n, eps, mean[r], rstd[r]);
  });
}

void layerNormBackward(const float *x, const float *g, const float *mean, const float *rstd, const float *dy,
                       int64_t rows, int64_t n, float *dx, float *dg, float *db) {
  if (dx) {
    parallelFor(rows, grainFor(6 * n), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const float *xr = x + r * n, *dyr = dy + r * n;
        float *dxr = dx + r * n;
        float mu = mean[r], rs = rstd[r];
        double sumG = 0, sumGX = 0;
        for (int64_t j = 0; j < n; ++j) {
          float gdy = g ? g[j] * dyr[j] : dyr[j];
          sumG += gdy;
          sumGX += static_cast<double>(gdy) * ((xr[j] - mu) * rs);
        }
        float meanG = static_cast<float>(sumG / static_cast<double>(n));
        float meanGX = static_cast<float>(sumGX / static_cast<double>(n));
        for (int64_t j = 0; j < n; ++j) {
          float gdy = g ? g[j] * dyr[j] : dyr[j];
          float xhat = (xr[j] - mu) * rs;
          dxr[j] = rs * (gdy - meanG - xhat * meanGX);
        }
      }
    });
  }
  if (!dg && !db)
    return;
  // Each column block is owned by one chunk and summed over rows in row order.
  int64_t blocks = (n + kColumnBlock - 1) / kColumnBlock;
  parallelFor(blocks, grainFor(rows * kColumnBlock), [&](int64_t begin, int64_t end) {
    for (int64_t blk = begin; blk < end; ++blk) {
      int64_t c0 = blk * kColumnBlock, width = n - c0 < kColumnBlock ? n - c0 : kColumnBlock;
      double accG[kColumnBlock] = {}, accB[kColumnBlock] = {};
      for (int64_t r = 0; r < rows; ++r) {
        const float *xr = x + r * n + c0, *dyr = dy + r * n + c0;
        float mu = mean[r], rs = rstd[r];
        for (int64_t c = 0; c < width; ++c) {
          accG[c] += static_cast<double>(dyr[c]) * ((xr[c] - mu) * rs);
          accB[c] += dyr[c];
        }
      }
      for (int64_t c = 0; c < width; ++c) {
        if (dg)
          dg[c0 + c] = static_cast<float>(accG[c]);
        if (db)
          db[c0 + c] = static_cast<float>(accB[c]);
      }
    }
  });
}

} // namespace meg::kernels::cpu
