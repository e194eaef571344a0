// Fused scaled-dot-product attention in BSHD layout (q, k, v, out: [batch, seq, heads, headDim]).
//
// For each (b, h, query i): s_j = scale * q_i . k_j over the allowed keys j (mask[b, j] != 0, and j <= i when
// causal), P_j = softmax_j(s) (exactly 0 for disallowed keys), P'_j = P_j * keep_j / (1 - p) (attention dropout),
// out_i = sum_j P'_j v_j. A row without allowed keys gives out_i = 0.
// keep_j = uniform(key, ((b * headsTotal + headOffset + h) * seq + i) * seq + j) >= p: the index of the element in
// the global [batch, headsTotal, seq, seq] probability tensor, so a rank owning heads [headOffset, headOffset +
// heads) draws exactly the masks of the unsharded run.
// Backward (probabilities recomputed, nothing saved): dP'_j = dout_i . v_j, dP_j = dP'_j keep_j / (1 - p),
// dS_j = P_j (dP_j - sum_l P_l dP_l), dq_i = scale sum_j dS_j k_j, dk_j += scale dS_j q_i, dv_j += P'_j dout_i.
// Forward is parallel over (b, h, i) rows; backward over (b, h) pairs only, so the sums over queries into dk and dv
// run in query order: bit-identical for any thread count.
#ifndef MEG_KERNELS_CPU_ATTENTION_H
#define MEG_KERNELS_CPU_ATTENTION_H

#include "kernels/Philox.h"

#include <cstdint>

namespace meg::kernels::cpu {

struct AttentionParams {
  int64_t batch = 1, seq = 1, heads = 1, headDim = 1;
  float scale = 1.0f;
  bool causal = false;
  /// Key padding mask [batch, seq] (1: attend, 0: padding), or null for none.
  const int32_t *keyMask = nullptr;
  float dropoutP = 0.0f;
  PhiloxKey dropoutKey;
  /// This shard's first head and the unsharded head count (0 means `heads`).
  int64_t headOffset = 0, headsTotal = 0;
};

/// out is overwritten.
void attentionForward(const AttentionParams &params, const float *q, const float *k, const float *v, float *out);

/// dq, dk, dv are overwritten.
void attentionBackward(const AttentionParams &params, const float *q, const float *k, const float *v, const float *dout,
                       float *dq, float *dk, float *dv);

/// decode_attention: new tokens against a KV cache, BSHD (q, k, v, out: [batch, tokens, heads, headDim]; caches:
/// [batch, cache, heads, headDim]; position: i32[batch, tokens]). First every token t with 0 <= position[b, t] <
/// cache writes its k and v rows at that cache position; then each query (b, t, h) attends to the cache positions
/// j <= position[b, t] exactly as causal attention does (s_j = scale q . k_j, softmax, out = sum_j P_j v_j, in j
/// order: a row equals attention's row of the full sequence, up to float rounding, when the cache holds its keys). A
/// token whose position is outside the cache writes nothing and gets out = 0 (the host checks positions first).
/// Positions of one sequence's tokens are distinct (with duplicates the last token's k, v win).
struct DecodeAttentionParams {
  int64_t batch = 1, tokens = 1, heads = 1, headDim = 1, cache = 1;
  float scale = 1.0f;
};

/// kCache and vCache are updated in place; out is overwritten.
void decodeAttention(const DecodeAttentionParams &params, const float *q, const float *k, const float *v,
                     float *kCache, float *vCache, const int32_t *position, float *out);

} // namespace meg::kernels::cpu

#endif // MEG_KERNELS_CPU_ATTENTION_H
