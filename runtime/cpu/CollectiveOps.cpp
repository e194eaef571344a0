//===- CollectiveOps.cpp - CPU adapters: collectives over a mesh axis ---------===//
//
// all_reduce {axis, reduce}: the result is the reduction of every group member's operand.
// all_gather {axis, dim}: the result concatenates the members' shards along `dim` in group-rank order.
// reduce_scatter {axis, reduce, dim}: the result is this member's block (along `dim`) of the reduction.
// The communicator moves contiguous float blocks; when `dim` is not the outermost non-trivial dim the blocks are
// interleaved through scratch ([member, outer, chunk] <-> [outer, member, chunk]).
//
//===----------------------------------------------------------------------===//
#include "runtime/cpu/CpuOps.h"

#include "kernels/cpu/Layout.h"

#include "llvm/Support/FormatVariadic.h"

#include <cstring>

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
