//===- OpFlops.cpp - floating-point operation counts, one rule per op -------===//
//
// Counts are global (unsharded) and per execution; a multiply-add is 2 FLOPs. Contractions dominate: 2 * product
// of all distinct letter sizes. Attention: 4 * b * s^2 * n * d (QK^T and PV), halved when causal is NOT assumed to
// skip work (we count the full square, as the Megatron paper's formula does). Elementwise ops count one FLOP per
// element (GeLU, exp and friends are counted as one, as is customary; they are bandwidth-bound anyway).
//
//===----------------------------------------------------------------------===//
#include "ir/OpRules.h"

using namespace meg::ir;

namespace {

double elems(const Value *v) { return double(v->getType().numElements()); }
double resultElems(const Node &n) { return n.getNumResults() ? elems(n.getResult(0)) : 0.0; }
double operandElems(const Node &n) { return elems(n.getOperand(0)); }

double none(const Node &) { return 0.0; }
double perResult(const Node &n) { return resultElems(n); }
double perOperand(const Node &n) { return operandElems(n); }

double countParam(const Node &n) { return none(n); }
double countInput(const Node &n) { return none(n); }
double countOutput(const Node &n) { return none(n); }
double countEmbedding(const Node &n) { return none(n); }

double countContract(const Node &n) {
  auto spec = n.getAttrs().getString("spec");
  auto parts = spec ? parseContractSpec(*spec) : llvm::Expected<std::array<std::string, 3>>(
                                                     llvm::createStringError(llvm::inconvertibleErrorCode(), ""));
  if (!parts) {
    llvm::consumeError(parts.takeError());
    return 0.0;
  }
  int64_t size[26] = {};
  for (int side = 0; side < 2; ++side) {
    const auto &shape = n.getOperand(side)->getType().shape;
    for (size_t i = 0; i < (*parts)[side].size(); ++i)
      size[(*parts)[side][i] - 'a'] = shape[i];
  }
  double flops = 2.0;
  for (int64_t s : size)
    if (s)
      flops *= double(s);
  return flops;
}

double countAdd(const Node &n) { return perResult(n); }
double countSub(const Node &n) { return perResult(n); }
double countMul(const Node &n) { return perResult(n); }
double countDiv(const Node &n) { return perResult(n); }
double countMaximum(const Node &n) { return perResult(n); }
double countScale(const Node &n) { return perResult(n); }
double countExp(const Node &n) { return perResult(n); }
double countLog(const Node &n) { return perResult(n); }
double countTanh(const Node &n) { return perResult(n); }
double countGelu(const Node &n) { return perResult(n); }
double countDropout(const Node &n) { return perResult(n); }
double countCast(const Node &n) { return none(n); }
// A compare and select per element, no arithmetic (like pick and valid_mask).
double countMaskPadding(const Node &n) { return none(n); }
// mean, variance, normalize, scale and shift: about 5 per element.
double countLayerNorm(const Node &n) { return 5.0 * perResult(n); }
// max, exp, sum, divide: about 4 per element.
double countSoftmax(const Node &n) { return 4.0 * perResult(n); }

double countAttention(const Node &n) {
  const auto &s = n.getOperand(0)->getType().shape; // [b, s, n, d]
  double b = s[0], seq = s[1], heads = s[2], d = s[3];
  // QK^T and PV: 2 * (2 * b * n * s * s * d); softmax: ~4 per score.
  return 4.0 * b * heads * seq * seq * d + 4.0 * b * heads * seq * seq;
}

double countReshape(const Node &n) { return none(n); }
double countTranspose(const Node &n) { return none(n); }
double countSlice(const Node &n) { return none(n); }
double countSelect(const Node &n) { return none(n); }
double countReduceSum(const Node &n) { return perOperand(n); }
double countReduceMax(const Node &n) { return perOperand(n); }
double countPick(const Node &n) { return none(n); }
double countValidMask(const Node &n) { return none(n); }
double countAllReduce(const Node &n) { return none(n); }
double countAllGather(const Node &n) { return none(n); }
double countReduceScatter(const Node &n) { return none(n); }

double countFill(const Node &n) { return none(n); }
double countBroadcast(const Node &n) { return none(n); }
double countGeluGrad(const Node &n) { return 2.0 * perResult(n); }
double countLayerNormGrad(const Node &n) { return 8.0 * perResult(n); }
// Recomputes the scores (QK^T) and then forms dV, dP, dQ and dK: 5 products of b * n * s * s * d multiply-adds.
double countAttentionGrad(const Node &n) { return 2.5 * countAttention(n); }
double countEmbeddingGrad(const Node &n) { return double(n.getOperand(2)->getType().numElements()); }
double countPickGrad(const Node &n) { return none(n); }
double countSliceGrad(const Node &n) { return none(n); }
double countSelectGrad(const Node &n) { return none(n); }

double countAllReduceBucket(const Node &n) { return none(n); }
double countReduceScatterBucket(const Node &n) { return none(n); }
double countShard(const Node &n) { return none(n); }

double countState(const Node &n) { return none(n); }
double countLrSchedule(const Node &n) { return none(n); }
double countSumSquares(const Node &n) { return 2.0 * perOperand(n); }
double countClipScale(const Node &n) { return none(n); }
// Moments, bias corrections, the update and decoupled weight decay: about 12 per element.
double countAdamW(const Node &n) { return 12.0 * perOperand(n); }
// One test per element.
double countNonfinite(const Node &n) { return perOperand(n); }
double countLossScaleUpdate(const Node &n) { return none(n); }
// A multiply-add per element.
double countAccumulate(const Node &n) { return 2.0 * perOperand(n); }
double countSend(const Node &n) { return none(n); }
double countRecv(const Node &n) { return none(n); }

// Each of the t queries against the whole cache (as attention counts the full square): QK^T, PV and the softmax.
double countDecodeAttention(const Node &n) {
  const auto &q = n.getOperand(0)->getType().shape;     // [b, t, n, d]
  double cache = double(n.getOperand(3)->getType().shape[1]);
  double rows = double(q[0]) * double(q[1]) * double(q[2]);
  return 4.0 * rows * cache * double(q[3]) + 4.0 * rows * cache;
}

constexpr FlopRule kFlopRules[] = {
#define OP(Enum, Name, MinOperands, MaxOperands, NumResults, Traits, WritesMask, Summary) &count##Enum,
#include "ir/Ops.def"
};
static_assert(std::size(kFlopRules) == kNumOpKinds, "every op needs a FLOP rule");

} // namespace

FlopRule meg::ir::flopRule(OpKind k) { return kFlopRules[unsigned(k)]; }
double meg::ir::countFlops(const Node &n) { return kFlopRules[unsigned(n.getKind())](n); }
