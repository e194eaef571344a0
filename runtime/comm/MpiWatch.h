//===- MpiWatch.h - the collective watchdog of an MPI process ----*- C++ -*-===//
//
// One per MPI process (owned by MpiSession). Every collective of the process (the tp and dp groups' and the world's)
// is entered here, which numbers it per axis and publishes the number on the node's RankBoard, then started
// non-blocking and polled until it completes or the timeout passes. A timeout fails the rank with one line naming
// the collective, the members that have arrived and those that have not, with the state of their processes
// (runtime/comm/Watchdog.h).
//
// When a rank dies, Open MPI's mpirun ends the job itself: it sends the other processes SIGCONT and SIGTERM (and
// SIGKILL a moment later) and prints its banner, so no MPI call ever returns an error. MpiWatch therefore also
// reports on SIGTERM: a thread woken by the signal prints one line naming the ranks whose processes are gone or
// stopped (or that timed out waiting for one), and the collective this rank was in, then ends the process (exit code
// 1). When the job ends because a rank reported an error of its own (megrun's one line), the others end quietly.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_RUNTIME_COMM_MPIWATCH_H
#define MEG_RUNTIME_COMM_MPIWATCH_H

#include "runtime/comm/RankBoard.h"
#include "runtime/comm/Watchdog.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/Support/Error.h"

#include <mpi.h>

#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace meg::runtime {

/// An MPI return code as an llvm::Error (`mpi <what> failed: <MPI's text>`).
llvm::Error mpiError(int code, llvm::StringRef what);

class MpiWatch {
public:
  /// Collective over MPI_COMM_WORLD (after MPI_Init): the node's board, this process published on it, the SIGTERM
  /// report installed; `program` prefixes that report (`<program>: error: ...`). Without shared memory the watch still
  /// times out, but cannot say who has arrived.
  static std::unique_ptr<MpiWatch> create(int rank, int world, llvm::StringRef program);
  ~MpiWatch();

  /// Counts a collective on `axis` (0 dp, 1 tp, 2 world) and publishes it: its sequence number.
  uint64_t enter(unsigned axis);
  /// Polls `request` (the collective just entered: `axis`, `seq`, `bytes` per member, world ranks `group`) until it
  /// completes; with a timeout (watch.timeoutSeconds() > 0) fails past it, naming the collective and the members,
  /// or earlier when a member's process has been gone or stopped for 15 s (at most the timeout): it will not come.
  llvm::Error wait(MPI_Request &request, const CollectiveWatch &watch, unsigned axis, uint64_t seq, int64_t bytes,
                   llvm::ArrayRef<int> group, llvm::StringRef what);
  /// This process reports its own error and ends the job: the others' reports say so instead of calling it lost.
  void markFailed();
  /// This process finishes normally.
  void markDone();

private:
  MpiWatch(int rank, int world, std::string program) : rank(rank), world(world), program(std::move(program)) {}
  void watchTermination();
  std::string terminationReport();
  /// The parts of a collective of `group` for arrivalText: who arrived, who did not (with their processes' state),
  /// who arrived but is lost (gone or stopped) since. Returns the first rank to blame (lost, else missing), or -1.
  int arrivals(unsigned axis, uint64_t seq, llvm::ArrayRef<int> group, std::vector<int> &arrived,
               std::vector<std::string> &missing, std::vector<std::string> &lost) const;

  int rank, world;
  std::string program;
  std::unique_ptr<RankBoard> board;
  uint64_t seqs[kWatchAxes] = {0, 0, 0};
  std::thread watcher;

  /// The collective this rank waits in, for the SIGTERM report (written by the rank, read by the watcher).
  struct Current {
    bool waiting = false;
    CollectiveWatch watch;
    unsigned axis = 0;
    uint64_t seq = 0;
    int64_t bytes = 0;
    std::vector<int> group;
  };
  std::mutex currentLock;
  Current current;
};

} // namespace meg::runtime

#endif
