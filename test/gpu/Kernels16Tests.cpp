// The 16-bit variants (bf16 and f16) of every CUDA kernel that has one, against the CPU's 16-bit reference path on
// fresh random inputs: the inputs are rounded to the storage type (kernels/Half.h), the CPU fp32 kernel runs on their
// exact fp32 values and its result is rounded to the storage type, as the CPU backend runs a 16-bit step
// (runtime/exec/Widen.h). The GPU kernel gets the same 16-bit bits. Tolerances: bf16 2e-2, f16 5e-3 (relative,
// expectClose); moves (layout, embedding rows, broadcast) must be bit-exact. Also: the device step counter of dropout
// and attention and AdamW's device bias corrections (CUDA graph replays) give the by-value results bit for bit.
#include "GpuTestUtil.h"

#include "kernels/Half.h"
#include "kernels/cpu/Adam.h"
#include "kernels/cpu/Attention.h"
#include "kernels/cpu/Contract.h"
#include "kernels/cpu/Dropout.h"
#include "kernels/cpu/Elementwise.h"
#include "kernels/cpu/Embedding.h"
#include "kernels/cpu/Gelu.h"
#include "kernels/cpu/Layout.h"
#include "kernels/cpu/Reduce.h"
#include "kernels/cpu/Softmax.h"
#include "kernels/cuda/Kernels.h"

#include <cstring>
#include <functional>

using namespace meg;
using namespace meg::gputest;
namespace kc = meg::kernels::cpu;
namespace kg = meg::kernels::cuda;
using kernels::Elem;

namespace {

struct Storage16 {
  Elem elem;
  const char *name;
  double tol;
};
const Storage16 kStorages[] = {{Elem::BF16, "bf16", kBf16Tol}, {Elem::F16, "f16", kF16Tol}};

/// fn(StorageTag<T>, storage) for bf16 and f16.
template <typename T> struct Tag {
  using type = T;
};
template <typename Fn> void forEach16(Fn &&fn) {
  for (const Storage16 &st : kStorages) {
    SCOPED_TRACE(st.name);
    if (st.elem == Elem::BF16)
      fn(Tag<__nv_bfloat16>{}, st);
    else
      fn(Tag<__half>{}, st);
  }
}

/// A 16-bit tensor: its bits, and the fp32 values they hold exactly.
struct Tensor16 {
  std::vector<uint16_t> bits;
  std::vector<float> values;
};
Tensor16 round16(const std::vector<float> &x, Elem e) {
  Tensor16 t;
  t.bits.resize(x.size());
  for (size_t i = 0; i < x.size(); ++i)
    kernels::storeFromFloat(t.bits.data(), e, int64_t(i), x[i]);
  for (size_t i = 0; i < x.size(); ++i)
    t.values.push_back(kernels::loadAsFloat(t.bits.data(), e, int64_t(i)));
  return t;
}
std::vector<float> widen(const std::vector<uint16_t> &bits, Elem e) {
  std::vector<float> v(bits.size());
  for (size_t i = 0; i < bits.size(); ++i)
    v[i] = kernels::loadAsFloat(bits.data(), e, int64_t(i));
  return v;
}
/// What the CPU backend stores for a 16-bit result: the fp32 reference rounded (and read back for comparison).
std::vector<float> stored(const std::vector<float> &ref, Elem e) { return round16(ref, e).values; }

template <typename T> const T *in(const DeviceArray<uint16_t> &d) { return reinterpret_cast<const T *>(d.get()); }
template <typename T> T *out(DeviceArray<uint16_t> &d) { return reinterpret_cast<T *>(d.get()); }

int64_t numel(const std::vector<int64_t> &shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}
size_t sz(int64_t n) { return static_cast<size_t>(n); }

using Kernel16Test = GpuTest;

TEST_F(Kernel16Test, ElementwiseMatchCpu16BitPath) {
  forEach16([&](auto tag, const Storage16 &st) {
    using T = typename decltype(tag)::type;
    const std::vector<int64_t> sa = {3, 1, 5}, sb = {4, 5}, so = {3, 4, 5};
    auto a = round16(randomFloats(rng, sz(numel(sa))), st.elem);
    auto b = round16(randomFloats(rng, sz(numel(sb)), 0.5f, 2.0f), st.elem);
    DeviceArray<uint16_t> da(a.bits), db(b.bits), dout(sz(numel(so)));
    for (kc::BinaryOp op : {kc::BinaryOp::Add, kc::BinaryOp::Sub, kc::BinaryOp::Mul, kc::BinaryOp::Div}) {
      std::vector<float> ref(sz(numel(so)));
      kc::binary(op, a.values.data(), sa.data(), 3, b.values.data(), sb.data(), 2, ref.data());
      ASSERT_EQ(kg::binary(op, in<T>(da), sa.data(), 3, in<T>(db), sb.data(), 2, out<T>(dout), stream), cudaSuccess);
      sync();
      expectClose(widen(dout.download(), st.elem), stored(ref, st.elem), st.tol, "binary " + std::to_string(int(op)));
    }

    auto x = round16(randomFloats(rng, 1000, 0.1f, 3.0f), st.elem);
    DeviceArray<uint16_t> dx(x.bits), dy(x.bits.size());
    std::vector<float> ref(x.values.size());
    struct Case {
      kg::UnaryOp op;
      std::function<void(const float *, int64_t, float *)> cpu;
    } cases[] = {{kg::UnaryOp::Exp, kc::expForward},
                 {kg::UnaryOp::Log, kc::logForward},
                 {kg::UnaryOp::Tanh, kc::tanhForward},
                 {kg::UnaryOp::Scale, [](const float *v, int64_t n, float *r) { kc::scale(v, n, -0.37f, r); }}};
    for (const Case &c : cases) {
      c.cpu(x.values.data(), int64_t(ref.size()), ref.data());
      ASSERT_EQ(kg::unary(c.op, in<T>(dx), int64_t(ref.size()), -0.37f, out<T>(dy), stream), cudaSuccess);
      sync();
      expectClose(widen(dy.download(), st.elem), stored(ref, st.elem), st.tol, "unary " + std::to_string(int(c.op)));
    }

    auto g = round16(randomFloats(rng, 4096, -5.0f, 5.0f), st.elem), gdy = round16(randomFloats(rng, 4096), st.elem);
    DeviceArray<uint16_t> gx(g.bits), gd(gdy.bits), gout(4096);
    std::vector<float> gref(4096);
    for (kc::GeluForm form : {kc::GeluForm::Tanh, kc::GeluForm::Erf}) {
      kc::geluForward(form, g.values.data(), 4096, gref.data());
      ASSERT_EQ(kg::geluForward(form, in<T>(gx), 4096, out<T>(gout), stream), cudaSuccess);
      sync();
      expectClose(widen(gout.download(), st.elem), stored(gref, st.elem), st.tol, "gelu");
      kc::geluBackward(form, g.values.data(), gdy.values.data(), 4096, gref.data());
      ASSERT_EQ(kg::geluBackward(form, in<T>(gx), in<T>(gd), 4096, out<T>(gout), stream), cudaSuccess);
      sync();
      expectClose(widen(gout.download(), st.elem), stored(gref, st.elem), st.tol, "gelu_grad");
    }
  });
}

TEST_F(Kernel16Test, DropoutAndMaskPaddingMatchCpu16BitPath) {
  forEach16([&](auto tag, const Storage16 &st) {
    using T = typename decltype(tag)::type;
    const std::vector<int64_t> local = {6, 5, 8}, global = {6, 10, 8}, offset = {0, 5, 0};
    auto x = round16(randomFloats(rng, sz(numel(local))), st.elem);
    DeviceArray<uint16_t> dx(x.bits), dy(x.bits.size());
    kc::GlobalView view{local.data(), global.data(), offset.data(), 3};
    kernels::PhiloxKey key{0x1234567890ull, 7, 3};
    std::vector<float> ref(x.values.size());
    kc::dropoutForward(x.values.data(), view, 0.3f, key, ref.data());
    ASSERT_EQ(kg::dropout(in<T>(dx), view, 0.3f, key, out<T>(dy), stream), cudaSuccess);
    sync();
    auto got = widen(dy.download(), st.elem);
    for (size_t i = 0; i < got.size(); ++i)
      ASSERT_EQ(got[i] == 0.0f, ref[i] == 0.0f) << "mask differs at " << i;
    expectClose(got, stored(ref, st.elem), st.tol, "dropout");

    const std::vector<int64_t> shape = {2, 3, 16};
    auto m = round16(randomFloats(rng, sz(numel(shape))), st.elem);
    DeviceArray<uint16_t> dm(m.bits), dmo(m.bits.size());
    std::vector<float> mref(m.values.size());
    kc::maskPadding(m.values.data(), 6, 16, 1, 16, 20, -INFINITY, mref.data()); // shard [16, 32) of 32, valid 20
    ASSERT_EQ(kg::maskPadding(in<T>(dm), shape.data(), 3, 2, 16, 20, -INFINITY, out<T>(dmo), stream), cudaSuccess);
    sync();
    expectClose(widen(dmo.download(), st.elem), stored(mref, st.elem), 0, "mask_padding");
  });
}

TEST_F(Kernel16Test, ReductionsSoftmaxAndMovesMatchCpu16BitPath) {
  forEach16([&](auto tag, const Storage16 &st) {
    using T = typename decltype(tag)::type;
    const std::vector<int64_t> shape = {3, 50, 4, 7};
    auto x = round16(randomFloats(rng, sz(numel(shape)), -3.0f, 3.0f), st.elem);
    DeviceArray<uint16_t> dx(x.bits), dout(x.bits.size());
    const bool masks[][4] = {{false, false, false, true}, {true, false, true, false}, {true, true, true, true}};
    for (const auto &mask : masks)
      for (bool isMax : {false, true}) {
        int64_t outN = 1;
        for (int d = 0; d < 4; ++d)
          outN *= mask[d] ? 1 : shape[sz(d)];
        std::vector<float> ref(sz(outN));
        (isMax ? kc::reduceMax : kc::reduceSum)(x.values.data(), shape.data(), 4, mask, ref.data());
        ASSERT_EQ(kg::reduce(isMax, in<T>(dx), shape.data(), 4, mask, out<T>(dout), stream), cudaSuccess);
        sync();
        auto got = widen(dout.download(), st.elem);
        got.resize(sz(outN));
        expectClose(got, stored(ref, st.elem), isMax ? 0 : st.tol, isMax ? "reduce_max" : "reduce_sum");
      }

    const int64_t rows = 19, n = 1000;
    auto s = round16(randomFloats(rng, sz(rows * n), -8.0f, 8.0f), st.elem);
    DeviceArray<uint16_t> ds(s.bits), dsy(s.bits.size());
    std::vector<float> sref(s.values.size());
    kc::softmaxForward(s.values.data(), rows, n, sref.data());
    ASSERT_EQ(kg::softmaxForward(in<T>(ds), rows, n, out<T>(dsy), stream), cudaSuccess);
    sync();
    expectClose(widen(dsy.download(), st.elem), stored(sref, st.elem), st.tol, "softmax");

    // Moves of 2-byte elements: bit-exact.
    const std::vector<int64_t> ts = {2, 16, 4, 16};
    const int perm[] = {0, 2, 1, 3};
    auto t = round16(randomFloats(rng, sz(numel(ts))), st.elem);
    DeviceArray<uint16_t> dt(t.bits), dto(t.bits.size());
    std::vector<float> tref(t.values.size());
    kc::transpose(t.values.data(), ts.data(), 4, perm, tref.data());
    ASSERT_EQ(kg::transpose(dt.get(), ts.data(), 4, perm, dto.get(), stream, 2), cudaSuccess);
    sync();
    expectClose(widen(dto.download(), st.elem), tref, 0, "transpose");
    std::vector<float> sl(sz(2 * 5 * 4 * 16)), sg(t.values.size()), se(sz(2 * 4 * 16));
    kc::slice(t.values.data(), ts.data(), 4, 1, 3, 5, sl.data());
    DeviceArray<uint16_t> dsl(sl.size()), dsg(sg.size()), dse(se.size());
    ASSERT_EQ(kg::slice(dt.get(), ts.data(), 4, 1, 3, 5, dsl.get(), stream, 2), cudaSuccess);
    sync();
    expectClose(widen(dsl.download(), st.elem), sl, 0, "slice");
    kc::sliceBackward(sl.data(), ts.data(), 4, 1, 3, 5, sg.data());
    ASSERT_EQ(kg::sliceBackward(in<T>(dsl), ts.data(), 4, 1, 3, 5, out<T>(dsg), stream), cudaSuccess);
    sync();
    expectClose(widen(dsg.download(), st.elem), sg, 0, "slice_grad");
    kc::select(t.values.data(), ts.data(), 4, 1, 7, se.data());
    ASSERT_EQ(kg::select(dt.get(), ts.data(), 4, 1, 7, dse.get(), stream, 2), cudaSuccess);
    sync();
    expectClose(widen(dse.download(), st.elem), se, 0, "select");
    kc::selectBackward(se.data(), ts.data(), 4, 1, 7, sg.data());
    ASSERT_EQ(kg::selectBackward(in<T>(dse), ts.data(), 4, 1, 7, out<T>(dsg), stream), cudaSuccess);
    sync();
    expectClose(widen(dsg.download(), st.elem), sg, 0, "select_grad");
    const std::vector<int64_t> bx = {4, 1}, bo = {2, 4, 3};
    auto bsrc = round16(randomFloats(rng, 4), st.elem);
    DeviceArray<uint16_t> dbx(bsrc.bits), dbo(24);
    std::vector<float> bref(24);
    kc::broadcastTo(bsrc.values.data(), bx.data(), 2, bo.data(), 3, bref.data());
    ASSERT_EQ(kg::broadcastTo(in<T>(dbx), bx.data(), 2, bo.data(), 3, out<T>(dbo), stream), cudaSuccess);
    sync();
    expectClose(widen(dbo.download(), st.elem), bref, 0, "broadcast");

    const int64_t vrows = 300, dim = 72, tokens = 500, rowOffset = 100;
    auto table = round16(randomFloats(rng, sz(vrows * dim)), st.elem);
    auto ids = randomInts(rng, sz(tokens), 0, 499);
    DeviceArray<uint16_t> dtable(table.bits), demb(sz(tokens * dim));
    DeviceArray<int32_t> dids(ids);
    std::vector<float> eref(sz(tokens * dim));
    kc::embeddingForward(table.values.data(), vrows, dim, ids.data(), tokens, rowOffset, eref.data());
    ASSERT_EQ(kg::embeddingForward(in<T>(dtable), vrows, dim, dids.get(), tokens, rowOffset, out<T>(demb), stream),
              cudaSuccess);
    sync();
    expectClose(widen(demb.download(), st.elem), eref, 0, "embedding");
  });
}

TEST_F(Kernel16Test, AttentionMatchesCpu16BitPath) {
  forEach16([&](auto tag, const Storage16 &st) {
    using T = typename decltype(tag)::type;
    kc::AttentionParams p;
    p.batch = 2, p.seq = 17, p.heads = 2, p.headDim = 64, p.scale = 0.125f, p.causal = true;
    p.dropoutP = 0.1f;
    p.dropoutKey = kernels::PhiloxKey{42, 5, 9};
    p.headOffset = 2, p.headsTotal = 4;
    size_t n = sz(p.batch * p.seq * p.heads * p.headDim);
    auto q = round16(randomFloats(rng, n), st.elem), k = round16(randomFloats(rng, n), st.elem),
         v = round16(randomFloats(rng, n), st.elem), dout = round16(randomFloats(rng, n), st.elem);
    DeviceArray<uint16_t> dq(q.bits), dk(k.bits), dv(v.bits), ddout(dout.bits), o(n), gq(n), gk(n), gv(n);
    DeviceArray<float> scratch(sz(kg::attentionBackwardScratch(p)));
    std::vector<float> ref(n), rq(n), rk(n), rv(n);
    kc::attentionForward(p, q.values.data(), k.values.data(), v.values.data(), ref.data());
    kc::attentionBackward(p, q.values.data(), k.values.data(), v.values.data(), dout.values.data(), rq.data(),
                          rk.data(), rv.data());
    ASSERT_EQ(kg::attentionForward(p, in<T>(dq), in<T>(dk), in<T>(dv), out<T>(o), stream), cudaSuccess);
    ASSERT_EQ(kg::attentionBackward(p, in<T>(dq), in<T>(dk), in<T>(dv), in<T>(ddout), out<T>(gq), out<T>(gk),
                                    out<T>(gv), scratch.get(), stream),
              cudaSuccess);
    sync();
    expectClose(widen(o.download(), st.elem), stored(ref, st.elem), st.tol, "attention out");
    expectClose(widen(gq.download(), st.elem), stored(rq, st.elem), st.tol, "attention dq");
    expectClose(widen(gk.download(), st.elem), stored(rk, st.elem), st.tol, "attention dk");
    expectClose(widen(gv.download(), st.elem), stored(rv, st.elem), st.tol, "attention dv");
  });
}

class Contract16Test : public GpuTest {
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
  /// 16-bit A and B; the result in the same type (rounded) or accumulated into f32.
  void check(const std::string &spec, std::vector<int64_t> sa, std::vector<int64_t> sb, const Storage16 &st,
             bool f32Result) {
    SCOPED_TRACE(spec + (f32Result ? " -> f32" : " -> 16-bit"));
    kc::ContractPlan plan = kc::ContractPlan::build(spec, sa.data(), int(sa.size()), sb.data(), int(sb.size()));
    ASSERT_TRUE(plan.ok()) << plan.parseError;
    int64_t no = numel(plan.outShape);
    auto a = round16(randomFloats(rng, sz(numel(sa))), st.elem), b = round16(randomFloats(rng, sz(numel(sb))), st.elem);
    std::vector<float> ref(sz(no)), scratch(sz(plan.scratchFloats));
    kc::contract(plan, a.values.data(), b.values.data(), ref.data(), scratch.empty() ? nullptr : scratch.data());
    kg::ContractGemm gemm;
    const size_t workspaceBytes = static_cast<size_t>(4) << 20;
    ASSERT_EQ(gemm.init(lt, plan, st.elem, f32Result ? Elem::F32 : st.elem, workspaceBytes), "");
    DeviceArray<uint16_t> da(a.bits), db(b.bits), out16(sz(no));
    DeviceArray<float> out32(sz(no));
    DeviceArray<uint8_t> work(workspaceBytes), scr(sz(std::max<int64_t>(gemm.scratchBytes(), 1)));
    void *result = f32Result ? static_cast<void *>(out32.get()) : static_cast<void *>(out16.get());
    ASSERT_EQ(gemm.run(lt, da.get(), db.get(), result, scr.get(), work.get(), stream), "");
    sync();
    if (f32Result)
      expectClose(out32.download(), ref, kF32Tol * 10, spec); // exact products, fp32 sums in another order
    else
      expectClose(widen(out16.download(), st.elem), stored(ref, st.elem), st.tol, spec);
  }
  cublasLtHandle_t lt = nullptr;
};

TEST_F(Contract16Test, GemmsMatchCpu16BitPath) {
  for (const Storage16 &st : kStorages) {
    SCOPED_TRACE(st.name);
    for (bool f32Result : {false, true}) {
      check("bsi,io->bso", {2, 16, 64}, {64, 96}, st, f32Result);
      check("bso,io->bsi", {2, 16, 96}, {64, 96}, st, f32Result);
      check("bsi,bso->io", {2, 16, 64}, {2, 16, 96}, st, f32Result);
      check("bqhd,bkhd->bhqk", {2, 8, 4, 16}, {2, 8, 4, 16}, st, f32Result); // permuted 2-byte copies
      check("ij,jk->ki", {7, 5}, {5, 3}, st, f32Result);                     // swapOutput
    }
  }
}

TEST_F(Contract16Test, RefusesMixedResultTypes) {
  kc::ContractPlan plan = kc::ContractPlan::build("ij,jk->ik", std::vector<int64_t>{4, 8}.data(), 2,
                                                  std::vector<int64_t>{8, 4}.data(), 2);
  kg::ContractGemm gemm;
  EXPECT_NE(gemm.init(lt, plan, Elem::BF16, Elem::F16, 1 << 20), "");
}

// CUDA graph replays read the training step and AdamW's bias corrections from device memory: the results must be
// the by-value launches' bit for bit.
TEST_F(Kernel16Test, DeviceStepCounterGivesTheByValueResults) {
  const std::vector<int64_t> shape = {4, 64};
  auto x = randomFloats(rng, 256);
  DeviceArray<float> dx(x), byValue(256), byCounter(256);
  DeviceArray<uint32_t> counter(std::vector<uint32_t>{11});
  kc::GlobalView view{shape.data(), shape.data(), nullptr, 2};
  ASSERT_EQ(kg::dropout(dx.get(), view, 0.4f, kernels::PhiloxKey{5, 2, 11}, byValue.get(), stream), cudaSuccess);
  // The key's step (0) is replaced by the counter's 11.
  ASSERT_EQ(kg::dropout(dx.get(), view, 0.4f, kernels::PhiloxKey{5, 2, 0}, byCounter.get(), stream, counter.get()),
            cudaSuccess);
  sync();
  EXPECT_EQ(byValue.download(), byCounter.download());

  kc::AttentionParams p;
  p.batch = 1, p.seq = 9, p.heads = 2, p.headDim = 32, p.scale = 0.2f, p.causal = true, p.dropoutP = 0.3f;
  p.dropoutKey = kernels::PhiloxKey{5, 3, 11};
  size_t n = sz(p.batch * p.seq * p.heads * p.headDim);
  auto q = randomFloats(rng, n);
  DeviceArray<float> dq(q), o1(n), o2(n);
  ASSERT_EQ(kg::attentionForward(p, dq.get(), dq.get(), dq.get(), o1.get(), stream), cudaSuccess);
  p.dropoutKey.step = 0;
  ASSERT_EQ(kg::attentionForward(p, dq.get(), dq.get(), dq.get(), o2.get(), stream, counter.get()), cudaSuccess);
  sync();
  EXPECT_EQ(o1.download(), o2.download());

  kc::AdamConfig config;
  config.beta1 = 0.9, config.beta2 = 0.95, config.eps = 1e-8, config.weightDecay = 0.01;
  auto param = randomFloats(rng, 512), grad = randomFloats(rng, 512);
  std::vector<float> zeros(512, 0.0f);
  DeviceArray<float> p1(param), p2(param), g(grad), m1(zeros), v1(zeros), m2(zeros), v2(zeros),
      lr(std::vector<float>{1e-3f}), scale(std::vector<float>{0.5f});
  double bias[2];
  kg::adamwBiasCorrections(config, 7, bias);
  DeviceArray<double> dbias(std::vector<double>{bias[0], bias[1]});
  ASSERT_EQ(kg::adamwStep(p1.get(), g.get(), m1.get(), v1.get(), 512, config, lr.get(), scale.get(), 7, stream),
            cudaSuccess);
  ASSERT_EQ(kg::adamwStep(p2.get(), g.get(), m2.get(), v2.get(), 512, config, lr.get(), scale.get(), dbias.get(),
                          stream),
            cudaSuccess);
  sync();
  EXPECT_EQ(p1.download(), p2.download());
  EXPECT_EQ(v1.download(), v2.download());
}

} // namespace
