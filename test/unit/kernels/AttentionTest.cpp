// Fused attention against a naive double reference (same Philox dropout masks), backward against central
// differences, head-sharding equivalence and thread-count invariance.
#include "kernels/cpu/Attention.h"

#include "TestUtil.h"

namespace meg::kernels::cpu {
namespace {

using test::dot;
using test::expectNear;
using test::expectThreadInvariant;
using test::numericGradient;
using test::randomFloats;
using test::toDouble;

/// out[b, i, h, :] = sum_j P'[b, h, i, j] v[b, j, h, :], everything spelled out.
std::vector<double> referenceAttention(const AttentionParams &p, const std::vector<double> &q,
                                       const std::vector<double> &k, const std::vector<double> &v) {
  const int64_t B = p.batch, S = p.seq, H = p.heads, D = p.headDim;
  const int64_t headsTotal = p.headsTotal ? p.headsTotal : H;
  auto at = [&](int64_t b, int64_t s, int64_t h) { return ((b * S + s) * H + h) * D; };
  std::vector<double> out(B * S * H * D, 0.0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < S; ++i) {
        std::vector<double> score(S, 0.0);
        std::vector<bool> allowed(S, false);
        double mx = -INFINITY;
        for (int64_t j = 0; j < S; ++j) {
          allowed[j] = (!p.keyMask || p.keyMask[b * S + j] != 0) && (!p.causal || j <= i);
          if (!allowed[j])
            continue;
          for (int64_t d = 0; d < D; ++d)
            score[j] += q[at(b, i, h) + d] * k[at(b, j, h) + d];
          score[j] *= p.scale;
          mx = std::max(mx, score[j]);
        }
        double sum = 0;
        for (int64_t j = 0; j < S; ++j)
          sum += allowed[j] ? std::exp(score[j] - mx) : 0.0;
        for (int64_t j = 0; j < S; ++j) {
          if (!allowed[j])
            continue;
          double prob = std::exp(score[j] - mx) / sum;
          if (p.dropoutP > 0) {
            uint64_t index = static_cast<uint64_t>(((b * headsTotal + p.headOffset + h) * S + i) * S + j);
            prob = uniform(p.dropoutKey, index) >= p.dropoutP ? prob / (1.0 - p.dropoutP) : 0.0;
          }
          for (int64_t d = 0; d < D; ++d)
            out[at(b, i, h) + d] += prob * v[at(b, j, h) + d];
        }
      }
  return out;
}

struct Inputs {
  std::vector<float> q, k, v, dout;
  std::vector<int32_t> mask;
};

Inputs makeInputs(const AttentionParams &p, unsigned seed) {
  int64_t n = p.batch * p.seq * p.heads * p.headDim;
  Inputs in{randomFloats(n, seed, -1.5f, 1.5f),
            randomFloats(n, seed + 1, -1.5f, 1.5f),
            randomFloats(n, seed + 2),
            randomFloats(n, seed + 3),
            {}};
  // Batch 0 pads its last two keys; batch 1 pads key 0 (a causal query 0 then sees no key at all) and key 3.
  in.mask.assign(p.batch * p.seq, 1);
  for (int64_t b = 0; b < p.batch; ++b) {
    if (b % 2 == 0) {
      in.mask[b * p.seq + p.seq - 1] = 0;
      in.mask[b * p.seq + p.seq - 2] = 0;
    } else {
      in.mask[b * p.seq] = 0;
      in.mask[b * p.seq + 3] = 0;
    }
  }
  return in;
}

AttentionParams baseParams(int64_t batch, int64_t seq, int64_t heads, int64_t dim) {
  AttentionParams p;
  p.batch = batch, p.seq = seq, p.heads = heads, p.headDim = dim;
  p.scale = 1.0f / std::sqrt(static_cast<float>(dim));
  p.dropoutKey = PhiloxKey{1234, 7, 3};
  return p;
}

/// The configurations under test: plain, causal, padded, and everything with dropout.
std::vector<AttentionParams> configs(AttentionParams base, const int32_t *mask) {
  std::vector<AttentionParams> out;
  for (int variant = 0; variant < 4; ++variant) {
    AttentionParams p = base;
    p.causal = variant == 1 || variant == 3;
    p.keyMask = variant >= 2 ? mask : nullptr;
    p.dropoutP = variant == 3 ? 0.3f : 0.0f;
    out.push_back(p);
  }
  return out;
}

std::vector<float> runForward(const AttentionParams &p, const Inputs &in) {
  std::vector<float> out(in.q.size(), std::nanf(""));
  attentionForward(p, in.q.data(), in.k.data(), in.v.data(), out.data());
  return out;
}

TEST(Attention, ForwardMatchesReference) {
  AttentionParams base = baseParams(2, 9, 3, 8);
  Inputs in = makeInputs(base, 1);
  for (const AttentionParams &p : configs(base, in.mask.data())) {
    SCOPED_TRACE(testing::Message() << "causal " << p.causal << " mask " << (p.keyMask != nullptr) << " p "
                                    << p.dropoutP);
    std::vector<float> out = runForward(p, in);
    expectNear(out, referenceAttention(p, toDouble(in.q), toDouble(in.k), toDouble(in.v)), 1e-5);
  }
}

TEST(Attention, FullyMaskedRowIsZeroAndMaskedKeysAreIgnored) {
  AttentionParams p = baseParams(2, 6, 2, 4);
  Inputs in = makeInputs(p, 5);
  p.causal = true;
  p.keyMask = in.mask.data();
  p.dropoutP = 0.2f;
  std::vector<float> out = runForward(p, in);
  // Batch 1 pads key 0: its query 0 attends nothing.
  for (int64_t h = 0; h < p.heads; ++h)
    for (int64_t d = 0; d < p.headDim; ++d)
      EXPECT_EQ(out[((1 * p.seq + 0) * p.heads + h) * p.headDim + d], 0.0f);
  // Masked probabilities are exactly 0: changing padded keys' values (even to huge numbers) changes nothing.
  Inputs changed = in;
  for (int64_t b = 0; b < p.batch; ++b)
    for (int64_t j = 0; j < p.seq; ++j)
      if (in.mask[b * p.seq + j] == 0)
        for (int64_t x = 0; x < p.heads * p.headDim; ++x) {
          changed.v[(b * p.seq + j) * p.heads * p.headDim + x] = 1e30f;
          changed.k[(b * p.seq + j) * p.heads * p.headDim + x] = 1e3f;
        }
  EXPECT_TRUE(test::bitEqual(out, runForward(p, changed)));
}

TEST(Attention, BackwardMatchesFiniteDifferences) {
  AttentionParams base = baseParams(2, 5, 2, 3);
  Inputs in = makeInputs(base, 11);
  for (const AttentionParams &p : configs(base, in.mask.data())) {
    SCOPED_TRACE(testing::Message() << "causal " << p.causal << " mask " << (p.keyMask != nullptr) << " p "
                                    << p.dropoutP);
    size_t n = in.q.size();
    std::vector<float> dq(n), dk(n), dv(n);
    attentionBackward(p, in.q.data(), in.k.data(), in.v.data(), in.dout.data(), dq.data(), dk.data(), dv.data());
    std::vector<double> q = toDouble(in.q), k = toDouble(in.k), v = toDouble(in.v), w = toDouble(in.dout);
    expectNear(dq,
               numericGradient([&](const std::vector<double> &x) { return dot(w, referenceAttention(p, x, k, v)); }, q),
               1e-5, "dq");
    expectNear(dk,
               numericGradient([&](const std::vector<double> &x) { return dot(w, referenceAttention(p, q, x, v)); }, k),
               1e-5, "dk");
    expectNear(dv,
               numericGradient([&](const std::vector<double> &x) { return dot(w, referenceAttention(p, q, k, x)); }, v),
               1e-5, "dv");
  }
}

/// Heads [h0, h0 + count) of a BSHD tensor.
std::vector<float> headSlice(const std::vector<float> &x, const AttentionParams &p, int64_t h0, int64_t count) {
  std::vector<float> out;
  for (int64_t bs = 0; bs < p.batch * p.seq; ++bs)
    for (int64_t h = h0; h < h0 + count; ++h)
      for (int64_t d = 0; d < p.headDim; ++d)
        out.push_back(x[(bs * p.heads + h) * p.headDim + d]);
  return out;
}

TEST(Attention, HeadShardsReproduceUnshardedRun) {
  AttentionParams full = baseParams(2, 7, 4, 4);
  Inputs in = makeInputs(full, 21);
  full.causal = true;
  full.keyMask = in.mask.data();
  full.dropoutP = 0.25f;
  size_t n = in.q.size();
  std::vector<float> out = runForward(full, in), dq(n), dk(n), dv(n);
  attentionBackward(full, in.q.data(), in.k.data(), in.v.data(), in.dout.data(), dq.data(), dk.data(), dv.data());
  for (int64_t shard = 0; shard < 2; ++shard) {
    SCOPED_TRACE(testing::Message() << "shard " << shard);
    AttentionParams p = full;
    p.heads = 2;
    p.headOffset = 2 * shard;
    p.headsTotal = 4;
    Inputs local{headSlice(in.q, full, p.headOffset, 2), headSlice(in.k, full, p.headOffset, 2),
                 headSlice(in.v, full, p.headOffset, 2), headSlice(in.dout, full, p.headOffset, 2), in.mask};
    EXPECT_TRUE(test::bitEqual(runForward(p, local), headSlice(out, full, p.headOffset, 2)));
    size_t m = local.q.size();
    std::vector<float> lq(m), lk(m), lv(m);
    attentionBackward(p, local.q.data(), local.k.data(), local.v.data(), local.dout.data(), lq.data(), lk.data(),
                      lv.data());
    EXPECT_TRUE(test::bitEqual(lq, headSlice(dq, full, p.headOffset, 2)));
    EXPECT_TRUE(test::bitEqual(lk, headSlice(dk, full, p.headOffset, 2)));
    EXPECT_TRUE(test::bitEqual(lv, headSlice(dv, full, p.headOffset, 2)));
    // A shard that forgot its head offset draws other masks.
    p.headOffset = 0;
    if (shard == 1) {
      EXPECT_FALSE(test::bitEqual(runForward(p, local), headSlice(out, full, 2, 2)));
    }
  }
}

TEST(Attention, IsThreadCountInvariant) {
  AttentionParams p = baseParams(2, 33, 3, 16);
  Inputs in = makeInputs(p, 31);
  p.causal = true;
  p.keyMask = in.mask.data();
  p.dropoutP = 0.1f;
  size_t n = in.q.size();
  expectThreadInvariant([&] { return runForward(p, in); }, "attention forward");
  expectThreadInvariant(
      [&] {
        std::vector<float> grads(3 * n);
        attentionBackward(p, in.q.data(), in.k.data(), in.v.data(), in.dout.data(), grads.data(), grads.data() + n,
                          grads.data() + 2 * n);
        return grads;
      },
      "attention backward");
}

// decode_attention, one token per step at positions 0..S-1 into caches of C > S positions filled with garbage,
// reproduces causal attention over the whole sequence row by row; the caches then hold k and v at 0..S-1 and the
// garbage beyond; a position outside the cache writes nothing and gives zeros.
TEST(DecodeAttention, OneTokenStepsReproduceCausalAttention) {
  const int64_t B = 2, S = 9, H = 3, D = 16, C = S + 4;
  AttentionParams p = baseParams(B, S, H, D);
  p.causal = true;
  Inputs in = makeInputs(p, 41);
  std::vector<float> full = runForward(p, in);

  DecodeAttentionParams dp;
  dp.batch = B, dp.tokens = 1, dp.heads = H, dp.headDim = D, dp.cache = C, dp.scale = p.scale;
  std::vector<float> kCache = randomFloats(B * C * H * D, 7, -3.0f, 3.0f), vCache = randomFloats(B * C * H * D, 8);
  std::vector<float> garbageK = kCache;
  const int64_t row = H * D;
  std::vector<float> decoded(full.size());
  for (int64_t t = 0; t < S; ++t) {
    std::vector<float> q(B * row), k(B * row), v(B * row), out(B * row, std::nanf(""));
    for (int64_t b = 0; b < B; ++b)
      for (int64_t c = 0; c < row; ++c) {
        q[b * row + c] = in.q[(b * S + t) * row + c];
        k[b * row + c] = in.k[(b * S + t) * row + c];
        v[b * row + c] = in.v[(b * S + t) * row + c];
      }
    std::vector<int32_t> position(B, int32_t(t));
    decodeAttention(dp, q.data(), k.data(), v.data(), kCache.data(), vCache.data(), position.data(), out.data());
    for (int64_t b = 0; b < B; ++b)
      std::copy(out.begin() + b * row, out.begin() + (b + 1) * row, decoded.begin() + (b * S + t) * row);
  }
  expectNear(decoded, toDouble(full), 1e-6, "decode steps vs causal attention");
  for (int64_t b = 0; b < B; ++b)
    for (int64_t j = 0; j < C; ++j)
      for (int64_t c = 0; c < row; ++c) {
        float expected = j < S ? in.k[(b * S + j) * row + c] : garbageK[(b * C + j) * row + c];
        ASSERT_EQ(kCache[(b * C + j) * row + c], expected) << "k cache b " << b << " position " << j;
      }

  // Out of range: position -1 and C. Nothing is written, the rows are zero; a valid row in the same call is not.
  std::vector<float> before = kCache, out(B * row, std::nanf(""));
  std::vector<int32_t> position = {-1, int32_t(C)};
  decodeAttention(dp, in.q.data(), in.k.data(), in.v.data(), kCache.data(), vCache.data(), position.data(),
                  out.data());
  EXPECT_TRUE(test::bitEqual(kCache, before));
  EXPECT_TRUE(test::bitEqual(out, std::vector<float>(B * row, 0.0f)));
}

TEST(DecodeAttention, IsThreadCountInvariant) {
  DecodeAttentionParams dp;
  dp.batch = 2, dp.tokens = 2, dp.heads = 4, dp.headDim = 8, dp.cache = 33, dp.scale = 0.3f;
  int64_t n = dp.batch * dp.tokens * dp.heads * dp.headDim, cache = dp.batch * dp.cache * dp.heads * dp.headDim;
  std::vector<float> q = randomFloats(n, 1), k = randomFloats(n, 2), v = randomFloats(n, 3);
  std::vector<int32_t> position = {30, 31, 5, 17};
  expectThreadInvariant(
      [&] {
        std::vector<float> kc = randomFloats(cache, 4), vc = randomFloats(cache, 5), out(n);
        decodeAttention(dp, q.data(), k.data(), v.data(), kc.data(), vc.data(), position.data(), out.data());
        out.insert(out.end(), kc.begin(), kc.end());
        out.insert(out.end(), vc.begin(), vc.end());
        return out;
      },
      "decode attention");
}

} // namespace
} // namespace meg::kernels::cpu
