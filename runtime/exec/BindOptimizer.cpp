//===- BindOptimizer.cpp - binders: learning rate, clipping, AdamW ------------===//
//
// lr_schedule evaluates Megatron's schedule at the current step (linear warm-up from 0, then constant, linear or
// cosine decay to min_lr at decay_iters). clip_scale turns the global squared gradient norm into torch's
// clip_grad_norm_ coefficient. adamw scales the gradient by it and takes one torch.optim.AdamW step
// (kernels/Math.h) on this rank's shard, in place. Steps are 1-based: the update of training step t
// (StepContext::step = t - 1) uses t for the bias corrections and the schedule. accumulate adds its operand / micro_batches
// into an fp32 accumulator, which the first micro-batch of a step (StepContext::microBatch 0) starts from zero.
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
