//===- SplitTest.cpp - Megatron's --split bounds ------------------------------===//
#include "TestUtil.h"

#include "runtime/data/Split.h"

using namespace meg::runtime;
using namespace meg::runtime::test;

namespace {

std::array<uint64_t, 4> bounds(llvm::StringRef text, uint64_t size) {
  auto w = parseSplit(text);
  EXPECT_TRUE(bool(w)) << llvm::toString(w.takeError());
  return splitBounds(*w, size);
}

// Expected values from Megatron's get_train_valid_test_split_ (Python, round half to even).
TEST(SplitTest, MatchesMegatron) {
  EXPECT_EQ(bounds("1,1,0", 5), (std::array<uint64_t, 4>{0, 3, 5, 5}));
  EXPECT_EQ(bounds("969,30,1", 25), (std::array<uint64_t, 4>{0, 24, 25, 25}));
  EXPECT_EQ(bounds("969,30,1", 1000003), (std::array<uint64_t, 4>{0, 969003, 999003, 1000003}));
  EXPECT_EQ(bounds("1/2/3", 7), (std::array<uint64_t, 4>{0, 1, 3, 7}));
  EXPECT_EQ(bounds("3,3,3", 10), (std::array<uint64_t, 4>{0, 4, 7, 10}));
  EXPECT_EQ(bounds("1", 9), (std::array<uint64_t, 4>{0, 9, 9, 9}));
}

TEST(SplitTest, Errors) {
  EXPECT_EQ(message(parseSplit("1,2,3,4")), "--split '1,2,3,4': at most three weights (train, valid, test)");
  EXPECT_EQ(message(parseSplit("1,-2")), "--split '1,-2': '-2' is not a non-negative number");
  EXPECT_EQ(message(parseSplit("0")), "--split '0': the weights add up to 0");
}

} // namespace
