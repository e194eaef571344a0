//===- RankBoard.cpp - the ranks' side channel on one node --------------------===//
#include "runtime/comm/RankBoard.h"

#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MemoryBuffer.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

using namespace meg::runtime;

static_assert(std::atomic<int64_t>::is_always_lock_free && std::atomic<uint64_t>::is_always_lock_free &&
                  std::atomic<int32_t>::is_always_lock_free,
              "the board is shared between processes: its atomics must be lock-free");

llvm::Expected<std::unique_ptr<RankBoard>> RankBoard::open(llvm::StringRef name, int world, bool create) {
  size_t bytes = sizeof(Slot) * size_t(world);
  std::string n = name.str();
  int fd = ::shm_open(n.c_str(), create ? O_RDWR | O_CREAT | O_EXCL : O_RDWR, 0600);
  if (fd < 0 || (create && ::ftruncate(fd, off_t(bytes)) != 0)) {
    std::string why = std::strerror(errno);
    if (fd >= 0)
      ::close(fd);
    return llvm::createStringError(llvm::inconvertibleErrorCode(), "rank board " + n + ": " + why);
  }
  void *at = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ::close(fd);
  if (at == MAP_FAILED)
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "rank board " + n + ": " + std::strerror(errno));
  // A new segment is zero-filled: every slot reads pid 0, nothing entered, state Unknown.
  return std::unique_ptr<RankBoard>(new RankBoard(static_cast<Slot *>(at), bytes, world));
}

void RankBoard::unlink(llvm::StringRef name) { ::shm_unlink(name.str().c_str()); }

RankBoard::~RankBoard() { ::munmap(slots, bytes); }

namespace {

/// The state letter of /proc/<pid>/stat (R, S, D, T, t, Z, X, ...), or 0 when it cannot be read.
char processState(int64_t pid) {
  auto stat = llvm::MemoryBuffer::getFileAsStream("/proc/" + std::to_string(pid) + "/stat");
  if (!stat)
    return 0;
  // "pid (comm) S ...": the comm may hold spaces and parentheses, the state follows the last ')'.
  llvm::StringRef text = (*stat)->getBuffer();
  size_t close = text.rfind(')');
  return close == llvm::StringRef::npos || close + 2 >= text.size() ? 0 : text[close + 2];
}

bool gone(int64_t pid) {
  if (::kill(pid_t(pid), 0) != 0 && errno == ESRCH)
    return true;
  char state = processState(pid);
  return state == 'Z' || state == 'X';
}

bool stopped(int64_t pid) {
  char state = processState(pid);
  return state == 'T' || state == 't';
}

} // namespace

std::string RankBoard::health(int rank) const {
  int64_t pid = slots[rank].pid.load();
  if (pid <= 0)
    return "on another node";
  if (gone(pid))
    return llvm::formatv("process {0} is gone", pid).str();
  if (stopped(pid))
    return llvm::formatv("process {0} is stopped", pid).str();
  return llvm::formatv("process {0} is running", pid).str();
}

bool RankBoard::lost(int rank) const {
  int64_t pid = slots[rank].pid.load();
  if (pid <= 0 || slots[rank].state.load() != Running)
    return false;
  return gone(pid) || stopped(pid);
}
