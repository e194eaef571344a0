// CUDA kernels: launchers for every op family of the CUDA backend (kernels/cuda/<Family>.cu holds each family's
// kernels, forward and backward side by side, and opens with its math).
//
// Conventions. Every launcher takes an explicit stream, checks its preconditions (cudaErrorInvalidValue when they do
// not hold, before anything is launched) and returns the launch's status (cudaGetLastError: no host
// synchronization). Pointers are device pointers unless a parameter says "host". The math is the CPU kernels'
// (kernels/cpu/*.h), and so are the shared parameter types (GeluForm, GlobalView, AttentionParams, AdamConfig,
// ContractPlan): the GPU tests run the CPU kernels as the reference. Sums that cross threads use fixed trees or
// fixed-order loops and no float atomics, so every result is bit-identical run to run.
//
// 16-bit variants. Launchers templated on T are instantiated for the storage types float, __nv_bfloat16 and __half
// (kernels/cuda/Storage.cuh): they load T, compute in fp32 and store T rounded to nearest even with kernels/Half.h's
// conversions, so a 16-bit kernel stores exactly what the CPU's 16-bit path (the fp32 kernel on widened copies, the
// results rounded by Half.h) stores for the same fp32 value; only fp32 summation orders differ, as between the fp32
// kernels. Scratch and reductions stay fp32 (or double). Layout kernels move 2- or 4-byte elements (elemBytes).
// stepCounter parameters (device pointers, or null for the value passed by argument) let a step read the training
// step from device memory, so a captured CUDA graph replays it with the current step (runtime/cuda/CudaBackend.cpp).
#ifndef MEG_KERNELS_CUDA_KERNELS_H
#define MEG_KERNELS_CUDA_KERNELS_H

#include "kernels/Math.h"
#include "kernels/Philox.h"
#include "kernels/cpu/Adam.h"
#include "kernels/cpu/Attention.h"
#include "kernels/cpu/Contract.h"
#include "kernels/cpu/Dropout.h"
#include "kernels/cpu/Elementwise.h"
#include "kernels/cpu/Gelu.h"

#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>

namespace meg::kernels::cuda {

// The shared types and math (kernels/Math.h): rank limit, op and element enums, GeLU, AdamW, clipping, strides.
using kernels::Elem;
using kernels::kMaxRank;
using kernels::UnaryOp;

//===-- Elementwise.cu ---------------------------------------------------------------------------------------===//

/// out (the broadcast shape of a and b; host shapes) = a op b. out may alias an operand of out's size.
template <typename T>
cudaError_t binary(cpu::BinaryOp op, const T *a, const int64_t *shapeA, int rankA, const T *b, const int64_t *shapeB,
                   int rankB, T *out, cudaStream_t stream);
/// y = f(x) elementwise; `factor` is Scale's (ignored otherwise). x == y is allowed.
template <typename T>
cudaError_t unary(UnaryOp op, const T *x, int64_t n, float factor, T *y, cudaStream_t stream);
/// out (shapeOut) = x (shapeX) broadcast numpy-style; host shapes.
template <typename T>
cudaError_t broadcastTo(const T *x, const int64_t *shapeX, int rankX, const int64_t *shapeOut, int rankOut, T *out,
                        cudaStream_t stream);
cudaError_t fill(float *x, int64_t n, float value, cudaStream_t stream);
/// y = convert(x) between f32, bf16, f16 and i32 with kernels/Half.h's conversions (16-bit results rounded to nearest
/// even, i32 truncated toward zero), bit for bit the CPU's cast. x == y is allowed when the element sizes agree.
cudaError_t cast(const void *x, Elem from, void *y, Elem to, int64_t n, cudaStream_t stream);

//===-- Gelu.cu ----------------------------------------------------------------------------------------------===//
template <typename T>
cudaError_t geluForward(cpu::GeluForm form, const T *x, int64_t n, T *y, cudaStream_t stream);
template <typename T>
cudaError_t geluBackward(cpu::GeluForm form, const T *x, const T *dy, int64_t n, T *dx, cudaStream_t stream);

//===-- LayerNorm.cu -----------------------------------------------------------------------------------------===//
/// y = layernorm(x) over the last dim of [rows, n]; g, b may be null (gain 1, bias 0).
cudaError_t layerNormForward(const float *x, const float *g, const float *b, int64_t rows, int64_t n, float eps,
                             float *y, cudaStream_t stream);
/// Row chunks of layerNormBackward's dg/db partials.
constexpr int64_t kLayerNormRowChunks = 64;
/// Floats of scratch layerNormBackward needs: row statistics, then per-chunk double partials of dg and db.
inline int64_t layerNormBackwardScratch(int64_t rows, int64_t n) { return 2 * rows + 2 * 2 * kLayerNormRowChunks * n; }
/// dx, dg, db are overwritten (as the CPU kernel's); the row statistics are recomputed.
cudaError_t layerNormBackward(const float *x, const float *g, const float *dy, int64_t rows, int64_t n, float eps,
                              float *dx, float *dg, float *db, float *scratch, cudaStream_t stream);

//===-- Softmax.cu -------------------------------------------------------------------------------------------===//
template <typename T> cudaError_t softmaxForward(const T *x, int64_t rows, int64_t n, T *y, cudaStream_t stream);
cudaError_t softmaxBackward(const float *y, const float *dy, int64_t rows, int64_t n, float *dx, cudaStream_t stream);

//===-- Reduce.cu --------------------------------------------------------------------------------------------===//
/// out = sum (isMax: max) of x over the dims with reduceDim[d] (host arrays). Empty sum 0, empty max -inf.
template <typename T>
cudaError_t reduce(bool isMax, const T *x, const int64_t *shape, int rank, const bool *reduceDim, T *out,
                   cudaStream_t stream);
/// Doubles of scratch sumSquares needs.
constexpr int64_t kSumSquaresScratch = 256;
/// *out = sum_i x_i^2 (accumulated in double, fixed blocks).
cudaError_t sumSquares(const float *x, int64_t n, float *out, double *scratch, cudaStream_t stream);
cudaError_t pick(const float *x, const int32_t *ids, int64_t rows, int64_t cols, int64_t colOffset, float *out,
                 cudaStream_t stream);
cudaError_t pickBackward(const float *dy, const int32_t *ids, int64_t rows, int64_t cols, int64_t colOffset,
                         float *dx, cudaStream_t stream);
cudaError_t validMask(const int32_t *ids, int64_t n, int32_t ignoreId, float *out, cudaStream_t stream);

//===-- Embedding.cu -----------------------------------------------------------------------------------------===//
template <typename T>
cudaError_t embeddingForward(const T *table, int64_t rows, int64_t dim, const int32_t *ids, int64_t tokens,
                             int64_t rowOffset, T *out, cudaStream_t stream);
/// dTable [rows, dim] is overwritten with the sum over tokens (token order, no atomics; as the CPU kernel).
cudaError_t embeddingBackward(const float *dy, const int32_t *ids, int64_t tokens, int64_t rowOffset, int64_t rows,
                              int64_t dim, float *dTable, cudaStream_t stream);

//===-- Dropout.cu -------------------------------------------------------------------------------------------===//
/// y = dropout(x) with the CPU's Philox keying (kernels/cpu/Dropout.h); view's arrays are host arrays. Also the
/// backward (apply to dy). x == y is allowed. With a stepCounter, key.step is *stepCounter.
template <typename T>
cudaError_t dropout(const T *x, const cpu::GlobalView &view, float p, const PhiloxKey &key, T *y, cudaStream_t stream,
                    const uint32_t *stepCounter = nullptr);

//===-- Attention.cu -----------------------------------------------------------------------------------------===//
/// Largest head_dim the attention kernels accept.
constexpr int64_t kAttentionMaxHeadDim = 256;
/// params.keyMask is a device pointer (or null). With a stepCounter, params.dropoutKey.step is *stepCounter.
template <typename T>
cudaError_t attentionForward(const cpu::AttentionParams &params, const T *q, const T *k, const T *v, T *out,
                             cudaStream_t stream, const uint32_t *stepCounter = nullptr);
inline int64_t attentionBackwardScratch(const cpu::AttentionParams &p) { return 2 * p.batch * p.heads * p.seq; }
/// scratch: attentionBackwardScratch floats.
template <typename T>
cudaError_t attentionBackward(const cpu::AttentionParams &params, const T *q, const T *k, const T *v, const T *dout,
                              T *dq, T *dk, T *dv, float *scratch, cudaStream_t stream,
                              const uint32_t *stepCounter = nullptr);

/// decode_attention (math as kernels/cpu/Attention.h), fp32; kCache and vCache updated in place. position is a device
/// pointer; head_dim at most kAttentionMaxHeadDim.
cudaError_t decodeAttention(const cpu::DecodeAttentionParams &params, const float *q, const float *k, const float *v,
                            float *kCache, float *vCache, const int32_t *position, float *out, cudaStream_t stream);

//===-- Layout.cu (moves of elemBytes-byte elements: 4 for f32 or i32, 2 for bf16 or f16) ----------------------===//
/// y = x transposed by perm (numpy.transpose; host arrays, shape is x's).
cudaError_t transpose(const void *x, const int64_t *shape, int rank, const int *perm, void *y, cudaStream_t stream,
                      int elemBytes = 4);
/// The slice [start, start + length) of `dim` of x (host shape).
cudaError_t slice(const void *x, const int64_t *shape, int rank, int dim, int64_t start, int64_t length, void *y,
                  cudaStream_t stream, int elemBytes = 4);
/// dx (host shape: the full shape) = zeros with dy at [start, start + length) of `dim`.
template <typename T>
cudaError_t sliceBackward(const T *dy, const int64_t *shape, int rank, int dim, int64_t start, int64_t length, T *dx,
                          cudaStream_t stream);
cudaError_t select(const void *x, const int64_t *shape, int rank, int dim, int64_t index, void *y, cudaStream_t stream,
                   int elemBytes = 4);
template <typename T>
cudaError_t selectBackward(const T *dy, const int64_t *shape, int rank, int dim, int64_t index, T *dx,
                           cudaStream_t stream);
/// Elements of `dim` at global index >= valid become `value` (mask_padding); dimOffset is the shard's global offset
/// of `dim`. x == y is allowed.
template <typename T>
cudaError_t maskPadding(const T *x, const int64_t *shape, int rank, int dim, int64_t dimOffset, int64_t valid,
                        float value, T *y, cudaStream_t stream);

//===-- Adam.cu ----------------------------------------------------------------------------------------------===//
/// One AdamW step in place (kernels/cpu/Adam.h) with the gradient scaled by *gradScale first; config.lr is ignored:
/// the rate is *lr (device scalars, written by earlier steps). `step` is 1-based.
cudaError_t adamwStep(float *param, const float *grad, float *m, float *v, int64_t n, const cpu::AdamConfig &config,
                      const float *lr, const float *gradScale, int64_t step, cudaStream_t stream);
/// The same with the bias corrections read from device memory: biasCorrections[0] = 1 - beta1^step,
/// biasCorrections[1] = 1 - beta2^step (adamwBiasCorrections, computed on the host), so a captured graph replays
/// any step.
cudaError_t adamwStep(float *param, const float *grad, float *m, float *v, int64_t n, const cpu::AdamConfig &config,
                      const float *lr, const float *gradScale, const double *biasCorrections, cudaStream_t stream);
/// {1 - beta1^step, 1 - beta2^step} of 1-based `step`, as adamwStep computes them.
void adamwBiasCorrections(const cpu::AdamConfig &config, int64_t step, double out[2]);
/// acc <- (first ? 0 : acc) + scale * x; out (null, or acc itself, or a copy) <- acc (kernels/cpu/Adam.h accumulate).
cudaError_t accumulate(float *acc, const float *x, int64_t n, float scale, bool first, float *out,
                       cudaStream_t stream);
/// coeff = min(1, maxNorm / (sqrt(*sumSq) + 1e-6)), norm = sqrt(*sumSq) (clip_scale).
cudaError_t clipScale(const float *sumSq, float maxNorm, float *coeff, float *norm, cudaStream_t stream);

//===-- LossScale.cu -----------------------------------------------------------------------------------------===//
/// *flag = 1 if any of x[0..n) is inf or NaN, else 0 (nonfinite).
cudaError_t nonfinite(const float *x, int64_t n, float *flag, cudaStream_t stream);
/// kernels/Math.h's lossScaleUpdate on device scalars (loss_scale_update).
cudaError_t lossScaleUpdate(const float *foundInf, float *scale, float *growth, float *hysteresis, float *updates,
                            const LossScalerConfig &config, cudaStream_t stream);

//===-- Contract.cu ------------------------------------------------------------------------------------------===//
/// A prepared contraction: the CPU's ContractPlan (einsum spec -> permutes + batched GEMM) run through cuBLASLt with
/// A and B of one storage type (f32, bf16 or f16), the result C in that type or in f32 (a 16-bit GEMM accumulating
/// into fp32), fp32 compute (CUBLAS_COMPUTE_32F, no TF32) and fp32 alpha/beta. Not copyable.
class ContractGemm {
public:
  ContractGemm() = default;
  ContractGemm(const ContractGemm &) = delete;
  ContractGemm &operator=(const ContractGemm &) = delete;
  ~ContractGemm();

  /// Sets up descriptors and picks an algorithm for `plan` (which must be ok()) whose operand and result pointers
  /// are `alignment`-byte aligned (a power of two; cuBLASLt's fast kernels want 16 or more; permuted copies in scratch
  /// are always 256-byte aligned). `operands` is A's and B's element type, `result` C's (F32 or `operands`).
  /// Returns "" or an error message.
  std::string init(cublasLtHandle_t handle, const cpu::ContractPlan &plan, Elem operands, Elem result,
                   size_t workspaceBytes, uint32_t alignment = 256);
  /// Bytes of scratch run() needs (the plan's permuted copies).
  int64_t scratchBytes() const { return scratch; }
  /// out = A (x) B. scratch holds scratchBytes(), workspace the bytes given to init. Returns "" or an error message.
  std::string run(cublasLtHandle_t handle, const void *a, const void *b, void *out, void *scratch, void *workspace,
                  cudaStream_t stream) const;

private:
  cpu::ContractPlan plan;
  Elem elemAB = Elem::F32, elemC = Elem::F32;
  int64_t scratch = 0;
  size_t workspaceBytes = 0;
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t layoutA = nullptr, layoutB = nullptr, layoutC = nullptr;
  cublasLtMatmulAlgo_t algo{};
  bool haveAlgo = false;
};

//===-- Collectives.cu ---------------------------------------------------------------------------------------===//
/// Most members of one device-side collective.
constexpr int kMaxMembers = 64;
/// For i in [0, count): r = reduction of in[0][inOffset + i], ..., in[members - 1][inOffset + i] in member order;
/// then outs[o][outOffset + i] = r for every o < numOuts. Host arrays of device pointers.
cudaError_t reduceMembers(bool isMax, const float *const *in, int members, int64_t inOffset, float *const *outs,
                          int numOuts, int64_t outOffset, int64_t count, cudaStream_t stream);

} // namespace meg::kernels::cuda

#endif // MEG_KERNELS_CUDA_KERNELS_H
