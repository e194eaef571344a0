//===- BucketDp.cpp - bucket the data-parallel gradient reductions ----------===//
//
// bucket-dp{bytes=26214400,tp=false}
//
// After partition, every parameter's gradient is reduced over dp by its own `all_reduce {axis = dp, reduce = sum}`,
// or, with the distributed optimizer (ZeRO-1: adamw wants the gradient split over dp), by its own `reduce_scatter
// {axis = dp, reduce = sum, dim = d}`; on a real network each one pays the collective's latency. As PyTorch DDP
// (bucket_cap_mb = 25) and Megatron-LM's grad buffers do (its distributed optimizer reduce-scatters the buffer in
// buckets), this pass groups those reductions into buckets of at most `bytes` bytes per rank and replaces each
// bucket by ONE node: `all_reduce_bucket(g0, g1, ...) {axis = dp, reduce = sum}`, whose result i is the reduced
// g_i, or `reduce_scatter_bucket(g0, g1, ...) {axis = dp, reduce = sum, dims = [d0, d1, ...]}`, whose result i is
// this rank's block of the reduced g_i along d_i (a bucket of one gradient is a bucket node with one operand).
// All-reduces and reduce-scatters go in buckets of their own, never mixed. The backends run a bucket as one
// collective: pack the operands, one allReduce or reduceScatter, unpack into the results
// (runtime/cpu/CollectiveOps.cpp; a reduce-scatter packs rank-major, each rank's shards of every member together).
//
// Gradients are the sum reductions whose result is a parameter's gradient: the operand of an `output` named
// `grad:<param>` or the gradient operand of `adamw`, or of another such reduction. The tp all-reduces of
// gradients (sequence parallelism's LayerNorm and row-parallel bias gradients, summed over the sequence shards) are
// bucketed the same way with `tp=true` (megc --sequence-parallel), in buckets of their own (dp first, then tp).
// They are taken in the order the backward pass produces them (program order of the node that defines the
// reduction's operand) and packed greedily, each kind on its own: a bucket is closed when the next gradient would
// make it larger than `bytes` (a gradient larger than `bytes` is a bucket of its own), when the next gradient
// depends on a member of the open bucket (a node cannot wait for its own result), or, with pipeline parallelism,
// when it belongs to another stage. The sizes are local: the bytes of the operands one rank reduces. Other dp
// reductions (the loss and the token count) are left alone.
//
// Each bucket node takes the place of its first member; the nodes are then put in program-schedule order (the
// schedule pass's `program` policy), which runs a bucket as soon as its last operand is computed and keeps every
// other node's relative order. A graph without gradient reductions (dp = 1) is left untouched.
//
//===----------------------------------------------------------------------===//
#include "passes/MemoryPlan.h"
#include "passes/Pass.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/STLExtras.h"

#include <algorithm>
#include <array>
#include <optional>

using namespace meg;
using namespace meg::passes;
using ir::Node;
using ir::OpKind;
using ir::Value;

namespace {

using Users = llvm::DenseMap<const Value *, llvm::SmallVector<Node *, 2>>;

/// The two kinds of reduction bucketed, each in buckets of its own: all_reduce, and reduce_scatter (the
/// distributed optimizer's gradients).
enum Kind : unsigned { kAllReduce, kReduceScatter, kKinds };
constexpr OpKind kBucketOp[kKinds] = {OpKind::AllReduceBucket, OpKind::ReduceScatterBucket};

std::optional<Kind> sumReductionKind(const Node &n) {
  if (n.getAttrs().getSymbol("reduce") != llvm::StringRef("sum"))
    return std::nullopt;
  if (n.getKind() == OpKind::AllReduce)
    return kAllReduce;
  if (n.getKind() == OpKind::ReduceScatter)
    return kReduceScatter;
  return std::nullopt;
}

/// Whether `n` is a sum all-reduce or reduce-scatter of a parameter's gradient: its result is read by `output
/// grad:*`, by adamw as the gradient, or by another such reduction (a gradient pending over dp and tp is reduced
/// over each).
bool isGradientReduction(const Node &n, const Users &users) {
  if (!sumReductionKind(n))
    return false;
  auto it = users.find(n.getResult());
  if (it == users.end())
    return false;
  return llvm::any_of(it->second, [&](const Node *u) {
    if (u->getKind() == OpKind::Output)
      return u->getAttrs().getString("name").value_or("").startswith("grad:");
    if (u->getKind() == OpKind::AllReduce || u->getKind() == OpKind::ReduceScatter)
      return isGradientReduction(*u, users);
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
  /// Buckets the gradient reductions over one mesh axis: all-reduces and reduce-scatters, each kind in buckets of
  /// its own.
  llvm::Error bucketAxis(ir::Graph &g, llvm::StringRef axis, bool &changed) {
    llvm::SmallVector<Node *, 0> nodes = g.getNodes();
    auto users = g.computeUsers();
    const ir::Mesh &mesh = g.getMesh();

    // The gradient reductions, grouped by the node that defines their operand (in operand-result order).
    llvm::DenseMap<const Node *, llvm::SmallVector<Node *, 2>> byProducer;
    for (Node *n : nodes)
      if (n->getAttrs().getSymbol("axis") == axis && isGradientReduction(*n, users))
        byProducer[n->getOperand(0)->getDef()].push_back(n);
    if (byProducer.empty())
      return llvm::Error::success();
    changed = true;
    for (auto &entry : byProducer)
      llvm::stable_sort(entry.second, [](const Node *a, const Node *b) {
        return a->getOperand(0)->getIndex() < b->getOperand(0)->getIndex();
      });

    // One walk in program order. `reach[v][k]` is the highest bucket of kind k with a member that `v` depends on
    // (-1: none), so a gradient whose operand reaches the open bucket of its kind must start a new one.
    using Reach = std::array<int64_t, kKinds>;
    llvm::DenseMap<const Value *, Reach> reach;
    llvm::DenseMap<const Node *, int64_t> bucketOf;
    std::vector<llvm::SmallVector<Node *, 4>> buckets;
    std::vector<Kind> bucketKind;
    // Per kind: the open bucket (-1: none), its bytes and its pipeline stage (pipeline-split's `stage`: a bucket
    // holds the gradients of one stage).
    std::array<int64_t, kKinds> open, openBytes;
    open.fill(-1);
    openBytes.fill(0);
    std::array<std::vector<int64_t>, kKinds> openStage;
    auto stageOf = [](const Node *n) -> std::vector<int64_t> {
      const std::vector<int64_t> *s = n->getAttrs().getInts("stage");
      return s ? *s : std::vector<int64_t>{};
    };
    for (Node *n : nodes) {
      Reach r;
      r.fill(-1);
      auto join = [&](const Reach &other) {
        for (unsigned k = 0; k < kKinds; ++k)
          r[k] = std::max(r[k], other[k]);
      };
      for (const Value *v : n->getOperands())
        if (auto it = reach.find(v); it != reach.end())
          join(it->second);
      if (auto it = bucketOf.find(n); it != bucketOf.end())
        r[bucketKind[it->second]] = std::max(r[bucketKind[it->second]], it->second);
      for (unsigned i = 0; i < n->getNumResults(); ++i)
        reach[n->getResult(i)] = r;

      auto it = byProducer.find(n);
      if (it == byProducer.end())
        continue;
      for (Node *member : it->second) {
        Kind k = *sumReductionKind(*member);
        int64_t bytes = localBytes(*member->getOperand(0), mesh);
        auto rm = reach.find(member->getOperand(0));
        bool dependsOnOpen = open[k] >= 0 && rm != reach.end() && rm->second[k] >= open[k];
        if (open[k] < 0 || openBytes[k] + bytes > limit || dependsOnOpen || stageOf(member) != openStage[k]) {
          open[k] = int64_t(buckets.size());
          buckets.emplace_back();
          bucketKind.push_back(k);
          openBytes[k] = 0;
          openStage[k] = stageOf(member);
        }
        openBytes[k] += bytes;
        bucketOf[member] = open[k];
        buckets[open[k]].push_back(member);
      }
    }

    // One node per bucket, in place of its first member (members are in program order of their operands, so the
    // first member by position is the earliest node of the bucket). A reduce_scatter_bucket lists its members'
    // dims in `dims`.
    auto pos = g.computeOrder();
    for (size_t bi = 0; bi < buckets.size(); ++bi) {
      llvm::SmallVector<Node *, 4> &members = buckets[bi];
      Node *first =
          *std::min_element(members.begin(), members.end(), [&](Node *a, Node *b) { return pos[a] < pos[b]; });
      llvm::SmallVector<Value *, 4> operands;
      llvm::SmallVector<ir::TensorType, 4> types;
      std::vector<int64_t> dims;
      for (Node *m : members) {
        operands.push_back(m->getOperand(0));
        types.push_back(m->getResult()->getType());
        dims.push_back(m->getAttrs().getInt("dim").value_or(0));
      }
      ir::AttrDict attrs = first->getAttrs();
      if (bucketKind[bi] == kReduceScatter) {
        attrs.erase("dim");
        attrs.set("dims", std::move(dims));
      }
      Node *bucket = g.insertBefore(first, kBucketOp[bucketKind[bi]], operands, std::move(attrs), types);
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
