//===- ReduceScatterBucketTest.cpp - one reduce-scatter for a bucket of values ------===//
//
// reduce_scatter_bucket (bucket-dp's bucket of the distributed optimizer's gradient reduce-scatters) against the
// reduce_scatter of each member: one graph reads the same partial values (every rank's addend differs) through both,
// runs on dp = 2 and dp = 4 in-process CPU ranks, and every result, assembled from its shards, must be the
// member's reduce_scatter result bit for bit. The members split different dims, leading and not (the kernel packs
// those through the strided shard gather), and have different sizes, so a wrong offset or rank-major layout moves
// values between members or ranks. (The op-table test runs docs/ir.md's example against the plain reference.)
//
//===----------------------------------------------------------------------===//
#include "test/support/OpExamples.h"

#include <gtest/gtest.h>

using namespace meg;
using namespace meg::optest;

namespace {

std::string bucketGraph(int dp) {
  return "graph @bucket mesh(dp=" + std::to_string(dp) + R"(, tp=1) {
  %0 = input() {name = "w"} : f32[8,6] partial(dp,sum)
  %1 = input() {name = "qkv"} : f32[3,8,2] partial(dp,sum)
  %2 = input() {name = "b"} : f32[4] partial(dp,sum)
  %3 = input() {name = "x"} : f32[2,3,12] partial(dp,sum)
  %4, %5, %6, %7 = reduce_scatter_bucket(%0, %1, %2, %3) {axis = dp, dims = [0,1,0,2], reduce = sum} : f32[8@dp,6], f32[3,8@dp,2], f32[4@dp], f32[2,3,12@dp]
  %8 = reduce_scatter(%0) {axis = dp, dim = 0, reduce = sum} : f32[8@dp,6]
  %9 = reduce_scatter(%1) {axis = dp, dim = 1, reduce = sum} : f32[3,8@dp,2]
  %10 = reduce_scatter(%2) {axis = dp, dim = 0, reduce = sum} : f32[4@dp]
  %11 = reduce_scatter(%3) {axis = dp, dim = 2, reduce = sum} : f32[2,3,12@dp]
  output(%4) {name = "bucket:w"}
  output(%5) {name = "bucket:qkv"}
  output(%6) {name = "bucket:b"}
  output(%7) {name = "bucket:x"}
  output(%8) {name = "single:w"}
  output(%9) {name = "single:qkv"}
  output(%10) {name = "single:b"}
  output(%11) {name = "single:x"}
}
)";
}

class ReduceScatterBucket : public ::testing::TestWithParam<int> {};

TEST_P(ReduceScatterBucket, EqualsEachMembersReduceScatter) {
  auto compiled = compileExample(bucketGraph(GetParam()), nullptr, /*observeAll=*/false);
  ASSERT_TRUE(bool(compiled)) << llvm::toString(compiled.takeError());
  auto run = runExample(*compiled, "cpu");
  ASSERT_TRUE(bool(run)) << llvm::toString(run.takeError());
  EXPECT_EQ(run->replicaMismatches, std::vector<std::string>());
  for (const char *name : {"w", "qkv", "b", "x"}) {
    const HostTensor &bucket = run->outputs.at(std::string("bucket:") + name);
    const HostTensor &single = run->outputs.at(std::string("single:") + name);
    ASSERT_EQ(bucket.shape, single.shape) << name;
    EXPECT_EQ(bucket.data, single.data) << name;
    // Not a constant: the addends of the ranks were summed into something that varies.
    EXPECT_NE(single.data.front(), single.data.back()) << name;
  }
}

INSTANTIATE_TEST_SUITE_P(Dp, ReduceScatterBucket, ::testing::Values(2, 4));

} // namespace
