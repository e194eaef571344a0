//===- TcpRendezvous.cpp - the processes of a --ranks env job over TCP ---------===//
//
// Wire format (host byte order: the processes of a job run the same binary on the same kind of machine):
//   hello  (rank r -> 0): magic, r, worldSize       ack (0 -> r): magic, 0 (ok) or 1 (refused; rank 0 reports why)
//   broadcast: the bytes, 0 -> every r              firstFailure: r -> 0 its int (failed ? r : -1), 0 -> r the minimum
//
//===----------------------------------------------------------------------===//
#include "runtime/comm/TcpRendezvous.h"

#include "llvm/Support/FormatVariadic.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>
#include <thread>
#include <utility>

using namespace meg::runtime;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int32_t kMagic = 0x4d454752; // "MEGR"

llvm::Error failure(const llvm::Twine &what) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), "--ranks env: " + what);
}

/// A socket closed on scope exit unless released.
struct Fd {
  int fd = -1;
  explicit Fd(int fd = -1) : fd(fd) {}
  Fd(const Fd &) = delete;
  ~Fd() {
    if (fd >= 0)
      ::close(fd);
  }
  int release() { return std::exchange(fd, -1); }
};

/// Waits until `fd` is readable (or writable) before `deadline`; false on timeout. No deadline: waits as long as it
/// takes (a peer that dies closes the socket, which makes it readable).
bool waitFor(int fd, short events, std::optional<Clock::time_point> deadline) {
  while (true) {
    int ms = -1;
    if (deadline) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - Clock::now()).count();
      if (left <= 0)
        return false;
      ms = int(std::min<int64_t>(left, 1 << 30));
    }
    pollfd p{fd, events, 0};
    int r = ::poll(&p, 1, ms);
    if (r > 0)
      return true;
    if (r == 0)
      return false;
    if (errno != EINTR)
      return true; // let the read or write report the error
  }
}

/// Reads or writes exactly n bytes; an error names `what` and `who`.
llvm::Error transfer(int fd, void *data, size_t n, bool send, const llvm::Twine &who,
                     std::optional<Clock::time_point> deadline) {
  char *p = static_cast<char *>(data);
  while (n) {
    if (!waitFor(fd, send ? POLLOUT : POLLIN, deadline))
      return failure("timed out waiting for " + who);
    ssize_t k = send ? ::send(fd, p, n, MSG_NOSIGNAL) : ::recv(fd, p, n, 0);
    if (k == 0)
      return failure(who + " left the job (connection closed)");
    if (k < 0) {
      if (errno == EINTR || errno == EAGAIN)
        continue;
      return failure(llvm::Twine("talking to ") + who + ": " + std::strerror(errno));
    }
    p += k;
    n -= size_t(k);
  }
  return llvm::Error::success();
}

std::string rankName(int r) { return "rank " + std::to_string(r); }

} // namespace

TcpRendezvous::~TcpRendezvous() {
  for (int fd : peers)
    if (fd >= 0)
      ::close(fd);
}

llvm::Expected<std::unique_ptr<TcpRendezvous>> TcpRendezvous::meet(const LaunchEnvironment &env) {
  std::unique_ptr<TcpRendezvous> t(new TcpRendezvous(env));
  auto deadline = Clock::now() + std::chrono::seconds(env.timeoutSec);
  std::string where = llvm::formatv("{0}:{1}", env.masterAddr, env.port).str();
  if (env.worldSize == 1)
    return t;

  if (env.rank != 0) {
    std::string portText = std::to_string(env.port);
    Fd sock;
    std::string lastError = "no answer";
    while (sock.fd < 0) {
      addrinfo hints{}, *found = nullptr;
      hints.ai_family = AF_UNSPEC;
      hints.ai_socktype = SOCK_STREAM;
      int gai = ::getaddrinfo(env.masterAddr.c_str(), portText.c_str(), &hints, &found);
      if (gai != 0)
        lastError = std::string("cannot resolve MASTER_ADDR: ") + ::gai_strerror(gai);
      for (addrinfo *a = found; a && sock.fd < 0; a = a->ai_next) {
        Fd s(::socket(a->ai_family, a->ai_socktype, a->ai_protocol));
        if (s.fd >= 0 && ::connect(s.fd, a->ai_addr, a->ai_addrlen) == 0)
          sock.fd = s.release();
        else
          lastError = std::strerror(errno);
      }
      if (found)
        ::freeaddrinfo(found);
      if (sock.fd >= 0)
        break;
      if (Clock::now() >= deadline)
        return failure(llvm::formatv("rank {0} found no rank 0 at {1} within {2} s ({3}; is rank 0 running? "
                                     "MEG_RENDEZVOUS_TIMEOUT sets the wait)",
                                     env.rank, where, env.timeoutSec, lastError));
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    int32_t hello[3] = {kMagic, env.rank, env.worldSize}, ack[2] = {0, 0};
    if (auto err = transfer(sock.fd, hello, sizeof(hello), true, "rank 0 at " + where, deadline))
      return err;
    if (auto err = transfer(sock.fd, ack, sizeof(ack), false, "rank 0 at " + where, deadline))
      return err;
    if (ack[0] != kMagic)
      return failure(llvm::formatv("{0} is not a meg rendezvous (another service on that port?)", where));
    if (ack[1] != 0)
      return failure(llvm::formatv("rank 0 refused rank {0} (it reports why)", env.rank));
    t->peers.push_back(sock.release());
    return t;
  }

  Fd server(::socket(AF_INET, SOCK_STREAM, 0));
  if (server.fd < 0)
    return failure(llvm::Twine("socket: ") + std::strerror(errno));
  int one = 1;
  ::setsockopt(server.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  addr.sin_port = htons(uint16_t(env.port));
  if (::bind(server.fd, reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) != 0 ||
      ::listen(server.fd, env.worldSize) != 0)
    return failure(llvm::formatv("rank 0 cannot listen on port {0}: {1} (set MEG_RENDEZVOUS_PORT to a free port)",
                                 env.port, std::strerror(errno)));
  t->peers.assign(size_t(env.worldSize), -1);
  for (int joined = 1; joined < env.worldSize;) {
    if (!waitFor(server.fd, POLLIN, deadline))
      return failure(llvm::formatv("{0} of {1} ranks did not reach rank 0 on port {2} within {3} s (the launcher "
                                   "must start WORLD_SIZE processes; MEG_RENDEZVOUS_TIMEOUT sets the wait)",
                                   env.worldSize - joined, env.worldSize, env.port, env.timeoutSec));
    Fd client(::accept(server.fd, nullptr, nullptr));
    if (client.fd < 0)
      continue;
    int32_t hello[3] = {0, 0, 0};
    // A rank says hello at once; something else that connected and stays silent is dropped after a few seconds.
    auto helloDeadline = std::min(deadline, Clock::now() + std::chrono::seconds(5));
    if (auto err = transfer(client.fd, hello, sizeof(hello), false, "a connecting process", helloDeadline)) {
      llvm::consumeError(std::move(err)); // not one of ours, or gone: keep waiting for the ranks
      continue;
    }
    if (hello[0] != kMagic)
      continue;
    int r = hello[1];
    std::string problem;
    if (hello[2] != env.worldSize)
      problem = llvm::formatv("rank {0} has WORLD_SIZE {1}, rank 0 has {2}", r, hello[2], env.worldSize).str();
    else if (r < 1 || r >= env.worldSize)
      problem = llvm::formatv("a process says it is rank {0}, outside 1..{1}", r, env.worldSize - 1).str();
    else if (t->peers[size_t(r)] >= 0)
      problem = llvm::formatv("two processes say they are rank {0}", r).str();
    int32_t ack[2] = {kMagic, problem.empty() ? 0 : 1};
    llvm::Error sent = transfer(client.fd, ack, sizeof(ack), true, rankName(r), deadline);
    if (!problem.empty()) {
      llvm::consumeError(std::move(sent));
      return failure(problem);
    }
    if (sent)
      return sent;
    t->peers[size_t(r)] = client.release();
    ++joined;
  }
  return t;
}

llvm::Error TcpRendezvous::broadcast(llvm::MutableArrayRef<uint8_t> data) {
  if (env.rank != 0)
    return env.worldSize == 1 ? llvm::Error::success()
                              : transfer(peers[0], data.data(), data.size(), false, "rank 0", std::nullopt);
  for (int r = 1; r < env.worldSize; ++r)
    if (auto err = transfer(peers[size_t(r)], data.data(), data.size(), true, rankName(r), std::nullopt))
      return err;
  return llvm::Error::success();
}

llvm::Expected<int> TcpRendezvous::firstFailure(bool failed) {
  int32_t first = failed ? env.rank : -1;
  if (env.worldSize == 1)
    return first;
  if (env.rank != 0) {
    if (auto err = transfer(peers[0], &first, sizeof(first), true, "rank 0", std::nullopt))
      return err;
    if (auto err = transfer(peers[0], &first, sizeof(first), false, "rank 0", std::nullopt))
      return err;
    return first;
  }
  for (int r = 1; r < env.worldSize; ++r) {
    int32_t theirs = -1;
    if (auto err = transfer(peers[size_t(r)], &theirs, sizeof(theirs), false, rankName(r), std::nullopt))
      return err;
    if (theirs >= 0 && (first < 0 || theirs < first))
      first = theirs;
  }
  for (int r = 1; r < env.worldSize; ++r)
    if (auto err = transfer(peers[size_t(r)], &first, sizeof(first), true, rankName(r), std::nullopt))
      return err;
  return first;
}
