//===- BindOptimizer.cpp - binders: learning rate, clipping, AdamW ------------===//
//
// lr_schedule evaluates Megatron's schedule at the current step (linear warm-up from 0, then constant, linear or
// cosine decay to min_lr at decay_iters). clip_scale turns the global squared gradient norm into torch's
// clip_grad_norm_ coefficient. adamw scales the gradient by it and takes one torch.optim.AdamW step
// (kernels/Math.h) on this rank's shard, in place. Steps are 1-based: the update of training step t
// (StepContext::step = t - 1) uses t for the bias corrections and the schedule; with loss scaling (fp16) both take
// the count of applied updates + 1 from a state instead, and adamw skips its step when found_inf is set.
// nonfinite tests a gradient shard for inf/NaN; loss_scale_update is kernels/Math.h's lossScaleUpdate.
// accumulate adds its operand / micro_batches into an fp32 accumulator, which the first micro-batch of a step
// (StepContext::microBatch 0) starts from zero.
//
//===----------------------------------------------------------------------===//
#include "runtime/exec/StepBinder.h"

#include "llvm/Support/FormatVariadic.h"

using namespace meg;
using namespace meg::runtime;

llvm::Expected<LrScheduleArgs> meg::runtime::bindLrSchedule(const StepBinder &s) {
  LrScheduleArgs c;
  auto lr = s.floatAttr("lr");
  if (!lr)
    return lr.takeError();
  auto minLr = s.floatAttr("min_lr");
  if (!minLr)
    return minLr.takeError();
  auto warmup = s.intAttr("warmup");
  if (!warmup)
    return warmup.takeError();
  auto decay = s.intAttr("decay_iters");
  if (!decay)
    return decay.takeError();
  auto style = s.symbolAttr("style");
  if (!style)
    return style.takeError();
  c.lr = *lr;
  c.minLr = *minLr;
  c.warmup = *warmup;
  c.decayIters = *decay;
  c.style = *style;
  c.counted = s.numOperands() == 1;
  if (c.counted)
    if (auto err = s.expectDTypes(DType::F32))
      return err;
  if (c.style != "constant" && c.style != "linear" && c.style != "cosine")
    return s.error("unknown lr schedule style '" + c.style + "' (expected constant, linear or cosine)");
  if (auto err = s.expectDType(s.result(), "result", DType::F32))
    return err;
  return c;
}

llvm::Expected<SumSquaresArgs> meg::runtime::bindSumSquares(const StepBinder &s) {
  if (auto err = s.expectDTypes(DType::F32))
    return err;
  return SumSquaresArgs{s.operand(0).numel()};
}

llvm::Expected<ClipScaleArgs> meg::runtime::bindClipScale(const StepBinder &s) {
  auto maxNorm = s.floatAttr("max_norm");
  if (!maxNorm)
    return maxNorm.takeError();
  if (*maxNorm <= 0)
    return s.error(llvm::formatv("max_norm must be positive, got {0}", *maxNorm));
  if (auto err = s.expectDTypes(DType::F32))
    return err;
  return ClipScaleArgs{float(*maxNorm)};
}

llvm::Expected<AdamWArgs> meg::runtime::bindAdamW(const StepBinder &s) {
  AdamWArgs a;
  std::pair<const char *, double *> fields[] = {{"beta1", &a.config.beta1},
                                                {"beta2", &a.config.beta2},
                                                {"eps", &a.config.eps},
                                                {"weight_decay", &a.config.weightDecay}};
  for (auto [key, field] : fields) {
    auto v = s.floatAttr(key);
    if (!v)
      return v.takeError();
    *field = *v;
  }
  if (auto err = s.expectDTypes(DType::F32))
    return err;
  for (size_t i = 1; i < 4; ++i)
    if (s.operand(i).shape != s.operand(0).shape)
      return s.error(llvm::formatv("operand {0} has shape {1}, the parameter {2}", i, shapeStr(s.operand(i).shape),
                                   shapeStr(s.operand(0).shape)));
  a.n = s.operand(0).numel();
  a.skippable = s.numOperands() == 8;
  for (size_t i = 4; i < s.numOperands(); ++i)
    if (s.operand(i).numel() != 1)
      return s.error(llvm::formatv("operand {0} must be a scalar, has shape {1}", i, shapeStr(s.operand(i).shape)));
  return a;
}

llvm::Expected<NonfiniteArgs> meg::runtime::bindNonfinite(const StepBinder &s) {
  if (auto err = s.expectDTypes(DType::F32))
    return err;
  return NonfiniteArgs{s.operand(0).numel()};
}

llvm::Expected<LossScaleUpdateArgs> meg::runtime::bindLossScaleUpdate(const StepBinder &s) {
  LossScaleUpdateArgs a;
  std::pair<const char *, float *> floats[] = {{"growth_factor", &a.config.growthFactor},
                                               {"backoff_factor", &a.config.backoffFactor},
                                               {"min_scale", &a.config.minScale}};
  for (auto [key, field] : floats) {
    auto v = s.floatAttr(key);
    if (!v)
      return v.takeError();
    *field = float(*v);
  }
  std::pair<const char *, float *> ints[] = {{"growth_interval", &a.config.growthInterval},
                                             {"hysteresis", &a.config.hysteresis}};
  for (auto [key, field] : ints) {
    auto v = s.intAttr(key);
    if (!v)
      return v.takeError();
    if (*v < 1 || *v > (int64_t(1) << 24))
      return s.error(llvm::formatv("{0} must be in [1, 2^24], got {1}", key, *v));
    *field = float(*v);
  }
  if (!(a.config.growthFactor >= 1) || !(a.config.backoffFactor > 0 && a.config.backoffFactor <= 1) ||
      !(a.config.minScale > 0))
    return s.error("need growth_factor >= 1, 0 < backoff_factor <= 1 and min_scale > 0");
  if (auto err = s.expectDTypes(DType::F32))
    return err;
  for (size_t i = 0; i < s.numOperands(); ++i)
    if (s.operand(i).numel() != 1)
      return s.error(llvm::formatv("operand {0} must be a scalar, has shape {1}", i, shapeStr(s.operand(i).shape)));
  return a;
}

llvm::Expected<AccumulateArgs> meg::runtime::bindAccumulate(const StepBinder &s) {
  auto m = s.intAttr("micro_batches");
  if (!m)
    return m.takeError();
  if (*m < 1)
    return s.error(llvm::formatv("micro_batches must be positive, got {0}", *m));
  if (auto err = s.expectDTypes(DType::F32))
    return err;
  if (s.operand(1).shape != s.operand(0).shape)
    return s.error(llvm::formatv("operand 1 has shape {0}, the accumulator {1}", shapeStr(s.operand(1).shape),
                                 shapeStr(s.operand(0).shape)));
  return AccumulateArgs{float(1.0 / double(*m)), s.operand(0).numel()};
}
