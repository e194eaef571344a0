//===- LayoutOps.cpp - CPU launches: layout, reductions, loss pieces ----------===//
//
// Layout ops move 4-byte elements (f32 or i32) without looking at them; slice, select and shard run on the local
// start/index the binder derived from the global attributes and the shard offsets.
//
//===----------------------------------------------------------------------===//
#include "runtime/cpu/CpuOps.h"

#include "kernels/cpu/Layout.h"
#include "kernels/cpu/Reduce.h"

#include <cstring>

using namespace meg;
using namespace meg::runtime;
using namespace meg::runtime::cpu;
namespace k = meg::kernels::cpu;

llvm::Expected<CpuKernel> meg::runtime::cpu::launch(const ReshapeArgs &a, CpuStep &s) {
  return infallible([a, &s](const CpuRunArgs &) {
    if (s.in[0] != s.out[0])
      std::memcpy(s.out[0], s.in[0], size_t(a.bytes));
  });
}

llvm::Expected<CpuKernel> meg::runtime::cpu::launch(const TransposeArgs &a, CpuStep &s) {
  return infallible([a, &s](const CpuRunArgs &) {
    k::transpose(s.f(0), a.shape.data(), int(a.shape.size()), a.perm.data(), s.fout());
  });
}

llvm::Expected<CpuKernel> meg::runtime::cpu::launch(const SliceArgs &a, CpuStep &s) {
  return infallible([a, &s](const CpuRunArgs &) {
    k::slice(s.f(0), a.shape.data(), int(a.shape.size()), a.dim, a.start, a.length, s.fout());
  });
}

llvm::Expected<CpuKernel> meg::runtime::cpu::launch(const SliceGradArgs &a, CpuStep &s) {
  return infallible([a, &s](const CpuRunArgs &) {
    k::sliceBackward(s.f(0), a.shape.data(), int(a.shape.size()), a.dim, a.start, a.length, s.fout());
  });
}

llvm::Expected<CpuKernel> meg::runtime::cpu::launch(const SelectArgs &a, CpuStep &s) {
  return infallible([a, &s](const CpuRunArgs &) {
    k::select(s.f(0), a.shape.data(), int(a.shape.size()), a.dim, a.index, s.fout());
  });
}

llvm::Expected<CpuKernel> meg::runtime::cpu::launch(const SelectGradArgs &a, CpuStep &s) {
  return infallible([a, &s](const CpuRunArgs &) {
    k::selectBackward(s.f(0), a.shape.data(), int(a.shape.size()), a.dim, a.index, s.fout());
  });
}

llvm::Expected<CpuKernel> meg::runtime::cpu::launch(const ReduceArgs &a, CpuStep &s) {
  return infallible([a, &s](const CpuRunArgs &) {
    (a.isMax ? k::reduceMax : k::reduceSum)(s.f(0), a.shape.data(), int(a.shape.size()), a.reduced, s.fout());
  });
}

llvm::Expected<CpuKernel> meg::runtime::cpu::launch(const PickArgs &a, CpuStep &s) {
  return infallible([a, &s](const CpuRunArgs &) { k::pick(s.f(0), s.i32(1), a.rows, a.cols, a.colOffset, s.fout()); });
}

llvm::Expected<CpuKernel> meg::runtime::cpu::launch(const PickGradArgs &a, CpuStep &s) {
  return infallible(
      [a, &s](const CpuRunArgs &) { k::pickBackward(s.f(2), s.i32(1), a.rows, a.cols, a.colOffset, s.fout()); });
}

llvm::Expected<CpuKernel> meg::runtime::cpu::launch(const ValidMaskArgs &a, CpuStep &s) {
  return infallible([a, &s](const CpuRunArgs &) { k::validMask(s.i32(0), a.n, a.ignore, s.fout()); });
}
