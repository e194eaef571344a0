//===- CollectiveOps.cpp - CPU adapters: collectives over a mesh axis ---------===//
//
// all_reduce {axis, reduce}: the result is the reduction of every group member's operand.
// all_gather {axis, dim}: the result concatenates the members' shards along `dim` in group-rank order.
// reduce_scatter {axis, reduce, dim}: the result is this member's block (along `dim`) of the reduction.
// The communicator moves contiguous float blocks; when `dim` is not the outermost non-trivial dim the blocks are
// interleaved through scratch ([member, outer, chunk] <-> [outer, member, chunk]).
// all_reduce {bucket = k} (bucket-dp): the adjacent all_reduce steps of bucket k are one allReduce (below).
//
//===----------------------------------------------------------------------===//
#include "runtime/cpu/CpuOps.h"

#include "kernels/cpu/Layout.h"

#include "llvm/Support/FormatVariadic.h"

#include <cstring>
#include <map>
#include <memory>
#include <mutex>

namespace k = meg::kernels::cpu;

using namespace meg;
using namespace meg::runtime;
using namespace meg::runtime::cpu;

namespace {

llvm::Expected<CommAxis> axisAttr(const CpuStep &s) {
  auto axis = s.symbolAttr("axis");
  if (!axis)
    return axis.takeError();
  if (*axis == "tp")
    return CommAxis::TP;
  if (*axis == "dp")
    return CommAxis::DP;
  return s.error("unknown mesh axis '" + *axis + "' (expected dp or tp)");
}

llvm::Expected<CommReduce> reduceAttr(const CpuStep &s) {
  auto reduce = s.symbolAttr("reduce");
  if (!reduce)
    return reduce.takeError();
  if (*reduce == "sum")
    return CommReduce::Sum;
  if (*reduce == "max")
    return CommReduce::Max;
  return s.error("unknown reduction '" + *reduce + "' (expected sum or max)");
}

int64_t axisSize(const CpuStep &s, CommAxis axis) { return axis == CommAxis::TP ? s.plan.meshTp : s.plan.meshDp; }

/// Geometry of a gather/scatter along `dim` of the shard shape `local`: outer = product of the dims before `dim`,
/// chunk = the contiguous elements one member owns per outer index.
struct Blocks {
  int64_t outer = 1, chunk = 1;
};

Blocks blocksOf(llvm::ArrayRef<int64_t> local, int dim) {
  Blocks b;
  for (int d = 0; d < int(local.size()); ++d)
    (d < dim ? b.outer : b.chunk) *= local[d];
  return b;
}

} // namespace

// A bucket (bucket-dp: the all_reduce steps with the same `bucket` attribute, adjacent in the plan) is one
// allReduce: its first step packs every member's operand into scratch, reduces once and unpacks into every
// member's result; the later members' steps do nothing. When the first member runs, every member's operand has
// been computed (the members are adjacent and none uses another's result), and no other step runs before the last
// member. Members read their operands before any result is written, so a result placed over an operand that dies
// inside the bucket is safe; results are written in member order.
namespace {

struct BucketMember {
  const float *in;
  float *out;
  int64_t count;
};
using Bucket = std::vector<BucketMember>;

/// Buckets whose first member is prepared and whose last member is not yet, per plan. Ranks prepare their own
/// plans concurrently (threads), hence the lock; the first member replaces any stale entry.
std::mutex openBucketsLock;
std::map<std::pair<const LoadedPlan *, int64_t>, std::shared_ptr<Bucket>> openBuckets;

/// The steps of the plan in bucket `id`: adjacent all_reduce steps over one axis with one reduction.
llvm::Expected<std::vector<size_t>> bucketSteps(const CpuStep &s, int64_t id) {
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
      return s.error(llvm::formatv("the steps of bucket {0} are not adjacent (steps {1} and {2})", id, steps.back(),
                                   i));
    steps.push_back(i);
  }
  return steps;
}

} // namespace

llvm::Expected<CpuKernel> meg::runtime::cpu::cpuAllReduce(CpuStep &s) {
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
  int64_t n = s.result().numel();
  CommAxis a = *axis;
  CommReduce r = *op;

  std::optional<int64_t> bucketId;
  if (s.step.attr("bucket")) {
    auto id = s.intAttr("bucket");
    if (!id)
      return id.takeError();
    bucketId = *id;
  }
  if (bucketId) {
    auto members = bucketSteps(s, *bucketId);
    if (!members)
      return members.takeError();
    if (members->size() > 1) {
      std::lock_guard<std::mutex> lock(openBucketsLock);
      auto key = std::make_pair(&s.plan, *bucketId);
      bool first = s.index == members->front(), last = s.index == members->back();
      std::shared_ptr<Bucket> bucket;
      if (first) {
        bucket = std::make_shared<Bucket>();
        openBuckets[key] = bucket;
        int64_t total = 0;
        for (size_t i : *members)
          total += s.plan.steps[i].results[0].numel();
        s.scratchFloats = total;
      } else {
        auto it = openBuckets.find(key);
        if (it == openBuckets.end())
          return s.error(llvm::formatv("bucket {0}: this step is prepared before the bucket's first step", *bucketId));
        bucket = it->second;
      }
      // No member may read an earlier member's result: the bucket runs as one step. (A later member's result may
      // lie over an earlier member's operand, which is dead by then: operands are packed before results are
      // written.)
      BucketMember me{s.f(0), s.fout(), n};
      for (const BucketMember &o : *bucket)
        if (me.in < o.out + o.count && o.out < me.in + me.count)
          return s.error(llvm::formatv("bucket {0}: the operand overlaps an earlier member's result", *bucketId));
      bucket->push_back(me);
      if (last)
        openBuckets.erase(key);
      if (!first)
        return [](const CpuRunArgs &) -> llvm::Error { return llvm::Error::success(); };
      return [=, &s](const CpuRunArgs &args) -> llvm::Error {
        float *packed = args.scratch;
        int64_t total = 0;
        for (const BucketMember &m : *bucket) {
          std::memcpy(packed + total, m.in, size_t(m.count) * sizeof(float));
          total += m.count;
        }
        if (auto err = args.comm.allReduce(a, r, packed, total))
          return s.error(llvm::toString(std::move(err)));
        total = 0;
        for (const BucketMember &m : *bucket) {
          std::memcpy(m.out, packed + total, size_t(m.count) * sizeof(float));
          total += m.count;
        }
        return llvm::Error::success();
      };
    }
  }

  return [=, &s](const CpuRunArgs &args) -> llvm::Error {
    if (s.f(0) != s.fout())
      std::memcpy(s.fout(), s.f(0), size_t(n) * sizeof(float));
    if (auto err = args.comm.allReduce(a, r, s.fout(), n))
      return s.error(llvm::toString(std::move(err)));
    return llvm::Error::success();
  };
}

llvm::Expected<CpuKernel> meg::runtime::cpu::cpuAllGather(CpuStep &s) {
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
  int64_t members = axisSize(s, *axis);
  Shape expected = x.shape;
  expected[*dim] *= members;
  if (auto err = s.expectResultShape(expected))
    return err;
  Blocks b = blocksOf(x.shape, int(*dim));
  int64_t count = x.numel();
  if (b.outer > 1)
    s.scratchFloats = members * count;
  CommAxis a = *axis;
  return [=, &s](const CpuRunArgs &args) -> llvm::Error {
    float *gathered = b.outer > 1 ? args.scratch : s.fout();
    if (auto err = args.comm.allGather(a, s.f(0), count, gathered))
      return s.error(llvm::toString(std::move(err)));
    if (b.outer > 1)
      for (int64_t o = 0; o < b.outer; ++o)
        for (int64_t g = 0; g < members; ++g)
          std::memcpy(s.fout() + (o * members + g) * b.chunk, gathered + g * count + o * b.chunk,
                      size_t(b.chunk) * sizeof(float));
    return llvm::Error::success();
  };
}

llvm::Expected<CpuKernel> meg::runtime::cpu::cpuReduceScatter(CpuStep &s) {
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
  int64_t members = axisSize(s, *axis);
  if (x.shape[*dim] % members != 0)
    return s.error(llvm::formatv("dim {0} of size {1} does not split over {2} ranks", *dim, x.shape[*dim], members));
  Shape expected = x.shape;
  expected[*dim] /= members;
  if (auto err = s.expectResultShape(expected))
    return err;
  Blocks b = blocksOf(expected, int(*dim));
  int64_t count = s.result().numel();
  if (b.outer > 1)
    s.scratchFloats = members * count;
  CommAxis a = *axis;
  CommReduce r = *op;
  return [=, &s](const CpuRunArgs &args) -> llvm::Error {
    const float *blocks = s.f(0);
    if (b.outer > 1) {
      for (int64_t o = 0; o < b.outer; ++o)
        for (int64_t g = 0; g < members; ++g)
          std::memcpy(args.scratch + g * count + o * b.chunk, s.f(0) + (o * members + g) * b.chunk,
                      size_t(b.chunk) * sizeof(float));
      blocks = args.scratch;
    }
    if (auto err = args.comm.reduceScatter(a, r, blocks, count, s.fout()))
      return s.error(llvm::toString(std::move(err)));
    return llvm::Error::success();
  };
}

// Replicated -> split: this rank keeps its block of the dim; no communication.
llvm::Expected<CpuKernel> meg::runtime::cpu::cpuShard(CpuStep &s) {
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
  return [=, &s](const CpuRunArgs &) -> llvm::Error {
    const TensorSlot &x = s.operand(0);
    k::slice(s.f(0), x.shape.data(), int(x.shape.size()), d, start, length, s.fout());
    return llvm::Error::success();
  };
}
