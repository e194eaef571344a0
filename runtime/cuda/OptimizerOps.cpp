//===- OptimizerOps.cpp - CUDA adapters: learning rate, clipping, AdamW ---------===//
//
// As runtime/cpu/OptimizerOps.cpp, without host round trips: lr_schedule evaluates the schedule on the host (it
// depends only on the step) and writes it with a one-element fill kernel; sum_squares and clip_scale leave their
// scalars on the device; adamw reads the rate and the clipping coefficient from there.
//
//===----------------------------------------------------------------------===//
#include "runtime/cuda/CudaOps.h"

#include "kernels/cuda/Kernels.h"

using namespace meg;
using namespace meg::runtime;
using namespace meg::runtime::cuda;
namespace k = meg::kernels::cuda;
namespace kc = meg::kernels::cpu;

llvm::Expected<CudaKernel> meg::runtime::cuda::cudaLrSchedule(CudaStep &s) {
  if (auto err = validate(s, &cpu::cpuLrSchedule))
    return err;
  cpu::LrScheduleConfig c;
  // The attributes were checked by the CPU adapter.
  c.lr = llvm::cantFail(s.floatAttr("lr"));
  c.minLr = llvm::cantFail(s.floatAttr("min_lr"));
  c.warmup = llvm::cantFail(s.intAttr("warmup"));
  c.decayIters = llvm::cantFail(s.intAttr("decay_iters"));
  c.style = llvm::cantFail(s.symbolAttr("style"));
  return [c, &s](const CudaRunArgs &args) -> llvm::Error {
    float lr = float(cpu::scheduledLr(c, int64_t(args.ctx.step) + 1));
    return s.check(k::fill(s.fout(), 1, lr, args.stream));
  };
}

llvm::Expected<CudaKernel> meg::runtime::cuda::cudaSumSquares(CudaStep &s) {
  if (auto err = validate(s, &cpu::cpuSumSquares))
    return err;
  int64_t n = s.operand(0).numel();
  s.scratchBytes = k::kSumSquaresScratch * int64_t(sizeof(double));
  return [n, &s](const CudaRunArgs &args) -> llvm::Error {
    return s.check(k::sumSquares(s.f(0), n, s.fout(), static_cast<double *>(args.scratch), args.stream));
  };
}

llvm::Expected<CudaKernel> meg::runtime::cuda::cudaClipScale(CudaStep &s) {
  if (auto err = validate(s, &cpu::cpuClipScale))
    return err;
  float limit = float(llvm::cantFail(s.floatAttr("max_norm")));
  return [limit, &s](const CudaRunArgs &args) -> llvm::Error {
    return s.check(k::clipScale(s.f(0), limit, s.fout(0), s.fout(1), args.stream));
  };
}

llvm::Expected<CudaKernel> meg::runtime::cuda::cudaAdamW(CudaStep &s) {
  if (auto err = validate(s, &cpu::cpuAdamW))
    return err;
  kc::AdamConfig config;
  config.beta1 = llvm::cantFail(s.floatAttr("beta1"));
  config.beta2 = llvm::cantFail(s.floatAttr("beta2"));
  config.eps = llvm::cantFail(s.floatAttr("eps"));
  config.weightDecay = llvm::cantFail(s.floatAttr("weight_decay"));
  int64_t n = s.operand(0).numel();
  return [config, n, &s](const CudaRunArgs &args) -> llvm::Error {
    return s.check(k::adamwStep(s.f(0), s.f(1), s.f(2), s.f(3), n, config, s.f(4), s.f(5),
                                int64_t(args.ctx.step) + 1, args.stream));
  };
}
