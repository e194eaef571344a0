//===- PipelineSchedule.cpp - the 1F1B schedule of a pipeline stage -----------===//
#include "runtime/plan/PipelineSchedule.h"

#include "llvm/Support/FormatVariadic.h"

#include <algorithm>

using namespace meg;
using namespace meg::runtime;

std::vector<PipePhase> meg::runtime::oneFOneB(int stages, int stage, int microBatches) {
  std::vector<PipePhase> phases;
  int warmup = std::min(stages - stage - 1, microBatches);
  int forward = 0, backward = 0;
  for (; forward < warmup; ++forward)
    phases.push_back({false, forward});
  // Steady state: one forward, one backward, while forwards remain.
  while (forward < microBatches) {
    phases.push_back({false, forward++});
    phases.push_back({true, backward++});
  }
  while (backward < microBatches)
    phases.push_back({true, backward++});
  return phases;
}

int meg::runtime::activationSlots(int stages, int stage, int microBatches) {
  return std::max(1, std::min(stages - stage, microBatches));
}

int meg::runtime::maxInFlight(llvm::ArrayRef<PipePhase> phases) {
  int inFlight = 0, most = 0;
  for (const PipePhase &p : phases) {
    inFlight += p.backward ? -1 : 1;
    most = std::max(most, inFlight);
  }
  return most;
}

std::string meg::runtime::scheduleText(llvm::ArrayRef<PipePhase> phases) {
  std::string text;
  for (const PipePhase &p : phases) {
    if (!text.empty())
      text += ' ';
    text += (p.backward ? "B" : "F") + std::to_string(p.microBatch);
  }
  return text;
}

llvm::Error meg::runtime::checkSchedule(llvm::ArrayRef<PipePhase> phases, int microBatches, int slots) {
  auto error = [](const llvm::Twine &what) {
    return llvm::createStringError(llvm::inconvertibleErrorCode(), "pipeline schedule: " + what);
  };
  if (phases.size() != size_t(2 * microBatches))
    return error(llvm::formatv("{0} phases for {1} micro-batches (expected {2})", phases.size(), microBatches,
                               2 * microBatches));
  int forward = 0, backward = 0;
  for (size_t i = 0; i < phases.size(); ++i) {
    const PipePhase &p = phases[i];
    int &next = p.backward ? backward : forward;
    if (p.microBatch != next)
      return error(llvm::formatv("phase {0} is {1}{2}, expected {1}{3}", i, p.backward ? "B" : "F", p.microBatch,
                                 next));
    ++next;
    if (backward > forward)
      return error(llvm::formatv("phase {0} runs the backward of micro-batch {1} before its forward", i,
                                 p.microBatch));
    if (forward - backward > slots)
      return error(llvm::formatv("phase {0}: {1} micro-batches in flight, the stage has {2} activation slots", i,
                                 forward - backward, slots));
  }
  return llvm::Error::success();
}
