//===- BertDataTest.cpp - BERT sentence pairs and MLM masking -------------===//

#include "runtime/data/BertData.h"

#include "TestUtil.h"

#include <set>

using namespace llvm;
using namespace meg::runtime;

namespace {

constexpr int64_t S = 48;
constexpr int64_t Vocab = 256;

/// Byte-level documents of numbered sentences ("d12s3 lorem ipsum."), ended by
/// 0x1E as megdata writes them: document d has 1 + d % 6 sentences.
std::shared_ptr<const std::vector<int32_t>> corpus(int Docs) {
  std::string Text;
  for (int D = 0; D < Docs; ++D) {
    for (int Sent = 0; Sent <= D % 6; ++Sent)
      Text += (Sent ? " d" : "d") + std::to_string(D) + "s" + std::to_string(Sent) + std::string(Sent % 3 + 1, 'x') +
              " is here.";
    Text += "\n\x1E";
  }
  return std::make_shared<const std::vector<int32_t>>(ByteTokenizer().encode(Text));
}

std::unique_ptr<BertPairBuilder> builder(std::shared_ptr<const std::vector<int32_t>> Tokens, uint64_t Seed = 5) {
  BertDataOptions O;
  O.seed = Seed;
  O.seqLen = S;
  O.ids = bertSpecialIds(Vocab);
  O.randomEnd = 253;
  auto B = BertPairBuilder::create(Tokens, 0, Tokens->size(),
                                   documentRuleFor(TokenizerKind::Byte, ByteEndOfDocument, {}), O);
  EXPECT_TRUE(bool(B)) << (B ? "" : toString(B.takeError()));
  return B ? std::move(*B) : nullptr;
}

/// Windows as the Batcher would give them: `Rows` rows anchored all over the stream.
Batch windows(int64_t Rows, uint64_t StreamSize, uint64_t Salt) {
  Batch W;
  W.Rows = Rows;
  W.SeqLen = S;
  SplitMix64 Rng(Salt);
  for (int64_t R = 0; R < Rows; ++R)
    W.RowOffsets.push_back(Rng.below(StreamSize));
  return W;
}

TEST(BertSpecialIds, TopOfTheVocabularyAndPadZero) {
  BertSpecialIds Ids = bertSpecialIds(256);
  EXPECT_EQ(Ids.mask, 255);
  EXPECT_EQ(Ids.cls, 254);
  EXPECT_EQ(Ids.sep, 253);
  EXPECT_EQ(Ids.pad, 0);
}

TEST(BertPairs, IsNextIsTheContinuationAndRandomIsAnotherDocument) {
  auto Tokens = corpus(300);
  auto B = builder(Tokens);
  ASSERT_TRUE(B);
  const DocumentIndex &Docs = B->index();
  auto DocOf = [&](uint64_t Pos) { return Docs.documentOf(Docs.sentenceAt(Pos)); };
  SplitMix64 Rng(99);
  int Labels[2] = {0, 0};
  for (uint64_t Row = 0; Row < 4000; ++Row) {
    BertPair P = B->pair(Row / 16, Row % 16, Rng.below(Tokens->size()));
    ASSERT_GT(P.a.size(), 0u);
    ASSERT_GT(P.b.size(), 0u);
    ASSERT_LE(P.a.size() + P.b.size(), uint64_t(S - 3));
    ++Labels[P.nextSentenceLabel];
    if (P.nextSentenceLabel == 0) {
      // B is the text right after A, in the same document.
      EXPECT_EQ(P.b.Begin, P.a.End);
      EXPECT_EQ(DocOf(P.a.Begin), DocOf(P.b.End - 1));
    } else {
      EXPECT_NE(DocOf(P.a.Begin), DocOf(P.b.Begin));
      EXPECT_EQ(DocOf(P.b.Begin), DocOf(P.b.End - 1));
    }
    EXPECT_EQ(DocOf(P.a.Begin), DocOf(P.a.End - 1));
  }
  // Labels balance: 4000 fair draws lie within 2000 +- 150 (4.7 sigma).
  EXPECT_NEAR(Labels[0], 2000, 150);
  EXPECT_NEAR(Labels[1], 2000, 150);
}

TEST(BertPairs, PairsStartAtSentenceBoundaries) {
  auto Tokens = corpus(60);
  auto B = builder(Tokens);
  ASSERT_TRUE(B);
  const std::vector<int32_t> &T = *Tokens;
  int Whole = 0, Rows = 2000;
  for (int Row = 0; Row < Rows; ++Row) {
    BertPair P = B->pair(1, Row, uint64_t(Row * 37) % T.size());
    // Untruncated pairs begin a sentence ("d..." or " d...").
    int32_t First = T[P.a.Begin];
    Whole += First == 'd' || (First == ' ' && T[P.a.Begin + 1] == 'd');
  }
  EXPECT_GT(Whole, Rows * 8 / 10);
}

TEST(BertBatch, LayoutSpecialsAndMasking) {
  auto Tokens = corpus(300);
  auto B = builder(Tokens);
  ASSERT_TRUE(B);
  BertSpecialIds Ids = bertSpecialIds(Vocab);
  const int64_t Rows = 512;
  Batch W = windows(Rows, Tokens->size(), 7);
  GlobalBatch G = B->batch(W, 3);
  const auto &In = G.tensors["input_ids"].data, &Types = G.tensors["token_type_ids"].data,
             &Mask = G.tensors["attention_mask"].data, &Labels = G.tensors["labels"].data;
  ASSERT_EQ(G.tensors["input_ids"].shape, (llvm::SmallVector<int64_t, 4>{Rows, S}));
  ASSERT_EQ(G.tensors["next_sentence_label"].shape, (llvm::SmallVector<int64_t, 4>{Rows}));
  int64_t Candidates = 0, Targets = 0, Masked = 0, Kept = 0, Padded = 0;
  for (int64_t R = 0; R < Rows; ++R) {
    BertPair P = B->pair(3, uint64_t(R), W.RowOffsets[R]);
    EXPECT_EQ(G.tensors["next_sentence_label"].data[R], P.nextSentenceLabel);
    int64_t A = int64_t(P.a.size()), Bn = int64_t(P.b.size()), Len = A + Bn + 3;
    auto At = [&](int64_t J) { return size_t(R * S + J); };
    // [CLS] A [SEP] B [SEP] [PAD]...
    EXPECT_EQ(In[At(0)], Ids.cls);
    EXPECT_EQ(In[At(A + 1)], Ids.sep);
    EXPECT_EQ(In[At(Len - 1)], Ids.sep);
    int64_t RowTargets = 0;
    for (int64_t J = 0; J < S; ++J) {
      size_t I = At(J);
      bool Special = J == 0 || J == A + 1 || J == Len - 1 || J >= Len;
      EXPECT_EQ(Mask[I], J < Len ? 1 : 0);
      EXPECT_EQ(Types[I], J > A + 1 && J < Len ? 1 : 0);
      if (J >= Len) {
        EXPECT_EQ(In[I], Ids.pad);
        ++Padded;
      }
      if (Special) {
        EXPECT_EQ(Labels[I], kIgnoreLabel) << "row " << R << " position " << J;
        continue;
      }
      uint64_t Src = J <= A ? P.a.Begin + uint64_t(J - 1) : P.b.Begin + uint64_t(J - A - 2);
      int32_t Original = (*Tokens)[Src];
      ++Candidates;
      if (Labels[I] == kIgnoreLabel) {
        EXPECT_EQ(In[I], Original);
        continue;
      }
      EXPECT_EQ(Labels[I], Original);
      ++RowTargets;
      if (In[I] == Ids.mask)
        ++Masked;
      else if (In[I] == Original)
        ++Kept;
      else
        EXPECT_TRUE(In[I] >= 1 && In[I] < 253) << In[I];
    }
    EXPECT_GE(RowTargets, 1);
    Targets += RowTargets;
  }
  EXPECT_EQ(G.targetTokens(), Targets);
  EXPECT_GT(Padded, 0); // short targets and short documents leave padding
  double Rate = double(Targets) / double(Candidates);
  EXPECT_NEAR(Rate, 0.15, 0.015) << Targets << " of " << Candidates;
  EXPECT_NEAR(double(Masked) / double(Targets), 0.8, 0.03);
  // Kept: the 10% "unchanged", plus random draws that hit the original.
  EXPECT_NEAR(double(Kept) / double(Targets), 0.1, 0.03);
}

TEST(BertBatch, DeterministicFromSeedStepAndRow) {
  auto Tokens = corpus(100);
  auto B1 = builder(Tokens, 5), B2 = builder(Tokens, 5), B3 = builder(Tokens, 6);
  ASSERT_TRUE(B1 && B2 && B3);
  Batch W = windows(8, Tokens->size(), 1);
  GlobalBatch A = B1->batch(W, 4), Again = B2->batch(W, 4), NextStep = B1->batch(W, 5), OtherSeed = B3->batch(W, 4);
  for (const char *Name : {"input_ids", "token_type_ids", "attention_mask", "labels", "next_sentence_label"})
    EXPECT_EQ(A.tensors[Name].data, Again.tensors[Name].data) << Name;
  EXPECT_NE(A.tensors["labels"].data, NextStep.tensors["labels"].data);
  EXPECT_NE(A.tensors["labels"].data, OtherSeed.tensors["labels"].data);
  // A row depends on its own (step, row, anchor) only: the same row in a smaller batch is identical.
  Batch One = W;
  One.Rows = 1;
  One.RowOffsets.resize(1);
  GlobalBatch First = B1->batch(One, 4);
  EXPECT_EQ(First.tensors["input_ids"].data,
            std::vector<int32_t>(A.tensors["input_ids"].data.begin(), A.tensors["input_ids"].data.begin() + S));
}

TEST(BertPairs, CreateErrors) {
  auto Tokens = corpus(3);
  BertDataOptions O;
  O.seqLen = 4;
  O.randomEnd = 253;
  DocumentRule R = documentRuleFor(TokenizerKind::Byte, ByteEndOfDocument, {});
  auto Message = [](Expected<std::unique_ptr<BertPairBuilder>> B) {
    return B ? std::string("success") : toString(B.takeError());
  };
  EXPECT_EQ(Message(BertPairBuilder::create(Tokens, 0, Tokens->size(), R, O)),
            "bert data: sequence length 4 leaves no room for [CLS] A [SEP] B [SEP] (need at least 5)");
  O.seqLen = 8;
  auto Blank = std::make_shared<const std::vector<int32_t>>(ByteTokenizer().encode(" \n\x1E\n"));
  EXPECT_EQ(Message(BertPairBuilder::create(Blank, 0, Blank->size(), R, O)),
            "bert data: the data has too little text to build sentence pairs from");
  O.randomEnd = 1;
  EXPECT_EQ(Message(BertPairBuilder::create(Tokens, 0, Tokens->size(), R, O)),
            "bert data: no id is left for random replacements");
}

} // namespace
