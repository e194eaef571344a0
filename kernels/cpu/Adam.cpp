// AdamW and sum of squares; see Adam.h for the math.
#include "kernels/cpu/Adam.h"

#include "kernels/cpu/Parallel.h"

#include <algorithm>
#include <cassert>
#include <cmath>

namespace meg::kernels::cpu {

void adamwStep(float *param, const float *grad, float *m, float *v, int64_t n, const AdamConfig &config, int64_t step) {
  assert(step >= 1 && "adam steps are 1-based");
  double bias1 = 1.0 - std::pow(config.beta1, static_cast<double>(step));
  double bias2 = 1.0 - std::pow(config.beta2, static_cast<double>(step));
  const float decay = static_cast<float>(1.0 - config.lr * config.weightDecay);
  const float negStepSize = static_cast<float>(-(config.lr / bias1));
  const float bias2Sqrt = static_cast<float>(std::sqrt(bias2));
  const float b1 = static_cast<float>(config.beta1), b2 = static_cast<float>(config.beta2);
  const float oneMinusB1 = static_cast<float>(1.0 - config.beta1), oneMinusB2 = static_cast<float>(1.0 - config.beta2);
  const float eps = static_cast<float>(config.eps);
  parallelFor(n, kChunkWork / 8, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      float g = grad[i];
      float p = param[i] * decay;
      float mi = m[i] * b1 + oneMinusB1 * g;
      float vi = v[i] * b2 + oneMinusB2 * g * g;
      float denom = std::sqrt(vi) / bias2Sqrt + eps;
      param[i] = p + negStepSize * mi / denom;
      m[i] = mi;
      v[i] = vi;
    }
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

} // namespace meg::kernels::cpu
