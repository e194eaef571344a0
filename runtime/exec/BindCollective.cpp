//===- BindCollective.cpp - binders: collectives over a mesh axis -------------===//
//
// all_reduce {axis, reduce}: the result is the reduction of every group member's operand.
// all_gather {axis, dim}: the result concatenates the members' shards along `dim` in group-rank order.
// reduce_scatter {axis, reduce, dim}: the result is this member's block (along `dim`) of the reduction.
// shard {axis, dim}: replicated -> split, this rank keeps its block of the dim (no communication).
// all_reduce {bucket = k} (bucket-dp): the adjacent all_reduce steps of bucket k run as one collective (BucketArgs).
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

/// The steps of the plan in bucket `id`: adjacent all_reduce steps over one axis with one reduction.
llvm::Expected<std::vector<size_t>> bucketSteps(const StepBinder &s, int64_t id) {
  std::vector<size_t> steps;
  for (size_t i = 0; i < s.plan.steps.size(); ++i) {
    const PlanStep &step = s.plan.steps[i];
    const StepAttr *b = step.attr("bucket");
    if (!b || b->kind != StepAttr::Int || b->i != id)
      continue;
    if (step.kind != ir::OpKind::AllReduce)
      return s.error(llvm::formatv("step {0} ('{1}') is in bucket {2} but is not an all_reduce", i, step.op, id));
    const StepAttr *axis = step.attr("axis"), *reduce = step.attr("reduce");
    const StepAttr *myAxis = s.step.attr("axis"), *myReduce = s.step.attr("reduce");
    if (!axis || !reduce || !myAxis || !myReduce || axis->s != myAxis->s || reduce->s != myReduce->s)
      return s.error(llvm::formatv("the steps of bucket {0} do not share one axis and reduction", id));
    if (!steps.empty() && i != steps.back() + 1)
      return s.error(
          llvm::formatv("the steps of bucket {0} are not adjacent (steps {1} and {2})", id, steps.back(), i));
    steps.push_back(i);
  }
  return steps;
}

llvm::Expected<std::optional<BucketArgs>> bindBucket(const StepBinder &s) {
  if (!s.step.attr("bucket"))
    return std::nullopt;
  auto id = s.intAttr("bucket");
  if (!id)
    return id.takeError();
  auto members = bucketSteps(s, *id);
  if (!members)
    return members.takeError();
  if (members->size() < 2)
    return std::nullopt;
  // No member may read an earlier member's result: the bucket runs as one step. (A later member's result may lie
  // over an earlier member's operand, which is dead by then: operands are packed before results are written.)
  const TensorSlot &in = s.operand(0);
  for (size_t i : *members) {
    if (i == s.index)
      break;
    if (slotsOverlap(in, s.plan.steps[i].results[0]))
      return s.error(llvm::formatv("bucket {0}: the operand overlaps an earlier member's result", *id));
  }
  BucketArgs bucket;
  bucket.id = *id;
  bucket.first = s.index == members->front();
  for (size_t i : *members)
    bucket.totalFloats += s.plan.steps[i].results[0].numel();
  bucket.steps = std::move(*members);
  return bucket;
}

} // namespace

llvm::Expected<AllReduceArgs> meg::runtime::bindAllReduce(const StepBinder &s) {
  auto axis = axisAttr(s);
  if (!axis)
    return axis.takeError();
  auto op = reduceAttr(s);
  if (!op)
    return op.takeError();
  if (auto err = s.expectDTypes(DType::F32))
    return err;
  if (auto err = s.expectResultShape(s.operand(0).shape))
    return err;
  auto bucket = bindBucket(s);
  if (!bucket)
    return bucket.takeError();
  return AllReduceArgs{*axis, *op, s.result().numel(), axisSize(s, *axis), std::move(*bucket)};
}

llvm::Expected<AllGatherArgs> meg::runtime::bindAllGather(const StepBinder &s) {
  auto axis = axisAttr(s);
  if (!axis)
    return axis.takeError();
  if (auto err = s.expectDTypes(DType::F32))
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

llvm::Expected<ReduceScatterArgs> meg::runtime::bindReduceScatter(const StepBinder &s) {
  auto axis = axisAttr(s);
  if (!axis)
    return axis.takeError();
  auto op = reduceAttr(s);
  if (!op)
    return op.takeError();
  if (auto err = s.expectDTypes(DType::F32))
    return err;
  const TensorSlot &x = s.operand(0);
  auto dim = s.intAttr("dim");
  if (!dim)
    return dim.takeError();
  if (*dim < 0 || size_t(*dim) >= x.shape.size())
    return s.error(llvm::formatv("dim {0} is out of range for rank {1}", *dim, x.shape.size()));
  ReduceScatterArgs a;
  a.axis = *axis;
  a.reduce = *op;
  a.members = axisSize(s, *axis);
  if (x.shape[*dim] % a.members != 0)
    return s.error(llvm::formatv("dim {0} of size {1} does not split over {2} ranks", *dim, x.shape[*dim], a.members));
  Shape expected = x.shape;
  expected[*dim] /= a.members;
  if (auto err = s.expectResultShape(expected))
    return err;
  a.count = s.result().numel();
  blocksOf(expected, int(*dim), a.outer, a.chunk);
  return a;
}

llvm::Expected<SliceArgs> meg::runtime::bindShard(const StepBinder &s) {
  auto axis = axisAttr(s);
  if (!axis)
    return axis.takeError();
  if (auto err = s.expectDTypes(DType::F32))
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
