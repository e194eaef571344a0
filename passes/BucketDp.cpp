//===- BucketDp.cpp - bucket the data-parallel gradient all-reduces ---------===//
//
// bucket-dp{bytes=26214400}
//
// After partition, every parameter's gradient is reduced over dp by its own `all_reduce {axis = dp, reduce = sum}`;
// on a real network each one pays the collective's latency. As PyTorch DDP (bucket_cap_mb = 25) and Megatron-LM's
// grad buffers do, this pass groups those all-reduces into buckets of at most `bytes` bytes per rank and replaces
// each bucket by ONE node, `all_reduce_bucket(g0, g1, ...) {axis = dp, reduce = sum}`, whose result i is the
// reduced g_i (a bucket of one gradient is a bucket node with one operand). The backends run it as one collective:
// pack the operands, one allReduce, unpack into the results (runtime/cpu/CollectiveOps.cpp).
//
// Gradients are the all-reduces whose result is a parameter's gradient: the operand of an `output` named
// `grad:<param>` or the gradient operand of `adamw`, or of another such all-reduce. The tp all-reduces of
// gradients (sequence parallelism's LayerNorm and row-parallel bias gradients, summed over the sequence shards) are
// bucketed the same way with `tp=true` (megc --sequence-parallel), in buckets of their own (dp first, then tp). They are taken in the order the backward pass produces them
// (program order of the node that defines the all-reduce's operand) and packed greedily: a bucket is closed when
// the next gradient would make it larger than `bytes` (a gradient larger than `bytes` is a bucket of its own), or
// when the next gradient depends on a member of the open bucket (a node cannot wait for its own result). The sizes
// are local: the bytes one rank reduces. Other dp all-reduces (the loss and the token count) are left alone.
//
// Each bucket node takes the place of its first member; the nodes are then put in program-schedule order (the
// schedule pass's `program` policy), which runs a bucket as soon as its last operand is computed and keeps every
// other node's relative order. A graph without gradient all-reduces (dp = 1) is left untouched.
//
//===----------------------------------------------------------------------===//
#include "passes/MemoryPlan.h"
#include "passes/Pass.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/STLExtras.h"

#include <algorithm>

using namespace meg;
using namespace meg::passes;
using ir::Node;
using ir::OpKind;
using ir::Value;

namespace {

using Users = llvm::DenseMap<const Value *, llvm::SmallVector<Node *, 2>>;

bool isSumAllReduce(const Node &n) {
  return n.getKind() == OpKind::AllReduce && n.getAttrs().getSymbol("reduce") == llvm::StringRef("sum");
}

/// Whether `n` is a sum all-reduce of a parameter's gradient: its result is read by `output grad:*`, by adamw as
/// the gradient, or by another such all-reduce (a gradient pending over dp and tp is reduced over each).
bool isGradientAllReduce(const Node &n, const Users &users) {
  if (!isSumAllReduce(n))
    return false;
  auto it = users.find(n.getResult());
  if (it == users.end())
    return false;
  return llvm::any_of(it->second, [&](const Node *u) {
    if (u->getKind() == OpKind::Output)
      return u->getAttrs().getString("name").value_or("").startswith("grad:");
    if (u->getKind() == OpKind::AllReduce)
      return isGradientAllReduce(*u, users);
    return u->getKind() == OpKind::AdamW && u->getOperand(1) == n.getResult();
  });
}

class BucketDpPass : public Pass {
public:
  BucketDpPass(int64_t limit, bool tp) : limit(limit), tp(tp) {}
  llvm::StringRef getName() const override { return "bucket-dp"; }

  llvm::Error run(ir::Graph &g) override {
    bool changed = false;
    for (llvm::StringRef axis : {"dp", "tp"})
      if (axis == "dp" || tp)
        if (auto err = bucketAxis(g, axis, changed))
        return err;
    if (!changed)
      return llvm::Error::success();
    // A bucket node may now precede a later member's operand: restore a topological order.
    auto schedule = createSchedulePass(ScheduleOptions{.policy = "program"});
    if (!schedule)
      return schedule.takeError();
    return (*schedule)->run(g);
  }

private:
  /// Buckets the gradient all-reduces over one mesh axis.
  llvm::Error bucketAxis(ir::Graph &g, llvm::StringRef axis, bool &changed) {
    llvm::SmallVector<Node *, 0> nodes = g.getNodes();
    auto users = g.computeUsers();
    const ir::Mesh &mesh = g.getMesh();

    // The gradient all-reduces, grouped by the node that defines their operand (in operand-result order).
    llvm::DenseMap<const Node *, llvm::SmallVector<Node *, 2>> byProducer;
    for (Node *n : nodes)
      if (n->getAttrs().getSymbol("axis") == axis && isGradientAllReduce(*n, users))
        byProducer[n->getOperand(0)->getDef()].push_back(n);
    if (byProducer.empty())
      return llvm::Error::success();
    changed = true;
    for (auto &entry : byProducer)
      llvm::stable_sort(entry.second, [](const Node *a, const Node *b) {
        return a->getOperand(0)->getIndex() < b->getOperand(0)->getIndex();
      });

    // One walk in program order. `reach[v]` is the highest bucket with a member that `v` depends on (-1: none),
    // so a gradient whose operand reaches the open bucket must start a new one.
    llvm::DenseMap<const Value *, int64_t> reach;
    llvm::DenseMap<const Node *, int64_t> bucketOf;
    std::vector<llvm::SmallVector<Node *, 4>> buckets;
    int64_t openBytes = 0;
    // Pipeline parallelism (pipeline-split's `stage`): a bucket holds the gradients of one stage.
    auto stageOf = [](const Node *n) -> std::vector<int64_t> {
      const std::vector<int64_t> *s = n->getAttrs().getInts("stage");
      return s ? *s : std::vector<int64_t>{};
    };
    std::vector<int64_t> openStage;
    for (Node *n : nodes) {
      int64_t r = -1;
      for (const Value *v : n->getOperands())
        if (auto it = reach.find(v); it != reach.end())
          r = std::max(r, it->second);
      if (auto it = bucketOf.find(n); it != bucketOf.end())
        r = std::max(r, it->second);
      for (unsigned i = 0; i < n->getNumResults(); ++i)
        reach[n->getResult(i)] = r;

      auto it = byProducer.find(n);
      if (it == byProducer.end())
        continue;
      for (Node *ar : it->second) {
        int64_t bytes = localBytes(*ar->getOperand(0), mesh);
        int64_t open = int64_t(buckets.size()) - 1;
        auto r = reach.find(ar->getOperand(0));
        bool dependsOnOpen = open >= 0 && r != reach.end() && r->second >= open;
        if (open < 0 || openBytes + bytes > limit || dependsOnOpen || stageOf(ar) != openStage) {
          buckets.emplace_back();
          openBytes = 0;
          openStage = stageOf(ar);
        }
        openBytes += bytes;
        bucketOf[ar] = int64_t(buckets.size()) - 1;
        buckets.back().push_back(ar);
      }
    }

    // One node per bucket, in place of its first member (members are in program order of their operands, so the
    // first member by position is the earliest node of the bucket).
    auto pos = g.computeOrder();
    for (llvm::SmallVector<Node *, 4> &members : buckets) {
      Node *first =
          *std::min_element(members.begin(), members.end(), [&](Node *a, Node *b) { return pos[a] < pos[b]; });
      llvm::SmallVector<Value *, 4> operands;
      llvm::SmallVector<ir::TensorType, 4> types;
      for (Node *m : members) {
        operands.push_back(m->getOperand(0));
        types.push_back(m->getResult()->getType());
      }
      Node *bucket = g.insertBefore(first, OpKind::AllReduceBucket, operands, first->getAttrs(), types);
      for (unsigned i = 0; i < members.size(); ++i) {
        g.replaceAllUsesWith(members[i]->getResult(), bucket->getResult(i));
        g.erase(members[i]);
      }
    }
    return llvm::Error::success();
  }

  int64_t limit;
  bool tp;
};

} // namespace

llvm::Expected<std::unique_ptr<Pass>> meg::passes::createBucketDpPass(const BucketDpOptions &options) {
  if (options.bytes <= 0)
    return fail("bucket-dp: option 'bytes' must be positive, got " + llvm::Twine(options.bytes) +
                " (leave the pass out for no bucketing)");
  return std::make_unique<BucketDpPass>(options.bytes, options.tp);
}
