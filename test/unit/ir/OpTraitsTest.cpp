// The op table's name lookup and trait columns (every rule of every op is exercised by test/unit/ops).
#include "ir/Op.h"

#include <gtest/gtest.h>

using namespace meg::ir;

TEST(OpTable, UnknownNameIsRejected) { EXPECT_FALSE(parseOpKind("no_such_op").has_value()); }

TEST(OpTable, TraitsColumn) {
  // Collective: the ops partition inserts, each with one operand, and bucket-dp's all_reduce_bucket and
  // reduce_scatter_bucket (one result per operand); all take an `axis`.
  for (OpKind k : {OpKind::AllReduce, OpKind::AllReduceBucket, OpKind::AllGather, OpKind::ReduceScatter, OpKind::Shard,
                   OpKind::ReduceScatterBucket})
    EXPECT_TRUE(isCollective(k)) << opName(k).str();
  // A reduce-scatter's result is smaller than its operand: never in place, bucketed or not.
  EXPECT_FALSE(mayOverwriteOperand(OpKind::ReduceScatter) || mayOverwriteOperand(OpKind::ReduceScatterBucket));
  EXPECT_TRUE(hasResultPerOperand(OpKind::ReduceScatterBucket));
  EXPECT_FALSE(isCollective(OpKind::Contract));
  EXPECT_TRUE(isExternal(OpKind::Param) && isExternal(OpKind::Input) && isExternal(OpKind::State));
  EXPECT_TRUE(aliasesOperand(OpKind::Reshape));
  EXPECT_TRUE(mayOverwriteOperand(OpKind::Add) && mayOverwriteOperand(OpKind::AllReduce));
  EXPECT_TRUE(hasTrait(OpKind::AllReduce, OpTrait::InPlace | OpTrait::Collective));
  EXPECT_FALSE(hasTrait(OpKind::AllGather, OpTrait::InPlace | OpTrait::Collective));
  EXPECT_EQ(writtenOperands(OpKind::AdamW), 0b1101u);
  for (unsigned i = 0; i < kNumOpKinds; ++i) {
    const OpInfo &info = opInfo(OpKind(i));
    SCOPED_TRACE(info.name.str());
    if (isCollective(info.kind))
      EXPECT_EQ(info.maxOperands, hasResultPerOperand(info.kind) ? -1 : 1);
    if (hasResultPerOperand(info.kind))
      EXPECT_EQ(numResultsOf(info.kind, 3), 3u);
    else
      EXPECT_EQ(numResultsOf(info.kind, 3), unsigned(info.numResults));
    if (isExternal(info.kind))
      EXPECT_EQ(info.maxOperands, 0);
    // A written operand exists.
    if (info.maxOperands >= 0)
      EXPECT_EQ(info.writesMask >> info.maxOperands, 0u);
  }
}
