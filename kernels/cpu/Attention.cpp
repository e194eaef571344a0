// Fused scaled-dot-product attention; see Attention.h for the math.
#include "kernels/cpu/Attention.h"

#include "kernels/cpu/Parallel.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

namespace meg::kernels::cpu {

namespace {

/// a . b; the simd reduction order is fixed at compile time, so results do not depend on the thread count.
float dotProduct(const float *a, const float *b, int64_t n) {
  float sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t d = 0; d < n; ++d)
    sum += a[d] * b[d];
  return sum;
}

/// Addressing and dropout of one (b, h) pair.
struct HeadView {
  const AttentionParams &p;
  int64_t b, h;
  int64_t rowStride; ///< floats between consecutive positions of one head: heads * headDim
  float keepScale;

  HeadView(const AttentionParams &p, int64_t b, int64_t h)
      : p(p), b(b), h(h), rowStride(p.heads * p.headDim),
        keepScale(p.dropoutP > 0 ? 1.0f / (1.0f - p.dropoutP) : 1.0f) {}

  int64_t offset(int64_t pos) const { return ((b * p.seq + pos) * p.heads + h) * p.headDim; }

  /// P'_j / P_j for query i, key j: 0 when dropped, 1 / (1 - p) when kept.
  float dropoutFactor(int64_t i, int64_t j) const {
    if (p.dropoutP <= 0)
      return 1.0f;
    int64_t headsTotal = p.headsTotal ? p.headsTotal : p.heads;
    uint64_t index = static_cast<uint64_t>(((b * headsTotal + p.headOffset + h) * p.seq + i) * p.seq + j);
    return dropoutKeep(p.dropoutKey, index, p.dropoutP) ? keepScale : 0.0f;
  }

  /// Writes P_j for query i into prob[0, limit) and returns limit (keys j >= limit are never attended).
  /// Disallowed keys get exactly 0; a row with no allowed key is all 0.
  int64_t probabilities(const float *q, const float *k, int64_t i, float *prob) const {
    int64_t limit = p.causal ? i + 1 : p.seq;
    const float *qi = q + offset(i);
    const int32_t *mask = p.keyMask ? p.keyMask + b * p.seq : nullptr;
    float mx = -std::numeric_limits<float>::infinity();
    for (int64_t j = 0; j < limit; ++j) {
      if (mask && mask[j] == 0) {
        prob[j] = -std::numeric_limits<float>::infinity();
        continue;
      }
      const float *kj = k + offset(j);
      prob[j] = p.scale * dotProduct(qi, kj, p.headDim);
      mx = std::fmax(mx, prob[j]);
    }
    if (mx == -std::numeric_limits<float>::infinity()) {
      std::memset(prob, 0, sizeof(float) * limit);
      return limit;
    }
    double sum = 0;
    for (int64_t j = 0; j < limit; ++j) {
      prob[j] = std::exp(prob[j] - mx); // exp(-inf) == 0 for disallowed keys
      sum += prob[j];
    }
    float inv = static_cast<float>(1.0 / sum);
    for (int64_t j = 0; j < limit; ++j)
      prob[j] *= inv;
    return limit;
  }
};

} // namespace

void attentionForward(const AttentionParams &params, const float *q, const float *k, const float *v, float *out) {
  const int64_t seq = params.seq, dim = params.headDim;
  parallelFor(params.batch * params.heads * seq, grainFor(2 * seq * dim), [&](int64_t begin, int64_t end) {
    std::vector<float> prob(seq);
    for (int64_t row = begin; row < end; ++row) {
      int64_t i = row % seq, bh = row / seq;
      HeadView view(params, bh / params.heads, bh % params.heads);
      int64_t limit = view.probabilities(q, k, i, prob.data());
      float *oi = out + view.offset(i);
      std::memset(oi, 0, sizeof(float) * dim);
      for (int64_t j = 0; j < limit; ++j) {
        float pj = prob[j] == 0 ? 0.0f : prob[j] * view.dropoutFactor(i, j);
        if (pj == 0)
          continue;
        const float *vj = v + view.offset(j);
        for (int64_t d = 0; d < dim; ++d)
          oi[d] += pj * vj[d];
      }
    }
  });
}

void decodeAttention(const DecodeAttentionParams &p, const float *q, const float *k, const float *v, float *kCache,
                     float *vCache, const int32_t *position, float *out) {
  const int64_t dim = p.headDim, row = p.heads * p.headDim;
  for (int64_t b = 0; b < p.batch; ++b)
    for (int64_t t = 0; t < p.tokens; ++t) {
      int64_t pos = position[b * p.tokens + t];
      if (pos < 0 || pos >= p.cache)
        continue;
      std::memcpy(kCache + (b * p.cache + pos) * row, k + (b * p.tokens + t) * row, sizeof(float) * row);
      std::memcpy(vCache + (b * p.cache + pos) * row, v + (b * p.tokens + t) * row, sizeof(float) * row);
    }
  parallelFor(p.batch * p.tokens * p.heads, grainFor(2 * p.cache * dim), [&](int64_t begin, int64_t end) {
    std::vector<float> prob(p.cache);
    for (int64_t r = begin; r < end; ++r) {
      int64_t h = r % p.heads, bt = r / p.heads, b = bt / p.tokens;
      int64_t pos = position[bt];
      float *o = out + bt * row + h * dim;
      std::memset(o, 0, sizeof(float) * dim);
      if (pos < 0 || pos >= p.cache)
        continue;
      const float *qi = q + bt * row + h * dim;
      auto at = [&](int64_t j) { return (b * p.cache + j) * row + h * dim; };
      // attention's HeadView::probabilities and attentionForward, over keys 0..pos of the cache.
      float mx = -std::numeric_limits<float>::infinity();
      for (int64_t j = 0; j <= pos; ++j) {
        prob[j] = p.scale * dotProduct(qi, kCache + at(j), dim);
        mx = std::fmax(mx, prob[j]);
      }
      double sum = 0;
      for (int64_t j = 0; j <= pos; ++j) {
        prob[j] = std::exp(prob[j] - mx);
        sum += prob[j];
      }
      float inv = static_cast<float>(1.0 / sum);
      for (int64_t j = 0; j <= pos; ++j) {
        float pj = prob[j] * inv;
        if (pj == 0)
          continue;
        const float *vj = vCache + at(j);
        for (int64_t d = 0; d < dim; ++d)
          o[d] += pj * vj[d];
      }
    }
  });
}

void attentionBackward(const AttentionParams &params, const float *q, const float *k, const float *v, const float *dout,
                       float *dq, float *dk, float *dv) {
  const int64_t seq = params.seq, dim = params.headDim;
  parallelFor(params.batch * params.heads, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> prob(seq), dprob(seq);
    for (int64_t bh = begin; bh < end; ++bh) {
      HeadView view(params, bh / params.heads, bh % params.heads);
      for (int64_t j = 0; j < seq; ++j) {
        std::memset(dk + view.offset(j), 0, sizeof(float) * dim);
        std::memset(dv + view.offset(j), 0, sizeof(float) * dim);
      }
      for (int64_t i = 0; i < seq; ++i) {
        int64_t limit = view.probabilities(q, k, i, prob.data());
        const float *qi = q + view.offset(i), *doi = dout + view.offset(i);
        float *dqi = dq + view.offset(i);
        std::memset(dqi, 0, sizeof(float) * dim);
        double rowDot = 0; // sum_j P_j dP_j
        for (int64_t j = 0; j < limit; ++j) {
          dprob[j] = 0;
          if (prob[j] == 0)
            continue;
          float factor = view.dropoutFactor(i, j);
          if (factor == 0)
            continue;
          const float *vj = v + view.offset(j);
          float *dvj = dv + view.offset(j);
          float pj = prob[j] * factor;
          for (int64_t d = 0; d < dim; ++d)
            dvj[d] += pj * doi[d];
          float dot = dotProduct(doi, vj, dim);
          dprob[j] = dot * factor;
          rowDot += static_cast<double>(prob[j]) * dprob[j];
        }
        float rd = static_cast<float>(rowDot);
        for (int64_t j = 0; j < limit; ++j) {
          if (prob[j] == 0)
            continue;
          float ds = params.scale * prob[j] * (dprob[j] - rd);
          const float *kj = k + view.offset(j);
          float *dkj = dk + view.offset(j);
          for (int64_t d = 0; d < dim; ++d) {
            dqi[d] += ds * kj[d];
            dkj[d] += ds * qi[d];
          }
        }
      }
    }
  });
}

} // namespace meg::kernels::cpu
