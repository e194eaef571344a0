//===- OptimizerOps.cpp - CPU launches: learning rate, clipping, AdamW ---------===//
//
// lr_schedule writes the rate of the current (1-based) step; clip_scale writes the clipping coefficient and the
// norm; adamw takes one AdamW step in place with the gradient scaled by the coefficient (kernels/Math.h).
//
//===----------------------------------------------------------------------===//
#include "runtime/cpu/CpuOps.h"

#include "kernels/cpu/Adam.h"

using namespace meg;
using namespace meg::runtime;
using namespace meg::runtime::cpu;
namespace k = meg::kernels::cpu;

llvm::Expected<CpuKernel> meg::runtime::cpu::launch(const LrScheduleArgs &a, CpuStep &s) {
  return infallible([a, &s](const CpuRunArgs &run) { *s.fout() = float(a.at(int64_t(run.ctx.step) + 1)); });
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
    k::AdamConfig c = a.config;
    c.lr = *s.f(4);
    // torch's clip_grad_norm_ multiplies the gradients by the clamped coefficient before the step.
    k::adamwStep(s.f(0), s.f(1), s.f(2), s.f(3), a.n, c, *s.f(5), int64_t(run.ctx.step) + 1);
  });
}

llvm::Expected<CpuKernel> meg::runtime::cpu::launch(const AccumulateArgs &a, CpuStep &s) {
  return infallible([a, &s](const CpuRunArgs &run) {
    k::accumulate(s.f(0), s.f(1), a.n, a.scale, run.ctx.microBatch == 0, s.fout());
  });
}

llvm::Expected<CpuKernel> meg::runtime::cpu::launch(const NotAStepArgs &, CpuStep &s) { return s.error("not a step"); }
