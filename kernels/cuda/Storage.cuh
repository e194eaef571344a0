// The storage types of the CUDA kernels' 16-bit variants: every templated kernel loads its operands of storage type
// T (float, __nv_bfloat16, __half) into fp32 with load(), computes in fp32, and stores with store<T>(), which rounds
// to nearest even through kernels/Half.h's integer conversions: bit for bit what the CPU's 16-bit reference path
// (fp32 kernels on widened copies, results rounded by Half.h) stores for the same fp32 value. MEG_FOR_STORAGE
// instantiates a launcher for the three types.
#ifndef MEG_KERNELS_CUDA_STORAGE_CUH
#define MEG_KERNELS_CUDA_STORAGE_CUH

#include "kernels/Half.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace meg::kernels::cuda {

__device__ inline float load(float v) { return v; }
__device__ inline float load(__nv_bfloat16 v) { return bf16ToFloat(__bfloat16_as_ushort(v)); }
__device__ inline float load(__half v) { return f16ToFloat(__half_as_ushort(v)); }

template <typename T> __device__ T store(float v);
template <> __device__ inline float store<float>(float v) { return v; }
template <> __device__ inline __nv_bfloat16 store<__nv_bfloat16>(float v) {
  return __ushort_as_bfloat16(floatToBf16(v));
}
template <> __device__ inline __half store<__half>(float v) { return __ushort_as_half(floatToF16(v)); }

} // namespace meg::kernels::cuda

/// X(T) for every storage type (explicit instantiations of templated launchers).
#define MEG_FOR_STORAGE(X) X(float) X(__nv_bfloat16) X(__half)

#endif // MEG_KERNELS_CUDA_STORAGE_CUH
