//===- FaultInjection.cpp - test-only faults of one rank -----------------------===//
#include "runtime/exec/FaultInjection.h"

#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringRef.h"

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <thread>

using namespace meg::runtime;

namespace {

struct Fault {
  enum Kind { None, Fail, Stall, Malformed } kind = None;
  int rank = -1;
  size_t step = 0;
  double seconds = 0;
};

Fault parseFault() {
  Fault f;
  const char *text = std::getenv("MEG_TEST_FAULT");
  if (!text || !*text)
    return f;
  llvm::SmallVector<llvm::StringRef, 4> parts;
  llvm::StringRef(text).split(parts, ':');
  f.kind = Fault::Malformed;
  if (parts.size() < 3 || parts[1].getAsInteger(10, f.rank) || parts[2].getAsInteger(10, f.step))
    return f;
  if (parts[0] == "fail" && parts.size() == 3)
    f.kind = Fault::Fail;
  else if (parts[0] == "stall" && parts.size() == 4 && !parts[3].getAsDouble(f.seconds) && f.seconds >= 0)
    f.kind = Fault::Stall;
  return f;
}

} // namespace

llvm::Error meg::runtime::injectFault(int rank, size_t step) {
  static const Fault fault = parseFault();
  static std::atomic<bool> fired{false};
  if (fault.kind == Fault::None)
    return llvm::Error::success();
  if (fault.kind == Fault::Malformed)
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "MEG_TEST_FAULT: expected fail:RANK:STEP or stall:RANK:STEP:SECONDS");
  if (rank != fault.rank || step != fault.step || fired.exchange(true))
    return llvm::Error::success();
  if (fault.kind == Fault::Fail)
    return llvm::createStringError(llvm::inconvertibleErrorCode(), "rank %d: step %zu: injected fault", rank, step);
  std::this_thread::sleep_for(std::chrono::duration<double>(fault.seconds));
  return llvm::Error::success();
}
