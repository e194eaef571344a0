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
//
//===----------------------------------------------------------------------===//
#include "passes/MemoryPlan.h"
#include "passes/Pass.h"

#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/STLExtras.h"

#include <boost/graph/adjacency_list.hpp>

#include <set>

using namespace meg;
using namespace meg::passes;
using ir::Node;
using ir::OpKind;
using ir::Value;

static llvm::Error fail(const llvm::Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), msg);
}

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

class SchedulePass : public Pass {
public:
  explicit SchedulePass(Policy policy) : policy(policy) {}
  llvm::StringRef getName() const override { return "schedule"; }

  llvm::Error run(ir::Graph &g) override {
    llvm::SmallVector<Node *, 0> nodes = g.getNodes();
    const unsigned numNodes = nodes.size();
    llvm::DenseMap<const Node *, unsigned> pos = g.computeOrder();

    // Dependence graph: vertex i = node i; one edge def -> user per operand.
    DepGraph deps(numNodes);
    for (unsigned i = 0; i < numNodes; ++i)
      for (const Value *v : nodes[i]->getOperands()) {
        auto it = pos.find(v->getDef());
        if (it == pos.end())
          return fail("'" + nodes[i]->getName() + "' (line " + llvm::Twine(irLineOfNode(i)) +
                      ") uses a value defined outside the graph");
        boost::add_edge(it->second, i, deps);
      }
    // A node that updates a value in place (the WritesMask column of Ops.def: the optimizer) runs after every other
    // reader of it.
    auto users = g.computeUsers();
    for (unsigned i = 0; i < numNodes; ++i) {
      unsigned written = ir::writtenOperands(nodes[i]->getKind());
      for (unsigned o = 0; written >> o; ++o)
        if (written >> o & 1)
          for (Node *reader : users.lookup(nodes[i]->getOperand(o)))
            if (reader != nodes[i])
              boost::add_edge(pos[reader], i, deps);
    }

    std::vector<unsigned> indegree(numNodes);
    for (unsigned i = 0; i < numNodes; ++i)
      indegree[i] = boost::in_degree(i, deps);

    std::optional<MemoryScore> mem;
    if (policy == Policy::Memory)
      mem.emplace(g, nodes);

    // Ready set ordered by (-score, position): the first element runs next. Program policy: score 0 for all.
    using Key = std::pair<int64_t, unsigned>;
    std::set<Key> ready;
    std::vector<int64_t> keyScore(numNodes, 0);
    std::vector<bool> isReady(numNodes, false);
    auto push = [&](unsigned i) {
      keyScore[i] = mem ? -mem->score(*nodes[i]) : 0;
      ready.insert({keyScore[i], i});
      isReady[i] = true;
    };
    for (unsigned i = 0; i < numNodes; ++i)
      if (indegree[i] == 0)
        push(i);

    // For re-scoring: the nodes using each root value (memory policy only).
    llvm::DenseMap<const Value *, llvm::SmallVector<unsigned, 2>> usersOfRoot;
    if (mem)
      for (unsigned i = 0; i < numNodes; ++i)
        for (const Value *r : mem->uniqueRoots(*nodes[i]))
          usersOfRoot[r].push_back(i);

    llvm::SmallVector<Node *, 0> order;
    order.reserve(numNodes);
    std::vector<bool> done(numNodes, false);
    while (!ready.empty()) {
      unsigned i = ready.begin()->second;
      ready.erase(ready.begin());
      isReady[i] = false;
      done[i] = true;
      order.push_back(nodes[i]);
      if (mem)
        for (const Value *r : mem->retire(*nodes[i]))
          for (unsigned u : usersOfRoot[r])
            if (isReady[u]) {
              ready.erase({keyScore[u], u});
              push(u);
            }
      for (auto e : boost::make_iterator_range(boost::out_edges(i, deps))) {
        unsigned t = boost::target(e, deps);
        if (--indegree[t] == 0)
          push(t);
      }
    }
    if (order.size() != numNodes) {
      unsigned first = llvm::find(done, false) - done.begin();
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
