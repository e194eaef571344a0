// Row softmax; see Softmax.h for the math. Row sums accumulate in double.
#include "kernels/cpu/Softmax.h"

#include "kernels/cpu/Parallel.h"

#include <cmath>
#include <limits>

namespace meg::kernels::cpu {

void softmaxForward(const float *x, int64_t rows, int64_t n, float *y) {
  parallelFor(rows, grainFor(4 * n), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float *xr = x + r * n;
      float *yr = y + r * n;
      float mx = -std::numeric_limits<float>::infinity();
      for (int64_t j = 0; j < n; ++j)
        mx = std::fmax(mx, xr[j]);
      double sum = 0;
      for (int64_t j = 0; j < n; ++j) {
        yr[j] = std::exp(xr[j] - mx);
        sum += yr[j];
      }
      float inv = static_cast<float>(1.0 / sum);
      for (int64_t j = 0; j < n; ++j)
        yr[j] *= inv;
    }
  });
}

void softmaxBackward(const float *y, const float *dy, int64_t rows, int64_t n, float *dx) {
  parallelFor(rows, grainFor(3 * n), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float *yr = y + r * n, *dyr = dy + r * n;
      float *dxr = dx + r * n;
      double dot = 0;
      for (int64_t j = 0; j < n; ++j)
        dot += static_cast<double>(dyr[j]) * yr[j];
      float d = static_cast<float>(dot);
      for (int64_t j = 0; j < n; ++j)
        dxr[j] = yr[j] * (dyr[j] - d);
    }
  });
}

} // namespace meg::kernels::cpu
