// Loss scaling (fp16): the overflow test of a gradient shard and the dynamic loss scaler's update, on device scalars
// so a step never waits for the host; the update rule is kernels/Math.h's lossScaleUpdate, shared with the CPU.
#include "kernels/cuda/Common.cuh"

namespace meg::kernels::cuda {

namespace {

__global__ void nonfiniteKernel(const float *x, int64_t n, float *flag) {
  MEG_GRID_STRIDE(i, n) {
    if (!isfinite(x[i]))
      *flag = 1.0f; // every writer writes the same value
  }
}

__global__ void lossScaleUpdateKernel(const float *foundInf, float *scale, float *growth, float *hysteresis,
                                      float *updates, LossScalerConfig c) {
  kernels::lossScaleUpdate(*foundInf, *scale, *growth, *hysteresis, *updates, c);
}

} // namespace

cudaError_t nonfinite(const float *x, int64_t n, float *flag, cudaStream_t stream) {
  if (n < 0)
    return cudaErrorInvalidValue;
  if (cudaError_t err = cudaMemsetAsync(flag, 0, sizeof(float), stream); err != cudaSuccess)
    return err;
  if (n == 0)
    return cudaSuccess;
  nonfiniteKernel<<<blocksFor(n), kThreads, 0, stream>>>(x, n, flag);
  return launched();
}

cudaError_t lossScaleUpdate(const float *foundInf, float *scale, float *growth, float *hysteresis, float *updates,
                            const LossScalerConfig &config, cudaStream_t stream) {
  lossScaleUpdateKernel<<<1, 1, 0, stream>>>(foundInf, scale, growth, hysteresis, updates, config);
  return launched();
}

} // namespace meg::kernels::cuda
