// AdamW and sum of squares; see Adam.h for the math.
#include "kernels/cpu/Adam.h"

#include "kernels/Math.h"
#include "kernels/cpu/Parallel.h"

#include <algorithm>
#include <cassert>
#include <cmath>

namespace meg::kernels::cpu {

void adamwStep(float *param, const float *grad, float *m, float *v, int64_t n, const AdamConfig &config,
               float gradScale, int64_t step) {
  assert(step >= 1 && "adam steps are 1-based");
  const AdamFactors f = adamFactors(config.lr, config.beta1, config.beta2, config.eps, config.weightDecay,
                                    1.0 - std::pow(config.beta1, static_cast<double>(step)),
                                    1.0 - std::pow(config.beta2, static_cast<double>(step)));
  parallelFor(n, kChunkWork / 8, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i)
      adamwElement(param[i], m[i], v[i], grad[i] * gradScale, f);
  });
}

double sumOfSquares(const float *x, int64_t n) {
  constexpr int64_t kMaxBlocks = 256, kMinBlock = 4096;
  int64_t block = std::max(kMinBlock, (n + kMaxBlocks - 1) / kMaxBlocks);
  int64_t blocks = (n + block - 1) / block;
  double partial[kMaxBlocks] = {};
  parallelFor(blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t blk = begin; blk < end; ++blk) {
      double sum = 0;
      int64_t stop = std::min(n, (blk + 1) * block);
      for (int64_t i = blk * block; i < stop; ++i)
        sum += static_cast<double>(x[i]) * x[i];
      partial[blk] = sum;
    }
  });
  double total = 0;
  for (int64_t blk = 0; blk < blocks; ++blk)
    total += partial[blk];
  return total;
}

bool anyNonfinite(const float *x, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(x[i]))
      return true;
  return false;
}

} // namespace meg::kernels::cpu

void meg::kernels::cpu::accumulate(float *acc, const float *x, int64_t n, float scale, bool first, float *out) {
  for (int64_t i = 0; i < n; ++i) {
    acc[i] = (first ? 0.0f : acc[i]) + scale * x[i];
    if (out)
      out[i] = acc[i];
  }
}
