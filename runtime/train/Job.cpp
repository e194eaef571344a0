//===- Job.cpp - the processes of a run and how they agree ---------------------===//
#include "runtime/train/Job.h"

#include "runtime/comm/TcpRendezvous.h"
#ifdef MEG_HAVE_MPI
#include "runtime/comm/MpiCommunicator.h"
#endif
#ifdef MEG_HAVE_CUDA
#include "runtime/comm/CudaCommunicator.h"
#endif

#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdlib>

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

struct Job::Env {
  std::unique_ptr<TcpRendezvous> tcp;
};

Job::~Job() = default;

llvm::Error Job::checkMode(llvm::StringRef mode, llvm::StringRef backend) {
  if (mode != "threads" && mode != "mpi" && mode != "env")
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "unknown --ranks '" + mode + "' (expected threads, mpi or env)");
  if (mode == "env" && backend != "cuda")
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "--ranks env runs --backend cuda only (NCCL): the " + backend +
                                       " backend has no communicator between processes started without MPI (use "
                                       "mpirun -np N megrun ... --ranks mpi, or --ranks threads)");
  return llvm::Error::success();
}

llvm::Expected<std::unique_ptr<Job>> Job::create(llvm::StringRef mode, int *argc, char ***argv) {
  std::unique_ptr<Job> job(new Job());
  if (mode == "threads")
    return job;
  if (mode == "env") {
    auto launch = readLaunchEnvironment();
    if (!launch)
      return launch.takeError();
    auto tcp = TcpRendezvous::meet(*launch);
    if (!tcp)
      return tcp.takeError();
    job->env = std::make_unique<Env>();
    job->env->tcp = std::move(*tcp);
    return job;
  }
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
                                 "--ranks mpi: this megrun was built without MPI (use --ranks threads, or --ranks env "
                                 "with --backend cuda under torchrun or Slurm)");
#endif
}

bool Job::isMpi() const { return mpi != nullptr; }

bool Job::isMultiProcess() const { return mpi || env; }

bool Job::isRoot() const {
  if (env)
    return env->tcp->rank() == 0;
#ifdef MEG_HAVE_MPI
  if (mpi)
    return mpi->session->worldRank() == 0;
#endif
  return true;
}

llvm::Error Job::agree(llvm::Error err) {
  // A process that already yields to another's error (OtherRankFailed, from an agree inside createSession) does not
  // claim the error again: the process that found it reports it.
  bool failed = err && !err.isA<OtherRankFailed>();
  if (env) {
    auto first = env->tcp->firstFailure(failed);
    if (!first) {
      llvm::consumeError(std::move(err));
      return first.takeError();
    }
    if (*first < 0 || *first == env->tcp->rank())
      return err;
    llvm::consumeError(std::move(err));
    return llvm::make_error<OtherRankFailed>(*first);
  }
#ifdef MEG_HAVE_MPI
  if (mpi) {
    auto agreed = mpi->session->firstFailure(failed);
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
  if (env) {
    llvm::errs().flush();
    llvm::outs().flush();
    std::_Exit(code); // the others may wait in an NCCL collective: never in a destructor that syncs with it
  }
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

/// One process per GPU: every process checks its device (agreed, so that a rank without a GPU fails the job in one
/// line), rank 0 makes the ncclUniqueId and `broadcast` hands it to the others, then each joins the NCCL world.
template <typename Agree, typename Broadcast>
static llvm::Expected<std::unique_ptr<Session>> createNcclSession(std::vector<LoadedPlan> plans, int rank, int local,
                                                                  Agree agree, Broadcast broadcast) {
#ifdef MEG_HAVE_CUDA
  if (auto err = agree(cuda::checkRankDevice(rank, local)))
    return std::move(err);
  cuda::NcclId id{};
  auto makeId = [&]() -> llvm::Error {
    if (rank != 0)
      return llvm::Error::success();
    auto made = cuda::newNcclId();
    if (!made)
      return made.takeError();
    id = *made;
    return llvm::Error::success();
  };
  if (auto err = agree(makeId()))
    return std::move(err);
  if (auto err = broadcast(llvm::MutableArrayRef<uint8_t>(id.data(), id.size())))
    return std::move(err);
  const LoadedPlan &first = plans[0];
  auto comm = cuda::createNcclCommunicator(id, first.meshDp, first.meshTp, rank, local, /*stream=*/nullptr,
                                           first.meshPp);
  if (!comm)
    return comm.takeError();
  return Session::createRank(std::move(plans), "cuda", std::move(*comm), local);
#else
  llvm_unreachable("--backend cuda in a build without CUDA (checkBackendFlag refuses it)");
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
  if (!mpi && !env)
    return Session::create(std::move(plans), backend);
  auto agreeFn = [this](llvm::Error err) { return agree(std::move(err)); };
  if (env) {
    TcpRendezvous &tcp = *env->tcp;
    if (tcp.worldSize() != plans[0].world())
      return llvm::createStringError(
          llvm::inconvertibleErrorCode(),
          llvm::formatv("{0}: the plans are for a mesh of dp {1} x tp {2} = {3} ranks, WORLD_SIZE is {4}", planDir,
                        plans[0].meshDp, plans[0].meshTp, plans[0].world(), tcp.worldSize())
              .str());
    assert(backend == "cuda" && "checkMode lets --ranks env run cuda only");
    return createNcclSession(std::move(plans), tcp.rank(), tcp.localRank(), agreeFn,
                             [&](llvm::MutableArrayRef<uint8_t> data) { return tcp.broadcast(data); });
  }
#ifdef MEG_HAVE_MPI
  const LoadedPlan &first = plans[0];
  int started = mpi->session->worldSize();
  if (started != first.world())
    return llvm::createStringError(
        llvm::inconvertibleErrorCode(),
        llvm::formatv("{0}: the plans are for a mesh of dp {1}{5} x tp {2} = {3} ranks, {4}", planDir, first.meshDp,
                      first.meshTp, first.world(),
                      started == 1 ? "but megrun runs as a single MPI process (start it with mpirun -np " +
                                         std::to_string(first.world()) + ")"
                                   : "mpirun started " + std::to_string(started),
                      first.meshPp > 1 ? " x pp " + std::to_string(first.meshPp) : std::string())
            .str());
  // MPI moves host buffers; CUDA ranks talk over NCCL, bootstrapped over MPI.
  if (backend == "cuda")
    return createNcclSession(std::move(plans), mpi->session->worldRank(), mpi->session->localRank(), agreeFn,
                             [&](llvm::MutableArrayRef<uint8_t> data) { return mpi->session->broadcast(data); });
  auto comm = MpiCommunicator::create(*mpi->session, first.meshDp, first.meshTp, first.meshPp);
  if (!comm)
    return comm.takeError();
  return Session::createRank(std::move(plans), backend, std::move(*comm), mpi->session->localRank());
#else
  llvm_unreachable("an MPI job in a build without MPI");
#endif
}
