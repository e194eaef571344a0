// Two-operand einsum via GEMM: out[batch, m, n] = sum_k A[batch, m, k] * B[batch, k, n] (+ beta * out).
//
// Each letter of the spec "A,B->OUT" is one of
//   batch (in A, B and OUT), M (A and OUT only), N (B and OUT only), K (A and B, not OUT: summed).
// The plan chooses letter orders inside each class so that as few operands as possible need a permuting copy:
// an operand already laid out as [batch, M, K] or [batch, K, M] (A), [batch, K, N] or [batch, N, K] (B) is used in
// place with the matching CblasTrans flag, and an output laid out as [batch, N, M] is produced as the transposed
// product. Otherwise the operand is permuted into scratch (and the result permuted out of scratch).
// Then there is one cblas_sgemm per batch index.
#ifndef MEG_KERNELS_CPU_CONTRACT_H
#define MEG_KERNELS_CPU_CONTRACT_H

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace meg::kernels::cpu {

struct ContractPlan {
  /// Empty when the spec and shapes are valid; otherwise a lower-case message and the plan must not be used.
  std::string parseError;
  std::vector<int64_t> outShape;
  /// Floats of scratch contract() needs (0: pass nullptr).
  int64_t scratchFloats = 0;

  // GEMM geometry (filled by build).
  int64_t batch = 1, m = 1, n = 1, k = 1;
  bool transA = false, transB = false; ///< operand stored [.., K, M] (A) / [.., N, K] (B)
  bool swapOutput = false;             ///< output stored [batch, N, M]: compute OUT^T = B^T A^T
  /// Permutations applied before/after the GEMM; empty when the operand is used in place. Shapes are the permute
  /// inputs' shapes (A's, B's, and the GEMM result's [batch, M, N] letter shape).
  std::vector<int> permA, permB, permOut;
  std::vector<int64_t> shapeA, shapeB, shapeGemmOut;

  bool ok() const { return parseError.empty(); }

  static ContractPlan build(std::string_view spec, const int64_t *shapeA, int rankA, const int64_t *shapeB, int rankB);
};

/// out = A (x) B + beta * out per the plan. With beta == 0 out is only written. `scratch` holds
/// plan.scratchFloats floats (may be null when that is 0).
void contract(const ContractPlan &plan, const float *a, const float *b, float *out, float *scratch, float beta = 0);

} // namespace meg::kernels::cpu

#endif // MEG_KERNELS_CPU_CONTRACT_H
