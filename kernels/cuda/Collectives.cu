// Device side of the one-GPU multi-rank communicator: the ranks' buffers all live on one device, so a collective is
// a kernel reading every member's buffer. r_i = in_0[i] op in_1[i] op ... op in_{g-1}[i] in member order (sum or
// NaN-propagating max), written to every requested output: the same order on every member, so all members get
// bit-identical results, as runtime/comm/Communicator.cpp's InProcessCommunicator.
#include "kernels/cuda/Common.cuh"

namespace meg::kernels::cuda {

namespace {

struct Members {
  const float *in[kMaxMembers];
  float *out[kMaxMembers];
};

__global__ void reduceMembersKernel(bool isMax, Members p, int members, int64_t inOffset, int numOuts,
                                    int64_t outOffset, int64_t count) {
  MEG_GRID_STRIDE(i, count) {
    float r = p.in[0][inOffset + i];
    for (int m = 1; m < members; ++m) {
      float x = p.in[m][inOffset + i];
      r = isMax ? maxNaN(r, x) : r + x;
    }
    for (int o = 0; o < numOuts; ++o)
      p.out[o][outOffset + i] = r;
  }
}

} // namespace

cudaError_t reduceMembers(bool isMax, const float *const *in, int members, int64_t inOffset, float *const *outs,
                          int numOuts, int64_t outOffset, int64_t count, cudaStream_t stream) {
  if (members < 1 || members > kMaxMembers || numOuts < 1 || numOuts > kMaxMembers || count < 0)
    return cudaErrorInvalidValue;
  if (count == 0)
    return cudaSuccess;
  Members p{};
  for (int m = 0; m < members; ++m)
    p.in[m] = in[m];
  for (int o = 0; o < numOuts; ++o)
    p.out[o] = outs[o];
  reduceMembersKernel<<<blocksFor(count), kThreads, 0, stream>>>(isMax, p, members, inOffset, numOuts, outOffset,
                                                                 count);
  return launched();
}

} // namespace meg::kernels::cuda
