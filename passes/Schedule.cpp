//===- Schedule.cpp - topological node order with a deterministic tie-break -===//
//
// schedule{policy=program|memory}
//
// Builds the dependence graph (an edge def -> user per operand) as a boost::adjacency_list and runs Kahn's
// algorithm over it with an ordered ready set, so the result is a topological order that depends only on the
// graph, never on pointer values:
//   - program (default): among ready nodes, the one earliest in the current order. A valid input order is a
//     topological order, so it is kept unchanged; the pass then only checks and normalizes.
//   - memory: greedy; among ready nodes, the one that lowers the live arena bytes the most (bytes of operand
//     storage it is the last user of, minus the bytes of the results it allocates; reshape results alias their
//     operand and allocate nothing, graph outputs are never freed), ties by current order.
// Recomputation runs on demand: a unit (one node) is recomputation when its nodes carry `recompute` (passes/Recompute.cpp)
// or only recomputation and leaves (nodes without operands) feed them, and at least one recomputation does (e.g.
// the all-reduce partition put after a recomputed row-parallel layer). It becomes ready only once demanded: when a
// unit that is not recomputation and needs it (directly or through other recomputation) has all its other
// operands computed, i.e. when the backward reaches the layer, not as soon as the layer's input exists.
// With gradient accumulation (passes/GradAccum.h) the once-per-step nodes come after every other node: a ready
// once-per-step node runs only when no other node is ready, so the plan is the micro-batch body, then the update.
//
//===----------------------------------------------------------------------===//
#include "passes/GradAccum.h"
#include "passes/MemoryPlan.h"
#include "passes/Pass.h"
#include "passes/PipelineSplit.h"

#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/STLExtras.h"

#include <boost/graph/adjacency_list.hpp>

#include <map>
#include <set>

using namespace meg;
using namespace meg::passes;
using ir::Node;
using ir::OpKind;
using ir::Value;

namespace {

enum class Policy { Program, Memory };

using DepGraph = boost::adjacency_list<boost::vecS, boost::vecS, boost::bidirectionalS>;

/// Live-byte bookkeeping for the memory policy. Values that share storage (reshape chains) are one "root";
/// a root is freed by the last of its terminal users (users other than the reshapes that extend it).
class MemoryScore {
public:
  MemoryScore(const ir::Graph &g, llvm::ArrayRef<Node *> nodes) {
    const ir::Mesh &mesh = g.getMesh();
    for (Node *n : nodes) {
      for (unsigned r = 0; r < n->getNumResults(); ++r) {
        const Value *v = n->getResult(r);
        if (!isArenaValue(*v, mesh))
          continue;
        const Value *op0 = n->getNumOperands() ? n->getOperand(0) : nullptr;
        if (ir::aliasesOperand(n->getKind()) && op0 && root.count(op0)) {
          root[v] = root[op0];
        } else {
          root[v] = v;
          bytes[v] = localBytes(*v, mesh);
        }
      }
    }
    for (Node *n : nodes) {
      for (const Value *v : uniqueRoots(*n)) {
        // A reshape extending v's storage is not a terminal user.
        bool extends = ir::aliasesOperand(n->getKind()) && root.lookup(n->getResult(0)) == v;
        if (n->getKind() == OpKind::Output)
          keptToEnd.insert(v);
        if (!extends)
          remaining[v]++;
      }
    }
  }

  /// Roots of the arena operands of `n`, each once, in operand order.
  llvm::SmallVector<const Value *, 4> uniqueRoots(const Node &n) const {
    llvm::SmallVector<const Value *, 4> out;
    for (const Value *o : n.getOperands()) {
      const Value *r = root.lookup(o);
      if (r && !llvm::is_contained(out, r))
        out.push_back(r);
    }
    return out;
  }

  bool isTerminalUser(const Node &n, const Value *r) const {
    return !(ir::aliasesOperand(n.getKind()) && root.lookup(n.getResult(0)) == r);
  }

  /// Bytes freed minus bytes allocated if `n` ran now.
  int64_t score(const Node &n) const {
    int64_t delta = 0;
    for (const Value *r : uniqueRoots(n))
      if (isTerminalUser(n, r) && !keptToEnd.count(r) && remaining.lookup(r) == 1)
        delta += bytes.lookup(r);
    for (unsigned i = 0; i < n.getNumResults(); ++i) {
      const Value *v = n.getResult(i);
      if (root.lookup(v) == v)
        delta -= bytes.lookup(v);
    }
    return delta;
  }

  /// Records that `n` ran; returns the roots whose last terminal user is now determined (remaining == 1).
  llvm::SmallVector<const Value *, 4> retire(const Node &n) {
    llvm::SmallVector<const Value *, 4> changed;
    for (const Value *r : uniqueRoots(n))
      if (isTerminalUser(n, r) && --remaining[r] == 1)
        changed.push_back(r);
    return changed;
  }

private:
  llvm::DenseMap<const Value *, const Value *> root;
  llvm::DenseMap<const Value *, int64_t> bytes;
  llvm::DenseMap<const Value *, unsigned> remaining;
  llvm::DenseSet<const Value *> keptToEnd;
};

/// Which units are recomputation (see the file comment) and which of those are demanded yet. Units that are not
/// recomputation are always demanded.
class OnDemand {
public:
  OnDemand(llvm::ArrayRef<Node *> nodes, llvm::ArrayRef<llvm::SmallVector<unsigned, 1>> units, const DepGraph &deps)
      : deps(deps), lazy(units.size(), false), demanded(units.size(), true), pendingEager(units.size(), 0) {
    // Nodes in program order, so operands are classified before their users.
    llvm::DenseSet<const Node *> lazyNode;
    bool any = false;
    for (const Node *n : nodes) {
      bool isLazy = n->getAttrs().has("recompute");
      if (!isLazy && n->getKind() != OpKind::Output && n->getNumOperands()) {
        bool fedByLazy = false, onlyLazyOrLeaves = true;
        for (const Value *v : n->getOperands()) {
          fedByLazy |= lazyNode.contains(v->getDef());
          onlyLazyOrLeaves &= lazyNode.contains(v->getDef()) || v->getDef()->getNumOperands() == 0;
        }
        isLazy = fedByLazy && onlyLazyOrLeaves;
      }
      if (isLazy)
        lazyNode.insert(n);
      any |= isLazy;
    }
    if (!any)
      return;
    active = true;
    for (unsigned u = 0; u < units.size(); ++u) {
      lazy[u] = llvm::all_of(units[u], [&](unsigned i) { return lazyNode.contains(nodes[i]); });
      demanded[u] = !lazy[u];
    }
    for (unsigned u = 0; u < units.size(); ++u)
      for (auto e : boost::make_iterator_range(boost::out_edges(u, deps)))
        pendingEager[boost::target(e, deps)] += !lazy[u];
  }

  bool isDemanded(unsigned u) const { return demanded[u]; }

  /// At the start: u itself, and what u demands if it has no pending operand outside recomputation.
  llvm::SmallVector<unsigned, 4> start(unsigned u) {
    llvm::SmallVector<unsigned, 4> out{u};
    if (active && !lazy[u] && pendingEager[u] == 0)
      demandOperands(u, out);
    return out;
  }

  /// Unit `from` was computed, an operand of `to`: the units newly demanded.
  llvm::SmallVector<unsigned, 4> computed(unsigned from, unsigned to) {
    llvm::SmallVector<unsigned, 4> out;
    if (active && !lazy[from] && --pendingEager[to] == 0 && !lazy[to])
      demandOperands(to, out);
    return out;
  }

  /// Demands every unit (when nothing else can run).
  llvm::SmallVector<unsigned, 4> demandAll() {
    llvm::SmallVector<unsigned, 4> out;
    for (unsigned u = 0; u < demanded.size(); ++u)
      if (!demanded[u]) {
        demanded[u] = true;
        out.push_back(u);
      }
    return out;
  }

private:
  /// Demands the recomputation u uses, transitively.
  void demandOperands(unsigned u, llvm::SmallVectorImpl<unsigned> &out) {
    llvm::SmallVector<unsigned, 8> stack{u};
    while (!stack.empty()) {
      unsigned w = stack.pop_back_val();
      for (auto e : boost::make_iterator_range(boost::in_edges(w, deps))) {
        unsigned s = boost::source(e, deps);
        if (demanded[s])
          continue;
        demanded[s] = true;
        out.push_back(s);
        stack.push_back(s);
      }
    }
  }

  const DepGraph &deps;
  /// Whether the graph has recomputation at all (otherwise every unit is demanded and nothing is counted).
  bool active = false;
  std::vector<bool> lazy, demanded;
  /// Operand edges from units that are not recomputation and not computed yet.
  std::vector<unsigned> pendingEager;
};

class SchedulePass : public Pass {
public:
  explicit SchedulePass(Policy policy) : policy(policy) {}
  llvm::StringRef getName() const override { return "schedule"; }

  llvm::Error run(ir::Graph &g) override {
    llvm::SmallVector<Node *, 0> nodes = g.getNodes();
    const unsigned numNodes = nodes.size();
    llvm::DenseMap<const Node *, unsigned> pos = g.computeOrder();

    // Units of scheduling: one node each (unit u = node u), the grain OnDemand works in.
    std::vector<unsigned> unitOf(numNodes);
    std::vector<llvm::SmallVector<unsigned, 1>> units(numNodes);
    for (unsigned i = 0; i < numNodes; ++i) {
      units[i].push_back(i);
      unitOf[i] = i;
    }
    const unsigned numUnits = units.size();

    // Dependence graph: vertex u = unit u; one edge def -> user per operand.
    DepGraph deps(numUnits);
    for (unsigned i = 0; i < numNodes; ++i)
      for (const Value *v : nodes[i]->getOperands()) {
        auto it = pos.find(v->getDef());
        if (it == pos.end())
          return fail("'" + nodes[i]->getName() + "' (line " + llvm::Twine(irLineOfNode(i)) +
                      ") uses a value defined outside the graph");
        boost::add_edge(unitOf[it->second], unitOf[i], deps);
      }
    // A node that updates a value in place (the WritesMask column of Ops.def: the optimizer) runs after every other
    // reader of it on the same ranks (pipeline stages hold copies of what they share: passes/PipelineSplit.h).
    auto users = g.computeUsers();
    for (unsigned i = 0; i < numNodes; ++i) {
      unsigned written = ir::writtenOperands(nodes[i]->getKind());
      for (unsigned o = 0; written >> o; ++o)
        if (written >> o & 1)
          for (Node *reader : users.lookup(nodes[i]->getOperand(o)))
            if (reader != nodes[i] && shareStage(*reader, *nodes[i]))
              boost::add_edge(unitOf[pos[reader]], unitOf[i], deps);
    }

    // Pipeline messages between two stages keep their order (pipeline-split placed each recv right after its send,
    // so the program order is consistent on both sides): each send and recv after the previous one of its channel.
    std::map<std::tuple<ir::OpKind, int64_t, int64_t>, unsigned> lastOfChannel;
    for (unsigned i = 0; i < numNodes; ++i) {
      auto channel = pipelineChannel(*nodes[i]);
      if (!channel)
        continue;
      auto [it, first] = lastOfChannel.try_emplace(*channel, i);
      if (!first) {
        boost::add_edge(unitOf[it->second], unitOf[i], deps);
        it->second = i;
      }
    }

    std::vector<unsigned> indegree(numUnits);
    for (unsigned u = 0; u < numUnits; ++u)
      indegree[u] = boost::in_degree(u, deps);
    OnDemand lazy(nodes, units, deps);

    std::optional<MemoryScore> mem;
    if (policy == Policy::Memory)
      mem.emplace(g, nodes);
    // A unit's score: the sum of its nodes'.
    auto unitScore = [&](unsigned u) {
      int64_t score = 0;
      for (unsigned i : units[u])
        score += mem->score(*nodes[i]);
      return score;
    };

    // Ready set ordered by (tier: body [forward, then backward], once per step; -score, unit id): the first element
    // runs next. Program policy: score 0 for all.
    llvm::DenseSet<const Node *> oncePerStep = oncePerStepNodes(g);
    // Pipeline stages run a micro-batch's forward nodes and its backward nodes in separate phases (1F1B), so the
    // body is ordered forward first: the memory plan then sees the lifetimes the phases have.
    llvm::DenseSet<const Node *> forward;
    if (pipelineStagesOf(g) > 1)
      forward = forwardNodes(g);
    auto tierOf = [&](const Node *n) {
      return oncePerStep.contains(n) ? 2 : forward.empty() || forward.contains(n) ? 0 : 1;
    };
    using Key = std::tuple<int, int64_t, unsigned>;
    std::set<Key> ready;
    std::vector<int64_t> keyScore(numUnits, 0);
    std::vector<bool> isReady(numUnits, false);
    auto keyOf = [&](unsigned u) { return Key{tierOf(nodes[units[u].front()]), keyScore[u], u}; };
    auto push = [&](unsigned u) {
      keyScore[u] = mem ? -unitScore(u) : 0;
      ready.insert(keyOf(u));
      isReady[u] = true;
    };
    // Pushes the units that are ready: no pending operand, and demanded if they are recomputation.
    std::vector<bool> done(numUnits, false);
    auto pushIfReady = [&](unsigned u) {
      if (!isReady[u] && !done[u] && indegree[u] == 0 && lazy.isDemanded(u))
        push(u);
    };
    for (unsigned u = 0; u < numUnits; ++u)
      for (unsigned d : lazy.start(u))
        pushIfReady(d);

    // For re-scoring: the units using each root value (memory policy only).
    llvm::DenseMap<const Value *, llvm::SmallVector<unsigned, 2>> usersOfRoot;
    if (mem)
      for (unsigned i = 0; i < numNodes; ++i)
        for (const Value *r : mem->uniqueRoots(*nodes[i]))
          usersOfRoot[r].push_back(unitOf[i]);

    llvm::SmallVector<Node *, 0> order;
    order.reserve(numNodes);
    while (true) {
      if (ready.empty()) {
        // Recomputation nothing demands (nothing outside recomputation uses it): run it as it comes.
        for (unsigned u : lazy.demandAll())
          pushIfReady(u);
        if (ready.empty())
          break;
      }
      unsigned u = std::get<2>(*ready.begin());
      ready.erase(ready.begin());
      isReady[u] = false;
      done[u] = true;
      for (unsigned i : units[u]) {
        order.push_back(nodes[i]);
        if (mem)
          for (const Value *r : mem->retire(*nodes[i]))
            for (unsigned v : usersOfRoot[r])
              if (isReady[v]) {
                ready.erase(keyOf(v));
                push(v);
              }
      }
      for (auto e : boost::make_iterator_range(boost::out_edges(u, deps))) {
        unsigned t = boost::target(e, deps);
        --indegree[t];
        for (unsigned d : lazy.computed(u, t))
          pushIfReady(d);
        pushIfReady(t);
      }
    }
    if (order.size() != numNodes) {
      unsigned first = units[llvm::find(done, false) - done.begin()].front();
      return fail("'" + nodes[first]->getName() + "' (line " + llvm::Twine(irLineOfNode(first)) +
                  ") is on a dependence cycle");
    }
    g.reorder(order);
    return llvm::Error::success();
  }

private:
  Policy policy;
};

} // namespace

llvm::Expected<std::unique_ptr<Pass>> meg::passes::createSchedulePass(const ScheduleOptions &options) {
  llvm::StringRef policy = options.policy;
  if (policy == "program")
    return std::make_unique<SchedulePass>(Policy::Program);
  if (policy == "memory")
    return std::make_unique<SchedulePass>(Policy::Memory);
  return fail("schedule: unknown policy '" + policy + "' (expected program or memory)");
}
