//===- RankBoard.h - the ranks' side channel on one node ---------*- C++ -*-===//
//
// A shared-memory segment (POSIX shm) with one slot per world rank, written only by its rank and read by all: the
// rank's process id, how many collectives it has entered on each watched axis (dp, tp, world), and whether it is
// running, failed (reported its own error) or done. It works when MPI no longer does (a peer died, a peer is stopped):
// a rank waiting in a collective learns which members have arrived, and whether a missing one's process is gone or
// stopped (kill(pid, 0) and /proc/<pid>/stat). Each node has its own segment: ranks on other nodes keep pid 0 and read
// as "on another node".
//
//===----------------------------------------------------------------------===//
#ifndef MEG_RUNTIME_COMM_RANKBOARD_H
#define MEG_RUNTIME_COMM_RANKBOARD_H

#include "runtime/comm/Watchdog.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

namespace meg::runtime {

class RankBoard {
public:
  /// Failed: reported its own error; Ended: terminated by the job after another's failure (said so); Done: finished.
  enum State : int32_t { Unknown = 0, Running = 1, Failed = 2, Done = 3, Ended = 4 };
  struct Slot {
    std::atomic<int64_t> pid;
    std::atomic<uint64_t> entered[kWatchAxes]; ///< collectives entered per axis (the last one's number + 1)
    std::atomic<int32_t> state;
    std::atomic<int32_t> blamed; ///< after a timeout: 1 + the rank this one waited for (0: none)
  };

  /// Creates (`create`) or opens the segment `name` ("/meg-...") of `world` slots, mapped until destruction.
  static llvm::Expected<std::unique_ptr<RankBoard>> open(llvm::StringRef name, int world, bool create);
  /// Removes the name (the mappings stay valid).
  static void unlink(llvm::StringRef name);
  ~RankBoard();
  RankBoard(const RankBoard &) = delete;
  RankBoard &operator=(const RankBoard &) = delete;

  int world() const { return worldSize; }
  Slot &slot(int rank) { return slots[rank]; }
  /// `rank` has entered collective #seq on `axis` (or a later one).
  bool arrived(int rank, unsigned axis, uint64_t seq) const {
    return slots[rank].entered[axis].load(std::memory_order_acquire) > seq;
  }
  /// What is known of `rank`'s process: "process P is gone", "process P is stopped", "process P is running",
  /// "on another node".
  std::string health(int rank) const;
  /// Whether `rank`'s process has ended (gone) or is stopped without having said why (state Running).
  bool lost(int rank) const;

private:
  RankBoard(Slot *slots, size_t bytes, int world) : slots(slots), bytes(bytes), worldSize(world) {}
  Slot *slots;
  size_t bytes;
  int worldSize;
};

} // namespace meg::runtime

#endif
