//===- MpiCommunicator.cpp - collectives between MPI processes ----------------===//
#include "runtime/comm/MpiCommunicator.h"
#include "runtime/comm/MpiWatch.h"

#include "llvm/Support/FormatVariadic.h"

#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstdlib>

using namespace meg::runtime;

namespace {

MPI_Op mpiOp(CommReduce op) { return op == CommReduce::Sum ? MPI_SUM : MPI_MAX; }

llvm::Error checkCount(int64_t count) {
  if (count > INT_MAX)
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "a collective of %lld floats exceeds MPI's int count", (long long)count);
  return llvm::Error::success();
}

} // namespace

llvm::Expected<std::unique_ptr<MpiSession>> MpiSession::init(int *argc, char ***argv) {
  int provided = 0;
  if (auto err = mpiError(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "init"))
    return err;
  // Errors come back as codes, so that megrun reports them as one line instead of MPI aborting on its own.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  int rank = 0, size = 1, local = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  MPI_Comm node;
  if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node) == MPI_SUCCESS) {
    MPI_Comm_rank(node, &local);
    MPI_Comm_free(&node);
  }
  std::unique_ptr<MpiSession> session(new MpiSession(rank, size, local));
  llvm::StringRef program = argv && *argv && **argv ? llvm::StringRef((*argv)[0]) : "megrun";
  session->watcher = MpiWatch::create(rank, size, program.rsplit('/').second.empty() ? program
                                                                                      : program.rsplit('/').second);
  return session;
}

MpiSession::MpiSession(int rank, int size, int local) : rank(rank), size(size), local(local) {}

void MpiSession::setCollectiveTimeout(double seconds) { jobWatch.setTimeout(seconds); }

static std::vector<int> worldRanks(int size) {
  std::vector<int> all(size_t(size), 0);
  for (int r = 0; r < size; ++r)
    all[size_t(r)] = r;
  return all;
}

llvm::Expected<int> MpiSession::firstFailure(bool failed) {
  int mine = failed ? rank : INT_MAX, first = mine;
  MPI_Request request;
  uint64_t seq = watcher->enter(kWatchWorld);
  if (MPI_Iallreduce(&mine, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD, &request) != MPI_SUCCESS)
    return failed ? rank : -1;
  if (auto err = watcher->wait(request, jobWatch, kWatchWorld, seq, sizeof(int), worldRanks(size), "agreement"))
    return std::move(err);
  return first == INT_MAX ? -1 : first;
}

llvm::Error MpiSession::broadcast(llvm::MutableArrayRef<uint8_t> data) {
  if (auto err = checkCount(int64_t(data.size())))
    return err;
  return mpiError(MPI_Bcast(data.data(), int(data.size()), MPI_BYTE, 0, MPI_COMM_WORLD), "broadcast");
}

MpiSession::~MpiSession() {
  watcher->markDone();
  watcher.reset();
  MPI_Finalize();
}

void MpiSession::abort(int code) {
  watcher->markFailed();
  MPI_Abort(MPI_COMM_WORLD, code);
  std::abort();
}

struct MpiCommunicator::Groups {
  MPI_Comm tp = MPI_COMM_NULL, dp = MPI_COMM_NULL;
  MPI_Comm of(CommAxis axis) const { return axis == CommAxis::TP ? tp : dp; }
  ~Groups() {
    if (tp != MPI_COMM_NULL)
      MPI_Comm_free(&tp);
    if (dp != MPI_COMM_NULL)
      MPI_Comm_free(&dp);
  }
};

struct MpiCommunicator::PendingSend {
  std::vector<uint8_t> data;
  MPI_Request request = MPI_REQUEST_NULL;
};

MpiCommunicator::MpiCommunicator(int meshDp, int meshTp, int meshPp, int rank, std::unique_ptr<Groups> groups,
                                 MpiWatch &watcher)
    : Communicator(meshDp, meshTp, rank, meshPp), groups(std::move(groups)), watcher(watcher) {}

std::vector<int> MpiCommunicator::groupOf(unsigned axis) const {
  return axis == kWatchWorld ? worldRanks(worldSize()) : meshGroup(meshDp, meshTp, CommAxis(axis), myRank);
}

namespace {

/// The collective just started (`rc`, `request`) as a watched wait: MPI's error, or the watch's timeout.
llvm::Error await(MpiWatch &watcher, const CollectiveWatch &watch, int rc, MPI_Request &request, unsigned axis,
                  uint64_t seq, int64_t bytes, const std::vector<int> &group, llvm::StringRef what) {
  if (auto err = mpiError(rc, what))
    return err;
  return watcher.wait(request, watch, axis, seq, bytes, group, what);
}

} // namespace

MpiCommunicator::~MpiCommunicator() {
  for (std::unique_ptr<PendingSend> &s : pending)
    MPI_Wait(&s->request, MPI_STATUS_IGNORE);
}

llvm::Expected<std::unique_ptr<MpiCommunicator>> MpiCommunicator::create(const MpiSession &session, int meshDp,
                                                                         int meshTp, int meshPp) {
  if (session.worldSize() != meshDp * meshTp * meshPp) {
    std::string pp = meshPp > 1 ? llvm::formatv(" x pp {0}", meshPp).str() : "";
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   llvm::formatv("mpirun started {0} processes but the plans are for {1} ranks "
                                                 "(dp {2}{3} x tp {4})",
                                                 session.worldSize(), meshDp * meshTp * meshPp, meshDp, pp, meshTp)
                                       .str());
  }
  int rank = session.worldRank();
  auto groups = std::make_unique<Groups>();
  // Color = the coordinate the group shares, key = the coordinate along the axis (so group rank = axis rank); the
  // groups lie within a pipeline stage.
  int stage = rank / (meshDp * meshTp);
  if (auto err = mpiError(MPI_Comm_split(MPI_COMM_WORLD, rank / meshTp, rank % meshTp, &groups->tp), "split tp"))
    return err;
  if (auto err = mpiError(MPI_Comm_split(MPI_COMM_WORLD, stage * meshTp + rank % meshTp, (rank / meshTp) % meshDp,
                                         &groups->dp),
                          "split dp"))
    return err;
  return std::unique_ptr<MpiCommunicator>(
      new MpiCommunicator(meshDp, meshTp, meshPp, rank, std::move(groups), session.watch()));
}

static constexpr int kPipelineTag = 23;

llvm::Error MpiCommunicator::reapSends() {
  for (size_t i = 0; i < pending.size();) {
    int done = 0;
    if (auto err = mpiError(MPI_Test(&pending[i]->request, &done, MPI_STATUS_IGNORE), "send"))
      return err;
    if (done) {
      pending[i] = std::move(pending.back());
      pending.pop_back();
    } else {
      ++i;
    }
  }
  return llvm::Error::success();
}

llvm::Error MpiCommunicator::send(int peer, const void *data, int64_t bytes) {
  if (peer < 0 || peer >= worldSize() || bytes > int64_t(INT32_MAX))
    return Communicator::send(peer, data, bytes);
  if (auto err = reapSends())
    return err;
  auto s = std::make_unique<PendingSend>();
  const uint8_t *p = static_cast<const uint8_t *>(data);
  s->data.assign(p, p + bytes);
  if (auto err = mpiError(MPI_Isend(s->data.data(), int(bytes), MPI_BYTE, peer, kPipelineTag, MPI_COMM_WORLD,
                                    &s->request),
                          "send"))
    return err;
  pending.push_back(std::move(s));
  return llvm::Error::success();
}

llvm::Error MpiCommunicator::recv(int peer, void *data, int64_t bytes) {
  if (peer < 0 || peer >= worldSize() || bytes > int64_t(INT32_MAX))
    return Communicator::recv(peer, data, bytes);
  if (auto err = reapSends())
    return err;
  MPI_Request request;
  int rc = MPI_Irecv(data, int(bytes), MPI_BYTE, peer, kPipelineTag, MPI_COMM_WORLD, &request);
  return await(watcher, watchState, rc, request, kWatchWorld, 0, bytes, {peer, myRank}, "recv");
}

llvm::Error MpiCommunicator::allReduce(CommAxis axis, CommReduce op, float *data, int64_t count) {
  if (auto err = checkCount(count))
    return err;
  MPI_Request request;
  uint64_t seq = watcher.enter(unsigned(axis));
  int rc = MPI_Iallreduce(MPI_IN_PLACE, data, int(count), MPI_FLOAT, mpiOp(op), groups->of(axis), &request);
  return await(watcher, watchState, rc, request, unsigned(axis), seq, count * 4, groupOf(unsigned(axis)),
               "all-reduce");
}

llvm::Error MpiCommunicator::allGather(CommAxis axis, const float *in, int64_t count, float *out) {
  if (auto err = checkCount(count))
    return err;
  MPI_Request request;
  uint64_t seq = watcher.enter(unsigned(axis));
  int rc = MPI_Iallgather(in, int(count), MPI_FLOAT, out, int(count), MPI_FLOAT, groups->of(axis), &request);
  return await(watcher, watchState, rc, request, unsigned(axis), seq, count * 4, groupOf(unsigned(axis)),
               "all-gather");
}

llvm::Error MpiCommunicator::reduceScatter(CommAxis axis, CommReduce op, const float *in, int64_t count,
                                           float *out) {
  if (auto err = checkCount(count))
    return err;
  MPI_Request request;
  uint64_t seq = watcher.enter(unsigned(axis));
  int rc = MPI_Ireduce_scatter_block(in, out, int(count), MPI_FLOAT, mpiOp(op), groups->of(axis), &request);
  return await(watcher, watchState, rc, request, unsigned(axis), seq, count * 4, groupOf(unsigned(axis)),
               "reduce-scatter");
}

void MpiCommunicator::barrier() {
  MPI_Request request;
  uint64_t seq = watcher.enter(kWatchWorld);
  int rc = MPI_Ibarrier(MPI_COMM_WORLD, &request);
  // A void interface: a timeout ends the wait, and the collectives that follow report it.
  llvm::consumeError(await(watcher, watchState, rc, request, kWatchWorld, seq, 0, groupOf(kWatchWorld), "barrier"));
}

// World collectives move host buffers of any size: point-to-point (gather) and broadcast in chunks of kChunk floats.
static constexpr int64_t kChunk = int64_t(1) << 28;
static constexpr int kGatherTag = 17;

llvm::Error MpiCommunicator::gatherToRoot(llvm::ArrayRef<float> in, std::vector<float> &out,
                                          std::vector<int64_t> &counts) {
  out.clear();
  counts.clear();
  int64_t mine = int64_t(in.size());
  int world = worldSize();
  std::vector<int64_t> all(myRank == 0 ? size_t(world) : 0);
  std::vector<int> everyone = groupOf(kWatchWorld);
  uint64_t seq = watcher.enter(kWatchWorld);
  MPI_Request request;
  int rc = MPI_Igather(&mine, 1, MPI_INT64_T, all.data(), 1, MPI_INT64_T, 0, MPI_COMM_WORLD, &request);
  if (auto err = await(watcher, watchState, rc, request, kWatchWorld, seq, mine * 4, everyone, "gather"))
    return err;
  if (myRank != 0) {
    for (int64_t done = 0; done < mine; done += kChunk) {
      rc = MPI_Isend(in.data() + done, int(std::min(kChunk, mine - done)), MPI_FLOAT, 0, kGatherTag, MPI_COMM_WORLD,
                     &request);
      if (auto err = await(watcher, watchState, rc, request, kWatchWorld, seq, mine * 4, everyone, "gather send"))
        return err;
    }
    return llvm::Error::success();
  }
  int64_t total = 0;
  for (int64_t c : all)
    total += c;
  out.resize(size_t(total));
  std::copy(in.begin(), in.end(), out.begin());
  int64_t at = mine;
  for (int r = 1; r < world; ++r) {
    int64_t n = all[size_t(r)];
    for (int64_t done = 0; done < n; done += kChunk) {
      rc = MPI_Irecv(out.data() + at + done, int(std::min(kChunk, n - done)), MPI_FLOAT, r, kGatherTag,
                     MPI_COMM_WORLD, &request);
      if (auto err = await(watcher, watchState, rc, request, kWatchWorld, seq, n * 4, everyone, "gather receive"))
        return err;
    }
    at += n;
  }
  counts = std::move(all);
  return llvm::Error::success();
}

llvm::Error MpiCommunicator::broadcastFromRoot(float *data, int64_t count) {
  std::vector<int> everyone = groupOf(kWatchWorld);
  uint64_t seq = watcher.enter(kWatchWorld);
  for (int64_t done = 0; done < count; done += kChunk) {
    MPI_Request request;
    int rc = MPI_Ibcast(data + done, int(std::min(kChunk, count - done)), MPI_FLOAT, 0, MPI_COMM_WORLD, &request);
    if (auto err = await(watcher, watchState, rc, request, kWatchWorld, seq, count * 4, everyone, "broadcast"))
      return err;
  }
  return llvm::Error::success();
}
