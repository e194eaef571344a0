//===- FaultInjection.h - test-only faults of one rank -----------*- C++ -*-===//
//
// For the tests of the collective watchdog in threads mode (test/lit/watchdog), where a rank cannot be killed or
// stopped on its own: the environment variable MEG_TEST_FAULT makes one rank misbehave before one plan step, once
// per process:
//   MEG_TEST_FAULT=fail:RANK:STEP       the rank fails there with `injected fault` (as a failing kernel would)
//   MEG_TEST_FAULT=stall:RANK:STEP:S    the rank stops there for S seconds (as a stuck rank would), then goes on
// Unset (always, outside tests), it costs one branch per step. A malformed value is an error at the first step.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_RUNTIME_EXEC_FAULTINJECTION_H
#define MEG_RUNTIME_EXEC_FAULTINJECTION_H

#include "llvm/Support/Error.h"

#include <cstddef>

namespace meg::runtime {

/// Applies MEG_TEST_FAULT before step `step` of rank `rank` (see above).
llvm::Error injectFault(int rank, size_t step);

} // namespace meg::runtime

#endif
