//===- Sharding.cpp - deriving shardings from op index structure ------------===//
#include "passes/Sharding.h"
#include "ir/OpRules.h"

using namespace meg;
using namespace meg::ir;
using namespace meg::passes;
using Loop = ShardingSpec::Loop;
using Partial = ShardingSpec::Partial;

namespace {

bool sumPartialOnly(const Sharding &s) {
  for (auto &p : s.partial)
    if (p && *p != ReduceKind::Sum)
      return false;
  return true;
}

/// Which operands keep their pending reductions (the others are reduced before the op consumes them).
llvm::SmallVector<bool, 4> survivingPartials(const Node &n, const ShardingSpec &spec,
                                             llvm::ArrayRef<Sharding> in) {
  llvm::SmallVector<bool, 4> keep(in.size(), false);
  switch (spec.partial) {
  case Partial::None:
    break;
  case Partial::Additive: {
    // All float operands partial(sum) over the same axes: the sum of partial sums is a partial sum.
    bool all = true;
    for (unsigned i = 0; i < in.size(); ++i) {
      if (!isFloat(n.getOperand(i)->getType().dtype))
        continue;
      all &= in[i].hasPartial() && sumPartialOnly(in[i]) && in[i].partial == in[0].partial;
    }
    if (all)
      keep.assign(in.size(), true);
    break;
  }
  case Partial::Linear:
    for (unsigned i = 0; i < in.size(); ++i)
      if ((spec.linearOperands >> i & 1) && in[i].hasPartial() && sumPartialOnly(in[i])) {
        keep[i] = true;
        break;
      }
    break;
  case Partial::MaxPass:
    for (unsigned i = 0; i < in.size(); ++i) {
      bool maxOnly = in[i].hasPartial();
      for (auto &p : in[i].partial)
        maxOnly &= !p || *p == ReduceKind::Max;
      keep[i] = maxOnly;
    }
    break;
  }
  return keep;
}

} // namespace

ShardingDecision meg::passes::decideSharding(const Node &n, llvm::ArrayRef<Sharding> in, const Mesh &mesh) {
  ShardingSpec spec = shardingSpec(n);
  unsigned numLoops = spec.loops.size();

  // 1. A loop takes the mesh axis some operand splits it on, unless operands disagree, the loop must be whole, or
  //    the axis does not divide every dim the loop indexes. Replicated operands then take their block locally.
  llvm::SmallVector<std::optional<MeshAxis>, 6> loopAxis(numLoops);
  llvm::SmallVector<bool, 6> loopBlocked(numLoops, false);
  for (unsigned i = 0; i < spec.operandDims.size(); ++i) {
    for (unsigned d = 0; d < spec.operandDims[i].size(); ++d) {
      int l = spec.operandDims[i][d];
      std::optional<MeshAxis> axis = in[i].dimAxis(d);
      if (l < 0 || !axis || mesh.size[unsigned(*axis)] == 1)
        continue;
      if (spec.loops[l] == Loop::Whole || (loopAxis[l] && *loopAxis[l] != *axis))
        loopBlocked[l] = true;
      loopAxis[l] = axis;
    }
  }
  auto dividesAll = [&](unsigned l, int64_t size) {
    for (unsigned i = 0; i < spec.operandDims.size(); ++i)
      for (unsigned d = 0; d < spec.operandDims[i].size(); ++d)
        if (spec.operandDims[i][d] == int(l) && n.getOperand(i)->getType().shape[d] % size != 0)
          return false;
    for (unsigned r = 0; r < spec.resultDims.size(); ++r)
      for (unsigned d = 0; d < spec.resultDims[r].size(); ++d)
        if (spec.resultDims[r][d] == int(l) && n.getResult(r)->getType().shape[d] % size != 0)
          return false;
    return true;
  };
  // A mesh axis splits one loop only (the first, in loop order).
  std::array<bool, kNumMeshAxes> axisUsed{};
  for (unsigned l = 0; l < numLoops; ++l) {
    if (loopBlocked[l] || !loopAxis[l] || axisUsed[unsigned(*loopAxis[l])] ||
        !dividesAll(l, mesh.size[unsigned(*loopAxis[l])])) {
      loopAxis[l].reset();
      continue;
    }
    axisUsed[unsigned(*loopAxis[l])] = true;
  }

  // 2. Pending reductions of operands survive where the op is linear in them and the op does not split that axis.
  llvm::SmallVector<bool, 4> keep = survivingPartials(n, spec, in);
  std::array<std::optional<ReduceKind>, kNumMeshAxes> kept{};
  for (unsigned i = 0; i < in.size(); ++i) {
    if (!keep[i])
      continue;
    for (unsigned a = 0; a < kNumMeshAxes; ++a)
      if (in[i].partial[a] && axisUsed[a])
        keep[i] = false;
    if (keep[i])
      for (unsigned a = 0; a < kNumMeshAxes; ++a)
        if (in[i].partial[a])
          kept[a] = in[i].partial[a];
  }

  // 3. Required operand shardings and result shardings follow from the loop axes. A result that does not index a
  //    split loop holds this rank's partial sum (or max) over it.
  ShardingDecision out;
  for (unsigned i = 0; i < in.size(); ++i) {
    Sharding s;
    unsigned rank = n.getOperand(i)->getType().rank();
    for (unsigned d = 0; d < spec.operandDims[i].size(); ++d) {
      int l = spec.operandDims[i][d];
      if (l >= 0 && loopAxis[l])
        s.setDimAxis(d, rank, loopAxis[l]);
    }
    if (keep[i])
      s.partial = in[i].partial;
    out.operands.push_back(s);
  }
  for (unsigned r = 0; r < n.getNumResults(); ++r) {
    Sharding s;
    unsigned rank = n.getResult(r)->getType().rank();
    llvm::SmallVector<bool, 6> indexed(numLoops, false);
    for (unsigned d = 0; d < spec.resultDims[r].size(); ++d) {
      int l = spec.resultDims[r][d];
      if (l < 0)
        continue;
      indexed[l] = true;
      if (loopAxis[l])
        s.setDimAxis(d, rank, loopAxis[l]);
    }
    s.partial = kept;
    for (unsigned l = 0; l < numLoops; ++l)
      if (loopAxis[l] && !indexed[l])
        s.partial[unsigned(*loopAxis[l])] = spec.loops[l] == Loop::Max ? ReduceKind::Max : ReduceKind::Sum;
    if (spec.meshGlobal)
      for (unsigned a = 0; a < kNumMeshAxes; ++a)
        if (mesh.size[a] > 1)
          s.partial[a] = ReduceKind::Max;
    out.results.push_back(s);
  }
  return out;
}

ShardingDecision meg::passes::decideSharding(const Node &n, const Mesh &mesh) {
  llvm::SmallVector<Sharding, 4> in;
  for (Value *v : n.getOperands())
    in.push_back(v->getType().sharding);
  return decideSharding(n, in, mesh);
}

void meg::passes::setResultShardings(Node &n, const ShardingDecision &d) {
  for (unsigned r = 0; r < n.getNumResults(); ++r) {
    TensorType t = n.getResult(r)->getType();
    t.sharding = d.results[r];
    t.sharding.canonicalize();
    n.getResult(r)->setType(t);
  }
}
