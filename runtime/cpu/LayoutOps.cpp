//===- LayoutOps.cpp - CPU adapters: layout, reductions, loss pieces ----------===//
//
// Layout ops move 4-byte elements (f32 or i32) without looking at them. Attributes are in global coordinates:
// slice and select translate them to this rank's shard with the operand's offset. pick's column offset is the
// offset of x's last (vocabulary) dim, so a vocab-split rank picks only the targets it holds (0 elsewhere).
//
//===----------------------------------------------------------------------===//
#include "runtime/cpu/CpuOps.h"

#include "kernels/cpu/Layout.h"
#include "kernels/cpu/Reduce.h"

#include "llvm/Support/FormatVariadic.h"

#include <cstring>

using namespace meg;
using namespace meg::runtime;
using namespace meg::runtime::cpu;
namespace k = meg::kernels::cpu;

namespace {

/// Operand 0 and the result share a 4-byte dtype.
llvm::Error expectMovable(const CpuStep &s) {
  DType t = s.operand(0).dtype;
  if (t != DType::F32 && t != DType::I32)
    return s.error(llvm::formatv("{0} data is not supported by the cpu backend", dtypeName(t)));
  if (s.result().dtype != t)
    return s.error(llvm::formatv("result dtype {0} differs from the operand's {1}", dtypeName(s.result().dtype),
                                 dtypeName(t)));
  if (s.operand(0).shape.size() > size_t(kKernelMaxRank))
    return s.error(llvm::formatv("rank {0} is above the kernels' limit {1}", s.operand(0).shape.size(), kKernelMaxRank));
  return llvm::Error::success();
}

llvm::Expected<int> dimAttr(const CpuStep &s, llvm::StringRef key, size_t rank) {
  auto dim = s.intAttr(key);
  if (!dim)
    return dim.takeError();
  if (*dim < 0 || size_t(*dim) >= rank)
    return s.error(llvm::formatv("{0} {1} is out of range for rank {2}", key, *dim, rank));
  return int(*dim);
}

llvm::Expected<CpuKernel> reduce(CpuStep &s, bool isMax) {
  if (auto err = s.expectDTypes(DType::F32))
    return err;
  const TensorSlot &x = s.operand(0);
  if (x.shape.size() > size_t(kKernelMaxRank))
    return s.error(llvm::formatv("rank {0} is above the kernels' limit {1}", x.shape.size(), kKernelMaxRank));
  auto dims = s.intsAttr("dims");
  if (!dims)
    return dims.takeError();
  auto keepdim = s.boolAttr("keepdim", false);
  if (!keepdim)
    return keepdim.takeError();
  std::vector<char> mask(x.shape.size(), 0);
  for (int64_t d : *dims) {
    if (d < 0 || size_t(d) >= x.shape.size())
      return s.error(llvm::formatv("reduced dim {0} is out of range for rank {1}", d, x.shape.size()));
    mask[d] = 1;
  }
  Shape expected;
  for (size_t d = 0; d < x.shape.size(); ++d) {
    if (!mask[d])
      expected.push_back(x.shape[d]);
    else if (*keepdim)
      expected.push_back(1);
  }
  if (auto err = s.expectResultShape(expected))
    return err;
  auto flags = std::make_shared<std::unique_ptr<bool[]>>(new bool[std::max<size_t>(1, mask.size())]);
  for (size_t d = 0; d < mask.size(); ++d)
    (*flags)[d] = mask[d];
  return [flags, isMax, &s](const CpuRunArgs &) -> llvm::Error {
    const TensorSlot &x = s.operand(0);
    if (isMax)
      k::reduceMax(s.f(0), x.shape.data(), int(x.shape.size()), flags->get(), s.fout());
    else
      k::reduceSum(s.f(0), x.shape.data(), int(x.shape.size()), flags->get(), s.fout());
    return llvm::Error::success();
  };
}

} // namespace

llvm::Expected<CpuKernel> meg::runtime::cpu::cpuReshape(CpuStep &s) {
  if (s.operand(0).dtype != s.result().dtype)
    return s.error("reshape changes the dtype");
  if (s.operand(0).numel() != s.result().numel())
    return s.error(llvm::formatv("reshape of {0} elements into {1}", s.operand(0).numel(), s.result().numel()));
  size_t bytes = size_t(s.result().bytes());
  return [bytes, &s](const CpuRunArgs &) -> llvm::Error {
    if (s.in[0] != s.out[0])
      std::memcpy(s.out[0], s.in[0], bytes);
    return llvm::Error::success();
  };
}

llvm::Expected<CpuKernel> meg::runtime::cpu::cpuTranspose(CpuStep &s) {
  if (auto err = expectMovable(s))
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
  return [p, &s](const CpuRunArgs &) -> llvm::Error {
    const TensorSlot &x = s.operand(0);
    k::transpose(s.f(0), x.shape.data(), int(x.shape.size()), p.data(), s.fout());
    return llvm::Error::success();
  };
}

llvm::Expected<CpuKernel> meg::runtime::cpu::cpuSlice(CpuStep &s) {
  if (auto err = expectMovable(s))
    return err;
  const TensorSlot &x = s.operand(0), &r = s.result();
  auto dim = dimAttr(s, "dim", x.shape.size());
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
  int64_t localStart = *start + r.offset[*dim] - x.offset[*dim], length = r.shape[*dim];
  if (localStart < 0 || length < 0 || localStart + length > x.shape[*dim] || r.globalShape[*dim] != *size)
    return s.error(llvm::formatv("slice [{0}, {1}) of dim {2} does not fit the operand shard {3} at offset {4}",
                                 *start, *start + *size, *dim, shapeStr(x.shape), shapeStr(x.offset)));
  Shape expected = x.shape;
  expected[*dim] = length;
  if (auto err = s.expectResultShape(expected))
    return err;
  int d = *dim;
  return [d, localStart, length, &s](const CpuRunArgs &) -> llvm::Error {
    const TensorSlot &x = s.operand(0);
    k::slice(s.f(0), x.shape.data(), int(x.shape.size()), d, localStart, length, s.fout());
    return llvm::Error::success();
  };
}

llvm::Expected<CpuKernel> meg::runtime::cpu::cpuSelect(CpuStep &s) {
  if (auto err = expectMovable(s))
    return err;
  const TensorSlot &x = s.operand(0);
  auto dim = dimAttr(s, "dim", x.shape.size());
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
  int d = *dim;
  return [d, local, &s](const CpuRunArgs &) -> llvm::Error {
    const TensorSlot &x = s.operand(0);
    k::select(s.f(0), x.shape.data(), int(x.shape.size()), d, local, s.fout());
    return llvm::Error::success();
  };
}

llvm::Expected<CpuKernel> meg::runtime::cpu::cpuReduceSum(CpuStep &s) { return reduce(s, /*isMax=*/false); }
llvm::Expected<CpuKernel> meg::runtime::cpu::cpuReduceMax(CpuStep &s) { return reduce(s, /*isMax=*/true); }

llvm::Expected<CpuKernel> meg::runtime::cpu::cpuPick(CpuStep &s) {
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
  int64_t rows = ids.numel(), cols = x.shape.back(), colOffset = x.offset.back();
  return [=, &s](const CpuRunArgs &) -> llvm::Error {
    k::pick(s.f(0), s.i32(1), rows, cols, colOffset, s.fout());
    return llvm::Error::success();
  };
}

llvm::Expected<CpuKernel> meg::runtime::cpu::cpuValidMask(CpuStep &s) {
  auto ignore = s.intAttr("ignore");
  if (!ignore)
    return ignore.takeError();
  if (auto err = s.expectDType(s.operand(0), "ids", DType::I32))
    return err;
  if (auto err = s.expectDType(s.result(), "result", DType::F32))
    return err;
  if (auto err = s.expectResultShape(s.operand(0).shape))
    return err;
  int64_t n = s.operand(0).numel();
  int32_t ig = int32_t(*ignore);
  return [=, &s](const CpuRunArgs &) -> llvm::Error {
    k::validMask(s.i32(0), n, ig, s.fout());
    return llvm::Error::success();
  };
}
