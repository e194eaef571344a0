//===- FaultInjection.cpp - test-only faults of one rank -----------------------===//
#include "runtime/exec/FaultInjection.h"
#include "runtime/exec/OpArgs.h"

#include "kernels/Half.h"

#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringRef.h"

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

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

struct Perturbation {
  bool asked = false, malformed = false;
  std::string name;
  float delta = 1e-3f;
};

Perturbation parsePerturbation() {
  Perturbation p;
  const char *text = std::getenv("MEG_TEST_PERTURB");
  if (!text || !*text)
    return p;
  p.asked = true;
  auto [name, delta] = llvm::StringRef(text).split(',');
  double d = p.delta;
  p.name = name.str();
  p.malformed = name.empty() || (!delta.empty() && delta.getAsDouble(d)) || !(d == d);
  p.delta = float(d);
  return p;
}

const Perturbation &perturbation() {
  static const Perturbation p = parsePerturbation();
  return p;
}

} // namespace

bool meg::runtime::perturbationAsked() { return perturbation().asked; }

llvm::Error meg::runtime::perturbResult(const LoadedPlan &plan, size_t step, Backend &backend) {
  const Perturbation &p = perturbation();
  if (!p.asked)
    return llvm::Error::success();
  auto fail = [](const llvm::Twine &what) {
    return llvm::createStringError(llvm::inconvertibleErrorCode(), "MEG_TEST_PERTURB: " + what);
  };
  if (p.malformed)
    return fail("expected NAME or NAME,DELTA (a value's key or %N, a finite number)");
  auto computes = [&](const PlanStep &s, size_t r) {
    return (r < s.keys.size() && s.keys[r] == p.name) || (r == 0 && s.value == p.name);
  };
  if (step == 0) {
    bool found = false;
    for (const PlanStep &s : plan.steps)
      for (size_t r = 0; r < s.results.size(); ++r)
        found |= computes(s, r);
    if (!found)
      return fail(plan.path + ": no step computes '" + p.name + "'");
  }
  const PlanStep &s = plan.steps[step];
  std::vector<uint8_t> bytes;
  for (size_t r = 0; r < s.results.size(); ++r) {
    const TensorSlot &slot = s.results[r];
    if (!computes(s, r))
      continue;
    if (slot.dtype == DType::I32)
      return fail(plan.path + ": '" + p.name + "' is an i32 tensor");
    bytes.resize(size_t(slot.bytes()));
    backend.readTensor(slot, bytes);
    kernels::Elem elem = elemOf(slot.dtype);
    for (int64_t i = 0; i < slot.numel(); ++i)
      kernels::storeFromFloat(bytes.data(), elem, i, kernels::loadAsFloat(bytes.data(), elem, i) + p.delta);
    backend.writeTensor(slot, bytes);
  }
  return llvm::Error::success();
}

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
