//===- Job.cpp - the processes of a run and how they agree ---------------------===//
#include "runtime/train/Job.h"

#ifdef MEG_HAVE_MPI
#include "runtime/comm/MpiCommunicator.h"
#endif

#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/raw_ostream.h"

using namespace meg;
using namespace meg::runtime;

char OtherRankFailed::ID = 0;

void OtherRankFailed::log(llvm::raw_ostream &os) const { os << "rank " << rank << " failed"; }

char UnagreedError::ID = 0;

void UnagreedError::log(llvm::raw_ostream &os) const { os << message; }

llvm::Error Job::unagreed(llvm::Error err) {
  if (!err || err.isA<UnagreedError>())
    return err;
  return llvm::make_error<UnagreedError>(llvm::toString(std::move(err)));
}

#ifdef MEG_HAVE_MPI
struct Job::Mpi {
  std::unique_ptr<MpiSession> session;
};
#else
struct Job::Mpi {};
#endif

Job::~Job() = default;

llvm::Expected<std::unique_ptr<Job>> Job::create(llvm::StringRef mode, int *argc, char ***argv) {
  std::unique_ptr<Job> job(new Job());
  if (mode == "threads")
    return job;
  assert(mode == "mpi" && "unknown --ranks mode");
#ifdef MEG_HAVE_MPI
  auto session = MpiSession::init(argc, argv);
  if (!session)
    return session.takeError();
  job->mpi = std::make_unique<Mpi>();
  job->mpi->session = std::move(*session);
  return job;
#else
  return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                 "--ranks mpi: this megrun was built without MPI (use --ranks threads)");
#endif
}

bool Job::isMpi() const { return mpi != nullptr; }

bool Job::isRoot() const {
#ifdef MEG_HAVE_MPI
  if (mpi)
    return mpi->session->worldRank() == 0;
#endif
  return true;
}

llvm::Error Job::agree(llvm::Error err) {
#ifdef MEG_HAVE_MPI
  if (mpi) {
    auto agreed = mpi->session->firstFailure(bool(err));
    if (!agreed) { // a process did not come to agree in time: this one reports, the job ends
      llvm::consumeError(std::move(err));
      return unagreed(agreed.takeError());
    }
    int first = *agreed;
    if (first < 0 || first == mpi->session->worldRank())
      return err;
    llvm::consumeError(std::move(err));
    return llvm::make_error<OtherRankFailed>(first);
  }
#endif
  return err;
}

void Job::abort(int code) {
#ifdef MEG_HAVE_MPI
  if (mpi) {
    llvm::errs().flush();
    llvm::outs().flush();
    mpi->session->abort(code);
  }
#endif
}

void Job::setCollectiveTimeout(double seconds) {
  collectiveTimeout = seconds;
#ifdef MEG_HAVE_MPI
  if (mpi)
    mpi->session->setCollectiveTimeout(seconds);
#endif
}

llvm::Expected<std::unique_ptr<Session>> Job::createSession(std::vector<LoadedPlan> plans, llvm::StringRef backend,
                                                            llvm::StringRef planDir) {
  auto session = createSessionOf(std::move(plans), backend, planDir);
  if (session)
    (*session)->setCollectiveTimeout(collectiveTimeout);
  return session;
}

llvm::Expected<std::unique_ptr<Session>> Job::createSessionOf(std::vector<LoadedPlan> plans, llvm::StringRef backend,
                                                              llvm::StringRef planDir) {
  if (!mpi)
    return Session::create(std::move(plans), backend);
#ifdef MEG_HAVE_MPI
  const LoadedPlan &first = plans[0];
  int started = mpi->session->worldSize();
  if (started != first.world())
    return llvm::createStringError(
        llvm::inconvertibleErrorCode(),
        llvm::formatv("{0}: the plans are for a mesh of dp {1} x tp {2} = {3} ranks, {4}", planDir, first.meshDp,
                      first.meshTp, first.world(),
                      started == 1 ? "but megrun runs as a single MPI process (start it with mpirun -np " +
                                         std::to_string(first.world()) + ")"
                                   : "mpirun started " + std::to_string(started))
            .str());
  // MPI moves host buffers; CUDA ranks in separate processes talk over NCCL, started from torchrun's or Slurm's
  // environment (runtime/comm/CudaCommunicator.h), which megrun does not wire yet.
  if (backend != "cpu")
    return llvm::createStringError(llvm::inconvertibleErrorCode(), "--ranks mpi runs the cpu backend only (--backend " +
                                                                       backend +
                                                                       ": run its ranks as threads on one GPU)");
  auto comm = MpiCommunicator::create(*mpi->session, first.meshDp, first.meshTp);
  if (!comm)
    return comm.takeError();
  return Session::createRank(std::move(plans), backend, std::move(*comm), mpi->session->localRank());
#else
  llvm_unreachable("an MPI job in a build without MPI");
#endif
}
