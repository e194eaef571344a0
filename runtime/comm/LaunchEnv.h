//===- LaunchEnv.h - where a process sits in a torchrun / Slurm launch -*- C++ -*-===//
//
// `megrun --ranks env` runs one process per rank as torchrun and Slurm start them: the launcher's environment names
// the process's place (torchrun: RANK, WORLD_SIZE, LOCAL_RANK; Slurm: SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID,
// used where the torchrun name is unset) and where rank 0 is (MASTER_ADDR, MASTER_PORT). meg's own rendezvous
// (runtime/comm/TcpRendezvous.h) listens on MEG_RENDEZVOUS_PORT, default MASTER_PORT + 1 (torchrun's agent already
// holds MASTER_PORT for its store on the master node), and waits MEG_RENDEZVOUS_TIMEOUT seconds (default 300) for
// the processes to meet. No CUDA, no MPI here.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_RUNTIME_COMM_LAUNCHENV_H
#define MEG_RUNTIME_COMM_LAUNCHENV_H

#include "llvm/Support/Error.h"

#include <string>

namespace meg::runtime {

struct LaunchEnvironment {
  int rank = 0, worldSize = 1, localRank = 0;
  std::string masterAddr;
  int port = 0;        ///< the rendezvous port (MEG_RENDEZVOUS_PORT or MASTER_PORT + 1)
  int timeoutSec = 300; ///< MEG_RENDEZVOUS_TIMEOUT
};

/// Reads the launcher's variables. Errors (one line each, naming the variable): unset, not an integer, out of range
/// (RANK outside WORLD_SIZE, a negative LOCAL_RANK, a port outside 1..65535, a timeout below 1).
llvm::Expected<LaunchEnvironment> readLaunchEnvironment();

} // namespace meg::runtime

#endif
