//===- CollectiveOps.cpp - CUDA launches: collectives over a mesh axis ---------===//
//
// On device buffers: a group of one rank is a device copy; a larger group needs the rank's device communicator
// (CudaRunArgs::comm: OneGpuCommunicator or NcclCommunicator), called with the backend's stream. all_gather and
// reduce_scatter along a dim that is not the outermost non-trivial one interleave the members' blocks through
// scratch with one strided copy per member (cudaMemcpy2DAsync: [member, outer, chunk] <-> [outer, member, chunk]).
// all_gather moves 4-byte words (f32 or i32) bit for bit. all_reduce_bucket (a dp gradient bucket) is one
// collective, as on the CPU: pack the operands into scratch, reduce once, unpack into the results.
// reduce_scatter_bucket packs rank-major (group rank g's shard of every member, then g + 1's), reduce-scatters once
// and unpacks this rank's block into the results.
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

/// The device communicator of a collective over more than one rank.
llvm::Expected<CudaCommunicator *> deviceComm(const CudaStep &s, const CudaRunArgs &run) {
  if (run.comm)
    return run.comm;
  return s.error("collectives of the cuda backend need a cuda communicator (one-gpu or nccl)");
}

llvm::Error copy(const CudaStep &s, void *dst, const void *src, int64_t bytes, cudaStream_t stream) {
  if (dst == src || bytes == 0)
    return llvm::Error::success();
  return s.check(cudaMemcpyAsync(dst, src, size_t(bytes), cudaMemcpyDeviceToDevice, stream), "collective copy");
}

/// The shards of a reduce_scatter's operand ([outer, member, chunk]) as contiguous blocks: group rank g's shard
/// (a.count floats) at dst + g * stride, one strided copy per member.
llvm::Error gatherShards(const CudaStep &s, const ReduceScatterArgs &a, const float *src, float *dst, int64_t stride,
                         cudaStream_t stream) {
  for (int64_t g = 0; g < a.members; ++g)
    if (auto err = s.check(cudaMemcpy2DAsync(dst + g * stride, size_t(a.chunk) * 4, src + g * a.chunk,
                                             size_t(a.members * a.chunk) * 4, size_t(a.chunk) * 4, size_t(a.outer),
                                             cudaMemcpyDeviceToDevice, stream),
                           "reduce_scatter interleave"))
      return err;
  return llvm::Error::success();
}

} // namespace

llvm::Expected<CudaKernel> meg::runtime::cuda::launch(const AllReduceArgs &a, CudaStep &s) {
  return [a, &s](const CudaRunArgs &run) -> llvm::Error {
    if (auto err = copy(s, s.out[0], s.in[0], a.n * 4, run.stream))
      return err;
    if (a.members == 1)
      return llvm::Error::success();
    auto comm = deviceComm(s, run);
    if (!comm)
      return comm.takeError();
    return s.error((*comm)->allReduceOn(run.stream, a.axis, a.reduce, s.fout(), a.n));
  };
}

llvm::Expected<CudaKernel> meg::runtime::cuda::launch(const AllReduceBucketArgs &a, CudaStep &s) {
  if (a.counts.size() == 1)
    return launch(AllReduceArgs{a.axis, a.reduce, a.counts[0], a.members}, s);
  s.scratchBytes = a.total * 4;
  return [a, &s](const CudaRunArgs &run) -> llvm::Error {
    float *packed = static_cast<float *>(run.scratch);
    for (size_t i = 0; i < a.counts.size(); ++i)
      if (auto err = copy(s, packed + a.offsets[i], s.in[i], a.counts[i] * 4, run.stream))
        return err;
    if (a.members > 1) {
      auto comm = deviceComm(s, run);
      if (!comm)
        return comm.takeError();
      if (auto err = (*comm)->allReduceOn(run.stream, a.axis, a.reduce, packed, a.total))
        return s.error(std::move(err));
    }
    for (size_t i = 0; i < a.counts.size(); ++i)
      if (auto err = copy(s, s.out[i], packed + a.offsets[i], a.counts[i] * 4, run.stream))
        return err;
    return llvm::Error::success();
  };
}

llvm::Expected<CudaKernel> meg::runtime::cuda::launch(const AllGatherArgs &a, CudaStep &s) {
  if (a.outer > 1 && a.members > 1)
    s.scratchBytes = a.members * a.count * 4;
  return [a, &s](const CudaRunArgs &run) -> llvm::Error {
    if (a.members == 1)
      return copy(s, s.out[0], s.in[0], a.count * 4, run.stream);
    auto comm = deviceComm(s, run);
    if (!comm)
      return comm.takeError();
    float *gathered = a.outer > 1 ? static_cast<float *>(run.scratch) : s.fout();
    if (auto err = (*comm)->allGatherOn(run.stream, a.axis, s.f(0), a.count, gathered))
      return s.error(std::move(err));
    if (a.outer > 1)
      for (int64_t g = 0; g < a.members; ++g)
        if (auto err = s.check(cudaMemcpy2DAsync(s.fout() + g * a.chunk, size_t(a.members * a.chunk) * 4,
                                                 gathered + g * a.count, size_t(a.chunk) * 4, size_t(a.chunk) * 4,
                                                 size_t(a.outer), cudaMemcpyDeviceToDevice, run.stream),
                               "all_gather interleave"))
          return err;
    return llvm::Error::success();
  };
}

llvm::Expected<CudaKernel> meg::runtime::cuda::launch(const ReduceScatterArgs &a, CudaStep &s) {
  if (a.outer > 1 && a.members > 1)
    s.scratchBytes = a.members * a.count * 4;
  return [a, &s](const CudaRunArgs &run) -> llvm::Error {
    if (a.members == 1)
      return copy(s, s.out[0], s.in[0], a.count * 4, run.stream);
    auto comm = deviceComm(s, run);
    if (!comm)
      return comm.takeError();
    const float *blocks = s.f(0);
    if (a.outer > 1) {
      float *packed = static_cast<float *>(run.scratch);
      if (auto err = gatherShards(s, a, s.f(0), packed, a.count, run.stream))
        return err;
      blocks = packed;
    }
    return s.error((*comm)->reduceScatterOn(run.stream, a.axis, a.reduce, blocks, a.count, s.fout()));
  };
}

llvm::Expected<CudaKernel> meg::runtime::cuda::launch(const ReduceScatterBucketArgs &a, CudaStep &s) {
  if (a.parts.size() == 1 || a.members == 1) {
    if (a.parts.size() == 1)
      return launch(a.parts[0], s);
    // A group of one: each result is its operand.
    return [a, &s](const CudaRunArgs &run) -> llvm::Error {
      for (size_t i = 0; i < a.parts.size(); ++i)
        if (auto err = copy(s, s.out[i], s.in[i], a.parts[i].count * 4, run.stream))
          return err;
      return llvm::Error::success();
    };
  }
  // The packed blocks of every group rank, then this rank's reduced block.
  s.scratchBytes = (a.members + 1) * a.total * 4;
  return [a, &s](const CudaRunArgs &run) -> llvm::Error {
    auto comm = deviceComm(s, run);
    if (!comm)
      return comm.takeError();
    float *packed = static_cast<float *>(run.scratch), *mine = packed + a.members * a.total;
    for (size_t i = 0; i < a.parts.size(); ++i)
      if (auto err = gatherShards(s, a.parts[i], s.f(i), packed + a.offsets[i], a.total, run.stream))
        return err;
    if (auto err = (*comm)->reduceScatterOn(run.stream, a.axis, a.reduce, packed, a.total, mine))
      return s.error(std::move(err));
    for (size_t i = 0; i < a.parts.size(); ++i)
      if (auto err = copy(s, s.out[i], mine + a.offsets[i], a.parts[i].count * 4, run.stream))
        return err;
    return llvm::Error::success();
  };
}

// Pipeline point-to-point on the backend's stream (NCCL: ncclSend / ncclRecv).
llvm::Expected<CudaKernel> meg::runtime::cuda::launch(const SendArgs &a, CudaStep &s) {
  return [a, &s](const CudaRunArgs &run) -> llvm::Error {
    if (auto err = copy(s, s.out[0], s.in[0], a.bytes, run.stream))
      return err;
    auto comm = deviceComm(s, run);
    if (!comm)
      return comm.takeError();
    return s.error((*comm)->sendOn(run.stream, a.peer, s.in[0], a.bytes));
  };
}

llvm::Expected<CudaKernel> meg::runtime::cuda::launch(const RecvArgs &a, CudaStep &s) {
  return [a, &s](const CudaRunArgs &run) -> llvm::Error {
    auto comm = deviceComm(s, run);
    if (!comm)
      return comm.takeError();
    return s.error((*comm)->recvOn(run.stream, a.peer, s.out[0], a.bytes));
  };
}
