//===- OpSharding.cpp - the index structure of each op -----------------------===//
//
// Sharding rules are not written per Megatron layer: each op states its loop nest (which dims are parallel, which
// are summed or maxed over, which must be whole on every rank) and how pending reductions pass through it.
// passes/Sharding.cpp derives every value's sharding and every collective from these specs alone.
//
//===----------------------------------------------------------------------===//
#include "ir/OpRules.h"

#include "llvm/ADT/STLExtras.h"

using namespace meg::ir;
using Loop = ShardingSpec::Loop;
using Partial = ShardingSpec::Partial;

namespace {

const llvm::SmallVector<int64_t, 4> &shapeOf(const Node &n, unsigned i) { return n.getOperand(i)->getType().shape; }
const llvm::SmallVector<int64_t, 4> &resultShape(const Node &n) { return n.getResult(0)->getType().shape; }

llvm::SmallVector<int, 6> iota(unsigned n, int start = 0) {
  llvm::SmallVector<int, 6> v;
  for (unsigned i = 0; i < n; ++i)
    v.push_back(start + int(i));
  return v;
}

/// Result-shaped parallel loops; each operand aligned to the right (numpy broadcasting), size-1 dims broadcast.
ShardingSpec elementwise(const Node &n, Partial partial, unsigned linear = 0) {
  ShardingSpec s;
  const auto &out = resultShape(n);
  s.loops.assign(out.size(), Loop::Parallel);
  for (unsigned i = 0; i < n.getNumOperands(); ++i) {
    const auto &in = shapeOf(n, i);
    llvm::SmallVector<int, 6> dims;
    unsigned lead = out.size() - in.size();
    for (unsigned j = 0; j < in.size(); ++j)
      dims.push_back(in[j] == out[lead + j] ? int(lead + j) : -1);
    s.operandDims.push_back(dims);
  }
  s.resultDims.push_back(iota(out.size()));
  s.partial = partial;
  s.linearOperands = linear;
  return s;
}

/// Identity loop nest over operand 0 with some loops marked Whole (normalized dims).
ShardingSpec sameShape(const Node &n, llvm::ArrayRef<unsigned> wholeDims, Partial partial, unsigned linear = 0) {
  ShardingSpec s;
  unsigned rank = shapeOf(n, 0).size();
  s.loops.assign(rank, Loop::Parallel);
  for (unsigned d : wholeDims)
    s.loops[d] = Loop::Whole;
  s.operandDims.push_back(iota(rank));
  s.resultDims.push_back(iota(rank));
  s.partial = partial;
  s.linearOperands = linear;
  return s;
}

ShardingSpec sourceSpec(const Node &n) {
  ShardingSpec s;
  unsigned rank = resultShape(n).size();
  s.loops.assign(rank, Loop::Parallel);
  s.resultDims.push_back(iota(rank));
  return s;
}

ShardingSpec specParam(const Node &n) { return sourceSpec(n); }
ShardingSpec specFill(const Node &n) { return sourceSpec(n); }
ShardingSpec specInput(const Node &n) { return sourceSpec(n); }

// Graph results keep their layout (the host assembles split results), but pending reductions are completed.
ShardingSpec specOutput(const Node &n) {
  ShardingSpec s;
  unsigned rank = shapeOf(n, 0).size();
  s.loops.assign(rank, Loop::Parallel);
  s.operandDims.push_back(iota(rank));
  return s;
}

// out[r..., h] = sum_v onehot(ids[r...])[v] * table[v, h]: the vocab is a summed loop, so a vocab-split table gives
// partial sums (rows a rank lacks contribute zero).
ShardingSpec specEmbedding(const Node &n) {
  ShardingSpec s;
  unsigned r = shapeOf(n, 1).size();
  s.loops.assign(r, Loop::Parallel);
  s.loops.push_back(Loop::Parallel); // h
  s.loops.push_back(Loop::Sum);      // v
  s.operandDims.push_back({int(r + 1), int(r)});
  s.operandDims.push_back(iota(r));
  auto res = iota(r);
  res.push_back(r);
  s.resultDims.push_back(res);
  s.partial = Partial::Linear;
  s.linearOperands = 1;
  return s;
}

// One loop per letter: letters of the output are parallel, the others are summed.
ShardingSpec specContract(const Node &n) {
  ShardingSpec s;
  auto parts = parseContractSpec(*n.getAttrs().getString("spec"));
  assert(parts && "contract spec checked by the verifier");
  std::string letters;
  for (const std::string &term : *parts)
    for (char c : term)
      if (letters.find(c) == std::string::npos)
        letters += c;
  for (char c : letters)
    s.loops.push_back((*parts)[2].find(c) == std::string::npos ? Loop::Sum : Loop::Parallel);
  auto dimsOf = [&](const std::string &term) {
    llvm::SmallVector<int, 6> d;
    for (char c : term)
      d.push_back(int(letters.find(c)));
    return d;
  };
  s.operandDims.push_back(dimsOf((*parts)[0]));
  s.operandDims.push_back(dimsOf((*parts)[1]));
  s.resultDims.push_back(dimsOf((*parts)[2]));
  s.partial = Partial::Linear;
  s.linearOperands = 0b11;
  return s;
}

ShardingSpec specAdd(const Node &n) { return elementwise(n, Partial::Additive); }
ShardingSpec specSub(const Node &n) { return elementwise(n, Partial::Additive); }
ShardingSpec specMul(const Node &n) { return elementwise(n, Partial::Linear, 0b11); }
ShardingSpec specDiv(const Node &n) { return elementwise(n, Partial::Linear, 0b01); }
// The max of pending maxes is a pending max; a replicated operand joins it (max is idempotent).
ShardingSpec specMaximum(const Node &n) { return elementwise(n, Partial::MaxPass); }
ShardingSpec specScale(const Node &n) { return elementwise(n, Partial::Linear, 0b1); }
ShardingSpec specExp(const Node &n) { return elementwise(n, Partial::None); }
ShardingSpec specLog(const Node &n) { return elementwise(n, Partial::None); }
ShardingSpec specTanh(const Node &n) { return elementwise(n, Partial::None); }
ShardingSpec specGelu(const Node &n) { return elementwise(n, Partial::None); }
// The mask depends only on the global element index, so dropout commutes with a pending sum.
ShardingSpec specDropout(const Node &n) { return elementwise(n, Partial::Linear, 0b1); }
ShardingSpec specCast(const Node &n) { return elementwise(n, Partial::Linear, 0b1); }
// Whether an element is masked depends only on its GLOBAL index along `dim`, so every dim (the masked one included)
// is parallel: a vocab-split shard masks its own columns. Masking with 0 is linear (a pending sum passes); with any
// other value it is not.
ShardingSpec specMaskPadding(const Node &n) {
  bool zero = n.getAttrs().getFloat("value").value_or(1.0) == 0.0;
  return zero ? elementwise(n, Partial::Linear, 0b1) : elementwise(n, Partial::None);
}

// Normalized over the last dim: that dim is whole; gain and bias index it.
ShardingSpec specLayerNorm(const Node &n) {
  unsigned rank = shapeOf(n, 0).size();
  ShardingSpec s = sameShape(n, {rank - 1}, Partial::None);
  s.operandDims.push_back({int(rank - 1)});
  s.operandDims.push_back({int(rank - 1)});
  return s;
}

ShardingSpec specSoftmax(const Node &n) {
  return sameShape(n, {unsigned(shapeOf(n, 0).size() - 1)}, Partial::None);
}

// [b, s, n, d]: batch and heads are parallel; every rank needs whole sequences and head dims.
ShardingSpec specAttention(const Node &n) {
  ShardingSpec s = sameShape(n, {1, 3}, Partial::None);
  s.operandDims.push_back({0, 1, 2, 3});
  s.operandDims.push_back({0, 1, 2, 3});
  if (n.getNumOperands() == 4)
    s.operandDims.push_back({0, 1});
  return s;
}

// Groups of dims with equal element counts map onto each other; within a group only the major dims may be split
// (a block of the major dim is a contiguous block of the group), the minor ones are whole.
ShardingSpec specReshape(const Node &n) {
  ShardingSpec s;
  const auto &in = shapeOf(n, 0);
  const auto &out = resultShape(n);
  llvm::SmallVector<int, 6> inDims(in.size(), -1), outDims(out.size(), -1);
  unsigned i = 0, o = 0;
  while (i < in.size() || o < out.size()) {
    // Size-1 dims stand alone.
    if (i < in.size() && in[i] == 1) {
      inDims[i++] = -1;
      continue;
    }
    if (o < out.size() && out[o] == 1) {
      outDims[o++] = -1;
      continue;
    }
    int major = s.loops.size();
    s.loops.push_back(Loop::Parallel);
    inDims[i] = outDims[o] = major;
    int64_t pi = in[i++], po = out[o++];
    while (pi != po) {
      if (pi < po) {
        inDims[i] = s.loops.size();
        pi *= in[i++];
      } else {
        outDims[o] = s.loops.size();
        po *= out[o++];
      }
      s.loops.push_back(Loop::Whole);
    }
  }
  s.operandDims.push_back(inDims);
  s.resultDims.push_back(outDims);
  s.partial = Partial::Linear;
  s.linearOperands = 1;
  return s;
}

ShardingSpec specTranspose(const Node &n) {
  ShardingSpec s = sameShape(n, {}, Partial::Linear, 1);
  const auto &perm = *n.getAttrs().getInts("perm");
  s.resultDims[0].clear();
  for (int64_t p : perm)
    s.resultDims[0].push_back(int(p));
  return s;
}

ShardingSpec specSlice(const Node &n) {
  return sameShape(n, {unsigned(*n.getAttrs().getInt("dim"))}, Partial::Linear, 1);
}

ShardingSpec specSelect(const Node &n) {
  unsigned dim = *n.getAttrs().getInt("dim");
  ShardingSpec s = sameShape(n, {dim}, Partial::Linear, 1);
  s.resultDims[0].erase(s.resultDims[0].begin() + dim);
  return s;
}

ShardingSpec reduction(const Node &n, Loop kind, Partial partial) {
  const auto &dims = *n.getAttrs().getInts("dims");
  bool keep = n.getAttrs().getBool("keepdim").value_or(false);
  unsigned rank = shapeOf(n, 0).size();
  ShardingSpec s = sameShape(n, {}, partial, 1);
  s.resultDims[0].clear();
  for (unsigned d = 0; d < rank; ++d) {
    bool reduced = llvm::is_contained(dims, int64_t(d));
    if (reduced)
      s.loops[d] = kind;
    if (!reduced)
      s.resultDims[0].push_back(int(d));
    else if (keep)
      s.resultDims[0].push_back(-1);
  }
  return s;
}
ShardingSpec specReduceSum(const Node &n) { return reduction(n, Loop::Sum, Partial::Linear); }
ShardingSpec specReduceMax(const Node &n) { return reduction(n, Loop::Max, Partial::MaxPass); }

// out[r...] = sum_v onehot(ids[r...])[v] * x[r..., v]: like the embedding, the vocab is a summed loop.
ShardingSpec specPick(const Node &n) {
  unsigned r = shapeOf(n, 1).size();
  ShardingSpec s;
  s.loops.assign(r, Loop::Parallel);
  s.loops.push_back(Loop::Sum);
  s.operandDims.push_back(iota(r + 1));
  s.operandDims.push_back(iota(r));
  s.resultDims.push_back(iota(r));
  s.partial = Partial::Linear;
  s.linearOperands = 1;
  return s;
}

ShardingSpec specValidMask(const Node &n) { return elementwise(n, Partial::None); }

// Collectives are inserted by partitioning, never propagated through: their operands must already be final.
ShardingSpec collective(const Node &n) { return sameShape(n, {}, Partial::None); }
ShardingSpec specAllReduce(const Node &n) { return collective(n); }
ShardingSpec specAllGather(const Node &n) { return collective(n); }
ShardingSpec specReduceScatter(const Node &n) { return collective(n); }
// Independent members: each operand and its result are indexed by loops of their own.
ShardingSpec specAllReduceBucket(const Node &n) {
  ShardingSpec s;
  for (unsigned i = 0; i < n.getNumOperands(); ++i) {
    unsigned rank = shapeOf(n, i).size();
    auto dims = iota(rank, int(s.loops.size()));
    s.loops.append(rank, Loop::Parallel);
    s.operandDims.push_back(dims);
    s.resultDims.push_back(dims);
  }
  return s;
}
ShardingSpec specReduceScatterBucket(const Node &n) { return specAllReduceBucket(n); }
ShardingSpec specShard(const Node &n) { return collective(n); }

ShardingSpec specState(const Node &n) { return sourceSpec(n); }
ShardingSpec specLrSchedule(const Node &n) {
  ShardingSpec s = sourceSpec(n);
  s.operandDims.assign(n.getNumOperands(), {});
  return s;
}

// All dims are summed: a split gradient gives a partial sum of squares.
ShardingSpec specSumSquares(const Node &n) {
  unsigned rank = shapeOf(n, 0).size();
  ShardingSpec s;
  s.loops.assign(rank, Loop::Sum);
  s.operandDims.push_back(iota(rank));
  s.resultDims.push_back({});
  return s;
}

ShardingSpec specClipScale(const Node &n) {
  ShardingSpec s;
  s.operandDims.push_back({});
  s.resultDims = {{}, {}};
  return s;
}

// Elementwise over the parameter; each rank updates its shard with the matching gradient and state shards.
ShardingSpec specAdamW(const Node &n) {
  unsigned rank = shapeOf(n, 0).size();
  ShardingSpec s;
  s.loops.assign(rank, Loop::Parallel);
  s.operandDims = {iota(rank), iota(rank), iota(rank), iota(rank), {}, {}};
  s.operandDims.resize(n.getNumOperands());
  return s;
}

// Every dim is maxed over, and the flag means "on any rank": it is pending a max over every mesh axis, so every
// rank of the mesh agrees on it once it is used (replicas contribute the same flag; max is idempotent).
ShardingSpec specNonfinite(const Node &n) {
  unsigned rank = shapeOf(n, 0).size();
  ShardingSpec s;
  s.loops.assign(rank, Loop::Max);
  s.operandDims.push_back(iota(rank));
  s.resultDims.push_back({});
  s.meshGlobal = true;
  return s;
}

// Scalars, replicated on every rank.
ShardingSpec specLossScaleUpdate(const Node &n) {
  ShardingSpec s;
  s.operandDims.assign(n.getNumOperands(), {});
  return s;
}

// Elementwise; the accumulator holds what x holds (a partial sum stays pending: reduced once, after the last
// micro-batch).
ShardingSpec specAccumulate(const Node &n) { return elementwise(n, Partial::Additive); }

// The value moves between pipeline stages as it is laid out (a pending sum stays pending).
ShardingSpec specSend(const Node &n) { return elementwise(n, Partial::Additive); }
ShardingSpec specRecv(const Node &n) { return elementwise(n, Partial::Additive); }

// Result-shaped loops; x aligned to the right, its size-1 dims broadcast.
ShardingSpec specBroadcast(const Node &n) { return elementwise(n, Partial::Linear, 0b1); }

ShardingSpec specGeluGrad(const Node &n) { return elementwise(n, Partial::Linear, 0b10); }

// Loops of x; dgain and dbias do not index the row loops, so they are sums over the rows a rank holds.
ShardingSpec specLayerNormGrad(const Node &n) {
  unsigned rank = shapeOf(n, 0).size();
  ShardingSpec s = sameShape(n, {rank - 1}, Partial::None);
  s.operandDims = {iota(rank), {int(rank - 1)}, iota(rank)};
  s.resultDims = {iota(rank), {int(rank - 1)}, {int(rank - 1)}};
  return s;
}

ShardingSpec specAttentionGrad(const Node &n) {
  ShardingSpec s = sameShape(n, {1, 3}, Partial::None);
  s.operandDims = {iota(4), iota(4), iota(4), iota(4)};
  if (n.getNumOperands() == 5)
    s.operandDims.push_back({0, 1});
  s.resultDims = {iota(4), iota(4), iota(4)};
  return s;
}

// dtable[v, h] = sum_r onehot(ids[r])[v] * dy[r, h]: the table operand (shape only) carries the vocab sharding.
ShardingSpec specEmbeddingGrad(const Node &n) {
  unsigned r = shapeOf(n, 1).size();
  ShardingSpec s;
  s.loops.assign(r + 2, Loop::Parallel); // r..., h, v
  auto rh = iota(r + 1);
  s.operandDims = {{int(r + 1), int(r)}, iota(r), rh};
  s.resultDims = {{int(r + 1), int(r)}};
  s.partial = Partial::Linear;
  s.linearOperands = 0b100;
  return s;
}

// dx[r, v] = onehot(ids[r])[v] * dy[r]: x (shape only) carries the vocab sharding.
ShardingSpec specPickGrad(const Node &n) {
  unsigned r = shapeOf(n, 1).size();
  ShardingSpec s;
  s.loops.assign(r + 1, Loop::Parallel);
  s.operandDims = {iota(r + 1), iota(r), iota(r)};
  s.resultDims = {iota(r + 1)};
  s.partial = Partial::Linear;
  s.linearOperands = 0b100;
  return s;
}

ShardingSpec specSliceGrad(const Node &n) {
  return sameShape(n, {unsigned(*n.getAttrs().getInt("dim"))}, Partial::Linear, 1);
}

ShardingSpec specSelectGrad(const Node &n) {
  unsigned dim = *n.getAttrs().getInt("dim");
  unsigned rank = resultShape(n).size();
  ShardingSpec s;
  s.loops.assign(rank, Loop::Parallel);
  s.loops[dim] = Loop::Whole;
  auto in = iota(rank);
  in.erase(in.begin() + dim);
  s.operandDims = {in};
  s.resultDims = {iota(rank)};
  s.partial = Partial::Linear;
  s.linearOperands = 1;
  return s;
}

// Loops b, t, n, d of q and the cache position c: batch and heads are parallel (each rank owns whole heads, as
// attention); the new tokens (every query sees every token written in the step), head dims and cache positions are
// whole. The caches are written in place, so partition never reshards them (a cache split on a whole loop is refused).
ShardingSpec specDecodeAttention(const Node &n) {
  ShardingSpec s;
  s.loops = {Loop::Parallel, Loop::Whole, Loop::Parallel, Loop::Whole, Loop::Whole};
  s.operandDims = {iota(4), iota(4), iota(4), {0, 4, 2, 3}, {0, 4, 2, 3}, {0, 1}};
  s.resultDims = {iota(4)};
  return s;
}

constexpr ShardingRule kShardingRules[] = {
#define OP(Enum, Name, MinOperands, MaxOperands, NumResults, Traits, WritesMask, Summary) &spec##Enum,
#include "ir/Ops.def"
};
static_assert(std::size(kShardingRules) == kNumOpKinds, "every op needs a sharding rule");

} // namespace

ShardingRule meg::ir::shardingRule(OpKind k) { return kShardingRules[unsigned(k)]; }
ShardingSpec meg::ir::shardingSpec(const Node &n) { return kShardingRules[unsigned(n.getKind())](n); }
