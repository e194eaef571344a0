//===- StepBinder.cpp - the binder table, attribute readers and shared checks ===//
#include "runtime/exec/StepBinder.h"
#include "runtime/comm/Watchdog.h"
#include "runtime/exec/Backend.h"

#include "llvm/Support/FormatVariadic.h"

using namespace meg;
using namespace meg::runtime;

namespace {

using Binder = llvm::Expected<OpArgs> (*)(const StepBinder &);

/// bind<Enum> wrapped into the OpArgs alternative of its op kind (index kind + 1: alternative 0 is monostate).
template <ir::OpKind Kind, auto Bind> llvm::Expected<OpArgs> bindInto(const StepBinder &s) {
  auto args = Bind(s);
  if (!args)
    return args.takeError();
  return OpArgs(std::in_place_index<size_t(Kind) + 1>, std::move(*args));
}

const Binder kBinders[] = {
#define OP(Enum, ...) &bindInto<ir::OpKind::Enum, &bind##Enum>,
#include "ir/Ops.def"
};
static_assert(sizeof(kBinders) / sizeof(kBinders[0]) == ir::kNumOpKinds, "one binder per op");
static_assert(std::variant_size_v<OpArgs> == ir::kNumOpKinds + 1, "one Args struct per op");

} // namespace

llvm::Expected<OpArgs> meg::runtime::bindStep(const LoadedPlan &plan, size_t index) {
  assert(index < plan.steps.size() && "step index out of range");
  return kBinders[unsigned(plan.steps[index].kind)](StepBinder(plan, index));
}

std::string meg::runtime::shapeStr(llvm::ArrayRef<int64_t> shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

//===----------------------------------------------------------------------===//
// StepBinder
//===----------------------------------------------------------------------===//

llvm::Error StepBinder::error(const llvm::Twine &what) const {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), plan.stepLabel(index) + ": " + what);
}

llvm::Expected<int64_t> StepBinder::intAttr(llvm::StringRef key, std::optional<int64_t> fallback) const {
  const StepAttr *a = step.attr(key);
  if (!a) {
    if (fallback)
      return *fallback;
    return error("missing attribute '" + key + "'");
  }
  if (a->kind != StepAttr::Int)
    return error("attribute '" + key + "' must be an integer");
  return a->i;
}

llvm::Expected<double> StepBinder::floatAttr(llvm::StringRef key, std::optional<double> fallback) const {
  const StepAttr *a = step.attr(key);
  if (!a) {
    if (fallback)
      return *fallback;
    return error("missing attribute '" + key + "'");
  }
  if (a->kind == StepAttr::Int)
    return double(a->i);
  if (a->kind != StepAttr::Float)
    return error("attribute '" + key + "' must be a number");
  return a->f;
}

llvm::Expected<bool> StepBinder::boolAttr(llvm::StringRef key, std::optional<bool> fallback) const {
  const StepAttr *a = step.attr(key);
  if (!a) {
    if (fallback)
      return *fallback;
    return error("missing attribute '" + key + "'");
  }
  if (a->kind != StepAttr::Bool)
    return error("attribute '" + key + "' must be a boolean");
  return a->b;
}

llvm::Expected<std::string> StepBinder::symbolAttr(llvm::StringRef key) const {
  const StepAttr *a = step.attr(key);
  if (!a)
    return error("missing attribute '" + key + "'");
  if (a->kind != StepAttr::Symbol && a->kind != StepAttr::String)
    return error("attribute '" + key + "' must be a symbol");
  return a->s;
}

llvm::Expected<std::vector<int64_t>> StepBinder::intsAttr(llvm::StringRef key) const {
  const StepAttr *a = step.attr(key);
  if (!a)
    return error("missing attribute '" + key + "'");
  if (a->kind != StepAttr::Ints)
    return error("attribute '" + key + "' must be a list of integers");
  return a->ints;
}

llvm::Expected<int> StepBinder::dimAttr(llvm::StringRef key, size_t rank) const {
  auto dim = intAttr(key);
  if (!dim)
    return dim.takeError();
  if (*dim < 0 || size_t(*dim) >= rank)
    return error(llvm::formatv("{0} {1} is out of range for rank {2}", key, *dim, rank));
  return int(*dim);
}

llvm::Error StepBinder::expectDType(const TensorSlot &slot, llvm::StringRef what, DType t) const {
  // 16-bit float storage runs on fp32 copies (runtime/exec/Widen.h): wherever f32 is expected it is accepted.
  if (t == DType::F32 && (slot.dtype == DType::BF16 || slot.dtype == DType::F16))
    return llvm::Error::success();
  if (slot.dtype != t)
    return error(
        llvm::formatv("{0} has dtype {1}, the cpu backend expects {2}", what, dtypeName(slot.dtype), dtypeName(t)));
  return llvm::Error::success();
}

llvm::Error StepBinder::expectDTypes(DType t) const {
  for (size_t i = 0; i < numOperands(); ++i)
    if (auto err = expectDType(operand(i), ("operand " + llvm::Twine(i)).str(), t))
      return err;
  for (size_t i = 0; i < step.results.size(); ++i)
    if (auto err = expectDType(result(i), ("result " + llvm::Twine(i)).str(), t))
      return err;
  return llvm::Error::success();
}

llvm::Error StepBinder::expectMovable() const {
  // Every dtype is 4-byte elements to the kernels: f32 and i32 as they are, 16-bit data as fp32 copies
  // (runtime/exec/Widen.h).
  DType t = operand(0).dtype;
  if (result().dtype != t)
    return error(
        llvm::formatv("result dtype {0} differs from the operand's {1}", dtypeName(result().dtype), dtypeName(t)));
  return llvm::Error::success();
}

llvm::Error StepBinder::expectResultShape(llvm::ArrayRef<int64_t> shape) const {
  if (llvm::ArrayRef<int64_t>(result().shape) != shape)
    return error("result shape " + shapeStr(result().shape) + " does not match the operands (expected " +
                 shapeStr(shape) + ")");
  return llvm::Error::success();
}

llvm::Error StepBinder::expectWholeDim(size_t i, unsigned dim, llvm::StringRef why) const {
  const TensorSlot &t = operand(i);
  if (dim >= t.shape.size() || t.shape[dim] != t.globalShape[dim])
    return error(llvm::formatv("operand {0} is split along dim {1} ({2})", i, dim, why));
  return llvm::Error::success();
}

llvm::Error StepBinder::expectKernelRank(const TensorSlot &t, llvm::StringRef what) const {
  if (t.shape.size() > size_t(kernels::kMaxRank))
    return error(
        llvm::formatv("{0} has rank {1}, the cpu kernels accept at most {2}", what, t.shape.size(), kernels::kMaxRank));
  return llvm::Error::success();
}

//===----------------------------------------------------------------------===//
// StepBuffers
//===----------------------------------------------------------------------===//

StepBuffers::StepBuffers(const LoadedPlan &plan, size_t index, const Resolver &resolve)
    : plan(plan), index(index) {
  for (const TensorSlot &slot : plan.steps[index].operands)
    in.push_back(resolve(slot));
  for (const TensorSlot &slot : plan.steps[index].results)
    out.push_back(resolve(slot));
}

llvm::Error StepBuffers::error(const llvm::Twine &what) const {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), plan.stepLabel(index) + ": " + what);
}

llvm::Error StepBuffers::error(llvm::Error err) const {
  // The watchdog's errors name the step themselves (runtime/comm/Watchdog.h).
  if (!err || err.isA<PeerFailed>() || err.isA<CollectiveTimedOut>())
    return err;
  return error(llvm::toString(std::move(err)));
}

//===----------------------------------------------------------------------===//
// Run-time pieces of the Args structs
//===----------------------------------------------------------------------===//

kernels::cpu::AttentionParams AttentionArgs::forRun(const StepContext &ctx, const int32_t *mask) const {
  kernels::cpu::AttentionParams run = params;
  run.keyMask = maskOperand ? mask : nullptr;
  run.dropoutP = ctx.dropout ? dropout : 0.0f;
  run.dropoutKey = kernels::PhiloxKey{ctx.seed, stream, ctx.rngStep()};
  return run;
}

double LrScheduleArgs::at(int64_t step) const {
  if (warmup > 0 && step <= warmup)
    return lr * double(step) / double(warmup);
  if (style == "constant" || step >= decayIters || decayIters <= warmup)
    return style == "constant" ? lr : minLr;
  double ratio = double(step - warmup) / double(decayIters - warmup);
  double coeff = style == "cosine" ? 0.5 * (std::cos(M_PI * ratio) + 1.0) : 1.0 - ratio;
  return minLr + (lr - minLr) * coeff;
}

// The graph-interface ops are not steps (the plan loader rejects them); their binders only say so.
llvm::Expected<NotAStepArgs> meg::runtime::bindParam(const StepBinder &s) { return s.error("'param' is not a step"); }
llvm::Expected<NotAStepArgs> meg::runtime::bindState(const StepBinder &s) { return s.error("'state' is not a step"); }
llvm::Expected<NotAStepArgs> meg::runtime::bindInput(const StepBinder &s) { return s.error("'input' is not a step"); }
llvm::Expected<NotAStepArgs> meg::runtime::bindOutput(const StepBinder &s) { return s.error("'output' is not a step"); }
