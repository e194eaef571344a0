//===- PipelineSplit.cpp - every node on its pipeline stages, send/recv between ===//
//
// pipeline-split{stages=P}
//
// After partition and grad-accum (pipeline parallelism; pipeline-stages gave the forward nodes, and autodiff their
// backward nodes, an integer `stage`): every node gets `stage = [s, ...]`, the stages whose ranks compute it, and a
// value computed on one stage and used on another travels by a `send` / `recv` pair placed right after its producer:
//
//   %t = send(%x) {peer = 2, stage = [1]}      on stage 1: %t is %x's bytes
//   %y = recv(%t) {peer = 1, stage = [2]}      on stage 2: every use of %x there reads %y
//
// The stages of the other nodes:
//   - a node without a stage whose operands all have none (parameters, inputs, optimizer state, constants and what
//     depends on nothing else: casts of weights, masks of the labels, the learning rate) is computed on every stage
//     that uses it, so a parameter used on two stages (the tied word embedding: the lookup on the first, the head
//     on the last) is held by both;
//   - an update of a parameter (adamw) runs on every stage that holds the parameter: both copies of a tied
//     embedding apply the same update to the same gradient (the sum of both stages' contributions) and stay equal;
//   - any other node without a stage (collectives partition inserted, gradient sums of parameters, accumulators,
//     clipping): on the latest stage of its operands in the forward, the earliest in the backward, so forward
//     values only move to later stages and backward values to earlier ones, as the 1F1B schedule needs (a
//     parameter's gradient sum lands on its first stage; global-norm clipping sums the squares across stages by the
//     same messages, in the order of the unsplit graph, and sends the coefficient back).
// The stage 1F1B phases run in, the micro-batch slots and the send/recv partners are the plans' (lower-to-plan).
// Values on one stage keep the program order, and a recv directly follows its send, so the messages between two
// stages are received in the order they are sent (runtime/plan/CollectiveOrder.h proves it for every plan set).
//
//===----------------------------------------------------------------------===//
#include "passes/PipelineSplit.h"
#include "passes/Pass.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/MapVector.h"
#include "llvm/Support/FormatVariadic.h"

#include <algorithm>
#include <set>

using namespace meg;
using namespace meg::ir;
using namespace meg::passes;

namespace {

using StageSet = std::set<int64_t>;

class PipelineSplitPass : public Pass {
public:
  explicit PipelineSplitPass(int64_t stages) : stages(stages) {}
  llvm::StringRef getName() const override { return "pipeline-split"; }

  llvm::Error run(Graph &g) override {
    if (stages == 1)
      return llvm::Error::success();
    if (!g.nodesOfKind(OpKind::Send).empty())
      return fail("the graph is already split into pipeline stages");
    bool any = false;
    for (const auto &n : g) {
      if (const AttrValue *a = n->getAttrs().get("stage")) {
        auto s = n->getAttrs().getInt("stage");
        if (!s || *s < 0 || *s >= stages)
          return fail(llvm::formatv("'{0}' has stage {1}, not a stage of {2}", n->getName(),
                                    s ? std::to_string(*s) : std::string("(not an integer)"), stages));
        (void)a;
        any = true;
      }
    }
    if (!any)
      return fail("no node has a pipeline stage: run pipeline-stages before autodiff");

    auto nodes = g.getNodes();
    auto users = g.computeUsers();
    llvm::DenseSet<const Node *> forward = forwardNodes(g);
    llvm::DenseMap<const Node *, StageSet> where;
    llvm::DenseSet<const Node *> floating;
    std::vector<Node *> paramWriters;
    // Bound nodes, in program order.
    for (Node *n : nodes) {
      if (n->getKind() == OpKind::Output)
        continue;
      if (auto s = n->getAttrs().getInt("stage")) {
        where[n] = {*s};
        continue;
      }
      if (writesParam(*n)) {
        if (n->getNumResults() != 0)
          return fail("'" + n->getName() + "' updates a parameter and has results: not supported in a pipeline");
        paramWriters.push_back(n);
        continue;
      }
      std::optional<int64_t> s;
      for (Value *v : n->getOperands()) {
        const Node *d = v->getDef();
        if (floating.contains(d))
          continue;
        int64_t at = *where[d].begin();
        s = !s ? at : forward.contains(n) ? std::max(*s, at) : std::min(*s, at);
      }
      if (s)
        where[n] = {*s};
      else
        floating.insert(n);
    }
    // Where the floating values are needed, from their users (latest first); parameter updates run wherever
    // their parameter is used.
    llvm::DenseMap<const Node *, StageSet> need;
    auto needOf = [&](Node *n, bool withWriters) {
      StageSet s;
      for (Value *r : n->getResults())
        for (Node *u : users.lookup(r)) {
          if (u->getKind() == OpKind::Output || (!withWriters && writesParam(*u)))
            continue;
          const StageSet &us = floating.contains(u) ? need[u] : where[u];
          s.insert(us.begin(), us.end());
        }
      return s;
    };
    for (auto it = nodes.rbegin(); it != nodes.rend(); ++it)
      if (floating.contains(*it))
        need[*it] = needOf(*it, /*withWriters=*/false);
    for (Node *w : paramWriters) {
      StageSet s;
      unsigned mask = writtenOperands(w->getKind());
      for (unsigned i = 0; i < w->getNumOperands(); ++i)
        if (mask & (1u << i)) {
          const StageSet &ns = need[w->getOperand(i)->getDef()];
          s.insert(ns.begin(), ns.end());
        }
      where[w] = s.empty() ? StageSet{0} : s;
    }
    // An update on several stages is one node per stage (each reads its stage's copy of the operands).
    for (Node *w : paramWriters) {
      StageSet s = where[w];
      if (s.size() == 1)
        continue;
      where[w] = {*s.begin()};
      for (auto it = std::next(s.begin()); it != s.end(); ++it) {
        llvm::SmallVector<Value *, 8> operands(w->getOperands().begin(), w->getOperands().end());
        Node *copy = g.insertBefore(w, w->getKind(), operands, w->getAttrs(), {});
        where[copy] = {*it};
        nodes.insert(llvm::find(nodes, w), copy);
      }
    }
    splitAccumulatedSums(g, nodes, where);
    users = g.computeUsers();
    for (auto it = nodes.rbegin(); it != nodes.rend(); ++it)
      if (floating.contains(*it)) {
        StageSet s = needOf(*it, /*withWriters=*/true);
        where[*it] = s.empty() ? StageSet{0} : s;
      }

    // Messages: one send/recv pair per (value, stage that lacks it), right after the producer.
    llvm::DenseMap<const Node *, unsigned> position;
    for (unsigned i = 0; i < nodes.size(); ++i)
      position[nodes[i]] = i;
    llvm::MapVector<std::pair<Value *, int64_t>, Value *> received;
    for (Node *u : nodes) {
      if (u->getKind() == OpKind::Output)
        continue;
      for (unsigned i = 0; i < u->getNumOperands(); ++i) {
        Value *v = u->getOperand(i);
        const StageSet &have = where[v->getDef()];
        const StageSet &want = where[u];
        if (floating.contains(u) || have.count(*want.begin()))
          continue;
        if (have.size() != 1)
          return fail(llvm::formatv("'{0}' needs a value computed on several stages on stage {1}", u->getName(),
                                    *want.begin()));
        int64_t from = *have.begin(), to = *want.begin();
        Value *&r = received[{v, to}];
        if (!r) {
          Node *next = nodes[position[v->getDef()] + 1];
          AttrDict sa;
          sa.set("peer", to);
          sa.set("stage", std::vector<int64_t>{from});
          Node *send = g.insertBefore(next, OpKind::Send, {v}, std::move(sa), {v->getType()});
          AttrDict ra;
          ra.set("peer", from);
          ra.set("stage", std::vector<int64_t>{to});
          r = g.insertBefore(next, OpKind::Recv, {send->getResult()}, std::move(ra), {v->getType()})->getResult();
        }
        u->setOperand(i, r);
      }
    }
    // Outputs live where their value does.
    for (Node *n : nodes) {
      if (n->getKind() == OpKind::Output)
        continue;
      const StageSet &s = where[n];
      n->getAttrs().set("stage", std::vector<int64_t>(s.begin(), s.end()));
    }
    return llvm::Error::success();
  }

private:
  /// A gradient summed over two stages and then accumulated (the tied embedding: the lookup's contribution on the
  /// first stage, the head's on the last), acc += (a + b) / m, becomes one accumulator per stage, acc += a / m and
  /// acc' += b / m, added once per step: one message a step instead of one a micro-batch (Megatron all-reduces the
  /// embedding gradient between the two stages once a step, after accumulation).
  static void splitAccumulatedSums(Graph &g, llvm::SmallVector<Node *, 0> &nodes,
                                   llvm::DenseMap<const Node *, StageSet> &where) {
    auto users = g.computeUsers();
    for (Node *acc : g.nodesOfKind(OpKind::Accumulate)) {
      Node *sum = acc->getOperand(1)->getDef();
      if (sum->getKind() != OpKind::Add || users.lookup(sum->getResult()).size() != 1 || where[sum].size() != 1)
        continue;
      const StageSet &s0 = where[sum->getOperand(0)->getDef()], &s1 = where[sum->getOperand(1)->getDef()];
      const TensorType &t = acc->getResult()->getType();
      if (s0.size() != 1 || s1.size() != 1 || s0 == s1 || sum->getOperand(0)->getType() != t ||
          sum->getOperand(1)->getType() != t)
        continue;
      // The accumulator of the add's stage keeps the operand computed there; the other stage gets its own.
      int64_t here = *where[sum].begin();
      unsigned mine = *s0.begin() == here ? 0 : 1;
      if (*(mine ? s1 : s0).begin() != here)
        continue;
      Value *other = sum->getOperand(1 - mine);
      int64_t there = *where[other->getDef()].begin();
      Node *state = acc->getOperand(0)->getDef();
      AttrDict sa = state->getAttrs();
      sa.set("name", sa.getString("name").value_or("acc").str() + "@stage" + std::to_string(there));
      Node *otherState = g.insertBefore(acc, OpKind::State, {}, std::move(sa), {state->getResult()->getType()});
      Node *otherAcc = g.insertBefore(acc, OpKind::Accumulate, {otherState->getResult(), other}, acc->getAttrs(),
                                      {acc->getResult()->getType()});
      llvm::SmallVector<Node *, 4> accUsers = users.lookup(acc->getResult());
      Node *next = nodes[size_t(llvm::find(nodes, acc) - nodes.begin()) + 1];
      Value *parts[2];
      parts[mine] = acc->getResult();
      parts[1 - mine] = otherAcc->getResult();
      Node *total = g.insertBefore(next, OpKind::Add, {parts[0], parts[1]}, sum->getAttrs(), {t});
      for (Node *u : accUsers)
        for (unsigned i = 0; i < u->getNumOperands(); ++i)
          if (u->getOperand(i) == acc->getResult())
            u->setOperand(i, total->getResult());
      acc->setOperand(1, sum->getOperand(mine));
      where[otherState] = {there};
      where[otherAcc] = {there};
      where[total] = {here};
      auto at = llvm::find(nodes, acc);
      at = nodes.insert(at, otherState);
      nodes.insert(at + 1, otherAcc);
      nodes.insert(llvm::find(nodes, acc) + 1, total);
      nodes.erase(llvm::find(nodes, sum));
      where.erase(sum);
      g.erase(sum);
    }
  }

  /// An update of a parameter (adamw), or of optimizer state only, without results (loss_scale_update: the scale,
  /// its trackers and the update count): it runs on every stage that holds what it writes, as each stage keeps its
  /// own copy of that state and all apply the same update (the fp16 overflow flag reaches every stage by send/recv).
  static bool writesParam(const Node &n) {
    unsigned mask = writtenOperands(n.getKind());
    if ((mask & 1) && n.getNumOperands() > 0 && n.getOperand(0)->getDef()->getKind() == OpKind::Param)
      return true;
    if (mask == 0 || n.getNumResults() != 0)
      return false;
    for (unsigned i = 0; i < n.getNumOperands(); ++i)
      if ((mask & (1u << i)) && n.getOperand(i)->getDef()->getKind() != OpKind::State)
        return false;
    return true;
  }

  int64_t stages;
};

} // namespace

llvm::Expected<std::unique_ptr<Pass>> meg::passes::createPipelineSplitPass(const PipelineSplitOptions &o) {
  if (o.stages < 1)
    return fail(llvm::formatv("pipeline-split: stages must be positive, got {0}", o.stages).str());
  return std::make_unique<PipelineSplitPass>(o.stages);
}

int64_t meg::passes::pipelineStagesOf(const Graph &g) {
  int64_t stages = 1;
  for (const auto &n : g)
    if (const std::vector<int64_t> *s = n->getAttrs().getInts("stage"))
      for (int64_t x : *s)
        stages = std::max(stages, x + 1);
  return stages;
}

bool meg::passes::onStage(const Node &n, int64_t stage) {
  const std::vector<int64_t> *s = n.getAttrs().getInts("stage");
  return !s || llvm::is_contained(*s, stage);
}

bool meg::passes::shareStage(const Node &a, const Node &b) {
  const std::vector<int64_t> *sa = a.getAttrs().getInts("stage"), *sb = b.getAttrs().getInts("stage");
  return !sa || !sb || llvm::any_of(*sa, [&](int64_t s) { return llvm::is_contained(*sb, s); });
}

std::optional<std::tuple<OpKind, int64_t, int64_t>> meg::passes::pipelineChannel(const Node &n) {
  if (n.getKind() != OpKind::Send && n.getKind() != OpKind::Recv)
    return std::nullopt;
  const std::vector<int64_t> *s = n.getAttrs().getInts("stage");
  auto peer = n.getAttrs().getInt("peer");
  if (!s || s->size() != 1 || !peer)
    return std::nullopt;
  return std::make_tuple(n.getKind(), s->front(), *peer);
}

llvm::DenseSet<const Node *> meg::passes::forwardNodes(const Graph &g) {
  llvm::DenseSet<const Node *> set;
  const Node *loss = g.findNamed(OpKind::Output, "loss");
  if (!loss) {
    for (const auto &n : g)
      set.insert(n.get());
    return set;
  }
  llvm::SmallVector<const Node *, 64> work{loss};
  while (!work.empty()) {
    const Node *n = work.pop_back_val();
    if (!set.insert(n).second)
      continue;
    for (const Value *v : n->getOperands())
      work.push_back(v->getDef());
  }
  return set;
}
