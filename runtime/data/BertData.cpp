//===- BertData.cpp - BERT pre-training batches (MLM + next sentence) ----------===//
#include "runtime/data/BertData.h"

#include <algorithm>

using namespace meg;
using namespace meg::runtime;

BertSpecialIds meg::runtime::bertSpecialIds(int64_t modelVocab) {
  BertSpecialIds ids;
  ids.mask = int32_t(modelVocab - 1);
  ids.cls = int32_t(modelVocab - 2);
  ids.sep = int32_t(modelVocab - 3);
  ids.pad = 0;
  return ids;
}

llvm::Expected<std::unique_ptr<BertPairBuilder>>
BertPairBuilder::create(std::shared_ptr<const std::vector<int32_t>> tokens, uint64_t begin, uint64_t end,
                        const DocumentRule &rule, const BertDataOptions &options) {
  auto bad = [](const llvm::Twine &what) {
    return llvm::createStringError(llvm::inconvertibleErrorCode(), "bert data: " + what);
  };
  if (options.seqLen < 5)
    return bad("sequence length " + llvm::Twine(options.seqLen) +
               " leaves no room for [CLS] A [SEP] B [SEP] (need at least 5)");
  if (options.randomEnd < 2)
    return bad("no id is left for random replacements");
  assert(begin <= end && end <= tokens->size() && "range outside the stream");
  std::unique_ptr<BertPairBuilder> b(new BertPairBuilder());
  b->docs = DocumentIndex::build(llvm::ArrayRef<int32_t>(*tokens).slice(begin, end - begin), rule);
  if (b->docs.numSentences() == 0 || (b->docs.numDocuments() == 1 && b->docs.document(0).size() < 2))
    return bad("the data has too little text to build sentence pairs from");
  b->tokens = std::move(tokens);
  b->begin = begin;
  b->options = options;
  return b;
}

/// One generator per (seed, step, global row).
static SplitMix64 rowGenerator(uint64_t seed, uint64_t step, uint64_t row) {
  SplitMix64 mix(seed ^ 0x6d6c6d2d62657274ull);
  uint64_t s = mix.next() ^ (step * 0x9E3779B97F4A7C15ull);
  SplitMix64 mix2(s);
  return SplitMix64(mix2.next() ^ (row * 0xBF58476D1CE4E5B9ull));
}

BertPair BertPairBuilder::pair(uint64_t step, uint64_t row, uint64_t anchor) const {
  SplitMix64 rng = rowGenerator(options.seed, step, row);
  const uint64_t maxTokens = uint64_t(options.seqLen - 3);
  uint64_t target = maxTokens;
  if (rng.below(10) == 0)
    target = 2 + rng.below(maxTokens - 1);
  BertPair p;
  p.nextSentenceLabel = int32_t(rng.below(2));
  if (docs.numDocuments() < 2)
    p.nextSentenceLabel = 0;

  size_t s0 = docs.sentenceAt(anchor >= begin ? anchor - begin : 0);
  size_t d = docs.documentOf(s0);
  size_t first = docs.firstSentence(d), end = docs.endSentence(d);
  auto span = [&](size_t from, size_t to) { // sentences [from, to) as one token range
    return TokenRange{docs.sentence(from).Begin, docs.sentence(to - 1).End};
  };

  if (p.nextSentenceLabel == 0 && end - first == 1) {
    TokenRange whole = docs.sentence(first);
    if (whole.size() >= 2) {
      uint64_t cut = whole.Begin + 1 + rng.below(whole.size() - 1);
      p.a = {whole.Begin, cut};
      p.b = {cut, whole.End};
    } else {
      p.nextSentenceLabel = 1; // nothing follows a one-token document
    }
  }
  if (p.a.size() == 0) {
    if (p.nextSentenceLabel == 0)
      s0 = std::min(s0, end - 2);
    // The chunk: sentences [s0, chunkEnd), whole sentences up to `target` tokens.
    const size_t needed = p.nextSentenceLabel == 0 ? 2 : 1;
    size_t chunkEnd = s0;
    uint64_t length = 0;
    while (chunkEnd < end && (chunkEnd - s0 < needed || length + docs.sentence(chunkEnd).size() <= target))
      length += docs.sentence(chunkEnd++).size();
    size_t k = chunkEnd - s0;
    size_t aEnd = s0 + (k >= 2 ? 1 + rng.below(k - 1) : 1);
    p.a = span(s0, aEnd);
    if (p.nextSentenceLabel == 0) {
      p.b = span(aEnd, chunkEnd);
    } else {
      size_t other = rng.below(docs.numDocuments() - 1);
      other += other >= d;
      size_t oFirst = docs.firstSentence(other), oEnd = docs.endSentence(other);
      size_t from = oFirst + rng.below(oEnd - oFirst), to = from;
      uint64_t want = target > p.a.size() ? target - p.a.size() : 1, got = 0;
      while (to < oEnd && (to == from || got + docs.sentence(to).size() <= want))
        got += docs.sentence(to++).size();
      p.b = span(from, to);
    }
  }
  // Cut to S - 3 tokens: A from its front, B from its end.
  while (p.a.size() + p.b.size() > maxTokens) {
    if (p.a.size() > p.b.size())
      ++p.a.Begin;
    else
      --p.b.End;
  }
  p.a.Begin += begin, p.a.End += begin, p.b.Begin += begin, p.b.End += begin;
  return p;
}

GlobalBatch BertPairBuilder::batch(const Batch &windows, uint64_t step) const {
  const int64_t B = windows.Rows, S = options.seqLen;
  assert(windows.RowOffsets.size() == size_t(B) && "one anchor per row");
  const BertSpecialIds &id = options.ids;
  IntTensor ids{{B, S}, std::vector<int32_t>(B * S, id.pad)}, types{{B, S}, std::vector<int32_t>(B * S, 0)},
      mask{{B, S}, std::vector<int32_t>(B * S, 0)}, labels{{B, S}, std::vector<int32_t>(B * S, kIgnoreLabel)},
      nsp{{B}, std::vector<int32_t>(B, 0)};
  const std::vector<int32_t> &stream = *tokens;
  for (int64_t r = 0; r < B; ++r) {
    BertPair p = pair(step, uint64_t(r), windows.RowOffsets[r]);
    nsp.data[r] = p.nextSentenceLabel;
    int32_t *row = ids.data.data() + r * S;
    int32_t *type = types.data.data() + r * S;
    std::vector<int64_t> candidates;
    int64_t j = 0;
    row[j++] = id.cls;
    for (uint64_t t = p.a.Begin; t < p.a.End; ++t)
      candidates.push_back(j), row[j++] = stream[t];
    row[j++] = id.sep;
    int64_t bStart = j;
    for (uint64_t t = p.b.Begin; t < p.b.End; ++t)
      candidates.push_back(j), row[j++] = stream[t];
    row[j++] = id.sep;
    std::fill(type + bStart, type + j, 1);
    std::fill(mask.data.begin() + r * S, mask.data.begin() + r * S + j, 1);

    // Masking draws from its own generator per (seed, step, global row).
    SplitMix64 rng = rowGenerator(options.seed ^ 0x6d61736bull, step, uint64_t(r));
    int32_t *label = labels.data.data() + r * S;
    auto makeTarget = [&](int64_t at) {
      label[at] = row[at];
      uint64_t kind = rng.below(10);
      if (kind < 8)
        row[at] = id.mask;
      else if (kind == 8)
        row[at] = int32_t(1 + rng.below(uint64_t(options.randomEnd - 1)));
    };
    int64_t targets = 0;
    for (int64_t at : candidates)
      if (rng.below(1000) < 150)
        makeTarget(at), ++targets;
    if (targets == 0)
      makeTarget(candidates[rng.below(candidates.size())]);
  }
  GlobalBatch out;
  out.tensors["input_ids"] = std::move(ids);
  out.tensors["token_type_ids"] = std::move(types);
  out.tensors["attention_mask"] = std::move(mask);
  out.tensors["labels"] = std::move(labels);
  out.tensors["next_sentence_label"] = std::move(nsp);
  return out;
}
