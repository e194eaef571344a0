//===- BindLayout.cpp - binders: layout, reductions, loss pieces --------------===//
//
// Layout ops move 4-byte elements (f32 or i32; bf16/f16 run as fp32 copies) without looking at them. Attributes
// are in global coordinates: slice and select translate them to this rank's shard with the operand's offset. pick's
// column offset is the offset of x's last (vocabulary) dim, so a vocab-split rank picks only the targets it holds
// (0 elsewhere).
//
//===----------------------------------------------------------------------===//
#include "runtime/exec/StepBinder.h"

#include "ir/Type.h"

#include "llvm/Support/FormatVariadic.h"

using namespace meg;
using namespace meg::runtime;

namespace {

/// A layout kernel's operand: a 4-byte dtype shared with the result, a rank the kernels accept.
llvm::Error expectLayoutOperand(const StepBinder &s) {
  if (auto err = s.expectMovable())
    return err;
  if (s.operand(0).shape.size() > size_t(kernels::kMaxRank))
    return s.error(
        llvm::formatv("rank {0} is above the kernels' limit {1}", s.operand(0).shape.size(), kernels::kMaxRank));
  return llvm::Error::success();
}

llvm::Expected<ReduceArgs> bindReduce(const StepBinder &s, bool isMax) {
  if (auto err = s.expectDTypes(DType::F32))
    return err;
  const TensorSlot &x = s.operand(0);
  if (x.shape.size() > size_t(kernels::kMaxRank))
    return s.error(llvm::formatv("rank {0} is above the kernels' limit {1}", x.shape.size(), kernels::kMaxRank));
  auto dims = s.intsAttr("dims");
  if (!dims)
    return dims.takeError();
  auto keepdim = s.boolAttr("keepdim", false);
  if (!keepdim)
    return keepdim.takeError();
  ReduceArgs a;
  a.isMax = isMax;
  a.shape = x.shape;
  for (int64_t d : *dims) {
    if (d < 0 || size_t(d) >= x.shape.size())
      return s.error(llvm::formatv("reduced dim {0} is out of range for rank {1}", d, x.shape.size()));
    a.reduced[d] = true;
  }
  Shape expected;
  for (size_t d = 0; d < x.shape.size(); ++d) {
    if (!a.reduced[d])
      expected.push_back(x.shape[d]);
    else if (*keepdim)
      expected.push_back(1);
  }
  if (auto err = s.expectResultShape(expected))
    return err;
  return a;
}

/// pick and pick_grad: x [..., V] (V possibly split), ids [...].
llvm::Expected<PickArgs> bindPickCommon(const StepBinder &s) {
  const TensorSlot &x = s.operand(0), &ids = s.operand(1);
  if (auto err = s.expectDType(ids, "ids", DType::I32))
    return err;
  return PickArgs{ids.numel(), x.shape.back(), x.offset.back()};
}

} // namespace

llvm::Expected<ReshapeArgs> meg::runtime::bindReshape(const StepBinder &s) {
  if (s.operand(0).dtype != s.result().dtype)
    return s.error("reshape changes the dtype");
  if (s.operand(0).numel() != s.result().numel())
    return s.error(llvm::formatv("reshape of {0} elements into {1}", s.operand(0).numel(), s.result().numel()));
  return ReshapeArgs{s.result().bytes()};
}

llvm::Expected<TransposeArgs> meg::runtime::bindTranspose(const StepBinder &s) {
  if (auto err = expectLayoutOperand(s))
    return err;
  auto perm = s.intsAttr("perm");
  if (!perm)
    return perm.takeError();
  const TensorSlot &x = s.operand(0);
  size_t rank = x.shape.size();
  std::vector<int> p(perm->begin(), perm->end());
  std::vector<bool> seen(rank, false);
  if (p.size() != rank)
    return s.error(llvm::formatv("perm has {0} entries for rank {1}", p.size(), rank));
  Shape expected;
  for (int d : p) {
    if (d < 0 || size_t(d) >= rank || seen[d])
      return s.error("perm is not a permutation of the operand's dims");
    seen[d] = true;
    expected.push_back(x.shape[d]);
  }
  if (auto err = s.expectResultShape(expected))
    return err;
  return TransposeArgs{x.shape, std::move(p)};
}

llvm::Expected<SliceArgs> meg::runtime::bindSlice(const StepBinder &s) {
  if (auto err = expectLayoutOperand(s))
    return err;
  const TensorSlot &x = s.operand(0), &r = s.result();
  auto dim = s.dimAttr("dim", x.shape.size());
  if (!dim)
    return dim.takeError();
  auto start = s.intAttr("start");
  if (!start)
    return start.takeError();
  auto size = s.intAttr("size");
  if (!size)
    return size.takeError();
  if (r.shape.size() != x.shape.size())
    return s.error("result rank differs from the operand's");
  // Global slice [start, start + size) of x's dim; this rank produces the result's shard of it from x's shard.
  // The plan verifier bounds shapes and offsets by ir::kMaxElements; start is bounded here before any sum.
  int64_t length = r.shape[*dim];
  bool fits = *start >= 0 && *start <= ir::kMaxElements && *size == r.globalShape[*dim];
  int64_t localStart = fits ? *start + r.offset[*dim] - x.offset[*dim] : -1;
  if (localStart < 0 || length < 0 || length > x.shape[*dim] || localStart > x.shape[*dim] - length)
    return s.error(llvm::formatv("slice of {0} from {1} in dim {2} does not fit the operand shard {3} at offset {4}",
                                 *size, *start, *dim, shapeStr(x.shape), shapeStr(x.offset)));
  Shape expected = x.shape;
  expected[*dim] = length;
  if (auto err = s.expectResultShape(expected))
    return err;
  return SliceArgs{x.shape, *dim, localStart, length};
}

llvm::Expected<SliceGradArgs> meg::runtime::bindSliceGrad(const StepBinder &s) {
  if (auto err = s.expectDTypes(DType::F32))
    return err;
  const TensorSlot &dy = s.operand(0), &r = s.result();
  auto dim = s.intAttr("dim");
  if (!dim)
    return dim.takeError();
  auto start = s.intAttr("start");
  if (!start)
    return start.takeError();
  if (*dim < 0 || size_t(*dim) >= dy.shape.size() || r.shape.size() != dy.shape.size())
    return s.error(llvm::formatv("dim {0} is out of range for rank {1}", *dim, dy.shape.size()));
  if (auto err = s.expectWholeDim(0, unsigned(*dim), "slice_grad needs the whole sliced dim"))
    return err;
  int d = int(*dim);
  int64_t length = dy.shape[d];
  if (*start < 0 || length > r.shape[d] || *start > r.shape[d] - length)
    return s.error(llvm::formatv("range of {0} from {1} is outside the result dim of size {2}", length, *start,
                                 r.shape[d]));
  if (auto err = s.expectKernelRank(r, "result"))
    return err;
  return SliceGradArgs{r.shape, d, *start, length};
}

llvm::Expected<SelectArgs> meg::runtime::bindSelect(const StepBinder &s) {
  if (auto err = expectLayoutOperand(s))
    return err;
  const TensorSlot &x = s.operand(0);
  auto dim = s.dimAttr("dim", x.shape.size());
  if (!dim)
    return dim.takeError();
  auto index = s.intAttr("index");
  if (!index)
    return index.takeError();
  int64_t local = *index - x.offset[*dim];
  if (local < 0 || local >= x.shape[*dim])
    return s.error(llvm::formatv("index {0} of dim {1} is not in the operand shard {2} at offset {3}", *index, *dim,
                                 shapeStr(x.shape), shapeStr(x.offset)));
  Shape expected = x.shape;
  expected.erase(expected.begin() + *dim);
  if (auto err = s.expectResultShape(expected))
    return err;
  return SelectArgs{x.shape, *dim, local};
}

llvm::Expected<SelectGradArgs> meg::runtime::bindSelectGrad(const StepBinder &s) {
  if (auto err = s.expectDTypes(DType::F32))
    return err;
  const TensorSlot &dy = s.operand(0), &r = s.result();
  auto dim = s.intAttr("dim");
  if (!dim)
    return dim.takeError();
  auto index = s.intAttr("index");
  if (!index)
    return index.takeError();
  if (*dim < 0 || size_t(*dim) >= r.shape.size() || r.shape.size() != dy.shape.size() + 1)
    return s.error(llvm::formatv("dim {0} is out of range for rank {1}", *dim, r.shape.size()));
  if (!r.isWhole() && r.shape[*dim] != r.globalShape[*dim])
    return s.error("select_grad needs the whole selected dim");
  if (*index < 0 || *index >= r.shape[*dim])
    return s.error(llvm::formatv("index {0} is outside the result dim of size {1}", *index, r.shape[*dim]));
  if (auto err = s.expectKernelRank(r, "result"))
    return err;
  return SelectGradArgs{r.shape, int(*dim), *index};
}

llvm::Expected<ReduceArgs> meg::runtime::bindReduceSum(const StepBinder &s) { return bindReduce(s, false); }
llvm::Expected<ReduceArgs> meg::runtime::bindReduceMax(const StepBinder &s) { return bindReduce(s, true); }

llvm::Expected<PickArgs> meg::runtime::bindPick(const StepBinder &s) {
  const TensorSlot &x = s.operand(0), &ids = s.operand(1);
  if (auto err = s.expectDType(x, "x", DType::F32))
    return err;
  if (auto err = s.expectDType(ids, "ids", DType::I32))
    return err;
  if (auto err = s.expectDType(s.result(), "result", DType::F32))
    return err;
  if (x.shape.empty() || llvm::ArrayRef<int64_t>(x.shape).drop_back() != llvm::ArrayRef<int64_t>(ids.shape))
    return s.error("x " + shapeStr(x.shape) + " and ids " + shapeStr(ids.shape) + " do not match");
  if (auto err = s.expectResultShape(ids.shape))
    return err;
  return bindPickCommon(s);
}

llvm::Expected<PickGradArgs> meg::runtime::bindPickGrad(const StepBinder &s) {
  const TensorSlot &x = s.operand(0), &ids = s.operand(1), &dy = s.operand(2);
  if (auto err = s.expectDType(ids, "ids", DType::I32))
    return err;
  if (auto err = s.expectDType(dy, "dy", DType::F32))
    return err;
  if (x.shape.empty() || llvm::ArrayRef<int64_t>(x.shape).drop_back() != llvm::ArrayRef<int64_t>(ids.shape) ||
      dy.shape != ids.shape || s.result().shape != x.shape)
    return s.error("x " + shapeStr(x.shape) + ", ids " + shapeStr(ids.shape) + " and dy " + shapeStr(dy.shape) +
                   " do not match");
  auto args = bindPickCommon(s);
  if (!args)
    return args.takeError();
  return PickGradArgs{*args};
}

llvm::Expected<ValidMaskArgs> meg::runtime::bindValidMask(const StepBinder &s) {
  auto ignore = s.intAttr("ignore");
  if (!ignore)
    return ignore.takeError();
  if (auto err = s.expectDType(s.operand(0), "ids", DType::I32))
    return err;
  if (auto err = s.expectDType(s.result(), "result", DType::F32))
    return err;
  if (auto err = s.expectResultShape(s.operand(0).shape))
    return err;
  return ValidMaskArgs{s.operand(0).numel(), int32_t(*ignore)};
}
