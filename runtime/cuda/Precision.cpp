//===- Precision.cpp - how the CUDA backend runs 16-bit plan steps -----------===//
//
// Why the ops without a 16-bit kernel widen:
//   embedding_grad   sums dy over the tokens into the table gradient: the fp32 room to accumulate in IS the widening
//                    (a 16-bit kernel would need the same fp32 buffer and a rounding pass);
//   layernorm(_grad), pick(_grad), valid_mask, sum_squares, clip_scale, adamw, lr_schedule, fill, and the
//   maximum, nonfinite, loss_scale_update, accumulate of loss scaling and gradient accumulation
//                    are fp32 by the mixed-precision pass (statistics, loss, optimizer); a 16-bit one only appears
//                    in hand-written IR and is rare enough to run on copies;
//   all_reduce, all_gather, reduce_scatter, all_reduce_bucket, reduce_scatter_bucket
//                    the communicators move and sum f32 (the CPU reference sums 16-bit values in fp32 and rounds
//                    once; a 16-bit NCCL sum would round at every hop), and runtime/comm is float-only.
// shard moves no data between ranks (it is slice's launch), so it has slice's 2-byte move.
//
//===----------------------------------------------------------------------===//
#include "runtime/cuda/Precision.h"

#include <cassert>
#include <iterator>
#include <optional>
#include <utility>

using namespace meg;
using namespace meg::runtime;
using namespace meg::runtime::cuda;
using ir::OpKind;

namespace {

/// One row per op of ir/Ops.def, in its order.
constexpr std::pair<OpKind, Native16> kRules[] = {
    {OpKind::Param, Native16::NotAStep},
    {OpKind::Input, Native16::NotAStep},
    {OpKind::Output, Native16::NotAStep},
    {OpKind::Fill, Native16::Widen},
    {OpKind::Embedding, Native16::Uniform},
    {OpKind::Contract, Native16::Gemm},
    {OpKind::Add, Native16::Uniform},
    {OpKind::Sub, Native16::Uniform},
    {OpKind::Mul, Native16::Uniform},
    {OpKind::Div, Native16::Uniform},
    {OpKind::Maximum, Native16::Widen},
    {OpKind::Scale, Native16::Uniform},
    {OpKind::Exp, Native16::Uniform},
    {OpKind::Log, Native16::Uniform},
    {OpKind::Tanh, Native16::Uniform},
    {OpKind::Gelu, Native16::Uniform},
    {OpKind::Dropout, Native16::Uniform},
    {OpKind::Cast, Native16::AnyDType},
    {OpKind::MaskPadding, Native16::Uniform},
    {OpKind::LayerNorm, Native16::Widen},
    {OpKind::Softmax, Native16::Uniform},
    {OpKind::Attention, Native16::Uniform},
    {OpKind::Reshape, Native16::AnyDType},
    {OpKind::Transpose, Native16::Uniform},
    {OpKind::Slice, Native16::Uniform},
    {OpKind::Select, Native16::Uniform},
    {OpKind::ReduceSum, Native16::Uniform},
    {OpKind::ReduceMax, Native16::Uniform},
    {OpKind::Pick, Native16::Widen},
    {OpKind::ValidMask, Native16::Widen},
    {OpKind::Broadcast, Native16::Uniform},
    {OpKind::GeluGrad, Native16::Uniform},
    {OpKind::LayerNormGrad, Native16::Widen},
    {OpKind::AttentionGrad, Native16::Uniform},
    {OpKind::EmbeddingGrad, Native16::Widen},
    {OpKind::PickGrad, Native16::Widen},
    {OpKind::SliceGrad, Native16::Uniform},
    {OpKind::SelectGrad, Native16::Uniform},
    {OpKind::AllReduce, Native16::Widen},
    {OpKind::AllGather, Native16::Widen},
    {OpKind::ReduceScatter, Native16::Widen},
    {OpKind::AllReduceBucket, Native16::Widen},
    {OpKind::ReduceScatterBucket, Native16::Widen},
    {OpKind::Shard, Native16::Uniform},
    {OpKind::State, Native16::NotAStep},
    {OpKind::LrSchedule, Native16::Widen},
    {OpKind::SumSquares, Native16::Widen},
    {OpKind::ClipScale, Native16::Widen},
    {OpKind::AdamW, Native16::Widen},
    {OpKind::Nonfinite, Native16::Widen},
    {OpKind::LossScaleUpdate, Native16::Widen},
    {OpKind::Accumulate, Native16::Widen},
    {OpKind::Send, Native16::Uniform},
    {OpKind::Recv, Native16::Uniform},
    {OpKind::DecodeAttention, Native16::Widen},
};

static_assert(std::size(kRules) == ir::kNumOpKinds, "one native16 rule per op of ir/Ops.def");

constexpr bool rulesInOrder() {
  for (size_t i = 0; i < std::size(kRules); ++i)
    if (unsigned(kRules[i].first) != i)
      return false;
  return true;
}
static_assert(rulesInOrder(), "kRules lists the ops in the order of ir/Ops.def");

kernels::Elem elemOfDType(DType t) {
  switch (t) {
  case DType::BF16:
    return kernels::Elem::BF16;
  case DType::F16:
    return kernels::Elem::F16;
  default:
    return kernels::Elem::F32;
  }
}

bool isFloat(DType t) { return t == DType::F32 || t == DType::BF16 || t == DType::F16; }
bool is16(DType t) { return t == DType::BF16 || t == DType::F16; }

/// The one float dtype of `slots`, or nullopt when they disagree (or hold none).
std::optional<DType> commonFloat(const std::vector<TensorSlot> &slots, std::optional<DType> seen, bool &mixed) {
  for (const TensorSlot &t : slots) {
    if (!isFloat(t.dtype))
      continue;
    if (seen && *seen != t.dtype)
      mixed = true;
    seen = t.dtype;
  }
  return seen;
}

} // namespace

Native16 meg::runtime::cuda::native16Rule(OpKind kind) {
  assert(unsigned(kind) < std::size(kRules) && "op kind out of range");
  return kRules[unsigned(kind)].second;
}

llvm::StringRef meg::runtime::cuda::native16RuleName(Native16 rule) {
  switch (rule) {
  case Native16::NotAStep:
    return "not-a-step";
  case Native16::AnyDType:
    return "any-dtype";
  case Native16::Uniform:
    return "uniform";
  case Native16::Gemm:
    return "gemm";
  case Native16::Widen:
    return "widen";
  }
  return "?";
}

StepStorage meg::runtime::cuda::classifyStep(const PlanStep &step) {
  StepStorage s;
  Native16 rule = native16Rule(step.kind);
  if (rule == Native16::AnyDType) {
    s.precision = StepPrecision::Direct;
    return s;
  }
  auto any16 = [](const std::vector<TensorSlot> &slots) {
    for (const TensorSlot &t : slots)
      if (is16(t.dtype))
        return true;
    return false;
  };
  if (!any16(step.operands) && !any16(step.results))
    return s; // F32
  s.precision = StepPrecision::Widened;
  bool mixed = false;
  if (rule == Native16::Uniform) {
    std::optional<DType> t = commonFloat(step.results, commonFloat(step.operands, std::nullopt, mixed), mixed);
    if (!mixed && t && is16(*t)) {
      s.precision = StepPrecision::Native16;
      s.elem = s.resultElem = elemOfDType(*t);
    }
  } else if (rule == Native16::Gemm && step.operands.size() == 2 && step.results.size() == 1) {
    DType a = step.operands[0].dtype, b = step.operands[1].dtype, c = step.results[0].dtype;
    if (a == b && is16(a) && (c == a || c == DType::F32)) {
      s.precision = StepPrecision::Native16;
      s.elem = elemOfDType(a);
      s.resultElem = elemOfDType(c);
    }
  }
  return s;
}
