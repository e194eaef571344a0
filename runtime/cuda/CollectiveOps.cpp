//===- CollectiveOps.cpp - CUDA adapters: collectives over a mesh axis ---------===//
//
// As runtime/cpu/CollectiveOps.cpp, on device buffers: a group of one rank is a device copy; a larger group needs a
// CudaCommunicator (OneGpuCommunicator or NcclCommunicator), called with the backend's stream. all_gather and
// reduce_scatter along a dim that is not the outermost non-trivial one interleave the members' blocks through
// scratch with one strided copy per member (cudaMemcpy2DAsync: [member, outer, chunk] <-> [outer, member, chunk]).
// Bucketed dp all_reduce steps (bucket-dp) run one collective per step here: the same values, one launch each
// (packing a bucket into one collective is a later optimization).
//
//===----------------------------------------------------------------------===//
#include "runtime/comm/CudaCommunicator.h"
#include "runtime/cuda/CudaOps.h"

#include "kernels/cuda/Kernels.h"

using namespace meg;
using namespace meg::runtime;
using namespace meg::runtime::cuda;
namespace k = meg::kernels::cuda;

namespace {

CommAxis axisOf(const CudaStep &s) {
  return llvm::cantFail(s.symbolAttr("axis")) == "tp" ? CommAxis::TP : CommAxis::DP;
}
CommReduce reduceOf(const CudaStep &s) {
  return llvm::cantFail(s.symbolAttr("reduce")) == "max" ? CommReduce::Max : CommReduce::Sum;
}
int64_t membersOf(const CudaStep &s, CommAxis axis) { return axis == CommAxis::TP ? s.plan.meshTp : s.plan.meshDp; }

/// The communicator of a collective over more than one rank.
llvm::Expected<CudaCommunicator *> deviceComm(const CudaStep &s, Communicator &comm) {
  if (auto *c = dynamic_cast<CudaCommunicator *>(&comm))
    return c;
  return s.error("collectives of the cuda backend need a cuda communicator (one-gpu or nccl)");
}

llvm::Error copy(const CudaStep &s, void *dst, const void *src, int64_t bytes, cudaStream_t stream) {
  if (dst == src || bytes == 0)
    return llvm::Error::success();
  return s.check(cudaMemcpyAsync(dst, src, size_t(bytes), cudaMemcpyDeviceToDevice, stream), "collective copy");
}

/// outer and chunk of the shard shape `local` around `dim` (as the CPU adapter's Blocks).
void blocksOf(llvm::ArrayRef<int64_t> local, int dim, int64_t &outer, int64_t &chunk) {
  outer = chunk = 1;
  for (int d = 0; d < int(local.size()); ++d)
    (d < dim ? outer : chunk) *= local[size_t(d)];
}

} // namespace

llvm::Expected<CudaKernel> meg::runtime::cuda::cudaAllReduce(CudaStep &s) {
  if (auto err = validate(s, &cpu::cpuAllReduce))
    return err;
  CommAxis a = axisOf(s);
  CommReduce r = reduceOf(s);
  int64_t n = s.result().numel(), members = membersOf(s, a);
  return [=, &s](const CudaRunArgs &args) -> llvm::Error {
    if (auto err = copy(s, s.out[0], s.in[0], n * 4, args.stream))
      return err;
    if (members == 1)
      return llvm::Error::success();
    auto comm = deviceComm(s, args.comm);
    if (!comm)
      return comm.takeError();
    if (auto err = (*comm)->allReduceOn(args.stream, a, r, s.fout(), n))
      return s.error(llvm::toString(std::move(err)));
    return llvm::Error::success();
  };
}

llvm::Expected<CudaKernel> meg::runtime::cuda::cudaAllGather(CudaStep &s) {
  if (auto err = validate(s, &cpu::cpuAllGather))
    return err;
  CommAxis a = axisOf(s);
  int d = int(llvm::cantFail(s.intAttr("dim")));
  const TensorSlot &x = s.operand(0);
  int64_t members = membersOf(s, a), count = x.numel(), outer, chunk;
  blocksOf(x.shape, d, outer, chunk);
  if (outer > 1 && members > 1)
    s.scratchBytes = members * count * 4;
  return [=, &s](const CudaRunArgs &args) -> llvm::Error {
    if (members == 1)
      return copy(s, s.out[0], s.in[0], count * 4, args.stream);
    auto comm = deviceComm(s, args.comm);
    if (!comm)
      return comm.takeError();
    float *gathered = outer > 1 ? static_cast<float *>(args.scratch) : s.fout();
    if (auto err = (*comm)->allGatherOn(args.stream, a, s.f(0), count, gathered))
      return s.error(llvm::toString(std::move(err)));
    if (outer > 1)
      for (int64_t g = 0; g < members; ++g)
        if (auto err = s.check(cudaMemcpy2DAsync(s.fout() + g * chunk, size_t(members * chunk) * 4,
                                                 gathered + g * count, size_t(chunk) * 4, size_t(chunk) * 4,
                                                 size_t(outer), cudaMemcpyDeviceToDevice, args.stream),
                               "all_gather interleave"))
          return err;
    return llvm::Error::success();
  };
}

llvm::Expected<CudaKernel> meg::runtime::cuda::cudaReduceScatter(CudaStep &s) {
  if (auto err = validate(s, &cpu::cpuReduceScatter))
    return err;
  CommAxis a = axisOf(s);
  CommReduce r = reduceOf(s);
  int d = int(llvm::cantFail(s.intAttr("dim")));
  int64_t members = membersOf(s, a), count = s.result().numel(), outer, chunk;
  blocksOf(s.result().shape, d, outer, chunk);
  if (outer > 1 && members > 1)
    s.scratchBytes = members * count * 4;
  return [=, &s](const CudaRunArgs &args) -> llvm::Error {
    if (members == 1)
      return copy(s, s.out[0], s.in[0], count * 4, args.stream);
    auto comm = deviceComm(s, args.comm);
    if (!comm)
      return comm.takeError();
    const float *blocks = s.f(0);
    if (outer > 1) {
      float *packed = static_cast<float *>(args.scratch);
      for (int64_t g = 0; g < members; ++g)
        if (auto err = s.check(cudaMemcpy2DAsync(packed + g * count, size_t(chunk) * 4, s.f(0) + g * chunk,
                                                 size_t(members * chunk) * 4, size_t(chunk) * 4, size_t(outer),
                                                 cudaMemcpyDeviceToDevice, args.stream),
                               "reduce_scatter interleave"))
          return err;
      blocks = packed;
    }
    if (auto err = (*comm)->reduceScatterOn(args.stream, a, r, blocks, count, s.fout()))
      return s.error(llvm::toString(std::move(err)));
    return llvm::Error::success();
  };
}

// Replicated -> split: this rank keeps its block of the dim; no communication.
llvm::Expected<CudaKernel> meg::runtime::cuda::cudaShard(CudaStep &s) {
  if (auto err = validate(s, &cpu::cpuShard))
    return err;
  const TensorSlot &x = s.operand(0), &r = s.result();
  int d = int(llvm::cantFail(s.intAttr("dim")));
  int64_t start = r.offset[size_t(d)] - x.offset[size_t(d)], length = r.shape[size_t(d)];
  return [=, &s](const CudaRunArgs &args) -> llvm::Error {
    const TensorSlot &x = s.operand(0);
    return s.check(k::slice(s.in[0], x.shape.data(), int(x.shape.size()), d, start, length, s.out[0], args.stream));
  };
}
