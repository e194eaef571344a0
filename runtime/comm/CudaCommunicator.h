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
//   NcclCommunicator: one process per GPU. Bootstrap from the launcher's environment (torchrun: RANK, WORLD_SIZE,
//     LOCAL_RANK; Slurm: SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID) plus MASTER_ADDR and MASTER_PORT: rank 0 makes
//     the ncclUniqueId and hands it to the others over a small TCP rendezvous on MASTER_ADDR:(MEG_NCCL_PORT, default
//     MASTER_PORT + 1, since torchrun's own store listens on MASTER_PORT). The world communicator is split into the
//     tp groups (color dp rank) and dp groups (color tp rank). NCCL's sums are deterministic for a fixed topology
//     and algorithm but not in member order.
//
// How megrun picks (for the megrun owner): --backend cuda --ranks threads -> one OneGpuWorld over the plan's mesh
// and createOneGpuCommunicator(world, rank, stream) per rank thread, all on device 0 (or --device); --backend cuda
// --ranks nccl (or mpi-launched with CUDA) -> ncclEnvironment() then createNcclCommunicator(env, dp, tp, device,
// stream) with BackendPlace{rank = env.rank, localRanks = 1, device = env.localRank}. A world of one rank needs no
// communicator of its own: the backend copies for groups of one (SingleRankCommunicator is fine).
//
//===----------------------------------------------------------------------===//
#ifndef MEG_RUNTIME_COMM_CUDACOMMUNICATOR_H
#define MEG_RUNTIME_COMM_CUDACOMMUNICATOR_H

#include "runtime/comm/Communicator.h"

#include "llvm/Support/Error.h"

#include <cuda_runtime_api.h>

#include <memory>
#include <string>

namespace meg::runtime::cuda {

class CudaCommunicator : public Communicator {
public:
  CudaCommunicator(int meshDp, int meshTp, int rank, cudaStream_t stream)
      : Communicator(meshDp, meshTp, rank), defaultStream(stream) {}

  virtual llvm::Error allReduceOn(cudaStream_t stream, CommAxis axis, CommReduce op, float *data, int64_t count) = 0;
  virtual llvm::Error allGatherOn(cudaStream_t stream, CommAxis axis, const float *in, int64_t count, float *out) = 0;
  virtual llvm::Error reduceScatterOn(cudaStream_t stream, CommAxis axis, CommReduce op, const float *in,
                                      int64_t count, float *out) = 0;

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

/// Where this process sits in a multi-process launch.
struct NcclEnvironment {
  int rank = 0, worldSize = 1, localRank = 0;
  std::string masterAddr;
  int port = 0; ///< the id rendezvous port
};
/// Reads RANK/WORLD_SIZE/LOCAL_RANK (or SLURM_PROCID/SLURM_NTASKS/SLURM_LOCALID), MASTER_ADDR, MASTER_PORT and
/// MEG_NCCL_PORT; an error names what is missing.
llvm::Expected<NcclEnvironment> ncclEnvironment();
/// Joins the NCCL world of `env` on `device` (blocks until every rank has joined); meshDp * meshTp must be
/// env.worldSize and the mesh rank is env.rank.
llvm::Expected<std::unique_ptr<CudaCommunicator>> createNcclCommunicator(const NcclEnvironment &env, int meshDp,
                                                                         int meshTp, int device, cudaStream_t stream);

} // namespace meg::runtime::cuda

#endif
