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
#include <cassert>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <cmath>
#include <cstring>
#include <deque>
#include <vector>

using namespace meg::runtime;

Communicator::~Communicator() = default;

llvm::Error Communicator::send(int peer, const void *, int64_t) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                 llvm::formatv("rank {0}: send to rank {1}: this communicator has no point-to-point "
                                               "messages (pipeline parallelism)",
                                               myRank, peer));
}

llvm::Error Communicator::recv(int peer, void *, int64_t) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                 llvm::formatv("rank {0}: recv from rank {1}: this communicator has no point-to-point "
                                               "messages (pipeline parallelism)",
                                               myRank, peer));
}

llvm::Error SingleRankCommunicator::send(int peer, const void *data, int64_t bytes) {
  if (peer != 0)
    return Communicator::send(peer, data, bytes);
  const uint8_t *p = static_cast<const uint8_t *>(data);
  toSelf.emplace_back(p, p + bytes);
  return llvm::Error::success();
}

llvm::Error SingleRankCommunicator::recv(int peer, void *data, int64_t bytes) {
  if (peer != 0 || toSelf.empty() || int64_t(toSelf.front().size()) != bytes)
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   llvm::formatv("rank 0: recv of {0} bytes from rank {1}: no such message", bytes,
                                                 peer));
  std::memcpy(data, toSelf.front().data(), size_t(bytes));
  toSelf.pop_front();
  return llvm::Error::success();
}

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
  InProcessWorld(int dp, int tp, int pp)
      : dp(dp), tp(tp), pp(pp), slots(size_t(dp) * tp * pp), worldGate(dp * tp * pp),
        mailboxes(size_t(dp) * tp * pp * dp * tp * pp) {
    for (int d = 0; d < dp * pp; ++d)
      tpGates.emplace_back(tp);
    for (int t = 0; t < tp * pp; ++t)
      dpGates.emplace_back(dp);
  }

  struct Slot {
    const float *data = nullptr;
    int64_t count = 0;
  };

  /// A reusable rendezvous of a fixed group: who is here in the current round, and how many rounds have completed.
  struct Gate {
    explicit Gate(int members) : members(members), here(size_t(members), 0) {}
    int members, count = 0;
    uint64_t generation = 0;
    std::vector<char> here; ///< by group index
  };
  enum class Wait { Done, TimedOut, Abandoned };

  /// The world ranks of `rank`'s group along `axis`, in group order.
  std::vector<int> group(CommAxis axis, int rank) const { return meshGroup(dp, tp, axis, rank); }
  Gate &gate(CommAxis axis, int rank) {
    return axis == CommAxis::TP ? tpGates[rank / tp] : dpGates[rank / (dp * tp) * tp + rank % tp];
  }
  int world() const { return dp * tp * pp; }

  /// Point-to-point: `from` queues a copy for `to`.
  void post(int from, int to, const void *data, int64_t bytes) {
    const uint8_t *p = static_cast<const uint8_t *>(data);
    std::lock_guard<std::mutex> lock(mu);
    mailboxes[size_t(from) * world() + to].emplace_back(p, p + bytes);
    changed.notify_all();
  }
  /// `to` takes the next message from `from`: at most `timeout` seconds (0 = forever), while no rank has failed.
  Wait take(int from, int to, double timeout, std::vector<uint8_t> &message) {
    std::unique_lock<std::mutex> lock(mu);
    auto &box = mailboxes[size_t(from) * world() + to];
    auto ready = [&] { return !box.empty() || failed >= 0; };
    if (timeout > 0) {
      if (!changed.wait_for(lock, std::chrono::duration<double>(timeout), ready)) {
        failed = to;
        changed.notify_all();
        return Wait::TimedOut;
      }
    } else {
      changed.wait(lock, ready);
    }
    if (box.empty())
      return Wait::Abandoned;
    message = std::move(box.front());
    box.pop_front();
    return Wait::Done;
  }

  /// Member `index` of `g` (world rank `rank`) arrives and waits for the others: at most `timeout` seconds (0 =
  /// forever), and only while no rank of the world has failed. On a timeout, `arrived` holds the group indices
  /// present and this rank is the world's failure.
  Wait arrive(Gate &g, int index, int rank, double timeout, std::vector<int> &arrived) {
    std::unique_lock<std::mutex> lock(mu);
    if (failed >= 0)
      return Wait::Abandoned;
    g.here[size_t(index)] = 1;
    if (++g.count == g.members) {
      g.count = 0;
      ++g.generation;
      std::fill(g.here.begin(), g.here.end(), 0);
      changed.notify_all();
      return Wait::Done;
    }
    uint64_t round = g.generation;
    auto over = [&] { return g.generation != round || failed >= 0; };
    if (timeout > 0) {
      auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout);
      if (!changed.wait_until(lock, deadline, over)) {
        for (int m = 0; m < g.members; ++m)
          if (g.here[size_t(m)])
            arrived.push_back(m);
        failed = rank;
        changed.notify_all();
        return Wait::TimedOut;
      }
    } else {
      changed.wait(lock, over);
    }
    return g.generation != round ? Wait::Done : Wait::Abandoned;
  }

  /// Rank `rank` failed: every wait of the world ends.
  void abandon(int rank) {
    std::lock_guard<std::mutex> lock(mu);
    if (failed < 0)
      failed = rank;
    changed.notify_all();
  }
  int failedRank() {
    std::lock_guard<std::mutex> lock(mu);
    return failed;
  }

  const int dp, tp, pp;
  std::vector<Slot> slots;
  Gate worldGate;
  std::vector<Gate> tpGates, dpGates;

private:
  std::vector<std::deque<std::vector<uint8_t>>> mailboxes; ///< by from * world + to
  std::mutex mu;
  std::condition_variable changed;
  int failed = -1; ///< the first rank that failed or timed out
};

} // namespace meg::runtime

std::shared_ptr<InProcessWorld> InProcessCommunicator::createWorld(int meshDp, int meshTp, int meshPp) {
  assert(meshDp >= 1 && meshTp >= 1 && meshPp >= 1 && "mesh sizes must be positive");
  return std::make_shared<InProcessWorld>(meshDp, meshTp, meshPp);
}

InProcessCommunicator::InProcessCommunicator(std::shared_ptr<InProcessWorld> w, int rank)
    : Communicator(w->dp, w->tp, rank, w->pp), world(std::move(w)) {
  assert(rank >= 0 && rank < world->world() && "rank outside the world");
}

llvm::Error InProcessCommunicator::send(int peer, const void *data, int64_t bytes) {
  if (peer < 0 || peer >= world->world())
    return Communicator::send(peer, data, bytes);
  world->post(myRank, peer, data, bytes);
  return llvm::Error::success();
}

llvm::Error InProcessCommunicator::recv(int peer, void *data, int64_t bytes) {
  if (peer < 0 || peer >= world->world())
    return Communicator::recv(peer, data, bytes);
  std::vector<uint8_t> message;
  switch (world->take(peer, myRank, watchState.timeoutSeconds(), message)) {
  case InProcessWorld::Wait::Done: break;
  case InProcessWorld::Wait::Abandoned: return llvm::make_error<PeerFailed>(world->failedRank());
  case InProcessWorld::Wait::TimedOut:
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   llvm::formatv("rank {0}: recv from rank {1} timed out after {2} s", myRank, peer,
                                                 watchState.timeoutSeconds()));
  }
  if (int64_t(message.size()) != bytes)
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   llvm::formatv("rank {0}: recv of {1} bytes from rank {2} got a message of {3}",
                                                 myRank, bytes, peer, message.size()));
  std::memcpy(data, message.data(), size_t(bytes));
  return llvm::Error::success();
}

void InProcessCommunicator::abandon() { world->abandon(myRank); }

namespace {

/// One wait of rank `rank` at `gate` (the group `members`, watched axis `axis`) for a collective of `bytes`: a
/// timeout names the collective and the members that have not arrived.
llvm::Error waitAt(InProcessWorld &w, InProcessWorld::Gate &gate, const std::vector<int> &members, int rank,
                   CollectiveWatch &watch, unsigned axis, uint64_t seq, int64_t bytes) {
  int index = int(llvm::find(members, rank) - members.begin());
  std::vector<int> present;
  switch (w.arrive(gate, index, rank, watch.timeoutSeconds(), present)) {
  case InProcessWorld::Wait::Done: return llvm::Error::success();
  case InProcessWorld::Wait::Abandoned: return llvm::make_error<PeerFailed>(w.failedRank());
  case InProcessWorld::Wait::TimedOut: break;
  }
  std::vector<int> arrived;
  std::vector<std::string> missing;
  for (int m = 0; m < int(members.size()); ++m)
    if (llvm::is_contained(present, m))
      arrived.push_back(members[size_t(m)]);
    else
      missing.push_back(std::to_string(members[size_t(m)]));
  return collectiveTimeoutError(rank, watch.timeoutSeconds(), watch.describe(axis, seq, bytes, members), arrived, missing);
}

/// Runs one collective: publish (data, count), rendezvous, `compute(members)` reading the published slots, then a
/// second rendezvous. A count mismatch inside the group is an error on every member (after both rendezvous).
template <typename Fn>
llvm::Error rendezvous(InProcessWorld &w, CollectiveWatch &watch, CommAxis axis, int rank, const float *data,
                       int64_t count, const char *what, Fn &&compute) {
  std::vector<int> members = w.group(axis, rank);
  uint64_t seq = watch.enter(unsigned(axis));
  if (members.size() == 1) {
    compute(members);
    return llvm::Error::success();
  }
  InProcessWorld::Gate &gate = w.gate(axis, rank);
  int64_t bytes = count * int64_t(sizeof(float));
  w.slots[rank] = {data, count};
  if (auto err = waitAt(w, gate, members, rank, watch, unsigned(axis), seq, bytes))
    return err;
  bool agree = llvm::all_of(members, [&](int m) { return w.slots[m].count == count; });
  if (agree)
    compute(members);
  if (auto err = waitAt(w, gate, members, rank, watch, unsigned(axis), seq, bytes))
    return err;
  if (!agree)
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   llvm::formatv("{0}: members of the {1} group of rank {2} passed different counts",
                                                 what, axis == CommAxis::TP ? "tp" : "dp", rank));
  return llvm::Error::success();
}

/// A world rendezvous of rank `rank` (the session's world collectives and barrier).
llvm::Error worldWait(InProcessWorld &w, CollectiveWatch &watch, int rank, uint64_t seq, int64_t bytes) {
  std::vector<int> all;
  for (int r = 0; r < w.world(); ++r)
    all.push_back(r);
  return waitAt(w, w.worldGate, all, rank, watch, kWatchWorld, seq, bytes);
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
  if (auto err = rendezvous(w, watchState, axis, myRank, data, count, "all_reduce", [&](const std::vector<int> &members) {
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
  return rendezvous(w, watchState, axis, myRank, in, count, "all_gather", [&](const std::vector<int> &members) {
    for (size_t g = 0; g < members.size(); ++g)
      std::memcpy(out + g * count, w.slots[members[g]].data, size_t(count) * sizeof(float));
  });
}

llvm::Error InProcessCommunicator::reduceScatter(CommAxis axis, CommReduce op, const float *in, int64_t count,
                                                 float *out) {
  InProcessWorld &w = *world;
  std::vector<float> result;
  int me = axisRank(axis);
  if (auto err = rendezvous(w, watchState, axis, myRank, in, count, "reduce_scatter", [&](const std::vector<int> &members) {
        const float *first = w.slots[members[0]].data + int64_t(me) * count;
        result.assign(first, first + count);
        for (size_t g = 1; g < members.size(); ++g)
          reduceInto(op, result.data(), w.slots[members[g]].data + int64_t(me) * count, count);
      }))
    return err;
  std::memcpy(out, result.data(), size_t(count) * sizeof(float));
  return llvm::Error::success();
}

void InProcessCommunicator::barrier() {
  // A void interface: a timeout or a failed rank ends the wait, and the collectives that follow report it.
  llvm::consumeError(worldWait(*world, watchState, myRank, watchState.enter(kWatchWorld), 0));
}

// World collectives: every rank publishes its slot, the world rendezvous, the readers copy, the world rendezvous
// again before anyone may reuse its buffer.
llvm::Error InProcessCommunicator::gatherToRoot(llvm::ArrayRef<float> in, std::vector<float> &out,
                                                std::vector<int64_t> &counts) {
  InProcessWorld &w = *world;
  out.clear();
  counts.clear();
  w.slots[myRank] = {in.data(), int64_t(in.size())};
  uint64_t seq = watchState.enter(kWatchWorld);
  int64_t bytes = int64_t(in.size() * sizeof(float));
  if (auto err = worldWait(w, watchState, myRank, seq, bytes))
    return err;
  if (myRank == 0)
    for (const InProcessWorld::Slot &slot : w.slots) {
      counts.push_back(slot.count);
      out.insert(out.end(), slot.data, slot.data + slot.count);
    }
  return worldWait(w, watchState, myRank, seq, bytes);
}

llvm::Error InProcessCommunicator::broadcastFromRoot(float *data, int64_t count) {
  InProcessWorld &w = *world;
  w.slots[myRank] = {data, count};
  uint64_t seq = watchState.enter(kWatchWorld);
  int64_t bytes = count * int64_t(sizeof(float));
  if (auto err = worldWait(w, watchState, myRank, seq, bytes))
    return err;
  bool agree = w.slots[0].count == count;
  if (agree && myRank != 0)
    std::memcpy(data, w.slots[0].data, size_t(count) * sizeof(float));
  if (auto err = worldWait(w, watchState, myRank, seq, bytes))
    return err;
  if (!agree)
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   llvm::formatv("broadcast: rank {0} passed {1} floats, rank 0 {2}", myRank, count,
                                                 w.slots[0].count));
  return llvm::Error::success();
}
