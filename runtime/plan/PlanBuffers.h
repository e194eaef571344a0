//===- PlanBuffers.h - the per-tensor buffers every backend allocates for a plan -*- C++ -*-===//
//
// A backend holds one buffer per parameter, per parameter gradient (only when some step reads or writes a
// gradient), per optimizer state and per input. Which buffers exist and how they are named in errors is the same for
// every backend; only the memory differs (host for the CPU, device for CUDA), so the walk lives here once.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_RUNTIME_PLAN_PLANBUFFERS_H
#define MEG_RUNTIME_PLAN_PLANBUFFERS_H

#include "runtime/plan/Plan.h"

#include "llvm/ADT/Twine.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <vector>

namespace meg::runtime {

/// Whether any step of `p` uses gradient storage (a training plan).
inline bool planUsesGradients(const LoadedPlan &p) {
  for (const PlanStep &step : p.steps)
    for (const auto *slots : {&step.operands, &step.results})
      for (const TensorSlot &slot : *slots)
        if (slot.storage == Storage::Grad)
          return true;
  return false;
}

/// Replaces the four buffer lists with fresh ones sized for `p`, each from
/// `allocate(int64_t bytes, const llvm::Twine &what, Buffer &into) -> llvm::Error`.
template <typename Buffer, typename AllocateFn>
llvm::Error allocatePlanBuffers(const LoadedPlan &p, AllocateFn &&allocate, std::vector<Buffer> &params,
                                std::vector<Buffer> &grads, std::vector<Buffer> &states, std::vector<Buffer> &inputs) {
  bool needGrads = planUsesGradients(p);
  params.clear();
  grads.clear();
  states.clear();
  inputs.clear();
  params.resize(p.params.size());
  if (needGrads)
    grads.resize(p.params.size());
  for (size_t i = 0; i < p.params.size(); ++i) {
    int64_t bytes = p.params[i].numel() * int64_t(dtypeBytes(p.params[i].dtype));
    if (auto err = allocate(bytes, "param '" + p.params[i].name + "'", params[i]))
      return err;
    if (needGrads)
      if (auto err = allocate(bytes, "the gradient of '" + p.params[i].name + "'", grads[i]))
        return err;
  }
  states.resize(p.states.size());
  for (size_t i = 0; i < p.states.size(); ++i)
    if (auto err = allocate(p.states[i].numel() * int64_t(dtypeBytes(p.states[i].dtype)),
                            "optimizer state '" + p.states[i].name + "'", states[i]))
      return err;
  inputs.resize(p.inputs.size());
  for (size_t i = 0; i < p.inputs.size(); ++i)
    if (auto err = allocate(p.inputs[i].numel() * int64_t(dtypeBytes(p.inputs[i].dtype)),
                            "input '" + p.inputs[i].name + "'", inputs[i]))
      return err;
  return llvm::Error::success();
}

/// The bytes a slot names: an offset into the arena, or the start of its parameter, gradient, input or state buffer
/// (Buffer::get() returns the base pointer, host or device).
template <typename Buffer>
uint8_t *slotAddress(const TensorSlot &slot, const Buffer &arena, const std::vector<Buffer> &params,
                     const std::vector<Buffer> &grads, const std::vector<Buffer> &inputs,
                     const std::vector<Buffer> &states) {
  switch (slot.storage) {
  case Storage::Arena:
    return arena.get() + slot.index;
  case Storage::Param:
    return params[slot.index].get();
  case Storage::Grad:
    return grads[slot.index].get();
  case Storage::Input:
    return inputs[slot.index].get();
  case Storage::OptState:
    return states[slot.index].get();
  }
  return nullptr;
}

} // namespace meg::runtime

#endif
