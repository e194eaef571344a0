//===- NcclCommunicator.cpp - one process per GPU over NCCL --------------------===//
//
// Bootstrap (see CudaCommunicator.h): the launcher's environment names this process's rank; rank 0 creates the
// ncclUniqueId and serves it over TCP on MASTER_ADDR:port to the other ranks, which connect (retrying while rank 0
// starts up, up to MEG_NCCL_TIMEOUT seconds, default 300) and read its 128 bytes. Then ncclCommInitRank joins the
// world, and ncclCommSplit makes the tp groups (color = dp rank, key = tp rank) and dp groups (color = tp rank,
// key = dp rank). Group collectives are NCCL calls on the caller's stream. The world collectives on host data stage
// through a device buffer and synchronize (they run between steps: checkpoints, weight files).
//
//===----------------------------------------------------------------------===//
#include "runtime/comm/CudaCommunicator.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FormatVariadic.h"

#include <optional>
#include <nccl.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

using namespace meg;
using namespace meg::runtime;
using namespace meg::runtime::cuda;

namespace {

llvm::Error failure(const llvm::Twine &what) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), "nccl communicator: " + what);
}

llvm::Error ncclFailure(const char *call, ncclResult_t r) {
  return failure(llvm::Twine(call) + ": " + ncclGetErrorString(r));
}

#define MEG_NCCL_TRY(call)                                                                                             \
  do {                                                                                                                 \
    ncclResult_t megNccl_ = (call);                                                                                    \
    if (megNccl_ != ncclSuccess)                                                                                       \
      return ncclFailure(#call, megNccl_);                                                                             \
  } while (0)

#define MEG_CUDART_TRY(call)                                                                                           \
  do {                                                                                                                 \
    cudaError_t megCuda_ = (call);                                                                                     \
    if (megCuda_ != cudaSuccess)                                                                                       \
      return failure(llvm::Twine(#call) + ": " + cudaGetErrorString(megCuda_));                                        \
  } while (0)

/// An integer environment variable, or nullopt when unset; an error when set but not an integer.
llvm::Expected<std::optional<int>> envInt(const char *name) {
  const char *v = std::getenv(name);
  if (!v)
    return std::nullopt;
  int value = 0;
  if (llvm::StringRef(v).getAsInteger(10, value))
    return failure(llvm::formatv("{0}='{1}' is not an integer", name, v));
  return value;
}

/// Closes a socket on scope exit.
struct Socket {
  int fd = -1;
  ~Socket() {
    if (fd >= 0)
      ::close(fd);
  }
};

bool sendAll(int fd, const void *data, size_t n) {
  const char *p = static_cast<const char *>(data);
  while (n) {
    ssize_t k = ::send(fd, p, n, MSG_NOSIGNAL);
    if (k <= 0)
      return false;
    p += k;
    n -= size_t(k);
  }
  return true;
}

bool recvAll(int fd, void *data, size_t n) {
  char *p = static_cast<char *>(data);
  while (n) {
    ssize_t k = ::recv(fd, p, n, 0);
    if (k <= 0)
      return false;
    p += k;
    n -= size_t(k);
  }
  return true;
}

/// Rank 0: serves `id` to worldSize - 1 connections on `port`.
llvm::Error serveId(const ncclUniqueId &id, int port, int worldSize) {
  Socket server;
  server.fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (server.fd < 0)
    return failure(llvm::Twine("socket: ") + std::strerror(errno));
  int one = 1;
  ::setsockopt(server.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  addr.sin_port = htons(uint16_t(port));
  if (::bind(server.fd, reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) != 0)
    return failure(llvm::formatv("cannot listen on port {0}: {1}", port, std::strerror(errno)));
  if (::listen(server.fd, worldSize) != 0)
    return failure(llvm::Twine("listen: ") + std::strerror(errno));
  for (int served = 1; served < worldSize; ++served) {
    Socket client;
    client.fd = ::accept(server.fd, nullptr, nullptr);
    if (client.fd < 0 || !sendAll(client.fd, &id, sizeof(id)))
      return failure(llvm::Twine("handing out the nccl id: ") + std::strerror(errno));
  }
  return llvm::Error::success();
}

/// Other ranks: reads the id from masterAddr:port, retrying until `timeout` passes.
llvm::Error fetchId(const std::string &masterAddr, int port, std::chrono::seconds timeout, ncclUniqueId &id) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string portText = std::to_string(port);
  while (true) {
    addrinfo hints{}, *found = nullptr;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (::getaddrinfo(masterAddr.c_str(), portText.c_str(), &hints, &found) == 0) {
      for (addrinfo *a = found; a; a = a->ai_next) {
        Socket s;
        s.fd = ::socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (s.fd >= 0 && ::connect(s.fd, a->ai_addr, a->ai_addrlen) == 0 && recvAll(s.fd, &id, sizeof(id))) {
          ::freeaddrinfo(found);
          return llvm::Error::success();
        }
      }
      ::freeaddrinfo(found);
    }
    if (std::chrono::steady_clock::now() > deadline)
      return failure(llvm::formatv("no nccl id from rank 0 at {0}:{1} within {2} s", masterAddr, port,
                                   timeout.count()));
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

ncclRedOp_t ncclOp(CommReduce op) { return op == CommReduce::Max ? ncclMax : ncclSum; }

class NcclCommunicator final : public CudaCommunicator {
public:
  NcclCommunicator(int meshDp, int meshTp, int rank, int device, cudaStream_t stream)
      : CudaCommunicator(meshDp, meshTp, rank, stream), device(device) {}
  ~NcclCommunicator() override {
    for (ncclComm_t c : {tpComm, dpComm, worldComm})
      if (c)
        ncclCommDestroy(c);
  }

  llvm::Error join(const ncclUniqueId &id) {
    MEG_CUDART_TRY(cudaSetDevice(device));
    MEG_NCCL_TRY(ncclCommInitRank(&worldComm, worldSize(), id, myRank));
    MEG_NCCL_TRY(ncclCommSplit(worldComm, axisColor(CommAxis::TP), axisRank(CommAxis::TP), &tpComm, nullptr));
    MEG_NCCL_TRY(ncclCommSplit(worldComm, axisColor(CommAxis::DP), axisRank(CommAxis::DP), &dpComm, nullptr));
    return llvm::Error::success();
  }

  llvm::Error allReduceOn(cudaStream_t stream, CommAxis axis, CommReduce op, float *data, int64_t count) override {
    MEG_NCCL_TRY(ncclAllReduce(data, data, size_t(count), ncclFloat, ncclOp(op), comm(axis), stream));
    return llvm::Error::success();
  }
  llvm::Error allGatherOn(cudaStream_t stream, CommAxis axis, const float *in, int64_t count, float *out) override {
    MEG_NCCL_TRY(ncclAllGather(in, out, size_t(count), ncclFloat, comm(axis), stream));
    return llvm::Error::success();
  }
  llvm::Error reduceScatterOn(cudaStream_t stream, CommAxis axis, CommReduce op, const float *in, int64_t count,
                              float *out) override {
    MEG_NCCL_TRY(ncclReduceScatter(in, out, size_t(count), ncclFloat, ncclOp(op), comm(axis), stream));
    return llvm::Error::success();
  }

  void barrier() override {
    // A one-element all-reduce over the world, waited for: every rank has reached it when it completes.
    float *one = nullptr;
    if (cudaSetDevice(device) != cudaSuccess || cudaMallocAsync(&one, sizeof(float), defaultStream) != cudaSuccess)
      return;
    ncclAllReduce(one, one, 1, ncclFloat, ncclSum, worldComm, defaultStream);
    cudaFreeAsync(one, defaultStream);
    cudaStreamSynchronize(defaultStream);
  }

  llvm::Error gatherToRoot(llvm::ArrayRef<float> in, std::vector<float> &out, std::vector<int64_t> &counts) override {
    out.clear();
    counts.clear();
    MEG_CUDART_TRY(cudaSetDevice(device));
    // Counts first (every rank learns them), then one send per rank to the root inside one NCCL group.
    std::vector<int64_t> all(static_cast<size_t>(worldSize()));
    int64_t mine = int64_t(in.size());
    if (auto err = stage(all.data(), &mine, sizeof(int64_t), [&](void *dev) {
          return ncclAllGather(static_cast<char *>(dev) + myRank * sizeof(int64_t), dev, 1, ncclInt64, worldComm,
                               defaultStream);
        }, int64_t(all.size() * sizeof(int64_t)), myRank * int64_t(sizeof(int64_t))))
      return err;
    int64_t total = 0;
    for (int64_t c : all)
      total += c;
    float *dev = nullptr;
    size_t bytes = size_t(myRank == 0 ? total : mine) * sizeof(float);
    MEG_CUDART_TRY(cudaMallocAsync(&dev, std::max<size_t>(bytes, 4), defaultStream));
    cudaError_t copyIn = myRank == 0 ? cudaSuccess
                                     : cudaMemcpyAsync(dev, in.data(), bytes, cudaMemcpyHostToDevice, defaultStream);
    ncclResult_t r = ncclSuccess;
    if (copyIn == cudaSuccess) {
      r = ncclGroupStart();
      int64_t offset = 0;
      for (int src = 0; src < worldSize() && r == ncclSuccess; ++src) {
        if (myRank == 0 && src != 0 && all[size_t(src)] > 0)
          r = ncclRecv(dev + offset, size_t(all[size_t(src)]), ncclFloat, src, worldComm, defaultStream);
        if (myRank == src && src != 0 && mine > 0)
          r = ncclSend(dev, size_t(mine), ncclFloat, 0, worldComm, defaultStream);
        offset += all[size_t(src)];
      }
      ncclResult_t end = ncclGroupEnd();
      if (r == ncclSuccess)
        r = end;
    }
    if (myRank == 0 && r == ncclSuccess) {
      out.resize(size_t(total));
      std::copy(in.begin(), in.end(), out.begin());
      if (total > mine)
        copyIn = cudaMemcpyAsync(out.data() + mine, dev + mine, size_t(total - mine) * sizeof(float),
                                 cudaMemcpyDeviceToHost, defaultStream);
      counts = all;
    }
    cudaFreeAsync(dev, defaultStream);
    cudaError_t sync = cudaStreamSynchronize(defaultStream);
    if (r != ncclSuccess)
      return ncclFailure("gatherToRoot", r);
    MEG_CUDART_TRY(copyIn);
    MEG_CUDART_TRY(sync);
    return llvm::Error::success();
  }

  llvm::Error broadcastFromRoot(float *data, int64_t count) override {
    MEG_CUDART_TRY(cudaSetDevice(device));
    int64_t bytes = count * int64_t(sizeof(float));
    return stage(data, data, size_t(bytes), [&](void *dev) {
      return ncclBroadcast(dev, dev, size_t(count), ncclFloat, 0, worldComm, defaultStream);
    }, bytes, 0);
  }

private:
  int axisColor(CommAxis axis) const { return axis == CommAxis::TP ? myRank / meshTp : myRank % meshTp; }
  ncclComm_t comm(CommAxis axis) const { return axis == CommAxis::TP ? tpComm : dpComm; }

  /// Copies inBytes of `in` to a device buffer of devBytes at inOffset, runs `call` on it and copies the whole
  /// buffer back to `out`; synchronizes.
  template <typename Fn>
  llvm::Error stage(void *out, const void *in, size_t inBytes, Fn &&call, int64_t devBytes, int64_t inOffset) {
    char *dev = nullptr;
    MEG_CUDART_TRY(cudaMallocAsync(reinterpret_cast<void **>(&dev), size_t(std::max<int64_t>(devBytes, 4)),
                                   defaultStream));
    cudaError_t err = cudaMemcpyAsync(dev + inOffset, in, inBytes, cudaMemcpyHostToDevice, defaultStream);
    ncclResult_t r = err == cudaSuccess ? call(dev) : ncclSuccess;
    if (err == cudaSuccess && r == ncclSuccess)
      err = cudaMemcpyAsync(out, dev, size_t(devBytes), cudaMemcpyDeviceToHost, defaultStream);
    cudaFreeAsync(dev, defaultStream);
    cudaError_t sync = cudaStreamSynchronize(defaultStream);
    if (r != ncclSuccess)
      return ncclFailure("host collective", r);
    MEG_CUDART_TRY(err);
    MEG_CUDART_TRY(sync);
    return llvm::Error::success();
  }

  int device;
  ncclComm_t worldComm = nullptr, tpComm = nullptr, dpComm = nullptr;
};

} // namespace

llvm::Expected<NcclEnvironment> meg::runtime::cuda::ncclEnvironment() {
  NcclEnvironment env;
  auto pick = [](const char *torchName, const char *slurmName) -> llvm::Expected<std::optional<int>> {
    auto v = envInt(torchName);
    if (!v || *v)
      return v;
    return envInt(slurmName);
  };
  auto rank = pick("RANK", "SLURM_PROCID");
  if (!rank)
    return rank.takeError();
  auto world = pick("WORLD_SIZE", "SLURM_NTASKS");
  if (!world)
    return world.takeError();
  auto local = pick("LOCAL_RANK", "SLURM_LOCALID");
  if (!local)
    return local.takeError();
  auto masterPort = envInt("MASTER_PORT");
  if (!masterPort)
    return masterPort.takeError();
  auto ncclPort = envInt("MEG_NCCL_PORT");
  if (!ncclPort)
    return ncclPort.takeError();
  const char *addr = std::getenv("MASTER_ADDR");
  if (!*rank || !*world || !addr || (!*masterPort && !*ncclPort))
    return failure("set RANK, WORLD_SIZE (or SLURM_PROCID, SLURM_NTASKS), MASTER_ADDR and MASTER_PORT (as torchrun "
                   "does)");
  env.rank = **rank;
  env.worldSize = **world;
  env.localRank = *local ? **local : 0;
  env.masterAddr = addr;
  env.port = *ncclPort ? **ncclPort : **masterPort + 1;
  if (env.worldSize < 1 || env.rank < 0 || env.rank >= env.worldSize)
    return failure(llvm::formatv("rank {0} is outside a world of {1}", env.rank, env.worldSize));
  return env;
}

llvm::Expected<std::unique_ptr<CudaCommunicator>>
meg::runtime::cuda::createNcclCommunicator(const NcclEnvironment &env, int meshDp, int meshTp, int device,
                                           cudaStream_t stream) {
  if (meshDp * meshTp != env.worldSize)
    return failure(llvm::formatv("the plan's mesh {0} x {1} needs {2} processes, the launcher started {3}", meshDp,
                                 meshTp, meshDp * meshTp, env.worldSize));
  ncclUniqueId id{};
  if (env.rank == 0) {
    MEG_NCCL_TRY(ncclGetUniqueId(&id));
    if (auto err = serveId(id, env.port, env.worldSize))
      return err;
  } else {
    auto timeout = envInt("MEG_NCCL_TIMEOUT");
    if (!timeout)
      return timeout.takeError();
    if (auto err = fetchId(env.masterAddr, env.port, std::chrono::seconds(*timeout ? **timeout : 300), id))
      return err;
  }
  auto comm = std::make_unique<NcclCommunicator>(meshDp, meshTp, env.rank, device, stream);
  if (auto err = comm->join(id))
    return err;
  return std::unique_ptr<CudaCommunicator>(std::move(comm));
}
