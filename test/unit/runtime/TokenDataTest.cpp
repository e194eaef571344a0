//===- TokenDataTest.cpp - token files, corpora and the batcher ----------===//

#include "runtime/data/TokenData.h"

#include "TestUtil.h"

#include "llvm/Support/Endian.h"

#include <algorithm>
#include <numeric>
#include <set>

using namespace llvm;
using namespace meg::runtime;
using namespace meg::runtime::test;

namespace {

std::string header(StringRef Magic, uint32_t Version, uint32_t Vocab,
                   uint64_t Count, uint32_t Kind) {
  char H[TokenFileHeaderSize];
  std::memcpy(H, Magic.data(), 8);
  support::endian::write32le(H + 8, Version);
  support::endian::write32le(H + 12, Vocab);
  support::endian::write64le(H + 16, Count);
  support::endian::write32le(H + 24, Kind);
  return std::string(H, sizeof(H));
}

std::string tokenBytes(ArrayRef<int32_t> Tokens) {
  std::string S(Tokens.size() * 4, '\0');
  for (size_t I = 0; I < Tokens.size(); ++I)
    support::endian::write32le(&S[4 * I], static_cast<uint32_t>(Tokens[I]));
  return S;
}

TEST(TokenFile, RoundTripAndExactLayout) {
  TempDir D;
  std::string P = D.path("t.bin");
  std::vector<int32_t> Tokens = {0, 5, 50256, 7};
  ASSERT_OK(writeTokenFile(P, Tokens, 50257, TokenizerKind::Gpt2Bpe));
  EXPECT_EQ(readRaw(P),
            header("MEGTOK01", 1, 50257, 4, 1) + tokenBytes(Tokens));
  ASSERT_OK_AND_ASSIGN(F, TokenFile::open(P));
  EXPECT_EQ(F.vocabSize(), 50257u);
  EXPECT_EQ(F.kind(), TokenizerKind::Gpt2Bpe);
  EXPECT_EQ(F.tokens().vec(), Tokens);
  EXPECT_EQ(*F.sharedTokens(), Tokens);
}

TEST(TokenFile, WriteRejectsOutOfVocabularyToken) {
  TempDir D;
  std::string P = D.path("t.bin");
  writeRaw(P, "old");
  EXPECT_EQ(message(writeTokenFile(P, std::vector<int32_t>{1, 2, 9}, 9,
                                   TokenizerKind::Byte)),
            P + ": token 9 at index 2 is outside the vocabulary [0, 9)");
  EXPECT_EQ(readRaw(P), "old");
}

struct BadTokenFile {
  const char *Name;
  std::string Contents;
  std::string Message;
};

class TokenFileMalformed : public ::testing::TestWithParam<BadTokenFile> {};

TEST_P(TokenFileMalformed, GivesExactError) {
  TempDir D;
  std::string P = D.path("bad.bin");
  writeRaw(P, GetParam().Contents);
  EXPECT_EQ(message(TokenFile::open(P)), P + ": " + GetParam().Message);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, TokenFileMalformed,
    ::testing::Values(
        BadTokenFile{"TooShort", "MEGTOK01",
                     "file is too short for a token file header (8 bytes, "
                     "need 28)"},
        BadTokenFile{"BadMagic", header("MEGTOK02", 1, 10, 0, 0),
                     "not a token file (bad magic, expected \"MEGTOK01\")"},
        BadTokenFile{"BadVersion", header("MEGTOK01", 3, 10, 0, 0),
                     "unsupported token file version 3 (expected 1 or 2)"},
        BadTokenFile{"V2TooShort", header("MEGTOK01", 2, 10, 0, 0),
                     "file is too short for a version 2 header (28 bytes, "
                     "need 36)"},
        BadTokenFile{"V2BadEndOfDocument",
                     header("MEGTOK01", 2, 10, 0, 0) + tokenBytes({10, 0}),
                     "end-of-document id 10 is outside the vocabulary [0, 10)"},
        BadTokenFile{"V2BadFlagCount",
                     header("MEGTOK01", 2, 10, 0, 0) + tokenBytes({-1, 3}),
                     "flag table has 3 entries for a vocabulary of 10"},
        BadTokenFile{"V2FlagsCut",
                     header("MEGTOK01", 2, 10, 0, 0) + tokenBytes({-1, 10}) +
                         "abcd",
                     "file is too short for its flag table (40 bytes, need "
                     "48)"},
        BadTokenFile{"V2Truncated",
                     header("MEGTOK01", 2, 10, 2, 0) + tokenBytes({-1, 0}) +
                         tokenBytes({1}),
                     "header says 2 tokens (36 + 4*2 bytes) but the file has "
                     "40 bytes"},
        BadTokenFile{"ZeroVocab", header("MEGTOK01", 1, 0, 0, 0),
                     "vocabulary size is 0"},
        BadTokenFile{"BadKind", header("MEGTOK01", 1, 10, 0, 7),
                     "unknown tokenizer kind 7"},
        BadTokenFile{"Truncated",
                     header("MEGTOK01", 1, 10, 3, 0) + tokenBytes({1, 2}),
                     "header says 3 tokens (28 + 4*3 bytes) but the file has "
                     "36 bytes"},
        BadTokenFile{"TrailingBytes",
                     header("MEGTOK01", 1, 10, 1, 0) + tokenBytes({1, 2}),
                     "header says 1 tokens (28 + 4*1 bytes) but the file has "
                     "36 bytes"},
        BadTokenFile{"TokenOutOfVocab",
                     header("MEGTOK01", 1, 10, 3, 0) + tokenBytes({1, 10, 2}),
                     "token 10 at index 1 (byte offset 32) is outside the "
                     "vocabulary [0, 10)"},
        BadTokenFile{"NegativeToken",
                     header("MEGTOK01", 1, 10, 1, 0) + tokenBytes({-3}),
                     "token -3 at index 0 (byte offset 28) is outside the "
                     "vocabulary [0, 10)"}),
    [](const ::testing::TestParamInfo<BadTokenFile> &I) {
      return std::string(I.param.Name);
    });

TEST(TokenFile, Version2KeepsEndOfDocumentAndFlags) {
  TempDir D;
  std::string P = D.path("t.bin");
  std::vector<int32_t> Tokens = {1, 4, 2, 4};
  TokenFileMeta Meta;
  Meta.EndOfDocument = 4;
  Meta.Flags = {0, 1, 2, 3, 4};
  ASSERT_OK(writeTokenFile(P, Tokens, 5, TokenizerKind::Gpt2Bpe, Meta));
  // Header, eod, flag count, 5 flag bytes padded to 8, tokens.
  EXPECT_EQ(readRaw(P), header("MEGTOK01", 2, 5, 4, 1) + tokenBytes({4, 5}) +
                            std::string("\x00\x01\x02\x03\x04\x00\x00\x00", 8) +
                            tokenBytes(Tokens));
  ASSERT_OK_AND_ASSIGN(F, TokenFile::open(P));
  EXPECT_EQ(F.version(), 2u);
  EXPECT_EQ(F.meta().EndOfDocument, 4);
  EXPECT_EQ(F.meta().Flags, Meta.Flags);
  EXPECT_EQ(F.tokens().vec(), Tokens);

  Meta.Flags = {1};
  EXPECT_EQ(message(writeTokenFile(P, Tokens, 5, TokenizerKind::Byte, Meta)),
            P + ": flag table has 1 entries for a vocabulary of 5");
  Meta.Flags.clear();
  Meta.EndOfDocument = 5;
  EXPECT_EQ(message(writeTokenFile(P, Tokens, 5, TokenizerKind::Byte, Meta)),
            P + ": end-of-document id 5 is outside the vocabulary [0, 5)");
}

TEST(TextCorpus, DocumentsAtSeparatorLinesWithEndOfDocument) {
  TempDir D;
  writeRaw(D.path("a.txt"), "ab\n%\n \n%\ncd\n%");
  writeRaw(D.path("b.txt"), "e\r\n%\r\nf");
  ByteTokenizer Tok;
  CorpusOptions O;
  O.SeparatorLine = "%";
  O.EndOfDocument = 0x1E;
  ASSERT_OK_AND_ASSIGN(
      C, TextCorpus::fromFiles({D.path("a.txt"), D.path("b.txt")}, Tok, O));
  // " \n" is whitespace only: dropped. The "%\r" line separates too.
  EXPECT_EQ(C.Tokens,
            (std::vector<int32_t>{'a', 'b', '\n', 0x1E, 'c', 'd', '\n', 0x1E,
                                  'e', '\r', '\n', 0x1E, 'f', 0x1E}));
  EXPECT_EQ(C.Documents, 4u);
  EXPECT_EQ(C.Bytes, 10u);
  EXPECT_EQ(C.Meta.EndOfDocument, 0x1E);
  ASSERT_EQ(C.Meta.Flags.size(), 256u);
  ASSERT_OK(C.write(D.path("c.tok")));
  ASSERT_OK_AND_ASSIGN(F, TokenFile::open(D.path("c.tok")));
  EXPECT_EQ(F.tokens().vec(), C.Tokens);
  EXPECT_EQ(F.meta().EndOfDocument, 0x1E);
  EXPECT_EQ(F.meta().Flags, C.Meta.Flags);

  O.EndOfDocument = 256;
  EXPECT_EQ(message(TextCorpus::fromFiles({D.path("a.txt")}, Tok, O)),
            "end-of-document id 256 is outside the vocabulary");
}

TEST(TextCorpus, FromFilesWithSeparator) {
  TempDir D;
  writeRaw(D.path("a.txt"), "ab");
  writeRaw(D.path("b.txt"), "c");
  ByteTokenizer Tok;
  ASSERT_OK_AND_ASSIGN(
      C, TextCorpus::fromFiles({D.path("a.txt"), D.path("b.txt")}, Tok, 0));
  EXPECT_EQ(C.Tokens, (std::vector<int32_t>{'a', 'b', 0, 'c', 0}));
  EXPECT_EQ(C.VocabSize, 256u);
  ASSERT_OK(C.write(D.path("c.bin")));
  ASSERT_OK_AND_ASSIGN(F, TokenFile::open(D.path("c.bin")));
  EXPECT_EQ(F.tokens().vec(), C.Tokens);
  EXPECT_EQ(F.kind(), TokenizerKind::Byte);

  std::string Missing = D.path("missing.txt");
  std::string M = message(TextCorpus::fromFiles({Missing}, Tok));
  EXPECT_EQ(M.rfind(Missing + ": cannot open file: ", 0), 0u) << M;
  EXPECT_EQ(message(TextCorpus::fromFiles({}, Tok, 256)),
            "separator id 256 is outside the vocabulary");
  EXPECT_EQ(TextCorpus::fromText("hi", Tok).Tokens,
            (std::vector<int32_t>{'h', 'i'}));
}

TEST(SplitMix64, ReferenceValues) {
  // splitmix64.c (Vigna) seeded with 0.
  SplitMix64 R(0);
  EXPECT_EQ(R.next(), 0xE220A8397B1DCDAFull);
  EXPECT_EQ(R.next(), 0x6E789E6AA1B965F4ull);
  SplitMix64 B(7);
  for (int I = 0; I < 1000; ++I)
    EXPECT_LT(B.below(3), 3u);
}

std::vector<int32_t> iota(int32_t N) {
  std::vector<int32_t> V(N);
  std::iota(V.begin(), V.end(), 0);
  return V;
}

BatcherOptions options(int64_t S, int64_t B, uint64_t Seed,
                       double Valid = 0.0) {
  BatcherOptions O;
  O.SeqLen = S;
  O.MicroBatch = B;
  O.Seed = Seed;
  O.ValidFraction = Valid;
  return O;
}

TEST(Batcher, RowsAreWindowsAndLabelsAreNextTokens) {
  // Tokens = 0..99, S = 4: windows of 5 tokens start at multiples of 5.
  ASSERT_OK_AND_ASSIGN(B, Batcher::create(iota(100), options(4, 3, 1)));
  EXPECT_EQ(B.windowsPerEpoch(), 20u);
  ASSERT_OK_AND_ASSIGN(Batch, B.batchFor(0));
  ASSERT_EQ(Batch.Rows, 3);
  ASSERT_EQ(Batch.SeqLen, 4);
  for (int R = 0; R < 3; ++R) {
    int32_t First = Batch.InputIds[R * 4];
    EXPECT_EQ(First % 5, 0);
    for (int C = 0; C < 4; ++C) {
      EXPECT_EQ(Batch.InputIds[R * 4 + C], First + C);
      EXPECT_EQ(Batch.Labels[R * 4 + C], First + C + 1);
    }
  }
}

TEST(Batcher, GoldenOrder) {
  // Pins the Fisher-Yates + splitmix64 order: a change here changes every
  // training run's data order.
  ASSERT_OK_AND_ASSIGN(B, Batcher::create(iota(110), options(10, 1, 1234)));
  EXPECT_EQ(B.epochOrder(0),
            (std::vector<uint64_t>{0, 1, 8, 6, 4, 3, 7, 2, 9, 5}));
}

TEST(Batcher, SameSeedSameBatchesDifferentSeedDiffers) {
  std::vector<int32_t> T = iota(1000);
  ASSERT_OK_AND_ASSIGN(A, Batcher::create(T, options(7, 4, 42)));
  ASSERT_OK_AND_ASSIGN(A2, Batcher::create(T, options(7, 4, 42)));
  ASSERT_OK_AND_ASSIGN(C, Batcher::create(T, options(7, 4, 43)));
  bool AnyDifferent = false;
  for (uint64_t Step = 0; Step < 50; ++Step) {
    ASSERT_OK_AND_ASSIGN(X, A.batchFor(Step));
    ASSERT_OK_AND_ASSIGN(Y, A2.batchFor(Step));
    ASSERT_OK_AND_ASSIGN(Z, C.batchFor(Step));
    EXPECT_EQ(X.InputIds, Y.InputIds);
    EXPECT_EQ(X.Labels, Y.Labels);
    AnyDifferent |= X.InputIds != Z.InputIds;
  }
  EXPECT_TRUE(AnyDifferent);
  EXPECT_NE(A.epochOrder(0), C.epochOrder(0));
}

TEST(Batcher, EveryEpochVisitsEveryWindowOnceAndReshuffles) {
  ASSERT_OK_AND_ASSIGN(B, Batcher::create(iota(64), options(3, 1, 9)));
  ASSERT_EQ(B.windowsPerEpoch(), 16u);
  for (uint64_t Epoch = 0; Epoch < 3; ++Epoch) {
    std::set<int32_t> Starts;
    for (uint64_t I = 0; I < 16; ++I) {
      ASSERT_OK_AND_ASSIGN(X, B.batchFor(Epoch * 16 + I));
      EXPECT_EQ(X.Start, (BatcherPosition{Epoch, I}));
      Starts.insert(X.InputIds[0]);
    }
    EXPECT_EQ(Starts.size(), 16u);
  }
  EXPECT_NE(B.epochOrder(0), B.epochOrder(1));
  std::vector<uint64_t> Sorted = B.epochOrder(1);
  llvm::sort(Sorted);
  for (uint64_t I = 0; I < 16; ++I)
    EXPECT_EQ(Sorted[I], I);
}

TEST(Batcher, DataParallelSplitPartitionsTheRows) {
  ASSERT_OK_AND_ASSIGN(B, Batcher::create(iota(2000), options(5, 8, 3)));
  for (uint64_t Step : {0u, 1u, 40u, 41u}) { // 41 straddles an epoch
    ASSERT_OK_AND_ASSIGN(Full, B.batchFor(Step));
    for (unsigned Dp : {2u, 4u, 8u}) {
      std::vector<int32_t> Ids, Labels;
      for (unsigned R = 0; R < Dp; ++R) {
        ASSERT_OK_AND_ASSIGN(Part, B.batchFor(Step, R, Dp));
        EXPECT_EQ(Part.Rows, 8 / Dp);
        llvm::append_range(Ids, Part.InputIds);
        llvm::append_range(Labels, Part.Labels);
      }
      EXPECT_EQ(Ids, Full.InputIds);
      EXPECT_EQ(Labels, Full.Labels);
    }
  }
  EXPECT_EQ(message(B.batchFor(0, 0, 3)),
            "batcher: micro-batch 8 is not divisible by data-parallel size 3");
  EXPECT_EQ(message(B.batchFor(0, 2, 2)),
            "batcher: data-parallel rank 2 is not below size 2");
}

TEST(Batcher, ResumeFromSavedPositionContinuesIdentically) {
  std::vector<int32_t> T = iota(500);
  ASSERT_OK_AND_ASSIGN(A, Batcher::create(T, options(4, 3, 5)));
  // 100 windows, 3 per step: step 33 straddles epochs 0 and 1.
  std::vector<std::vector<int32_t>> Run;
  BatcherPosition Saved;
  for (int Step = 0; Step < 70; ++Step) {
    if (Step == 30)
      Saved = A.position();
    ASSERT_OK_AND_ASSIGN(X, A.next(1, 3));
    Run.push_back(X.InputIds);
  }
  EXPECT_EQ(Saved, A.positionOfStep(30));
  EXPECT_EQ(A.position(), (BatcherPosition{2, 10}));

  // A fresh batcher restored from the saved position (through JSON).
  json::Value V = toJSON(Saved);
  BatcherPosition Restored;
  json::Path::Root Root;
  ASSERT_TRUE(fromJSON(V, Restored, Root));
  EXPECT_EQ(Restored, Saved);
  ASSERT_OK_AND_ASSIGN(B, Batcher::create(T, options(4, 3, 5)));
  ASSERT_OK(B.setPosition(Restored));
  for (int Step = 30; Step < 70; ++Step) {
    ASSERT_OK_AND_ASSIGN(X, B.next(1, 3));
    EXPECT_EQ(X.InputIds, Run[Step]) << "step " << Step;
  }
  // next() agrees with the stateless batchFor().
  ASSERT_OK_AND_ASSIGN(Y, A.batchFor(69, 1, 3));
  EXPECT_EQ(Y.InputIds, Run[69]);
  EXPECT_EQ(message(B.setPosition({0, 100})),
            "batcher: position index 100 is not below the 100 windows of an "
            "epoch");
}

TEST(Batcher, ValidSplitIsTheLastFraction) {
  std::vector<int32_t> T = iota(100);
  BatcherOptions O = options(4, 2, 1, /*Valid=*/0.2);
  ASSERT_OK_AND_ASSIGN(Train, Batcher::create(T, O));
  O.Split = DataSplit::Valid;
  ASSERT_OK_AND_ASSIGN(Valid, Batcher::create(T, O));
  EXPECT_EQ(Train.splitBegin(), 0u);
  EXPECT_EQ(Train.splitSize(), 80u);
  EXPECT_EQ(Valid.splitBegin(), 80u);
  EXPECT_EQ(Valid.splitSize(), 20u);
  EXPECT_EQ(Train.windowsPerEpoch(), 16u);
  EXPECT_EQ(Valid.windowsPerEpoch(), 4u);
  for (uint64_t Step = 0; Step < 8; ++Step) {
    ASSERT_OK_AND_ASSIGN(X, Train.batchFor(Step));
    ASSERT_OK_AND_ASSIGN(Y, Valid.batchFor(Step));
    for (int32_t Id : X.Labels)
      EXPECT_LT(Id, 80);
    for (int32_t Id : Y.InputIds)
      EXPECT_GE(Id, 80);
  }
  // Without shuffling, windows come in stream order.
  O.Shuffle = false;
  ASSERT_OK_AND_ASSIGN(Ordered, Batcher::create(T, O));
  ASSERT_OK_AND_ASSIGN(Z, Ordered.batchFor(1));
  EXPECT_EQ(Z.InputIds, (std::vector<int32_t>{90, 91, 92, 93, 95, 96, 97, 98}));
}

TEST(Batcher, CreateErrors) {
  std::vector<int32_t> T = iota(10);
  EXPECT_EQ(message(Batcher::create(T, options(0, 1, 0))),
            "batcher: sequence length must be positive, got 0");
  EXPECT_EQ(message(Batcher::create(T, options(2, 0, 0))),
            "batcher: micro-batch size must be positive, got 0");
  EXPECT_EQ(message(Batcher::create(T, options(2, 1, 0, 1.0))),
            "batcher: validation fraction must be in [0, 1), got 1");
  EXPECT_EQ(message(Batcher::create(T, options(10, 1, 0))),
            "batcher: train split has 10 tokens, fewer than one window of 11");
  BatcherOptions O = options(2, 1, 0);
  O.Split = DataSplit::Valid;
  EXPECT_EQ(message(Batcher::create(T, O)),
            "batcher: valid split has 0 tokens, fewer than one window of 3");
}

} // namespace
