//===- Communicator.h - collectives over the dp x tp mesh -------*- C++ -*-===//
//
// A Communicator connects the ranks of a dp x tp mesh (rank = dpRank * tp + tpRank). A collective runs over one mesh
// axis: the group of a rank along TP is the tp ranks sharing its dp coordinate, along DP the dp ranks sharing its tp
// coordinate. Buffers are float, in the backend's memory space (host memory for the CPU backend). Every member of a
// group must call the same collectives in the same order with the same counts.
//
// Besides the group collectives the plan's steps use, two world collectives move host data between the root (rank
// 0, which writes every output file) and the others: gatherToRoot (shards to save) and broadcastFromRoot.
//
// Implementations: SingleRankCommunicator (world 1: collectives are copies), InProcessCommunicator (ranks are
// threads of one process sharing memory), MpiCommunicator (runtime/comm/MpiCommunicator.h: one process per rank).
// In-process reductions sum in group-rank order, so results never depend on thread timing and every member gets
// bit-identical values.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_RUNTIME_COMM_COMMUNICATOR_H
#define MEG_RUNTIME_COMM_COMMUNICATOR_H

#include "runtime/comm/Watchdog.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

namespace meg::runtime {

namespace cuda {
class CudaCommunicator;
} // namespace cuda

enum class CommAxis : uint8_t { DP = 0, TP = 1 };
enum class CommReduce : uint8_t { Sum, Max };

class Communicator {
public:
  /// meshPp > 1: pipeline stages of dp x tp ranks each, rank = (stage * dp + dpRank) * tp + tpRank; the groups of
  /// the collectives lie within a stage.
  Communicator(int meshDp, int meshTp, int rank, int meshPp = 1)
      : meshDp(meshDp), meshTp(meshTp), meshPp(meshPp), myRank(rank) {}
  virtual ~Communicator();

  int rank() const { return myRank; }
  int worldSize() const { return meshDp * meshTp * meshPp; }
  int dp() const { return meshDp; }
  int tp() const { return meshTp; }
  int pp() const { return meshPp; }
  /// Members of this rank's group along `axis`, and this rank's index in it.
  int axisSize(CommAxis axis) const { return axis == CommAxis::TP ? meshTp : meshDp; }
  int axisRank(CommAxis axis) const { return axis == CommAxis::TP ? myRank % meshTp : (myRank / meshTp) % meshDp; }
  /// The rank of the same dp and tp coordinates on pipeline stage `stage`.
  int stageRank(int stage) const { return myRank % (meshDp * meshTp) + stage * meshDp * meshTp; }

  /// data[0, count) = reduction over the group of every member's data (in place).
  virtual llvm::Error allReduce(CommAxis axis, CommReduce op, float *data, int64_t count) = 0;
  /// out[g * count, (g + 1) * count) = member g's in[0, count), for every group rank g. `in` and `out` must not
  /// overlap. The words are moved bit for bit, never computed on: i32 data (ids, masks) is gathered through it too.
  virtual llvm::Error allGather(CommAxis axis, const float *in, int64_t count, float *out) = 0;
  /// out[0, count) = reduction over members of their in[g * count, (g + 1) * count), g = this rank's group index.
  virtual llvm::Error reduceScatter(CommAxis axis, CommReduce op, const float *in, int64_t count, float *out) = 0;
  /// Returns when every rank of the world has called it.
  virtual void barrier() = 0;
  /// Pipeline point-to-point: `bytes` bytes to world rank `peer`. Sends are buffered: send returns once the data is
  /// copied or posted, recv once the matching send's data (the next message from `peer`, in order) is in `data`.
  virtual llvm::Error send(int peer, const void *data, int64_t bytes);
  virtual llvm::Error recv(int peer, void *data, int64_t bytes);

  /// The collectives on device buffers enqueued on a CUDA stream (runtime/comm/CudaCommunicator.h) when this is a
  /// device communicator (one-GPU or NCCL), else null: the CUDA backend's typed route to them, without RTTI.
  virtual cuda::CudaCommunicator *cudaCollectives() { return nullptr; }

  /// The watchdog's view of this rank's collectives (runtime/comm/Watchdog.h): the executor labels each collective
  /// step, megrun sets the timeout. Communicators that can wait with a deadline honour it.
  CollectiveWatch &watch() { return watchState; }
  /// This rank failed: the ranks sharing its process stop waiting for it (their collectives fail with PeerFailed).
  /// Communicators between processes do nothing (the job ends the others).
  virtual void abandon() {}

  /// World collective: rank 0 gets every rank's `in` (counts may differ between ranks) concatenated in rank order
  /// in `out`, and each rank's count in `counts`; on the other ranks both are left empty.
  virtual llvm::Error gatherToRoot(llvm::ArrayRef<float> in, std::vector<float> &out,
                                   std::vector<int64_t> &counts) = 0;
  /// World collective: every rank's data[0, count) = rank 0's (every rank passes the same count).
  virtual llvm::Error broadcastFromRoot(float *data, int64_t count) = 0;

protected:
  int meshDp, meshTp, meshPp, myRank;
  CollectiveWatch watchState;
};

/// The world ranks of `rank`'s group along `axis` in a dp x tp mesh (rank = dpRank * tp + tpRank; with pipeline
/// stages, within rank's stage), in group order.
inline std::vector<int> meshGroup(int meshDp, int meshTp, CommAxis axis, int rank) {
  std::vector<int> members;
  int base = rank / (meshDp * meshTp) * (meshDp * meshTp);
  if (axis == CommAxis::TP)
    for (int t = 0; t < meshTp; ++t)
      members.push_back((rank / meshTp) * meshTp + t);
  else
    for (int d = 0; d < meshDp; ++d)
      members.push_back(base + d * meshTp + rank % meshTp);
  return members;
}

/// The world of one rank.
class SingleRankCommunicator final : public Communicator {
public:
  SingleRankCommunicator() : Communicator(1, 1, 0) {}
  llvm::Error allReduce(CommAxis, CommReduce, float *, int64_t) override { return llvm::Error::success(); }
  llvm::Error allGather(CommAxis, const float *in, int64_t count, float *out) override;
  llvm::Error reduceScatter(CommAxis, CommReduce, const float *in, int64_t count, float *out) override;
  void barrier() override {}
  /// Messages to itself (a one-rank plan that sends to its own stage): a queue.
  llvm::Error send(int peer, const void *data, int64_t bytes) override;
  llvm::Error recv(int peer, void *data, int64_t bytes) override;
  llvm::Error gatherToRoot(llvm::ArrayRef<float> in, std::vector<float> &out, std::vector<int64_t> &counts) override;
  llvm::Error broadcastFromRoot(float *, int64_t) override { return llvm::Error::success(); }

private:
  std::deque<std::vector<uint8_t>> toSelf;
};

/// Shared state of the ranks of one process (one per run); each rank thread gets its own communicator from it.
class InProcessWorld;

class InProcessCommunicator final : public Communicator {
public:
  InProcessCommunicator(std::shared_ptr<InProcessWorld> world, int rank);
  /// A world of meshPp stages of meshDp x meshTp ranks.
  static std::shared_ptr<InProcessWorld> createWorld(int meshDp, int meshTp, int meshPp = 1);

  llvm::Error allReduce(CommAxis axis, CommReduce op, float *data, int64_t count) override;
  llvm::Error allGather(CommAxis axis, const float *in, int64_t count, float *out) override;
  llvm::Error reduceScatter(CommAxis axis, CommReduce op, const float *in, int64_t count, float *out) override;
  void barrier() override;
  llvm::Error send(int peer, const void *data, int64_t bytes) override;
  llvm::Error recv(int peer, void *data, int64_t bytes) override;
  llvm::Error gatherToRoot(llvm::ArrayRef<float> in, std::vector<float> &out, std::vector<int64_t> &counts) override;
  llvm::Error broadcastFromRoot(float *data, int64_t count) override;
  void abandon() override;

private:
  std::shared_ptr<InProcessWorld> world;
};

} // namespace meg::runtime

#endif
