//===- ComputeOps.cpp - CPU launches: lookups, contractions, elementwise, norms, attention ===//
//
// Dropout masks are keyed by (seed, step, stream attribute, global index); StepContext::dropout == false
// (evaluation) makes dropout the identity. layernorm_grad recomputes the row statistics into scratch.
//
//===----------------------------------------------------------------------===//
#include "runtime/cpu/CpuOps.h"

#include "kernels/cpu/Attention.h"
#include "kernels/cpu/Contract.h"
#include "kernels/cpu/Dropout.h"
#include "kernels/cpu/Elementwise.h"
#include "kernels/cpu/Embedding.h"
#include "kernels/cpu/Gelu.h"
#include "kernels/cpu/LayerNorm.h"
#include "kernels/cpu/Layout.h"
#include "kernels/cpu/Softmax.h"

#include <cstring>

using namespace meg;
using namespace meg::runtime;
using namespace meg::runtime::cpu;
namespace k = meg::kernels::cpu;

llvm::Expected<CpuKernel> meg::runtime::cpu::launch(const EmbeddingArgs &a, CpuStep &s) {
  return infallible([a, &s](const CpuRunArgs &) {
    k::embeddingForward(s.f(0), a.rows, a.dim, s.i32(1), a.tokens, a.rowOffset, s.fout());
  });
}

llvm::Expected<CpuKernel> meg::runtime::cpu::launch(const EmbeddingGradArgs &a, CpuStep &s) {
  return infallible([a, &s](const CpuRunArgs &) {
    k::embeddingBackward(s.f(2), s.i32(1), a.tokens, a.rowOffset, a.rows, a.dim, s.fout());
  });
}

llvm::Expected<CpuKernel> meg::runtime::cpu::launch(const ContractArgs &a, CpuStep &s) {
  s.scratchFloats = a.plan->scratchFloats;
  return infallible([a, &s](const CpuRunArgs &run) { k::contract(*a.plan, s.f(0), s.f(1), s.fout(), run.scratch); });
}

llvm::Expected<CpuKernel> meg::runtime::cpu::launch(const BinaryArgs &a, CpuStep &s) {
  return infallible([a, &s](const CpuRunArgs &) {
    k::binary(a.op, s.f(0), a.shapeA.data(), int(a.shapeA.size()), s.f(1), a.shapeB.data(), int(a.shapeB.size()),
              s.fout());
  });
}

llvm::Expected<CpuKernel> meg::runtime::cpu::launch(const UnaryArgs &a, CpuStep &s) {
  return infallible([a, &s](const CpuRunArgs &) { k::unary(a.op, s.f(0), a.n, a.factor, s.fout()); });
}

llvm::Expected<CpuKernel> meg::runtime::cpu::launch(const GeluArgs &a, CpuStep &s) {
  return infallible([a, &s](const CpuRunArgs &) { k::geluForward(a.form, s.f(0), a.n, s.fout()); });
}

llvm::Expected<CpuKernel> meg::runtime::cpu::launch(const GeluGradArgs &a, CpuStep &s) {
  return infallible([a, &s](const CpuRunArgs &) { k::geluBackward(a.form, s.f(0), s.f(1), a.n, s.fout()); });
}

llvm::Expected<CpuKernel> meg::runtime::cpu::launch(const DropoutArgs &a, CpuStep &s) {
  return infallible([a, &s](const CpuRunArgs &run) {
    if (!run.ctx.dropout || a.p == 0) {
      if (s.f(0) != s.fout())
        std::memcpy(s.fout(), s.f(0), size_t(a.n) * sizeof(float));
      return;
    }
    k::dropoutForward(s.f(0), a.view(), a.p, kernels::PhiloxKey{run.ctx.seed, a.stream, run.ctx.rngStep()}, s.fout());
  });
}

llvm::Expected<CpuKernel> meg::runtime::cpu::launch(const MaskPaddingArgs &a, CpuStep &s) {
  return infallible([a, &s](const CpuRunArgs &) {
    k::maskPadding(s.f(0), a.outer, a.size, a.inner, a.offset, a.valid, a.value, s.fout());
  });
}

llvm::Expected<CpuKernel> meg::runtime::cpu::launch(const CastArgs &a, CpuStep &s) {
  return infallible([a, &s](const CpuRunArgs &) {
    k::cast(s.in[0], elemOf(a.from), s.out[0], elemOf(a.to), a.n);
  });
}

llvm::Expected<CpuKernel> meg::runtime::cpu::launch(const FillArgs &a, CpuStep &s) {
  return infallible([a, &s](const CpuRunArgs &) { k::fill(s.fout(), a.n, a.value); });
}

llvm::Expected<CpuKernel> meg::runtime::cpu::launch(const BroadcastArgs &a, CpuStep &s) {
  return infallible([a, &s](const CpuRunArgs &) {
    k::broadcastTo(s.f(0), a.shapeX.data(), int(a.shapeX.size()), a.shapeOut.data(), int(a.shapeOut.size()), s.fout());
  });
}

llvm::Expected<CpuKernel> meg::runtime::cpu::launch(const LayerNormArgs &a, CpuStep &s) {
  return infallible([a, &s](const CpuRunArgs &) {
    k::layerNormForward(s.f(0), s.f(1), s.f(2), a.rows, a.n, a.eps, s.fout(), nullptr, nullptr);
  });
}

llvm::Expected<CpuKernel> meg::runtime::cpu::launch(const LayerNormGradArgs &a, CpuStep &s) {
  s.scratchFloats = 2 * a.rows;
  return infallible([a, &s](const CpuRunArgs &run) {
    float *mean = run.scratch, *rstd = run.scratch + a.rows;
    k::layerNormStats(s.f(0), a.rows, a.n, a.eps, mean, rstd);
    k::layerNormBackward(s.f(0), s.f(1), mean, rstd, s.f(2), a.rows, a.n, s.fout(0), s.fout(1), s.fout(2));
  });
}

llvm::Expected<CpuKernel> meg::runtime::cpu::launch(const SoftmaxArgs &a, CpuStep &s) {
  return infallible([a, &s](const CpuRunArgs &) { k::softmaxForward(s.f(0), a.rows, a.n, s.fout()); });
}

llvm::Expected<CpuKernel> meg::runtime::cpu::launch(const AttentionArgs &a, CpuStep &s) {
  return infallible([a, &s](const CpuRunArgs &run) {
    const int32_t *mask = a.maskOperand ? s.i32(*a.maskOperand) : nullptr;
    k::attentionForward(a.forRun(run.ctx, mask), s.f(0), s.f(1), s.f(2), s.fout());
  });
}

llvm::Expected<CpuKernel> meg::runtime::cpu::launch(const DecodeAttentionArgs &a, CpuStep &s) {
  return infallible([a, &s](const CpuRunArgs &) {
    k::decodeAttention(a.params, s.f(0), s.f(1), s.f(2), s.f(3), s.f(4), s.i32(5), s.fout());
  });
}

llvm::Expected<CpuKernel> meg::runtime::cpu::launch(const AttentionGradArgs &a, CpuStep &s) {
  return infallible([a, &s](const CpuRunArgs &run) {
    const int32_t *mask = a.maskOperand ? s.i32(*a.maskOperand) : nullptr;
    k::attentionBackward(a.forRun(run.ctx, mask), s.f(0), s.f(1), s.f(2), s.f(3), s.fout(0), s.fout(1), s.fout(2));
  });
}
