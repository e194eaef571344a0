// `contract` on the GPU: the CPU's ContractPlan (kernels/cpu/Contract.h: einsum spec -> batch/M/N/K letter classes,
// operands used in place with a transpose flag or permuted into scratch, output produced directly, transposed, or
// permuted out of scratch) run as ONE strided-batched cuBLASLt matmul: out[b, m, n] = sum_k A[b, m, k] B[b, k, n],
// A and B in f32, bf16 or f16 (one type), fp32 accumulation (CUBLAS_COMPUTE_32F: no TF32), C in the operands' type
// (rounded to nearest even by cuBLASLt's epilogue) or in f32. Permuted copies move 2- or 4-byte elements.
// Row-major to cuBLASLt's column-major: a row-major [r, c] matrix is a column-major [c, r] one, so the row-major
// product C = A B is computed as the column-major C^T = B^T A^T (first operand B), and an output stored [n, m]
// (plan.swapOutput) is the column-major C = A B (first operand A, both transposed).
#include "kernels/cuda/Common.cuh"

#include "kernels/Half.h"

#include <string>

namespace meg::kernels::cuda {

namespace {

std::string blasError(const char *what, cublasStatus_t status) {
  return std::string(what) + " failed: " + cublasLtGetStatusString(status);
}

#define MEG_BLAS_TRY(what, expr)                                                                                       \
  do {                                                                                                                 \
    cublasStatus_t megStatus_ = (expr);                                                                                \
    if (megStatus_ != CUBLAS_STATUS_SUCCESS)                                                                           \
      return blasError(what, megStatus_);                                                                              \
  } while (0)

std::string makeLayout(cublasLtMatrixLayout_t &layout, cudaDataType_t type, int64_t rows, int64_t cols, int64_t ld,
                       int64_t batch, int64_t batchStride) {
  MEG_BLAS_TRY("cublasLtMatrixLayoutCreate", cublasLtMatrixLayoutCreate(&layout, type, uint64_t(rows), uint64_t(cols), ld));
  int32_t count = int32_t(batch);
  MEG_BLAS_TRY("cublasLtMatrixLayoutSetAttribute",
               cublasLtMatrixLayoutSetAttribute(layout, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof(count)));
  MEG_BLAS_TRY("cublasLtMatrixLayoutSetAttribute",
               cublasLtMatrixLayoutSetAttribute(layout, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &batchStride,
                                                sizeof(batchStride)));
  return "";
}

} // namespace

ContractGemm::~ContractGemm() {
  if (layoutA)
    cublasLtMatrixLayoutDestroy(layoutA);
  if (layoutB)
    cublasLtMatrixLayoutDestroy(layoutB);
  if (layoutC)
    cublasLtMatrixLayoutDestroy(layoutC);
  if (desc)
    cublasLtMatmulDescDestroy(desc);
}

namespace {

/// Scratch offsets of the permuted copies: multiples of 256 bytes.
int64_t alignUp(int64_t bytes) { return (bytes + 255) / 256 * 256; }

bool dataType(Elem t, cudaDataType_t &out) {
  switch (t) {
  case Elem::F32:
    out = CUDA_R_32F;
    return true;
  case Elem::BF16:
    out = CUDA_R_16BF;
    return true;
  case Elem::F16:
    out = CUDA_R_16F;
    return true;
  default:
    return false;
  }
}

} // namespace

std::string ContractGemm::init(cublasLtHandle_t handle, const cpu::ContractPlan &p, Elem operands, Elem resultType,
                               size_t workspace, uint32_t alignment) {
  if (desc)
    return "contract gemm initialized twice";
  if (!p.ok())
    return "contract gemm of an invalid plan: " + p.parseError;
  cudaDataType_t ab, c;
  if (!dataType(operands, ab) || !dataType(resultType, c) || (resultType != Elem::F32 && resultType != operands))
    return "contract gemm: operands must be f32, bf16 or f16 and the result f32 or the operands' type";
  if (p.batch > INT32_MAX)
    return "contract batch too large for cuBLASLt";
  plan = p;
  elemAB = operands;
  elemC = resultType;
  if (alignment == 0 || (alignment & (alignment - 1)) != 0)
    return "contract gemm alignment must be a power of two";
  // The permuted copies (at most three, of at most 4-byte elements) each start at a 256-byte boundary of scratch.
  scratch = p.scratchFloats > 0 ? alignUp(p.scratchFloats * int64_t(sizeof(float))) + 3 * 256 : 0;
  workspaceBytes = workspace;
  if (p.batch * p.m * p.n == 0 || p.k == 0)
    return ""; // run() writes zeros (or nothing) without cuBLASLt
  // Stored (column-major) shapes: A is [k rows, m cols] (ld k), or [m, k] (ld m) when transA; B is [n, k] (ld n),
  // or [k, n] (ld k) when transB; C is [n, m] (ld n), or [m, n] (ld m) when swapOutput.
  std::string err;
  if (!(err = makeLayout(layoutA, ab, p.transA ? p.m : p.k, p.transA ? p.k : p.m, p.transA ? p.m : p.k, p.batch,
                         p.m * p.k))
           .empty() ||
      !(err = makeLayout(layoutB, ab, p.transB ? p.k : p.n, p.transB ? p.n : p.k, p.transB ? p.k : p.n, p.batch,
                         p.k * p.n))
           .empty() ||
      !(err = makeLayout(layoutC, c, p.swapOutput ? p.m : p.n, p.swapOutput ? p.n : p.m,
                         p.swapOutput ? p.m : p.n, p.batch, p.m * p.n))
           .empty())
    return err;
  MEG_BLAS_TRY("cublasLtMatmulDescCreate", cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  // First operand (cuBLASLt's A) and its op: B (op N, or T when transB) / swapped: A (op T, or N when transA).
  cublasOperation_t opFirst = p.swapOutput ? (p.transA ? CUBLAS_OP_N : CUBLAS_OP_T) : (p.transB ? CUBLAS_OP_T : CUBLAS_OP_N);
  cublasOperation_t opSecond = p.swapOutput ? (p.transB ? CUBLAS_OP_N : CUBLAS_OP_T) : (p.transA ? CUBLAS_OP_T : CUBLAS_OP_N);
  MEG_BLAS_TRY("cublasLtMatmulDescSetAttribute",
               cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &opFirst, sizeof(opFirst)));
  MEG_BLAS_TRY("cublasLtMatmulDescSetAttribute",
               cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &opSecond, sizeof(opSecond)));
  cublasLtMatrixLayout_t first = p.swapOutput ? layoutA : layoutB, second = p.swapOutput ? layoutB : layoutA;
  cublasLtMatmulPreference_t pref = nullptr;
  MEG_BLAS_TRY("cublasLtMatmulPreferenceCreate", cublasLtMatmulPreferenceCreate(&pref));
  uint64_t ws = workspaceBytes;
  // Operands used in place keep the caller's alignment; copies in scratch are 256-byte aligned.
  uint32_t alignA = p.permA.empty() ? alignment : 256, alignB = p.permB.empty() ? alignment : 256,
           alignC = p.permOut.empty() ? alignment : 256;
  cublasStatus_t status = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws,
                                                               sizeof(ws));
  const std::pair<cublasLtMatmulPreferenceAttributes_t, uint32_t> aligns[] = {
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, p.swapOutput ? alignA : alignB},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, p.swapOutput ? alignB : alignA},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, alignC},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, alignC}};
  for (const auto &[attr, value] : aligns)
    if (status == CUBLAS_STATUS_SUCCESS)
      status = cublasLtMatmulPreferenceSetAttribute(pref, attr, &value, sizeof(value));
  cublasLtMatmulHeuristicResult_t result{};
  int returned = 0;
  if (status == CUBLAS_STATUS_SUCCESS)
    status = cublasLtMatmulAlgoGetHeuristic(handle, desc, first, second, layoutC, layoutC, pref, 1, &result,
                                            &returned);
  cublasLtMatmulPreferenceDestroy(pref);
  if (status != CUBLAS_STATUS_SUCCESS)
    return blasError("cublasLtMatmulAlgoGetHeuristic", status);
  if (returned == 0)
    return "cuBLASLt has no algorithm for this contraction";
  algo = result.algo;
  haveAlgo = true;
  return "";
}

std::string ContractGemm::run(cublasLtHandle_t handle, const void *a, const void *b, void *out, void *scratchPtr,
                              void *workspace, cudaStream_t stream) const {
  const cpu::ContractPlan &p = plan;
  int64_t numelOut = p.batch * p.m * p.n;
  if (numelOut == 0)
    return "";
  int bytesAB = elemBytes(elemAB), bytesC = elemBytes(elemC);
  if (p.k == 0 || !haveAlgo) {
    // An empty sum: zeros (all-zero bits in every storage type).
    cudaError_t err = cudaMemsetAsync(out, 0, size_t(numelOut) * size_t(bytesC), stream);
    return err == cudaSuccess ? "" : std::string("contract zeros: ") + cudaGetErrorString(err);
  }
  if (p.scratchFloats > 0 && !scratchPtr)
    return "contract needs scratch";
  auto cudaTry = [](cudaError_t err, const char *what) {
    return err == cudaSuccess ? std::string() : std::string(what) + ": " + cudaGetErrorString(err);
  };
  const void *pa = a, *pb = b;
  // 256-byte aligned sub-buffers (cudaMalloc'd scratch is 256-byte aligned).
  auto next = [](char *p, int64_t elems, int bytes) { return p + alignUp(elems * bytes); };
  char *sp = static_cast<char *>(scratchPtr);
  std::string err;
  if (!p.permA.empty()) {
    if (!(err = cudaTry(transpose(a, p.shapeA.data(), int(p.shapeA.size()), p.permA.data(), sp, stream, bytesAB),
                        "contract permute A"))
             .empty())
      return err;
    pa = sp;
    sp = next(sp, p.batch * p.m * p.k, bytesAB);
  }
  if (!p.permB.empty()) {
    if (!(err = cudaTry(transpose(b, p.shapeB.data(), int(p.shapeB.size()), p.permB.data(), sp, stream, bytesAB),
                        "contract permute B"))
             .empty())
      return err;
    pb = sp;
    sp = next(sp, p.batch * p.k * p.n, bytesAB);
  }
  void *pc = p.permOut.empty() ? out : static_cast<void *>(sp);
  const float alpha = 1.0f, beta = 0.0f;
  const void *first = p.swapOutput ? pa : pb, *second = p.swapOutput ? pb : pa;
  cublasLtMatrixLayout_t firstLayout = p.swapOutput ? layoutA : layoutB, secondLayout = p.swapOutput ? layoutB : layoutA;
  MEG_BLAS_TRY("cublasLtMatmul", cublasLtMatmul(handle, desc, &alpha, first, firstLayout, second, secondLayout, &beta,
                                                pc, layoutC, pc, layoutC, &algo, workspace, workspaceBytes, stream));
  if (!p.permOut.empty())
    return cudaTry(
        transpose(pc, p.shapeGemmOut.data(), int(p.shapeGemmOut.size()), p.permOut.data(), out, stream, bytesC),
        "contract permute out");
  return "";
}

} // namespace meg::kernels::cuda
