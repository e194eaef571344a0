//===- GradOps.cpp - CUDA adapters: constants, broadcast and gradient ops -------===//
//
// The CUDA counterparts of runtime/cpu/GradOps.cpp (same sharding-aware arguments). layernorm_grad and
// attention_grad recompute their statistics into device scratch; embedding_grad is deterministic (no atomics).
//
//===----------------------------------------------------------------------===//
#include "runtime/cuda/CudaOps.h"

#include "kernels/cuda/Kernels.h"

using namespace meg;
using namespace meg::runtime;
using namespace meg::runtime::cuda;
namespace k = meg::kernels::cuda;
namespace kc = meg::kernels::cpu;

llvm::Expected<CudaKernel> meg::runtime::cuda::cudaFill(CudaStep &s) {
  if (auto err = validate(s, &cpu::cpuFill))
    return err;
  auto value = s.floatAttr("value");
  if (!value)
    return value.takeError();
  int64_t n = s.result().numel();
  float v = float(*value);
  return [=, &s](const CudaRunArgs &args) -> llvm::Error { return s.check(k::fill(s.fout(), n, v, args.stream)); };
}

llvm::Expected<CudaKernel> meg::runtime::cuda::cudaBroadcast(CudaStep &s) {
  if (auto err = validate(s, &cpu::cpuBroadcast))
    return err;
  return [&s](const CudaRunArgs &args) -> llvm::Error {
    const TensorSlot &x = s.operand(0), &r = s.result();
    return s.check(k::broadcastTo(s.f(0), x.shape.data(), int(x.shape.size()), r.shape.data(), int(r.shape.size()),
                                  s.fout(), args.stream));
  };
}

llvm::Expected<CudaKernel> meg::runtime::cuda::cudaGeluGrad(CudaStep &s) {
  if (auto err = validate(s, &cpu::cpuGeluGrad))
    return err;
  auto form = cpu::geluForm(s);
  if (!form)
    return form.takeError();
  kc::GeluForm f = *form;
  int64_t n = s.operand(0).numel();
  return [=, &s](const CudaRunArgs &args) -> llvm::Error {
    return s.check(k::geluBackward(f, s.f(0), s.f(1), n, s.fout(), args.stream));
  };
}

llvm::Expected<CudaKernel> meg::runtime::cuda::cudaLayerNormGrad(CudaStep &s) {
  if (auto err = validate(s, &cpu::cpuLayerNormGrad))
    return err;
  auto eps = s.floatAttr("eps");
  if (!eps)
    return eps.takeError();
  const TensorSlot &x = s.operand(0);
  int64_t n = x.shape.back(), rows = n ? x.numel() / n : 0;
  s.scratchBytes = k::layerNormBackwardScratch(rows, n) * int64_t(sizeof(float));
  float e = float(*eps);
  return [=, &s](const CudaRunArgs &args) -> llvm::Error {
    return s.check(k::layerNormBackward(s.f(0), s.f(1), s.f(2), rows, n, e, s.fout(0), s.fout(1), s.fout(2),
                                        static_cast<float *>(args.scratch), args.stream));
  };
}

llvm::Expected<CudaKernel> meg::runtime::cuda::cudaAttentionGrad(CudaStep &s) {
  if (auto err = validate(s, &cpu::cpuAttentionGrad))
    return err;
  auto setup = cpu::prepareAttention(s, s.numOperands() == 5 ? std::optional<size_t>(4) : std::nullopt);
  if (!setup)
    return setup.takeError();
  if (setup->params.headDim > k::kAttentionMaxHeadDim)
    return s.error("head_dim " + llvm::Twine(setup->params.headDim) + " is above the cuda attention kernel's limit " +
                   llvm::Twine(k::kAttentionMaxHeadDim));
  s.scratchBytes = k::attentionBackwardScratch(setup->params) * int64_t(sizeof(float));
  return [a = *setup, &s](const CudaRunArgs &args) -> llvm::Error {
    kc::AttentionParams run = a.forRun(s, cpu::CpuRunArgs{args.ctx, args.comm, nullptr});
    return s.check(k::attentionBackward(run, s.f(0), s.f(1), s.f(2), s.f(3), s.fout(0), s.fout(1), s.fout(2),
                                        static_cast<float *>(args.scratch), args.stream));
  };
}

llvm::Expected<CudaKernel> meg::runtime::cuda::cudaEmbeddingGrad(CudaStep &s) {
  if (auto err = validate(s, &cpu::cpuEmbeddingGrad))
    return err;
  const TensorSlot &table = s.operand(0), &ids = s.operand(1);
  int64_t rows = table.shape[0], dim = table.shape[1], tokens = ids.numel(), rowOffset = table.offset[0];
  return [=, &s](const CudaRunArgs &args) -> llvm::Error {
    return s.check(k::embeddingBackward(s.f(2), s.i32(1), tokens, rowOffset, rows, dim, s.fout(), args.stream));
  };
}

llvm::Expected<CudaKernel> meg::runtime::cuda::cudaPickGrad(CudaStep &s) {
  if (auto err = validate(s, &cpu::cpuPickGrad))
    return err;
  const TensorSlot &x = s.operand(0), &ids = s.operand(1);
  int64_t cols = x.shape.back(), rows = ids.numel(), colOffset = x.offset.back();
  return [=, &s](const CudaRunArgs &args) -> llvm::Error {
    return s.check(k::pickBackward(s.f(2), s.i32(1), rows, cols, colOffset, s.fout(), args.stream));
  };
}

llvm::Expected<CudaKernel> meg::runtime::cuda::cudaSliceGrad(CudaStep &s) {
  if (auto err = validate(s, &cpu::cpuSliceGrad))
    return err;
  auto dim = s.intAttr("dim");
  if (!dim)
    return dim.takeError();
  auto start = s.intAttr("start");
  if (!start)
    return start.takeError();
  int d = int(*dim);
  int64_t st = *start, length = s.operand(0).shape[size_t(d)];
  return [=, &s](const CudaRunArgs &args) -> llvm::Error {
    const TensorSlot &r = s.result();
    return s.check(k::sliceBackward(s.f(0), r.shape.data(), int(r.shape.size()), d, st, length, s.fout(),
                                    args.stream));
  };
}

llvm::Expected<CudaKernel> meg::runtime::cuda::cudaSelectGrad(CudaStep &s) {
  if (auto err = validate(s, &cpu::cpuSelectGrad))
    return err;
  auto dim = s.intAttr("dim");
  if (!dim)
    return dim.takeError();
  auto index = s.intAttr("index");
  if (!index)
    return index.takeError();
  int d = int(*dim);
  int64_t idx = *index;
  return [=, &s](const CudaRunArgs &args) -> llvm::Error {
    const TensorSlot &r = s.result();
    return s.check(k::selectBackward(s.f(0), r.shape.data(), int(r.shape.size()), d, idx, s.fout(), args.stream));
  };
}
