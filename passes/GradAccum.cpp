//===- GradAccum.cpp - gradient accumulation over micro-batches -------------===//
//
// grad-accum{micro_batches=m}
//
// A step of global batch G runs m micro-batches of the graph's batch and updates once (Megatron-LM's
// --global-batch-size with --micro-batch-size). After partition, for every gradient the optimizer and the
// `grad:<param>` output read, this pass finds the value the backward produced (walking back through the
// collectives partition put after it: the dp all-reduce, a tp all-reduce of a partial sum) and inserts
//
//   %acc = state {name = "grad.acc:<param>"}              (f32, laid out and pending like the gradient)
//   %sum = accumulate(%acc, %g) {micro_batches = m}       acc <- (micro-batch 0 ? 0 : acc) + g / m; %sum = acc
//                                                         (the accumulator's own storage: no arena memory)
//
// and every former use of %g reads %sum. The loss output reads `accumulate` of the loss ("loss.acc"), so it is the
// mean over the micro-batches, and each gradient is the gradient of that mean, summed in fp32. Because the
// accumulator holds what the gradient holds (a pending dp sum stays pending), the collectives after it, the
// clipping norm and the optimizer run once per step, after the last micro-batch: the schedule puts them last and
// lower-to-plan marks them Update (oncePerStepNodes); megrun runs the other steps once per micro-batch, each fed
// its own rows. What the body computes from the parameters alone (their 16-bit copies, the distributed optimizer's
// all-gathers: prologueNodes) runs once per step before the micro-batches (lower-to-plan marks it Prologue) and
// stays in the arena through them; two prologue nodes computing the same value (recompute's clone of a weight's
// 16-bit copy, and the copy) become one. Activations live within one micro-batch.
// m = 1 leaves the graph untouched.
//
//===----------------------------------------------------------------------===//
#include "passes/GradAccum.h"
#include "passes/Pass.h"

#include "llvm/ADT/MapVector.h"
#include "llvm/ADT/Sequence.h"
#include "llvm/Support/FormatVariadic.h"

using namespace meg;
using namespace meg::ir;
using namespace meg::passes;

llvm::DenseSet<const Node *> meg::passes::oncePerStepNodes(const Graph &g) {
  llvm::DenseSet<const Node *> once;
  if (g.nodesOfKind(OpKind::Accumulate).empty())
    return once;
  auto users = g.computeUsers();
  llvm::SmallVector<const Node *, 64> work;
  for (const auto &n : g) {
    if (n->getKind() == OpKind::Accumulate) {
      for (Node *u : users.lookup(n->getResult()))
        work.push_back(u);
    } else if (writtenOperands(n->getKind())) {
      work.push_back(n.get());
    }
  }
  while (!work.empty()) {
    const Node *n = work.pop_back_val();
    if (n->getKind() == OpKind::Accumulate || !once.insert(n).second)
      continue;
    for (unsigned r = 0; r < n->getNumResults(); ++r)
      for (Node *u : users.lookup(n->getResult(r)))
        work.push_back(u);
  }
  return once;
}

llvm::DenseSet<const Node *> meg::passes::prologueNodes(const Graph &g) {
  llvm::DenseSet<const Node *> prologue;
  llvm::DenseSet<const Node *> once = oncePerStepNodes(g);
  if (once.empty())
    return prologue;
  for (const auto &n : g) {
    OpKind k = n->getKind();
    if (isExternal(k) || k == OpKind::Output || k == OpKind::Send || k == OpKind::Recv || writtenOperands(k) ||
        n->getNumOperands() == 0 || once.contains(n.get()))
      continue;
    bool fromParams = llvm::all_of(n->getOperands(), [&](const Value *v) {
      const Node *d = v->getDef();
      return d->getKind() == OpKind::Param || prologue.contains(d);
    });
    if (fromParams)
      prologue.insert(n.get());
  }
  return prologue;
}

llvm::Expected<int64_t> meg::passes::microBatchesOf(const Graph &g) {
  std::optional<int64_t> m;
  for (Node *n : g.nodesOfKind(OpKind::Accumulate)) {
    int64_t k = n->getAttrs().getInt("micro_batches").value_or(1);
    if (m && *m != k)
      return fail(llvm::formatv("accumulate nodes disagree on micro_batches ({0} and {1})", *m, k));
    m = k;
  }
  return m.value_or(1);
}

namespace {

class GradAccumPass : public Pass {
public:
  explicit GradAccumPass(int64_t m) : m(m) {}
  llvm::StringRef getName() const override { return "grad-accum"; }

  llvm::Error run(Graph &g) override {
    if (m == 1)
      return llvm::Error::success();
    if (!g.nodesOfKind(OpKind::Accumulate).empty())
      return fail("the graph already accumulates gradients");
    Node *lossOut = g.findNamed(OpKind::Output, "loss");
    if (!lossOut)
      return fail("the graph has no 'loss' output");
    // The backward's gradient values, each with the parameter it belongs to, in order of the outputs.
    llvm::MapVector<Value *, std::string> grads;
    for (Node *out : g.nodesOfKind(OpKind::Output)) {
      llvm::StringRef name = out->getAttrs().getString("name").value_or("");
      if (!name.consume_front("grad:"))
        continue;
      Value *v = out->getOperand(0);
      while (isCollective(v->getDef()->getKind()) && v->getDef()->getKind() != OpKind::Shard) {
        Node *c = v->getDef();
        v = c->getOperand(hasResultPerOperand(c->getKind()) ? v->getIndex() : 0);
      }
      if (v->getType().dtype != DType::F32)
        return fail("the gradient of '" + name + "' is " + v->getType().str() + ", not f32");
      grads.insert({v, name.str()});
    }
    if (grads.empty())
      return fail("the graph has no gradient outputs (grad:<param>): run autodiff first");
    // Users and positions once: inserting nodes changes neither the users of the other values nor the order of
    // the nodes already there.
    users = g.computeUsers();
    order = g.computeOrder();
    for (auto &[grad, name] : grads)
      accumulate(g, grad, "grad.acc:" + name, nullptr);
    accumulate(g, lossOut->getOperand(0), "loss.acc", lossOut);
    mergeDuplicatePrologue(g);
    return llvm::Error::success();
  }

  /// The prologue runs once for all micro-batches and its values live through them, so two prologue nodes that
  /// compute the same value (recompute's clone of a weight's 16-bit copy, and the copy) are one: the later one's
  /// uses read the first. Same kind, operands, result types and attributes (but `recompute`).
  static void mergeDuplicatePrologue(Graph &g) {
    llvm::DenseSet<const Node *> prologue = prologueNodes(g);
    llvm::DenseMap<const Value *, llvm::SmallVector<Node *, 2>> byOperand;
    auto attrsOf = [](const Node &n) {
      AttrDict a = n.getAttrs();
      a.erase("recompute");
      return a;
    };
    for (Node *n : g.getNodes()) {
      if (!prologue.contains(n))
        continue;
      llvm::SmallVector<Node *, 2> &same = byOperand[n->getOperand(0)];
      Node *first = nullptr;
      for (Node *k : same)
        if (k->getKind() == n->getKind() && k->getOperands() == n->getOperands() &&
            k->getNumResults() == n->getNumResults() && attrsOf(*k) == attrsOf(*n) &&
            llvm::all_of(llvm::seq(0u, n->getNumResults()),
                         [&](unsigned r) { return k->getResult(r)->getType() == n->getResult(r)->getType(); })) {
          first = k;
          break;
        }
      if (!first) {
        same.push_back(n);
        continue;
      }
      for (unsigned r = 0; r < n->getNumResults(); ++r)
        g.replaceAllUsesWith(n->getResult(r), first->getResult(r));
      g.erase(n);
    }
  }

private:
  /// Inserts state + accumulate of `v` before its first user; `only` (if given) is the one user that reads the
  /// sum, else every user does.
  void accumulate(Graph &g, Value *v, const std::string &name, Node *only) {
    Node *first = nullptr;
    for (Node *u : users.lookup(v))
      if (!first || order[u] < order[first])
        first = u;
    TensorType t = v->getType();
    AttrDict s;
    s.set("name", name);
    Value *acc = g.insertBefore(first, OpKind::State, {}, std::move(s), {t})->getResult();
    AttrDict a;
    a.set("micro_batches", m);
    TensorType sumType = t;
    Node *sum = g.insertBefore(first, OpKind::Accumulate, {acc, v}, std::move(a), {sumType});
    for (Node *u : users.lookup(v)) {
      if (only && u != only)
        continue;
      for (unsigned i = 0; i < u->getNumOperands(); ++i)
        if (u->getOperand(i) == v)
          u->setOperand(i, sum->getResult());
    }
  }

  int64_t m;
  llvm::DenseMap<const Value *, llvm::SmallVector<Node *, 2>> users;
  llvm::DenseMap<const Node *, unsigned> order;
};

} // namespace

llvm::Expected<std::unique_ptr<Pass>> meg::passes::createGradAccumPass(const GradAccumOptions &o) {
  if (o.microBatches < 1)
    return fail(llvm::formatv("grad-accum: micro_batches must be positive, got {0}", o.microBatches).str());
  return std::make_unique<GradAccumPass>(o.microBatches);
}
