//===- LayoutOps.cpp - CUDA adapters: layout, reductions, loss pieces ----------===//
//
// The CUDA counterparts of runtime/cpu/LayoutOps.cpp: attributes are global coordinates, translated to this rank's
// shard with the operand's offset exactly as there; pick's column offset is x's last-dim offset.
//
//===----------------------------------------------------------------------===//
#include "runtime/cuda/CudaOps.h"

#include "kernels/cuda/Kernels.h"

#include <memory>

using namespace meg;
using namespace meg::runtime;
using namespace meg::runtime::cuda;
namespace k = meg::kernels::cuda;

namespace {

llvm::Expected<CudaKernel> reduce(CudaStep &s, CpuAdapter cpuAdapter, bool isMax) {
  if (auto err = validate(s, cpuAdapter))
    return err;
  auto dims = s.intsAttr("dims");
  if (!dims)
    return dims.takeError();
  auto flags = std::make_shared<std::vector<char>>(s.operand(0).shape.size(), 0);
  for (int64_t d : *dims)
    (*flags)[size_t(d)] = 1;
  return [flags, isMax, &s](const CudaRunArgs &args) -> llvm::Error {
    const TensorSlot &x = s.operand(0);
    bool mask[k::kMaxRank] = {};
    for (size_t d = 0; d < flags->size(); ++d)
      mask[d] = (*flags)[d];
    return s.check(k::reduce(isMax, s.f(0), x.shape.data(), int(x.shape.size()), mask, s.fout(), args.stream));
  };
}

} // namespace

llvm::Expected<CudaKernel> meg::runtime::cuda::cudaReshape(CudaStep &s) {
  if (auto err = validate(s, &cpu::cpuReshape))
    return err;
  size_t bytes = size_t(s.result().bytes());
  return [bytes, &s](const CudaRunArgs &args) -> llvm::Error {
    if (s.in[0] == s.out[0] || bytes == 0)
      return llvm::Error::success();
    return s.check(cudaMemcpyAsync(s.out[0], s.in[0], bytes, cudaMemcpyDeviceToDevice, args.stream), "reshape copy");
  };
}

llvm::Expected<CudaKernel> meg::runtime::cuda::cudaTranspose(CudaStep &s) {
  if (auto err = validate(s, &cpu::cpuTranspose))
    return err;
  auto perm = s.intsAttr("perm");
  if (!perm)
    return perm.takeError();
  std::vector<int> p(perm->begin(), perm->end());
  return [p, &s](const CudaRunArgs &args) -> llvm::Error {
    const TensorSlot &x = s.operand(0);
    return s.check(k::transpose(s.in[0], x.shape.data(), int(x.shape.size()), p.data(), s.out[0], args.stream));
  };
}

llvm::Expected<CudaKernel> meg::runtime::cuda::cudaSlice(CudaStep &s) {
  if (auto err = validate(s, &cpu::cpuSlice))
    return err;
  auto dim = s.intAttr("dim");
  if (!dim)
    return dim.takeError();
  auto start = s.intAttr("start");
  if (!start)
    return start.takeError();
  const TensorSlot &x = s.operand(0), &r = s.result();
  int d = int(*dim);
  int64_t localStart = *start + r.offset[size_t(d)] - x.offset[size_t(d)], length = r.shape[size_t(d)];
  return [=, &s](const CudaRunArgs &args) -> llvm::Error {
    const TensorSlot &x = s.operand(0);
    return s.check(k::slice(s.in[0], x.shape.data(), int(x.shape.size()), d, localStart, length, s.out[0],
                            args.stream));
  };
}

llvm::Expected<CudaKernel> meg::runtime::cuda::cudaSelect(CudaStep &s) {
  if (auto err = validate(s, &cpu::cpuSelect))
    return err;
  auto dim = s.intAttr("dim");
  if (!dim)
    return dim.takeError();
  auto index = s.intAttr("index");
  if (!index)
    return index.takeError();
  int d = int(*dim);
  int64_t local = *index - s.operand(0).offset[size_t(d)];
  return [=, &s](const CudaRunArgs &args) -> llvm::Error {
    const TensorSlot &x = s.operand(0);
    return s.check(k::select(s.in[0], x.shape.data(), int(x.shape.size()), d, local, s.out[0], args.stream));
  };
}

llvm::Expected<CudaKernel> meg::runtime::cuda::cudaReduceSum(CudaStep &s) {
  return reduce(s, &cpu::cpuReduceSum, /*isMax=*/false);
}
llvm::Expected<CudaKernel> meg::runtime::cuda::cudaReduceMax(CudaStep &s) {
  return reduce(s, &cpu::cpuReduceMax, /*isMax=*/true);
}

llvm::Expected<CudaKernel> meg::runtime::cuda::cudaPick(CudaStep &s) {
  if (auto err = validate(s, &cpu::cpuPick))
    return err;
  const TensorSlot &x = s.operand(0), &ids = s.operand(1);
  int64_t rows = ids.numel(), cols = x.shape.back(), colOffset = x.offset.back();
  return [=, &s](const CudaRunArgs &args) -> llvm::Error {
    return s.check(k::pick(s.f(0), s.i32(1), rows, cols, colOffset, s.fout(), args.stream));
  };
}

llvm::Expected<CudaKernel> meg::runtime::cuda::cudaValidMask(CudaStep &s) {
  if (auto err = validate(s, &cpu::cpuValidMask))
    return err;
  auto ignore = s.intAttr("ignore");
  if (!ignore)
    return ignore.takeError();
  int64_t n = s.operand(0).numel();
  int32_t ig = int32_t(*ignore);
  return [=, &s](const CudaRunArgs &args) -> llvm::Error {
    return s.check(k::validMask(s.i32(0), n, ig, s.fout(), args.stream));
  };
}
