// Every CUDA kernel against the CPU kernel (the reference) on fresh random inputs: fp32 to 1e-5 relative (GpuTestUtil's
// expectClose), bf16 to 2e-2. Contract and attention are in ContractAttentionTests.cpp.
#include "GpuTestUtil.h"

#include "kernels/cpu/Adam.h"
#include "kernels/cpu/Dropout.h"
#include "kernels/cpu/Elementwise.h"
#include "kernels/cpu/Embedding.h"
#include "kernels/cpu/Gelu.h"
#include "kernels/cpu/LayerNorm.h"
#include "kernels/cpu/Layout.h"
#include "kernels/cpu/Reduce.h"
#include "kernels/cpu/Softmax.h"
#include "kernels/cuda/Kernels.h"

#include <cstring>

using namespace meg;
using namespace meg::gputest;
namespace kc = meg::kernels::cpu;
namespace kg = meg::kernels::cuda;

namespace {

using KernelTest = GpuTest;

int64_t numel(const std::vector<int64_t> &shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

TEST_F(KernelTest, BinaryBroadcastMatchesCpu) {
  const std::vector<int64_t> sa = {3, 1, 5}, sb = {4, 5}, so = {3, 4, 5};
  auto a = randomFloats(rng, static_cast<size_t>(numel(sa))), b = randomFloats(rng, static_cast<size_t>(numel(sb)), 0.5f, 2.0f);
  DeviceArray<float> da(a), db(b), dout(static_cast<size_t>(numel(so)));
  for (kc::BinaryOp op : {kc::BinaryOp::Add, kc::BinaryOp::Sub, kc::BinaryOp::Mul, kc::BinaryOp::Div}) {
    std::vector<float> ref(static_cast<size_t>(numel(so)));
    kc::binary(op, a.data(), sa.data(), 3, b.data(), sb.data(), 2, ref.data());
    ASSERT_EQ(kg::binary(op, da.get(), sa.data(), 3, db.get(), sb.data(), 2, dout.get(), stream), cudaSuccess);
    sync();
    expectClose(dout.download(), ref, kF32Tol, "binary op " + std::to_string(int(op)));
  }
  // Shapes that do not broadcast are refused before any launch.
  const std::vector<int64_t> bad = {3};
  EXPECT_EQ(kg::binary(kc::BinaryOp::Add, da.get(), sa.data(), 3, db.get(), bad.data(), 1, dout.get(), stream),
            cudaErrorInvalidValue);
}

TEST_F(KernelTest, UnaryMatchesCpu) {
  auto x = randomFloats(rng, 1000, 0.1f, 3.0f);
  DeviceArray<float> dx(x), dy(x.size());
  std::vector<float> ref(x.size());
  struct Case {
    kg::UnaryOp op;
    void (*cpu)(const float *, int64_t, float *);
  } cases[] = {{kg::UnaryOp::Exp, &kc::expForward}, {kg::UnaryOp::Log, &kc::logForward},
               {kg::UnaryOp::Tanh, &kc::tanhForward}};
  for (const Case &c : cases) {
    c.cpu(x.data(), int64_t(x.size()), ref.data());
    ASSERT_EQ(kg::unary(c.op, dx.get(), int64_t(x.size()), 1.0f, dy.get(), stream), cudaSuccess);
    sync();
    expectClose(dy.download(), ref, kF32Tol, "unary " + std::to_string(int(c.op)));
  }
  kc::scale(x.data(), int64_t(x.size()), -0.37f, ref.data());
  ASSERT_EQ(kg::unary(kg::UnaryOp::Scale, dx.get(), int64_t(x.size()), -0.37f, dy.get(), stream), cudaSuccess);
  sync();
  expectClose(dy.download(), ref, kF32Tol, "scale");
}

TEST_F(KernelTest, BroadcastFillAndCastMatchCpu) {
  const std::vector<int64_t> sx = {4, 1}, so = {2, 4, 3};
  auto x = randomFloats(rng, 4);
  DeviceArray<float> dx(x), dout(24);
  std::vector<float> ref(24);
  kc::broadcastTo(x.data(), sx.data(), 2, so.data(), 3, ref.data());
  ASSERT_EQ(kg::broadcastTo(dx.get(), sx.data(), 2, so.data(), 3, dout.get(), stream), cudaSuccess);
  sync();
  expectClose(dout.download(), ref, 0, "broadcast");

  kc::fill(ref.data(), 24, 2.5f);
  ASSERT_EQ(kg::fill(dout.get(), 24, 2.5f, stream), cudaSuccess);
  sync();
  expectClose(dout.download(), ref, 0, "fill");

  // f32 -> i32 truncates toward zero and i32 -> f32 is exact, as the CPU adapter's static_casts.
  auto f = randomFloats(rng, 64, -100.0f, 100.0f);
  DeviceArray<float> df(f), back(64);
  DeviceArray<int32_t> di(64);
  ASSERT_EQ(kg::cast(df.get(), kg::Elem::F32, di.get(), kg::Elem::I32, 64, stream), cudaSuccess);
  ASSERT_EQ(kg::cast(di.get(), kg::Elem::I32, back.get(), kg::Elem::F32, 64, stream), cudaSuccess);
  sync();
  auto ints = di.download();
  std::vector<float> expectInts(64);
  for (size_t i = 0; i < 64; ++i) {
    EXPECT_EQ(ints[i], int32_t(f[i])) << i;
    expectInts[i] = float(int32_t(f[i]));
  }
  expectClose(back.download(), expectInts, 0, "i32 -> f32");

  // f32 -> bf16 -> f32 keeps 8 significant bits.
  DeviceArray<uint16_t> dh(64);
  ASSERT_EQ(kg::cast(df.get(), kg::Elem::F32, dh.get(), kg::Elem::BF16, 64, stream), cudaSuccess);
  ASSERT_EQ(kg::cast(dh.get(), kg::Elem::BF16, back.get(), kg::Elem::F32, 64, stream), cudaSuccess);
  sync();
  expectClose(back.download(), f, kBf16Tol, "bf16 round trip");
}

TEST_F(KernelTest, GeluMatchesCpu) {
  auto x = randomFloats(rng, 4096, -5.0f, 5.0f), dy = randomFloats(rng, 4096);
  DeviceArray<float> dx(x), ddy(dy), dout(x.size());
  std::vector<float> ref(x.size());
  for (kc::GeluForm form : {kc::GeluForm::Tanh, kc::GeluForm::Erf}) {
    kc::geluForward(form, x.data(), int64_t(x.size()), ref.data());
    ASSERT_EQ(kg::geluForward(form, dx.get(), int64_t(x.size()), dout.get(), stream), cudaSuccess);
    sync();
    expectClose(dout.download(), ref, kF32Tol, "gelu forward");
    kc::geluBackward(form, x.data(), dy.data(), int64_t(x.size()), ref.data());
    ASSERT_EQ(kg::geluBackward(form, dx.get(), ddy.get(), int64_t(x.size()), dout.get(), stream), cudaSuccess);
    sync();
    expectClose(dout.download(), ref, kF32Tol, "gelu backward");
  }
}

TEST_F(KernelTest, LayerNormMatchesCpu) {
  const int64_t rows = 37, n = 300;
  auto x = randomFloats(rng, static_cast<size_t>(rows * n), -2.0f, 3.0f), g = randomFloats(rng, static_cast<size_t>(n)),
       b = randomFloats(rng, static_cast<size_t>(n)), dy = randomFloats(rng, static_cast<size_t>(rows * n));
  DeviceArray<float> dx(x), dg(g), dbias(b), ddy(dy), y(x.size()), gx(x.size()), gg(static_cast<size_t>(n)), gb(static_cast<size_t>(n)),
      scratch(static_cast<size_t>(kg::layerNormBackwardScratch(rows, n)));
  std::vector<float> ref(x.size()), mean(static_cast<size_t>(rows)), rstd(static_cast<size_t>(rows));
  kc::layerNormForward(x.data(), g.data(), b.data(), rows, n, 1e-5f, ref.data(), mean.data(), rstd.data());
  ASSERT_EQ(kg::layerNormForward(dx.get(), dg.get(), dbias.get(), rows, n, 1e-5f, y.get(), stream), cudaSuccess);
  sync();
  expectClose(y.download(), ref, kF32Tol, "layernorm forward");

  std::vector<float> refDx(x.size()), refDg(static_cast<size_t>(n), 0.0f), refDb(static_cast<size_t>(n), 0.0f);
  kc::layerNormBackward(x.data(), g.data(), mean.data(), rstd.data(), dy.data(), rows, n, refDx.data(), refDg.data(),
                        refDb.data());
  ASSERT_EQ(kg::layerNormBackward(dx.get(), dg.get(), ddy.get(), rows, n, 1e-5f, gx.get(), gg.get(), gb.get(),
                                  scratch.get(), stream),
            cudaSuccess);
  sync();
  expectClose(gx.download(), refDx, kF32Tol, "layernorm dx");
  expectClose(gg.download(), refDg, kF32Tol, "layernorm dgain");
  expectClose(gb.download(), refDb, kF32Tol, "layernorm dbias");
}

TEST_F(KernelTest, SoftmaxMatchesCpu) {
  const int64_t rows = 19, n = 1000;
  auto x = randomFloats(rng, static_cast<size_t>(rows * n), -8.0f, 8.0f), dy = randomFloats(rng, static_cast<size_t>(rows * n));
  DeviceArray<float> dx(x), ddy(dy), y(x.size()), gx(x.size());
  std::vector<float> ref(x.size()), refDx(x.size());
  kc::softmaxForward(x.data(), rows, n, ref.data());
  ASSERT_EQ(kg::softmaxForward(dx.get(), rows, n, y.get(), stream), cudaSuccess);
  sync();
  expectClose(y.download(), ref, kF32Tol, "softmax forward");
  DeviceArray<float> dref(ref);
  kc::softmaxBackward(ref.data(), dy.data(), rows, n, refDx.data());
  ASSERT_EQ(kg::softmaxBackward(dref.get(), ddy.get(), rows, n, gx.get(), stream), cudaSuccess);
  sync();
  expectClose(gx.download(), refDx, kF32Tol, "softmax backward");
}

TEST_F(KernelTest, ReductionsMatchCpu) {
  const std::vector<int64_t> shape = {3, 50, 4, 7};
  auto x = randomFloats(rng, static_cast<size_t>(numel(shape)), -3.0f, 3.0f);
  DeviceArray<float> dx(x), out(x.size());
  const bool masks[][4] = {{false, false, false, true}, {true, false, true, false}, {true, true, true, true},
                           {false, true, false, false}};
  for (const auto &mask : masks)
    for (bool isMax : {false, true}) {
      int64_t outN = 1;
      for (int d = 0; d < 4; ++d)
        outN *= mask[d] ? 1 : shape[static_cast<size_t>(d)];
      std::vector<float> ref(static_cast<size_t>(outN));
      (isMax ? kc::reduceMax : kc::reduceSum)(x.data(), shape.data(), 4, mask, ref.data());
      ASSERT_EQ(kg::reduce(isMax, dx.get(), shape.data(), 4, mask, out.get(), stream), cudaSuccess);
      sync();
      auto got = out.download();
      got.resize(static_cast<size_t>(outN));
      expectClose(got, ref, kF32Tol, isMax ? "reduce_max" : "reduce_sum");
    }

  DeviceArray<double> scratch(static_cast<size_t>(kg::kSumSquaresScratch));
  ASSERT_EQ(kg::sumSquares(dx.get(), int64_t(x.size()), out.get(), scratch.get(), stream), cudaSuccess);
  sync();
  expectClose({out.download()[0]}, {float(kc::sumOfSquares(x.data(), int64_t(x.size())))}, kF32Tol, "sum_squares");
}

TEST_F(KernelTest, PickAndValidMaskMatchCpu) {
  const int64_t rows = 64, cols = 100, colOffset = 50;
  auto x = randomFloats(rng, static_cast<size_t>(rows * cols)), dy = randomFloats(rng, static_cast<size_t>(rows));
  auto ids = randomInts(rng, static_cast<size_t>(rows), -1, 200); // in and out of this vocab slice [50, 150)
  DeviceArray<float> dx(x), ddy(dy), out(static_cast<size_t>(rows)), grad(static_cast<size_t>(rows * cols));
  DeviceArray<int32_t> dids(ids);
  std::vector<float> ref(static_cast<size_t>(rows)), refGrad(static_cast<size_t>(rows * cols));
  kc::pick(x.data(), ids.data(), rows, cols, colOffset, ref.data());
  ASSERT_EQ(kg::pick(dx.get(), dids.get(), rows, cols, colOffset, out.get(), stream), cudaSuccess);
  kc::pickBackward(dy.data(), ids.data(), rows, cols, colOffset, refGrad.data());
  ASSERT_EQ(kg::pickBackward(ddy.get(), dids.get(), rows, cols, colOffset, grad.get(), stream), cudaSuccess);
  sync();
  expectClose(out.download(), ref, 0, "pick");
  expectClose(grad.download(), refGrad, 0, "pick_grad");

  kc::validMask(ids.data(), rows, -1, ref.data());
  ASSERT_EQ(kg::validMask(dids.get(), rows, -1, out.get(), stream), cudaSuccess);
  sync();
  expectClose(out.download(), ref, 0, "valid_mask");
}

TEST_F(KernelTest, EmbeddingMatchesCpuAndIsDeterministic) {
  const int64_t rows = 300, dim = 72, tokens = 500, rowOffset = 100;
  auto table = randomFloats(rng, static_cast<size_t>(rows * dim)), dy = randomFloats(rng, static_cast<size_t>(tokens * dim));
  auto ids = randomInts(rng, static_cast<size_t>(tokens), 0, 499); // repeats, and ids outside this shard's rows
  DeviceArray<float> dtable(table), ddy(dy), out(static_cast<size_t>(tokens * dim)), grad(static_cast<size_t>(rows * dim));
  DeviceArray<int32_t> dids(ids);
  std::vector<float> ref(static_cast<size_t>(tokens * dim)), refGrad(static_cast<size_t>(rows * dim), 0.0f);
  kc::embeddingForward(table.data(), rows, dim, ids.data(), tokens, rowOffset, ref.data());
  ASSERT_EQ(kg::embeddingForward(dtable.get(), rows, dim, dids.get(), tokens, rowOffset, out.get(), stream),
            cudaSuccess);
  sync();
  expectClose(out.download(), ref, 0, "embedding");
  kc::embeddingBackward(dy.data(), ids.data(), tokens, rowOffset, rows, dim, refGrad.data());
  ASSERT_EQ(kg::embeddingBackward(ddy.get(), dids.get(), tokens, rowOffset, rows, dim, grad.get(), stream),
            cudaSuccess);
  sync();
  auto first = grad.download();
  // Token-order float sums, as the CPU's: the same bits.
  expectClose(first, refGrad, 0, "embedding_grad");
  ASSERT_EQ(kg::embeddingBackward(ddy.get(), dids.get(), tokens, rowOffset, rows, dim, grad.get(), stream),
            cudaSuccess);
  sync();
  EXPECT_EQ(0, std::memcmp(first.data(), grad.download().data(), first.size() * sizeof(float)));
}

TEST_F(KernelTest, DropoutDrawsTheCpuMaskOnAShard) {
  // A [6, 10, 8] tensor split on dim 1: this shard holds columns [5, 10); the mask must be the unsharded one's.
  const std::vector<int64_t> local = {6, 5, 8}, global = {6, 10, 8}, offset = {0, 5, 0};
  auto x = randomFloats(rng, static_cast<size_t>(numel(local)));
  DeviceArray<float> dx(x), y(x.size());
  kc::GlobalView view{local.data(), global.data(), offset.data(), 3};
  kernels::PhiloxKey key{0x1234567890ull, 7, 3};
  std::vector<float> ref(x.size());
  kc::dropoutForward(x.data(), view, 0.3f, key, ref.data());
  ASSERT_EQ(kg::dropout(dx.get(), view, 0.3f, key, y.get(), stream), cudaSuccess);
  sync();
  auto got = y.download();
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_EQ(got[i] == 0.0f, ref[i] == 0.0f) << "mask differs at " << i;
  expectClose(got, ref, kF32Tol, "dropout");
}

TEST_F(KernelTest, LayoutOpsMatchCpu) {
  const std::vector<int64_t> shape = {3, 4, 5, 6};
  auto x = randomFloats(rng, static_cast<size_t>(numel(shape)));
  DeviceArray<float> dx(x), y(x.size()), back(x.size());
  const int perm[] = {2, 0, 3, 1};
  std::vector<float> ref(x.size());
  kc::transpose(x.data(), shape.data(), 4, perm, ref.data());
  ASSERT_EQ(kg::transpose(dx.get(), shape.data(), 4, perm, y.get(), stream), cudaSuccess);
  sync();
  expectClose(y.download(), ref, 0, "transpose");

  std::vector<float> sliced(static_cast<size_t>(3 * 2 * 5 * 6)), full(x.size());
  kc::slice(x.data(), shape.data(), 4, 1, 1, 2, sliced.data());
  ASSERT_EQ(kg::slice(dx.get(), shape.data(), 4, 1, 1, 2, y.get(), stream), cudaSuccess);
  sync();
  auto got = y.download();
  got.resize(sliced.size());
  expectClose(got, sliced, 0, "slice");
  DeviceArray<float> dsliced(sliced);
  kc::sliceBackward(sliced.data(), shape.data(), 4, 1, 1, 2, full.data());
  ASSERT_EQ(kg::sliceBackward(dsliced.get(), shape.data(), 4, 1, 1, 2, back.get(), stream), cudaSuccess);
  sync();
  expectClose(back.download(), full, 0, "slice_grad");

  std::vector<float> selected(static_cast<size_t>(3 * 4 * 6));
  kc::select(x.data(), shape.data(), 4, 2, 3, selected.data());
  ASSERT_EQ(kg::select(dx.get(), shape.data(), 4, 2, 3, y.get(), stream), cudaSuccess);
  sync();
  got = y.download();
  got.resize(selected.size());
  expectClose(got, selected, 0, "select");
  DeviceArray<float> dselected(selected);
  kc::selectBackward(selected.data(), shape.data(), 4, 2, 3, full.data());
  ASSERT_EQ(kg::selectBackward(dselected.get(), shape.data(), 4, 2, 3, back.get(), stream), cudaSuccess);
  sync();
  expectClose(back.download(), full, 0, "select_grad");

  // mask_padding of dim 3 on a shard starting at global column 6 (the dim's second half of 12), valid = 9.
  kc::maskPadding(x.data(), 3 * 4 * 5, 6, 1, 6, 9, -1e4f, ref.data());
  ASSERT_EQ(kg::maskPadding(dx.get(), shape.data(), 4, 3, 6, 9, -1e4f, y.get(), stream), cudaSuccess);
  sync();
  expectClose(y.download(), ref, 0, "mask_padding");
}

TEST_F(KernelTest, AdamWMatchesCpu) {
  const int64_t n = 5000;
  auto param = randomFloats(rng, static_cast<size_t>(n)), grad = randomFloats(rng, static_cast<size_t>(n)), m = randomFloats(rng, static_cast<size_t>(n)),
       v = randomFloats(rng, static_cast<size_t>(n), 0.0f, 0.01f);
  kc::AdamConfig config;
  config.lr = 3e-4f; // the float the lr step writes
  config.weightDecay = 0.1;
  const float gradScale = 0.8f, lr = float(config.lr);
  DeviceArray<float> dp(param), dg(grad), dm(m), dv(v), dlr(std::vector<float>{lr}),
      dscale(std::vector<float>{gradScale});
  config.lr = lr;
  kc::adamwStep(param.data(), grad.data(), m.data(), v.data(), n, config, gradScale, 3);
  ASSERT_EQ(kg::adamwStep(dp.get(), dg.get(), dm.get(), dv.get(), n, config, dlr.get(), dscale.get(), 3, stream),
            cudaSuccess);
  sync();
  expectClose(dp.download(), param, kF32Tol, "adamw param");
  expectClose(dm.download(), m, kF32Tol, "adamw m");
  expectClose(dv.download(), v, kF32Tol, "adamw v");
}

TEST_F(KernelTest, ReduceMembersSumsInMemberOrder) {
  const int members = 3;
  const int64_t count = 1000;
  std::vector<std::vector<float>> host;
  std::vector<std::unique_ptr<DeviceArray<float>>> dev;
  std::vector<const float *> ins;
  std::vector<float *> outs;
  for (int m = 0; m < members; ++m) {
    host.push_back(randomFloats(rng, static_cast<size_t>(count)));
    dev.push_back(std::make_unique<DeviceArray<float>>(host.back()));
    ins.push_back(dev.back()->get());
    outs.push_back(dev.back()->get());
  }
  std::vector<float> sum(static_cast<size_t>(count)), mx(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) {
    sum[static_cast<size_t>(i)] = (host[0][static_cast<size_t>(i)] + host[1][static_cast<size_t>(i)]) + host[2][static_cast<size_t>(i)];
    mx[static_cast<size_t>(i)] = std::max(std::max(host[0][static_cast<size_t>(i)], host[1][static_cast<size_t>(i)]), host[2][static_cast<size_t>(i)]);
  }
  DeviceArray<float> maxOut(static_cast<size_t>(count));
  float *maxPtr = maxOut.get();
  ASSERT_EQ(kg::reduceMembers(true, ins.data(), members, 0, &maxPtr, 1, 0, count, stream), cudaSuccess);
  sync();
  // In place into every member, as the one-GPU all_reduce does (the sum reads before it writes per element).
  ASSERT_EQ(kg::reduceMembers(false, ins.data(), members, 0, outs.data(), members, 0, count, stream), cudaSuccess);
  sync();
  expectClose(maxOut.download(), mx, 0, "member max");
  for (int m = 0; m < members; ++m)
    expectClose(dev[static_cast<size_t>(m)]->download(), sum, 0, "member sum");
}

} // namespace
