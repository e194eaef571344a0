//===- CpuOps.h - CPU adapters from plan steps to kernels -------*- C++ -*-===//
//
// One adapter per op of ir/Ops.def, named cpu<Enum>, collected into a table by including Ops.def (CpuBackend.cpp).
// An adapter runs once per step at prepare time: it checks the step's attributes, dtypes and local shapes, derives
// the sharding-aware kernel arguments (row/column/head offsets from global shapes and offsets), and returns the
// closure that runs the kernel on the step's resolved buffers. No switch over op kinds anywhere.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_RUNTIME_CPU_CPUOPS_H
#define MEG_RUNTIME_CPU_CPUOPS_H

#include "runtime/exec/Backend.h"
#include "runtime/comm/Communicator.h"
#include "runtime/plan/Plan.h"

#include "kernels/cpu/Attention.h"
#include "kernels/cpu/Gelu.h"

#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/Twine.h"
#include "llvm/Support/Error.h"

#include <functional>
#include <optional>
#include <string>

namespace meg::runtime::cpu {

/// What a prepared kernel gets at run time.
struct CpuRunArgs {
  const StepContext &ctx;
  Communicator &comm;
  float *scratch; ///< at least the floats the adapter asked for
};

using CpuKernel = std::function<llvm::Error(const CpuRunArgs &)>;

/// One step being prepared: its plan entry, resolved buffers and helpers for checks.
class CpuStep {
public:
  CpuStep(const LoadedPlan &plan, size_t index, llvm::SmallVector<void *, 4> in, llvm::SmallVector<void *, 1> out)
      : plan(plan), step(plan.steps[index]), index(index), in(std::move(in)), out(std::move(out)) {}

  const LoadedPlan &plan;
  const PlanStep &step;
  size_t index;
  llvm::SmallVector<void *, 4> in;
  llvm::SmallVector<void *, 1> out;
  /// Floats of scratch the kernel needs at run time (the backend keeps one buffer of the largest request).
  int64_t scratchFloats = 0;

  const TensorSlot &operand(size_t i) const { return step.operands[i]; }
  const TensorSlot &result(size_t i = 0) const { return step.results[i]; }
  size_t numOperands() const { return step.operands.size(); }

  float *f(size_t i) const { return static_cast<float *>(in[i]); }
  const int32_t *i32(size_t i) const { return static_cast<const int32_t *>(in[i]); }
  float *fout(size_t i = 0) const { return static_cast<float *>(out[i]); }

  /// `<plan>: step N ('op'): <what>`.
  llvm::Error error(const llvm::Twine &what) const;

  // Attributes: a missing required attribute, or one of the wrong kind, is an error.
  llvm::Expected<int64_t> intAttr(llvm::StringRef key, std::optional<int64_t> fallback = std::nullopt) const;
  llvm::Expected<double> floatAttr(llvm::StringRef key, std::optional<double> fallback = std::nullopt) const;
  llvm::Expected<bool> boolAttr(llvm::StringRef key, std::optional<bool> fallback = std::nullopt) const;
  /// A Symbol or String attribute.
  llvm::Expected<std::string> symbolAttr(llvm::StringRef key) const;
  llvm::Expected<std::vector<int64_t>> intsAttr(llvm::StringRef key) const;

  /// Every operand and the result have dtype `t` (when `operands` is empty: all operands).
  llvm::Error expectDTypes(DType t) const;
  llvm::Error expectDType(const TensorSlot &slot, llvm::StringRef what, DType t) const;
  /// The result's local shape is `shape`.
  llvm::Error expectResultShape(llvm::ArrayRef<int64_t> shape) const;
  /// Operand `i` holds the whole (unsplit) tensor along `dim`.
  llvm::Error expectWholeDim(size_t i, unsigned dim, llvm::StringRef why) const;
};

/// Highest tensor rank the CPU kernels accept (kernels/cpu/Shape.h's kMaxRank; that header needs OpenMP flags).
constexpr int kKernelMaxRank = 8;

std::string shapeStr(llvm::ArrayRef<int64_t> shape);

/// Checked attention set-up shared by attention and attention_grad: operands 0-2 are q, k, v (BSHD), results have
/// q's shape, the optional mask operand is i32[b, s]; head and batch offsets come from q's sharding.
struct AttentionSetup {
  kernels::cpu::AttentionParams params;
  float dropout = 0;
  uint32_t stream = 0;
  std::optional<size_t> maskOperand;
  /// The parameters of one run: mask pointer and dropout key (no dropout in evaluation).
  kernels::cpu::AttentionParams forRun(const CpuStep &s, const CpuRunArgs &args) const;
};
llvm::Expected<AttentionSetup> prepareAttention(CpuStep &s, std::optional<size_t> maskOperand);
/// The `approx` attribute of gelu and gelu_grad.
llvm::Expected<kernels::cpu::GeluForm> geluForm(const CpuStep &s);

/// Megatron's learning-rate schedule (lr_schedule's attributes); `step` is 1-based.
struct LrScheduleConfig {
  double lr = 0, minLr = 0;
  int64_t warmup = 0, decayIters = 0;
  std::string style = "constant";
};
double scheduledLr(const LrScheduleConfig &config, int64_t step);

#define OP(Enum, Name, MinOperands, MaxOperands, NumResults, Traits, WritesMask, Summary)                              \
  llvm::Expected<CpuKernel> cpu##Enum(CpuStep &s);
#include "ir/Ops.def"

} // namespace meg::runtime::cpu

#endif
