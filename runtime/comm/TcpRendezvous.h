//===- TcpRendezvous.h - the processes of a --ranks env job over TCP -*- C++ -*-===//
//
// The control channel of a job whose processes were started by torchrun or Slurm (runtime/comm/LaunchEnv.h), without
// MPI: rank 0 listens on MASTER_ADDR's rendezvous port, every other rank connects (retrying while rank 0 starts) and
// says who it is; rank 0 checks that the world sizes agree and no rank comes twice. It then carries the few small
// messages a job needs between its processes: broadcast (the ncclUniqueId) and firstFailure (Job::agree). Every wait
// of the meeting is bounded by the environment's timeout and ends in a one-line error naming what did not come; after
// it, a process that dies closes its socket and the others get an error instead of waiting. The data collectives
// of the steps are not this channel's: they run over NCCL.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_RUNTIME_COMM_TCPRENDEZVOUS_H
#define MEG_RUNTIME_COMM_TCPRENDEZVOUS_H

#include "runtime/comm/LaunchEnv.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/Support/Error.h"

#include <memory>
#include <vector>

namespace meg::runtime {

class TcpRendezvous {
public:
  /// Meets the other processes of `env` (blocks until all have met, or errors after env.timeoutSec).
  static llvm::Expected<std::unique_ptr<TcpRendezvous>> meet(const LaunchEnvironment &env);
  ~TcpRendezvous();

  int rank() const { return env.rank; }
  int worldSize() const { return env.worldSize; }
  int localRank() const { return env.localRank; }

  /// Collective: every process's data = rank 0's (the same size on every process).
  llvm::Error broadcast(llvm::MutableArrayRef<uint8_t> data);
  /// Collective: the lowest rank that passed `failed` = true, or -1 when none did. Error: a process left the job.
  llvm::Expected<int> firstFailure(bool failed);

private:
  explicit TcpRendezvous(const LaunchEnvironment &env) : env(env) {}
  LaunchEnvironment env;
  std::vector<int> peers; ///< rank 0: the socket of rank r at r (peers[0] unused); others: peers[0], rank 0's
};

} // namespace meg::runtime

#endif
