//===- OptimizerOps.cpp - CPU adapters: learning rate, clipping, AdamW ---------===//
//
// lr_schedule evaluates Megatron's schedule at the current step (linear warm-up from 0, then constant, linear or
// cosine decay to min_lr at decay_iters). clip_scale turns the global squared gradient norm into torch's
// clip_grad_norm_ coefficient min(1, max_norm / (norm + 1e-6)). adamw scales the gradient by it and takes one
// torch.optim.AdamW step (kernels/cpu/Adam.h) on this rank's shard, in place. Steps are 1-based: the update of
// training step t (StepContext::step = t - 1) uses t for the bias corrections and the schedule.
//
//===----------------------------------------------------------------------===//
#include "runtime/cpu/CpuOps.h"

#include "kernels/cpu/Adam.h"
#include "kernels/cpu/Elementwise.h"

#include "llvm/Support/FormatVariadic.h"

#include <cmath>

using namespace meg;
using namespace meg::runtime;
using namespace meg::runtime::cpu;
namespace k = meg::kernels::cpu;

double meg::runtime::cpu::scheduledLr(const LrScheduleConfig &c, int64_t step) {
  if (c.warmup > 0 && step <= c.warmup)
    return c.lr * double(step) / double(c.warmup);
  if (c.style == "constant" || step >= c.decayIters || c.decayIters <= c.warmup)
    return c.style == "constant" ? c.lr : c.minLr;
  double ratio = double(step - c.warmup) / double(c.decayIters - c.warmup);
  double coeff = c.style == "cosine" ? 0.5 * (std::cos(M_PI * ratio) + 1.0) : 1.0 - ratio;
  return c.minLr + (c.lr - c.minLr) * coeff;
}

llvm::Expected<CpuKernel> meg::runtime::cpu::cpuLrSchedule(CpuStep &s) {
  LrScheduleConfig c;
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
  return [c, &s](const CpuRunArgs &args) -> llvm::Error {
    *s.fout() = float(scheduledLr(c, int64_t(args.ctx.step) + 1));
    return llvm::Error::success();
  };
}

llvm::Expected<CpuKernel> meg::runtime::cpu::cpuSumSquares(CpuStep &s) {
  if (auto err = s.expectDTypes(DType::F32))
    return err;
  int64_t n = s.operand(0).numel();
  return [n, &s](const CpuRunArgs &) -> llvm::Error {
    *s.fout() = float(k::sumOfSquares(s.f(0), n));
    return llvm::Error::success();
  };
}

llvm::Expected<CpuKernel> meg::runtime::cpu::cpuClipScale(CpuStep &s) {
  auto maxNorm = s.floatAttr("max_norm");
  if (!maxNorm)
    return maxNorm.takeError();
  if (*maxNorm <= 0)
    return s.error(llvm::formatv("max_norm must be positive, got {0}", *maxNorm));
  if (auto err = s.expectDTypes(DType::F32))
    return err;
  float limit = float(*maxNorm);
  return [limit, &s](const CpuRunArgs &) -> llvm::Error {
    float norm = std::sqrt(*s.f(0));
    float coeff = limit / (norm + 1e-6f);
    *s.fout(0) = coeff < 1.0f ? coeff : 1.0f;
    *s.fout(1) = norm;
    return llvm::Error::success();
  };
}

llvm::Expected<CpuKernel> meg::runtime::cpu::cpuAdamW(CpuStep &s) {
  k::AdamConfig config;
  std::pair<const char *, double *> fields[] = {
      {"beta1", &config.beta1}, {"beta2", &config.beta2}, {"eps", &config.eps}, {"weight_decay", &config.weightDecay}};
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
  int64_t n = s.operand(0).numel();
  s.scratchFloats = n;
  return [config, n, &s](const CpuRunArgs &args) -> llvm::Error {
    k::AdamConfig c = config;
    c.lr = *s.f(4);
    // torch's clip_grad_norm_ multiplies the gradients by the clamped coefficient before the step.
    k::scale(s.f(1), n, *s.f(5), args.scratch);
    k::adamwStep(s.f(0), args.scratch, s.f(2), s.f(3), n, c, int64_t(args.ctx.step) + 1);
    return llvm::Error::success();
  };
}
