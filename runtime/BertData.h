//===- BertData.h - minimal BERT pre-training batches -----------*- C++ -*-===//
//
// Turns plain token windows into BERT MLM + NSP inputs, deterministically from (seed, step, global row):
//   - sentence pair: row i is split at a in [S/4, 3S/4]; positions < a are sentence A (token_type 0), the rest
//     sentence B (token_type 1). next_sentence_label is drawn 0/1; with 1 (B is "random") sentence B is taken from
//     the next row of the batch (another window) instead of continuing A.
//   - padding: half of the rows end in 1..S/4 padding positions (attention_mask 0, input id `padId`,
//     token_type 0, label -100).
//   - MLM: each non-padding position is a target with probability 0.15 (at least one per row): label = the original
//     token; the input becomes `maskId` (80%), a random token in [0, randomVocab) (10%) or stays (10%). Other
//     labels are -100.
// The random draws come from splitmix64 seeded per row, so any dp split of the batch sees the same rows.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_RUNTIME_BERTDATA_H
#define MEG_RUNTIME_BERTDATA_H

#include "runtime/BatchData.h"

#include <cstdint>

namespace meg::runtime {

struct MlmOptions {
  uint64_t seed = 0;
  int32_t maskId = 0;      ///< the [MASK] id (vocab - 1 for byte-level data)
  int32_t padId = 0;
  int32_t randomVocab = 1; ///< random replacements are drawn from [0, randomVocab)
};

/// `rows` is the global [B, S] window batch (InputIds); the result has input_ids, token_type_ids, attention_mask,
/// labels [B, S] and next_sentence_label [B].
GlobalBatch makeMlmBatch(const Batch &rows, uint64_t step, const MlmOptions &options);

} // namespace meg::runtime

#endif
