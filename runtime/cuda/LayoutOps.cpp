//===- LayoutOps.cpp - CUDA launches: layout, reductions, loss pieces ----------===//
//
// Layout ops move 4-byte elements (f32 or i32), or 2-byte ones for a native 16-bit step (s.storage); slice, select
// and shard run on the local start/index the binder derived from the global attributes and the shard offsets.
// slice_grad, select_grad and the reductions are templated on the storage type.
//
//===----------------------------------------------------------------------===//
#include "runtime/cuda/CudaOps.h"

#include "kernels/Half.h"
#include "kernels/cuda/Kernels.h"

using namespace meg;
using namespace meg::runtime;
using namespace meg::runtime::cuda;
namespace k = meg::kernels::cuda;

llvm::Expected<CudaKernel> meg::runtime::cuda::launch(const ReshapeArgs &a, CudaStep &s) {
  return [a, &s](const CudaRunArgs &run) -> llvm::Error {
    if (s.in[0] == s.out[0] || a.bytes == 0)
      return llvm::Error::success();
    return s.check(cudaMemcpyAsync(s.out[0], s.in[0], size_t(a.bytes), cudaMemcpyDeviceToDevice, run.stream),
                   "reshape copy");
  };
}

namespace {

/// The element size a layout step moves: 2 for a native 16-bit step, else 4 (f32, i32, fp32 copies).
int moveBytes(const CudaStep &s) { return kernels::elemBytes(s.storage.elem); }

} // namespace

llvm::Expected<CudaKernel> meg::runtime::cuda::launch(const TransposeArgs &a, CudaStep &s) {
  return [a, &s, bytes = moveBytes(s)](const CudaRunArgs &run) -> llvm::Error {
    return s.check(
        k::transpose(s.in[0], a.shape.data(), int(a.shape.size()), a.perm.data(), s.out[0], run.stream, bytes));
  };
}

llvm::Expected<CudaKernel> meg::runtime::cuda::launch(const SliceArgs &a, CudaStep &s) {
  return [a, &s, bytes = moveBytes(s)](const CudaRunArgs &run) -> llvm::Error {
    return s.check(
        k::slice(s.in[0], a.shape.data(), int(a.shape.size()), a.dim, a.start, a.length, s.out[0], run.stream, bytes));
  };
}

llvm::Expected<CudaKernel> meg::runtime::cuda::launch(const SliceGradArgs &a, CudaStep &s) {
  return withStorage(s.storage.elem, [&](auto tag) -> CudaKernel {
    using T = typename decltype(tag)::type;
    return [a, &s](const CudaRunArgs &run) -> llvm::Error {
      return s.check(k::sliceBackward(s.inAs<T>(0), a.shape.data(), int(a.shape.size()), a.dim, a.start, a.length,
                                      s.outAs<T>(), run.stream));
    };
  });
}

llvm::Expected<CudaKernel> meg::runtime::cuda::launch(const SelectArgs &a, CudaStep &s) {
  return [a, &s, bytes = moveBytes(s)](const CudaRunArgs &run) -> llvm::Error {
    return s.check(
        k::select(s.in[0], a.shape.data(), int(a.shape.size()), a.dim, a.index, s.out[0], run.stream, bytes));
  };
}

llvm::Expected<CudaKernel> meg::runtime::cuda::launch(const SelectGradArgs &a, CudaStep &s) {
  return withStorage(s.storage.elem, [&](auto tag) -> CudaKernel {
    using T = typename decltype(tag)::type;
    return [a, &s](const CudaRunArgs &run) -> llvm::Error {
      return s.check(k::selectBackward(s.inAs<T>(0), a.shape.data(), int(a.shape.size()), a.dim, a.index,
                                       s.outAs<T>(), run.stream));
    };
  });
}

llvm::Expected<CudaKernel> meg::runtime::cuda::launch(const ReduceArgs &a, CudaStep &s) {
  return withStorage(s.storage.elem, [&](auto tag) -> CudaKernel {
    using T = typename decltype(tag)::type;
    return [a, &s](const CudaRunArgs &run) -> llvm::Error {
      return s.check(k::reduce(a.isMax, s.inAs<T>(0), a.shape.data(), int(a.shape.size()), a.reduced, s.outAs<T>(),
                               run.stream));
    };
  });
}

llvm::Expected<CudaKernel> meg::runtime::cuda::launch(const PickArgs &a, CudaStep &s) {
  return [a, &s](const CudaRunArgs &run) -> llvm::Error {
    return s.check(k::pick(s.f(0), s.i32(1), a.rows, a.cols, a.colOffset, s.fout(), run.stream));
  };
}

llvm::Expected<CudaKernel> meg::runtime::cuda::launch(const PickGradArgs &a, CudaStep &s) {
  return [a, &s](const CudaRunArgs &run) -> llvm::Error {
    return s.check(k::pickBackward(s.f(2), s.i32(1), a.rows, a.cols, a.colOffset, s.fout(), run.stream));
  };
}

llvm::Expected<CudaKernel> meg::runtime::cuda::launch(const ValidMaskArgs &a, CudaStep &s) {
  return [a, &s](const CudaRunArgs &run) -> llvm::Error {
    return s.check(k::validMask(s.i32(0), a.n, a.ignore, s.fout(), run.stream));
  };
}
