//===- OneGpuCommunicator.cpp - every rank of a plan on one GPU ----------------===//
//
// A collective of group G on member r (stream s_r):
//   1. publish (in, out, count), record ready_r on s_r; group rendezvous (host barrier);
//   2. s_r waits for every member's ready event, then enqueues its share of the work: all_reduce reduces the
//      elements [r * count / |G|, (r + 1) * count / |G|) of every member's buffer in member order and writes them to
//      every member's buffer (disjoint ranges, so no member races another); all_gather copies every member's `in`
//      into its own `out`; reduce_scatter reduces every member's block r into its own `out`;
//   3. record done_r; group rendezvous; s_r waits for every member's done event, so nobody reuses a buffer another
//      member still reads or writes.
// The host never waits for the device. Events are per (axis, rank) and re-recorded only after both rendezvous of
// the group, when every member has already enqueued its waits on the previous recording.
//
//===----------------------------------------------------------------------===//
#include "runtime/comm/CudaCommunicator.h"

#include "kernels/cuda/Kernels.h"

#include "llvm/Support/FormatVariadic.h"

#include <barrier>
#include <vector>

using namespace meg;
using namespace meg::runtime;
using namespace meg::runtime::cuda;

namespace meg::runtime::cuda {

class OneGpuWorld {
public:
  OneGpuWorld(int dp, int tp, int device)
      : dp(dp), tp(tp), device(device), slots(size_t(dp) * tp), ready(2 * size_t(dp) * tp), done(2 * size_t(dp) * tp),
        host(InProcessCommunicator::createWorld(dp, tp)) {
    for (int d = 0; d < dp; ++d)
      tpBarriers.push_back(std::make_unique<std::barrier<>>(tp));
    for (int t = 0; t < tp; ++t)
      dpBarriers.push_back(std::make_unique<std::barrier<>>(dp));
  }
  ~OneGpuWorld() {
    for (cudaEvent_t e : ready)
      if (e)
        cudaEventDestroy(e);
    for (cudaEvent_t e : done)
      if (e)
        cudaEventDestroy(e);
  }

  struct Slot {
    const float *in = nullptr;
    float *out = nullptr;
    int64_t count = 0;
  };

  std::vector<int> group(CommAxis axis, int rank) const { return meshGroup(dp, tp, axis, rank); }
  std::barrier<> &groupBarrier(CommAxis axis, int rank) {
    return axis == CommAxis::TP ? *tpBarriers[size_t(rank / tp)] : *dpBarriers[size_t(rank % tp)];
  }

  /// Index of (axis, rank) in ready/done: each axis has its own events, so collectives of the two axes never wait
  /// on each other's recordings.
  size_t eventIndex(CommAxis axis, int rank) const { return size_t(axis == CommAxis::TP) * slots.size() + size_t(rank); }

  const int dp, tp, device;
  std::vector<Slot> slots;
  std::vector<cudaEvent_t> ready, done;
  std::vector<std::unique_ptr<std::barrier<>>> tpBarriers, dpBarriers;
  std::shared_ptr<InProcessWorld> host;
};

} // namespace meg::runtime::cuda

namespace {

llvm::Error cudaFailure(const llvm::Twine &what, cudaError_t err) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), what + ": " + cudaGetErrorString(err));
}

class OneGpuCommunicator final : public CudaCommunicator {
public:
  OneGpuCommunicator(std::shared_ptr<OneGpuWorld> w, int rank, cudaStream_t stream)
      : CudaCommunicator(w->dp, w->tp, rank, stream), world(std::move(w)), hostComm(world->host, rank) {}

  llvm::Error allReduceOn(cudaStream_t stream, CommAxis axis, CommReduce op, float *data, int64_t count) override {
    return collective(stream, axis, data, data, count, "all_reduce",
                      [&](const std::vector<int> &members, int me) -> cudaError_t {
                        int64_t g = int64_t(members.size());
                        int64_t lo = count * me / g, hi = count * (me + 1) / g;
                        std::vector<const float *> in;
                        std::vector<float *> out;
                        for (int m : members) {
                          in.push_back(world->slots[size_t(m)].in);
                          out.push_back(world->slots[size_t(m)].out);
                        }
                        return kernels::cuda::reduceMembers(op == CommReduce::Max, in.data(), int(g), lo, out.data(),
                                                            int(g), lo, hi - lo, stream);
                      });
  }

  llvm::Error allGatherOn(cudaStream_t stream, CommAxis axis, const float *in, int64_t count, float *out) override {
    return collective(stream, axis, in, out, count, "all_gather",
                      [&](const std::vector<int> &members, int) -> cudaError_t {
                        for (size_t g = 0; g < members.size(); ++g)
                          if (cudaError_t err = cudaMemcpyAsync(out + int64_t(g) * count,
                                                                world->slots[size_t(members[g])].in,
                                                                size_t(count) * sizeof(float),
                                                                cudaMemcpyDeviceToDevice, stream))
                            return err;
                        return cudaSuccess;
                      });
  }

  llvm::Error reduceScatterOn(cudaStream_t stream, CommAxis axis, CommReduce op, const float *in, int64_t count,
                              float *out) override {
    return collective(stream, axis, in, out, count, "reduce_scatter",
                      [&](const std::vector<int> &members, int me) -> cudaError_t {
                        std::vector<const float *> ins;
                        for (int m : members)
                          ins.push_back(world->slots[size_t(m)].in);
                        return kernels::cuda::reduceMembers(op == CommReduce::Max, ins.data(), int(members.size()),
                                                            int64_t(me) * count, &out, 1, 0, count, stream);
                      });
  }

  void barrier() override { hostComm.barrier(); }
  llvm::Error gatherToRoot(llvm::ArrayRef<float> in, std::vector<float> &out, std::vector<int64_t> &counts) override {
    return hostComm.gatherToRoot(in, out, counts);
  }
  llvm::Error broadcastFromRoot(float *data, int64_t count) override {
    return hostComm.broadcastFromRoot(data, count);
  }

private:
  template <typename Fn>
  llvm::Error collective(cudaStream_t stream, CommAxis axis, const float *in, float *out, int64_t count,
                         const char *what, Fn &&work) {
    OneGpuWorld &w = *world;
    std::vector<int> members = w.group(axis, myRank);
    int me = axisRank(axis);
    if (members.size() == 1) {
      if (in == out || std::string_view(what) == "all_reduce")
        return llvm::Error::success();
      if (cudaError_t err = cudaMemcpyAsync(out, in, size_t(count) * sizeof(float), cudaMemcpyDeviceToDevice, stream))
        return cudaFailure(what, err);
      return llvm::Error::success();
    }
    if (cudaError_t err = cudaSetDevice(w.device))
      return cudaFailure(what, err);
    cudaError_t status = cudaSuccess;
    cudaEvent_t &ready = w.ready[w.eventIndex(axis, myRank)], &done = w.done[w.eventIndex(axis, myRank)];
    if (!ready)
      status = cudaEventCreateWithFlags(&ready, cudaEventDisableTiming);
    if (!done && status == cudaSuccess)
      status = cudaEventCreateWithFlags(&done, cudaEventDisableTiming);
    w.slots[size_t(myRank)] = {in, out, count};
    if (status == cudaSuccess)
      status = cudaEventRecord(ready, stream);
    std::barrier<> &bar = w.groupBarrier(axis, myRank);
    bar.arrive_and_wait();
    bool agree = llvm::all_of(members, [&](int m) { return w.slots[size_t(m)].count == count; });
    // A member whose set-up failed still takes part in both rendezvous (the others would hang), but enqueues nothing.
    if (agree && status == cudaSuccess) {
      for (int m : members)
        if (status == cudaSuccess)
          status = cudaStreamWaitEvent(stream, w.ready[w.eventIndex(axis, m)], 0);
      if (status == cudaSuccess)
        status = work(members, me);
      if (status == cudaSuccess)
        status = cudaEventRecord(done, stream);
    }
    bar.arrive_and_wait();
    if (agree && status == cudaSuccess)
      for (int m : members)
        if (status == cudaSuccess && w.done[w.eventIndex(axis, m)])
          status = cudaStreamWaitEvent(stream, w.done[w.eventIndex(axis, m)], 0);
    if (!agree)
      return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                     llvm::formatv("{0}: members of the {1} group of rank {2} passed different counts",
                                                   what, axis == CommAxis::TP ? "tp" : "dp", myRank));
    if (status != cudaSuccess)
      return cudaFailure(what, status);
    return llvm::Error::success();
  }

  std::shared_ptr<OneGpuWorld> world;
  InProcessCommunicator hostComm;
};

} // namespace

llvm::Expected<std::shared_ptr<OneGpuWorld>> meg::runtime::cuda::createOneGpuWorld(int meshDp, int meshTp,
                                                                                   int device) {
  if (meshDp < 1 || meshTp < 1 || meshDp > kernels::cuda::kMaxMembers || meshTp > kernels::cuda::kMaxMembers)
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   llvm::formatv("one-gpu communicator: mesh {0} x {1} is outside 1..{2} per axis",
                                                 meshDp, meshTp, kernels::cuda::kMaxMembers));
  int devices = 0;
  if (cudaError_t err = cudaGetDeviceCount(&devices))
    return cudaFailure("one-gpu communicator: no usable CUDA device (cudaGetDeviceCount)", err);
  if (device < 0 || device >= devices)
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   llvm::formatv("one-gpu communicator: device {0} does not exist ({1} visible)",
                                                 device, devices));
  return std::make_shared<OneGpuWorld>(meshDp, meshTp, device);
}

std::unique_ptr<CudaCommunicator> meg::runtime::cuda::createOneGpuCommunicator(std::shared_ptr<OneGpuWorld> world,
                                                                               int rank, cudaStream_t stream) {
  return std::make_unique<OneGpuCommunicator>(std::move(world), rank, stream);
}
