//===- TokenizerTest.cpp - byte and GPT-2 BPE tokenizers ------------------===//

#include "runtime/data/Tokenizer.h"

#include "TestUtil.h"

#include "llvm/Support/JSON.h"

using namespace llvm;
using namespace meg::runtime;
using namespace meg::runtime::test;

namespace {

TEST(ByteTokenizer, RoundTrip) {
  ByteTokenizer T;
  EXPECT_EQ(T.vocabSize(), 256u);
  EXPECT_EQ(T.kind(), TokenizerKind::Byte);
  std::string Text = "h\xC3\xA9";
  Text += std::string("\0\xFF\0", 3);
  std::vector<int32_t> Ids = T.encode(Text);
  EXPECT_EQ(Ids, (std::vector<int32_t>{'h', 0xC3, 0xA9, 0, 0xFF, 0}));
  ASSERT_OK_AND_ASSIGN(Back, T.decode(Ids));
  EXPECT_EQ(Back, Text);
  EXPECT_EQ(message(T.decode(std::vector<int32_t>{1, 256})),
            "byte tokenizer: id 256 at position 1 is not a byte");
}

TEST(Gpt2ByteAlphabet, MatchesBytesToUnicode) {
  EXPECT_EQ(gpt2ByteToCodePoint('!'), uint32_t('!'));
  EXPECT_EQ(gpt2ByteToCodePoint('~'), uint32_t('~'));
  EXPECT_EQ(gpt2ByteToCodePoint(0xA1), 0xA1u);
  EXPECT_EQ(gpt2ByteToCodePoint(0xFF), 0xFFu);
  EXPECT_EQ(gpt2ByteToCodePoint(0), 0x100u);
  EXPECT_EQ(gpt2ByteToCodePoint(' '), 0x120u);  // 'Ġ'
  EXPECT_EQ(gpt2ByteToCodePoint('\n'), 0x10Au); // 'Ċ'
  EXPECT_EQ(gpt2ByteToCodePoint(0x7F), 0x121u);
  EXPECT_EQ(gpt2ByteToCodePoint(0xAD), 0x143u); // the last one
}

struct PreTokenizeCase {
  std::string Text;
  std::vector<std::string> Pieces;
};

// Expected pieces come from Python:
//   regex.findall(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+|"""
//                 r""" ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""", text)
class Gpt2PreTokenize : public ::testing::TestWithParam<PreTokenizeCase> {};

TEST_P(Gpt2PreTokenize, MatchesPythonRegex) {
  std::vector<std::string> Got;
  for (StringRef P : gpt2PreTokenize(GetParam().Text))
    Got.push_back(P.str());
  EXPECT_EQ(Got, GetParam().Pieces);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, Gpt2PreTokenize,
    ::testing::Values(
        PreTokenizeCase{"Hello world", {"Hello", " world"}},
        PreTokenizeCase{"I'm here, they're OK'S 'll",
                        {"I", "'m", " here", ",", " they", "'re", " OK", "'",
                         "S", " '", "ll"}},
        PreTokenizeCase{"  multiple   spaces  ",
                        {" ", " multiple", "  ", " spaces", "  "}},
        PreTokenizeCase{"tab\tand\nnewline\n\n",
                        {"tab", "\t", "and", "\n", "newline", "\n\n"}},
        PreTokenizeCase{"x = 3.14159;", {"x", " =", " 3", ".", "14159", ";"}},
        PreTokenizeCase{"h\u00e9llo w\u00f6rld", {"h\u00e9llo", " w\u00f6rld"}},
        PreTokenizeCase{"\u65e5\u672c\u8a9e \u30c6\u30ad\u30b9\u30c8",
                        {"\u65e5\u672c\u8a9e", " \u30c6\u30ad\u30b9\u30c8"}},
        PreTokenizeCase{"emoji \U0001F600!! ok",
                        {"emoji", " \U0001F600!!", " ok"}},
        PreTokenizeCase{" 's", {" '", "s"}},
        PreTokenizeCase{"a\u00a0b\u3000 c",
                        {"a", "\u00a0", "b", "\u3000", " c"}},
        PreTokenizeCase{"\u0663\u0664 \u216b \u00bd",
                        {"\u0663\u0664", " \u216b", " \u00bd"}},
        PreTokenizeCase{"end \n x", {"end", " \n", " x"}},
        PreTokenizeCase{"''s", {"''", "s"}},
        PreTokenizeCase{"a  \n\n b", {"a", "  \n\n", " b"}},
        PreTokenizeCase{"", {}}));

TEST(Gpt2PreTokenizeInvalidUtf8, BytesAreOtherCharacters) {
  // Invalid bytes behave like punctuation; the pieces still tile the input.
  std::string Text = "ab\xFF\xFE cd \xC3";
  std::vector<std::string> Got;
  for (StringRef P : gpt2PreTokenize(Text))
    Got.push_back(P.str());
  EXPECT_EQ(Got, (std::vector<std::string>{"ab", "\xFF\xFE", " cd", " \xC3"}));
}

/// A tiny GPT-2 style vocabulary: the 256 byte symbols with id = byte value,
/// then the merge results, then <|endoftext|>.
struct TinyBpe {
  std::string Vocab;
  std::string Merges;
};

std::string symbolOf(uint8_t B) {
  std::string S;
  uint32_t C = gpt2ByteToCodePoint(B);
  if (C < 0x80) {
    S.push_back(static_cast<char>(C));
  } else if (C < 0x800) {
    S.push_back(static_cast<char>(0xC0 | (C >> 6)));
    S.push_back(static_cast<char>(0x80 | (C & 0x3F)));
  }
  return S;
}

TinyBpe tinyBpe(bool WithEndOfText = true, bool TrailingNewline = true) {
  std::vector<std::pair<std::string, std::string>> Merges = {
      {"l", "l"},        {"h", "e"},         {"\u0120", "w"},
      {"o", "r"},        {"he", "ll"},       {"hell", "o"},
      {"\u0120w", "or"}, {"\u0120wor", "l"}, {"\u0120worl", "d"}};
  json::Object V;
  for (unsigned B = 0; B < 256; ++B)
    V[symbolOf(static_cast<uint8_t>(B))] = static_cast<int64_t>(B);
  int64_t Next = 256;
  std::string MergesTxt = "#version: 0.2\n";
  for (auto &[A, B] : Merges) {
    V[A + B] = Next++;
    MergesTxt += A + " " + B + "\n";
  }
  if (WithEndOfText)
    V["<|endoftext|>"] = Next++;
  if (!TrailingNewline)
    MergesTxt.pop_back();
  std::string VocabTxt;
  raw_string_ostream OS(VocabTxt);
  OS << json::Value(std::move(V));
  OS.flush();
  return {VocabTxt, MergesTxt};
}

std::unique_ptr<Gpt2BpeTokenizer> loadTiny(bool WithEndOfText = true,
                                           bool TrailingNewline = true) {
  TinyBpe T = tinyBpe(WithEndOfText, TrailingNewline);
  auto Tok = Gpt2BpeTokenizer::fromStrings(T.Vocab, T.Merges);
  if (!Tok) {
    ADD_FAILURE() << toString(Tok.takeError());
    return nullptr;
  }
  return std::move(*Tok);
}

TEST(Gpt2Bpe, TinyVocabularyKnownIds) {
  auto Tok = loadTiny();
  ASSERT_TRUE(Tok);
  EXPECT_EQ(Tok->vocabSize(), 266u);
  EXPECT_EQ(Tok->kind(), TokenizerKind::Gpt2Bpe);
  EXPECT_EQ(Tok->endOfTextId(), 265);
  EXPECT_EQ(Tok->unkId(), 265);
  // hello -> h e l l o -> h e ll o -> he ll o -> hell o -> hello (261);
  // " world" -> Ġw o r l d -> ... -> Ġworld (264).
  EXPECT_EQ(Tok->encode("hello world"), (std::vector<int32_t>{261, 264}));
  EXPECT_EQ(Tok->tokenize("hello world"),
            (std::vector<std::string>{"hello", "\u0120world"}));
  // Two spaces: the first stays alone (Ġ = byte 32).
  EXPECT_EQ(Tok->encode("hello  world!"),
            (std::vector<int32_t>{261, 32, 264, 33}));
  // No merge "he l": h e l d -> he l d.
  EXPECT_EQ(Tok->encode("held"), (std::vector<int32_t>{257, 'l', 'd'}));
  // Case matters: H e l l o -> H e ll o.
  EXPECT_EQ(Tok->encode("Hello"), (std::vector<int32_t>{'H', 'e', 256, 'o'}));
  // "llll" merges left to right without overlap: ll ll.
  EXPECT_EQ(Tok->encode("lllll"), (std::vector<int32_t>{256, 256, 'l'}));
  // Non-ASCII goes through the byte alphabet: é = C3 A9.
  EXPECT_EQ(Tok->encode("\u00e9"), (std::vector<int32_t>{0xC3, 0xA9}));
  EXPECT_EQ(Tok->encode(""), std::vector<int32_t>{});
}

TEST(Gpt2Bpe, MergeRankDecidesNotPosition) {
  auto Tok = loadTiny();
  ASSERT_TRUE(Tok);
  // " wor": Ġ w o r. Ranks: "Ġ w" = 2, "o r" = 3. Ġw first, then or, then
  // Ġw or -> Ġwor (262).
  EXPECT_EQ(Tok->encode(" wor"), (std::vector<int32_t>{262}));
  // "wor" without a space: w o r -> w or (no "w or" merge).
  EXPECT_EQ(Tok->encode("wor"), (std::vector<int32_t>{'w', 259}));
}

TEST(Gpt2Bpe, SpecialTokenIsSplitOut) {
  auto Tok = loadTiny();
  ASSERT_TRUE(Tok);
  EXPECT_EQ(Tok->encode("hello<|endoftext|> world"),
            (std::vector<int32_t>{261, 265, 264}));
  EXPECT_EQ(Tok->encode("<|endoftext|><|endoftext|>"),
            (std::vector<int32_t>{265, 265}));
  // Without the special token in the vocabulary it is ordinary text.
  auto Plain = loadTiny(/*WithEndOfText=*/false);
  ASSERT_TRUE(Plain);
  EXPECT_EQ(Plain->encode("<|e"), (std::vector<int32_t>{'<', '|', 'e'}));
  EXPECT_EQ(Plain->unkId(), -1);
}

TEST(Gpt2Bpe, DecodeInvertsEncode) {
  auto Tok = loadTiny();
  ASSERT_TRUE(Tok);
  for (std::string Text :
       {std::string("hello  world!\n\n  x"),
        std::string("h\u00e9llo \U0001F600"), std::string("a<|endoftext|>b"),
        std::string("bad \xFF\xC3 utf8")}) {
    ASSERT_OK_AND_ASSIGN(Back, Tok->decode(Tok->encode(Text)));
    EXPECT_EQ(Back, Text);
  }
  EXPECT_EQ(message(Tok->decode(std::vector<int32_t>{261, 266})),
            "gpt2 tokenizer: id 266 at position 1 is not in the vocabulary");
}

TEST(Gpt2Bpe, MergesFileDropsFirstAndLastLineLikeHuggingFace) {
  // Without a trailing newline HF's split("\n")[1:-1] loses the last merge
  // ("Ġworl d"): " world" then stops at Ġworl d.
  auto Tok = loadTiny(/*WithEndOfText=*/true, /*TrailingNewline=*/false);
  ASSERT_TRUE(Tok);
  EXPECT_EQ(Tok->encode(" world"), (std::vector<int32_t>{263, 'd'}));
}

TEST(Gpt2Bpe, LoadErrors) {
  TinyBpe T = tinyBpe();
  EXPECT_EQ(message(Gpt2BpeTokenizer::fromStrings("[1]", T.Merges, "v.json")),
            "v.json: not a JSON object of token -> id");
  EXPECT_EQ(
      message(Gpt2BpeTokenizer::fromStrings("{\n  \"a\": 1,\n  b", T.Merges)),
      "vocab.json:3:3: not valid JSON: Expected object key");
  std::string M;
  EXPECT_EQ(message(Gpt2BpeTokenizer::fromStrings(R"({"a": -1})", T.Merges)),
            "vocab.json: token 'a' has no valid id (a non-negative integer)");
  EXPECT_EQ(
      message(Gpt2BpeTokenizer::fromStrings(R"({"a": 0, "b": 0})", "#v\n")),
      "vocab.json: tokens 'a' and 'b' share id 0");
  // Without an unk token every byte symbol must be present ...
  EXPECT_EQ(message(Gpt2BpeTokenizer::fromStrings(R"({"a": 0})", "#v\n")),
            "vocab.json: the symbol of byte 0 is missing (and there is no unk "
            "token)");
  // ... and every merge result.
  TinyBpe NoEot = tinyBpe(/*WithEndOfText=*/false);
  EXPECT_EQ(message(Gpt2BpeTokenizer::fromStrings(
                NoEot.Vocab, NoEot.Merges + "x y\n", "v", "m.txt")),
            "m.txt:11: merge result 'xy' is not in the vocabulary (and "
            "there is no unk token)");
  EXPECT_EQ(message(Gpt2BpeTokenizer::fromStrings(T.Vocab, "#v\nh e\nx\n", "v",
                                                  "m.txt")),
            "m.txt:3: expected two symbols separated by a space, got 1");
  EXPECT_EQ(message(Gpt2BpeTokenizer::fromStrings(T.Vocab, "#v\na b c\n", "v",
                                                  "m.txt")),
            "m.txt:2: expected two symbols separated by a space, got 3");
  TempDir D;
  std::string Missing = D.path("vocab.json");
  M = message(Gpt2BpeTokenizer::load(Missing, D.path("merges.txt")));
  EXPECT_EQ(M.rfind(Missing + ": cannot open file: ", 0), 0u) << M;
}

TEST(Gpt2Bpe, LoadFromFiles) {
  TempDir D;
  TinyBpe T = tinyBpe();
  writeRaw(D.path("vocab.json"), T.Vocab);
  writeRaw(D.path("merges.txt"), T.Merges);
  ASSERT_OK_AND_ASSIGN(
      Tok, Gpt2BpeTokenizer::load(D.path("vocab.json"), D.path("merges.txt")));
  EXPECT_EQ(Tok->encode("hello world"), (std::vector<int32_t>{261, 264}));
  EXPECT_EQ(Tok->tokenToId("hello"), 261);
  EXPECT_EQ(Tok->tokenToId("nope"), -1);
}

} // namespace
