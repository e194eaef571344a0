//===- BindCompute.cpp - binders: lookups, contractions, elementwise ops ------===//
//
// embedding(_grad): the table's row offset (a vocab-split shard holds rows [rowOffset, rowOffset + rows)). A table
// split on the hidden dim gives rows split the same way (the kernels copy `dim` floats per row either way).
// dropout: the result's global shape and offset key the mask by GLOBAL element index (kernels/cpu/Dropout.h).
// mask_padding: the shard's offset along the masked dim (a vocab-split shard masks the global columns it holds).
//
//===----------------------------------------------------------------------===//
#include "runtime/exec/StepBinder.h"

#include "llvm/Support/FormatVariadic.h"

using namespace meg;
using namespace meg::runtime;

namespace {

llvm::Expected<BinaryArgs> bindBinary(const StepBinder &s, kernels::BinaryOp op) {
  if (auto err = s.expectDTypes(DType::F32))
    return err;
  const TensorSlot &a = s.operand(0), &b = s.operand(1);
  if (auto err = s.expectKernelRank(a, "operand 0"))
    return err;
  if (auto err = s.expectKernelRank(b, "operand 1"))
    return err;
  int64_t shape[kernels::kMaxRank];
  int rank = 0;
  if (!kernels::broadcastShape(a.shape.data(), int(a.shape.size()), b.shape.data(), int(b.shape.size()), shape, &rank))
    return s.error("operand shapes " + shapeStr(a.shape) + " and " + shapeStr(b.shape) + " do not broadcast");
  if (auto err = s.expectResultShape(llvm::ArrayRef<int64_t>(shape, rank)))
    return err;
  // The result may alias an operand of its own size (the plan verifier allows no other overlap).
  return BinaryArgs{op, a.shape, b.shape};
}

llvm::Expected<UnaryArgs> bindUnary(const StepBinder &s, kernels::UnaryOp op, float factor = 1.0f) {
  if (auto err = s.expectDTypes(DType::F32))
    return err;
  if (auto err = s.expectResultShape(s.operand(0).shape))
    return err;
  return UnaryArgs{op, s.operand(0).numel(), factor};
}

/// Checks shared by embedding and embedding_grad: operand 0 is the (row- or hidden-split) table, operand 1 the ids,
/// `rows` the tensor of looked-up rows (embedding's result, embedding_grad's dy), whose last dim is the table's
/// hidden dim: the same block of it.
llvm::Expected<EmbeddingArgs> bindTable(const StepBinder &s, const TensorSlot &rows, llvm::StringRef what) {
  const TensorSlot &table = s.operand(0), &ids = s.operand(1);
  if (auto err = s.expectDType(ids, "ids", DType::I32))
    return err;
  if (table.shape.size() != 2)
    return s.error("table must have rank 2, got " + shapeStr(table.shape));
  Shape expected = ids.shape;
  expected.push_back(table.shape[1]);
  if (rows.shape != expected)
    return s.error(what + " " + shapeStr(rows.shape) + " must be " + shapeStr(expected));
  if (rows.offset.back() != table.offset[1])
    return s.error(llvm::formatv("{0} holds hidden columns from {1} but the table's shard from {2}", what,
                                 rows.offset.back(), table.offset[1]));
  return EmbeddingArgs{table.shape[0], table.shape[1], ids.numel(), table.offset[0]};
}

/// The `approx` attribute of gelu and gelu_grad.
llvm::Expected<kernels::GeluForm> geluForm(const StepBinder &s) {
  auto approx = s.symbolAttr("approx");
  if (!approx)
    return approx.takeError();
  if (*approx != "tanh" && *approx != "erf")
    return s.error("unknown gelu approx '" + *approx + "' (expected tanh or erf)");
  return *approx == "tanh" ? kernels::GeluForm::Tanh : kernels::GeluForm::Erf;
}

} // namespace

llvm::Expected<EmbeddingArgs> meg::runtime::bindEmbedding(const StepBinder &s) {
  if (auto err = s.expectDType(s.operand(0), "table", DType::F32))
    return err;
  if (auto err = s.expectDType(s.result(), "result", DType::F32))
    return err;
  return bindTable(s, s.result(), "the result");
}

llvm::Expected<EmbeddingGradArgs> meg::runtime::bindEmbeddingGrad(const StepBinder &s) {
  const TensorSlot &table = s.operand(0), &dy = s.operand(2);
  if (auto err = s.expectDType(dy, "dy", DType::F32))
    return err;
  if (table.shape.size() != 2 || s.result().shape != table.shape)
    return s.error("the result must have the table's shape " + shapeStr(table.shape));
  auto args = bindTable(s, dy, "dy");
  if (!args)
    return args.takeError();
  return EmbeddingGradArgs{*args};
}

llvm::Expected<ContractArgs> meg::runtime::bindContract(const StepBinder &s) {
  if (auto err = s.expectDTypes(DType::F32))
    return err;
  auto spec = s.symbolAttr("spec");
  if (!spec)
    return spec.takeError();
  const TensorSlot &a = s.operand(0), &b = s.operand(1);
  auto plan = std::make_shared<kernels::cpu::ContractPlan>(kernels::cpu::ContractPlan::build(
      *spec, a.shape.data(), int(a.shape.size()), b.shape.data(), int(b.shape.size())));
  if (!plan->ok())
    return s.error("contract '" + *spec + "' of " + shapeStr(a.shape) + " and " + shapeStr(b.shape) + ": " +
                   plan->parseError);
  if (auto err = s.expectResultShape(plan->outShape))
    return err;
  return ContractArgs{std::move(plan)};
}

llvm::Expected<BinaryArgs> meg::runtime::bindAdd(const StepBinder &s) { return bindBinary(s, kernels::BinaryOp::Add); }
llvm::Expected<BinaryArgs> meg::runtime::bindSub(const StepBinder &s) { return bindBinary(s, kernels::BinaryOp::Sub); }
llvm::Expected<BinaryArgs> meg::runtime::bindMul(const StepBinder &s) { return bindBinary(s, kernels::BinaryOp::Mul); }
llvm::Expected<BinaryArgs> meg::runtime::bindDiv(const StepBinder &s) { return bindBinary(s, kernels::BinaryOp::Div); }
llvm::Expected<BinaryArgs> meg::runtime::bindMaximum(const StepBinder &s) {
  return bindBinary(s, kernels::BinaryOp::Max);
}

llvm::Expected<UnaryArgs> meg::runtime::bindScale(const StepBinder &s) {
  auto factor = s.floatAttr("factor");
  if (!factor)
    return factor.takeError();
  return bindUnary(s, kernels::UnaryOp::Scale, float(*factor));
}
llvm::Expected<UnaryArgs> meg::runtime::bindExp(const StepBinder &s) { return bindUnary(s, kernels::UnaryOp::Exp); }
llvm::Expected<UnaryArgs> meg::runtime::bindLog(const StepBinder &s) { return bindUnary(s, kernels::UnaryOp::Log); }
llvm::Expected<UnaryArgs> meg::runtime::bindTanh(const StepBinder &s) { return bindUnary(s, kernels::UnaryOp::Tanh); }

llvm::Expected<GeluArgs> meg::runtime::bindGelu(const StepBinder &s) {
  auto form = geluForm(s);
  if (!form)
    return form.takeError();
  if (auto err = s.expectDTypes(DType::F32))
    return err;
  if (auto err = s.expectResultShape(s.operand(0).shape))
    return err;
  return GeluArgs{*form, s.operand(0).numel()};
}

llvm::Expected<GeluGradArgs> meg::runtime::bindGeluGrad(const StepBinder &s) {
  auto form = geluForm(s);
  if (!form)
    return form.takeError();
  if (auto err = s.expectDTypes(DType::F32))
    return err;
  if (s.operand(1).shape != s.operand(0).shape)
    return s.error("dy " + shapeStr(s.operand(1).shape) + " differs from x " + shapeStr(s.operand(0).shape));
  if (auto err = s.expectResultShape(s.operand(0).shape))
    return err;
  return GeluGradArgs{{*form, s.operand(0).numel()}};
}

llvm::Expected<DropoutArgs> meg::runtime::bindDropout(const StepBinder &s) {
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
  if (auto err = s.expectKernelRank(s.result(), "result"))
    return err;
  const TensorSlot &r = s.result();
  return DropoutArgs{float(*p), uint32_t(*stream), r.numel(), r.shape, r.globalShape, r.offset};
}

llvm::Expected<MaskPaddingArgs> meg::runtime::bindMaskPadding(const StepBinder &s) {
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
  if (auto err = s.expectKernelRank(x, "operand 0"))
    return err;
  MaskPaddingArgs a;
  a.shape = x.shape;
  a.dim = int(*dim);
  a.size = x.shape[a.dim];
  a.offset = x.offset[a.dim];
  for (int d = 0; d < a.dim; ++d)
    a.outer *= x.shape[d];
  for (size_t d = size_t(a.dim) + 1; d < x.shape.size(); ++d)
    a.inner *= x.shape[d];
  a.valid = *valid;
  a.value = float(*value);
  return a;
}

llvm::Expected<CastArgs> meg::runtime::bindCast(const StepBinder &s) {
  auto to = s.symbolAttr("dtype");
  if (!to)
    return to.takeError();
  DType from = s.operand(0).dtype, dst = s.result().dtype;
  if (*to != dtypeName(dst))
    return s.error("cast to '" + *to + "' but the result has dtype " + dtypeName(dst));
  if (auto err = s.expectResultShape(s.operand(0).shape))
    return err;
  return CastArgs{from, dst, s.operand(0).numel()};
}

llvm::Expected<FillArgs> meg::runtime::bindFill(const StepBinder &s) {
  auto value = s.floatAttr("value");
  if (!value)
    return value.takeError();
  if (auto err = s.expectDType(s.result(), "result", DType::F32))
    return err;
  return FillArgs{s.result().numel(), float(*value)};
}

llvm::Expected<BroadcastArgs> meg::runtime::bindBroadcast(const StepBinder &s) {
  if (auto err = s.expectDTypes(DType::F32))
    return err;
  const TensorSlot &x = s.operand(0), &r = s.result();
  if (r.shape.size() > size_t(kernels::kMaxRank) || x.shape.size() > r.shape.size())
    return s.error("cannot broadcast " + shapeStr(x.shape) + " to " + shapeStr(r.shape));
  size_t lead = r.shape.size() - x.shape.size();
  for (size_t d = 0; d < x.shape.size(); ++d)
    if (x.shape[d] != 1 && x.shape[d] != r.shape[lead + d])
      return s.error("cannot broadcast " + shapeStr(x.shape) + " to " + shapeStr(r.shape));
  return BroadcastArgs{x.shape, r.shape};
}
