//===- Widen.cpp - running 16-bit plan steps on fp32 copies ------------------===//
#include "runtime/exec/Widen.h"

#include <algorithm>

using namespace meg;
using namespace meg::runtime;

WidenPlan meg::runtime::planWidening(const PlanStep &step) {
  WidenPlan plan;
  // Casts and reshapes move 16-bit data as it is; so do pipeline sends and receives, which carry the value's bytes
  // (a widened send would put the fp32 copy's first bytes on the wire).
  if (step.kind == ir::OpKind::Cast || step.kind == ir::OpKind::Reshape || step.kind == ir::OpKind::Send ||
      step.kind == ir::OpKind::Recv)
    return plan;
  auto add = [&](const TensorSlot &t, size_t index, bool isResult) {
    if (!is16BitFloat(t.dtype))
      return;
    // An exact alias (the plan verifier allows no other overlap) shares the room.
    for (WidenedSlot &w : plan.slots) {
      const TensorSlot &first = w.operands.empty() ? step.results[w.results[0]] : step.operands[w.operands[0]];
      if (first.storage == t.storage && first.index == t.index && first.dtype == t.dtype) {
        (isResult ? w.results : w.operands).push_back(index);
        return;
      }
    }
    WidenedSlot w;
    w.dtype = t.dtype;
    w.numel = t.numel();
    w.offset = plan.floats;
    (isResult ? w.results : w.operands).push_back(index);
    // Keep every room 64-byte aligned, as the arena's buffers are.
    plan.floats += (w.numel + 15) / 16 * 16;
    plan.slots.push_back(std::move(w));
  };
  for (size_t i = 0; i < step.operands.size(); ++i)
    add(step.operands[i], i, /*isResult=*/false);
  for (size_t i = 0; i < step.results.size(); ++i)
    add(step.results[i], i, /*isResult=*/true);
  return plan;
}

std::vector<void *> meg::runtime::redirectToWide(StepBuffers &s, const WidenPlan &plan, float *wide) {
  std::vector<void *> narrow;
  for (const WidenedSlot &w : plan.slots) {
    float *copy = wide + w.offset;
    narrow.push_back(w.operands.empty() ? s.out[w.results[0]] : s.in[w.operands[0]]);
    for (size_t k : w.operands)
      s.in[k] = copy;
    for (size_t k : w.results)
      s.out[k] = copy;
  }
  return narrow;
}

PlanWidening meg::runtime::planWidening(const LoadedPlan &plan) {
  PlanWidening w;
  for (const PlanStep &step : plan.steps) {
    w.steps.push_back(planWidening(step));
    w.floats = std::max(w.floats, w.steps.back().floats);
  }
  return w;
}
