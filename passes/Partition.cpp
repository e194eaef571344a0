//===- Partition.cpp - materialize the collectives --------------------------===//
//
// For every node, the sharding each operand must have (passes/Sharding.h) is compared with the sharding its producer
// gives it; where they differ a collective is inserted right before the first consumer that needs it:
//   partial -> replicated        all_reduce(axis, sum|max)
//   partial -> split on that axis reduce_scatter(axis, sum, dim)
//   split   -> replicated        all_gather(axis, dim)
//   replicated -> split          shard(axis, dim): keep the local block, no communication
// An operand the op writes in place (Ops.def's WritesMask: optimizer state, a KV cache) is never converted: the write
// would land in the collective's copy. Such a layout is an error.
// A (value, target sharding) pair is converted once and shared by every consumer that needs it. Result shardings are
// set from the same decision, so running sharding-propagation first is optional (it shows the analysis alone).
// The distributed optimizer: where a later user that writes operands (adamw on a dp shard) wants a value's pending
// sum reduce-scattered, an earlier reader that would all-reduce it is offered the shard first and takes it when its
// rule accepts it (outputs, sum_squares, nonfinite): one reduce_scatter per gradient, no all_reduce; later
// conversions of the value start from the shard.
//
//===----------------------------------------------------------------------===//
#include "passes/Pass.h"
#include "passes/Sharding.h"

#include "llvm/ADT/DenseMap.h"

#include <map>

using namespace meg;
using namespace meg::ir;
using namespace meg::passes;

namespace {

std::string shardingKey(const Sharding &s) {
  std::string key;
  for (auto &d : s.dims)
    key += d ? char('0' + int(*d)) : '-';
  key += '|';
  for (auto &p : s.partial)
    key += p ? char('0' + int(*p)) : '-';
  return key;
}

class PartitionPass : public Pass {
public:
  llvm::StringRef getName() const override { return "partition"; }

  llvm::Error run(Graph &g) override {
    converted.clear();
    scattered.clear();
    unsigned index = 0;
    ShardingWalk walk(g.getMesh());
    auto users = g.computeUsers();
    for (Node *n : g.getNodes()) {
      ++index;
      if (opInfo(n->getKind()).maxOperands == 0) {
        walk.record(*n, {});
        continue;
      }
      ShardingDecision d = walk.decide(*n);
      for (unsigned i = 0; i < n->getNumOperands(); ++i) {
        Value *v = n->getOperand(i);
        Sharding want = d.operands[i];
        want.canonicalize();
        if (v->getType().sharding == want)
          continue;
        if (writtenOperands(n->getKind()) & (1u << i)) {
          TensorType t = v->getType();
          t.sharding = want;
          return fail("'" + n->getName() + "' (node #" + llvm::Twine(index - 1) + ") operand " + llvm::Twine(i) +
                      " is written in place and cannot be converted from " + v->getType().str() + " to " + t.str());
        }
        // A pending sum that an optimizer update wants reduce-scattered: this reader takes the shard if its rule
        // accepts it (then the update finds the same conversion and no all-reduce is made).
        if (std::optional<Sharding> shard = updateShard(walk, users, n, v, want)) {
          llvm::SmallVector<Sharding, 4> in;
          for (Value *o : n->getOperands())
            in.push_back(o->getType().sharding);
          in[i] = *shard;
          ShardingDecision alt = walk.decide(*n, in);
          // Accepted: the reader keeps the shard's new splits (it may still complete other pending sums).
          bool keeps = true;
          for (unsigned d = 0; d < v->getType().rank(); ++d)
            if (shard->dimAxis(d) && !v->getType().sharding.dimAxis(d))
              keeps &= alt.operands[i].dimAxis(d) == shard->dimAxis(d);
          if (keeps) {
            auto conv = convertOnce(g, walk, n, v, *shard);
            if (!conv)
              return fail("'" + n->getName() + "' (node #" + llvm::Twine(index - 1) + ") operand " +
                          llvm::Twine(i) + ": " + llvm::toString(conv.takeError()));
            scattered[v] = *conv;
            n->setOperand(i, *conv);
            d = walk.decide(*n);
            i = unsigned(-1); // the decision changed: revisit every operand
            continue;
          }
        }
        auto conv = convertOnce(g, walk, n, v, want);
        if (!conv)
          return fail("'" + n->getName() + "' (node #" + llvm::Twine(index - 1) + ") operand " + llvm::Twine(i) +
                      ": " + llvm::toString(conv.takeError()));
        n->setOperand(i, *conv);
      }
      setResultShardings(*n, d);
      walk.record(*n, d);
    }
    return llvm::Error::success();
  }

private:
  /// (value, target sharding) -> the converted value, shared by every consumer that needs it.
  std::map<std::pair<const Value *, std::string>, Value *> converted;

  /// A value reduce-scattered for an optimizer update -> the scattered value: later conversions start from it.
  llvm::DenseMap<const Value *, Value *> scattered;

  llvm::Expected<Value *> convertOnce(Graph &g, ShardingWalk &walk, Node *before, Value *v, const Sharding &want) {
    if (Value *s = scattered.lookup(v)) {
      // Start from the shard unless `want` keeps a pending sum the reduce-scatter completed.
      bool from = true;
      for (unsigned a = 0; a < kNumMeshAxes; ++a)
        from &= !(v->getType().sharding.partial[a] && !s->getType().sharding.partial[a] && want.partial[a]);
      if (from && s->getType().sharding == want)
        return s;
      if (from)
        v = s;
    }
    auto key = std::make_pair(static_cast<const Value *>(v), shardingKey(want));
    auto it = converted.find(key);
    if (it != converted.end())
      return it->second;
    auto conv = convert(g, before, v, want);
    if (!conv)
      return conv.takeError();
    walk.recordLike(*conv, v);
    converted.emplace(key, *conv);
    return *conv;
  }

  /// The distributed optimizer's gradients: `v` holds a pending sum over some axis that `n` wants reduced. If a
  /// later user of `v` that writes operands (adamw on a parameter shard) wants `v` reduced AND split over that axis,
  /// and `n` wants `v`'s layout (gathering that split), `v` with that sum turned into the split is returned (other
  /// pending sums kept): the sum is then reduce-scattered once (the update's shard) instead of all-reduced.
  static std::optional<Sharding> updateShard(ShardingWalk &walk,
                                             const llvm::DenseMap<const Value *, llvm::SmallVector<Node *, 2>> &users,
                                             const Node *n, const Value *v, const Sharding &want) {
    const Sharding &cur = v->getType().sharding;
    if (!cur.hasPartial())
      return std::nullopt;
    auto it = users.find(v);
    if (it == users.end())
      return std::nullopt;
    unsigned rank = v->getType().rank();
    for (const Node *u : it->second) {
      if (u == n || !writtenOperands(u->getKind()))
        continue;
      ShardingDecision du = walk.decide(*u);
      for (unsigned j = 0; j < u->getNumOperands(); ++j) {
        if (u->getOperand(j) != v)
          continue;
        const Sharding &target = du.operands[j];
        // The reduce-scatter alone: `v` with the sums the update completes by splitting turned into those splits.
        // Gathering them again must give `want`.
        // `want` must be that with (some of) the other pending sums completed.
        Sharding shard = cur;
        bool scatters = false;
        for (unsigned d = 0; d < rank; ++d) {
          auto axis = target.dimAxis(d);
          if (!axis || cur.dimAxis(d) || !cur.partial[unsigned(*axis)] || target.partial[unsigned(*axis)] ||
              want.partial[unsigned(*axis)])
            continue;
          scatters = true;
          shard.partial[unsigned(*axis)].reset();
          shard.setDimAxis(d, rank, axis);
        }
        shard.canonicalize();
        bool gathers = scatters;
        for (unsigned d = 0; d < rank; ++d)
          gathers &= want.dimAxis(d) == cur.dimAxis(d);
        for (unsigned a = 0; a < kNumMeshAxes; ++a)
          gathers &= !want.partial[a] || want.partial[a] == shard.partial[a];
        if (gathers)
          return shard;
      }
    }
    return std::nullopt;
  }

  static Value *insert(Graph &g, Node *before, OpKind kind, Value *v, AttrDict attrs, const Sharding &s) {
    TensorType t = v->getType();
    t.sharding = s;
    t.sharding.canonicalize();
    return g.insertBefore(before, kind, {v}, std::move(attrs), {t})->getResult();
  }

  static llvm::Expected<Value *> convert(Graph &g, Node *before, Value *v, const Sharding &want) {
    Sharding cur = v->getType().sharding;
    unsigned rank = v->getType().rank();
    for (unsigned a = 0; a < kNumMeshAxes; ++a) {
      auto p = cur.partial[a];
      if (!p || want.partial[a] == p)
        continue;
      MeshAxis axis = MeshAxis(a);
      std::optional<unsigned> scatterDim;
      bool curSplitsAxis = false;
      for (unsigned d = 0; d < rank; ++d)
        curSplitsAxis |= cur.dimAxis(d) == axis;
      for (unsigned d = 0; d < rank && !curSplitsAxis; ++d)
        if (want.dimAxis(d) == axis && !scatterDim)
          scatterDim = d;
      AttrDict attrs;
      attrs.set("axis", Symbol{meshAxisName(axis).str()});
      attrs.set("reduce", Symbol{reduceKindName(*p).str()});
      cur.partial[a].reset();
      if (scatterDim) {
        attrs.set("dim", int64_t(*scatterDim));
        cur.setDimAxis(*scatterDim, rank, axis);
        v = insert(g, before, OpKind::ReduceScatter, v, std::move(attrs), cur);
      } else {
        v = insert(g, before, OpKind::AllReduce, v, std::move(attrs), cur);
      }
    }
    for (unsigned d = 0; d < rank; ++d) {
      auto axis = cur.dimAxis(d);
      if (!axis || want.dimAxis(d) == axis)
        continue;
      AttrDict attrs;
      attrs.set("axis", Symbol{meshAxisName(*axis).str()});
      attrs.set("dim", int64_t(d));
      cur.setDimAxis(d, rank, std::nullopt);
      v = insert(g, before, OpKind::AllGather, v, std::move(attrs), cur);
    }
    for (unsigned d = 0; d < rank; ++d) {
      auto axis = want.dimAxis(d);
      if (!axis || cur.dimAxis(d) == axis)
        continue;
      AttrDict attrs;
      attrs.set("axis", Symbol{meshAxisName(*axis).str()});
      attrs.set("dim", int64_t(d));
      cur.setDimAxis(d, rank, axis);
      v = insert(g, before, OpKind::Shard, v, std::move(attrs), cur);
    }
    cur.canonicalize();
    if (cur != want)
      return fail("cannot convert " + v->getType().str() + " to the sharding its consumer needs");
    return v;
  }
};

} // namespace

llvm::Expected<std::unique_ptr<Pass>> meg::passes::createPartitionPass(const PartitionOptions &) {
  return std::make_unique<PartitionPass>();
}
