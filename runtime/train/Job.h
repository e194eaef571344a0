//===- Job.h - the processes of a run and how they agree ---------*- C++ -*-===//
//
// A Job is how the processes of one megrun run take part in it (--ranks):
//   - threads: one process hosts every rank as a thread (Session::create);
//   - mpi: `mpirun -np N megrun PLAN_DIR --ranks mpi`, one process per rank, MPI world rank = mesh rank =
//     dpRank * tp + tpRank, each process hosting its rank with an MpiCommunicator (Session::createRank).
//   - env: one process per rank started by torchrun or Slurm (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
//     MASTER_PORT; runtime/comm/LaunchEnv.h), meeting over a small TCP rendezvous (runtime/comm/TcpRendezvous.h)
//     that carries agree() and the NCCL id; no MPI. The cuda backend only: the CPU has no communicator between such
//     processes.
// With --backend cuda and one process per rank (mpi or env), each process runs its rank on GPU LOCAL_RANK (mpi: the
// rank among the node's processes) with an NCCL communicator; rank 0's ncclUniqueId reaches the others over
// MPI_Bcast or the rendezvous.
// Every process loads and verifies the whole plan set (the root needs every rank's layout to assemble shards, and
// every process then fails alike on a bad set), checks it against the world it finds, builds the same global
// batches and feeds its shard. The root process (mesh rank 0) alone prints and writes output files.
//
// Errors never hang a job: at points every process reaches (setup, after each output the root writes), agree()
// is a collective check that fails every process if one failed, and only the first failing process reports its
// error; megrun prints nothing for OtherRankFailed. Where the others may be blocked in a collective (inside a step),
// the failing process returns its error wrapped as UnagreedError (Job::unagreed): whoever reports it prints it and
// abort()s the whole job.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_RUNTIME_TRAIN_JOB_H
#define MEG_RUNTIME_TRAIN_JOB_H

#include "runtime/plan/Plan.h"
#include "runtime/train/Session.h"

#include "llvm/Support/Error.h"

#include <memory>
#include <string>

namespace meg::runtime {

/// Another process of the job failed and reports the error; this one exits quietly.
class OtherRankFailed : public llvm::ErrorInfo<OtherRankFailed> {
public:
  static char ID;
  explicit OtherRankFailed(int rank) : rank(rank) {}
  void log(llvm::raw_ostream &os) const override;
  std::error_code convertToErrorCode() const override { return llvm::inconvertibleErrorCode(); }
  int rank; ///< the process that reports
};

/// An error one process found where the job's other processes may be blocked in a collective (inside a step): the
/// reporter prints it, then Job::abort ends every process.
class UnagreedError : public llvm::ErrorInfo<UnagreedError> {
public:
  static char ID;
  explicit UnagreedError(std::string message) : message(std::move(message)) {}
  void log(llvm::raw_ostream &os) const override;
  std::error_code convertToErrorCode() const override { return llvm::inconvertibleErrorCode(); }
  std::string message;
};

class Job {
public:
  /// Error unless `mode` (megrun's --ranks) is threads, mpi or env and runs `backend` (env: cuda only).
  static llvm::Error checkMode(llvm::StringRef mode, llvm::StringRef backend);
  /// `mode` is "threads", "mpi" (MPI_Init with argc/argv) or "env" (reads the launcher's environment and meets the
  /// other processes). Errors: mpi in a build without MPI; env: a missing or bad variable, a rendezvous timeout.
  static llvm::Expected<std::unique_ptr<Job>> create(llvm::StringRef mode, int *argc, char ***argv);
  /// With mpi: MPI_Finalize.
  ~Job();

  bool isMpi() const;
  /// Ranks run as separate processes (mpi or env).
  bool isMultiProcess() const;
  /// This process prints and writes the run's outputs (threads: always; mpi: world rank 0).
  bool isRoot() const;

  /// Collective over the job's processes: success when every process passed success; otherwise the error of the
  /// lowest failing process on that process and OtherRankFailed on every other.
  llvm::Error agree(llvm::Error err);
  /// `err` (if any) as an UnagreedError, keeping its message.
  static llvm::Error unagreed(llvm::Error err);
  /// Ends every process of the job with exit code `code` (threads: returns; the caller exits; env: exits this
  /// process at once, and the launcher, torchrun or srun --kill-on-bad-exit, ends the others).
  void abort(int code);
  /// Seconds a rank may wait in one collective (the sessions created after this call, and with MPI the job's own
  /// agreement) before it fails naming the collective and who is missing (runtime/comm/Watchdog.h); 0 = forever.
  void setCollectiveTimeout(double seconds);

  /// Checks that the job's processes fit `plans` (a complete set loaded from `planDir`) and makes the session:
  /// every rank as threads, or this process's rank over MPI or NCCL. Errors: `<planDir>: the plans are for a mesh
  /// of dp D x tp T = N ranks, mpirun started M` (env: `WORLD_SIZE is M`); a rank without a GPU.
  llvm::Expected<std::unique_ptr<Session>> createSession(std::vector<LoadedPlan> plans, llvm::StringRef backend,
                                                         llvm::StringRef planDir);

private:
  llvm::Expected<std::unique_ptr<Session>> createSessionOf(std::vector<LoadedPlan> plans, llvm::StringRef backend,
                                                           llvm::StringRef planDir);
  struct Mpi;
  struct Env;
  Job() = default;
  std::unique_ptr<Mpi> mpi;
  double collectiveTimeout = 0;
  std::unique_ptr<Env> env;
};

} // namespace meg::runtime

#endif
