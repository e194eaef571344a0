//===- CommunicatorTest.cpp - in-process collectives over a dp x tp mesh -----===//
#include "runtime/comm/Communicator.h"
#include "runtime/exec/Executor.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

using namespace meg::runtime;

namespace {

/// Runs fn(rank, comm) on every rank of a dp x tp in-process world.
template <typename Fn> void onWorld(int dp, int tp, Fn fn) {
  auto world = InProcessCommunicator::createWorld(dp, tp);
  std::vector<std::unique_ptr<InProcessCommunicator>> comms;
  for (int r = 0; r < dp * tp; ++r)
    comms.push_back(std::make_unique<InProcessCommunicator>(world, r));
  RankThreads threads(dp * tp);
  llvm::Error err = threads.run([&](int r) -> llvm::Error {
    fn(r, *comms[r]);
    return llvm::Error::success();
  });
  EXPECT_FALSE(bool(err)) << llvm::toString(std::move(err));
}

TEST(CommunicatorTest, AllReduceSumsWithinTheAxisGroup) {
  // dp 2 x tp 2: the tp groups are {0, 1} and {2, 3}; the dp groups {0, 2} and {1, 3}.
  std::vector<std::vector<float>> tpOut(4), dpOut(4);
  onWorld(2, 2, [&](int r, Communicator &c) {
    std::vector<float> x = {float(r), float(10 * r), 1.0f};
    ASSERT_FALSE(bool(c.allReduce(CommAxis::TP, CommReduce::Sum, x.data(), 3)));
    tpOut[r] = x;
    std::vector<float> y = {float(r), -float(r)};
    ASSERT_FALSE(bool(c.allReduce(CommAxis::DP, CommReduce::Max, y.data(), 2)));
    dpOut[r] = y;
  });
  EXPECT_EQ(tpOut[0], (std::vector<float>{1, 10, 2}));
  EXPECT_EQ(tpOut[1], (std::vector<float>{1, 10, 2}));
  EXPECT_EQ(tpOut[2], (std::vector<float>{5, 50, 2}));
  EXPECT_EQ(tpOut[3], (std::vector<float>{5, 50, 2}));
  EXPECT_EQ(dpOut[0], (std::vector<float>{2, 0}));
  EXPECT_EQ(dpOut[2], (std::vector<float>{2, 0}));
  EXPECT_EQ(dpOut[1], (std::vector<float>{3, -1}));
}

TEST(CommunicatorTest, ReductionOrderIsRankOrder) {
  // (1e8 + 1) - 1e8 in float depends on the order; every rank must get the rank-order result, every run.
  for (int run = 0; run < 20; ++run) {
    std::vector<float> out(4);
    onWorld(1, 4, [&](int r, Communicator &c) {
      float v[4] = {1e8f, 1.0f, -1e8f, 1.0f};
      float x = v[r];
      ASSERT_FALSE(bool(c.allReduce(CommAxis::TP, CommReduce::Sum, &x, 1)));
      out[r] = x;
    });
    float expected = ((1e8f + 1.0f) + -1e8f) + 1.0f;
    for (float v : out)
      EXPECT_EQ(v, expected);
  }
}

TEST(CommunicatorTest, GatherAndReduceScatter) {
  std::vector<std::vector<float>> gathered(3), scattered(3);
  onWorld(1, 3, [&](int r, Communicator &c) {
    std::vector<float> mine = {float(r), float(r) + 0.5f};
    std::vector<float> all(6);
    ASSERT_FALSE(bool(c.allGather(CommAxis::TP, mine.data(), 2, all.data())));
    gathered[r] = all;
    std::vector<float> blocks = {1, 2, 3, 4, 5, 6};
    for (float &b : blocks)
      b *= float(r + 1);
    std::vector<float> out(2);
    ASSERT_FALSE(bool(c.reduceScatter(CommAxis::TP, CommReduce::Sum, blocks.data(), 2, out.data())));
    scattered[r] = out;
  });
  for (int r = 0; r < 3; ++r)
    EXPECT_EQ(gathered[r], (std::vector<float>{0, 0.5f, 1, 1.5f, 2, 2.5f}));
  EXPECT_EQ(scattered[0], (std::vector<float>{6, 12}));
  EXPECT_EQ(scattered[1], (std::vector<float>{18, 24}));
  EXPECT_EQ(scattered[2], (std::vector<float>{30, 36}));
}

TEST(CommunicatorTest, CountMismatchIsAnErrorOnEveryMember) {
  std::vector<std::string> errors(2);
  onWorld(1, 2, [&](int r, Communicator &c) {
    std::vector<float> x(4, 1.0f);
    llvm::Error err = c.allReduce(CommAxis::TP, CommReduce::Sum, x.data(), r == 0 ? 4 : 3);
    errors[r] = err ? llvm::toString(std::move(err)) : "";
  });
  EXPECT_NE(errors[0].find("different counts"), std::string::npos);
  EXPECT_NE(errors[1].find("different counts"), std::string::npos);
}

TEST(CommunicatorTest, SingleRankCopies) {
  SingleRankCommunicator c;
  float x[2] = {1, 2}, y[2] = {0, 0};
  ASSERT_FALSE(bool(c.allReduce(CommAxis::TP, CommReduce::Sum, x, 2)));
  ASSERT_FALSE(bool(c.allGather(CommAxis::DP, x, 2, y)));
  EXPECT_EQ(y[1], 2.0f);
  EXPECT_EQ(c.axisSize(CommAxis::TP), 1);
}

} // namespace
