//===- GradOps.cpp - CPU adapters: constants, broadcast and gradient ops -------===//
//
// The ops the autodiff pass emits that are not compositions of forward ops. Sharding-aware arguments, as for the
// forward adapters: the vocab offset of embedding_grad is offset[0] of its table operand (the table only carries
// the layout), pick_grad's column offset is the last-dim offset of its x operand, attention_grad's head and batch
// offsets come from q (prepareAttention). layernorm_grad recomputes the row statistics instead of keeping them.
//
//===----------------------------------------------------------------------===//
#include "runtime/cpu/CpuOps.h"

#include "kernels/cpu/Elementwise.h"
#include "kernels/cpu/Embedding.h"
#include "kernels/cpu/Gelu.h"
#include "kernels/cpu/LayerNorm.h"
#include "kernels/cpu/Layout.h"
#include "kernels/cpu/Reduce.h"

#include "llvm/Support/FormatVariadic.h"

#include <cstring>

using namespace meg;
using namespace meg::runtime;
using namespace meg::runtime::cpu;
namespace k = meg::kernels::cpu;

llvm::Expected<CpuKernel> meg::runtime::cpu::cpuFill(CpuStep &s) {
  auto value = s.floatAttr("value");
  if (!value)
    return value.takeError();
  if (auto err = s.expectDType(s.result(), "result", DType::F32))
    return err;
  int64_t n = s.result().numel();
  float v = float(*value);
  return [=, &s](const CpuRunArgs &) -> llvm::Error {
    k::fill(s.fout(), n, v);
    return llvm::Error::success();
  };
}

llvm::Expected<CpuKernel> meg::runtime::cpu::cpuBroadcast(CpuStep &s) {
  if (auto err = s.expectDTypes(DType::F32))
    return err;
  const TensorSlot &x = s.operand(0), &r = s.result();
  if (r.shape.size() > size_t(kKernelMaxRank) || x.shape.size() > r.shape.size())
    return s.error("cannot broadcast " + shapeStr(x.shape) + " to " + shapeStr(r.shape));
  size_t lead = r.shape.size() - x.shape.size();
  for (size_t d = 0; d < x.shape.size(); ++d)
    if (x.shape[d] != 1 && x.shape[d] != r.shape[lead + d])
      return s.error("cannot broadcast " + shapeStr(x.shape) + " to " + shapeStr(r.shape));
  return [&s](const CpuRunArgs &) -> llvm::Error {
    const TensorSlot &x = s.operand(0), &r = s.result();
    k::broadcastTo(s.f(0), x.shape.data(), int(x.shape.size()), r.shape.data(), int(r.shape.size()), s.fout());
    return llvm::Error::success();
  };
}

llvm::Expected<CpuKernel> meg::runtime::cpu::cpuGeluGrad(CpuStep &s) {
  auto gelu = geluForm(s);
  if (!gelu)
    return gelu.takeError();
  if (auto err = s.expectDTypes(DType::F32))
    return err;
  if (s.operand(1).shape != s.operand(0).shape)
    return s.error("dy " + shapeStr(s.operand(1).shape) + " differs from x " + shapeStr(s.operand(0).shape));
  if (auto err = s.expectResultShape(s.operand(0).shape))
    return err;
  k::GeluForm form = *gelu;
  int64_t n = s.operand(0).numel();
  return [=, &s](const CpuRunArgs &) -> llvm::Error {
    k::geluBackward(form, s.f(0), s.f(1), n, s.fout());
    return llvm::Error::success();
  };
}

llvm::Expected<CpuKernel> meg::runtime::cpu::cpuLayerNormGrad(CpuStep &s) {
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
  int64_t n = x.shape.back(), rows = n ? x.numel() / n : 0;
  if (s.operand(1).shape != Shape{n} || s.result(0).shape != x.shape || s.result(1).shape != Shape{n} ||
      s.result(2).shape != Shape{n})
    return s.error(llvm::formatv("gain and results must be [{0}] and {1}", n, shapeStr(x.shape)));
  s.scratchFloats = 2 * rows;
  float e = float(*eps);
  return [=, &s](const CpuRunArgs &args) -> llvm::Error {
    float *mean = args.scratch, *rstd = args.scratch + rows;
    k::layerNormStats(s.f(0), rows, n, e, mean, rstd);
    // dgain and dbias accumulate in the kernel: start from zero.
    std::memset(s.fout(1), 0, size_t(n) * sizeof(float));
    std::memset(s.fout(2), 0, size_t(n) * sizeof(float));
    k::layerNormBackward(s.f(0), s.f(1), mean, rstd, s.f(2), rows, n, s.fout(0), s.fout(1), s.fout(2));
    return llvm::Error::success();
  };
}

llvm::Expected<CpuKernel> meg::runtime::cpu::cpuAttentionGrad(CpuStep &s) {
  if (auto err = s.expectDType(s.operand(3), "dout", DType::F32))
    return err;
  if (s.operand(3).shape != s.operand(0).shape)
    return s.error("dout " + shapeStr(s.operand(3).shape) + " differs from q " + shapeStr(s.operand(0).shape));
  auto setup = prepareAttention(s, s.numOperands() == 5 ? std::optional<size_t>(4) : std::nullopt);
  if (!setup)
    return setup.takeError();
  return [a = *setup, &s](const CpuRunArgs &args) -> llvm::Error {
    k::attentionBackward(a.forRun(s, args), s.f(0), s.f(1), s.f(2), s.f(3), s.fout(0), s.fout(1), s.fout(2));
    return llvm::Error::success();
  };
}

llvm::Expected<CpuKernel> meg::runtime::cpu::cpuEmbeddingGrad(CpuStep &s) {
  const TensorSlot &table = s.operand(0), &ids = s.operand(1), &dy = s.operand(2);
  if (auto err = s.expectDType(ids, "ids", DType::I32))
    return err;
  if (auto err = s.expectDType(dy, "dy", DType::F32))
    return err;
  if (table.shape.size() != 2 || s.result().shape != table.shape)
    return s.error("the result must have the table's shape " + shapeStr(table.shape));
  if (auto err = s.expectWholeDim(0, 1, "the embedding dim cannot be split"))
    return err;
  Shape expected = ids.shape;
  expected.push_back(table.shape[1]);
  if (dy.shape != expected)
    return s.error("dy " + shapeStr(dy.shape) + " must be " + shapeStr(expected));
  int64_t rows = table.shape[0], dim = table.shape[1], tokens = ids.numel(), rowOffset = table.offset[0];
  return [=, &s](const CpuRunArgs &) -> llvm::Error {
    std::memset(s.fout(), 0, size_t(rows * dim) * sizeof(float));
    k::embeddingBackward(s.f(2), s.i32(1), tokens, rowOffset, rows, dim, s.fout());
    return llvm::Error::success();
  };
}

llvm::Expected<CpuKernel> meg::runtime::cpu::cpuPickGrad(CpuStep &s) {
  const TensorSlot &x = s.operand(0), &ids = s.operand(1), &dy = s.operand(2);
  if (auto err = s.expectDType(ids, "ids", DType::I32))
    return err;
  if (auto err = s.expectDType(dy, "dy", DType::F32))
    return err;
  if (x.shape.empty() || llvm::ArrayRef<int64_t>(x.shape).drop_back() != llvm::ArrayRef<int64_t>(ids.shape) ||
      dy.shape != ids.shape || s.result().shape != x.shape)
    return s.error("x " + shapeStr(x.shape) + ", ids " + shapeStr(ids.shape) + " and dy " + shapeStr(dy.shape) +
                   " do not match");
  int64_t cols = x.shape.back(), rows = ids.numel(), colOffset = x.offset.back();
  return [=, &s](const CpuRunArgs &) -> llvm::Error {
    k::pickBackward(s.f(2), s.i32(1), rows, cols, colOffset, s.fout());
    return llvm::Error::success();
  };
}

llvm::Expected<CpuKernel> meg::runtime::cpu::cpuSliceGrad(CpuStep &s) {
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
  int64_t st = *start, length = dy.shape[d];
  if (st < 0 || st + length > r.shape[d])
    return s.error(llvm::formatv("range [{0}, {1}) is outside the result dim of size {2}", st, st + length,
                                 r.shape[d]));
  return [=, &s](const CpuRunArgs &) -> llvm::Error {
    const TensorSlot &r = s.result();
    k::sliceBackward(s.f(0), r.shape.data(), int(r.shape.size()), d, st, length, s.fout());
    return llvm::Error::success();
  };
}

llvm::Expected<CpuKernel> meg::runtime::cpu::cpuSelectGrad(CpuStep &s) {
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
  int d = int(*dim);
  int64_t idx = *index;
  return [=, &s](const CpuRunArgs &) -> llvm::Error {
    const TensorSlot &r = s.result();
    k::selectBackward(s.f(0), r.shape.data(), int(r.shape.size()), d, idx, s.fout());
    return llvm::Error::success();
  };
}
