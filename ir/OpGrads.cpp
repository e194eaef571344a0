//===- OpGrads.cpp - gradient rules, one per op -------------------------------===//
//
// Reverse-mode rules. Most gradients are compositions of forward ops (contract for contract, dropout with the same
// stream for dropout: the mask depends only on (seed, step, stream, global index), so it is recomputed exactly);
// layernorm, gelu, attention, embedding, pick, slice and select have dedicated *_grad ops.
// reduce_max has a gradient only as a stop-gradient (attribute `stop_gradient = true`), which is exact where it is
// used: the max subtracted for a stable log-sum-exp cancels out of the derivative.
//
//===----------------------------------------------------------------------===//
#include "ir/Gradient.h"
#include "ir/OpRules.h"

#include "llvm/ADT/STLExtras.h"

using namespace meg::ir;
using llvm::ArrayRef;
using Grads = llvm::SmallVector<Value *, 4>;

//===-- GradBuilder ----------------------------------------------------------===//

void GradBuilder::fail(const llvm::Twine &msg) {
  if (failed)
    return;
  failed = true;
  llvm::consumeError(std::move(err));
  err = llvm::createStringError(llvm::inconvertibleErrorCode(), msg);
}

llvm::SmallVector<Value *, 3> GradBuilder::multi(OpKind k, ArrayRef<Value *> operands, AttrDict attrs) {
  if (failed || llvm::is_contained(operands, nullptr))
    return llvm::SmallVector<Value *, 3>(numResultsOf(k, operands.size()), nullptr);
  auto n = g.build(k, operands, std::move(attrs));
  if (!n) {
    fail("gradient: " + llvm::toString(n.takeError()));
    return llvm::SmallVector<Value *, 3>(numResultsOf(k, operands.size()), nullptr);
  }
  if (stage)
    (*n)->getAttrs().set("stage", *stage);
  auto results = (*n)->getResults();
  return llvm::SmallVector<Value *, 3>(results.begin(), results.end());
}

Value *GradBuilder::op(OpKind k, ArrayRef<Value *> operands, AttrDict attrs) {
  return multi(k, operands, std::move(attrs))[0];
}

Value *GradBuilder::reshape(Value *x, ArrayRef<int64_t> shape) {
  if (!x || llvm::ArrayRef<int64_t>(x->getType().shape) == shape)
    return x;
  AttrDict a;
  a.set("shape", std::vector<int64_t>(shape.begin(), shape.end()));
  return op(OpKind::Reshape, {x}, std::move(a));
}

Value *GradBuilder::scale(Value *x, double factor) {
  AttrDict a;
  a.set("factor", factor);
  return op(OpKind::Scale, {x}, std::move(a));
}

Value *GradBuilder::sumToShape(Value *dy, ArrayRef<int64_t> shape) {
  if (!dy)
    return nullptr;
  const auto &full = dy->getType().shape;
  if (ArrayRef<int64_t>(full) == shape)
    return dy;
  unsigned lead = full.size() - shape.size();
  std::vector<int64_t> dims;
  for (unsigned i = 0; i < full.size(); ++i)
    if (i < lead || (shape[i - lead] == 1 && full[i] != 1))
      dims.push_back(i);
  Value *s = dy;
  if (!dims.empty()) {
    AttrDict a;
    a.set("dims", dims);
    a.set("keepdim", true);
    s = op(OpKind::ReduceSum, {dy}, std::move(a));
  }
  return reshape(s, shape);
}

//===-- rules ----------------------------------------------------------------===//

namespace {

const llvm::SmallVector<int64_t, 4> &shapeOf(const Value *v) { return v->getType().shape; }

Grads none(GradBuilder &, const Node &n, ArrayRef<Value *>) { return Grads(n.getNumOperands(), nullptr); }

Grads gradParam(GradBuilder &b, const Node &n, ArrayRef<Value *> d) { return none(b, n, d); }
Grads gradInput(GradBuilder &b, const Node &n, ArrayRef<Value *> d) { return none(b, n, d); }
Grads gradOutput(GradBuilder &b, const Node &n, ArrayRef<Value *> d) { return none(b, n, d); }
Grads gradFill(GradBuilder &b, const Node &n, ArrayRef<Value *> d) { return none(b, n, d); }
Grads gradValidMask(GradBuilder &b, const Node &n, ArrayRef<Value *> d) { return none(b, n, d); }
Grads gradState(GradBuilder &b, const Node &n, ArrayRef<Value *> d) { return none(b, n, d); }
Grads gradLrSchedule(GradBuilder &b, const Node &n, ArrayRef<Value *> d) { return none(b, n, d); }

Grads gradEmbedding(GradBuilder &b, const Node &n, ArrayRef<Value *> d) {
  return {b.op(OpKind::EmbeddingGrad, {n.getOperand(0), n.getOperand(1), d[0]}), nullptr};
}

// C = A.B over a spec "A,B->C": dA = dC.B over "C,B->A" and dB = A.dC over "A,C->B".
Grads gradContract(GradBuilder &b, const Node &n, ArrayRef<Value *> d) {
  auto parts = parseContractSpec(*n.getAttrs().getString("spec"));
  assert(parts && "spec checked by the verifier");
  const auto &[sa, sb, sc] = *parts;
  AttrDict da, db;
  da.set("spec", sc + "," + sb + "->" + sa);
  db.set("spec", sa + "," + sc + "->" + sb);
  return {b.op(OpKind::Contract, {d[0], n.getOperand(1)}, std::move(da)),
          b.op(OpKind::Contract, {n.getOperand(0), d[0]}, std::move(db))};
}

Grads gradAdd(GradBuilder &b, const Node &n, ArrayRef<Value *> d) {
  return {b.sumToShape(d[0], shapeOf(n.getOperand(0))), b.sumToShape(d[0], shapeOf(n.getOperand(1)))};
}

Grads gradSub(GradBuilder &b, const Node &n, ArrayRef<Value *> d) {
  return {b.sumToShape(d[0], shapeOf(n.getOperand(0))),
          b.scale(b.sumToShape(d[0], shapeOf(n.getOperand(1))), -1.0)};
}

Grads gradMul(GradBuilder &b, const Node &n, ArrayRef<Value *> d) {
  Value *x = n.getOperand(0), *y = n.getOperand(1);
  return {b.sumToShape(b.op(OpKind::Mul, {d[0], y}), shapeOf(x)),
          b.sumToShape(b.op(OpKind::Mul, {d[0], x}), shapeOf(y))};
}

// z = x / y: dx = dz / y, dy = -dz * z / y.
Grads gradDiv(GradBuilder &b, const Node &n, ArrayRef<Value *> d) {
  Value *x = n.getOperand(0), *y = n.getOperand(1), *z = n.getResult();
  Value *dx = b.op(OpKind::Div, {d[0], y});
  Value *dy = b.scale(b.op(OpKind::Mul, {dx, z}), -1.0);
  return {b.sumToShape(dx, shapeOf(x)), b.sumToShape(dy, shapeOf(y))};
}

Grads gradScale(GradBuilder &b, const Node &n, ArrayRef<Value *> d) {
  return {b.scale(d[0], *n.getAttrs().getFloat("factor"))};
}
Grads gradExp(GradBuilder &b, const Node &n, ArrayRef<Value *> d) {
  return {b.op(OpKind::Mul, {d[0], n.getResult()})};
}
Grads gradLog(GradBuilder &b, const Node &n, ArrayRef<Value *> d) {
  return {b.op(OpKind::Div, {d[0], n.getOperand(0)})};
}
// dx = dy - dy * y^2.
Grads gradTanh(GradBuilder &b, const Node &n, ArrayRef<Value *> d) {
  Value *y = n.getResult();
  return {b.op(OpKind::Sub, {d[0], b.op(OpKind::Mul, {d[0], b.op(OpKind::Mul, {y, y})})})};
}
Grads gradGelu(GradBuilder &b, const Node &n, ArrayRef<Value *> d) {
  return {b.op(OpKind::GeluGrad, {n.getOperand(0), d[0]}, n.getAttrs())};
}
// Same p and stream: the same mask and scale.
Grads gradDropout(GradBuilder &b, const Node &n, ArrayRef<Value *> d) {
  return {b.op(OpKind::Dropout, {d[0]}, n.getAttrs())};
}
Grads gradCast(GradBuilder &b, const Node &n, ArrayRef<Value *> d) {
  AttrDict a;
  a.set("dtype", Symbol{dtypeName(n.getOperand(0)->getType().dtype).str()});
  return {b.op(OpKind::Cast, {d[0]}, std::move(a))};
}

// The masked elements are constants: the same mask with value 0 on dy (exact zeros, also where dy is not finite).
Grads gradMaskPadding(GradBuilder &b, const Node &n, ArrayRef<Value *> d) {
  AttrDict a = n.getAttrs();
  a.set("value", 0.0);
  return {b.op(OpKind::MaskPadding, {d[0]}, std::move(a))};
}

Grads gradLayerNorm(GradBuilder &b, const Node &n, ArrayRef<Value *> d) {
  auto r = b.multi(OpKind::LayerNormGrad, {n.getOperand(0), n.getOperand(1), d[0]}, n.getAttrs());
  return {r[0], r[1], r[2]};
}

// dx = y * (dy - sum(dy * y)) over the last dim.
Grads gradSoftmax(GradBuilder &b, const Node &n, ArrayRef<Value *> d) {
  Value *y = n.getResult();
  AttrDict a;
  a.set("dims", std::vector<int64_t>{int64_t(y->getType().rank()) - 1});
  a.set("keepdim", true);
  Value *s = b.op(OpKind::ReduceSum, {b.op(OpKind::Mul, {d[0], y})}, std::move(a));
  return {b.op(OpKind::Mul, {y, b.op(OpKind::Sub, {d[0], s})})};
}

Grads gradAttention(GradBuilder &b, const Node &n, ArrayRef<Value *> d) {
  llvm::SmallVector<Value *, 5> ops{n.getOperand(0), n.getOperand(1), n.getOperand(2), d[0]};
  if (n.getNumOperands() == 4)
    ops.push_back(n.getOperand(3));
  auto r = b.multi(OpKind::AttentionGrad, ops, n.getAttrs());
  Grads g{r[0], r[1], r[2]};
  if (n.getNumOperands() == 4)
    g.push_back(nullptr);
  return g;
}

Grads gradReshape(GradBuilder &b, const Node &n, ArrayRef<Value *> d) {
  return {b.reshape(d[0], shapeOf(n.getOperand(0)))};
}

Grads gradTranspose(GradBuilder &b, const Node &n, ArrayRef<Value *> d) {
  const auto &perm = *n.getAttrs().getInts("perm");
  std::vector<int64_t> inv(perm.size());
  for (size_t i = 0; i < perm.size(); ++i)
    inv[perm[i]] = i;
  AttrDict a;
  a.set("perm", inv);
  return {b.op(OpKind::Transpose, {d[0]}, std::move(a))};
}

Grads gradSlice(GradBuilder &b, const Node &n, ArrayRef<Value *> d) {
  int64_t dim = *n.getAttrs().getInt("dim");
  AttrDict a;
  a.set("dim", dim);
  a.set("start", *n.getAttrs().getInt("start"));
  a.set("full", shapeOf(n.getOperand(0))[dim]);
  return {b.op(OpKind::SliceGrad, {d[0]}, std::move(a))};
}

Grads gradSelect(GradBuilder &b, const Node &n, ArrayRef<Value *> d) {
  int64_t dim = *n.getAttrs().getInt("dim");
  AttrDict a;
  a.set("dim", dim);
  a.set("index", *n.getAttrs().getInt("index"));
  a.set("size", shapeOf(n.getOperand(0))[dim]);
  return {b.op(OpKind::SelectGrad, {d[0]}, std::move(a))};
}

// dx = dy broadcast back over the reduced dims.
Grads gradReduceSum(GradBuilder &b, const Node &n, ArrayRef<Value *> d) {
  const auto &x = shapeOf(n.getOperand(0));
  const auto &dims = *n.getAttrs().getInts("dims");
  llvm::SmallVector<int64_t, 4> kept(x.begin(), x.end());
  for (int64_t dim : dims)
    kept[dim] = 1;
  AttrDict a;
  a.set("shape", std::vector<int64_t>(x.begin(), x.end()));
  return {b.op(OpKind::Broadcast, {b.reshape(d[0], kept)}, std::move(a))};
}

Grads gradReduceMax(GradBuilder &b, const Node &n, ArrayRef<Value *> d) {
  if (!n.getAttrs().getBool("stop_gradient").value_or(false))
    b.fail("'reduce_max' is differentiable only as a stop-gradient (set stop_gradient = true)");
  return {nullptr};
}

Grads gradPick(GradBuilder &b, const Node &n, ArrayRef<Value *> d) {
  return {b.op(OpKind::PickGrad, {n.getOperand(0), n.getOperand(1), d[0]}), nullptr};
}

Grads gradBroadcast(GradBuilder &b, const Node &n, ArrayRef<Value *> d) {
  return {b.sumToShape(d[0], shapeOf(n.getOperand(0)))};
}

// Gradient ops, collectives and the optimizer are not differentiated: autodiff runs once, before them.
Grads secondOrder(GradBuilder &b, const Node &n, ArrayRef<Value *>) {
  b.fail("'" + n.getName() + "' has no gradient rule: differentiate once, before partitioning");
  return Grads(n.getNumOperands(), nullptr);
}
Grads gradGeluGrad(GradBuilder &b, const Node &n, ArrayRef<Value *> d) { return secondOrder(b, n, d); }
Grads gradLayerNormGrad(GradBuilder &b, const Node &n, ArrayRef<Value *> d) { return secondOrder(b, n, d); }
Grads gradAttentionGrad(GradBuilder &b, const Node &n, ArrayRef<Value *> d) { return secondOrder(b, n, d); }
Grads gradEmbeddingGrad(GradBuilder &b, const Node &n, ArrayRef<Value *> d) { return secondOrder(b, n, d); }
Grads gradPickGrad(GradBuilder &b, const Node &n, ArrayRef<Value *> d) { return secondOrder(b, n, d); }
Grads gradSliceGrad(GradBuilder &b, const Node &n, ArrayRef<Value *> d) { return secondOrder(b, n, d); }
Grads gradSelectGrad(GradBuilder &b, const Node &n, ArrayRef<Value *> d) { return secondOrder(b, n, d); }
Grads gradAllReduce(GradBuilder &b, const Node &n, ArrayRef<Value *> d) { return secondOrder(b, n, d); }
Grads gradAllGather(GradBuilder &b, const Node &n, ArrayRef<Value *> d) { return secondOrder(b, n, d); }
Grads gradReduceScatter(GradBuilder &b, const Node &n, ArrayRef<Value *> d) { return secondOrder(b, n, d); }
Grads gradAllReduceBucket(GradBuilder &b, const Node &n, ArrayRef<Value *> d) { return secondOrder(b, n, d); }
Grads gradReduceScatterBucket(GradBuilder &b, const Node &n, ArrayRef<Value *> d) { return secondOrder(b, n, d); }
Grads gradShard(GradBuilder &b, const Node &n, ArrayRef<Value *> d) { return secondOrder(b, n, d); }
Grads gradSumSquares(GradBuilder &b, const Node &n, ArrayRef<Value *> d) { return secondOrder(b, n, d); }
Grads gradClipScale(GradBuilder &b, const Node &n, ArrayRef<Value *> d) { return secondOrder(b, n, d); }
Grads gradAdamW(GradBuilder &b, const Node &n, ArrayRef<Value *> d) { return secondOrder(b, n, d); }
Grads gradLossScaleUpdate(GradBuilder &b, const Node &n, ArrayRef<Value *> d) { return secondOrder(b, n, d); }
// Inference only: a decode graph is never differentiated (megc --mode decode builds no loss).
Grads gradDecodeAttention(GradBuilder &b, const Node &n, ArrayRef<Value *>) {
  b.fail("'" + n.getName() + "' has no gradient rule: it decodes with a KV cache (inference only)");
  return Grads(n.getNumOperands(), nullptr);
}
// A step function: zero almost everywhere.
Grads gradNonfinite(GradBuilder &b, const Node &n, ArrayRef<Value *> d) { return none(b, n, d); }
// Combines flags; the subgradient would need a comparison op, which nothing needs yet.
Grads gradMaximum(GradBuilder &b, const Node &n, ArrayRef<Value *> d) {
  b.fail("'" + n.getName() + "': maximum has no gradient rule (it combines flags after the backward)");
  return Grads(n.getNumOperands(), nullptr);
}
Grads gradAccumulate(GradBuilder &b, const Node &n, ArrayRef<Value *> d) { return secondOrder(b, n, d); }
// Inserted by pipeline-split after autodiff.
Grads gradSend(GradBuilder &b, const Node &n, ArrayRef<Value *> d) { return secondOrder(b, n, d); }
Grads gradRecv(GradBuilder &b, const Node &n, ArrayRef<Value *> d) { return secondOrder(b, n, d); }

constexpr GradRule kGradRules[] = {
#define OP(Enum, Name, MinOperands, MaxOperands, NumResults, Traits, WritesMask, Summary) &grad##Enum,
#include "ir/Ops.def"
};
static_assert(std::size(kGradRules) == kNumOpKinds, "every op needs a gradient rule (or says it has none)");

} // namespace

GradRule meg::ir::gradRule(OpKind k) { return kGradRules[unsigned(k)]; }

