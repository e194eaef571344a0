//===- ComputeOps.cpp - CUDA adapters: contractions, elementwise, norms, attention ===//
//
// The CUDA counterparts of runtime/cpu/ComputeOps.cpp, with the same sharding-aware arguments (embedding row
// offset, attention head/batch offset, dropout global index, mask_padding dim offset), checked by the CPU adapter
// (validate) and launched on the backend's stream. contract runs the CPU's ContractPlan through cuBLASLt.
//
//===----------------------------------------------------------------------===//
#include "runtime/cuda/CudaOps.h"

#include "kernels/cuda/Kernels.h"

#include "llvm/Support/FormatVariadic.h"

#include <memory>

using namespace meg;
using namespace meg::runtime;
using namespace meg::runtime::cuda;
namespace k = meg::kernels::cuda;
namespace kc = meg::kernels::cpu;

namespace {

llvm::Expected<CudaKernel> binary(CudaStep &s, CpuAdapter cpuAdapter, kc::BinaryOp op) {
  if (auto err = validate(s, cpuAdapter))
    return err;
  return [op, &s](const CudaRunArgs &args) -> llvm::Error {
    const TensorSlot &a = s.operand(0), &b = s.operand(1);
    return s.check(k::binary(op, s.f(0), a.shape.data(), int(a.shape.size()), s.f(1), b.shape.data(),
                             int(b.shape.size()), s.fout(), args.stream));
  };
}

llvm::Expected<CudaKernel> unary(CudaStep &s, CpuAdapter cpuAdapter, k::UnaryOp op, float factor = 1.0f) {
  if (auto err = validate(s, cpuAdapter))
    return err;
  int64_t n = s.operand(0).numel();
  return [=, &s](const CudaRunArgs &args) -> llvm::Error {
    return s.check(k::unary(op, s.f(0), n, factor, s.fout(), args.stream));
  };
}

} // namespace

llvm::Expected<CudaKernel> meg::runtime::cuda::cudaEmbedding(CudaStep &s) {
  if (auto err = validate(s, &cpu::cpuEmbedding))
    return err;
  const TensorSlot &table = s.operand(0), &ids = s.operand(1);
  int64_t rows = table.shape[0], dim = table.shape[1], tokens = ids.numel(), rowOffset = table.offset[0];
  return [=, &s](const CudaRunArgs &args) -> llvm::Error {
    return s.check(k::embeddingForward(s.f(0), rows, dim, s.i32(1), tokens, rowOffset, s.fout(), args.stream));
  };
}

llvm::Expected<CudaKernel> meg::runtime::cuda::cudaContract(CudaStep &s) {
  if (auto err = validate(s, &cpu::cpuContract))
    return err;
  auto spec = s.symbolAttr("spec");
  if (!spec)
    return spec.takeError();
  const TensorSlot &a = s.operand(0), &b = s.operand(1);
  kc::ContractPlan plan =
      kc::ContractPlan::build(*spec, a.shape.data(), int(a.shape.size()), b.shape.data(), int(b.shape.size()));
  // The largest power of two (up to 256) dividing every operand and result address: the GEMM algorithm must accept
  // it (arena slices are 256-byte aligned by the default memory plan; a smaller --passes alignment still works).
  uintptr_t bits = reinterpret_cast<uintptr_t>(s.in[0]) | reinterpret_cast<uintptr_t>(s.in[1]) |
                   reinterpret_cast<uintptr_t>(s.out[0]) | uintptr_t(256);
  uint32_t alignment = uint32_t(bits & (~bits + 1));
  auto gemm = std::make_shared<k::ContractGemm>();
  if (auto err = s.check(gemm->init(s.lt, plan, /*bf16Operands=*/false, kGemmWorkspaceBytes, alignment)))
    return err;
  s.scratchBytes = gemm->scratchBytes();
  return [gemm, &s](const CudaRunArgs &args) -> llvm::Error {
    return s.check(gemm->run(args.lt, s.in[0], s.in[1], s.fout(), args.scratch, args.workspace, args.stream));
  };
}

llvm::Expected<CudaKernel> meg::runtime::cuda::cudaAdd(CudaStep &s) { return binary(s, &cpu::cpuAdd, kc::BinaryOp::Add); }
llvm::Expected<CudaKernel> meg::runtime::cuda::cudaSub(CudaStep &s) { return binary(s, &cpu::cpuSub, kc::BinaryOp::Sub); }
llvm::Expected<CudaKernel> meg::runtime::cuda::cudaMul(CudaStep &s) { return binary(s, &cpu::cpuMul, kc::BinaryOp::Mul); }
llvm::Expected<CudaKernel> meg::runtime::cuda::cudaDiv(CudaStep &s) { return binary(s, &cpu::cpuDiv, kc::BinaryOp::Div); }

llvm::Expected<CudaKernel> meg::runtime::cuda::cudaScale(CudaStep &s) {
  auto factor = s.floatAttr("factor");
  if (!factor)
    return factor.takeError();
  return unary(s, &cpu::cpuScale, k::UnaryOp::Scale, float(*factor));
}
llvm::Expected<CudaKernel> meg::runtime::cuda::cudaExp(CudaStep &s) { return unary(s, &cpu::cpuExp, k::UnaryOp::Exp); }
llvm::Expected<CudaKernel> meg::runtime::cuda::cudaLog(CudaStep &s) { return unary(s, &cpu::cpuLog, k::UnaryOp::Log); }
llvm::Expected<CudaKernel> meg::runtime::cuda::cudaTanh(CudaStep &s) {
  return unary(s, &cpu::cpuTanh, k::UnaryOp::Tanh);
}

llvm::Expected<CudaKernel> meg::runtime::cuda::cudaGelu(CudaStep &s) {
  if (auto err = validate(s, &cpu::cpuGelu))
    return err;
  auto form = cpu::geluForm(s);
  if (!form)
    return form.takeError();
  kc::GeluForm f = *form;
  int64_t n = s.operand(0).numel();
  return [=, &s](const CudaRunArgs &args) -> llvm::Error {
    return s.check(k::geluForward(f, s.f(0), n, s.fout(), args.stream));
  };
}

llvm::Expected<CudaKernel> meg::runtime::cuda::cudaDropout(CudaStep &s) {
  if (auto err = validate(s, &cpu::cpuDropout))
    return err;
  auto p = s.floatAttr("p");
  if (!p)
    return p.takeError();
  auto stream = s.intAttr("stream");
  if (!stream)
    return stream.takeError();
  float prob = float(*p);
  uint32_t streamId = uint32_t(*stream);
  return [=, &s](const CudaRunArgs &args) -> llvm::Error {
    const TensorSlot &r = s.result();
    kc::GlobalView view{r.shape.data(), r.globalShape.data(), r.offset.data(), int(r.shape.size())};
    float pRun = args.ctx.dropout ? prob : 0.0f;
    return s.check(
        k::dropout(s.f(0), view, pRun, kernels::PhiloxKey{args.ctx.seed, streamId, args.ctx.step}, s.fout(),
                   args.stream));
  };
}

llvm::Expected<CudaKernel> meg::runtime::cuda::cudaMaskPadding(CudaStep &s) {
  if (auto err = validate(s, &cpu::cpuMaskPadding))
    return err;
  auto dim = s.intAttr("dim");
  if (!dim)
    return dim.takeError();
  auto valid = s.intAttr("valid");
  if (!valid)
    return valid.takeError();
  auto value = s.floatAttr("value");
  if (!value)
    return value.takeError();
  int d = int(*dim);
  int64_t keep = *valid, offset = s.operand(0).offset[size_t(d)];
  float fill = float(*value);
  return [=, &s](const CudaRunArgs &args) -> llvm::Error {
    const TensorSlot &x = s.operand(0);
    return s.check(k::maskPadding(s.f(0), x.shape.data(), int(x.shape.size()), d, offset, keep, fill, s.fout(),
                                  args.stream));
  };
}

llvm::Expected<CudaKernel> meg::runtime::cuda::cudaCast(CudaStep &s) {
  if (auto err = validate(s, &cpu::cpuCast))
    return err;
  auto elem = [](DType t) {
    return t == DType::I32 ? k::Elem::I32 : t == DType::BF16 ? k::Elem::BF16 : k::Elem::F32;
  };
  k::Elem from = elem(s.operand(0).dtype), to = elem(s.result().dtype);
  int64_t n = s.operand(0).numel();
  return [=, &s](const CudaRunArgs &args) -> llvm::Error {
    return s.check(k::cast(s.in[0], from, s.out[0], to, n, args.stream));
  };
}

llvm::Expected<CudaKernel> meg::runtime::cuda::cudaLayerNorm(CudaStep &s) {
  if (auto err = validate(s, &cpu::cpuLayerNorm))
    return err;
  auto eps = s.floatAttr("eps");
  if (!eps)
    return eps.takeError();
  const TensorSlot &x = s.operand(0);
  int64_t n = x.shape.back(), rows = n ? x.numel() / n : 0;
  float e = float(*eps);
  return [=, &s](const CudaRunArgs &args) -> llvm::Error {
    return s.check(k::layerNormForward(s.f(0), s.f(1), s.f(2), rows, n, e, s.fout(), args.stream));
  };
}

llvm::Expected<CudaKernel> meg::runtime::cuda::cudaSoftmax(CudaStep &s) {
  if (auto err = validate(s, &cpu::cpuSoftmax))
    return err;
  const TensorSlot &x = s.operand(0);
  int64_t n = x.shape.back(), rows = n ? x.numel() / n : 0;
  return [=, &s](const CudaRunArgs &args) -> llvm::Error {
    return s.check(k::softmaxForward(s.f(0), rows, n, s.fout(), args.stream));
  };
}

llvm::Expected<CudaKernel> meg::runtime::cuda::cudaAttention(CudaStep &s) {
  auto setup = cpu::prepareAttention(s, s.numOperands() == 4 ? std::optional<size_t>(3) : std::nullopt);
  if (!setup)
    return setup.takeError();
  if (setup->params.headDim > k::kAttentionMaxHeadDim)
    return s.error(llvm::formatv("head_dim {0} is above the cuda attention kernel's limit {1}", setup->params.headDim,
                                 k::kAttentionMaxHeadDim));
  return [a = *setup, &s](const CudaRunArgs &args) -> llvm::Error {
    // forRun reads the mask operand's pointer (a device pointer here) and the run's dropout key.
    kc::AttentionParams run = a.forRun(s, cpu::CpuRunArgs{args.ctx, args.comm, nullptr});
    return s.check(k::attentionForward(run, s.f(0), s.f(1), s.f(2), s.fout(), args.stream));
  };
}
