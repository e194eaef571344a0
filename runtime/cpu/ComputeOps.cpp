//===- ComputeOps.cpp - CPU adapters: contractions, elementwise, norms, attention ===//
//
// Sharding-aware arguments (all from the TensorRef global shapes and offsets):
//   embedding: rowOffset = offset[0] of the (vocab-split) table;
//   attention: headOffset = offset[2] of q, total heads = global_shape[2] (a dp shard also folds its batch offset in,
//              so the dropout mask index is the global [batch, heads, seq, seq] index);
//   dropout:   the global element index from the result's global shape and offset;
//   mask_padding: the shard's offset along the masked dim (a vocab-split shard masks the global columns it holds).
// Dropout masks are keyed by (seed, step, stream attribute, global index); StepContext::dropout == false (eval)
// makes dropout the identity.
//
//===----------------------------------------------------------------------===//
#include "runtime/cpu/CpuOps.h"

#include "kernels/cpu/Attention.h"
#include "kernels/cpu/Contract.h"
#include "kernels/cpu/Dropout.h"
#include "kernels/cpu/Elementwise.h"
#include "kernels/cpu/Embedding.h"
#include "kernels/cpu/Gelu.h"
#include "kernels/cpu/LayerNorm.h"
#include "kernels/cpu/Softmax.h"

#include "llvm/Support/FormatVariadic.h"

#include <cstring>

using namespace meg;
using namespace meg::runtime;
using namespace meg::runtime::cpu;
namespace k = meg::kernels::cpu;

namespace {

llvm::Error checkRank(const CpuStep &s, const TensorSlot &t, llvm::StringRef what) {
  if (t.shape.size() > size_t(kKernelMaxRank))
    return s.error(llvm::formatv("{0} has rank {1}, the cpu kernels accept at most {2}", what, t.shape.size(),
                                 kKernelMaxRank));
  return llvm::Error::success();
}

llvm::Expected<CpuKernel> binary(CpuStep &s, k::BinaryOp op) {
  if (auto err = s.expectDTypes(DType::F32))
    return err;
  const TensorSlot &a = s.operand(0), &b = s.operand(1);
  if (auto err = checkRank(s, a, "operand 0"))
    return err;
  if (auto err = checkRank(s, b, "operand 1"))
    return err;
  int64_t shape[kKernelMaxRank];
  int rank = 0;
  if (!k::broadcastShape(a.shape.data(), int(a.shape.size()), b.shape.data(), int(b.shape.size()), shape, &rank))
    return s.error("operand shapes " + shapeStr(a.shape) + " and " + shapeStr(b.shape) + " do not broadcast");
  if (auto err = s.expectResultShape(llvm::ArrayRef<int64_t>(shape, rank)))
    return err;
  // The result may alias an operand of its own size; a smaller (broadcast) operand must then be read first, which
  // the kernel does not promise, so such a step was rejected by the backend's overlap check.
  return [=, &s](const CpuRunArgs &) -> llvm::Error {
    k::binary(op, s.f(0), a.shape.data(), int(a.shape.size()), s.f(1), b.shape.data(), int(b.shape.size()), s.fout());
    return llvm::Error::success();
  };
}

using UnaryFn = void (*)(const float *, int64_t, float *);

llvm::Expected<CpuKernel> unary(CpuStep &s, UnaryFn fn) {
  if (auto err = s.expectDTypes(DType::F32))
    return err;
  if (auto err = s.expectResultShape(s.operand(0).shape))
    return err;
  int64_t n = s.operand(0).numel();
  return [=, &s](const CpuRunArgs &) -> llvm::Error {
    fn(s.f(0), n, s.fout());
    return llvm::Error::success();
  };
}

} // namespace

llvm::Expected<CpuKernel> meg::runtime::cpu::cpuEmbedding(CpuStep &s) {
  const TensorSlot &table = s.operand(0), &ids = s.operand(1);
  if (auto err = s.expectDType(table, "table", DType::F32))
    return err;
  if (auto err = s.expectDType(ids, "ids", DType::I32))
    return err;
  if (auto err = s.expectDType(s.result(), "result", DType::F32))
    return err;
  if (table.shape.size() != 2)
    return s.error("table must have rank 2, got " + shapeStr(table.shape));
  if (auto err = s.expectWholeDim(0, 1, "the embedding dim cannot be split"))
    return err;
  Shape expected = ids.shape;
  expected.push_back(table.shape[1]);
  if (auto err = s.expectResultShape(expected))
    return err;
  int64_t rows = table.shape[0], dim = table.shape[1], tokens = ids.numel(), rowOffset = table.offset[0];
  return [=, &s](const CpuRunArgs &) -> llvm::Error {
    k::embeddingForward(s.f(0), rows, dim, s.i32(1), tokens, rowOffset, s.fout());
    return llvm::Error::success();
  };
}

llvm::Expected<CpuKernel> meg::runtime::cpu::cpuContract(CpuStep &s) {
  if (auto err = s.expectDTypes(DType::F32))
    return err;
  auto spec = s.symbolAttr("spec");
  if (!spec)
    return spec.takeError();
  const TensorSlot &a = s.operand(0), &b = s.operand(1);
  auto plan = std::make_shared<k::ContractPlan>(k::ContractPlan::build(*spec, a.shape.data(), int(a.shape.size()),
                                                                      b.shape.data(), int(b.shape.size())));
  if (!plan->ok())
    return s.error("contract '" + *spec + "' of " + shapeStr(a.shape) + " and " + shapeStr(b.shape) + ": " +
                   plan->parseError);
  if (auto err = s.expectResultShape(plan->outShape))
    return err;
  s.scratchFloats = plan->scratchFloats;
  return [plan, &s](const CpuRunArgs &args) -> llvm::Error {
    k::contract(*plan, s.f(0), s.f(1), s.fout(), args.scratch);
    return llvm::Error::success();
  };
}

llvm::Expected<CpuKernel> meg::runtime::cpu::cpuAdd(CpuStep &s) { return binary(s, k::BinaryOp::Add); }
llvm::Expected<CpuKernel> meg::runtime::cpu::cpuSub(CpuStep &s) { return binary(s, k::BinaryOp::Sub); }
llvm::Expected<CpuKernel> meg::runtime::cpu::cpuMul(CpuStep &s) { return binary(s, k::BinaryOp::Mul); }
llvm::Expected<CpuKernel> meg::runtime::cpu::cpuDiv(CpuStep &s) { return binary(s, k::BinaryOp::Div); }

llvm::Expected<CpuKernel> meg::runtime::cpu::cpuScale(CpuStep &s) {
  auto factor = s.floatAttr("factor");
  if (!factor)
    return factor.takeError();
  if (auto err = s.expectDTypes(DType::F32))
    return err;
  if (auto err = s.expectResultShape(s.operand(0).shape))
    return err;
  int64_t n = s.operand(0).numel();
  float f = float(*factor);
  return [=, &s](const CpuRunArgs &) -> llvm::Error {
    k::scale(s.f(0), n, f, s.fout());
    return llvm::Error::success();
  };
}

llvm::Expected<CpuKernel> meg::runtime::cpu::cpuExp(CpuStep &s) { return unary(s, &k::expForward); }
llvm::Expected<CpuKernel> meg::runtime::cpu::cpuLog(CpuStep &s) { return unary(s, &k::logForward); }
llvm::Expected<CpuKernel> meg::runtime::cpu::cpuTanh(CpuStep &s) { return unary(s, &k::tanhForward); }

llvm::Expected<k::GeluForm> meg::runtime::cpu::geluForm(const CpuStep &s) {
  auto approx = s.symbolAttr("approx");
  if (!approx)
    return approx.takeError();
  if (*approx != "tanh" && *approx != "erf")
    return s.error("unknown gelu approx '" + *approx + "' (expected tanh or erf)");
  return *approx == "tanh" ? k::GeluForm::Tanh : k::GeluForm::Erf;
}

llvm::Expected<CpuKernel> meg::runtime::cpu::cpuGelu(CpuStep &s) {
  auto gelu = geluForm(s);
  if (!gelu)
    return gelu.takeError();
  if (auto err = s.expectDTypes(DType::F32))
    return err;
  if (auto err = s.expectResultShape(s.operand(0).shape))
    return err;
  k::GeluForm form = *gelu;
  int64_t n = s.operand(0).numel();
  return [=, &s](const CpuRunArgs &) -> llvm::Error {
    k::geluForward(form, s.f(0), n, s.fout());
    return llvm::Error::success();
  };
}

llvm::Expected<CpuKernel> meg::runtime::cpu::cpuDropout(CpuStep &s) {
  auto p = s.floatAttr("p");
  if (!p)
    return p.takeError();
  auto stream = s.intAttr("stream");
  if (!stream)
    return stream.takeError();
  if (!(*p >= 0 && *p < 1))
    return s.error(llvm::formatv("dropout probability {0} is outside [0, 1)", *p));
  if (auto err = s.expectDTypes(DType::F32))
    return err;
  if (auto err = s.expectResultShape(s.operand(0).shape))
    return err;
  if (auto err = checkRank(s, s.result(), "result"))
    return err;
  float prob = float(*p);
  uint32_t streamId = uint32_t(*stream);
  int64_t n = s.operand(0).numel();
  return [=, &s](const CpuRunArgs &args) -> llvm::Error {
    if (!args.ctx.dropout || prob == 0) {
      if (s.f(0) != s.fout())
        std::memcpy(s.fout(), s.f(0), size_t(n) * sizeof(float));
      return llvm::Error::success();
    }
    const TensorSlot &r = s.result();
    k::GlobalView view{r.shape.data(), r.globalShape.data(), r.offset.data(), int(r.shape.size())};
    k::dropoutForward(s.f(0), view, prob, kernels::PhiloxKey{args.ctx.seed, streamId, args.ctx.step}, s.fout());
    return llvm::Error::success();
  };
}

llvm::Expected<CpuKernel> meg::runtime::cpu::cpuMaskPadding(CpuStep &s) {
  auto dim = s.intAttr("dim");
  if (!dim)
    return dim.takeError();
  auto valid = s.intAttr("valid");
  if (!valid)
    return valid.takeError();
  auto value = s.floatAttr("value");
  if (!value)
    return value.takeError();
  if (auto err = s.expectDTypes(DType::F32))
    return err;
  const TensorSlot &x = s.operand(0);
  if (*dim < 0 || *dim >= int64_t(x.shape.size()))
    return s.error(llvm::formatv("dim {0} is out of range for rank {1}", *dim, x.shape.size()));
  if (auto err = s.expectResultShape(x.shape))
    return err;
  int64_t outer = 1, inner = 1, n = x.shape[size_t(*dim)], offset = x.offset[size_t(*dim)];
  for (int64_t d = 0; d < *dim; ++d)
    outer *= x.shape[size_t(d)];
  for (size_t d = size_t(*dim) + 1; d < x.shape.size(); ++d)
    inner *= x.shape[d];
  int64_t keep = *valid;
  float fill = float(*value);
  return [=, &s](const CpuRunArgs &) -> llvm::Error {
    k::maskPadding(s.f(0), outer, n, inner, offset, keep, fill, s.fout());
    return llvm::Error::success();
  };
}

llvm::Expected<CpuKernel> meg::runtime::cpu::cpuCast(CpuStep &s) {
  auto to = s.symbolAttr("dtype");
  if (!to)
    return to.takeError();
  DType from = s.operand(0).dtype, dst = s.result().dtype;
  if (*to != dtypeName(dst))
    return s.error("cast to '" + *to + "' but the result has dtype " + dtypeName(dst));
  if (auto err = s.expectResultShape(s.operand(0).shape))
    return err;
  auto supported = [](DType t) { return t == DType::F32 || t == DType::I32; };
  if (!supported(from) || !supported(dst))
    return s.error(llvm::formatv("cast from {0} to {1} is not supported by the cpu backend", dtypeName(from),
                                 dtypeName(dst)));
  int64_t n = s.operand(0).numel();
  return [=, &s](const CpuRunArgs &) -> llvm::Error {
    void *in = s.in[0], *out = s.out[0];
    if (from == dst) {
      if (in != out)
        std::memcpy(out, in, size_t(n) * 4);
    } else if (from == DType::I32) {
      for (int64_t i = 0; i < n; ++i)
        static_cast<float *>(out)[i] = float(static_cast<const int32_t *>(in)[i]);
    } else {
      for (int64_t i = 0; i < n; ++i)
        static_cast<int32_t *>(out)[i] = int32_t(static_cast<const float *>(in)[i]);
    }
    return llvm::Error::success();
  };
}

llvm::Expected<CpuKernel> meg::runtime::cpu::cpuLayerNorm(CpuStep &s) {
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
  int64_t rows = n ? x.numel() / n : 0;
  float e = float(*eps);
  return [=, &s](const CpuRunArgs &) -> llvm::Error {
    k::layerNormForward(s.f(0), s.f(1), s.f(2), rows, n, e, s.fout(), nullptr, nullptr);
    return llvm::Error::success();
  };
}

llvm::Expected<CpuKernel> meg::runtime::cpu::cpuSoftmax(CpuStep &s) {
  if (auto err = s.expectDTypes(DType::F32))
    return err;
  const TensorSlot &x = s.operand(0);
  if (x.shape.empty())
    return s.error("softmax of a scalar");
  if (auto err = s.expectWholeDim(0, unsigned(x.shape.size() - 1), "softmax runs over the whole last dim"))
    return err;
  if (auto err = s.expectResultShape(x.shape))
    return err;
  int64_t n = x.shape.back(), rows = n ? x.numel() / n : 0;
  return [=, &s](const CpuRunArgs &) -> llvm::Error {
    k::softmaxForward(s.f(0), rows, n, s.fout());
    return llvm::Error::success();
  };
}

llvm::Expected<AttentionSetup> meg::runtime::cpu::prepareAttention(CpuStep &s, std::optional<size_t> maskOperand) {
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
      return s.error(llvm::formatv("q, k and v must have one BSHD shape, got {0}, {1}, {2}",
                                   shapeStr(q.shape), shapeStr(s.operand(1).shape), shapeStr(s.operand(2).shape)));
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
      return s.error("mask shape " + shapeStr(m.shape) + " does not match q's batch and sequence " +
                     shapeStr(q.shape));
  }
  AttentionSetup a;
  k::AttentionParams &params = a.params;
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

k::AttentionParams AttentionSetup::forRun(const CpuStep &s, const CpuRunArgs &args) const {
  k::AttentionParams run = params;
  run.keyMask = maskOperand ? s.i32(*maskOperand) : nullptr;
  run.dropoutP = args.ctx.dropout ? dropout : 0.0f;
  run.dropoutKey = kernels::PhiloxKey{args.ctx.seed, stream, args.ctx.step};
  return run;
}

llvm::Expected<CpuKernel> meg::runtime::cpu::cpuAttention(CpuStep &s) {
  auto setup = prepareAttention(s, s.numOperands() == 4 ? std::optional<size_t>(3) : std::nullopt);
  if (!setup)
    return setup.takeError();
  return [a = *setup, &s](const CpuRunArgs &args) -> llvm::Error {
    k::attentionForward(a.forRun(s, args), s.f(0), s.f(1), s.f(2), s.fout());
    return llvm::Error::success();
  };
}
