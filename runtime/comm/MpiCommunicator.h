//===- MpiCommunicator.h - collectives between MPI processes ----*- C++ -*-===//
//
// One process per rank (`mpirun -np N megrun PLAN_DIR --ranks mpi`): the world's MPI rank is the mesh rank, and the
// tp and dp groups are MPI communicators split from MPI_COMM_WORLD by mesh coordinate. The world collectives
// (gatherToRoot, broadcastFromRoot) run on MPI_COMM_WORLD in chunks, so counts may exceed MPI's int. MPI errors
// come back as llvm::Errors (MPI_ERRORS_RETURN), never as MPI's own abort. Every collective is non-blocking, polled
// by the process's MpiWatch against the collective timeout (a stuck or lost peer is named, never waited for forever). Built only when CMake finds MPI
// (MEG_HAVE_MPI); runtime/train/Job.cpp reports that MPI is unavailable otherwise.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_RUNTIME_COMM_MPICOMMUNICATOR_H
#define MEG_RUNTIME_COMM_MPICOMMUNICATOR_H

#include "runtime/comm/Communicator.h"

#include "llvm/Support/Error.h"

#include <memory>
#include <vector>

namespace meg::runtime {

class MpiWatch;

/// MPI_Init / MPI_Finalize for the life of the object; one per process.
class MpiSession {
public:
  static llvm::Expected<std::unique_ptr<MpiSession>> init(int *argc, char ***argv);
  ~MpiSession();
  int worldRank() const { return rank; }
  int worldSize() const { return size; }
  /// This process's index among the job's processes on the same node (the device it should use).
  int localRank() const { return local; }
  /// Collective over the job: the lowest rank that passed `failed` = true, or -1 when none did. Error: the
  /// collective timeout passed (the line names who did not arrive).
  llvm::Expected<int> firstFailure(bool failed);
  /// Collective over the job: every process's data = world rank 0's (the ncclUniqueId of --backend cuda).
  llvm::Error broadcast(llvm::MutableArrayRef<uint8_t> data);
  /// Ends every process of the job (after a rank failed: the others may be blocked in a collective).
  [[noreturn]] void abort(int code);
  /// The watchdog of this process's collectives (runtime/comm/MpiWatch.h).
  MpiWatch &watch() const { return *watcher; }
  /// Seconds a collective of the job's own (firstFailure) may wait; 0 = forever.
  void setCollectiveTimeout(double seconds);

private:
  MpiSession(int rank, int size, int local);
  int rank, size, local;
  std::unique_ptr<MpiWatch> watcher;
  CollectiveWatch jobWatch; ///< the label-less watch of firstFailure
};

/// Collectives over the tp and dp groups of a dp x tp mesh laid on MPI_COMM_WORLD (rank = dpRank * tp + tpRank).
class MpiCommunicator final : public Communicator {
public:
  /// Errors if the job's world size differs from meshDp * meshTp * meshPp.
  static llvm::Expected<std::unique_ptr<MpiCommunicator>> create(const MpiSession &session, int meshDp, int meshTp,
                                                                 int meshPp = 1);
  ~MpiCommunicator() override;

  llvm::Error allReduce(CommAxis axis, CommReduce op, float *data, int64_t count) override;
  llvm::Error allGather(CommAxis axis, const float *in, int64_t count, float *out) override;
  llvm::Error reduceScatter(CommAxis axis, CommReduce op, const float *in, int64_t count, float *out) override;
  void barrier() override;
  llvm::Error gatherToRoot(llvm::ArrayRef<float> in, std::vector<float> &out, std::vector<int64_t> &counts) override;
  llvm::Error broadcastFromRoot(float *data, int64_t count) override;
  /// Pipeline messages: a send copies the data and posts it (MPI_Isend), completed sends are reaped later (and
  /// all of them when the communicator ends); a recv waits for its message under the watchdog.
  llvm::Error send(int peer, const void *data, int64_t bytes) override;
  llvm::Error recv(int peer, void *data, int64_t bytes) override;

private:
  struct Groups;
  struct PendingSend;
  MpiCommunicator(int meshDp, int meshTp, int meshPp, int rank, std::unique_ptr<Groups> groups, MpiWatch &watcher);
  /// Frees the posted sends that have completed.
  llvm::Error reapSends();
  /// The world ranks of this rank's group on watched axis `axis` (kWatchWorld: every rank).
  std::vector<int> groupOf(unsigned axis) const;
  std::unique_ptr<Groups> groups;
  MpiWatch &watcher;
  std::vector<std::unique_ptr<PendingSend>> pending;
};

} // namespace meg::runtime

#endif
