//===- DocumentsTest.cpp - documents and sentences of a corpus ------------===//

#include "runtime/data/Documents.h"

#include "TestUtil.h"

using namespace llvm;
using namespace meg::runtime;

namespace {

std::vector<int32_t> bytes(StringRef Text) {
  return ByteTokenizer().encode(Text);
}

/// The text of every sentence, document by document ("|" between sentences,
/// "#" between documents).
std::string layout(StringRef Text, const DocumentRule &Rule) {
  std::vector<int32_t> T = bytes(Text);
  DocumentIndex I = DocumentIndex::build(T, Rule);
  std::string Out;
  for (size_t D = 0; D < I.numDocuments(); ++D) {
    if (D)
      Out += "#";
    for (size_t S = I.firstSentence(D); S < I.endSentence(D); ++S) {
      if (S > I.firstSentence(D))
        Out += "|";
      Out += Text.slice(I.sentence(S).Begin, I.sentence(S).End).str();
    }
  }
  return Out;
}

TEST(SplitDocuments, SeparatorLinesAndWholeFiles) {
  auto Split = [](StringRef Text, StringRef Sep) {
    std::vector<std::string> Out;
    for (StringRef D : splitDocuments(Text, Sep))
      Out.push_back(D.str());
    return Out;
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(Split("a\n%\nb\n%\n", "%"), (V{"a\n", "b\n"}));
  // Only a line holding exactly the separator counts; "\r\n" ends lines too.
  EXPECT_EQ(Split("a\n %\n%%\n%\r\nb", "%"), (V{"a\n %\n%%\n", "b"}));
  // Whitespace-only documents are dropped.
  EXPECT_EQ(Split("%\n \t\n%\n\n", "%"), V{});
  EXPECT_EQ(Split("whole\n%\nfile", ""), (V{"whole\n%\nfile"}));
  EXPECT_EQ(Split(" \n", ""), V{});
}

TEST(TokenFlags, ByteLevel) {
  std::vector<uint8_t> F = tokenFlags(ByteTokenizer());
  ASSERT_EQ(F.size(), 256u);
  EXPECT_EQ(F['.'], EndsWithSentencePunct);
  EXPECT_EQ(F['?'], EndsWithSentencePunct);
  EXPECT_EQ(F[' '], StartsWithSpace | AllSpace);
  EXPECT_EQ(F['\n'], StartsWithSpace | AllSpace);
  EXPECT_EQ(F['a'], 0);
  EXPECT_EQ(F[','], 0);
}

TEST(DocumentIndex, SentencesEndAtPunctuationBeforeWhitespace) {
  DocumentRule R = documentRuleFor(TokenizerKind::Byte, ByteEndOfDocument, {});
  EXPECT_FALSE(R.ByteTextSeparators);
  EXPECT_EQ(
      layout("One. Two! Three? pi is 3.14 e.g.x ok.\n\x1ESolo\x1E\x1E", R),
      "One.| Two!| Three?| pi is 3.14 e.g.x ok.\n#Solo");
  // Trailing whitespace joins the last sentence; a text without an end is
  // one sentence; whitespace-only documents are dropped.
  EXPECT_EQ(layout("A. \n\n\x1E  \n\x1E no end", R), "A. \n\n# no end");
}

TEST(DocumentIndex, ByteTextWithoutEndOfDocumentSplitsAtPercentAndBlankLines) {
  DocumentRule R = documentRuleFor(TokenizerKind::Byte, -1, {});
  EXPECT_TRUE(R.ByteTextSeparators);
  EXPECT_EQ(layout("a. b.\n%\nc!\n\nd\r\n%\r\ne\n", R),
            "a.| b.\n#c!\n#d\r\n#e\n");
}

TEST(DocumentIndex, NoFlagsMeansOneSentencePerDocument) {
  DocumentRule R;
  R.EndOfDocument = 0;
  std::vector<int32_t> T = {5, 6, 0, 7, 0, 0, 8};
  DocumentIndex I = DocumentIndex::build(T, R);
  ASSERT_EQ(I.numDocuments(), 3u);
  ASSERT_EQ(I.numSentences(), 3u);
  EXPECT_EQ(I.document(1).Begin, 3u);
  EXPECT_EQ(I.document(2).Begin, 6u);
  // Positions map to their sentence, or the next one after a gap.
  EXPECT_EQ(I.sentenceAt(1), 0u);
  EXPECT_EQ(I.sentenceAt(2), 1u);
  EXPECT_EQ(I.sentenceAt(5), 2u);
  EXPECT_EQ(I.sentenceAt(100), 2u);
  EXPECT_EQ(I.documentOf(2), 2u);
}

} // namespace
