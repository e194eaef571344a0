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
    std::map<std::pair<const Value *, std::string>, Value *> converted;
    unsigned index = 0;
    ShardingWalk walk(g.getMesh());
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
        auto key = std::make_pair(static_cast<const Value *>(v), shardingKey(want));
        auto it = converted.find(key);
        if (it == converted.end()) {
          auto conv = convert(g, n, v, want);
          if (!conv)
            return fail("'" + n->getName() + "' (node #" + llvm::Twine(index - 1) + ") operand " + llvm::Twine(i) +
                        ": " + llvm::toString(conv.takeError()));
          it = converted.emplace(key, *conv).first;
          walk.recordLike(*conv, v);
        }
        n->setOperand(i, it->second);
      }
      setResultShardings(*n, d);
      walk.record(*n, d);
    }
    return llvm::Error::success();
  }

private:
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
