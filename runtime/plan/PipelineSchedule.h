//===- PipelineSchedule.h - the 1F1B schedule of a pipeline stage -*- C++ -*-===//
//
// Pipeline parallelism runs m micro-batches per step through P stages with PipeDream-Flush's one-forward-one-backward
// schedule (Narayanan et al. 2021; Megatron-LM's default): stage r first runs min(P - r - 1, m) warm-up forwards, then
// alternates one forward and one backward until the forwards are done, then the remaining backwards (cool-down).
// At most min(P - r, m) micro-batches are in flight on stage r (forward run, backward not yet), and they are
// consecutive, so their activations fit in that many slots, micro-batch i in slot i % slots. The compiler writes the
// schedule into each plan (lower-to-plan), the report prints it, the loader checks it and the executor follows it.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_RUNTIME_PLAN_PIPELINESCHEDULE_H
#define MEG_RUNTIME_PLAN_PIPELINESCHEDULE_H

#include "runtime/plan/Plan.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/Support/Error.h"

#include <string>
#include <vector>

namespace meg::runtime {

/// The 1F1B phases of `stage` (0-based) of `stages`, over `microBatches` micro-batches.
std::vector<PipePhase> oneFOneB(int stages, int stage, int microBatches);
/// The activation slots `stage` needs: min(stages - stage, microBatches).
int activationSlots(int stages, int stage, int microBatches);
/// The most micro-batches in flight (forward done, backward not yet) at any point of `phases`.
int maxInFlight(llvm::ArrayRef<PipePhase> phases);
/// `F0 F1 B0 F2 B1 ...`.
std::string scheduleText(llvm::ArrayRef<PipePhase> phases);
/// Checks that `phases` runs the forward and then the backward of every micro-batch 0 .. m - 1 exactly once, the
/// forwards and the backwards each in micro-batch order, with at most `slots` micro-batches in flight.
llvm::Error checkSchedule(llvm::ArrayRef<PipePhase> phases, int microBatches, int slots);

} // namespace meg::runtime

#endif
