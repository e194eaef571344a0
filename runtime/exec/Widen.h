//===- Widen.h - running 16-bit plan steps on fp32 copies -------*- C++ -*-===//
//
// How a backend runs a step whose float operands or results are stored in 16 bits (bf16, f16) with its fp32
// kernels, exactly as a GPU's 16-bit kernels behave: read the 16-bit operands into fp32, compute in fp32, round the
// results to nearest even on store (kernels/Half.h). One mechanism for every op instead of a 16-bit variant of every
// kernel: planWidening gives each 16-bit slot of the step room in an fp32 buffer; the backend points the step's
// buffers there before its launch is prepared, converts the operands in before the kernel and rounds the results
// back after it. The binders accept bf16 and f16 wherever they accept f32 (StepBinder::expectDType). The CPU backend
// widens every 16-bit step (the reference); the CUDA backend only the steps of ops without a native 16-bit kernel
// (runtime/cuda/Precision.h).
//
// Not widened: `cast` (converts by itself) and `reshape` (a byte copy, or an alias, of any dtype). A result that
// exactly aliases a 16-bit operand (an in-place step) shares the operand's room, so the kernel runs in place on the
// fp32 copy and the result is rounded back into the shared slot; all_reduce_bucket's members each have their own.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_RUNTIME_EXEC_WIDEN_H
#define MEG_RUNTIME_EXEC_WIDEN_H

#include "runtime/exec/StepBinder.h"
#include "runtime/plan/Plan.h"

#include "llvm/Support/Error.h"

#include <cstdint>
#include <vector>

namespace meg::runtime {

/// One 16-bit slot of a step and its fp32 room.
struct WidenedSlot {
  DType dtype = DType::BF16;
  int64_t numel = 0;
  int64_t offset = 0;           ///< floats into the widening buffer
  std::vector<size_t> operands; ///< the step's operands held in this slot (converted in before the kernel)
  std::vector<size_t> results;  ///< the step's results held in this slot (rounded back after the kernel)
};

struct WidenPlan {
  std::vector<WidenedSlot> slots;
  int64_t floats = 0; ///< fp32 room the step needs
  bool empty() const { return slots.empty(); }
};

/// True for bf16 and f16.
inline bool is16BitFloat(DType t) { return t == DType::BF16 || t == DType::F16; }

/// The 16-bit slots of `step` and their fp32 room (empty for steps without any, and for cast and reshape).
WidenPlan planWidening(const PlanStep &step);

/// Points the buffers of `s` held in `plan`'s slots at their fp32 rooms in `wide` (backend memory) and returns the
/// 16-bit buffers they replace, in the order of plan.slots.
std::vector<void *> redirectToWide(StepBuffers &s, const WidenPlan &plan, float *wide);

/// The widening of every step of a plan and the fp32 room of the step that needs the most (one buffer serves all).
struct PlanWidening {
  std::vector<WidenPlan> steps;
  int64_t floats = 0;
};
/// planWidening for every step of `plan`.
PlanWidening planWidening(const LoadedPlan &plan);

} // namespace meg::runtime

#endif
