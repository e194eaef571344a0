//===- ComputeOps.cpp - CUDA launches: lookups, contractions, elementwise, norms, attention ===//
//
// contract runs the binder's ContractPlan through cuBLASLt; layernorm_grad and attention_grad recompute their
// statistics into device scratch; embedding_grad is deterministic (no atomics). Launches of ops with 16-bit kernels
// pick the instantiation of the step's storage type (s.storage) once, here; dropout and attention read the
// training step from device memory (a captured graph replays them).
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

namespace {

/// The CUDA attention kernels' own limit.
llvm::Error checkHeadDim(const CudaStep &s, const AttentionArgs &a) {
  if (a.params.headDim > k::kAttentionMaxHeadDim)
    return s.error(llvm::formatv("head_dim {0} is above the cuda attention kernel's limit {1}", a.params.headDim,
                                 k::kAttentionMaxHeadDim));
  return llvm::Error::success();
}

const int32_t *maskOf(const CudaStep &s, const AttentionArgs &a) {
  return a.maskOperand ? s.i32(*a.maskOperand) : nullptr;
}

} // namespace

llvm::Expected<CudaKernel> meg::runtime::cuda::launch(const EmbeddingArgs &a, CudaStep &s) {
  return withStorage(s.storage.elem, [&](auto tag) -> CudaKernel {
    using T = typename decltype(tag)::type;
    return [a, &s](const CudaRunArgs &run) -> llvm::Error {
      return s.check(k::embeddingForward(s.inAs<T>(0), a.rows, a.dim, s.i32(1), a.tokens, a.rowOffset, s.outAs<T>(),
                                         run.stream));
    };
  });
}

llvm::Expected<CudaKernel> meg::runtime::cuda::launch(const EmbeddingGradArgs &a, CudaStep &s) {
  return [a, &s](const CudaRunArgs &run) -> llvm::Error {
    return s.check(k::embeddingBackward(s.f(2), s.i32(1), a.tokens, a.rowOffset, a.rows, a.dim, s.fout(), run.stream));
  };
}

llvm::Expected<CudaKernel> meg::runtime::cuda::launch(const ContractArgs &a, CudaStep &s) {
  // The largest power of two (up to 256) dividing every operand and result address: the GEMM algorithm must accept
  // it (arena slices are 256-byte aligned by the default memory plan; a smaller --passes alignment still works).
  uintptr_t bits = reinterpret_cast<uintptr_t>(s.in[0]) | reinterpret_cast<uintptr_t>(s.in[1]) |
                   reinterpret_cast<uintptr_t>(s.out[0]) | uintptr_t(256);
  uint32_t alignment = uint32_t(bits & (~bits + 1));
  auto gemm = std::make_shared<k::ContractGemm>();
  if (auto err =
          s.check(gemm->init(s.lt, *a.plan, s.storage.elem, s.storage.resultElem, kGemmWorkspaceBytes, alignment)))
    return err;
  s.scratchBytes = gemm->scratchBytes();
  return [gemm, &s](const CudaRunArgs &run) -> llvm::Error {
    return s.check(gemm->run(run.lt, s.in[0], s.in[1], s.out[0], run.scratch, run.workspace, run.stream));
  };
}

llvm::Expected<CudaKernel> meg::runtime::cuda::launch(const BinaryArgs &a, CudaStep &s) {
  return withStorage(s.storage.elem, [&](auto tag) -> CudaKernel {
    using T = typename decltype(tag)::type;
    return [a, &s](const CudaRunArgs &run) -> llvm::Error {
      return s.check(k::binary(a.op, s.inAs<T>(0), a.shapeA.data(), int(a.shapeA.size()), s.inAs<T>(1),
                               a.shapeB.data(), int(a.shapeB.size()), s.outAs<T>(), run.stream));
    };
  });
}

llvm::Expected<CudaKernel> meg::runtime::cuda::launch(const UnaryArgs &a, CudaStep &s) {
  return withStorage(s.storage.elem, [&](auto tag) -> CudaKernel {
    using T = typename decltype(tag)::type;
    return [a, &s](const CudaRunArgs &run) -> llvm::Error {
      return s.check(k::unary(a.op, s.inAs<T>(0), a.n, a.factor, s.outAs<T>(), run.stream));
    };
  });
}

llvm::Expected<CudaKernel> meg::runtime::cuda::launch(const GeluArgs &a, CudaStep &s) {
  return withStorage(s.storage.elem, [&](auto tag) -> CudaKernel {
    using T = typename decltype(tag)::type;
    return [a, &s](const CudaRunArgs &run) -> llvm::Error {
      return s.check(k::geluForward(a.form, s.inAs<T>(0), a.n, s.outAs<T>(), run.stream));
    };
  });
}

llvm::Expected<CudaKernel> meg::runtime::cuda::launch(const GeluGradArgs &a, CudaStep &s) {
  return withStorage(s.storage.elem, [&](auto tag) -> CudaKernel {
    using T = typename decltype(tag)::type;
    return [a, &s](const CudaRunArgs &run) -> llvm::Error {
      return s.check(k::geluBackward(a.form, s.inAs<T>(0), s.inAs<T>(1), a.n, s.outAs<T>(), run.stream));
    };
  });
}

llvm::Expected<CudaKernel> meg::runtime::cuda::launch(const DropoutArgs &a, CudaStep &s) {
  return withStorage(s.storage.elem, [&](auto tag) -> CudaKernel {
    using T = typename decltype(tag)::type;
    return [a, &s](const CudaRunArgs &run) -> llvm::Error {
      float p = run.ctx.dropout ? a.p : 0.0f;
      // key.step comes from run.stepCounter (== ctx.rngStep()), so a replayed graph draws the current step's mask.
      return s.check(k::dropout(s.inAs<T>(0), a.view(), p, kernels::PhiloxKey{run.ctx.seed, a.stream, run.ctx.rngStep()},
                                s.outAs<T>(), run.stream, run.stepCounter));
    };
  });
}

llvm::Expected<CudaKernel> meg::runtime::cuda::launch(const MaskPaddingArgs &a, CudaStep &s) {
  return withStorage(s.storage.elem, [&](auto tag) -> CudaKernel {
    using T = typename decltype(tag)::type;
    return [a, &s](const CudaRunArgs &run) -> llvm::Error {
      return s.check(k::maskPadding(s.inAs<T>(0), a.shape.data(), int(a.shape.size()), a.dim, a.offset, a.valid,
                                    a.value, s.outAs<T>(), run.stream));
    };
  });
}

llvm::Expected<CudaKernel> meg::runtime::cuda::launch(const CastArgs &a, CudaStep &s) {
  return [a, from = elemOf(a.from), to = elemOf(a.to), &s](const CudaRunArgs &run) -> llvm::Error {
    return s.check(k::cast(s.in[0], from, s.out[0], to, a.n, run.stream));
  };
}

llvm::Expected<CudaKernel> meg::runtime::cuda::launch(const FillArgs &a, CudaStep &s) {
  return
      [a, &s](const CudaRunArgs &run) -> llvm::Error { return s.check(k::fill(s.fout(), a.n, a.value, run.stream)); };
}

llvm::Expected<CudaKernel> meg::runtime::cuda::launch(const BroadcastArgs &a, CudaStep &s) {
  return withStorage(s.storage.elem, [&](auto tag) -> CudaKernel {
    using T = typename decltype(tag)::type;
    return [a, &s](const CudaRunArgs &run) -> llvm::Error {
      return s.check(k::broadcastTo(s.inAs<T>(0), a.shapeX.data(), int(a.shapeX.size()), a.shapeOut.data(),
                                    int(a.shapeOut.size()), s.outAs<T>(), run.stream));
    };
  });
}

llvm::Expected<CudaKernel> meg::runtime::cuda::launch(const LayerNormArgs &a, CudaStep &s) {
  return [a, &s](const CudaRunArgs &run) -> llvm::Error {
    return s.check(k::layerNormForward(s.f(0), s.f(1), s.f(2), a.rows, a.n, a.eps, s.fout(), run.stream));
  };
}

llvm::Expected<CudaKernel> meg::runtime::cuda::launch(const LayerNormGradArgs &a, CudaStep &s) {
  s.scratchBytes = k::layerNormBackwardScratch(a.rows, a.n) * int64_t(sizeof(float));
  return [a, &s](const CudaRunArgs &run) -> llvm::Error {
    return s.check(k::layerNormBackward(s.f(0), s.f(1), s.f(2), a.rows, a.n, a.eps, s.fout(0), s.fout(1), s.fout(2),
                                        static_cast<float *>(run.scratch), run.stream));
  };
}

llvm::Expected<CudaKernel> meg::runtime::cuda::launch(const SoftmaxArgs &a, CudaStep &s) {
  return withStorage(s.storage.elem, [&](auto tag) -> CudaKernel {
    using T = typename decltype(tag)::type;
    return [a, &s](const CudaRunArgs &run) -> llvm::Error {
      return s.check(k::softmaxForward(s.inAs<T>(0), a.rows, a.n, s.outAs<T>(), run.stream));
    };
  });
}

llvm::Expected<CudaKernel> meg::runtime::cuda::launch(const AttentionArgs &a, CudaStep &s) {
  if (auto err = checkHeadDim(s, a))
    return err;
  return withStorage(s.storage.elem, [&](auto tag) -> CudaKernel {
    using T = typename decltype(tag)::type;
    return [a, &s](const CudaRunArgs &run) -> llvm::Error {
      return s.check(k::attentionForward(a.forRun(run.ctx, maskOf(s, a)), s.inAs<T>(0), s.inAs<T>(1), s.inAs<T>(2),
                                         s.outAs<T>(), run.stream, run.stepCounter));
    };
  });
}

llvm::Expected<CudaKernel> meg::runtime::cuda::launch(const DecodeAttentionArgs &a, CudaStep &s) {
  if (a.params.headDim > k::kAttentionMaxHeadDim)
    return s.error(llvm::formatv("head_dim {0} is above the cuda attention kernel's limit {1}", a.params.headDim,
                                 k::kAttentionMaxHeadDim));
  return [a, &s](const CudaRunArgs &run) -> llvm::Error {
    return s.check(k::decodeAttention(a.params, s.f(0), s.f(1), s.f(2), s.f(3), s.f(4), s.i32(5), s.fout(),
                                      run.stream));
  };
}

llvm::Expected<CudaKernel> meg::runtime::cuda::launch(const AttentionGradArgs &a, CudaStep &s) {
  if (auto err = checkHeadDim(s, a))
    return err;
  s.scratchBytes = k::attentionBackwardScratch(a.params) * int64_t(sizeof(float));
  return withStorage(s.storage.elem, [&](auto tag) -> CudaKernel {
    using T = typename decltype(tag)::type;
    return [a, &s](const CudaRunArgs &run) -> llvm::Error {
      return s.check(k::attentionBackward(a.forRun(run.ctx, maskOf(s, a)), s.inAs<T>(0), s.inAs<T>(1), s.inAs<T>(2),
                                          s.inAs<T>(3), s.outAs<T>(0), s.outAs<T>(1), s.outAs<T>(2),
                                          static_cast<float *>(run.scratch), run.stream, run.stepCounter));
    };
  });
}
