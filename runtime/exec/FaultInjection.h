//===- FaultInjection.h - test-only faults of one rank -----------*- C++ -*-===//
//
// For the tests of the collective watchdog in threads mode (test/lit/watchdog), where a rank cannot be killed or
// stopped on its own: the environment variable MEG_TEST_FAULT makes one rank misbehave before one plan step, once
// per process:
//   MEG_TEST_FAULT=fail:RANK:STEP       the rank fails there with `injected fault` (as a failing kernel would)
//   MEG_TEST_FAULT=stall:RANK:STEP:S    the rank stops there for S seconds (as a stuck rank would), then goes on
// Unset (always, outside tests), it costs one branch per step. A malformed value is an error at the first step.
//
// For the tests of the divergence localizer (megrun --dump-activations, megdiff: test/lit/diverge), the variable
// MEG_TEST_PERTURB makes every rank change one value of every step it runs:
//   MEG_TEST_PERTURB=NAME[,DELTA]       after the step computing NAME, DELTA (default 1e-3) is added to every element
//                                       of that result on every rank (its shard, or its partial sum's addend)
// NAME is a value's key (ir/ValueKey.h, e.g. `gelu:0123456789ab`, as megrun --dump-activations lists them) or a
// step's `%N` (its first result). A malformed value, or a NAME no step of the plan computes, is an error at the
// first step.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_RUNTIME_EXEC_FAULTINJECTION_H
#define MEG_RUNTIME_EXEC_FAULTINJECTION_H

#include "runtime/exec/Backend.h"

#include "llvm/Support/Error.h"

#include <cstddef>

namespace meg::runtime {

/// Applies MEG_TEST_FAULT before step `step` of rank `rank` (see above).
llvm::Error injectFault(int rank, size_t step);

/// Applies MEG_TEST_PERTURB after step `step` of `plan` ran on `backend` (see above).
llvm::Error perturbResult(const LoadedPlan &plan, size_t step, Backend &backend);
/// Whether MEG_TEST_PERTURB is set (the CUDA backend then never replays a captured graph).
bool perturbationAsked();

} // namespace meg::runtime

#endif
