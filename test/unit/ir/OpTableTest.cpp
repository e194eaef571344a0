// Every op in Ops.def has every rule: the completeness test of the op table.
#include "ir/Op.h"
#include "ir/OpRules.h"

#include <gtest/gtest.h>

using namespace meg::ir;

TEST(OpTable, EveryOpHasEveryRule) {
  for (unsigned i = 0; i < kNumOpKinds; ++i) {
    OpKind k = OpKind(i);
    SCOPED_TRACE(opName(k).str());
    EXPECT_EQ(opInfo(k).kind, k);
    EXPECT_FALSE(opName(k).empty());
    EXPECT_EQ(parseOpKind(opName(k)), k);
    EXPECT_NE(shapeRule(k), nullptr);
    EXPECT_NE(flopRule(k), nullptr);
    EXPECT_NE(shardingRule(k), nullptr);
  }
}

TEST(OpTable, UnknownNameIsRejected) { EXPECT_FALSE(parseOpKind("no_such_op").has_value()); }
