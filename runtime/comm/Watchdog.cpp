//===- Watchdog.cpp - naming a collective that does not complete --------------===//
#include "runtime/comm/Watchdog.h"

#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/raw_ostream.h"

using namespace meg::runtime;

char PeerFailed::ID = 0;
char CollectiveTimedOut::ID = 0;

void CollectiveTimedOut::log(llvm::raw_ostream &os) const { os << message; }

void PeerFailed::log(llvm::raw_ostream &os) const { os << "rank " << rank << " failed"; }

llvm::StringRef meg::runtime::watchAxisName(unsigned axis) {
  static const char *names[kWatchAxes] = {"dp", "tp", "world"};
  return axis < kWatchAxes ? names[axis] : "?";
}

std::string meg::runtime::rankList(llvm::ArrayRef<int> ranks) {
  std::string list;
  for (int r : ranks)
    list += (list.empty() ? "" : ",") + std::to_string(r);
  return list.empty() ? "none" : list;
}

static std::string joined(llvm::ArrayRef<std::string> items) {
  std::string text;
  for (const std::string &item : items)
    text += (text.empty() ? "" : ", ") + item;
  return text.empty() ? "none" : text;
}

std::string meg::runtime::arrivalText(llvm::ArrayRef<int> arrived, llvm::ArrayRef<std::string> missing,
                                      llvm::ArrayRef<std::string> lost) {
  std::string text = "arrived " + rankList(arrived) + "; not arrived " + joined(missing);
  return lost.empty() ? text : text + "; lost " + joined(lost);
}

std::string CollectiveWatch::describe(unsigned axis, uint64_t seq, int64_t bytes, llvm::ArrayRef<int> group) const {
  std::string step = label.step < 0 ? std::string("outside the plan's steps")
                                    : llvm::formatv("step {0} '{1}'{2}", label.step, label.op,
                                                    label.value.empty() ? "" : " " + label.value.str())
                                          .str();
  llvm::StringRef name = watchAxisName(axis);
  return llvm::formatv("{0} collective #{1} ({2}, {3} bytes, {0} group {{{4}})", name, seq, step, bytes,
                       rankList(group))
      .str();
}

llvm::Error meg::runtime::collectiveTimeoutError(int rank, double seconds, llvm::StringRef what,
                                                 llvm::ArrayRef<int> arrived, llvm::ArrayRef<std::string> missing,
                                                 llvm::ArrayRef<std::string> lost) {
  return llvm::make_error<CollectiveTimedOut>(llvm::formatv("rank {0}: collective timeout after {1} s in {2}: {3}",
                                                            rank, seconds, what, arrivalText(arrived, missing, lost))
                                                  .str());
}
