//===- MpiCommunicator.cpp - collectives between MPI processes ----------------===//
#include "runtime/comm/MpiCommunicator.h"

#include "llvm/Support/FormatVariadic.h"

#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstdlib>

using namespace meg::runtime;

namespace {

llvm::Error mpiError(int code, llvm::StringRef what) {
  if (code == MPI_SUCCESS)
    return llvm::Error::success();
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(code, text, &len);
  return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                 "mpi " + what.str() + " failed: " + std::string(text, size_t(len)));
}

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
  return std::unique_ptr<MpiSession>(new MpiSession(rank, size, local));
}

int MpiSession::firstFailure(bool failed) {
  int mine = failed ? rank : INT_MAX, first = mine;
  if (MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD) != MPI_SUCCESS)
    return failed ? rank : -1;
  return first == INT_MAX ? -1 : first;
}

llvm::Error MpiSession::broadcast(llvm::MutableArrayRef<uint8_t> data) {
  if (auto err = checkCount(int64_t(data.size())))
    return err;
  return mpiError(MPI_Bcast(data.data(), int(data.size()), MPI_BYTE, 0, MPI_COMM_WORLD), "broadcast");
}

MpiSession::~MpiSession() { MPI_Finalize(); }

void MpiSession::abort(int code) {
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

MpiCommunicator::MpiCommunicator(int meshDp, int meshTp, int rank, std::unique_ptr<Groups> groups)
    : Communicator(meshDp, meshTp, rank), groups(std::move(groups)) {}

MpiCommunicator::~MpiCommunicator() = default;

llvm::Expected<std::unique_ptr<MpiCommunicator>> MpiCommunicator::create(const MpiSession &session, int meshDp,
                                                                         int meshTp) {
  if (session.worldSize() != meshDp * meshTp)
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   llvm::formatv("mpirun started {0} processes but the plans are for {1} ranks "
                                                 "(dp {2} x tp {3})",
                                                 session.worldSize(), meshDp * meshTp, meshDp, meshTp)
                                       .str());
  int rank = session.worldRank();
  auto groups = std::make_unique<Groups>();
  // Color = the coordinate the group shares, key = the coordinate along the axis (so group rank = axis rank).
  if (auto err = mpiError(MPI_Comm_split(MPI_COMM_WORLD, rank / meshTp, rank % meshTp, &groups->tp), "split tp"))
    return err;
  if (auto err = mpiError(MPI_Comm_split(MPI_COMM_WORLD, rank % meshTp, rank / meshTp, &groups->dp), "split dp"))
    return err;
  return std::unique_ptr<MpiCommunicator>(new MpiCommunicator(meshDp, meshTp, rank, std::move(groups)));
}

llvm::Error MpiCommunicator::allReduce(CommAxis axis, CommReduce op, float *data, int64_t count) {
  if (auto err = checkCount(count))
    return err;
  return mpiError(MPI_Allreduce(MPI_IN_PLACE, data, int(count), MPI_FLOAT, mpiOp(op), groups->of(axis)),
                  "all-reduce");
}

llvm::Error MpiCommunicator::allGather(CommAxis axis, const float *in, int64_t count, float *out) {
  if (auto err = checkCount(count))
    return err;
  return mpiError(MPI_Allgather(in, int(count), MPI_FLOAT, out, int(count), MPI_FLOAT, groups->of(axis)),
                  "all-gather");
}

llvm::Error MpiCommunicator::reduceScatter(CommAxis axis, CommReduce op, const float *in, int64_t count,
                                           float *out) {
  if (auto err = checkCount(count))
    return err;
  return mpiError(MPI_Reduce_scatter_block(in, out, int(count), MPI_FLOAT, mpiOp(op), groups->of(axis)),
                  "reduce-scatter");
}

void MpiCommunicator::barrier() { MPI_Barrier(MPI_COMM_WORLD); }

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
  if (auto err = mpiError(MPI_Gather(&mine, 1, MPI_INT64_T, all.data(), 1, MPI_INT64_T, 0, MPI_COMM_WORLD),
                          "gather"))
    return err;
  if (myRank != 0) {
    for (int64_t done = 0; done < mine; done += kChunk)
      if (auto err = mpiError(MPI_Send(in.data() + done, int(std::min(kChunk, mine - done)), MPI_FLOAT, 0,
                                       kGatherTag, MPI_COMM_WORLD),
                              "gather send"))
        return err;
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
    for (int64_t done = 0; done < n; done += kChunk)
      if (auto err = mpiError(MPI_Recv(out.data() + at + done, int(std::min(kChunk, n - done)), MPI_FLOAT, r,
                                       kGatherTag, MPI_COMM_WORLD, MPI_STATUS_IGNORE),
                              "gather receive"))
        return err;
    at += n;
  }
  counts = std::move(all);
  return llvm::Error::success();
}

llvm::Error MpiCommunicator::broadcastFromRoot(float *data, int64_t count) {
  for (int64_t done = 0; done < count; done += kChunk)
    if (auto err = mpiError(MPI_Bcast(data + done, int(std::min(kChunk, count - done)), MPI_FLOAT, 0, MPI_COMM_WORLD),
                            "broadcast"))
      return err;
  return llvm::Error::success();
}
