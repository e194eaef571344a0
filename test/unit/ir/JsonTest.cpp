//===- JsonTest.cpp - parseJson's nesting bound ---------------------------===//
#include "ir/Json.h"

#include "gtest/gtest.h"

#include <string>

using namespace meg;

namespace {

std::string nested(unsigned depth) { return std::string(depth, '[') + std::string(depth, ']'); }

TEST(JsonTest, AcceptsNestingUpToTheBound) {
  auto v = parseJson(nested(kMaxJsonDepth));
  ASSERT_TRUE(bool(v)) << llvm::toString(v.takeError());
  EXPECT_TRUE(v->getAsArray());
}

TEST(JsonTest, RefusesDeeperNestingBeforeParsing) {
  auto v = parseJson(nested(50000));
  ASSERT_FALSE(bool(v));
  EXPECT_EQ(llvm::toString(v.takeError()), "JSON nested deeper than 64 levels (at byte 64)");
}

TEST(JsonTest, BracketsInStringsDoNotCount) {
  std::string text = "{\"k\": \"" + std::string(100, '[') + "\\\"" + std::string(100, '{') + "\"}";
  auto v = parseJson(text);
  ASSERT_TRUE(bool(v)) << llvm::toString(v.takeError());
  EXPECT_EQ(v->getAsObject()->getString("k")->size(), 201u);
}

TEST(JsonTest, SyntaxErrorsStillComeFromTheParser) {
  auto v = parseJson("{\"a\": }");
  ASSERT_FALSE(bool(v));
  EXPECT_NE(llvm::toString(v.takeError()).find("Invalid JSON value"), std::string::npos);
}

} // namespace
