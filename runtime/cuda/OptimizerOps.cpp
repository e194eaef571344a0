//===- OptimizerOps.cpp - CUDA launches: learning rate, clipping, AdamW ---------===//
//
// Without host round trips: lr_schedule evaluates the schedule on the host (it depends only on the step) into its
// slot of the per-step parameter block and copies it to its result on the device; sum_squares and clip_scale leave
// their scalars on the device; adamw reads the rate and the clipping coefficient from there and its bias
// corrections (1 - beta^step, computed on the host) from its parameter slot (kernels/Math.h's AdamW, as the CPU's).
// Nothing per-step is a kernel argument, so a captured CUDA graph replays every step (CudaOps.h).
//
//===----------------------------------------------------------------------===//
#include "runtime/cuda/CudaOps.h"

#include "kernels/cuda/Kernels.h"

#include <cstring>

using namespace meg;
using namespace meg::runtime;
using namespace meg::runtime::cuda;
namespace k = meg::kernels::cuda;

llvm::Expected<CudaKernel> meg::runtime::cuda::launch(const LrScheduleArgs &a, CudaStep &s) {
  s.hostParam(sizeof(float), [a](const StepContext &ctx, uint8_t *slot) {
    float lr = float(a.at(int64_t(ctx.step) + 1));
    std::memcpy(slot, &lr, sizeof(lr));
  });
  return [&s](const CudaRunArgs &run) -> llvm::Error {
    return s.check(cudaMemcpyAsync(s.fout(), s.paramSlot(run), sizeof(float), cudaMemcpyDeviceToDevice, run.stream),
                   "lr copy");
  };
}

llvm::Expected<CudaKernel> meg::runtime::cuda::launch(const SumSquaresArgs &a, CudaStep &s) {
  s.scratchBytes = k::kSumSquaresScratch * int64_t(sizeof(double));
  return [a, &s](const CudaRunArgs &run) -> llvm::Error {
    return s.check(k::sumSquares(s.f(0), a.n, s.fout(), static_cast<double *>(run.scratch), run.stream));
  };
}

llvm::Expected<CudaKernel> meg::runtime::cuda::launch(const ClipScaleArgs &a, CudaStep &s) {
  return [a, &s](const CudaRunArgs &run) -> llvm::Error {
    return s.check(k::clipScale(s.f(0), a.maxNorm, s.fout(0), s.fout(1), run.stream));
  };
}

llvm::Expected<CudaKernel> meg::runtime::cuda::launch(const AdamWArgs &a, CudaStep &s) {
  s.hostParam(2 * sizeof(double), [config = a.config](const StepContext &ctx, uint8_t *slot) {
    double bias[2];
    k::adamwBiasCorrections(config, int64_t(ctx.step) + 1, bias);
    std::memcpy(slot, bias, sizeof(bias));
  });
  return [a, &s](const CudaRunArgs &run) -> llvm::Error {
    return s.check(k::adamwStep(s.f(0), s.f(1), s.f(2), s.f(3), a.n, a.config, s.f(4), s.f(5),
                                reinterpret_cast<const double *>(s.paramSlot(run)), run.stream));
  };
}

llvm::Expected<CudaKernel> meg::runtime::cuda::launch(const NotAStepArgs &, CudaStep &s) {
  return s.error("not a step");
}
