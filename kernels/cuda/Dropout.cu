// Inverted dropout with the CPU's Philox keying (kernels/cpu/Dropout.h, kernels/Philox.h, one implementation for
// both): y_i = keep_i ? x_i / (1 - p) : 0 with keep_i = uniform(key, g(i)) >= p, g(i) the row-major index in the
// GLOBAL tensor of local element i (so a shard draws exactly the unsharded tensor's mask). p == 0: y = x. The
// backward is the same function applied to dy. One thread per element.
#include "kernels/cuda/Common.cuh"

namespace meg::kernels::cuda {

namespace {

__global__ void dropoutKernel(const float *x, Strided<1> g, int64_t base, int64_t n, float p, PhiloxKey key,
                              float *y) {
  float keepScale = 1.0f / (1.0f - p);
  MEG_GRID_STRIDE(i, n) {
    int64_t off;
    g.offsets(i, &off);
    y[i] = dropoutKeep(key, uint64_t(base + off), p) ? x[i] * keepScale : 0.0f;
  }
}

} // namespace

cudaError_t dropout(const float *x, const cpu::GlobalView &view, float p, const PhiloxKey &key, float *y,
                    cudaStream_t stream) {
  if (view.rank > kMaxRank || view.rank < 0 || !(p >= 0.0f))
    return cudaErrorInvalidValue;
  int64_t n = product(view.localShape, view.rank);
  if (n == 0)
    return cudaSuccess;
  if (p == 0.0f)
    return x == y ? cudaSuccess : cudaMemcpyAsync(y, x, size_t(n) * sizeof(float), cudaMemcpyDeviceToDevice, stream);
  if (p >= 1.0f)
    return fill(y, n, 0.0f, stream);
  const int64_t *global = view.globalShape ? view.globalShape : view.localShape;
  Strided<1> g;
  g.rank = view.rank;
  contiguousStrides(global, view.rank, g.stride[0]);
  int64_t base = 0;
  for (int d = 0; d < view.rank; ++d) {
    g.size[d] = view.localShape[d];
    int64_t offset = view.offset ? view.offset[d] : 0;
    if (offset < 0 || offset + view.localShape[d] > global[d])
      return cudaErrorInvalidValue;
    base += offset * g.stride[0][d];
  }
  dropoutKernel<<<blocksFor(n), kThreads, 0, stream>>>(x, g, base, n, p, key, y);
  return launched();
}

} // namespace meg::kernels::cuda
