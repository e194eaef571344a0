//===- CudaCommunicator.h - collectives on device buffers -------*- C++ -*-===//
//
// Communicators for the CUDA backend: buffers are device pointers and collectives are enqueued on a CUDA stream
// (the backend's), never synchronizing the host. The backend's collective steps call the *On variants with its
// stream; the plain Communicator calls run on the stream given at creation.
//
//   OneGpuCommunicator: every rank of a plan on ONE device (RankThreads: one thread, backend and stream per rank).
//     A collective is a host rendezvous of the group (std::barrier), CUDA events ordering the members' streams, and
//     a kernel that reads every member's buffer and sums in member order (kernels/cuda/Collectives.cu): results are
//     bit-identical on every member and run to run, as InProcessCommunicator's. The world collectives on host data
//     (barrier, gatherToRoot, broadcastFromRoot) are InProcessCommunicator's.
//   NcclCommunicator: one process per GPU, joined from an ncclUniqueId that rank 0 makes (newNcclId) and the job
//     hands to every process: over MPI_Bcast (`mpirun ... megrun --ranks mpi --backend cuda`) or over the TCP
//     rendezvous of a torchrun / Slurm launch (`--ranks env`, runtime/comm/TcpRendezvous.h); runtime/train/Job.cpp
//     does that. The world communicator is split into the tp groups (color dp rank) and dp groups (color tp rank).
//     NCCL's sums are deterministic for a fixed topology and algorithm but not in member order.
//
// How megrun picks: --backend cuda --ranks threads -> one OneGpuWorld over the plan's mesh and
// createOneGpuCommunicator(world, rank, stream) per rank thread, all on device 0; --backend cuda --ranks mpi|env ->
// checkRankDevice(local rank), then createNcclCommunicator(id, dp, tp, rank, device, stream) with
// BackendPlace{rank, localRanks = 1, device = local rank}. A world of one rank needs no communicator of its own: the
// backend copies for groups of one (SingleRankCommunicator is fine).
//
//===----------------------------------------------------------------------===//
#ifndef MEG_RUNTIME_COMM_CUDACOMMUNICATOR_H
#define MEG_RUNTIME_COMM_CUDACOMMUNICATOR_H

#include "runtime/comm/Communicator.h"

#include "llvm/Support/Error.h"

#include <cuda_runtime_api.h>

#include <array>
#include <cstdint>
#include <memory>

namespace meg::runtime::cuda {

class CudaCommunicator : public Communicator {
public:
  CudaCommunicator(int meshDp, int meshTp, int rank, cudaStream_t stream, int meshPp = 1)
      : Communicator(meshDp, meshTp, rank, meshPp), defaultStream(stream) {}

  virtual llvm::Error allReduceOn(cudaStream_t stream, CommAxis axis, CommReduce op, float *data, int64_t count) = 0;
  virtual llvm::Error allGatherOn(cudaStream_t stream, CommAxis axis, const float *in, int64_t count, float *out) = 0;
  virtual llvm::Error reduceScatterOn(cudaStream_t stream, CommAxis axis, CommReduce op, const float *in,
                                      int64_t count, float *out) = 0;

  /// Pipeline point-to-point on device buffers (NCCL: ncclSend / ncclRecv); the one-GPU world has none.
  virtual llvm::Error sendOn(cudaStream_t, int peer, const void *data, int64_t bytes) {
    return Communicator::send(peer, data, bytes);
  }
  virtual llvm::Error recvOn(cudaStream_t, int peer, void *data, int64_t bytes) {
    return Communicator::recv(peer, data, bytes);
  }

  CudaCommunicator *cudaCollectives() override { return this; }

  llvm::Error allReduce(CommAxis axis, CommReduce op, float *data, int64_t count) override {
    return allReduceOn(defaultStream, axis, op, data, count);
  }
  llvm::Error allGather(CommAxis axis, const float *in, int64_t count, float *out) override {
    return allGatherOn(defaultStream, axis, in, count, out);
  }
  llvm::Error reduceScatter(CommAxis axis, CommReduce op, const float *in, int64_t count, float *out) override {
    return reduceScatterOn(defaultStream, axis, op, in, count, out);
  }

protected:
  cudaStream_t defaultStream;
};

/// The ranks of one process on one device (OneGpuCommunicator's shared state).
class OneGpuWorld;
/// A world of meshDp x meshTp ranks on `device`.
llvm::Expected<std::shared_ptr<OneGpuWorld>> createOneGpuWorld(int meshDp, int meshTp, int device);
std::unique_ptr<CudaCommunicator> createOneGpuCommunicator(std::shared_ptr<OneGpuWorld> world, int rank,
                                                           cudaStream_t stream);

/// The 128 bytes of an ncclUniqueId, as the job moves them between processes.
using NcclId = std::array<uint8_t, 128>;
/// Rank 0: a fresh id for the world (ncclGetUniqueId).
llvm::Expected<NcclId> newNcclId();
/// Error unless this process can use device `localRank` (one GPU per process): no usable CUDA device at all, or
/// `rank`'s LOCAL_RANK beyond the devices this host shows.
llvm::Error checkRankDevice(int rank, int localRank);
/// Joins the NCCL world of `id` as mesh rank `rank` of meshDp x meshTp on `device` (blocks until every rank has
/// joined). `stream` runs the world collectives on host data (barrier, gatherToRoot, broadcastFromRoot).
llvm::Expected<std::unique_ptr<CudaCommunicator>> createNcclCommunicator(const NcclId &id, int meshDp, int meshTp,
                                                                         int rank, int device, cudaStream_t stream,
                                                                         int meshPp = 1);

} // namespace meg::runtime::cuda

#endif
