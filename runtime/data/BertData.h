//===- BertData.h - BERT pre-training batches (MLM + next sentence) -*- C++ -*-===//
//
// Rows of real sentence pairs, as in BERT's create_pretraining_data.py, built deterministically from
// (seed, step, global row) so that every rank and a resumed run see the same batch.
//
// Documents and sentences come from the token stream of the split (runtime/data/Documents.h: end-of-document ids, or
// `%` lines / blank lines for byte-level text; sentences end at . ! ? before whitespace). Row r of step t:
//   1. anchor: the sentence at the start of the Batcher's window for (t, r) (runtime/data/TokenData.h; every window is
//      visited once per epoch, in a seeded order), in document d;
//   2. a target length T = S - 3, or with probability 1/10 a shorter one drawn from [2, S - 3];
//      next_sentence_label is drawn: 0 (IsNext, Hugging Face's convention: B follows A) or 1 (B is random), 1/2 each;
//   3. a chunk of consecutive whole sentences of d from the anchor, as many as fit in T tokens but at least one (for
//      label 0 two: the anchor moves back when it is d's last sentence); A = its first k sentences, k drawn from
//      [1, chunk - 1]; label 0: B = the rest of the chunk, the text that really follows A; label 1: B = sentences of
//      another document (drawn uniformly), from a random sentence on, as many as fit beside A (at least one),
//      so rows may end in padding. A one-sentence
//      document with label 0 is cut at a random token instead; with a single document, every label is 0; a
//      one-token document can only give label 1;
//   4. the pair is cut to S - 3 tokens: A loses tokens at its front, B at its end (so B still follows A);
//   5. input_ids = [CLS] A [SEP] B [SEP] [PAD]...; token_type_ids 0 for [CLS] A [SEP], 1 for B [SEP], 0 for padding;
//      attention_mask 1 but 0 on padding;
//   6. MLM: each token of A and B (never [CLS], [SEP], [PAD]) is a target with probability 0.15, at least one per
//      row: its label is the original id, its input becomes [MASK] (80%), a random id (10%) or stays (10%); every
//      other label is -100 (kIgnoreLabel).
// Special ids (model vocabulary V, unpadded): [MASK] = V-1, [CLS] = V-2, [SEP] = V-3, [PAD] = 0 (the configs'
// pad_token_id). Data ids must be below V - 3, except byte-level data in a 256-id model, whose bytes 253..255 never
// occur in UTF-8 text. Random replacements are drawn from [1, min(data vocabulary, V - 3)): never a special id and
// never [PAD], whose embedding row Hugging Face keeps out of the gradient (padding_idx).
//
//===----------------------------------------------------------------------===//
#ifndef MEG_RUNTIME_DATA_BERTDATA_H
#define MEG_RUNTIME_DATA_BERTDATA_H

#include "runtime/data/Batch.h"
#include "runtime/data/TokenData.h"
#include "runtime/data/Documents.h"

#include "llvm/Support/Error.h"

#include <cstdint>
#include <memory>
#include <vector>

namespace meg::runtime {

struct BertSpecialIds {
  int32_t cls = 0, sep = 0, mask = 0, pad = 0;
};

/// The special ids of a model with `modelVocab` ids (see above).
BertSpecialIds bertSpecialIds(int64_t modelVocab);

struct BertDataOptions {
  uint64_t seed = 0;
  int64_t seqLen = 0; ///< S
  BertSpecialIds ids;
  int32_t randomEnd = 2; ///< random replacements are drawn from [1, randomEnd)
};

/// One row before it is laid into tensors (for tests): the stream ranges of A and B.
struct BertPair {
  TokenRange a, b;
  int32_t nextSentenceLabel = 0;
};

class BertPairBuilder {
public:
  /// Indexes stream [begin, end) of `tokens`. Errors: S < 5 (no room for [CLS] A [SEP] B [SEP]), randomEnd < 2, or
  /// no sentence in the range.
  static llvm::Expected<std::unique_ptr<BertPairBuilder>> create(std::shared_ptr<const std::vector<int32_t>> tokens,
                                                                 uint64_t begin, uint64_t end, const DocumentRule &rule,
                                                                 const BertDataOptions &options);

  /// Steps 1-4 for global row `row` of step `step` whose window starts at stream offset `anchor`.
  BertPair pair(uint64_t step, uint64_t row, uint64_t anchor) const;
  /// The batch for the Batcher's global rows `windows` (their RowOffsets are the anchors): input_ids,
  /// token_type_ids, attention_mask, labels [B, S] and next_sentence_label [B].
  GlobalBatch batch(const Batch &windows, uint64_t step) const;

  const DocumentIndex &index() const { return docs; }

private:
  BertPairBuilder() = default;
  std::shared_ptr<const std::vector<int32_t>> tokens;
  uint64_t begin = 0; ///< offset of the index's position 0 in the stream
  DocumentIndex docs;
  BertDataOptions options;
};

} // namespace meg::runtime

#endif
