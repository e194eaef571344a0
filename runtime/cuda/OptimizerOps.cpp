//===- OptimizerOps.cpp - CUDA launches: learning rate, clipping, AdamW ---------===//
//
// Without host round trips: lr_schedule evaluates the schedule on the host (it depends only on the step) into its
// slot of the per-step parameter block and copies it to its result on the device; sum_squares and clip_scale leave
// their scalars on the device; adamw reads the rate and the clipping coefficient from there and its bias
// corrections (1 - beta^step, computed on the host) from its parameter slot (kernels/Math.h's AdamW, as the CPU's).
// Nothing per-step is a kernel argument, so a captured CUDA graph replays every step (CudaOps.h).
// With loss scaling (fp16) the step count and the overflow flag are device scalars that lr_schedule and adamw read
// back (one round trip each, so such plans are never captured); nonfinite and loss_scale_update stay on the device.
//
//===----------------------------------------------------------------------===//
#include "runtime/cuda/CudaOps.h"

#include "kernels/cuda/Kernels.h"

#include <cstring>

using namespace meg;
using namespace meg::runtime;
using namespace meg::runtime::cuda;
namespace k = meg::kernels::cuda;

/// Reads `n` device scalars to the host (a round trip: only loss-scaled plans need one).
static llvm::Error readScalars(CudaStep &s, cudaStream_t stream, std::initializer_list<const float *> from,
                               float *to) {
  for (const float *p : from)
    if (auto err = s.check(cudaMemcpyAsync(to++, p, sizeof(float), cudaMemcpyDeviceToHost, stream), "scalar read"))
      return err;
  return s.check(cudaStreamSynchronize(stream), "scalar read");
}

llvm::Expected<CudaKernel> meg::runtime::cuda::launch(const LrScheduleArgs &a, CudaStep &s) {
  if (a.counted) // loss scaling: the step is the device count of applied updates (a round trip; never captured)
    return [a, &s](const CudaRunArgs &run) -> llvm::Error {
      float updates = 0.0f;
      if (auto err = readScalars(s, run.stream, {s.f(0)}, &updates))
        return err;
      return s.check(k::fill(s.fout(), 1, float(a.at(int64_t(updates) + 1)), run.stream));
    };
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
  if (a.skippable) // loss scaling: the step count and the skip are device scalars (a round trip; never captured)
    return [a, &s](const CudaRunArgs &run) -> llvm::Error {
      float counts[2] = {0.0f, 0.0f}; // [updates, found_inf]
      if (auto err = readScalars(s, run.stream, {s.f(6), s.f(7)}, counts))
        return err;
      if (counts[1] != 0.0f)
        return llvm::Error::success();
      return s.check(k::adamwStep(s.f(0), s.f(1), s.f(2), s.f(3), a.n, a.config, s.f(4), s.f(5),
                                  int64_t(counts[0]) + 1, run.stream));
    };
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

llvm::Expected<CudaKernel> meg::runtime::cuda::launch(const NonfiniteArgs &a, CudaStep &s) {
  return [a, &s](const CudaRunArgs &run) -> llvm::Error {
    return s.check(k::nonfinite(s.f(0), a.n, s.fout(), run.stream));
  };
}

llvm::Expected<CudaKernel> meg::runtime::cuda::launch(const LossScaleUpdateArgs &a, CudaStep &s) {
  return [a, &s](const CudaRunArgs &run) -> llvm::Error {
    return s.check(k::lossScaleUpdate(s.f(0), s.f(1), s.f(2), s.f(3), s.f(4), a.config, run.stream));
  };
}

// acc = (first ? 0 : acc) + scale x from the elementwise kernels: scale x into the result, add it to the accumulator
// (or copy it there at the first micro-batch), then the result is a copy of the accumulator.
llvm::Expected<CudaKernel> meg::runtime::cuda::launch(const AccumulateArgs &a, CudaStep &s) {
  // The result is the accumulator itself (accumulate yields its written operand) or, in older plans, a copy.
  return [a, &s](const CudaRunArgs &run) -> llvm::Error {
    return s.check(k::accumulate(s.f(0), s.f(1), a.n, a.scale, run.ctx.microBatch == 0, s.fout(), run.stream));
  };
}

llvm::Expected<CudaKernel> meg::runtime::cuda::launch(const NotAStepArgs &, CudaStep &s) {
  return s.error("not a step");
}
