//===- FuzzPlan.cpp - libFuzzer target: the plan loader ------------------===//
//
// parsePlan (FlatBuffers verification, then the plan's own checks) on arbitrary bytes; an accepted plan's step
// labels are formatted as megrun's diagnostics do.
//
//===----------------------------------------------------------------------===//
#include "runtime/plan/Plan.h"

#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  auto plan = meg::runtime::parsePlan(llvm::ArrayRef<uint8_t>(data, size), "fuzz.megplan");
  if (!plan) {
    llvm::consumeError(plan.takeError());
    return 0;
  }
  for (size_t i = 0; i < plan->steps.size(); ++i)
    (void)plan->stepLabel(i);
  return 0;
}
