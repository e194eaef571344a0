// Embedding lookup; see Embedding.h for the math.
#include "kernels/cpu/Embedding.h"

#include "kernels/cpu/Parallel.h"

#include <cstring>

namespace meg::kernels::cpu {

namespace {
constexpr int64_t kColumnBlock = 64;
} // namespace

void embeddingForward(const float *table, int64_t rows, int64_t dim, const int32_t *ids, int64_t tokens,
                      int64_t rowOffset, float *out) {
  parallelFor(tokens, grainFor(dim), [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      int64_t r = static_cast<int64_t>(ids[t]) - rowOffset;
      if (r >= 0 && r < rows)
        std::memcpy(out + t * dim, table + r * dim, sizeof(float) * dim);
      else
        std::memset(out + t * dim, 0, sizeof(float) * dim);
    }
  });
}

void embeddingBackward(const float *dy, const int32_t *ids, int64_t tokens, int64_t rowOffset, int64_t rows,
                       int64_t dim, float *dTable) {
  int64_t blocks = (dim + kColumnBlock - 1) / kColumnBlock;
  parallelFor(blocks, grainFor(tokens * kColumnBlock), [&](int64_t begin, int64_t end) {
    int64_t c0 = begin * kColumnBlock, c1 = end * kColumnBlock < dim ? end * kColumnBlock : dim;
    for (int64_t r = 0; r < rows; ++r)
      std::memset(dTable + r * dim + c0, 0, sizeof(float) * size_t(c1 - c0));
    for (int64_t t = 0; t < tokens; ++t) {
      int64_t r = static_cast<int64_t>(ids[t]) - rowOffset;
      if (r < 0 || r >= rows)
        continue;
      float *dst = dTable + r * dim;
      const float *src = dy + t * dim;
      for (int64_t c = c0; c < c1; ++c)
        dst[c] += src[c];
    }
  });
}

} // namespace meg::kernels::cpu
