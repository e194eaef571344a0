//===- CollectiveOrder.cpp - proving a plan set's communication order ---------===//
//
// Rule 1 compares, per group, every member's subsequence of events on the group's axis with the lowest member's;
// rule 2 compares, per ordered pair (a, b), a's sends to b with b's receives from a; rule 3 runs the ranks' sequences
// against each other with blocking semantics (the strictest an implementation may have: MPI may buffer a send, NCCL
// may not) until no rank can move.
//
//===----------------------------------------------------------------------===//
#include "runtime/plan/CollectiveOrder.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/FormatVariadic.h"

#include <algorithm>
#include <map>
#include <optional>

using namespace meg;
using namespace meg::runtime;

bool CommEvent::matches(const CommEvent &o) const {
  return kind == o.kind && axis == o.axis && reduce == o.reduce && count == o.count && dtype == o.dtype;
}

llvm::StringRef meg::runtime::commKindName(CommEvent::Kind k) {
  switch (k) {
  case CommEvent::Kind::AllReduce: return "all-reduce";
  case CommEvent::Kind::AllGather: return "all-gather";
  case CommEvent::Kind::ReduceScatter: return "reduce-scatter";
  case CommEvent::Kind::Send: return "send";
  case CommEvent::Kind::Recv: return "recv";
  }
  llvm_unreachable("unknown communication kind");
}

std::string meg::runtime::describe(const CommEvent &e) {
  std::string what = e.isPointToPoint() ? llvm::formatv("{0} rank {1}", e.kind == CommEvent::Kind::Send ? "to" : "from",
                                                        e.peer)
                                            .str()
                                        : e.axis;
  if (!e.reduce.empty())
    what += " " + e.reduce;
  std::string name = e.value.empty() ? "" : " " + e.value;
  return llvm::formatv("step {0} '{1}'{2} ({3} {4}, {5} x {6})", e.step, e.op, name, commKindName(e.kind), what,
                       e.count, dtypeName(e.dtype))
      .str();
}

/// The communication event of step `i`, if it communicates.
static std::optional<CommEvent> commEvent(const LoadedPlan &plan, size_t i) {
  const PlanStep &s = plan.steps[i];
  CommEvent e;
  e.step = i;
  e.op = s.op;
  e.value = s.value;
  if (s.kind == ir::OpKind::Send || s.kind == ir::OpKind::Recv) {
    // Pipeline point-to-point: `peer` is a stage; the partner is the rank of the same dp and tp coordinates there.
    const TensorSlot *x = s.kind == ir::OpKind::Send ? (s.operands.empty() ? nullptr : &s.operands[0])
                                                      : (s.results.empty() ? nullptr : &s.results[0]);
    const StepAttr *peer = s.attr("peer");
    if (!x || !peer)
      return std::nullopt;
    e.kind = s.kind == ir::OpKind::Send ? CommEvent::Kind::Send : CommEvent::Kind::Recv;
    int64_t stageRanks = int64_t(plan.meshDp) * plan.meshTp;
    e.peer = int(std::clamp<int64_t>(plan.rank + (peer->i - plan.stage()) * stageRanks, -1, plan.world()));
    e.count = x->numel();
    e.dtype = x->dtype;
    return e;
  }
  // `shard` is a collective of the IR (it changes a value's sharding over an axis) that moves nothing.
  if (!ir::isCollective(s.kind) || s.kind == ir::OpKind::Shard || s.operands.empty())
    return std::nullopt;
  e.kind = s.kind == ir::OpKind::AllGather       ? CommEvent::Kind::AllGather
           : s.kind == ir::OpKind::ReduceScatter || s.kind == ir::OpKind::ReduceScatterBucket
               ? CommEvent::Kind::ReduceScatter
               : CommEvent::Kind::AllReduce;
  if (const StepAttr *axis = s.attr("axis"))
    e.axis = axis->s;
  if (const StepAttr *reduce = s.attr("reduce"))
    e.reduce = reduce->s;
  // all_reduce_bucket and reduce_scatter_bucket reduce their operands as one buffer.
  for (const TensorSlot &x : s.operands)
    e.count += x.numel();
  e.dtype = s.operands[0].dtype;
  return e;
}

std::vector<CommEvent> meg::runtime::commEvents(const LoadedPlan &plan) {
  std::vector<CommEvent> events;
  // `only`: the Forward steps or the other steps of the body; without, every step but the Prologue's.
  auto add = [&](size_t begin, size_t end, std::optional<StepPhase> only) {
    for (size_t i = begin; i < end; ++i) {
      StepPhase p = plan.steps[i].phase;
      if (only == StepPhase::Prologue ? p != StepPhase::Prologue
                                      : p == StepPhase::Prologue ||
                                            (only && (*only == StepPhase::Forward) != (p == StepPhase::Forward)))
        continue;
      if (auto e = commEvent(plan, i))
        events.push_back(std::move(*e));
    }
  };
  // The Prologue runs first, once (with micro-batches).
  add(0, plan.updateBegin, StepPhase::Prologue);
  if (plan.meshPp == 1) {
    add(0, plan.steps.size(), std::nullopt);
    return events;
  }
  // A pipeline stage issues its body's events phase by phase (the 1F1B schedule), then the update's once.
  for (const PipePhase &phase : plan.schedule)
    add(0, plan.updateBegin, phase.backward ? StepPhase::Backward : StepPhase::Forward);
  add(plan.updateBegin, plan.steps.size(), std::nullopt);
  return events;
}

std::vector<int> meg::runtime::axisGroup(llvm::StringRef axis, int rank, int meshDp, int meshTp) {
  // Groups lie within a pipeline stage (rank = (stage * dp + dpRank) * tp + tpRank).
  std::vector<int> members;
  int base = rank / (meshDp * meshTp) * (meshDp * meshTp);
  int dpRank = (rank - base) / meshTp, tpRank = rank % meshTp;
  if (axis == "tp")
    for (int t = 0; t < meshTp; ++t)
      members.push_back(base + dpRank * meshTp + t);
  else if (axis == "dp")
    for (int d = 0; d < meshDp; ++d)
      members.push_back(base + d * meshTp + tpRank);
  return members;
}

CommOrderSummary meg::runtime::summarize(const std::vector<CommEvent> &events) {
  CommOrderSummary s;
  for (const CommEvent &e : events)
    ++(e.isPointToPoint() ? s.pointToPoint : s.collectives);
  return s;
}

namespace {

llvm::Error orderError(llvm::StringRef name, const llvm::Twine &what) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), (name + ": collective order: " + what).str());
}

std::string groupName(llvm::StringRef axis, llvm::ArrayRef<int> members) {
  std::string list;
  for (int m : members)
    list += (list.empty() ? "" : ",") + std::to_string(m);
  return (axis + " group {" + list + "}").str();
}

/// Rule 1: the members of every group issue the same collectives on it.
llvm::Error checkGroups(llvm::ArrayRef<std::vector<CommEvent>> ranks, int meshDp, int meshTp, llvm::StringRef name) {
  int world = int(ranks.size());
  for (llvm::StringRef axis : {"tp", "dp"}) {
    for (int r = 0; r < world; ++r) {
      std::vector<int> members = axisGroup(axis, r, meshDp, meshTp);
      if (members.size() < 2 || members.front() != r)
        continue; // each group once, from its lowest member
      auto onAxis = [&](int m) {
        std::vector<const CommEvent *> seq;
        for (const CommEvent &e : ranks[size_t(m)])
          if (!e.isPointToPoint() && e.axis == axis)
            seq.push_back(&e);
        return seq;
      };
      std::vector<const CommEvent *> first = onAxis(r);
      for (size_t g = 1; g < members.size(); ++g) {
        int m = members[g];
        std::vector<const CommEvent *> other = onAxis(m);
        for (size_t k = 0; k < std::max(first.size(), other.size()); ++k) {
          std::string where = llvm::formatv("{0} collective #{1}", groupName(axis, members), k).str();
          if (k >= other.size())
            return orderError(name, llvm::formatv("rank {0} and rank {1} differ at {2}: rank {0} {3}, rank {1} "
                                                  "issues none",
                                                  r, m, where, describe(*first[k])));
          if (k >= first.size())
            return orderError(name, llvm::formatv("rank {0} and rank {1} differ at {2}: rank {0} issues none, rank "
                                                  "{1} {3}",
                                                  r, m, where, describe(*other[k])));
          if (!first[k]->matches(*other[k]))
            return orderError(name, llvm::formatv("rank {0} and rank {1} differ at {2}: rank {0} {3}, rank {1} {4}",
                                                  r, m, where, describe(*first[k]), describe(*other[k])));
        }
      }
    }
  }
  return llvm::Error::success();
}

/// Rule 2: every send has its receive, in order. Also checks that the peers exist.
llvm::Error checkPairs(llvm::ArrayRef<std::vector<CommEvent>> ranks, llvm::StringRef name) {
  int world = int(ranks.size());
  // (from, to) -> the sends of `from` to `to` / the receives of `to` from `from`, in order.
  std::map<std::pair<int, int>, std::vector<const CommEvent *>> sends, recvs;
  for (int r = 0; r < world; ++r)
    for (const CommEvent &e : ranks[size_t(r)]) {
      if (!e.isPointToPoint())
        continue;
      if (e.peer < 0 || e.peer >= world || e.peer == r)
        return orderError(name, llvm::formatv("rank {0} {1}: the peer is not another rank of the {2}", r,
                                              describe(e), world));
      if (e.kind == CommEvent::Kind::Send)
        sends[{r, e.peer}].push_back(&e);
      else
        recvs[{e.peer, r}].push_back(&e);
    }
  auto pairs = sends;
  for (const auto &[key, list] : recvs)
    pairs.try_emplace(key);
  for (const auto &[key, unused] : pairs) {
    auto [from, to] = key;
    const std::vector<const CommEvent *> &s = sends[key], &v = recvs[key];
    for (size_t k = 0; k < std::max(s.size(), v.size()); ++k) {
      std::string where = llvm::formatv("rank {0} -> rank {1} message #{2}", from, to, k).str();
      if (k >= v.size())
        return orderError(name, llvm::formatv("rank {0} and rank {1} differ at {2}: rank {0} {3}, rank {1} has no "
                                              "matching recv",
                                              from, to, where, describe(*s[k])));
      if (k >= s.size())
        return orderError(name, llvm::formatv("rank {0} and rank {1} differ at {2}: rank {0} has no matching send, "
                                              "rank {1} {3}",
                                              from, to, where, describe(*v[k])));
      if (s[k]->count != v[k]->count || s[k]->dtype != v[k]->dtype)
        return orderError(name, llvm::formatv("rank {0} and rank {1} differ at {2}: rank {0} {3}, rank {1} {4}", from,
                                              to, where, describe(*s[k]), describe(*v[k])));
    }
  }
  return llvm::Error::success();
}

/// Rule 3: every rank blocks in each event until its peers reach theirs; the sequences must all run to the end.
llvm::Error checkProgress(llvm::ArrayRef<std::vector<CommEvent>> ranks, int meshDp, int meshTp,
                          llvm::StringRef name) {
  int world = int(ranks.size());
  std::vector<size_t> pc(size_t(world), 0);
  auto current = [&](int r) -> const CommEvent * {
    return pc[size_t(r)] < ranks[size_t(r)].size() ? &ranks[size_t(r)][pc[size_t(r)]] : nullptr;
  };
  // Sends are buffered (the communicators copy or post them and return): a send never waits, a receive waits for
  // its send. Messages issued and received so far per (from, to).
  std::map<std::pair<int, int>, size_t> sent, received;
  // Who `r` waits for in its current event, when that peer is not there (-1 when the event can complete).
  auto blocker = [&](int r) {
    const CommEvent &e = *current(r);
    if (e.kind == CommEvent::Kind::Send)
      return -1;
    if (e.kind == CommEvent::Kind::Recv)
      return sent[{e.peer, r}] > received[{e.peer, r}] ? -1 : e.peer;
    for (int m : axisGroup(e.axis, r, meshDp, meshTp)) {
      const CommEvent *p = current(m);
      if (!p || p->isPointToPoint() || p->axis != e.axis)
        return m;
    }
    return -1;
  };
  for (bool moved = true; moved;) {
    moved = false;
    for (int r = 0; r < world; ++r) {
      while (current(r) && blocker(r) < 0) {
        const CommEvent &e = *current(r);
        // A collective completes for every participant at once.
        if (e.kind == CommEvent::Kind::Send)
          ++sent[{r, e.peer}];
        else if (e.kind == CommEvent::Kind::Recv)
          ++received[{e.peer, r}];
        else
          for (int m : axisGroup(e.axis, r, meshDp, meshTp))
            if (m != r)
              ++pc[size_t(m)];
        ++pc[size_t(r)];
        moved = true;
      }
    }
  }
  for (int r = 0; r < world; ++r) {
    if (!current(r))
      continue;
    int b = blocker(r);
    const CommEvent *theirs = current(b);
    return orderError(name, llvm::formatv("deadlock: rank {0} waits in {1} for rank {2}, which {3}", r,
                                          describe(*current(r)), b,
                                          theirs ? "waits in " + describe(*theirs) : std::string("has finished")));
  }
  return llvm::Error::success();
}

} // namespace

llvm::Error meg::runtime::verifyCommOrder(llvm::ArrayRef<std::vector<CommEvent>> ranks, int meshDp, int meshTp,
                                          llvm::StringRef name) {
  assert(ranks.size() % size_t(meshDp * meshTp) == 0 && "one sequence per rank of every pipeline stage");
  for (size_t r = 0; r < ranks.size(); ++r)
    for (const CommEvent &e : ranks[r])
      if (!e.isPointToPoint() && e.axis != "tp" && e.axis != "dp")
        return orderError(name, llvm::formatv("rank {0} {1}: unknown mesh axis '{2}'", r, describe(e), e.axis));
  if (auto err = checkGroups(ranks, meshDp, meshTp, name))
    return err;
  if (auto err = checkPairs(ranks, name))
    return err;
  return checkProgress(ranks, meshDp, meshTp, name);
}

llvm::Error meg::runtime::verifyCollectiveOrder(llvm::ArrayRef<LoadedPlan> plans, llvm::StringRef name) {
  if (plans.empty())
    return llvm::Error::success();
  std::vector<std::vector<CommEvent>> ranks;
  for (const LoadedPlan &p : plans)
    ranks.push_back(commEvents(p));
  return verifyCommOrder(ranks, plans[0].meshDp, plans[0].meshTp, name);
}
