//===- Sharding.cpp - deriving shardings from op index structure ------------===//
#include "passes/Sharding.h"
#include "ir/OpRules.h"

#include "llvm/ADT/STLExtras.h"

#include <algorithm>

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

ShardingDecision meg::passes::decideSharding(const Node &n, llvm::ArrayRef<Sharding> in, const Mesh &mesh,
                                             const ShardingHints *hints) {
  ShardingSpec spec = shardingSpec(n);
  unsigned numLoops = spec.loops.size();
  // Preferences are in play once a strategy seeded some (otherwise decisions are exactly those without hints).
  bool preferences = hints && hints->preferences;

  // 1. A loop takes the mesh axis some operand splits it on, unless operands disagree, the loop must be whole, or
  //    the axis does not divide every dim the loop indexes. Replicated operands then take their block locally.
  llvm::SmallVector<std::optional<MeshAxis>, 6> loopAxis(numLoops), loopSoft(numLoops);
  llvm::SmallVector<bool, 6> loopBlocked(numLoops, false), loopAnchored(numLoops, false);
  // Ops on parameters alone (the 16-bit casts of mixed precision, reshapes) keep a dp split: the gather then moves
  // what the computation reads.
  bool gatherStorage = hints && !writtenOperands(n.getKind());
  if (gatherStorage) {
    bool parametersOnly = true;
    for (unsigned i = 0; i < in.size(); ++i)
      parametersOnly &= i < hints->anchored.size() && hints->anchored[i];
    gatherStorage = !parametersOnly;
  }
  for (unsigned i = 0; i < spec.operandDims.size(); ++i) {
    for (unsigned d = 0; d < spec.operandDims[i].size(); ++d) {
      int l = spec.operandDims[i][d];
      if (l < 0)
        continue;
      if (preferences && i < hints->soft.size() && d < hints->soft[i].size() && hints->soft[i][d] && !loopSoft[l])
        loopSoft[l] = hints->soft[i][d];
      std::optional<MeshAxis> axis = in[i].dimAxis(d);
      if (!axis || mesh.size[unsigned(*axis)] == 1)
        continue;
      // A parameter split over dp (the distributed optimizer's storage of its shard) is read whole over dp by every
      // op that writes no operand and also reads something else (an activation): the batch is what dp splits in
      // the computation, so the split is gathered.
      if (*axis == MeshAxis::DP && gatherStorage && i < hints->anchored.size() && hints->anchored[i])
        continue;
      if (spec.loops[l] == Loop::Whole || (loopAxis[l] && *loopAxis[l] != *axis))
        loopBlocked[l] = true;
      loopAxis[l] = axis;
      if (hints && i < hints->anchored.size() && hints->anchored[i])
        loopAnchored[l] = true;
    }
  }
  // An operand the op writes in place keeps its layout (partition never converts it): the loops it leaves whole stay
  // unsplit (the other operands are gathered) and the loops it splits win their axis.
  for (unsigned i = 0; i < spec.operandDims.size(); ++i) {
    if (!(writtenOperands(n.getKind()) >> i & 1))
      continue;
    for (unsigned d = 0; d < spec.operandDims[i].size(); ++d) {
      int l = spec.operandDims[i][d];
      std::optional<MeshAxis> axis = in[i].dimAxis(d);
      if (l < 0)
        continue;
      if (!axis || mesh.size[unsigned(*axis)] == 1)
        loopBlocked[l] = true;
      else
        loopAnchored[l] = true;
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
  // A mesh axis splits one loop only: the one an anchored operand (a parameter) splits, else a parallel loop, else
  // the first in loop order. A split that loses becomes a preference of the loop (with preferences in play).
  llvm::SmallVector<unsigned, 6> order;
  for (unsigned l = 0; l < numLoops; ++l)
    order.push_back(l);
  auto rank = [&](unsigned l) { return loopAnchored[l] ? 0 : spec.loops[l] == Loop::Parallel ? 1 : 2; };
  std::stable_sort(order.begin(), order.end(), [&](unsigned a, unsigned b) { return rank(a) < rank(b); });
  std::array<bool, kNumMeshAxes> axisUsed{};
  for (unsigned l : order) {
    if (loopBlocked[l] || !loopAxis[l] || axisUsed[unsigned(*loopAxis[l])] ||
        !dividesAll(l, mesh.size[unsigned(*loopAxis[l])])) {
      if (preferences && loopAxis[l] && !loopSoft[l])
        loopSoft[l] = loopAxis[l];
      loopAxis[l].reset();
      continue;
    }
    axisUsed[unsigned(*loopAxis[l])] = true;
  }
  // A parallel loop without an axis takes its preferred one where that is free and divides its dims (at ops that
  // compute the strategy's stream and write no operand), unless pending sums of two or more operands over that axis
  // would otherwise meet in the op (partial + partial stays partial: reduced once, later, not once per operand).
  bool take = preferences && !writtenOperands(n.getKind()) && n.getNumResults() > 0 &&
              llvm::ArrayRef<int64_t>(n.getResult(0)->getType().shape) == llvm::ArrayRef<int64_t>(hints->preferShape);
  llvm::SmallVector<bool, 4> passes = take ? survivingPartials(n, spec, in) : llvm::SmallVector<bool, 4>();
  auto pendingPasses = [&](MeshAxis a) {
    unsigned meeting = 0;
    for (unsigned i = 0; i < passes.size(); ++i)
      meeting += passes[i] && in[i].partial[unsigned(a)];
    return meeting >= 2;
  };
  for (unsigned l = 0; l < numLoops && take; ++l) {
    std::optional<MeshAxis> want = loopSoft[l];
    if (loopAxis[l] || !want || spec.loops[l] != Loop::Parallel || axisUsed[unsigned(*want)] ||
        mesh.size[unsigned(*want)] == 1 || !dividesAll(l, mesh.size[unsigned(*want)]) || pendingPasses(*want))
      continue;
    loopAxis[l] = want;
    axisUsed[unsigned(*want)] = true;
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
    SoftSplit soft(rank);
    for (unsigned d = 0; d < spec.resultDims[r].size() && d < rank; ++d) {
      int l = spec.resultDims[r][d];
      if (l >= 0 && !loopAxis[l])
        soft[d] = loopSoft[l];
    }
    out.resultSoft.push_back(std::move(soft));
  }
  return out;
}

ShardingDecision meg::passes::decideSharding(const Node &n, const Mesh &mesh, const ShardingHints *hints) {
  llvm::SmallVector<Sharding, 4> in;
  for (Value *v : n.getOperands())
    in.push_back(v->getType().sharding);
  return decideSharding(n, in, mesh, hints);
}

ShardingDecision ShardingWalk::decide(const Node &n) {
  llvm::SmallVector<Sharding, 4> in;
  for (Value *v : n.getOperands())
    in.push_back(v->getType().sharding);
  return decide(n, in);
}

ShardingDecision ShardingWalk::decide(const Node &n, llvm::ArrayRef<Sharding> in) {
  ShardingHints hints;
  hints.preferences = preferences;
  hints.preferShape = preferShape;
  for (const Value *v : n.getOperands()) {
    hints.anchored.push_back(anchored.lookup(v));
    auto it = soft.find(v);
    hints.soft.push_back(it == soft.end() ? SoftSplit() : it->second);
  }
  return decideSharding(n, in, mesh, &hints);
}

void ShardingWalk::record(const Node &n, const ShardingDecision &d) {
  bool fromParams = n.getKind() == OpKind::Param || n.getKind() == OpKind::State;
  if (!fromParams && n.getNumOperands() > 0 && !isCollective(n.getKind()))
    fromParams = llvm::all_of(n.getOperands(), [&](const Value *v) { return anchored.lookup(v); });
  for (unsigned r = 0; r < n.getNumResults(); ++r) {
    const Value *v = n.getResult(r);
    if (fromParams)
      anchored[v] = true;
    if (r < d.resultSoft.size() && llvm::any_of(d.resultSoft[r], [](auto &a) { return a.has_value(); }))
      soft[v] = d.resultSoft[r];
  }
  if (n.getKind() != OpKind::Input)
    return;
  auto prefer = n.getAttrs().getString("prefer");
  if (!prefer)
    return;
  llvm::SmallVector<llvm::StringRef, 4> parts;
  prefer->split(parts, ',');
  SoftSplit s;
  for (llvm::StringRef p : parts)
    s.push_back(parseMeshAxis(p.trim()));
  preferences |= llvm::any_of(s, [](auto &a) { return a.has_value(); });
  if (const std::vector<int64_t> *stream = n.getAttrs().getInts("stream"))
    preferShape.assign(stream->begin(), stream->end());
  soft[n.getResult()] = std::move(s);
}

void ShardingWalk::recordLike(const Value *v, const Value *from) {
  if (anchored.lookup(from))
    anchored[v] = true;
  auto it = soft.find(from);
  if (it != soft.end()) {
    SoftSplit copy = it->second;
    soft[v] = std::move(copy);
  }
}

void meg::passes::setResultShardings(Node &n, const ShardingDecision &d) {
  for (unsigned r = 0; r < n.getNumResults(); ++r) {
    TensorType t = n.getResult(r)->getType();
    t.sharding = d.results[r];
    t.sharding.canonicalize();
    n.getResult(r)->setType(t);
  }
}
