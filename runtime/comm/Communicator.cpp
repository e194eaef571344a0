//===- Communicator.cpp - single-rank and in-process communicators -----------===//
//
// In-process collectives are a two-phase rendezvous per group: every member publishes its buffer and waits on the
// group's barrier; then each member computes its own result by reading the published buffers in group-rank order
// (so the reduction order is fixed), and waits on the barrier again before anyone may reuse its buffer.
//
//===----------------------------------------------------------------------===//
#include "runtime/comm/Communicator.h"

#include "llvm/Support/FormatVariadic.h"

#include <algorithm>
#include <barrier>
#include <cassert>
#include <cmath>
#include <cstring>
#include <vector>

using namespace meg::runtime;

Communicator::~Communicator() = default;

llvm::Error SingleRankCommunicator::allGather(CommAxis, const float *in, int64_t count, float *out) {
  if (in != out)
    std::memmove(out, in, size_t(count) * sizeof(float));
  return llvm::Error::success();
}

llvm::Error SingleRankCommunicator::reduceScatter(CommAxis, CommReduce, const float *in, int64_t count, float *out) {
  if (in != out)
    std::memmove(out, in, size_t(count) * sizeof(float));
  return llvm::Error::success();
}

llvm::Error SingleRankCommunicator::gatherToRoot(llvm::ArrayRef<float> in, std::vector<float> &out,
                                                std::vector<int64_t> &counts) {
  out.assign(in.begin(), in.end());
  counts.assign(1, int64_t(in.size()));
  return llvm::Error::success();
}

namespace meg::runtime {

class InProcessWorld {
public:
  InProcessWorld(int dp, int tp) : dp(dp), tp(tp), slots(size_t(dp) * tp), worldBarrier(dp * tp) {
    for (int d = 0; d < dp; ++d)
      tpBarriers.push_back(std::make_unique<std::barrier<>>(tp));
    for (int t = 0; t < tp; ++t)
      dpBarriers.push_back(std::make_unique<std::barrier<>>(dp));
  }

  struct Slot {
    const float *data = nullptr;
    int64_t count = 0;
  };

  /// The world ranks of `rank`'s group along `axis`, in group order.
  std::vector<int> group(CommAxis axis, int rank) const { return meshGroup(dp, tp, axis, rank); }
  std::barrier<> &groupBarrier(CommAxis axis, int rank) {
    return axis == CommAxis::TP ? *tpBarriers[rank / tp] : *dpBarriers[rank % tp];
  }

  const int dp, tp;
  std::vector<Slot> slots;
  std::barrier<> worldBarrier;
  std::vector<std::unique_ptr<std::barrier<>>> tpBarriers, dpBarriers;
};

} // namespace meg::runtime

std::shared_ptr<InProcessWorld> InProcessCommunicator::createWorld(int meshDp, int meshTp) {
  assert(meshDp >= 1 && meshTp >= 1 && "mesh sizes must be positive");
  return std::make_shared<InProcessWorld>(meshDp, meshTp);
}

InProcessCommunicator::InProcessCommunicator(std::shared_ptr<InProcessWorld> w, int rank)
    : Communicator(w->dp, w->tp, rank), world(std::move(w)) {
  assert(rank >= 0 && rank < world->dp * world->tp && "rank outside the world");
}

namespace {

/// Runs one collective: publish (data, count), rendezvous, `compute(members)` reading the published slots, then a
/// second rendezvous. A count mismatch inside the group is an error on every member (after both rendezvous).
template <typename Fn>
llvm::Error rendezvous(InProcessWorld &w, CommAxis axis, int rank, const float *data, int64_t count,
                       const char *what, Fn &&compute) {
  std::vector<int> members = w.group(axis, rank);
  if (members.size() == 1) {
    compute(members);
    return llvm::Error::success();
  }
  std::barrier<> &bar = w.groupBarrier(axis, rank);
  w.slots[rank] = {data, count};
  bar.arrive_and_wait();
  bool agree = llvm::all_of(members, [&](int m) { return w.slots[m].count == count; });
  if (agree)
    compute(members);
  bar.arrive_and_wait();
  if (!agree)
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   llvm::formatv("{0}: members of the {1} group of rank {2} passed different counts",
                                                 what, axis == CommAxis::TP ? "tp" : "dp", rank));
  return llvm::Error::success();
}

void reduceInto(CommReduce op, float *out, const float *in, int64_t n) {
  if (op == CommReduce::Sum)
    for (int64_t i = 0; i < n; ++i)
      out[i] += in[i];
  else
    for (int64_t i = 0; i < n; ++i)
      out[i] = in[i] > out[i] || std::isnan(in[i]) ? in[i] : out[i];
}

} // namespace

llvm::Error InProcessCommunicator::allReduce(CommAxis axis, CommReduce op, float *data, int64_t count) {
  std::vector<float> result;
  InProcessWorld &w = *world;
  if (auto err = rendezvous(w, axis, myRank, data, count, "all_reduce", [&](const std::vector<int> &members) {
        if (members.size() == 1)
          return;
        result.assign(w.slots[members[0]].data, w.slots[members[0]].data + count);
        for (size_t g = 1; g < members.size(); ++g)
          reduceInto(op, result.data(), w.slots[members[g]].data, count);
      }))
    return err;
  if (!result.empty())
    std::memcpy(data, result.data(), size_t(count) * sizeof(float));
  return llvm::Error::success();
}

llvm::Error InProcessCommunicator::allGather(CommAxis axis, const float *in, int64_t count, float *out) {
  InProcessWorld &w = *world;
  return rendezvous(w, axis, myRank, in, count, "all_gather", [&](const std::vector<int> &members) {
    for (size_t g = 0; g < members.size(); ++g)
      std::memcpy(out + g * count, w.slots[members[g]].data, size_t(count) * sizeof(float));
  });
}

llvm::Error InProcessCommunicator::reduceScatter(CommAxis axis, CommReduce op, const float *in, int64_t count,
                                                 float *out) {
  InProcessWorld &w = *world;
  std::vector<float> result;
  int me = axisRank(axis);
  if (auto err = rendezvous(w, axis, myRank, in, count, "reduce_scatter", [&](const std::vector<int> &members) {
        const float *first = w.slots[members[0]].data + int64_t(me) * count;
        result.assign(first, first + count);
        for (size_t g = 1; g < members.size(); ++g)
          reduceInto(op, result.data(), w.slots[members[g]].data + int64_t(me) * count, count);
      }))
    return err;
  std::memcpy(out, result.data(), size_t(count) * sizeof(float));
  return llvm::Error::success();
}

void InProcessCommunicator::barrier() { world->worldBarrier.arrive_and_wait(); }

// World collectives: every rank publishes its slot, the world rendezvous, the readers copy, the world rendezvous
// again before anyone may reuse its buffer.
llvm::Error InProcessCommunicator::gatherToRoot(llvm::ArrayRef<float> in, std::vector<float> &out,
                                                std::vector<int64_t> &counts) {
  InProcessWorld &w = *world;
  out.clear();
  counts.clear();
  w.slots[myRank] = {in.data(), int64_t(in.size())};
  w.worldBarrier.arrive_and_wait();
  if (myRank == 0)
    for (const InProcessWorld::Slot &slot : w.slots) {
      counts.push_back(slot.count);
      out.insert(out.end(), slot.data, slot.data + slot.count);
    }
  w.worldBarrier.arrive_and_wait();
  return llvm::Error::success();
}

llvm::Error InProcessCommunicator::broadcastFromRoot(float *data, int64_t count) {
  InProcessWorld &w = *world;
  w.slots[myRank] = {data, count};
  w.worldBarrier.arrive_and_wait();
  bool agree = w.slots[0].count == count;
  if (agree && myRank != 0)
    std::memcpy(data, w.slots[0].data, size_t(count) * sizeof(float));
  w.worldBarrier.arrive_and_wait();
  if (!agree)
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   llvm::formatv("broadcast: rank {0} passed {1} floats, rank 0 {2}", myRank, count,
                                                 w.slots[0].count));
  return llvm::Error::success();
}
