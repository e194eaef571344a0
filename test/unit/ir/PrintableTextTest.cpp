//===- PrintableTextTest.cpp - bytes from a file, safe for an error message -----------------------------------===//
#include "ir/File.h"

#include <gtest/gtest.h>

#include <string>

using meg::printableText;

TEST(PrintableText, KeepsPrintableAsciiAndUtf8) {
  EXPECT_EQ(printableText("transformer.h.0.attn.c_attn.weight"), "transformer.h.0.attn.c_attn.weight");
  EXPECT_EQ(printableText("\xc4\xa0the caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
            "\xc4\xa0the caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"); // Ġ, é, €, an emoji
  EXPECT_EQ(printableText(""), "");
}

TEST(PrintableText, EscapesControlBytes) {
  EXPECT_EQ(printableText("\x1b[2Ja\x07"), "\\x1b[2Ja\\x07");
  EXPECT_EQ(printableText(std::string("a\0b", 3)), "a\\x00b");
  EXPECT_EQ(printableText("a\rb\tc\x7f"), "a\\x0db\\x09c\\x7f");
  EXPECT_EQ(printableText("line\nnext"), "line\\x0anext");
  EXPECT_EQ(printableText("line\nnext", 200, /*keepNewlines=*/true), "line\nnext");
  EXPECT_EQ(printableText("\xc2\x9b" "31m"), "\\xc2\\x9b31m"); // C1 control U+009B (CSI)
}

TEST(PrintableText, EscapesInvalidUtf8) {
  EXPECT_EQ(printableText("\xff\xfe"), "\\xff\\xfe");
  EXPECT_EQ(printableText("a\xc3"), "a\\xc3");            // a sequence cut short at the end
  EXPECT_EQ(printableText("\xc3(x"), "\\xc3(x");          // a lead byte without its continuation
  EXPECT_EQ(printableText("\x80z"), "\\x80z");            // a lone continuation byte
  EXPECT_EQ(printableText("\xc0\xaf"), "\\xc0\\xaf");     // an overlong '/'
  EXPECT_EQ(printableText("\xed\xa0\x80"), "\\xed\\xa0\\x80"); // a UTF-16 surrogate
}

TEST(PrintableText, CutsLongText) {
  std::string longName(1000, 'x');
  EXPECT_EQ(printableText(longName, 10), "xxxxxxxxxx... (1000 bytes)");
  // Never inside a character: the é that starts at byte 9 is kept whole.
  EXPECT_EQ(printableText("123456789\xc3\xa9zz", 10), "123456789\xc3\xa9... (13 bytes)");
  EXPECT_EQ(printableText("abc", 3), "abc");
}
