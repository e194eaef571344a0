// contract (cuBLASLt through the CPU's ContractPlan) and flash attention against the CPU kernels.
#include "GpuTestUtil.h"

#include "kernels/cpu/Attention.h"
#include "kernels/cpu/Contract.h"
#include "kernels/cuda/Kernels.h"

#include <cuda_bf16.h>

using namespace meg;
using namespace meg::gputest;
namespace kc = meg::kernels::cpu;
namespace kg = meg::kernels::cuda;

namespace {

class ContractTest : public GpuTest {
protected:
  void SetUp() override {
    GpuTest::SetUp();
    if (IsSkipped() || HasFatalFailure())
      return;
    ASSERT_EQ(cublasLtCreate(&lt), CUBLAS_STATUS_SUCCESS);
  }
  void TearDown() override {
    if (lt)
      cublasLtDestroy(lt);
    GpuTest::TearDown();
  }

  /// Runs `spec` on random operands on both backends; bf16 rounds the operands first (the CPU then computes on the
  /// same rounded values).
  void check(const std::string &spec, std::vector<int64_t> sa, std::vector<int64_t> sb, bool bf16 = false) {
    SCOPED_TRACE(spec);
    kc::ContractPlan plan = kc::ContractPlan::build(spec, sa.data(), int(sa.size()), sb.data(), int(sb.size()));
    ASSERT_TRUE(plan.ok()) << plan.parseError;
    int64_t na = 1, nb = 1, no = 1;
    for (int64_t d : sa)
      na *= d;
    for (int64_t d : sb)
      nb *= d;
    for (int64_t d : plan.outShape)
      no *= d;
    auto a = randomFloats(rng, static_cast<size_t>(na)), b = randomFloats(rng, static_cast<size_t>(nb));
    std::vector<__nv_bfloat16> ha, hb;
    if (bf16) {
      for (float &x : a) {
        ha.push_back(__float2bfloat16_rn(x));
        x = __bfloat162float(ha.back());
      }
      for (float &x : b) {
        hb.push_back(__float2bfloat16_rn(x));
        x = __bfloat162float(hb.back());
      }
    }
    std::vector<float> ref(static_cast<size_t>(no)), scratch(static_cast<size_t>(plan.scratchFloats));
    kc::contract(plan, a.data(), b.data(), ref.data(), scratch.empty() ? nullptr : scratch.data());

    kg::ContractGemm gemm;
    const size_t workspaceBytes = static_cast<size_t>(4) << 20;
    std::string err = gemm.init(lt, plan, bf16 ? kg::Elem::BF16 : kg::Elem::F32, kg::Elem::F32, workspaceBytes);
    ASSERT_EQ(err, "");
    DeviceArray<float> da(a), db(b), out(static_cast<size_t>(no));
    DeviceArray<uint8_t> work(workspaceBytes), scr(static_cast<size_t>(std::max<int64_t>(gemm.scratchBytes(), 1)));
    DeviceArray<__nv_bfloat16> da16(std::max<size_t>(ha.size(), 1)), db16(std::max<size_t>(hb.size(), 1));
    if (bf16) {
      da16.upload(ha);
      db16.upload(hb);
    }
    err = gemm.run(lt, bf16 ? static_cast<const void *>(da16.get()) : da.get(),
                   bf16 ? static_cast<const void *>(db16.get()) : db.get(), out.get(), scr.get(), work.get(), stream);
    ASSERT_EQ(err, "");
    sync();
    expectClose(out.download(), ref, bf16 ? kBf16Tol : kF32Tol, spec);
  }

  cublasLtHandle_t lt = nullptr;
};

TEST_F(ContractTest, LinearLayers) {
  check("bsi,io->bso", {2, 16, 64}, {64, 96});  // forward of a linear layer
  check("bso,io->bsi", {2, 16, 96}, {64, 96});  // its dx (B used transposed)
  check("bsi,bso->io", {2, 16, 64}, {2, 16, 96}); // its dW (K = b, s)
}

TEST_F(ContractTest, BatchedAndPermuted) {
  check("bqhd,bkhd->bhqk", {2, 8, 4, 16}, {2, 8, 4, 16}); // batch dims interleaved: permuted copies
  check("ij,jk->ki", {7, 5}, {5, 3});                     // output stored transposed (swapOutput)
  check("bij,bjk->bik", {3, 7, 5}, {3, 5, 9});
}

TEST_F(ContractTest, Bf16OperandsWithFp32Accumulation) {
  check("bsi,io->bso", {2, 16, 64}, {64, 96}, /*bf16=*/true);
  check("bso,io->bsi", {2, 16, 96}, {64, 96}, /*bf16=*/true);
  check("bqhd,bkhd->bhqk", {2, 8, 4, 16}, {2, 8, 4, 16}, /*bf16=*/true); // permuted 2-byte copies
}

class AttentionTest : public GpuTest {
protected:
  void check(kc::AttentionParams p, bool withMask, double gradTol) {
    size_t n = static_cast<size_t>(p.batch * p.seq * p.heads * p.headDim);
    auto q = randomFloats(rng, n), k = randomFloats(rng, n), v = randomFloats(rng, n), dout = randomFloats(rng, n);
    std::vector<int32_t> mask;
    if (withMask) {
      mask = randomInts(rng, static_cast<size_t>(p.batch * p.seq), 0, 1);
      mask[0] = 1;
      for (int64_t j = 0; j < p.seq; ++j) // batch 1 is all padding: its rows give zeros
        mask[static_cast<size_t>(p.seq + j)] = p.batch > 1 ? 0 : mask[static_cast<size_t>(p.seq + j)];
    }
    DeviceArray<float> dq(q), dk(k), dv(v), ddout(dout), out(n), gq(n), gk(n), gv(n),
        scratch(static_cast<size_t>(kg::attentionBackwardScratch(p)));
    DeviceArray<int32_t> dmask(withMask ? mask : std::vector<int32_t>{0});
    kc::AttentionParams cpu = p, gpu = p;
    cpu.keyMask = withMask ? mask.data() : nullptr;
    gpu.keyMask = withMask ? dmask.get() : nullptr;
    std::vector<float> ref(n), rq(n), rk(n), rv(n);
    kc::attentionForward(cpu, q.data(), k.data(), v.data(), ref.data());
    kc::attentionBackward(cpu, q.data(), k.data(), v.data(), dout.data(), rq.data(), rk.data(), rv.data());
    ASSERT_EQ(kg::attentionForward(gpu, dq.get(), dk.get(), dv.get(), out.get(), stream), cudaSuccess);
    ASSERT_EQ(kg::attentionBackward(gpu, dq.get(), dk.get(), dv.get(), ddout.get(), gq.get(), gk.get(), gv.get(),
                                    scratch.get(), stream),
              cudaSuccess);
    sync();
    expectClose(out.download(), ref, kF32Tol, "attention out");
    expectClose(gq.download(), rq, gradTol, "attention dq");
    expectClose(gk.download(), rk, gradTol, "attention dk");
    expectClose(gv.download(), rv, gradTol, "attention dv");
  }
};

// The backward's dS = P (dP - D) subtracts nearly equal terms; the CPU forms D from the probabilities, the GPU from
// dout . out (the same sum in another order), so gradients get a looser bound than the forward's 1e-5.
constexpr double kAttentionGradTol = 1e-4;

TEST_F(AttentionTest, CausalMatchesCpu) {
  kc::AttentionParams p;
  p.batch = 2, p.seq = 33, p.heads = 3, p.headDim = 64, p.scale = 0.125f, p.causal = true;
  check(p, false, kAttentionGradTol);
}

TEST_F(AttentionTest, PaddingMaskMatchesCpu) {
  kc::AttentionParams p;
  p.batch = 3, p.seq = 20, p.heads = 2, p.headDim = 40, p.scale = 0.2f, p.causal = false;
  check(p, true, kAttentionGradTol);
}

TEST_F(AttentionTest, DropoutOnAHeadShardMatchesCpu) {
  // Heads [2, 4) of 4 with dropout: the masks are the unsharded tensor's (same Philox index as the CPU).
  kc::AttentionParams p;
  p.batch = 2, p.seq = 17, p.heads = 2, p.headDim = 96, p.scale = 0.1f, p.causal = true;
  p.dropoutP = 0.2f;
  p.dropoutKey = kernels::PhiloxKey{42, 5, 9};
  p.headOffset = 2, p.headsTotal = 4;
  check(p, false, kAttentionGradTol);
}

TEST_F(AttentionTest, RefusesHeadDimAboveLimit) {
  kc::AttentionParams p;
  p.headDim = kg::kAttentionMaxHeadDim + 1;
  EXPECT_EQ(kg::attentionForward<float>(p, nullptr, nullptr, nullptr, nullptr, stream), cudaErrorInvalidValue);
}

} // namespace
