//===- CpuOps.h - CPU launches of bound plan steps --------------*- C++ -*-===//
//
// One launch per op of ir/Ops.def, an overload of `launch` on the op's Args struct (runtime/exec/OpArgs.h),
// declared here from Ops.def and dispatched by runtime/exec/StepBinder.h's dispatchLaunch: a missing launch is a
// build error. The step binder has already decoded and checked the step; a launch only maps its typed arguments and
// the step's resolved host buffers onto kernels/cpu calls, returning the closure that runs them. It runs once per
// step at prepare time and may ask for scratch.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_RUNTIME_CPU_CPUOPS_H
#define MEG_RUNTIME_CPU_CPUOPS_H

#include "runtime/exec/Backend.h"
#include "runtime/exec/StepBinder.h"

#include "llvm/Support/Error.h"

#include <functional>

namespace meg::runtime::cpu {

/// What a prepared kernel gets at run time.
struct CpuRunArgs {
  const StepContext &ctx;
  Communicator &comm;
  float *scratch; ///< at least the floats the launch asked for
};

using CpuKernel = std::function<llvm::Error(const CpuRunArgs &)>;

/// A step as the CPU backend runs it: host buffers, plus the scratch request of its launch.
class CpuStep : public StepBuffers {
public:
  CpuStep(const LoadedPlan &plan, size_t index, Resolver resolve) : StepBuffers(plan, index, resolve) {}
  /// Floats of scratch the kernel needs at run time (the backend keeps one buffer of the largest request).
  int64_t scratchFloats = 0;
};

/// A kernel that cannot fail: fn(args) then success.
template <typename Fn> CpuKernel infallible(Fn fn) {
  return [fn](const CpuRunArgs &args) -> llvm::Error {
    fn(args);
    return llvm::Error::success();
  };
}

#define OP(Enum, ...) llvm::Expected<CpuKernel> launch(const Enum##Args &args, CpuStep &s);
#include "ir/Ops.def"

} // namespace meg::runtime::cpu

#endif
