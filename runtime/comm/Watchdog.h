//===- Watchdog.h - naming a collective that does not complete ---*- C++ -*-===//
//
// A run must never hang in a collective: a rank that waits longer than the collective timeout (megrun
// --collective-timeout S, 0 = forever) fails with one line naming the collective and who is missing:
//   rank 0: collective timeout after 5 s in tp collective #57 (step 48 'all_reduce' %134, 8192 bytes, tp group
//   {0,1,2,3}): arrived 0,1,3; not arrived 2 (process 4321 is stopped)
// CollectiveWatch is each communicator's part of that: the timeout, the label of the plan step being run (set by the
// executor around each collective step), and the sequence number of every collective per axis (dp, tp and the world
// collectives of the session), which all members of a group agree on because the plan set's collective order is
// proven before the run (runtime/plan/CollectiveOrder.h). How a communicator learns who has arrived is its own:
// in-process ranks see each other's arrival, MPI processes publish theirs on a side channel
// (runtime/comm/RankBoard.h).
//
//===----------------------------------------------------------------------===//
#ifndef MEG_RUNTIME_COMM_WATCHDOG_H
#define MEG_RUNTIME_COMM_WATCHDOG_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <string>

namespace meg::runtime {

/// The sequence counters: one per mesh axis (CommAxis::DP = 0, TP = 1) and one for world collectives.
constexpr unsigned kWatchWorld = 2, kWatchAxes = 3;
llvm::StringRef watchAxisName(unsigned axis);

/// The plan step a collective belongs to; the strings belong to the plan (alive for the run).
struct CollectiveLabel {
  int64_t step = -1; ///< -1: not a plan step (a collective of the session itself)
  llvm::StringRef op, value;
};

class CollectiveWatch {
public:
  /// Seconds a rank may wait in one collective; 0 = forever.
  void setTimeout(double seconds) { timeout = seconds; }
  double timeoutSeconds() const { return timeout; }
  void setLabel(const CollectiveLabel &l) { label = l; }
  void clearLabel() { label = CollectiveLabel(); }
  /// Counts a collective on `axis` (0 dp, 1 tp, 2 world) and returns its sequence number (0, 1, ...).
  uint64_t enter(unsigned axis) { return seqs[axis]++; }
  /// `tp collective #57 (step 48 'all_reduce' %134, 8192 bytes, tp group {0,1,2,3})` for the collective just
  /// entered on `axis` with sequence number `seq`.
  std::string describe(unsigned axis, uint64_t seq, int64_t bytes, llvm::ArrayRef<int> group) const;

private:
  double timeout = 0;
  CollectiveLabel label;
  uint64_t seqs[kWatchAxes] = {0, 0, 0};
};

/// `0,1,3` (`none` when empty).
std::string rankList(llvm::ArrayRef<int> ranks);
/// `arrived a,b; not arrived c (why), d`: who is in a collective and who is not, with what is known of the absent;
/// then `; lost e (why)` for members that arrived but whose process has since died or stopped.
std::string arrivalText(llvm::ArrayRef<int> arrived, llvm::ArrayRef<std::string> missing,
                        llvm::ArrayRef<std::string> lost = {});

/// CollectiveTimedOut `rank R: collective timeout after S s in <what>: arrived a,b; not arrived c (why), d`:
/// `missing` holds each absent rank with what is known about it.
llvm::Error collectiveTimeoutError(int rank, double seconds, llvm::StringRef what, llvm::ArrayRef<int> arrived,
                                   llvm::ArrayRef<std::string> missing, llvm::ArrayRef<std::string> lost = {});

/// A rank waited in a collective past the timeout; the message names the collective and who did not arrive. It is
/// passed up unchanged (not prefixed with the step: it names it).
class CollectiveTimedOut : public llvm::ErrorInfo<CollectiveTimedOut> {
public:
  static char ID;
  explicit CollectiveTimedOut(std::string message) : message(std::move(message)) {}
  void log(llvm::raw_ostream &os) const override;
  std::error_code convertToErrorCode() const override { return llvm::inconvertibleErrorCode(); }
  std::string message;
};

/// A collective ended because another rank of this process failed or timed out first (that rank reports).
class PeerFailed : public llvm::ErrorInfo<PeerFailed> {
public:
  static char ID;
  explicit PeerFailed(int rank) : rank(rank) {}
  void log(llvm::raw_ostream &os) const override;
  std::error_code convertToErrorCode() const override { return llvm::inconvertibleErrorCode(); }
  int rank; ///< the rank that failed first
};

} // namespace meg::runtime

#endif
