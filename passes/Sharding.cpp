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

  // 1. Each loop takes an axis if every operand dim that indexes it is split on that same axis.
  llvm::SmallVector<std::optional<MeshAxis>, 6> loopAxis(numLoops);
  llvm::SmallVector<bool, 6> loopBlocked(numLoops, false);
  for (unsigned i = 0; i < spec.operandDims.size(); ++i) {
    const auto &shape = n.getOperand(i)->getType().shape;
    for (unsigned d = 0; d < spec.operandDims[i].size(); ++d) {
      int l = spec.operandDims[i][d];
      if (l < 0)
        continue;
      std::optional<MeshAxis> axis = in[i].dimAxis(d);
      if (spec.loops[l] == Loop::Whole || !axis || mesh.size[unsigned(*axis)] == 1 ||
          shape[d] % mesh.size[unsigned(*axis)] != 0) {
        loopBlocked[l] = true;
        continue;
      }
      if (loopAxis[l] && *loopAxis[l] != *axis)
        loopBlocked[l] = true;
      loopAxis[l] = axis;
    }
  }
  // A mesh axis can split one loop only; result dims indexed by the loop must divide too.
  std::array<bool, kNumMeshAxes> axisUsed{};
  for (unsigned l = 0; l < numLoops; ++l) {
    if (loopBlocked[l] || !loopAxis[l]) {
      loopAxis[l].reset();
      continue;
    }
    unsigned a = unsigned(*loopAxis[l]);
    bool divides = !axisUsed[a];
    for (unsigned r = 0; r < spec.resultDims.size(); ++r)
      for (unsigned d = 0; d < spec.resultDims[r].size(); ++d)
        if (spec.resultDims[r][d] == int(l))
          divides &= n.getResult(r)->getType().shape[d] % mesh.size[a] == 0;
    if (!divides)
      loopAxis[l].reset();
    else
      axisUsed[a] = true;
  }

  // 2. Pending reductions: those the op is linear in survive, unless they collide with an axis the op splits on.
  llvm::SmallVector<bool, 4> keep = survivingPartials(n, spec, in);
  std::array<std::optional<ReduceKind>, kNumMeshAxes> resultPartial{};
  for (unsigned l = 0; l < numLoops; ++l)
    if (loopAxis[l] && (spec.loops[l] == Loop::Sum || spec.loops[l] == Loop::Max))
      resultPartial[unsigned(*loopAxis[l])] = spec.loops[l] == Loop::Sum ? ReduceKind::Sum : ReduceKind::Max;
  for (unsigned i = 0; i < in.size(); ++i) {
    if (!keep[i])
      continue;
    for (unsigned a = 0; a < kNumMeshAxes; ++a) {
      auto p = in[i].partial[a];
      if (!p)
        continue;
      bool splitHere = false;
      for (unsigned l = 0; l < numLoops; ++l)
        splitHere |= loopAxis[l] && unsigned(*loopAxis[l]) == a && spec.loops[l] == Loop::Parallel;
      bool clash = splitHere || (resultPartial[a] && *resultPartial[a] != *p);
      if (clash) {
        keep[i] = false;
        break;
      }
    }
    if (keep[i])
      for (unsigned a = 0; a < kNumMeshAxes; ++a)
        if (in[i].partial[a])
          resultPartial[a] = in[i].partial[a];
  }
  // A parallel loop split on an axis that also carries a pending reduction cannot be represented: unsplit it.
  for (unsigned l = 0; l < numLoops; ++l)
    if (loopAxis[l] && spec.loops[l] == Loop::Parallel && resultPartial[unsigned(*loopAxis[l])])
      loopAxis[l].reset();

  // 3. Required operand shardings and result shardings follow from the loop axes.
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
    for (unsigned d = 0; d < spec.resultDims[r].size(); ++d) {
      int l = spec.resultDims[r][d];
      if (l >= 0 && loopAxis[l])
        s.setDimAxis(d, rank, loopAxis[l]);
    }
    s.partial = resultPartial;
    out.results.push_back(s);
  }
  return out;
}
