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
// next step for speed.
#include "kernels/cuda/Common.cuh"

namespace meg::kernels::cuda {

namespace {

constexpr int kSlots = int(kAttentionMaxHeadDim / 32);

struct Geometry {
  cpu::AttentionParams p;
  int64_t headsTotal;
  float keepScale;

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

__device__ inline void loadRow(const float *src, int64_t dim, int lane, float (&r)[kSlots]) {
#pragma unroll
  for (int t = 0; t < kSlots; ++t) {
    int64_t d = lane + 32 * t;
    r[t] = d < dim ? src[d] : 0.0f;
  }
}

__device__ inline float dotRow(const float (&r)[kSlots], const float *src, int64_t dim, int lane) {
  float sum = 0.0f;
#pragma unroll
  for (int t = 0; t < kSlots; ++t) {
    int64_t d = lane + 32 * t;
    if (d < dim)
      sum += r[t] * src[d];
  }
  return warpSum(sum);
}

/// Forward rows; with Stats, writes L_i and D_i (backward pass 1) instead of out.
template <bool Stats>
__global__ void forwardKernel(Geometry g, const float *q, const float *k, const float *v, const float *dout,
                              float *out, float *lse, float *delta) {
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
      const float *vj = v + g.offset(b, j, h);
#pragma unroll
      for (int t = 0; t < kSlots; ++t) {
        int64_t d = lane + 32 * t;
        acc[t] = acc[t] * corr + (d < p.headDim ? f * vj[d] : 0.0f);
      }
      m = mNew;
    }
    float inv = l > 0.0f ? 1.0f / l : 0.0f;
    if (!Stats) {
      float *oi = out + g.offset(b, i, h);
#pragma unroll
      for (int t = 0; t < kSlots; ++t) {
        int64_t d = lane + 32 * t;
        if (d < p.headDim)
          oi[d] = acc[t] * inv;
      }
      continue;
    }
    const float *doi = dout + g.offset(b, i, h);
    float partial = 0.0f;
#pragma unroll
    for (int t = 0; t < kSlots; ++t) {
      int64_t d = lane + 32 * t;
      if (d < p.headDim)
        partial += acc[t] * inv * doi[d];
    }
    float dot = warpSum(partial);
    if (lane == 0) {
      lse[row] = l > 0.0f ? m + logf(l) : -INFINITY;
      delta[row] = dot;
    }
  }
}

__global__ void backwardQueryKernel(Geometry g, const float *q, const float *k, const float *v, const float *dout,
                                    const float *lse, const float *delta, float *dq) {
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
      const float *kj = k + g.offset(b, j, h);
      float P = expf(p.scale * dotRow(qr, kj, p.headDim, lane) - L);
      float dP = g.dropFactor(b, h, i, j) * dotRow(dor, v + g.offset(b, j, h), p.headDim, lane);
      float dS = p.scale * P * (dP - Di);
#pragma unroll
      for (int t = 0; t < kSlots; ++t) {
        int64_t d = lane + 32 * t;
        if (d < p.headDim)
          acc[t] += dS * kj[d];
      }
    }
    float *dqi = dq + g.offset(b, i, h);
#pragma unroll
    for (int t = 0; t < kSlots; ++t) {
      int64_t d = lane + 32 * t;
      if (d < p.headDim)
        dqi[d] = acc[t];
    }
  }
}

__global__ void backwardKeyKernel(Geometry g, const float *q, const float *k, const float *v, const float *dout,
                                  const float *lse, const float *delta, float *dk, float *dv) {
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
        const float *qi = q + g.offset(b, i, h), *doi = dout + g.offset(b, i, h);
        float P = expf(p.scale * dotRow(kr, qi, p.headDim, lane) - L);
        float f = g.dropFactor(b, h, i, j);
        float dP = f * dotRow(vr, doi, p.headDim, lane);
        float dS = p.scale * P * (dP - delta[bh * p.seq + i]);
#pragma unroll
        for (int t = 0; t < kSlots; ++t) {
          int64_t d = lane + 32 * t;
          if (d < p.headDim) {
            accV[t] += P * f * doi[d];
            accK[t] += dS * qi[d];
          }
        }
      }
    }
    float *dkj = dk + g.offset(b, j, h), *dvj = dv + g.offset(b, j, h);
#pragma unroll
    for (int t = 0; t < kSlots; ++t) {
      int64_t d = lane + 32 * t;
      if (d < p.headDim) {
        dkj[d] = accK[t];
        dvj[d] = accV[t];
      }
    }
  }
}

cudaError_t geometry(const cpu::AttentionParams &p, Geometry &g) {
  if (p.batch < 0 || p.seq < 0 || p.heads < 0 || p.headDim < 1 || p.headDim > kAttentionMaxHeadDim ||
      !(p.dropoutP >= 0.0f && p.dropoutP < 1.0f))
    return cudaErrorInvalidValue;
  g.p = p;
  g.headsTotal = p.headsTotal ? p.headsTotal : p.heads;
  g.keepScale = p.dropoutP > 0.0f ? 1.0f / (1.0f - p.dropoutP) : 1.0f;
  return cudaSuccess;
}

} // namespace

cudaError_t attentionForward(const cpu::AttentionParams &params, const float *q, const float *k, const float *v,
                             float *out, cudaStream_t stream) {
  Geometry g;
  MEG_CUDA_TRY(geometry(params, g));
  int64_t rows = params.batch * params.heads * params.seq;
  if (rows == 0)
    return cudaSuccess;
  forwardKernel<false><<<blocksFor(rows * 32), kThreads, 0, stream>>>(g, q, k, v, nullptr, out, nullptr, nullptr);
  return launched();
}

cudaError_t attentionBackward(const cpu::AttentionParams &params, const float *q, const float *k, const float *v,
                              const float *dout, float *dq, float *dk, float *dv, float *scratch, cudaStream_t stream) {
  Geometry g;
  MEG_CUDA_TRY(geometry(params, g));
  if (!scratch)
    return cudaErrorInvalidValue;
  int64_t rows = params.batch * params.heads * params.seq;
  if (rows == 0)
    return cudaSuccess;
  float *lse = scratch, *delta = scratch + rows;
  unsigned blocks = blocksFor(rows * 32);
  forwardKernel<true><<<blocks, kThreads, 0, stream>>>(g, q, k, v, dout, nullptr, lse, delta);
  MEG_CUDA_TRY(launched());
  backwardQueryKernel<<<blocks, kThreads, 0, stream>>>(g, q, k, v, dout, lse, delta, dq);
  MEG_CUDA_TRY(launched());
  backwardKeyKernel<<<blocks, kThreads, 0, stream>>>(g, q, k, v, dout, lse, delta, dk, dv);
  return launched();
}

} // namespace meg::kernels::cuda
