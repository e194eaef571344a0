// Device helpers shared by the kernel files: grid sizing for grid-stride loops, launch checks, and deterministic
// warp / block reductions (fixed shuffle trees; every thread gets the same total).
#ifndef MEG_KERNELS_CUDA_COMMON_CUH
#define MEG_KERNELS_CUDA_COMMON_CUH

#include "kernels/cuda/Kernels.h"

#include <cuda_runtime.h>

#include <cstdint>

namespace meg::kernels::cuda {

constexpr int kThreads = 256;
/// Grid-stride loops cover any size; more blocks than this add nothing on one GPU.
constexpr int64_t kMaxBlocks = 65535;

inline unsigned blocksFor(int64_t work, int64_t perBlock = kThreads) {
  int64_t b = (work + perBlock - 1) / perBlock;
  return unsigned(b < 1 ? 1 : (b > kMaxBlocks ? kMaxBlocks : b));
}

/// The status of the launches just made on this thread (no synchronization).
inline cudaError_t launched() { return cudaGetLastError(); }

#define MEG_CUDA_TRY(expr)                                                                                             \
  do {                                                                                                                 \
    cudaError_t megErr_ = (expr);                                                                                      \
    if (megErr_ != cudaSuccess)                                                                                        \
      return megErr_;                                                                                                  \
  } while (0)

#define MEG_GRID_STRIDE(i, n)                                                                                          \
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

template <typename T> __device__ inline T warpSum(T v) {
  for (int o = 16; o > 0; o >>= 1)
    v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

/// max that propagates NaN (as the CPU reductions: once NaN, stays NaN).
__device__ inline float maxNaN(float acc, float v) { return (!isnan(acc) && (v > acc || isnan(v))) ? v : acc; }

__device__ inline float warpMax(float v) {
  for (int o = 16; o > 0; o >>= 1)
    v = maxNaN(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

/// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread returns the total, summed over
/// warps in warp order. All threads of the block must call it.
template <typename T> __device__ T blockSum(T v) {
  __shared__ T partial[32];
  v = warpSum(v);
  __syncthreads(); // a previous call may still read `partial`
  if ((threadIdx.x & 31) == 0)
    partial[threadIdx.x >> 5] = v;
  __syncthreads();
  T total = 0;
  for (unsigned w = 0; w < (blockDim.x + 31) / 32; ++w)
    total += partial[w];
  return total;
}

__device__ inline float blockMax(float v) {
  __shared__ float partial[32];
  v = warpMax(v);
  __syncthreads();
  if ((threadIdx.x & 31) == 0)
    partial[threadIdx.x >> 5] = v;
  __syncthreads();
  float total = -INFINITY;
  for (unsigned w = 0; w < (blockDim.x + 31) / 32; ++w)
    total = maxNaN(total, partial[w]);
  return total;
}

/// A shape and per-operand strides passed by value to kernels.
template <int N> struct Strided {
  int rank = 0;
  int64_t size[kMaxRank] = {};
  int64_t stride[N][kMaxRank] = {};
  /// Offsets of linear (row-major over size) index i in every operand.
  __device__ void offsets(int64_t i, int64_t *off) const {
    for (int op = 0; op < N; ++op)
      off[op] = 0;
    for (int d = rank - 1; d >= 0; --d) {
      int64_t idx = i % size[d];
      i /= size[d];
      for (int op = 0; op < N; ++op)
        off[op] += idx * stride[op][d];
    }
  }
};

inline int64_t product(const int64_t *shape, int rank) { return kernels::numel(shape, rank); }
using kernels::contiguousStrides;

} // namespace meg::kernels::cuda

#endif // MEG_KERNELS_CUDA_COMMON_CUH
