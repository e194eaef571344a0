// Elementwise kernels (math as kernels/cpu/Elementwise.h): out = a op b with numpy broadcasting (an operand's missing
// or size-1 dim has stride 0 against the output shape), y = exp/log/tanh(x), y = factor * x, broadcastTo, fill and
// cast (between f32, bf16, f16 and i32 with kernels/Half.h's conversions, so the CPU's cast agrees bit for bit). One
// thread per output element in grid-stride loops; the output index is decomposed over the output shape. binary,
// unary and broadcastTo are templated on the storage type (kernels/cuda/Storage.cuh): load, fp32 math, rounded store.
#include "kernels/cuda/Common.cuh"
#include "kernels/cuda/Storage.cuh"

#include "kernels/Half.h"

namespace meg::kernels::cuda {

namespace {

/// Strides of an operand (shape, rank) aligned to the trailing dims of `out`; false if it does not broadcast.
bool alignStrides(const int64_t *shape, int rank, const int64_t *out, int outRank, int64_t *stride) {
  if (rank > outRank)
    return false;
  int lead = outRank - rank;
  int64_t s = 1;
  for (int d = outRank - 1; d >= 0; --d) {
    if (d < lead) {
      stride[d] = 0;
      continue;
    }
    int64_t len = shape[d - lead];
    if (len != 1 && len != out[d])
      return false;
    stride[d] = len == 1 ? 0 : s;
    s *= len;
  }
  return true;
}

template <typename T>
__global__ void binaryKernel(cpu::BinaryOp op, Strided<2> g, int64_t n, const T *a, const T *b, T *out) {
  MEG_GRID_STRIDE(i, n) {
    int64_t off[2];
    g.offsets(i, off);
    float x = load(a[off[0]]), y = load(b[off[1]]);
    float r;
    switch (op) {
    case cpu::BinaryOp::Add:
      r = x + y;
      break;
    case cpu::BinaryOp::Sub:
      r = x - y;
      break;
    case cpu::BinaryOp::Mul:
      r = x * y;
      break;
    case cpu::BinaryOp::Max:
      r = maximum(x, y);
      break;
    default:
      r = x / y;
      break;
    }
    out[i] = store<T>(r);
  }
}

template <typename T> __global__ void unaryKernel(UnaryOp op, const T *x, int64_t n, float factor, T *y) {
  MEG_GRID_STRIDE(i, n) {
    float v = load(x[i]), r = v;
    switch (op) {
    case UnaryOp::Exp:
      r = expf(v);
      break;
    case UnaryOp::Log:
      r = logf(v);
      break;
    case UnaryOp::Tanh:
      r = tanhf(v);
      break;
    case UnaryOp::Scale:
      r = v * factor;
      break;
    }
    y[i] = store<T>(r);
  }
}

/// A move: the storage bits of x (broadcasting changes no value).
template <typename T> __global__ void gatherKernel(Strided<1> g, int64_t n, const T *x, T *out) {
  MEG_GRID_STRIDE(i, n) {
    int64_t off;
    g.offsets(i, &off);
    out[i] = x[off];
  }
}

__global__ void fillKernel(float *x, int64_t n, float value) {
  MEG_GRID_STRIDE(i, n) { x[i] = value; }
}

__global__ void castKernel(const void *x, Elem from, void *y, Elem to, int64_t n) {
  MEG_GRID_STRIDE(i, n) { storeFromFloat(y, to, i, loadAsFloat(x, from, i)); }
}

} // namespace

template <typename T>
cudaError_t binary(cpu::BinaryOp op, const T *a, const int64_t *shapeA, int rankA, const T *b, const int64_t *shapeB,
                   int rankB, T *out, cudaStream_t stream) {
  int rank = rankA > rankB ? rankA : rankB;
  if (rank > kMaxRank)
    return cudaErrorInvalidValue;
  Strided<2> g;
  g.rank = rank;
  for (int d = 0; d < rank; ++d) {
    int64_t la = d - (rank - rankA) >= 0 ? shapeA[d - (rank - rankA)] : 1;
    int64_t lb = d - (rank - rankB) >= 0 ? shapeB[d - (rank - rankB)] : 1;
    if (la != lb && la != 1 && lb != 1)
      return cudaErrorInvalidValue;
    g.size[d] = la == 1 ? lb : la;
  }
  if (!alignStrides(shapeA, rankA, g.size, rank, g.stride[0]) || !alignStrides(shapeB, rankB, g.size, rank, g.stride[1]))
    return cudaErrorInvalidValue;
  int64_t n = product(g.size, rank);
  if (n == 0)
    return cudaSuccess;
  binaryKernel<<<blocksFor(n), kThreads, 0, stream>>>(op, g, n, a, b, out);
  return launched();
}

template <typename T>
cudaError_t unary(UnaryOp op, const T *x, int64_t n, float factor, T *y, cudaStream_t stream) {
  if (n < 0)
    return cudaErrorInvalidValue;
  if (n == 0)
    return cudaSuccess;
  unaryKernel<<<blocksFor(n), kThreads, 0, stream>>>(op, x, n, factor, y);
  return launched();
}

template <typename T>
cudaError_t broadcastTo(const T *x, const int64_t *shapeX, int rankX, const int64_t *shapeOut, int rankOut, T *out,
                        cudaStream_t stream) {
  if (rankOut > kMaxRank)
    return cudaErrorInvalidValue;
  Strided<1> g;
  g.rank = rankOut;
  for (int d = 0; d < rankOut; ++d)
    g.size[d] = shapeOut[d];
  if (!alignStrides(shapeX, rankX, g.size, rankOut, g.stride[0]))
    return cudaErrorInvalidValue;
  int64_t n = product(shapeOut, rankOut);
  if (n == 0)
    return cudaSuccess;
  gatherKernel<<<blocksFor(n), kThreads, 0, stream>>>(g, n, x, out);
  return launched();
}

cudaError_t fill(float *x, int64_t n, float value, cudaStream_t stream) {
  if (n < 0)
    return cudaErrorInvalidValue;
  if (n == 0)
    return cudaSuccess;
  fillKernel<<<blocksFor(n), kThreads, 0, stream>>>(x, n, value);
  return launched();
}

cudaError_t cast(const void *x, Elem from, void *y, Elem to, int64_t n, cudaStream_t stream) {
  if (n < 0 || (x == y && elemBytes(from) != elemBytes(to)))
    return cudaErrorInvalidValue;
  if (n == 0)
    return cudaSuccess;
  if (from == to)
    return x == y ? cudaSuccess : cudaMemcpyAsync(y, x, size_t(n) * elemBytes(from), cudaMemcpyDeviceToDevice, stream);
  castKernel<<<blocksFor(n), kThreads, 0, stream>>>(x, from, y, to, n);
  return launched();
}

#define MEG_INSTANTIATE(T)                                                                                             \
  template cudaError_t binary<T>(cpu::BinaryOp, const T *, const int64_t *, int, const T *, const int64_t *, int, T *, \
                                 cudaStream_t);                                                                        \
  template cudaError_t unary<T>(UnaryOp, const T *, int64_t, float, T *, cudaStream_t);                                \
  template cudaError_t broadcastTo<T>(const T *, const int64_t *, int, const int64_t *, int, T *, cudaStream_t);
MEG_FOR_STORAGE(MEG_INSTANTIATE)
#undef MEG_INSTANTIATE

} // namespace meg::kernels::cuda
