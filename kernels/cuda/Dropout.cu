// Inverted dropout with the CPU's Philox keying (kernels/cpu/Dropout.h, kernels/Philox.h, one implementation for
// both): y_i = keep_i ? x_i / (1 - p) : 0 with keep_i = uniform(key, g(i)) >= p, g(i) the row-major index in the
// GLOBAL tensor of local element i (so a shard draws exactly the unsharded tensor's mask). p == 0: y = x. The
// backward is the same function applied to dy. One thread per element, templated on the storage type
// (kernels/cuda/Storage.cuh). A stepCounter (device) replaces key.step, read by every thread.
#include "kernels/cuda/Common.cuh"
#include "kernels/cuda/Storage.cuh"

namespace meg::kernels::cuda {

namespace {

template <typename T>
__global__ void dropoutKernel(const T *x, Strided<1> g, int64_t base, int64_t n, float p, PhiloxKey key,
                              const uint32_t *stepCounter, T *y) {
  float keepScale = 1.0f / (1.0f - p);
  if (stepCounter)
    key.step = *stepCounter;
  MEG_GRID_STRIDE(i, n) {
    int64_t off;
    g.offsets(i, &off);
    y[i] = store<T>(dropoutKeep(key, uint64_t(base + off), p) ? load(x[i]) * keepScale : 0.0f);
  }
}

} // namespace

template <typename T>
cudaError_t dropout(const T *x, const cpu::GlobalView &view, float p, const PhiloxKey &key, T *y, cudaStream_t stream,
                    const uint32_t *stepCounter) {
  if (view.rank > kMaxRank || view.rank < 0 || !(p >= 0.0f))
    return cudaErrorInvalidValue;
  int64_t n = product(view.localShape, view.rank);
  if (n == 0)
    return cudaSuccess;
  if (p == 0.0f)
    return x == y ? cudaSuccess : cudaMemcpyAsync(y, x, size_t(n) * sizeof(T), cudaMemcpyDeviceToDevice, stream);
  if (p >= 1.0f)
    return cudaMemsetAsync(y, 0, size_t(n) * sizeof(T), stream); // +0.0 in every storage type
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
  dropoutKernel<<<blocksFor(n), kThreads, 0, stream>>>(x, g, base, n, p, key, stepCounter, y);
  return launched();
}

#define MEG_INSTANTIATE(T)                                                                                             \
  template cudaError_t dropout<T>(const T *, const cpu::GlobalView &, float, const PhiloxKey &, T *, cudaStream_t,      \
                                  const uint32_t *);
MEG_FOR_STORAGE(MEG_INSTANTIATE)
#undef MEG_INSTANTIATE

} // namespace meg::kernels::cuda
