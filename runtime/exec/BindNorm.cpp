//===- BindNorm.cpp - binders: layernorm, softmax, attention ------------------===//
//
// Each normalizes over whole rows: layernorm and softmax over the last dim, attention over whole sequences and whole
// heads (q, k, v in BSHD). attention's head offset is q's (batch, head) index in the global [batch, heads] grid, so
// its dropout masks are the unsharded run's.
//
//===----------------------------------------------------------------------===//
#include "runtime/exec/StepBinder.h"

#include "llvm/Support/FormatVariadic.h"

using namespace meg;
using namespace meg::runtime;

namespace {

/// Checked attention set-up shared by attention and attention_grad: operands 0-2 are q, k, v (BSHD), results have
/// q's shape, the optional mask operand is i32[b, s].
llvm::Expected<AttentionArgs> bindAttentionCommon(const StepBinder &s, std::optional<size_t> maskOperand) {
  auto causal = s.boolAttr("causal");
  if (!causal)
    return causal.takeError();
  auto scale = s.floatAttr("scale");
  if (!scale)
    return scale.takeError();
  auto p = s.floatAttr("dropout", 0.0);
  if (!p)
    return p.takeError();
  auto stream = s.intAttr("stream", 0);
  if (!stream)
    return stream.takeError();
  if (!(*p >= 0 && *p < 1))
    return s.error(llvm::formatv("attention dropout {0} is outside [0, 1)", *p));
  const TensorSlot &q = s.operand(0);
  for (size_t i = 0; i < 3; ++i) {
    if (auto err = s.expectDType(s.operand(i), llvm::formatv("operand {0}", i).str(), DType::F32))
      return err;
    if (s.operand(i).shape.size() != 4 || s.operand(i).shape != q.shape)
      return s.error(llvm::formatv("q, k and v must have one BSHD shape, got {0}, {1}, {2}", shapeStr(q.shape),
                                   shapeStr(s.operand(1).shape), shapeStr(s.operand(2).shape)));
  }
  for (size_t r = 0; r < s.step.results.size(); ++r) {
    if (auto err = s.expectDType(s.result(r), "result", DType::F32))
      return err;
    if (s.result(r).shape != q.shape)
      return s.error("result shape " + shapeStr(s.result(r).shape) + " differs from q's " + shapeStr(q.shape));
  }
  if (auto err = s.expectWholeDim(0, 1, "attention needs whole sequences"))
    return err;
  if (auto err = s.expectWholeDim(0, 3, "attention needs whole heads"))
    return err;
  if (maskOperand) {
    const TensorSlot &m = s.operand(*maskOperand);
    if (auto err = s.expectDType(m, "mask", DType::I32))
      return err;
    if (m.shape.size() != 2 || m.shape[0] != q.shape[0] || m.shape[1] != q.shape[1])
      return s.error("mask shape " + shapeStr(m.shape) + " does not match q's batch and sequence " + shapeStr(q.shape));
  }
  AttentionArgs a;
  kernels::cpu::AttentionParams &params = a.params;
  params.batch = q.shape[0];
  params.seq = q.shape[1];
  params.heads = q.shape[2];
  params.headDim = q.shape[3];
  params.scale = float(*scale);
  params.causal = *causal;
  params.headsTotal = q.globalShape[2];
  // Index of this shard's (batch 0, head 0) in the global [batch, heads] grid: the kernel adds b * headsTotal + h.
  params.headOffset = q.offset[0] * q.globalShape[2] + q.offset[2];
  a.dropout = float(*p);
  a.stream = uint32_t(*stream);
  a.maskOperand = maskOperand;
  return a;
}

} // namespace

llvm::Expected<LayerNormArgs> meg::runtime::bindLayerNorm(const StepBinder &s) {
  auto eps = s.floatAttr("eps");
  if (!eps)
    return eps.takeError();
  if (auto err = s.expectDTypes(DType::F32))
    return err;
  const TensorSlot &x = s.operand(0);
  if (x.shape.empty())
    return s.error("layernorm of a scalar");
  int64_t n = x.shape.back();
  if (auto err = s.expectWholeDim(0, unsigned(x.shape.size() - 1), "layernorm normalizes over the whole last dim"))
    return err;
  for (size_t i : {1, 2})
    if (s.operand(i).shape.size() != 1 || s.operand(i).shape[0] != n)
      return s.error(llvm::formatv("operand {0} has shape {1}, expected [{2}]", i, shapeStr(s.operand(i).shape), n));
  if (auto err = s.expectResultShape(x.shape))
    return err;
  return LayerNormArgs{n ? x.numel() / n : 0, n, float(*eps)};
}

llvm::Expected<LayerNormGradArgs> meg::runtime::bindLayerNormGrad(const StepBinder &s) {
  auto eps = s.floatAttr("eps");
  if (!eps)
    return eps.takeError();
  if (auto err = s.expectDTypes(DType::F32))
    return err;
  const TensorSlot &x = s.operand(0);
  if (x.shape.empty() || s.operand(2).shape != x.shape)
    return s.error("dy " + shapeStr(s.operand(2).shape) + " must match x " + shapeStr(x.shape));
  if (auto err = s.expectWholeDim(0, unsigned(x.shape.size() - 1), "layernorm normalizes over the whole last dim"))
    return err;
  int64_t n = x.shape.back();
  if (s.operand(1).shape != Shape{n} || s.result(0).shape != x.shape || s.result(1).shape != Shape{n} ||
      s.result(2).shape != Shape{n})
    return s.error(llvm::formatv("gain and results must be [{0}] and {1}", n, shapeStr(x.shape)));
  return LayerNormGradArgs{{n ? x.numel() / n : 0, n, float(*eps)}};
}

llvm::Expected<SoftmaxArgs> meg::runtime::bindSoftmax(const StepBinder &s) {
  if (auto err = s.expectDTypes(DType::F32))
    return err;
  const TensorSlot &x = s.operand(0);
  if (x.shape.empty())
    return s.error("softmax of a scalar");
  if (auto err = s.expectWholeDim(0, unsigned(x.shape.size() - 1), "softmax runs over the whole last dim"))
    return err;
  if (auto err = s.expectResultShape(x.shape))
    return err;
  int64_t n = x.shape.back();
  return SoftmaxArgs{n ? x.numel() / n : 0, n};
}

llvm::Expected<AttentionArgs> meg::runtime::bindAttention(const StepBinder &s) {
  return bindAttentionCommon(s, s.numOperands() == 4 ? std::optional<size_t>(3) : std::nullopt);
}

llvm::Expected<DecodeAttentionArgs> meg::runtime::bindDecodeAttention(const StepBinder &s) {
  auto scale = s.floatAttr("scale");
  if (!scale)
    return scale.takeError();
  const TensorSlot &q = s.operand(0), &cache = s.operand(3);
  static const char *names[] = {"q", "k", "v", "k_cache", "v_cache"};
  for (size_t i = 0; i < 5; ++i)
    if (auto err = s.expectDType(s.operand(i), names[i], DType::F32))
      return err;
  if (auto err = s.expectDType(s.operand(5), "position", DType::I32))
    return err;
  if (auto err = s.expectDType(s.result(), "result", DType::F32))
    return err;
  if (q.shape.size() != 4 || s.operand(1).shape != q.shape || s.operand(2).shape != q.shape)
    return s.error(llvm::formatv("q, k and v must have one BSHD shape, got {0}, {1}, {2}", shapeStr(q.shape),
                                 shapeStr(s.operand(1).shape), shapeStr(s.operand(2).shape)));
  if (cache.shape.size() != 4 || s.operand(4).shape != cache.shape || cache.shape[0] != q.shape[0] ||
      cache.shape[2] != q.shape[2] || cache.shape[3] != q.shape[3])
    return s.error(llvm::formatv("the caches {0}, {1} do not match q {2} (batch, heads, head_dim)",
                                 shapeStr(cache.shape), shapeStr(s.operand(4).shape), shapeStr(q.shape)));
  if (s.operand(5).shape != Shape{q.shape[0], q.shape[1]})
    return s.error("position shape " + shapeStr(s.operand(5).shape) + " does not match q's batch and tokens " +
                   shapeStr(q.shape));
  if (auto err = s.expectResultShape(q.shape))
    return err;
  if (auto err = s.expectWholeDim(0, 1, "decode_attention needs every new token"))
    return err;
  if (auto err = s.expectWholeDim(0, 3, "decode_attention needs whole heads"))
    return err;
  if (auto err = s.expectWholeDim(3, 1, "decode_attention needs the whole cache"))
    return err;
  DecodeAttentionArgs a;
  a.params = {q.shape[0], q.shape[1], q.shape[2], q.shape[3], cache.shape[1], float(*scale)};
  return a;
}

llvm::Expected<AttentionGradArgs> meg::runtime::bindAttentionGrad(const StepBinder &s) {
  if (auto err = s.expectDType(s.operand(3), "dout", DType::F32))
    return err;
  if (s.operand(3).shape != s.operand(0).shape)
    return s.error("dout " + shapeStr(s.operand(3).shape) + " differs from q " + shapeStr(s.operand(0).shape));
  auto args = bindAttentionCommon(s, s.numOperands() == 5 ? std::optional<size_t>(4) : std::nullopt);
  if (!args)
    return args.takeError();
  return AttentionGradArgs{*args};
}
