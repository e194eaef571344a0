//===- ZeroShotDataTest.cpp - Megatron's zero-shot text processing ------------===//
#include "TestUtil.h"

#include "runtime/data/Tokenizer.h"
#include "runtime/data/ZeroShotData.h"

using namespace meg::runtime;
using namespace meg::runtime::test;

namespace {

TEST(ZeroShotDataTest, WikitextDetokenizerFollowsMegatron) {
  EXPECT_EQ(wikitextDetokenize(" = = Early life = = \n"), " == Early life ==\n"); // only spaces at newlines go
  EXPECT_EQ(wikitextDetokenize("a 19th @-@ century , 12 @,@ 400 and 24 @.@ 5 m . Next"),
            "a 19th-century, 12,400 and 24.5 m. Next");
  EXPECT_EQ(wikitextDetokenize("the keepers ' log"), "the keepers' log");
  // Megatron's regex replacement is the literal text "/'[0-9]/".
  EXPECT_EQ(wikitextDetokenize("x /' 5/ y"), "x /'[0-9]/ y");
  // Whitespace just inside pairs; the first closing character closes; unclosed openers stay.
  EXPECT_EQ(wikitextDetokenize("( a ( b ) c ) [ d ] { e } \" f \" ' g '"), "(a ( b) c ) [d] {e} \"f\" 'g'");
  EXPECT_EQ(wikitextDetokenize("open ( never closed"), "open ( never closed");
  EXPECT_EQ(wikitextDetokenize("-12 \xC2\xB0 C and the N th , John 's"), "-12\xC2\xB0" "C and the 1 th, John's");
  EXPECT_EQ(wikitextDetokenize("end . \n next"), "end.\nnext");
}

TEST(ZeroShotDataTest, OriginalTokensAreSingleSpacePieces) {
  EXPECT_EQ(countOriginalTokens(" a b\nc  d \n"), 4); // "a b\nc  d" -> "a", "b\nc", "", "d"
  EXPECT_EQ(countOriginalTokens(""), 1);
}

TEST(ZeroShotDataTest, WindowsScoreEveryTargetOnce) {
  std::vector<int32_t> tokens;
  for (int i = 0; i < 23; ++i)
    tokens.push_back(100 + i);
  for (int64_t overlap : {8, 3, 1}) {
    LmWindows w(tokens, 8, overlap, -1);
    std::vector<int> seen(tokens.size(), 0);
    std::vector<int32_t> input, target;
    std::vector<uint8_t> scored;
    for (int64_t i = 0; i < w.size(); ++i) {
      w.window(i, input, target, scored);
      for (size_t t = 0; t < 8; ++t) {
        if (!scored[t])
          continue;
        EXPECT_EQ(target[t], input[t] + 1);
        ++seen[size_t(target[t] - 100)];
      }
    }
    EXPECT_EQ(seen[0], 0) << overlap;
    for (size_t i = 1; i < seen.size(); ++i)
      EXPECT_EQ(seen[i], 1) << "overlap " << overlap << " token " << i;
  }
  EXPECT_EQ(LmWindows(tokens, 8, 8, 0).size(), 3); // 22 targets: 8 + ceil(14 / 8) windows of 8
  EXPECT_EQ(LmWindows(tokens, 8, 3, 0).size(), 8); // 1 + ceil(19 / 3)
}

TEST(ZeroShotDataTest, LambadaTargets) {
  TempDir dir;
  std::string path = dir.path("l.jsonl");
  writeRaw(path, "{\"text\": \"in the end\"}\n\n{\"text\": \"say it again  \"}\n");
  ByteTokenizer bytes;
  auto last = readLambada(path, bytes, /*strict=*/false);
  ASSERT_TRUE(bool(last)) << llvm::toString(last.takeError());
  ASSERT_EQ(last->size(), 2u);
  EXPECT_EQ((*last)[0].target, std::vector<int32_t>{'d'});
  EXPECT_EQ((*last)[0].context.size(), 9u);
  EXPECT_EQ((*last)[1].target, std::vector<int32_t>{' '}); // the last token, even a space
  auto strict = readLambada(path, bytes, /*strict=*/true);
  ASSERT_TRUE(bool(strict));
  EXPECT_EQ((*strict)[0].target, (std::vector<int32_t>{' ', 'e', 'n', 'd'}));
  EXPECT_EQ((*strict)[0].context, bytes.encode("in the"));
  EXPECT_EQ((*strict)[1].target, (std::vector<int32_t>{' ', 'a', 'g', 'a', 'i', 'n'}));
  EXPECT_EQ((*strict)[1].context, bytes.encode("say it"));
}

} // namespace
