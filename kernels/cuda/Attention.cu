// Fused scaled-dot-product attention in BSHD layout, flash style (math as kernels/cpu/Attention.h):
//   s_ij = scale q_i . k_j over allowed keys j (mask[b, j] != 0, j <= i when causal), P_ij = softmax_j(s_i),
//   out_i = sum_j P_ij keep_ij / (1 - p) v_j, keep_ij from Philox at the global [batch, headsTotal, seq, seq] index.
// Forward: one warp per query row (b, h, i); each lane holds head_dim / 32 coordinates; keys stream through an
//   online softmax (running max m, normalizer l, rescaled accumulator), so no seq x seq matrix exists anywhere.
// Backward, also without a seq x seq matrix, in three passes over recomputed scores:
//   1. per query row: L_i = m + log l (log-sum-exp) and D_i = dout_i . out_i (= sum_j P_ij dP_ij);
//   2. per query row: dq_i = scale sum_j dS_ij k_j with dS_ij = P_ij (dP_ij - D_i), P_ij = exp(s_ij - L_i),
//      dP_ij = keep_ij / (1 - p) dout_i . v_j;
//   3. per key row: dk_j = scale sum_i dS_ij q_i, dv_j = sum_i P_ij keep_ij / (1 - p) dout_i.
//   Every output element has one writer and sums in a fixed order: no atomics, bit-identical run to run.
// Simple first: one key per warp step (a shuffle-tree dot product each); tiling keys through shared memory is the
// next step for speed. Templated on the storage type of q, k, v, out, dout, dq, dk, dv (kernels/cuda/Storage.cuh):
// every load widens to fp32, all accumulators and the backward's L and D (scratch) are fp32, each result is rounded
// once on store. The dropout key's step is read from a device counter when one is given (CUDA graph replays).
#include "kernels/cuda/Common.cuh"
#include "kernels/cuda/Storage.cuh"

namespace meg::kernels::cuda {

namespace {

constexpr int kSlots = int(kAttentionMaxHeadDim / 32);

struct Geometry {
  cpu::AttentionParams p;
  int64_t headsTotal;
  float keepScale;
  const uint32_t *stepCounter; ///< device; null: p.dropoutKey.step

  /// Called once per thread before dropFactor.
  __device__ void readStep() {
    if (stepCounter)
      p.dropoutKey.step = *stepCounter;
  }

  __device__ int64_t offset(int64_t b, int64_t pos, int64_t h) const {
    return ((b * p.seq + pos) * p.heads + h) * p.headDim;
  }
  __device__ bool allowed(int64_t b, int64_t j) const { return !p.keyMask || p.keyMask[b * p.seq + j] != 0; }
  /// keep_ij / (1 - p), or 1 without dropout.
  __device__ float dropFactor(int64_t b, int64_t h, int64_t i, int64_t j) const {
    if (p.dropoutP <= 0.0f)
      return 1.0f;
    uint64_t index = uint64_t(((b * headsTotal + p.headOffset + h) * p.seq + i) * p.seq + j);
    return dropoutKeep(p.dropoutKey, index, p.dropoutP) ? keepScale : 0.0f;
  }
};

template <typename T> __device__ inline void loadRow(const T *src, int64_t dim, int lane, float (&r)[kSlots]) {
#pragma unroll
  for (int t = 0; t < kSlots; ++t) {
    int64_t d = lane + 32 * t;
    r[t] = d < dim ? load(src[d]) : 0.0f;
  }
}

template <typename T>
__device__ inline float dotRow(const float (&r)[kSlots], const T *src, int64_t dim, int lane) {
  float sum = 0.0f;
#pragma unroll
  for (int t = 0; t < kSlots; ++t) {
    int64_t d = lane + 32 * t;
    if (d < dim)
      sum += r[t] * load(src[d]);
  }
  return warpSum(sum);
}

/// Forward rows; with Stats, writes L_i and D_i (backward pass 1) instead of out.
template <bool Stats, typename T>
__global__ void forwardKernel(Geometry g, const T *q, const T *k, const T *v, const T *dout, T *out, float *lse,
                              float *delta) {
  g.readStep();
  const cpu::AttentionParams &p = g.p;
  int lane = threadIdx.x & 31;
  int64_t warp = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  int64_t warps = (int64_t(gridDim.x) * blockDim.x) >> 5;
  int64_t rows = p.batch * p.heads * p.seq;
  for (int64_t row = warp; row < rows; row += warps) {
    int64_t i = row % p.seq, bh = row / p.seq, b = bh / p.heads, h = bh % p.heads;
    float qr[kSlots], acc[kSlots];
    loadRow(q + g.offset(b, i, h), p.headDim, lane, qr);
#pragma unroll
    for (int t = 0; t < kSlots; ++t)
      acc[t] = 0.0f;
    float m = -INFINITY, l = 0.0f;
    int64_t limit = p.causal ? i + 1 : p.seq;
    for (int64_t j = 0; j < limit; ++j) {
      if (!g.allowed(b, j))
        continue;
      float s = p.scale * dotRow(qr, k + g.offset(b, j, h), p.headDim, lane);
      float mNew = fmaxf(m, s);
      float corr = expf(m - mNew), e = expf(s - mNew);
      l = l * corr + e;
      float f = e * g.dropFactor(b, h, i, j);
      const T *vj = v + g.offset(b, j, h);
#pragma unroll
      for (int t = 0; t < kSlots; ++t) {
        int64_t d = lane + 32 * t;
        acc[t] = acc[t] * corr + (d < p.headDim ? f * load(vj[d]) : 0.0f);
      }
      m = mNew;
    }
    float inv = l > 0.0f ? 1.0f / l : 0.0f;
    if (!Stats) {
      T *oi = out + g.offset(b, i, h);
#pragma unroll
      for (int t = 0; t < kSlots; ++t) {
        int64_t d = lane + 32 * t;
        if (d < p.headDim)
          oi[d] = store<T>(acc[t] * inv);
      }
      continue;
    }
    const T *doi = dout + g.offset(b, i, h);
    float partial = 0.0f;
#pragma unroll
    for (int t = 0; t < kSlots; ++t) {
      int64_t d = lane + 32 * t;
      if (d < p.headDim)
        partial += acc[t] * inv * load(doi[d]);
    }
    float dot = warpSum(partial);
    if (lane == 0) {
      lse[row] = l > 0.0f ? m + logf(l) : -INFINITY;
      delta[row] = dot;
    }
  }
}

template <typename T>
__global__ void backwardQueryKernel(Geometry g, const T *q, const T *k, const T *v, const T *dout, const float *lse,
                                    const float *delta, T *dq) {
  g.readStep();
  const cpu::AttentionParams &p = g.p;
  int lane = threadIdx.x & 31;
  int64_t warp = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  int64_t warps = (int64_t(gridDim.x) * blockDim.x) >> 5;
  int64_t rows = p.batch * p.heads * p.seq;
  for (int64_t row = warp; row < rows; row += warps) {
    int64_t i = row % p.seq, bh = row / p.seq, b = bh / p.heads, h = bh % p.heads;
    float qr[kSlots], dor[kSlots], acc[kSlots];
    loadRow(q + g.offset(b, i, h), p.headDim, lane, qr);
    loadRow(dout + g.offset(b, i, h), p.headDim, lane, dor);
#pragma unroll
    for (int t = 0; t < kSlots; ++t)
      acc[t] = 0.0f;
    float L = lse[row], Di = delta[row];
    int64_t limit = L == -INFINITY ? 0 : (p.causal ? i + 1 : p.seq);
    for (int64_t j = 0; j < limit; ++j) {
      if (!g.allowed(b, j))
        continue;
      const T *kj = k + g.offset(b, j, h);
      float P = expf(p.scale * dotRow(qr, kj, p.headDim, lane) - L);
      float dP = g.dropFactor(b, h, i, j) * dotRow(dor, v + g.offset(b, j, h), p.headDim, lane);
      float dS = p.scale * P * (dP - Di);
#pragma unroll
      for (int t = 0; t < kSlots; ++t) {
        int64_t d = lane + 32 * t;
        if (d < p.headDim)
          acc[t] += dS * load(kj[d]);
      }
    }
    T *dqi = dq + g.offset(b, i, h);
#pragma unroll
    for (int t = 0; t < kSlots; ++t) {
      int64_t d = lane + 32 * t;
      if (d < p.headDim)
        dqi[d] = store<T>(acc[t]);
    }
  }
}

template <typename T>
__global__ void backwardKeyKernel(Geometry g, const T *q, const T *k, const T *v, const T *dout, const float *lse,
                                  const float *delta, T *dk, T *dv) {
  g.readStep();
  const cpu::AttentionParams &p = g.p;
  int lane = threadIdx.x & 31;
  int64_t warp = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  int64_t warps = (int64_t(gridDim.x) * blockDim.x) >> 5;
  int64_t rows = p.batch * p.heads * p.seq;
  for (int64_t row = warp; row < rows; row += warps) {
    int64_t j = row % p.seq, bh = row / p.seq, b = bh / p.heads, h = bh % p.heads;
    float kr[kSlots], vr[kSlots], accK[kSlots], accV[kSlots];
    loadRow(k + g.offset(b, j, h), p.headDim, lane, kr);
    loadRow(v + g.offset(b, j, h), p.headDim, lane, vr);
#pragma unroll
    for (int t = 0; t < kSlots; ++t)
      accK[t] = accV[t] = 0.0f;
    if (g.allowed(b, j)) {
      for (int64_t i = p.causal ? j : 0; i < p.seq; ++i) {
        float L = lse[bh * p.seq + i];
        if (L == -INFINITY)
          continue;
        const T *qi = q + g.offset(b, i, h), *doi = dout + g.offset(b, i, h);
        float P = expf(p.scale * dotRow(kr, qi, p.headDim, lane) - L);
        float f = g.dropFactor(b, h, i, j);
        float dP = f * dotRow(vr, doi, p.headDim, lane);
        float dS = p.scale * P * (dP - delta[bh * p.seq + i]);
#pragma unroll
        for (int t = 0; t < kSlots; ++t) {
          int64_t d = lane + 32 * t;
          if (d < p.headDim) {
            accV[t] += P * f * load(doi[d]);
            accK[t] += dS * load(qi[d]);
          }
        }
      }
    }
    T *dkj = dk + g.offset(b, j, h), *dvj = dv + g.offset(b, j, h);
#pragma unroll
    for (int t = 0; t < kSlots; ++t) {
      int64_t d = lane + 32 * t;
      if (d < p.headDim) {
        dkj[d] = store<T>(accK[t]);
        dvj[d] = store<T>(accV[t]);
      }
    }
  }
}

cudaError_t geometry(const cpu::AttentionParams &p, const uint32_t *stepCounter, Geometry &g) {
  if (p.batch < 0 || p.seq < 0 || p.heads < 0 || p.headDim < 1 || p.headDim > kAttentionMaxHeadDim ||
      !(p.dropoutP >= 0.0f && p.dropoutP < 1.0f))
    return cudaErrorInvalidValue;
  g.p = p;
  g.headsTotal = p.headsTotal ? p.headsTotal : p.heads;
  g.keepScale = p.dropoutP > 0.0f ? 1.0f / (1.0f - p.dropoutP) : 1.0f;
  g.stepCounter = stepCounter;
  return cudaSuccess;
}

} // namespace

template <typename T>
cudaError_t attentionForward(const cpu::AttentionParams &params, const T *q, const T *k, const T *v, T *out,
                             cudaStream_t stream, const uint32_t *stepCounter) {
  Geometry g;
  MEG_CUDA_TRY(geometry(params, stepCounter, g));
  int64_t rows = params.batch * params.heads * params.seq;
  if (rows == 0)
    return cudaSuccess;
  forwardKernel<false, T>
      <<<blocksFor(rows * 32), kThreads, 0, stream>>>(g, q, k, v, nullptr, out, nullptr, nullptr);
  return launched();
}

template <typename T>
cudaError_t attentionBackward(const cpu::AttentionParams &params, const T *q, const T *k, const T *v, const T *dout,
                              T *dq, T *dk, T *dv, float *scratch, cudaStream_t stream, const uint32_t *stepCounter) {
  Geometry g;
  MEG_CUDA_TRY(geometry(params, stepCounter, g));
  if (!scratch)
    return cudaErrorInvalidValue;
  int64_t rows = params.batch * params.heads * params.seq;
  if (rows == 0)
    return cudaSuccess;
  float *lse = scratch, *delta = scratch + rows;
  unsigned blocks = blocksFor(rows * 32);
  forwardKernel<true, T><<<blocks, kThreads, 0, stream>>>(g, q, k, v, dout, nullptr, lse, delta);
  MEG_CUDA_TRY(launched());
  backwardQueryKernel<<<blocks, kThreads, 0, stream>>>(g, q, k, v, dout, lse, delta, dq);
  MEG_CUDA_TRY(launched());
  backwardKeyKernel<<<blocks, kThreads, 0, stream>>>(g, q, k, v, dout, lse, delta, dk, dv);
  return launched();
}

namespace {

/// decode_attention, part 1: token (b, t)'s k and v rows into the caches at position[b, t] (one thread per element).
__global__ void decodeWriteKernel(cpu::DecodeAttentionParams p, const float *k, const float *v, float *kCache,
                                  float *vCache, const int32_t *position) {
  int64_t row = p.heads * p.headDim, n = p.batch * p.tokens * row;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    int64_t bt = e / row, b = bt / p.tokens, c = e % row;
    int64_t pos = position[bt];
    if (pos < 0 || pos >= p.cache)
      continue;
    kCache[(b * p.cache + pos) * row + c] = k[e];
    vCache[(b * p.cache + pos) * row + c] = v[e];
  }
}

/// decode_attention, part 2: one warp per query row (b, t, h) over cache positions 0..position[b, t], online softmax
/// as forwardKernel.
__global__ void decodeAttendKernel(cpu::DecodeAttentionParams p, const float *q, const float *kCache,
                                   const float *vCache, const int32_t *position, float *out) {
  int lane = threadIdx.x & 31;
  int64_t warp = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  int64_t warps = (int64_t(gridDim.x) * blockDim.x) >> 5;
  int64_t rows = p.batch * p.tokens * p.heads, stride = p.heads * p.headDim;
  for (int64_t r = warp; r < rows; r += warps) {
    int64_t h = r % p.heads, bt = r / p.heads, b = bt / p.tokens;
    int64_t pos = position[bt];
    float qr[kSlots], acc[kSlots];
    loadRow(q + bt * stride + h * p.headDim, p.headDim, lane, qr);
#pragma unroll
    for (int t = 0; t < kSlots; ++t)
      acc[t] = 0.0f;
    float m = -INFINITY, l = 0.0f;
    int64_t limit = pos < 0 || pos >= p.cache ? 0 : pos + 1;
    for (int64_t j = 0; j < limit; ++j) {
      int64_t at = (b * p.cache + j) * stride + h * p.headDim;
      float s = p.scale * dotRow(qr, kCache + at, p.headDim, lane);
      float mNew = fmaxf(m, s);
      float corr = expf(m - mNew), e = expf(s - mNew);
      l = l * corr + e;
#pragma unroll
      for (int t = 0; t < kSlots; ++t) {
        int64_t d = lane + 32 * t;
        acc[t] = acc[t] * corr + (d < p.headDim ? e * vCache[at + d] : 0.0f);
      }
      m = mNew;
    }
    float inv = l > 0.0f ? 1.0f / l : 0.0f;
    float *o = out + bt * stride + h * p.headDim;
#pragma unroll
    for (int t = 0; t < kSlots; ++t) {
      int64_t d = lane + 32 * t;
      if (d < p.headDim)
        o[d] = acc[t] * inv;
    }
  }
}

} // namespace

cudaError_t decodeAttention(const cpu::DecodeAttentionParams &params, const float *q, const float *k, const float *v,
                            float *kCache, float *vCache, const int32_t *position, float *out, cudaStream_t stream) {
  if (params.headDim > kAttentionMaxHeadDim || params.headDim < 1 || params.cache < 1 || !position)
    return cudaErrorInvalidValue;
  int64_t elements = params.batch * params.tokens * params.heads * params.headDim;
  if (elements == 0)
    return cudaSuccess;
  // The writes complete before any row reads the caches: two launches on one stream.
  decodeWriteKernel<<<blocksFor(elements), kThreads, 0, stream>>>(params, k, v, kCache, vCache, position);
  MEG_CUDA_TRY(launched());
  int64_t rows = params.batch * params.tokens * params.heads;
  decodeAttendKernel<<<blocksFor(rows * 32), kThreads, 0, stream>>>(params, q, kCache, vCache, position, out);
  return launched();
}

#define MEG_INSTANTIATE(T)                                                                                             \
  template cudaError_t attentionForward<T>(const cpu::AttentionParams &, const T *, const T *, const T *, T *,          \
                                           cudaStream_t, const uint32_t *);                                            \
  template cudaError_t attentionBackward<T>(const cpu::AttentionParams &, const T *, const T *, const T *, const T *,   \
                                            T *, T *, T *, float *, cudaStream_t, const uint32_t *);
MEG_FOR_STORAGE(MEG_INSTANTIATE)
#undef MEG_INSTANTIATE

} // namespace meg::kernels::cuda
