//===- StepBinder.h - decoding and checking plan steps once ----*- C++ -*-===//
//
// bindStep() turns step N of a loaded plan into its typed arguments (runtime/exec/OpArgs.h): it reads the
// attributes, checks dtypes and local shapes against the op's rules and derives the sharding offsets, once, for
// every backend. One binder per op, `bind<Enum>`, declared and collected into a table from ir/Ops.def (a missing
// binder is a build error); they live by op family in runtime/exec/Bind*.cpp. Errors read
// `<plan>: step N ('op'): <what>`. Slot bounds, alignment and operand/result overlap are the plan verifier's
// (runtime/plan/Plan.cpp), checked when the plan is loaded.
//
// StepBuffers is a bound step as a backend runs it: the step's resolved buffers. dispatchLaunch() calls the
// backend's launch overload for the step's Args type (found by argument-dependent lookup in the backend's
// namespace); the backends declare one launch per op from Ops.def, so a missing launch is a build error too.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_RUNTIME_EXEC_STEPBINDER_H
#define MEG_RUNTIME_EXEC_STEPBINDER_H

#include "runtime/exec/OpArgs.h"
#include "runtime/plan/Plan.h"

#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/Twine.h"
#include "llvm/Support/Error.h"

#include <algorithm>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace meg::runtime {

/// Step `index` of `plan`, checked and decoded.
llvm::Expected<OpArgs> bindStep(const LoadedPlan &plan, size_t index);

/// The step being bound, with the attribute readers and checks the binders share.
class StepBinder {
public:
  StepBinder(const LoadedPlan &plan, size_t index) : plan(plan), step(plan.steps[index]), index(index) {}

  const LoadedPlan &plan;
  const PlanStep &step;
  size_t index;

  const TensorSlot &operand(size_t i) const { return step.operands[i]; }
  const TensorSlot &result(size_t i = 0) const { return step.results[i]; }
  size_t numOperands() const { return step.operands.size(); }

  /// `<plan>: step N ('op'): <what>`.
  llvm::Error error(const llvm::Twine &what) const;

  // Attributes: a missing required attribute, or one of the wrong kind, is an error.
  llvm::Expected<int64_t> intAttr(llvm::StringRef key, std::optional<int64_t> fallback = std::nullopt) const;
  llvm::Expected<double> floatAttr(llvm::StringRef key, std::optional<double> fallback = std::nullopt) const;
  llvm::Expected<bool> boolAttr(llvm::StringRef key, std::optional<bool> fallback = std::nullopt) const;
  /// A Symbol or String attribute.
  llvm::Expected<std::string> symbolAttr(llvm::StringRef key) const;
  llvm::Expected<std::vector<int64_t>> intsAttr(llvm::StringRef key) const;
  /// An int attribute naming a dim of a tensor of rank `rank`.
  llvm::Expected<int> dimAttr(llvm::StringRef key, size_t rank) const;

  /// Every operand and result has dtype `t`. Where `t` is f32, bf16 and f16 are accepted too: the backends run
  /// 16-bit steps on fp32 copies (runtime/exec/Widen.h), so every fp32 kernel serves 16-bit plans.
  llvm::Error expectDTypes(DType t) const;
  llvm::Error expectDType(const TensorSlot &slot, llvm::StringRef what, DType t) const;
  /// Operand 0 and the result share one 4-byte dtype, f32 or i32 (ops that move words without looking at them).
  llvm::Error expectMovable() const;
  /// The result's local shape is `shape`.
  llvm::Error expectResultShape(llvm::ArrayRef<int64_t> shape) const;
  /// Operand `i` holds the whole (unsplit) tensor along `dim`.
  llvm::Error expectWholeDim(size_t i, unsigned dim, llvm::StringRef why) const;
  /// `t` has at most kernels::kMaxRank dims.
  llvm::Error expectKernelRank(const TensorSlot &t, llvm::StringRef what) const;
};

std::string shapeStr(llvm::ArrayRef<int64_t> shape);

/// The binders, one per op (runtime/exec/Bind*.cpp).
#define OP(Enum, ...) llvm::Expected<Enum##Args> bind##Enum(const StepBinder &s);
#include "ir/Ops.def"

/// A bound step as a backend runs it: the plan step and its operands' and results' buffers in backend memory.
class StepBuffers {
public:
  /// Where a slot lives in the backend's memory (valid as long as the backend).
  using Resolver = std::function<void *(const TensorSlot &)>;
  /// Resolves every operand and result of step `index` with `resolve`.
  StepBuffers(const LoadedPlan &plan, size_t index, const Resolver &resolve);

  const LoadedPlan &plan;
  size_t index;
  llvm::SmallVector<void *, 4> in;
  llvm::SmallVector<void *, 1> out;

  const PlanStep &step() const { return plan.steps[index]; }
  float *f(size_t i) const { return static_cast<float *>(in[i]); }
  const int32_t *i32(size_t i) const { return static_cast<const int32_t *>(in[i]); }
  float *fout(size_t i = 0) const { return static_cast<float *>(out[i]); }
  /// `<plan>: step N ('op'): <what>`.
  llvm::Error error(const llvm::Twine &what) const;
  /// `err` (a communicator's failure) as this step's error; success stays success.
  llvm::Error error(llvm::Error err) const;
};

/// Calls the backend's `launch(args, step)` for the Args alternative `args` holds (never monostate).
template <typename Result, typename Step> Result dispatchLaunch(const OpArgs &args, Step &step) {
  return std::visit(
      [&](const auto &a) -> Result {
        if constexpr (std::is_same_v<std::decay_t<decltype(a)>, std::monostate>)
          return step.error("step is not bound");
        else
          return launch(a, step);
      },
      args);
}

/// Binds every step of `plan` and prepares it with the backend's launches: makeStep(i) creates step i's Step (which
/// the kernels may keep a reference to, so `steps` must live as long as they do). Returns the largest scratch
/// request (Step::*scratch) of any step.
template <typename Kernel, typename Step, typename MakeStep>
llvm::Expected<int64_t> prepareSteps(const LoadedPlan &plan, MakeStep makeStep, int64_t Step::*scratch,
                                     std::vector<std::unique_ptr<Step>> &steps, std::vector<Kernel> &kernels) {
  steps.clear();
  kernels.clear();
  int64_t most = 0;
  for (size_t i = 0; i < plan.steps.size(); ++i) {
    auto args = bindStep(plan, i);
    if (!args)
      return args.takeError();
    steps.push_back(makeStep(i));
    auto kernel = dispatchLaunch<llvm::Expected<Kernel>>(*args, *steps.back());
    if (!kernel)
      return kernel.takeError();
    most = std::max(most, (*steps.back()).*scratch);
    kernels.push_back(std::move(*kernel));
  }
  return most;
}

} // namespace meg::runtime

#endif
