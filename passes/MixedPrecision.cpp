//===- MixedPrecision.cpp - 16-bit compute with fp32 masters, casts by rule ===//
//
// Mixed precision as Megatron-LM trains (--bf16 / --fp16), on the forward graph, by op kind:
//
//   16-bit:  contract, embedding, gelu, attention (the GEMMs and the fused kernels; they accumulate in fp32 inside
//            the kernels, which read 16-bit operands into fp32 and round on store);
//   f32:     layernorm (input cast up: statistics, normalization and the affine part in fp32, with the fp32 gain
//            and bias used directly), softmax, the cross-entropy pieces (reduce_max, exp, log, reduce_sum, pick)
//            and every graph output (the loss, logits read by the host);
//   promote: add, sub, mul, div compute in f32 if any operand computed in f32 (torch's type promotion: the loss's
//            `logits - max` is f32), else in 16 bits. Parameters and constants (fill), and what layout ops make of
//            them (the position embedding's slice), do not vote: a bias added to a 16-bit GEMM result is cast down,
//            not the sum up;
//   follow:  everything else (scale, tanh, dropout, mask_padding, layout ops, ...) keeps its operand's dtype.
//
// Parameters stay fp32 masters: every 16-bit use of a parameter reads its own cast (one per use, so that the
// gradients of the uses, after cast's gradient rule, meet and are summed in fp32: the tied word embedding's two
// uses); any other value gets one cast per target dtype, placed before its first consumer that needs it.
//
// Placement: before autodiff, so the backward mirrors the forward's precision (the gradient of a cast is the cast
// back) and every parameter's gradient, the output grad:<name>, is the fp32 gradient of its master; the optimizer
// (global norm, AdamW and its moments) and the dp all-reduce of gradients then see only fp32. Before shard-params
// and partition, so the casts are sharded by the elementwise rule like any op and the tp all-reduces of 16-bit
// GEMM results move 16-bit data, as Megatron's do.
//
//===----------------------------------------------------------------------===//
#include "passes/Pass.h"

#include "ir/OpRules.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/FormatVariadic.h"

#include <utility>

using namespace meg;
using namespace meg::ir;
using namespace meg::passes;

namespace {

enum class Precision { Low, F32, Promote, Follow };

/// The rules; every op not named follows its operands.
constexpr std::pair<OpKind, Precision> kRules[] = {
    {OpKind::Contract, Precision::Low},      {OpKind::Embedding, Precision::Low},
    {OpKind::Gelu, Precision::Low},          {OpKind::Attention, Precision::Low},
    {OpKind::LayerNorm, Precision::F32},     {OpKind::Softmax, Precision::F32},
    {OpKind::ReduceMax, Precision::F32},     {OpKind::ReduceSum, Precision::F32},
    {OpKind::Exp, Precision::F32},           {OpKind::Log, Precision::F32},
    {OpKind::Pick, Precision::F32},          {OpKind::Output, Precision::F32},
    {OpKind::Add, Precision::Promote},       {OpKind::Sub, Precision::Promote},
    {OpKind::Mul, Precision::Promote},       {OpKind::Div, Precision::Promote},
};

Precision precisionOf(OpKind k) {
  for (auto [kind, p] : kRules)
    if (kind == k)
      return p;
  return Precision::Follow;
}

class MixedPrecisionPass : public Pass {
public:
  explicit MixedPrecisionPass(DType low) : low(low) {}
  llvm::StringRef getName() const override { return "mixed-precision"; }

  llvm::Error run(Graph &g) override {
    for (const auto &n : g)
      if (auto name = n->getAttrs().getString("name"); n->getKind() == OpKind::Output && name && name->startswith("grad:"))
        return fail("the graph already has a backward (run mixed-precision before autodiff)");
    casts.clear();
    masters.clear();
    for (Node *n : g.getNodes()) {
      noteMaster(*n);
      if (isExternal(n->getKind()) || n->getKind() == OpKind::Cast)
        continue;
      if (std::optional<DType> want = wanted(*n))
        for (unsigned i = 0; i < n->getNumOperands(); ++i) {
          Value *v = n->getOperand(i);
          if (isFloat(v->getType().dtype) && v->getType().dtype != *want)
            n->setOperand(i, castOf(g, n, v, *want));
        }
      if (auto err = retype(*n))
        return err;
    }
    return llvm::Error::success();
  }

private:
  /// Values whose dtype is a storage choice, not a computed precision, do not vote in promotion: parameters,
  /// constants, and what ops that follow their operands make of nothing else (a slice of a parameter).
  void noteMaster(const Node &n) {
    OpKind k = n.getKind();
    bool master = k == OpKind::Param || k == OpKind::Fill;
    if (!master && precisionOf(k) == Precision::Follow && !isExternal(k) && n.getNumOperands() > 0)
      master = llvm::all_of(n.getOperands(), [&](const Value *v) { return masters.contains(v); });
    if (master)
      for (const Value *v : n.getResults())
        masters.insert(v);
  }
  bool isMaster(const Value *v) const { return masters.contains(v); }

  /// The dtype node `n` computes in, or none (follow).
  std::optional<DType> wanted(const Node &n) const {
    switch (precisionOf(n.getKind())) {
    case Precision::Low:
      return low;
    case Precision::F32:
      return DType::F32;
    case Precision::Promote:
      for (const Value *v : n.getOperands())
        if (!isMaster(v) && v->getType().dtype == DType::F32)
          return DType::F32;
      return low;
    case Precision::Follow:
      return std::nullopt;
    }
    return std::nullopt;
  }

  /// `v` converted to `t` for its consumer `user`: a fresh cast per use of a parameter, else one per (value, t).
  Value *castOf(Graph &g, Node *user, Value *v, DType t) {
    bool perUse = v->getDef()->getKind() == OpKind::Param;
    if (!perUse)
      if (Value *done = casts.lookup({v, unsigned(t)}))
        return done;
    AttrDict attrs;
    attrs.set("dtype", Symbol{dtypeName(t).str()});
    Node *cast = g.insertBefore(user, OpKind::Cast, {v}, std::move(attrs), {v->getType().withDType(t)});
    if (!perUse)
      casts[{v, unsigned(t)}] = cast->getResult();
    return cast->getResult();
  }

  /// Re-infers `n`'s result types from its (possibly retyped) operands.
  llvm::Error retype(Node &n) {
    if (n.getNumResults() == 0)
      return llvm::Error::success();
    llvm::SmallVector<TensorType, 4> operands;
    for (const Value *v : n.getOperands())
      operands.push_back(v->getType());
    auto types = inferTypes(n.getKind(), operands, n.getAttrs());
    if (!types)
      return fail("'" + n.getName() + "': " + llvm::toString(types.takeError()));
    for (unsigned i = 0; i < n.getNumResults(); ++i)
      n.getResult(i)->setType(TensorType((*types)[i].dtype, (*types)[i].shape, n.getResult(i)->getType().sharding));
    return llvm::Error::success();
  }

  DType low;
  llvm::DenseMap<std::pair<const Value *, unsigned>, Value *> casts;
  llvm::DenseSet<const Value *> masters;
};

} // namespace

llvm::Expected<std::unique_ptr<Pass>> meg::passes::createMixedPrecisionPass(const MixedPrecisionOptions &o) {
  if (o.dtype != "bf16" && o.dtype != "f16")
    return fail("mixed-precision: dtype must be bf16 or f16, got '" + o.dtype + "'");
  return std::make_unique<MixedPrecisionPass>(*parseDType(o.dtype));
}
