//===- NcclCommunicator.cpp - one process per GPU over NCCL --------------------===//
//
// Bootstrap (see CudaCommunicator.h): rank 0 makes the ncclUniqueId, the job hands it to every process (MPI_Bcast
// or the TCP rendezvous of --ranks env), then ncclCommInitRank joins the world, and ncclCommSplit makes the tp groups
// (color = dp rank, key = tp rank) and dp groups (color = tp rank, key = dp rank). Group collectives are NCCL calls on
// the caller's stream. The world collectives on host data stage through a device buffer and synchronize (they run
// between steps: checkpoints, weight files).
//
//===----------------------------------------------------------------------===//
#include "runtime/comm/CudaCommunicator.h"

#include "llvm/Support/FormatVariadic.h"

#include <nccl.h>

#include <cstring>
#include <vector>

using namespace meg;
using namespace meg::runtime;
using namespace meg::runtime::cuda;

namespace {

llvm::Error failure(const llvm::Twine &what) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), "nccl communicator: " + what);
}

llvm::Error ncclFailure(const char *call, ncclResult_t r) {
  return failure(llvm::Twine(call) + ": " + ncclGetErrorString(r));
}

#define MEG_NCCL_TRY(call)                                                                                             \
  do {                                                                                                                 \
    ncclResult_t megNccl_ = (call);                                                                                    \
    if (megNccl_ != ncclSuccess)                                                                                       \
      return ncclFailure(#call, megNccl_);                                                                             \
  } while (0)

#define MEG_CUDART_TRY(call)                                                                                           \
  do {                                                                                                                 \
    cudaError_t megCuda_ = (call);                                                                                     \
    if (megCuda_ != cudaSuccess)                                                                                       \
      return failure(llvm::Twine(#call) + ": " + cudaGetErrorString(megCuda_));                                        \
  } while (0)

ncclRedOp_t ncclOp(CommReduce op) { return op == CommReduce::Max ? ncclMax : ncclSum; }

class NcclCommunicator final : public CudaCommunicator {
public:
  NcclCommunicator(int meshDp, int meshTp, int meshPp, int rank, int device, cudaStream_t stream)
      : CudaCommunicator(meshDp, meshTp, rank, stream, meshPp), device(device) {}
  ~NcclCommunicator() override {
    for (ncclComm_t c : {tpComm, dpComm, worldComm})
      if (c)
        ncclCommDestroy(c);
  }

  llvm::Error join(const ncclUniqueId &id) {
    MEG_CUDART_TRY(cudaSetDevice(device));
    MEG_NCCL_TRY(ncclCommInitRank(&worldComm, worldSize(), id, myRank));
    MEG_NCCL_TRY(ncclCommSplit(worldComm, axisColor(CommAxis::TP), axisRank(CommAxis::TP), &tpComm, nullptr));
    MEG_NCCL_TRY(ncclCommSplit(worldComm, axisColor(CommAxis::DP), axisRank(CommAxis::DP), &dpComm, nullptr));
    return llvm::Error::success();
  }

  llvm::Error allReduceOn(cudaStream_t stream, CommAxis axis, CommReduce op, float *data, int64_t count) override {
    MEG_NCCL_TRY(ncclAllReduce(data, data, size_t(count), ncclFloat, ncclOp(op), comm(axis), stream));
    return llvm::Error::success();
  }
  llvm::Error allGatherOn(cudaStream_t stream, CommAxis axis, const float *in, int64_t count, float *out) override {
    MEG_NCCL_TRY(ncclAllGather(in, out, size_t(count), ncclFloat, comm(axis), stream));
    return llvm::Error::success();
  }
  llvm::Error reduceScatterOn(cudaStream_t stream, CommAxis axis, CommReduce op, const float *in, int64_t count,
                              float *out) override {
    MEG_NCCL_TRY(ncclReduceScatter(in, out, size_t(count), ncclFloat, ncclOp(op), comm(axis), stream));
    return llvm::Error::success();
  }

  // Pipeline messages over the world communicator, as bytes. Unlike the CPU communicators' sends these are not
  // buffered: a large ncclSend completes only with its ncclRecv, which 1F1B's crossing messages need grouped (not
  // run on a GPU yet).
  llvm::Error sendOn(cudaStream_t stream, int peer, const void *data, int64_t bytes) override {
    MEG_NCCL_TRY(ncclSend(data, size_t(bytes), ncclUint8, peer, worldComm, stream));
    return llvm::Error::success();
  }
  llvm::Error recvOn(cudaStream_t stream, int peer, void *data, int64_t bytes) override {
    MEG_NCCL_TRY(ncclRecv(data, size_t(bytes), ncclUint8, peer, worldComm, stream));
    return llvm::Error::success();
  }

  void barrier() override {
    // A one-element all-reduce over the world, waited for: every rank has reached it when it completes.
    float *one = nullptr;
    if (cudaSetDevice(device) != cudaSuccess || cudaMallocAsync(&one, sizeof(float), defaultStream) != cudaSuccess)
      return;
    ncclAllReduce(one, one, 1, ncclFloat, ncclSum, worldComm, defaultStream);
    cudaFreeAsync(one, defaultStream);
    cudaStreamSynchronize(defaultStream);
  }

  llvm::Error gatherToRoot(llvm::ArrayRef<float> in, std::vector<float> &out, std::vector<int64_t> &counts) override {
    out.clear();
    counts.clear();
    MEG_CUDART_TRY(cudaSetDevice(device));
    // Counts first (every rank learns them), then one send per rank to the root inside one NCCL group.
    std::vector<int64_t> all(static_cast<size_t>(worldSize()));
    int64_t mine = int64_t(in.size());
    if (auto err = stage(all.data(), &mine, sizeof(int64_t), [&](void *dev) {
          return ncclAllGather(static_cast<char *>(dev) + myRank * sizeof(int64_t), dev, 1, ncclInt64, worldComm,
                               defaultStream);
        }, int64_t(all.size() * sizeof(int64_t)), myRank * int64_t(sizeof(int64_t))))
      return err;
    int64_t total = 0;
    for (int64_t c : all)
      total += c;
    float *dev = nullptr;
    size_t bytes = size_t(myRank == 0 ? total : mine) * sizeof(float);
    MEG_CUDART_TRY(cudaMallocAsync(&dev, std::max<size_t>(bytes, 4), defaultStream));
    cudaError_t copyIn = myRank == 0 ? cudaSuccess
                                     : cudaMemcpyAsync(dev, in.data(), bytes, cudaMemcpyHostToDevice, defaultStream);
    ncclResult_t r = ncclSuccess;
    if (copyIn == cudaSuccess) {
      r = ncclGroupStart();
      int64_t offset = 0;
      for (int src = 0; src < worldSize() && r == ncclSuccess; ++src) {
        if (myRank == 0 && src != 0 && all[size_t(src)] > 0)
          r = ncclRecv(dev + offset, size_t(all[size_t(src)]), ncclFloat, src, worldComm, defaultStream);
        if (myRank == src && src != 0 && mine > 0)
          r = ncclSend(dev, size_t(mine), ncclFloat, 0, worldComm, defaultStream);
        offset += all[size_t(src)];
      }
      ncclResult_t end = ncclGroupEnd();
      if (r == ncclSuccess)
        r = end;
    }
    if (myRank == 0 && r == ncclSuccess) {
      out.resize(size_t(total));
      std::copy(in.begin(), in.end(), out.begin());
      if (total > mine)
        copyIn = cudaMemcpyAsync(out.data() + mine, dev + mine, size_t(total - mine) * sizeof(float),
                                 cudaMemcpyDeviceToHost, defaultStream);
      counts = all;
    }
    cudaFreeAsync(dev, defaultStream);
    cudaError_t sync = cudaStreamSynchronize(defaultStream);
    if (r != ncclSuccess)
      return ncclFailure("gatherToRoot", r);
    MEG_CUDART_TRY(copyIn);
    MEG_CUDART_TRY(sync);
    return llvm::Error::success();
  }

  llvm::Error broadcastFromRoot(float *data, int64_t count) override {
    MEG_CUDART_TRY(cudaSetDevice(device));
    int64_t bytes = count * int64_t(sizeof(float));
    return stage(data, data, size_t(bytes), [&](void *dev) {
      return ncclBroadcast(dev, dev, size_t(count), ncclFloat, 0, worldComm, defaultStream);
    }, bytes, 0);
  }

private:
  // Groups lie within a pipeline stage.
  int axisColor(CommAxis axis) const {
    return axis == CommAxis::TP ? myRank / meshTp : myRank / (meshDp * meshTp) * meshTp + myRank % meshTp;
  }
  ncclComm_t comm(CommAxis axis) const { return axis == CommAxis::TP ? tpComm : dpComm; }

  /// Copies inBytes of `in` to a device buffer of devBytes at inOffset, runs `call` on it and copies the whole
  /// buffer back to `out`; synchronizes.
  template <typename Fn>
  llvm::Error stage(void *out, const void *in, size_t inBytes, Fn &&call, int64_t devBytes, int64_t inOffset) {
    char *dev = nullptr;
    MEG_CUDART_TRY(cudaMallocAsync(reinterpret_cast<void **>(&dev), size_t(std::max<int64_t>(devBytes, 4)),
                                   defaultStream));
    cudaError_t err = cudaMemcpyAsync(dev + inOffset, in, inBytes, cudaMemcpyHostToDevice, defaultStream);
    ncclResult_t r = err == cudaSuccess ? call(dev) : ncclSuccess;
    if (err == cudaSuccess && r == ncclSuccess)
      err = cudaMemcpyAsync(out, dev, size_t(devBytes), cudaMemcpyDeviceToHost, defaultStream);
    cudaFreeAsync(dev, defaultStream);
    cudaError_t sync = cudaStreamSynchronize(defaultStream);
    if (r != ncclSuccess)
      return ncclFailure("host collective", r);
    MEG_CUDART_TRY(err);
    MEG_CUDART_TRY(sync);
    return llvm::Error::success();
  }

  int device;
  ncclComm_t worldComm = nullptr, tpComm = nullptr, dpComm = nullptr;
};

} // namespace

static_assert(sizeof(ncclUniqueId) == sizeof(NcclId), "NcclId must hold an ncclUniqueId");

llvm::Expected<NcclId> meg::runtime::cuda::newNcclId() {
  ncclUniqueId id{};
  MEG_NCCL_TRY(ncclGetUniqueId(&id));
  NcclId bytes;
  std::memcpy(bytes.data(), &id, sizeof(id));
  return bytes;
}

llvm::Error meg::runtime::cuda::checkRankDevice(int rank, int localRank) {
  int devices = 0;
  if (cudaError_t err = cudaGetDeviceCount(&devices))
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   llvm::formatv("rank {0}: no usable CUDA device ({1}: {2})", rank,
                                                 cudaGetErrorName(err), cudaGetErrorString(err)));
  if (localRank >= devices)
    return llvm::createStringError(
        llvm::inconvertibleErrorCode(),
        llvm::formatv("rank {0}: local rank {1} has no GPU (this host shows {2} device{3}; one process per GPU)", rank,
                      localRank, devices, devices == 1 ? "" : "s"));
  return llvm::Error::success();
}

llvm::Expected<std::unique_ptr<CudaCommunicator>>
meg::runtime::cuda::createNcclCommunicator(const NcclId &id, int meshDp, int meshTp, int rank, int device,
                                           cudaStream_t stream, int meshPp) {
  ncclUniqueId nid;
  std::memcpy(&nid, id.data(), sizeof(nid));
  auto comm = std::make_unique<NcclCommunicator>(meshDp, meshTp, meshPp, rank, device, stream);
  if (auto err = comm->join(nid))
    return std::move(err);
  return std::unique_ptr<CudaCommunicator>(std::move(comm));
}
