//===- MpiWatch.cpp - the collective watchdog of an MPI process ---------------===//
#include "runtime/comm/MpiWatch.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/ScopeExit.h"
#include "llvm/Support/FormatVariadic.h"

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <ctime>
#include <unistd.h>

using namespace meg::runtime;

llvm::Error meg::runtime::mpiError(int code, llvm::StringRef what) {
  if (code == MPI_SUCCESS)
    return llvm::Error::success();
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(code, text, &len);
  return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                 "mpi " + what.str() + " failed: " + std::string(text, size_t(len)));
}

namespace {

/// Seconds a member of a collective may stay gone or stopped before the waiting ranks give up on it (at most the
/// collective timeout).
constexpr double kLostGrace = 15;

/// The SIGTERM handler writes one byte here; the watcher thread reads it (a byte 0 asks the thread to end).
int termPipe[2] = {-1, -1};

void onTerminate(int) {
  char byte = 1;
  [[maybe_unused]] ssize_t n = ::write(termPipe[1], &byte, 1);
}

} // namespace

std::unique_ptr<MpiWatch> MpiWatch::create(int rank, int world, llvm::StringRef program) {
  std::unique_ptr<MpiWatch> w(new MpiWatch(rank, world, program.str()));
  // The board's name, unique per job: rank 0's pid and clock, broadcast while every process is alive.
  char name[64] = {0};
  if (rank == 0)
    std::snprintf(name, sizeof(name), "/meg-board-%d-%lld", int(::getpid()),
                  (long long)std::chrono::steady_clock::now().time_since_epoch().count());
  MPI_Bcast(name, sizeof(name), MPI_CHAR, 0, MPI_COMM_WORLD);
  MPI_Comm node;
  if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node) == MPI_SUCCESS) {
    int local = 0;
    MPI_Comm_rank(node, &local);
    // The node's lowest rank creates the segment; the others open it once it exists; then the name goes.
    int ok = 1;
    if (local == 0) {
      auto board = RankBoard::open(name, world, /*create=*/true);
      ok = bool(board);
      if (board)
        w->board = std::move(*board);
      else
        llvm::consumeError(board.takeError());
    }
    MPI_Bcast(&ok, 1, MPI_INT, 0, node);
    if (ok && local != 0) {
      auto board = RankBoard::open(name, world, /*create=*/false);
      if (board)
        w->board = std::move(*board);
      else
        llvm::consumeError(board.takeError());
    }
    MPI_Barrier(node);
    if (ok && local == 0)
      RankBoard::unlink(name);
    MPI_Comm_free(&node);
  }
  if (w->board) {
    w->board->slot(rank).pid.store(::getpid());
    w->board->slot(rank).state.store(RankBoard::Running);
  }
  // The termination report: installed after MPI_Init, so that it replaces any handler MPI set.
  if (termPipe[0] < 0 && ::pipe(termPipe) == 0) {
    struct sigaction action = {};
    action.sa_handler = onTerminate;
    sigemptyset(&action.sa_mask);
    ::sigaction(SIGTERM, &action, nullptr);
    w->watcher = std::thread([raw = w.get()] { raw->watchTermination(); });
  }
  return w;
}

MpiWatch::~MpiWatch() {
  if (watcher.joinable()) {
    ::signal(SIGTERM, SIG_DFL);
    char stop = 0;
    [[maybe_unused]] ssize_t n = ::write(termPipe[1], &stop, 1);
    watcher.join();
  }
}

void MpiWatch::markFailed() {
  if (board)
    board->slot(rank).state.store(RankBoard::Failed);
}

void MpiWatch::markDone() {
  if (board)
    board->slot(rank).state.store(RankBoard::Done);
}

uint64_t MpiWatch::enter(unsigned axis) {
  uint64_t seq = seqs[axis]++;
  if (board)
    board->slot(rank).entered[axis].store(seq + 1, std::memory_order_release);
  return seq;
}

int MpiWatch::arrivals(unsigned axis, uint64_t seq, llvm::ArrayRef<int> group, std::vector<int> &arrived,
                       std::vector<std::string> &missing, std::vector<std::string> &lost) const {
  int firstLost = -1, firstMissing = -1;
  for (int m : group) {
    if (m == rank || (board && board->arrived(m, axis, seq))) {
      arrived.push_back(m);
      if (m != rank && board->lost(m)) {
        lost.push_back(llvm::formatv("{0} ({1})", m, board->health(m)).str());
        firstLost = firstLost < 0 ? m : firstLost;
      }
      continue;
    }
    missing.push_back(board ? llvm::formatv("{0} ({1})", m, board->health(m)).str()
                            : std::to_string(m) + " (unknown: no shared memory)");
    if (board && board->lost(m))
      firstLost = firstLost < 0 ? m : firstLost;
    firstMissing = firstMissing < 0 ? m : firstMissing;
  }
  return firstLost >= 0 ? firstLost : firstMissing;
}

llvm::Error MpiWatch::wait(MPI_Request &request, const CollectiveWatch &watch, unsigned axis, uint64_t seq,
                           int64_t bytes, llvm::ArrayRef<int> group, llvm::StringRef what) {
  {
    std::lock_guard<std::mutex> lock(currentLock);
    current = {true, watch, axis, seq, bytes, group.vec()};
  }
  auto done = llvm::make_scope_exit([&] {
    std::lock_guard<std::mutex> lock(currentLock);
    current.waiting = false;
  });
  double timeout = watch.timeoutSeconds();
  // A member whose process is gone or stopped for kLostGrace seconds will not come: give up then, before the timeout.
  double grace = std::min(timeout, kLostGrace);
  auto start = std::chrono::steady_clock::now(), lostSince = start;
  bool anyLost = false;
  // Open MPI progresses non-blocking collectives inside MPI_Test: poll at once for short collectives, then every
  // 50 microseconds so that ranks sharing cores get them.
  for (unsigned polls = 0;; ++polls) {
    int complete = 0;
    if (auto err = mpiError(MPI_Test(&request, &complete, MPI_STATUS_IGNORE), what))
      return err;
    if (complete)
      return llvm::Error::success();
    if (polls < 100)
      continue;
    struct timespec pause = {0, 50000};
    ::nanosleep(&pause, nullptr);
    if (timeout <= 0 || polls % 1000 != 0) // about every 50 ms
      continue;
    auto now = std::chrono::steady_clock::now();
    double waited = std::chrono::duration<double>(now - start).count();
    bool lostNow = board && llvm::any_of(group, [&](int m) { return m != rank && board->lost(m); });
    if (lostNow && !anyLost)
      lostSince = now;
    anyLost = lostNow;
    bool givingUp = lostNow && std::chrono::duration<double>(now - lostSince).count() >= grace;
    if (waited <= timeout && !givingUp)
      continue;
    std::vector<int> arrived;
    std::vector<std::string> missing, lost;
    int suspect = arrivals(axis, seq, group, arrived, missing, lost);
    if (board)
      board->slot(rank).blamed.store(suspect + 1);
    markFailed();
    std::string collective = watch.describe(axis, seq, bytes, group);
    if (!givingUp)
      return collectiveTimeoutError(rank, timeout, collective, arrived, missing, lost);
    return llvm::make_error<CollectiveTimedOut>(
        llvm::formatv("rank {0}: rank {1} is lost ({2}): gave up after {3:F1} s in {4}: {5}", rank, suspect,
                      board->health(suspect), waited, collective, arrivalText(arrived, missing, lost))
            .str());
  }
}

void MpiWatch::watchTermination() {
  char byte = 0;
  while (::read(termPipe[0], &byte, 1) < 0 && errno == EINTR)
    ;
  if (byte == 0)
    return; // the watch ends
  if (board && board->slot(rank).state.load() == RankBoard::Failed)
    std::_Exit(1); // this rank has reported its error already
  std::string report = terminationReport();
  if (board)
    board->slot(rank).state.store(RankBoard::Ended);
  if (!report.empty()) {
    std::string line = program + ": error: " + report + "\n";
    [[maybe_unused]] ssize_t n = ::write(2, line.data(), line.size());
  }
  std::_Exit(1);
}

std::string MpiWatch::terminationReport() {
  // One line per job for an error a rank reported (it failed and blamed nobody): the others end quietly.
  bool named = false, reported = false;
  std::string causes;
  for (int r = 0; r < world && board; ++r) {
    if (r == rank)
      continue;
    std::string cause;
    int blamed = board->slot(r).blamed.load() - 1;
    if (board->slot(r).state.load() == RankBoard::Failed) {
      reported = true;
      named |= blamed >= 0;
      cause = blamed >= 0 ? llvm::formatv("rank {0} timed out waiting for rank {1}", r, blamed).str()
                          : llvm::formatv("rank {0} failed", r).str();
    } else if (board->lost(r)) {
      named = true;
      cause = llvm::formatv("rank {0} was lost ({1})", r, board->health(r)).str();
    }
    if (!cause.empty())
      causes += (causes.empty() ? "" : "; ") + cause;
  }
  if (reported && !named)
    return "";
  std::string line = llvm::formatv("rank {0}: terminated (SIGTERM from mpirun)", rank).str();
  if (!causes.empty())
    line += ": " + causes;
  std::lock_guard<std::mutex> lock(currentLock);
  if (!current.waiting)
    return line + llvm::formatv("; rank {0} was not in a collective", rank).str();
  std::vector<int> arrived;
  std::vector<std::string> missing, lost;
  arrivals(current.axis, current.seq, current.group, arrived, missing, lost);
  return line + llvm::formatv("; rank {0} was in {1}: {2}", rank,
                              current.watch.describe(current.axis, current.seq, current.bytes, current.group),
                              arrivalText(arrived, missing, lost))
                    .str();
}
