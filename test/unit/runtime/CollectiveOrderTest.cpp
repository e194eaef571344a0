//===- CollectiveOrderTest.cpp - the collective-order proof on synthetic sequences --===//
//
// runtime/plan/CollectiveOrder.h on hand-made event sequences: group collectives (rule 1), point-to-point sends and
// receives (rule 2: no op emits them yet, pipeline parallelism will), and cross-group deadlocks (rule 3).
//
//===----------------------------------------------------------------------===//
#include "runtime/plan/CollectiveOrder.h"

#include <gtest/gtest.h>

using namespace meg::runtime;

namespace {

CommEvent coll(const char *axis, int64_t count, size_t step, const char *reduce = "sum") {
  CommEvent e;
  e.kind = CommEvent::Kind::AllReduce;
  e.axis = axis;
  e.reduce = reduce;
  e.count = count;
  e.step = step;
  e.op = "all_reduce";
  e.value = "%" + std::to_string(step + 100);
  return e;
}

CommEvent p2p(CommEvent::Kind kind, int peer, int64_t count, size_t step) {
  CommEvent e;
  e.kind = kind;
  e.peer = peer;
  e.count = count;
  e.step = step;
  e.op = kind == CommEvent::Kind::Send ? "send" : "recv";
  e.value = "%" + std::to_string(step + 100);
  return e;
}

CommEvent send(int to, int64_t count, size_t step) { return p2p(CommEvent::Kind::Send, to, count, step); }
CommEvent recv(int from, int64_t count, size_t step) { return p2p(CommEvent::Kind::Recv, from, count, step); }

std::string check(const std::vector<std::vector<CommEvent>> &ranks, int dp, int tp) {
  llvm::Error err = verifyCommOrder(ranks, dp, tp, "set");
  return err ? llvm::toString(std::move(err)) : "ok";
}

TEST(CollectiveOrder, MatchingGroupsPass) {
  // dp 2 x tp 2: tp groups {0,1} {2,3}, dp groups {0,2} {1,3}.
  std::vector<CommEvent> seq = {coll("tp", 8, 1), coll("tp", 4, 2, "max"), coll("dp", 16, 3)};
  EXPECT_EQ(check({seq, seq, seq, seq}, 2, 2), "ok");
}

TEST(CollectiveOrder, CountMismatchNamesBothRanksStepAndValue) {
  std::vector<CommEvent> a = {coll("tp", 8, 1), coll("tp", 4, 2)}, b = {coll("tp", 8, 1), coll("tp", 5, 2)};
  EXPECT_EQ(check({a, b}, 1, 2), "set: collective order: rank 0 and rank 1 differ at tp group {0,1} collective #1: "
                                 "rank 0 step 2 'all_reduce' %102 (all-reduce tp sum, 4 x f32), rank 1 step 2 "
                                 "'all_reduce' %102 (all-reduce tp sum, 5 x f32)");
}

TEST(CollectiveOrder, ReductionAndDTypeMismatch) {
  std::vector<CommEvent> a = {coll("tp", 8, 1)}, b = {coll("tp", 8, 1, "max")};
  EXPECT_NE(check({a, b}, 1, 2).find("rank 1 step 1 'all_reduce' %101 (all-reduce tp max"), std::string::npos);
  b = a;
  b[0].dtype = DType::I32;
  EXPECT_NE(check({a, b}, 1, 2).find("8 x i32"), std::string::npos);
}

TEST(CollectiveOrder, MissingCollectiveInTheSecondDpGroup) {
  std::vector<CommEvent> full = {coll("tp", 8, 1), coll("dp", 16, 2)}, cut = {coll("tp", 8, 1)};
  // Rank 3 drops its dp collective: the tp groups still match, the dp group {1,3} does not.
  EXPECT_EQ(check({full, full, full, cut}, 2, 2),
            "set: collective order: rank 1 and rank 3 differ at dp group {1,3} collective #0: rank 1 step 2 "
            "'all_reduce' %102 (all-reduce dp sum, 16 x f32), rank 3 issues none");
}

TEST(CollectiveOrder, CrossGroupOrderDeadlocks) {
  // dp 2 x tp 2 (tp groups {0,1} {2,3}, dp groups {0,2} {1,3}); every group sees the same sequence in each case.
  std::vector<CommEvent> tpFirst = {coll("tp", 8, 1), coll("dp", 16, 2)},
                         dpFirst = {coll("dp", 16, 1), coll("tp", 8, 2)};
  // 0,1 tp then dp, 2,3 dp then tp: {0,1} completes tp, then both dp groups complete, then {2,3} tp.
  EXPECT_EQ(check({tpFirst, tpFirst, dpFirst, dpFirst}, 2, 2), "ok");
  // 0: tp then dp; 1: dp then tp; 2: dp then tp; 3: tp then dp -> 0 waits in tp for 1 (in dp), 1 waits in dp for 3
  // (in tp), 3 waits in tp for 2 (in dp), 2 waits in dp for 0 (in tp): a cycle with every group's order intact.
  std::string msg = check({tpFirst, dpFirst, dpFirst, tpFirst}, 2, 2);
  EXPECT_EQ(msg, "set: collective order: deadlock: rank 0 waits in step 1 'all_reduce' %101 (all-reduce tp sum, 8 x "
                 "f32) for rank 1, which waits in step 1 'all_reduce' %101 (all-reduce dp sum, 16 x f32)");
}

TEST(CollectiveOrder, SendsMatchReceivesInOrder) {
  // A two-stage pipeline over 2 ranks (tp 2 stands in for the stage axis): activations forward, gradients back.
  std::vector<CommEvent> stage0 = {send(1, 64, 3), send(1, 64, 4), recv(1, 64, 9)},
                         stage1 = {recv(0, 64, 1), recv(0, 64, 2), send(0, 64, 7)};
  EXPECT_EQ(check({stage0, stage1}, 1, 2), "ok");
}

TEST(CollectiveOrder, SendWithoutReceive) {
  std::vector<CommEvent> stage0 = {send(1, 64, 3), send(1, 64, 4)}, stage1 = {recv(0, 64, 1)};
  EXPECT_EQ(check({stage0, stage1}, 1, 2),
            "set: collective order: rank 0 and rank 1 differ at rank 0 -> rank 1 message #1: rank 0 step 4 'send' "
            "%104 (send to rank 1, 64 x f32), rank 1 has no matching recv");
}

TEST(CollectiveOrder, ReceiveWithoutSendAndSizeMismatch) {
  EXPECT_NE(check({{}, {recv(0, 64, 1)}}, 1, 2).find("rank 0 has no matching send, rank 1 step 1 'recv' %101"),
            std::string::npos);
  EXPECT_NE(check({{send(1, 64, 3)}, {recv(0, 32, 1)}}, 1, 2)
                .find("rank 0 step 3 'send' %103 (send to rank 1, 64 x f32), rank 1 step 1 'recv' %101 (recv from "
                      "rank 0, 32 x f32)"),
            std::string::npos);
}

TEST(CollectiveOrder, BothSendFirstIsBuffered) {
  // Sends are buffered (the communicators copy or post them): both ranks sending before they receive completes, as
  // 1F1B's crossing activations and gradients need.
  std::vector<CommEvent> r0 = {send(1, 8, 1), recv(1, 8, 2)}, r1 = {send(0, 8, 1), recv(0, 8, 2)};
  EXPECT_EQ(check({r0, r1}, 1, 2), "ok");
}

TEST(CollectiveOrder, BothReceiveFirstDeadlocks) {
  // Each pair's messages match, but both ranks receive before they send: neither message is ever sent.
  std::vector<CommEvent> r0 = {recv(1, 8, 1), send(1, 8, 2)}, r1 = {recv(0, 8, 1), send(0, 8, 2)};
  EXPECT_EQ(check({r0, r1}, 1, 2), "set: collective order: deadlock: rank 0 waits in step 1 'recv' %101 (recv from "
                                   "rank 1, 8 x f32) for rank 1, which waits in step 1 'recv' %101 (recv from rank 0, 8 "
                                   "x f32)");
}

TEST(CollectiveOrder, ReceiveAndCollectiveInterleaveDeadlock) {
  // Rank 0 receives before the tp collective, rank 1 sends after it: 0 waits in recv, 1 in the collective.
  std::vector<CommEvent> r0 = {recv(1, 8, 1), coll("tp", 4, 2)}, r1 = {coll("tp", 4, 1), send(0, 8, 2)};
  EXPECT_NE(check({r0, r1}, 1, 2).find("deadlock: rank 0 waits in step 1 'recv'"), std::string::npos);
}

TEST(CollectiveOrder, PipelineStagesHaveTheirOwnGroups) {
  // dp 1 x tp 2 x 2 pipeline stages: tp groups {0,1} and {2,3}; stage 0 sends to stage 1 rank by rank.
  std::vector<CommEvent> s0 = {coll("tp", 8, 1), send(2, 64, 2)}, s1 = {coll("tp", 8, 1), send(3, 64, 2)};
  std::vector<CommEvent> s2 = {recv(0, 64, 1), coll("tp", 4, 2)}, s3 = {recv(1, 64, 1), coll("tp", 4, 2)};
  EXPECT_EQ(check({s0, s1, s2, s3}, 1, 2), "ok");
  EXPECT_EQ(axisGroup("tp", 3, 1, 2), (std::vector<int>{2, 3}));
  EXPECT_EQ(axisGroup("dp", 3, 2, 1), (std::vector<int>{2, 3}));
  s3[1].count = 8;
  EXPECT_NE(check({s0, s1, s2, s3}, 1, 2).find("rank 2 and rank 3 differ at tp group {2,3} collective #0"),
            std::string::npos);
}

TEST(CollectiveOrder, BadPeerAndAxis) {
  EXPECT_NE(check({{send(5, 8, 1)}, {}}, 1, 2).find("the peer is not another rank"), std::string::npos);
  EXPECT_NE(check({{send(0, 8, 1)}, {}}, 1, 2).find("the peer is not another rank"), std::string::npos);
  EXPECT_NE(check({{coll("pp", 8, 1)}, {}}, 1, 2).find("unknown mesh axis 'pp'"), std::string::npos);
}

} // namespace
