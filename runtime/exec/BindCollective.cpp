//===- BindCollective.cpp - binders: collectives over a mesh axis -------------===//
//
// all_reduce {axis, reduce}: the result is the reduction of every group member's operand.
// all_gather {axis, dim}: the result concatenates the members' shards along `dim` in group-rank order.
// reduce_scatter {axis, reduce, dim}: the result is this member's block (along `dim`) of the reduction.
// shard {axis, dim}: replicated -> split, this rank keeps its block of the dim (no communication).
// all_reduce_bucket {axis, reduce}: result i is the reduction of every group member's operand i, in one collective.
// reduce_scatter_bucket {axis, reduce, dims}: result i is this member's block (along dims[i]) of the reduction of
// operand i, in one collective.
// all_gather and shard move 4-byte words without looking at them: f32 or i32 (ids, labels, masks).
// send {peer} / recv {peer}: the bytes of one value to / from the same dp and tp rank of pipeline stage `peer`.
//
//===----------------------------------------------------------------------===//
#include "runtime/exec/StepBinder.h"

#include "llvm/Support/FormatVariadic.h"

using namespace meg;
using namespace meg::runtime;

namespace {

llvm::Expected<CommAxis> axisAttr(const StepBinder &s) {
  auto axis = s.symbolAttr("axis");
  if (!axis)
    return axis.takeError();
  if (*axis == "tp")
    return CommAxis::TP;
  if (*axis == "dp")
    return CommAxis::DP;
  return s.error("unknown mesh axis '" + *axis + "' (expected dp or tp)");
}

llvm::Expected<CommReduce> reduceAttr(const StepBinder &s) {
  auto reduce = s.symbolAttr("reduce");
  if (!reduce)
    return reduce.takeError();
  if (*reduce == "sum")
    return CommReduce::Sum;
  if (*reduce == "max")
    return CommReduce::Max;
  return s.error("unknown reduction '" + *reduce + "' (expected sum or max)");
}

int64_t axisSize(const StepBinder &s, CommAxis axis) { return axis == CommAxis::TP ? s.plan.meshTp : s.plan.meshDp; }

/// outer = product of the dims of `local` before `dim`, chunk = the contiguous elements one member owns per outer
/// index.
void blocksOf(llvm::ArrayRef<int64_t> local, int dim, int64_t &outer, int64_t &chunk) {
  outer = chunk = 1;
  for (int d = 0; d < int(local.size()); ++d)
    (d < dim ? outer : chunk) *= local[d];
}

/// The axis and reduction of a reducing collective (all_reduce, reduce_scatter and their buckets) on f32 values.
llvm::Expected<std::pair<CommAxis, CommReduce>> reductionOf(const StepBinder &s) {
  auto axis = axisAttr(s);
  if (!axis)
    return axis.takeError();
  auto op = reduceAttr(s);
  if (!op)
    return op.takeError();
  if (auto err = s.expectDTypes(DType::F32))
    return err;
  return std::make_pair(*axis, *op);
}

} // namespace

llvm::Expected<AllReduceArgs> meg::runtime::bindAllReduce(const StepBinder &s) {
  auto red = reductionOf(s);
  if (!red)
    return red.takeError();
  auto [axis, op] = *red;
  if (auto err = s.expectResultShape(s.operand(0).shape))
    return err;
  return AllReduceArgs{axis, op, s.result().numel(), axisSize(s, axis)};
}

llvm::Expected<AllReduceBucketArgs> meg::runtime::bindAllReduceBucket(const StepBinder &s) {
  auto red = reductionOf(s);
  if (!red)
    return red.takeError();
  auto [axis, op] = *red;
  AllReduceBucketArgs a;
  a.axis = axis;
  a.reduce = op;
  a.members = axisSize(s, axis);
  for (size_t i = 0; i < s.numOperands(); ++i) {
    if (s.result(i).shape != s.operand(i).shape)
      return s.error(llvm::formatv("result {0} shape {1} does not match operand {0}'s {2}", i,
                                   shapeStr(s.result(i).shape), shapeStr(s.operand(i).shape)));
    a.counts.push_back(s.operand(i).numel());
    a.offsets.push_back(a.total);
    a.total += a.counts.back();
  }
  return a;
}

llvm::Expected<AllGatherArgs> meg::runtime::bindAllGather(const StepBinder &s) {
  auto axis = axisAttr(s);
  if (!axis)
    return axis.takeError();
  if (auto err = s.expectMovable())
    return err;
  const TensorSlot &x = s.operand(0);
  auto dim = s.intAttr("dim");
  if (!dim)
    return dim.takeError();
  if (*dim < 0 || size_t(*dim) >= x.shape.size())
    return s.error(llvm::formatv("dim {0} is out of range for rank {1}", *dim, x.shape.size()));
  AllGatherArgs a;
  a.axis = *axis;
  a.members = axisSize(s, *axis);
  a.count = x.numel();
  Shape expected = x.shape;
  expected[*dim] *= a.members;
  if (auto err = s.expectResultShape(expected))
    return err;
  blocksOf(x.shape, int(*dim), a.outer, a.chunk);
  return a;
}

namespace {

/// Operand i reduce-scattered along `dim` into result i (reduce_scatter, and each member of reduce_scatter_bucket).
llvm::Expected<ReduceScatterArgs> scatterOf(const StepBinder &s, size_t i, int64_t dim, CommAxis axis,
                                            CommReduce op) {
  const TensorSlot &x = s.operand(i);
  if (dim < 0 || size_t(dim) >= x.shape.size())
    return s.error(llvm::formatv("dim {0} is out of range for rank {1}", dim, x.shape.size()));
  ReduceScatterArgs a;
  a.axis = axis;
  a.reduce = op;
  a.members = axisSize(s, axis);
  if (x.shape[dim] % a.members != 0)
    return s.error(llvm::formatv("dim {0} of size {1} does not split over {2} ranks", dim, x.shape[dim], a.members));
  Shape expected = x.shape;
  expected[dim] /= a.members;
  if (llvm::ArrayRef<int64_t>(s.result(i).shape) != llvm::ArrayRef<int64_t>(expected))
    return s.error(llvm::formatv("result {0} shape {1} does not match operand {0}'s block (expected {2})", i,
                                 shapeStr(s.result(i).shape), shapeStr(expected)));
  a.count = s.result(i).numel();
  blocksOf(expected, int(dim), a.outer, a.chunk);
  return a;
}

} // namespace

llvm::Expected<ReduceScatterArgs> meg::runtime::bindReduceScatter(const StepBinder &s) {
  auto red = reductionOf(s);
  if (!red)
    return red.takeError();
  auto [axis, op] = *red;
  auto dim = s.intAttr("dim");
  if (!dim)
    return dim.takeError();
  return scatterOf(s, 0, *dim, axis, op);
}

llvm::Expected<ReduceScatterBucketArgs> meg::runtime::bindReduceScatterBucket(const StepBinder &s) {
  auto red = reductionOf(s);
  if (!red)
    return red.takeError();
  auto [axis, op] = *red;
  auto dims = s.intsAttr("dims");
  if (!dims)
    return dims.takeError();
  if (dims->size() != s.numOperands())
    return s.error(llvm::formatv("attribute 'dims' has {0} entries for {1} operands", dims->size(), s.numOperands()));
  ReduceScatterBucketArgs a;
  a.axis = axis;
  a.reduce = op;
  a.members = axisSize(s, axis);
  for (size_t i = 0; i < s.numOperands(); ++i) {
    auto part = scatterOf(s, i, (*dims)[i], axis, op);
    if (!part)
      return part.takeError();
    a.parts.push_back(*part);
    a.offsets.push_back(a.total);
    a.total += part->count;
  }
  return a;
}

llvm::Expected<SliceArgs> meg::runtime::bindShard(const StepBinder &s) {
  auto axis = axisAttr(s);
  if (!axis)
    return axis.takeError();
  if (auto err = s.expectMovable())
    return err;
  const TensorSlot &x = s.operand(0), &r = s.result();
  auto dim = s.intAttr("dim");
  if (!dim)
    return dim.takeError();
  if (*dim < 0 || size_t(*dim) >= x.shape.size() || r.shape.size() != x.shape.size())
    return s.error(llvm::formatv("dim {0} is out of range for rank {1}", *dim, x.shape.size()));
  int d = int(*dim);
  int64_t start = r.offset[d] - x.offset[d], length = r.shape[d];
  if (start < 0 || start + length > x.shape[d])
    return s.error(llvm::formatv("the result block [{0}, {1}) is not inside the operand's dim of size {2}", start,
                                 start + length, x.shape[d]));
  Shape expected = x.shape;
  expected[d] = length;
  if (auto err = s.expectResultShape(expected))
    return err;
  if (auto err = s.expectKernelRank(x, "operand 0"))
    return err;
  return SliceArgs{x.shape, d, start, length};
}

namespace {

/// send / recv {peer}: the world rank of stage `peer` with this rank's dp and tp coordinates, and the bytes moved.
llvm::Expected<SendArgs> bindPointToPoint(const StepBinder &s, const TensorSlot &x) {
  auto stage = s.intAttr("peer");
  if (!stage)
    return stage.takeError();
  if (*stage < 0 || *stage >= s.plan.meshPp)
    return s.error(llvm::formatv("peer stage {0} is outside the pipeline of {1} stages", *stage, s.plan.meshPp));
  int stageRanks = s.plan.meshDp * s.plan.meshTp;
  return SendArgs{s.plan.rank + (int(*stage) - s.plan.stage()) * stageRanks, x.bytes()};
}

} // namespace

llvm::Expected<SendArgs> meg::runtime::bindSend(const StepBinder &s) {
  if (s.result().bytes() != s.operand(0).bytes())
    return s.error("the result must be the operand (a send's result is its operand's bytes)");
  return bindPointToPoint(s, s.operand(0));
}

// In a plan a recv has no operand (the IR's operand is its send's token, on the peer's plan).
llvm::Expected<RecvArgs> meg::runtime::bindRecv(const StepBinder &s) {
  if (s.numOperands() != 0)
    return s.error("a recv step has no operands in a plan");
  auto a = bindPointToPoint(s, s.result());
  if (!a)
    return a.takeError();
  RecvArgs r;
  static_cast<SendArgs &>(r) = *a;
  return r;
}
