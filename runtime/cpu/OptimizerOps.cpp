//===- OptimizerOps.cpp - CPU launches: learning rate, clipping, AdamW ---------===//
//
// lr_schedule writes the rate of the current (1-based) step; clip_scale writes the clipping coefficient and the
// norm; adamw takes one AdamW step in place with the gradient scaled by the coefficient (kernels/Math.h), or none
// when loss scaling found an overflow; nonfinite and loss_scale_update are the loss scaler's.
//
//===----------------------------------------------------------------------===//
#include "runtime/cpu/CpuOps.h"

#include "kernels/cpu/Adam.h"

using namespace meg;
using namespace meg::runtime;
using namespace meg::runtime::cpu;
namespace k = meg::kernels::cpu;

llvm::Expected<CpuKernel> meg::runtime::cpu::launch(const LrScheduleArgs &a, CpuStep &s) {
  return infallible([a, &s](const CpuRunArgs &run) {
    int64_t step = a.counted ? int64_t(*s.f(0)) + 1 : int64_t(run.ctx.step) + 1;
    *s.fout() = float(a.at(step));
  });
}

llvm::Expected<CpuKernel> meg::runtime::cpu::launch(const SumSquaresArgs &a, CpuStep &s) {
  return infallible([a, &s](const CpuRunArgs &) { *s.fout() = float(k::sumOfSquares(s.f(0), a.n)); });
}

llvm::Expected<CpuKernel> meg::runtime::cpu::launch(const ClipScaleArgs &a, CpuStep &s) {
  return infallible(
      [a, &s](const CpuRunArgs &) { *s.fout(0) = kernels::clipCoefficient(*s.f(0), a.maxNorm, s.fout(1)); });
}

llvm::Expected<CpuKernel> meg::runtime::cpu::launch(const AdamWArgs &a, CpuStep &s) {
  return infallible([a, &s](const CpuRunArgs &run) {
    if (a.skippable && *s.f(7) != 0.0f)
      return; // an overflowing fp16 step: parameter and moments untouched
    k::AdamConfig c = a.config;
    c.lr = *s.f(4);
    // torch's clip_grad_norm_ multiplies the gradients by the clamped coefficient before the step.
    int64_t step = a.skippable ? int64_t(*s.f(6)) + 1 : int64_t(run.ctx.step) + 1;
    k::adamwStep(s.f(0), s.f(1), s.f(2), s.f(3), a.n, c, *s.f(5), step);
  });
}

llvm::Expected<CpuKernel> meg::runtime::cpu::launch(const NonfiniteArgs &a, CpuStep &s) {
  return infallible([a, &s](const CpuRunArgs &) { *s.fout() = k::anyNonfinite(s.f(0), a.n) ? 1.0f : 0.0f; });
}

llvm::Expected<CpuKernel> meg::runtime::cpu::launch(const LossScaleUpdateArgs &a, CpuStep &s) {
  return infallible([a, &s](const CpuRunArgs &) {
    kernels::lossScaleUpdate(*s.f(0), *s.f(1), *s.f(2), *s.f(3), *s.f(4), a.config);
  });
}

llvm::Expected<CpuKernel> meg::runtime::cpu::launch(const AccumulateArgs &a, CpuStep &s) {
  return infallible([a, &s](const CpuRunArgs &run) {
    k::accumulate(s.f(0), s.f(1), a.n, a.scale, run.ctx.microBatch == 0, s.fout());
  });
}

llvm::Expected<CpuKernel> meg::runtime::cpu::launch(const NotAStepArgs &, CpuStep &s) { return s.error("not a step"); }
