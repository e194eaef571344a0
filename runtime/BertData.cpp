//===- BertData.cpp - minimal BERT pre-training batches -----------------------===//
#include "runtime/BertData.h"

#include <algorithm>

using namespace meg;
using namespace meg::runtime;

GlobalBatch meg::runtime::makeMlmBatch(const Batch &rows, uint64_t step, const MlmOptions &o) {
  const int64_t B = rows.Rows, S = rows.SeqLen;
  IntTensor ids{{B, S}, rows.InputIds}, types{{B, S}, std::vector<int32_t>(B * S, 0)},
      mask{{B, S}, std::vector<int32_t>(B * S, 1)}, labels{{B, S}, std::vector<int32_t>(B * S, kIgnoreLabel)},
      nsp{{B}, std::vector<int32_t>(B, 0)};
  for (int64_t r = 0; r < B; ++r) {
    // One generator per (seed, step, global row).
    SplitMix64 seedGen(o.seed ^ 0x6d6c6d2d62657274ull);
    uint64_t rowSeed = seedGen.next() ^ (step * 0x9E3779B97F4A7C15ull) ^ (uint64_t(r) * 0xBF58476D1CE4E5B9ull);
    SplitMix64 rng(rowSeed);
    int32_t *row = ids.data.data() + r * S;

    int64_t a = S >= 4 ? S / 4 + int64_t(rng.below(uint64_t(S / 2 + 1))) : std::max<int64_t>(1, S / 2);
    a = std::clamp<int64_t>(a, S > 1 ? 1 : 0, S > 1 ? S - 1 : S);
    nsp.data[r] = int32_t(rng.below(2));
    if (nsp.data[r] == 1 && B > 1) {
      const int32_t *other = rows.InputIds.data() + ((r + 1) % B) * S;
      std::copy(other + a, other + S, row + a);
    }
    for (int64_t j = a; j < S; ++j)
      types.data[r * S + j] = 1;

    int64_t valid = S;
    if (rng.below(2) == 0 && S >= 2) {
      int64_t pad = 1 + int64_t(rng.below(uint64_t(std::max<int64_t>(1, S / 4))));
      valid = S - std::min(pad, S - 1);
      for (int64_t j = valid; j < S; ++j) {
        row[j] = o.padId;
        mask.data[r * S + j] = 0;
        types.data[r * S + j] = 0;
      }
    }

    int64_t targets = 0;
    auto makeTarget = [&](int64_t j) {
      labels.data[r * S + j] = row[j];
      uint64_t kind = rng.below(10);
      if (kind < 8)
        row[j] = o.maskId;
      else if (kind == 8)
        row[j] = int32_t(rng.below(uint64_t(std::max(1, o.randomVocab))));
      ++targets;
    };
    for (int64_t j = 0; j < valid; ++j)
      if (rng.below(1000) < 150)
        makeTarget(j);
    if (targets == 0 && valid > 0)
      makeTarget(int64_t(rng.below(uint64_t(valid))));
  }
  GlobalBatch out;
  out.tensors["input_ids"] = std::move(ids);
  out.tensors["token_type_ids"] = std::move(types);
  out.tensors["attention_mask"] = std::move(mask);
  out.tensors["labels"] = std::move(labels);
  out.tensors["next_sentence_label"] = std::move(nsp);
  return out;
}
