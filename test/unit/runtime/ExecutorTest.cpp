//===- ExecutorTest.cpp - CPU backend steps, sharding-aware arguments, collectives ===//
#include "PlanBuilder.h"

#include "runtime/cpu/CpuBackend.h"
#include "runtime/exec/Backend.h"
#include "runtime/comm/Communicator.h"
#include "runtime/exec/Executor.h"
#include "runtime/plan/Plan.h"

#include "kernels/Half.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

using namespace meg;
using namespace meg::runtime;
using namespace meg::runtime::test;
namespace fb = meg::plan;

namespace {

/// Every rank of a plan set built from specs, prepared on CPU backends with in-process communicators.
struct Ranks {
  std::vector<LoadedPlan> plans;
  std::vector<std::unique_ptr<Backend>> backends;
  std::vector<std::unique_ptr<Communicator>> comms;
  std::unique_ptr<RankThreads> threads;

  explicit Ranks(const std::vector<PlanSpec> &specs) {
    for (const PlanSpec &s : specs) {
      auto plan = parsePlan(buildPlan(s), "t.megplan");
      EXPECT_TRUE(bool(plan)) << llvm::toString(plan.takeError());
      plans.push_back(std::move(*plan));
    }
    auto world = InProcessCommunicator::createWorld(specs[0].dp, specs[0].tp);
    for (size_t r = 0; r < plans.size(); ++r) {
      backends.push_back(createCpuBackend());
      llvm::Error err = backends.back()->prepare(plans[r]);
      EXPECT_FALSE(bool(err)) << llvm::toString(std::move(err));
      comms.push_back(std::make_unique<InProcessCommunicator>(world, int(r)));
    }
    threads = std::make_unique<RankThreads>(int(plans.size()));
  }

  void run(const StepContext &ctx = {}) {
    llvm::Error err = threads->run([&](int r) { return Executor(plans[r], *backends[r], *comms[r]).run(ctx); });
    EXPECT_FALSE(bool(err)) << llvm::toString(std::move(err));
  }

  std::vector<float> read(int rank, const TensorSlot &slot) {
    std::vector<float> out(size_t(slot.numel()));
    backends[rank]->readTensor(slot, llvm::MutableArrayRef<uint8_t>(reinterpret_cast<uint8_t *>(out.data()),
                                                                    out.size() * 4));
    return out;
  }
  std::vector<float> result(int rank, size_t step) { return read(rank, plans[rank].steps[step].results[0]); }
  void writeInput(int rank, size_t i, const std::vector<int32_t> &v) {
    backends[rank]->writeInput(i, llvm::ArrayRef<uint8_t>(reinterpret_cast<const uint8_t *>(v.data()), v.size() * 4));
  }
};

std::vector<float> randomValues(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist;
  std::vector<float> v(n);
  for (float &x : v)
    x = dist(rng);
  return v;
}

TEST(ExecutorTest, ContractGeluReduce) {
  PlanSpec p;
  p.arenaBytes = 72;
  p.params = {{"a", {2, 3}}, {"b", {3, 4}}};
  p.steps = {
      {"contract", {symAttr("spec", "ij,jk->ik")}, {paramRef(0, {2, 3}), paramRef(1, {3, 4})}, {arenaRef(0, {2, 4})}},
      {"gelu", {symAttr("approx", "tanh")}, {arenaRef(0, {2, 4})}, {arenaRef(32, {2, 4})}},
      {"reduce_sum", {intsAttr("dims", {1}), boolAttr("keepdim", false)}, {arenaRef(32, {2, 4})},
       {arenaRef(64, {2})}},
  };
  Ranks ranks({p});
  std::vector<float> a = randomValues(6, 1), b = randomValues(12, 2);
  ranks.backends[0]->writeParam(0, a);
  ranks.backends[0]->writeParam(1, b);
  ranks.run();
  std::vector<float> out = ranks.result(0, 2);
  for (int i = 0; i < 2; ++i) {
    double sum = 0;
    for (int k = 0; k < 4; ++k) {
      double y = 0;
      for (int j = 0; j < 3; ++j)
        y += double(a[i * 3 + j]) * b[j * 4 + k];
      sum += 0.5 * y * (1 + std::tanh(std::sqrt(2 / M_PI) * (y + 0.044715 * y * y * y)));
    }
    EXPECT_NEAR(out[i], sum, 1e-5);
  }
}

TEST(ExecutorTest, VocabSplitEmbeddingAndPick) {
  // Table [8, 3] split on rows over tp = 2; logits [4, 8] split on the vocab dim.
  std::vector<int32_t> ids = {0, 3, 5, 7};
  std::vector<float> table(24), logits(32);
  for (int i = 0; i < 24; ++i)
    table[i] = float(i);
  for (int i = 0; i < 32; ++i)
    logits[i] = float(100 + i);
  std::vector<PlanSpec> specs;
  for (int r = 0; r < 2; ++r) {
    PlanSpec p;
    p.tp = 2;
    p.rank = r;
    p.arenaBytes = 128;
    p.params = {{"table", {8, 3}, {4, 3}, {4 * r, 0}}, {"logits", {4, 8}, {4, 4}, {0, 4 * r}}};
    p.inputs = {{"ids", fb::DType::I32, {4}}};
    RefSpec tableRef = sharded(paramRef(0, {4, 3}), {8, 3}, {4 * r, 0});
    RefSpec logitsRef = sharded(paramRef(1, {4, 4}), {4, 8}, {0, 4 * r});
    p.steps = {
        {"embedding", {}, {tableRef, inputRef(0, {4})}, {arenaRef(0, {4, 3})}},
        {"all_reduce", {symAttr("axis", "tp"), symAttr("reduce", "sum")}, {arenaRef(0, {4, 3})},
         {arenaRef(48, {4, 3})}},
        {"pick", {}, {logitsRef, inputRef(0, {4})}, {arenaRef(96, {4})}},
        {"all_reduce", {symAttr("axis", "tp"), symAttr("reduce", "sum")}, {arenaRef(96, {4})},
         {arenaRef(112, {4})}},
    };
    specs.push_back(p);
  }
  Ranks ranks(specs);
  for (int r = 0; r < 2; ++r) {
    ranks.backends[r]->writeParam(0, llvm::ArrayRef<float>(table).slice(12 * r, 12));
    std::vector<float> shard;
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 4; ++j)
        shard.push_back(logits[i * 8 + 4 * r + j]);
    ranks.backends[r]->writeParam(1, shard);
    ranks.writeInput(r, 0, ids);
  }
  ranks.run();
  for (int r = 0; r < 2; ++r) {
    std::vector<float> emb = ranks.result(r, 1), picked = ranks.result(r, 3);
    for (int t = 0; t < 4; ++t) {
      for (int h = 0; h < 3; ++h)
        EXPECT_EQ(emb[t * 3 + h], table[ids[t] * 3 + h]);
      EXPECT_EQ(picked[t], logits[t * 8 + ids[t]]);
    }
  }
}

TEST(ExecutorTest, GatherAndScatterAlongAnInnerDim) {
  std::vector<float> full = {1, 2, 3, 4, 5, 6, 7, 8}; // [2, 4]
  std::vector<PlanSpec> specs;
  for (int r = 0; r < 2; ++r) {
    PlanSpec p;
    p.tp = 2;
    p.rank = r;
    p.arenaBytes = 48;
    p.params = {{"p", {2, 4}, {2, 2}, {0, 2 * r}}, {"q", {2, 4}}};
    p.steps = {
        {"all_gather", {symAttr("axis", "tp"), intAttr("dim", 1)}, {sharded(paramRef(0, {2, 2}), {2, 4}, {0, 2 * r})},
         {arenaRef(0, {2, 4})}},
        {"reduce_scatter", {symAttr("axis", "tp"), intAttr("dim", 1), symAttr("reduce", "sum")},
         {paramRef(1, {2, 4})}, {sharded(arenaRef(32, {2, 2}), {2, 4}, {0, 2 * r})}},
    };
    specs.push_back(p);
  }
  Ranks ranks(specs);
  for (int r = 0; r < 2; ++r) {
    ranks.backends[r]->writeParam(0, {full[2 * r], full[2 * r + 1], full[4 + 2 * r], full[5 + 2 * r]});
    std::vector<float> q = full;
    for (float &x : q)
      x *= float(r + 1);
    ranks.backends[r]->writeParam(1, q);
  }
  ranks.run();
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(ranks.result(r, 0), full);
    EXPECT_EQ(ranks.result(r, 1),
              (std::vector<float>{3 * full[2 * r], 3 * full[2 * r + 1], 3 * full[4 + 2 * r], 3 * full[5 + 2 * r]}));
  }
}

TEST(ExecutorTest, DropoutMaskDoesNotDependOnTheSplit) {
  StepContext ctx;
  ctx.seed = 42;
  ctx.step = 3;
  auto dropoutPlan = [](int tp, int r) {
    PlanSpec p;
    p.tp = tp;
    p.rank = r;
    int64_t cols = 6 / tp;
    p.arenaBytes = 4 * 4 * cols;
    p.params = {{"x", {4, 6}, {4, cols}, {0, cols * r}}};
    p.steps = {{"dropout",
                {floatAttr("p", 0.5), intAttr("stream", 7)},
                {sharded(paramRef(0, {4, cols}), {4, 6}, {0, cols * r})},
                {sharded(arenaRef(0, {4, cols}), {4, 6}, {0, cols * r})}}};
    return p;
  };
  Ranks whole({dropoutPlan(1, 0)});
  whole.backends[0]->writeParam(0, std::vector<float>(24, 1.0f));
  whole.run(ctx);
  std::vector<float> y = whole.result(0, 0);
  int kept = 0;
  for (float v : y) {
    EXPECT_TRUE(v == 0.0f || v == 2.0f);
    kept += v != 0;
  }
  EXPECT_GT(kept, 4);
  EXPECT_LT(kept, 20);

  Ranks split({dropoutPlan(2, 0), dropoutPlan(2, 1)});
  for (int r = 0; r < 2; ++r)
    split.backends[r]->writeParam(0, std::vector<float>(12, 1.0f));
  split.run(ctx);
  for (int r = 0; r < 2; ++r) {
    std::vector<float> shard = split.result(r, 0);
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 3; ++j)
        EXPECT_EQ(shard[i * 3 + j], y[i * 6 + 3 * r + j]) << "rank " << r << " at " << i << "," << j;
  }

  ctx.dropout = false; // evaluation: identity
  whole.run(ctx);
  EXPECT_EQ(whole.result(0, 0), std::vector<float>(24, 1.0f));
}

TEST(ExecutorTest, AttentionSplitOverHeadsAndBatchDrawsTheUnsplitMasks) {
  const int64_t B = 2, S = 5, H = 4, D = 3;
  std::vector<float> q = randomValues(B * S * H * D, 3), k = randomValues(B * S * H * D, 4),
                     v = randomValues(B * S * H * D, 5);
  StepContext ctx;
  ctx.seed = 9;
  ctx.step = 1;
  // Shard [b, S, h, D] at offset [b0, 0, h0, 0] of a dp x tp mesh.
  auto plan = [&](int dp, int tp, int r) {
    int64_t b = B / dp, h = H / tp, b0 = (r / tp) * b, h0 = (r % tp) * h;
    PlanSpec p;
    p.dp = dp;
    p.tp = tp;
    p.rank = r;
    p.arenaBytes = b * S * h * D * 4;
    std::vector<int64_t> shape = {b, S, h, D}, global = {B, S, H, D}, offset = {b0, 0, h0, 0};
    for (const char *name : {"q", "k", "v"})
      p.params.push_back({name, global, shape, offset});
    p.steps = {{"attention",
                {boolAttr("causal", true), floatAttr("dropout", 0.3), floatAttr("scale", 0.5), intAttr("stream", 5)},
                {sharded(paramRef(0, shape), global, offset), sharded(paramRef(1, shape), global, offset),
                 sharded(paramRef(2, shape), global, offset)},
                {sharded(arenaRef(0, shape), global, offset)}}};
    return p;
  };
  auto shardOf = [&](const std::vector<float> &full, int64_t b, int64_t b0, int64_t h, int64_t h0) {
    std::vector<float> out;
    for (int64_t i = 0; i < b; ++i)
      for (int64_t s = 0; s < S; ++s)
        for (int64_t j = 0; j < h; ++j)
          for (int64_t d = 0; d < D; ++d)
            out.push_back(full[(((b0 + i) * S + s) * H + h0 + j) * D + d]);
    return out;
  };
  Ranks whole({plan(1, 1, 0)});
  whole.backends[0]->writeParam(0, q);
  whole.backends[0]->writeParam(1, k);
  whole.backends[0]->writeParam(2, v);
  whole.run(ctx);
  std::vector<float> ref = whole.result(0, 0);

  for (auto [dp, tp] : {std::pair{1, 2}, std::pair{2, 1}, std::pair{2, 2}}) {
    std::vector<PlanSpec> specs;
    for (int r = 0; r < dp * tp; ++r)
      specs.push_back(plan(dp, tp, r));
    Ranks split(specs);
    int64_t b = B / dp, h = H / tp;
    for (int r = 0; r < dp * tp; ++r) {
      int64_t b0 = (r / tp) * b, h0 = (r % tp) * h;
      split.backends[r]->writeParam(0, shardOf(q, b, b0, h, h0));
      split.backends[r]->writeParam(1, shardOf(k, b, b0, h, h0));
      split.backends[r]->writeParam(2, shardOf(v, b, b0, h, h0));
    }
    split.run(ctx);
    for (int r = 0; r < dp * tp; ++r) {
      int64_t b0 = (r / tp) * b, h0 = (r % tp) * h;
      EXPECT_EQ(split.result(r, 0), shardOf(ref, b, b0, h, h0)) << "dp " << dp << " tp " << tp << " rank " << r;
    }
  }
}

/// Rounds through a 16-bit type (bf16 or f16) and back.
float roundTo(fb::DType t, float x) {
  return t == fb::DType::BF16 ? kernels::bf16ToFloat(kernels::floatToBf16(x))
                              : kernels::f16ToFloat(kernels::floatToF16(x));
}

/// A 16-bit plan (cast the fp32 params down, contract, gelu, cast up) equals the fp32 steps run on the rounded
/// values with every result rounded to nearest even: the CPU reads 16-bit operands into fp32, computes in fp32 and
/// rounds on store, as a GPU's 16-bit kernels do.
void checkSixteenBitContractGelu(fb::DType t) {
  PlanSpec p;
  p.arenaBytes = 192;
  p.params = {{"a", {2, 3}}, {"b", {3, 4}}};
  p.steps = {
      {"cast", {symAttr("dtype", t == fb::DType::BF16 ? "bf16" : "f16")}, {paramRef(0, {2, 3})},
       {arenaRef(0, {2, 3}, t)}},
      {"cast", {symAttr("dtype", t == fb::DType::BF16 ? "bf16" : "f16")}, {paramRef(1, {3, 4})},
       {arenaRef(16, {3, 4}, t)}},
      {"contract", {symAttr("spec", "ij,jk->ik")}, {arenaRef(0, {2, 3}, t), arenaRef(16, {3, 4}, t)},
       {arenaRef(64, {2, 4}, t)}},
      {"gelu", {symAttr("approx", "tanh")}, {arenaRef(64, {2, 4}, t)}, {arenaRef(96, {2, 4}, t)}},
      {"cast", {symAttr("dtype", "f32")}, {arenaRef(96, {2, 4}, t)}, {arenaRef(128, {2, 4})}},
  };
  Ranks half({p});
  std::vector<float> a = randomValues(6, 7), b = randomValues(12, 8);
  half.backends[0]->writeParam(0, a);
  half.backends[0]->writeParam(1, b);
  half.run();
  std::vector<float> out = half.result(0, 4);

  // The reference: fp32 steps on rounded operands, each result rounded.
  for (float &x : a)
    x = roundTo(t, x);
  for (float &x : b)
    x = roundTo(t, x);
  PlanSpec c;
  c.arenaBytes = 32;
  c.params = {{"a", {2, 3}}, {"b", {3, 4}}};
  c.steps = {{"contract", {symAttr("spec", "ij,jk->ik")}, {paramRef(0, {2, 3}), paramRef(1, {3, 4})},
              {arenaRef(0, {2, 4})}}};
  Ranks contract({c});
  contract.backends[0]->writeParam(0, a);
  contract.backends[0]->writeParam(1, b);
  contract.run();
  std::vector<float> y = contract.result(0, 0);
  for (float &x : y)
    x = roundTo(t, x);
  PlanSpec g;
  g.arenaBytes = 32;
  g.params = {{"y", {2, 4}}};
  g.steps = {{"gelu", {symAttr("approx", "tanh")}, {paramRef(0, {2, 4})}, {arenaRef(0, {2, 4})}}};
  Ranks gelu({g});
  gelu.backends[0]->writeParam(0, y);
  gelu.run();
  std::vector<float> expected = gelu.result(0, 0);
  for (float &x : expected)
    x = roundTo(t, x);
  EXPECT_EQ(out, expected);
  // Not the unrounded fp32 result: the rounding is there.
  EXPECT_NE(out, gelu.result(0, 0));
}

TEST(ExecutorTest, Bf16StepsComputeInFp32AndRoundOnStore) { checkSixteenBitContractGelu(fb::DType::BF16); }
TEST(ExecutorTest, F16StepsComputeInFp32AndRoundOnStore) { checkSixteenBitContractGelu(fb::DType::F16); }

TEST(ExecutorTest, CastBetweenFloatTypes) {
  PlanSpec p;
  p.arenaBytes = 64;
  p.params = {{"x", {4}}};
  p.steps = {
      {"cast", {symAttr("dtype", "bf16")}, {paramRef(0, {4})}, {arenaRef(0, {4}, fb::DType::BF16)}},
      {"cast", {symAttr("dtype", "f16")}, {arenaRef(0, {4}, fb::DType::BF16)}, {arenaRef(8, {4}, fb::DType::F16)}},
      {"cast", {symAttr("dtype", "f32")}, {arenaRef(8, {4}, fb::DType::F16)}, {arenaRef(16, {4})}},
      {"cast", {symAttr("dtype", "f16")}, {paramRef(0, {4})}, {arenaRef(32, {4}, fb::DType::F16)}},
      {"cast", {symAttr("dtype", "f32")}, {arenaRef(32, {4}, fb::DType::F16)}, {arenaRef(48, {4})}},
  };
  Ranks ranks({p});
  std::vector<float> x = {1.0f + std::ldexp(1.0f, -8), -3.0f, 1e5f, 1.0f + 3 * std::ldexp(1.0f, -11)};
  ranks.backends[0]->writeParam(0, x);
  ranks.run();
  // f32 -> bf16 -> f16 -> f32: 1 + 2^-8 ties to 1, 1e5 is 99840 in bf16 and beyond f16's range.
  std::vector<float> viaBf16 = ranks.result(0, 2);
  EXPECT_EQ(viaBf16[0], 1.0f);
  EXPECT_EQ(viaBf16[1], -3.0f);
  EXPECT_TRUE(std::isinf(viaBf16[2]));
  EXPECT_EQ(viaBf16[3], 1.0f);
  std::vector<float> viaF16 = ranks.result(0, 4);
  EXPECT_EQ(viaF16[0], 1.0f + std::ldexp(1.0f, -8));
  EXPECT_TRUE(std::isinf(viaF16[2]));
  EXPECT_EQ(viaF16[3], 1.0f + std::ldexp(1.0f, -9));
}

std::string prepareError(const PlanSpec &spec) {
  auto plan = parsePlan(buildPlan(spec), "t.megplan");
  if (!plan)
    return "load: " + llvm::toString(plan.takeError());
  auto backend = createCpuBackend();
  llvm::Error err = backend->prepare(*plan);
  return err ? llvm::toString(std::move(err)) : "<success>";
}

TEST(ExecutorTest, PrepareChecksAttributesAndShapes) {
  PlanSpec p;
  p.arenaBytes = 64;
  p.params = {{"a", {2, 3}}, {"b", {3, 4}}};
  p.steps = {{"contract", {}, {paramRef(0, {2, 3}), paramRef(1, {3, 4})}, {arenaRef(0, {2, 4})}}};
  EXPECT_EQ(prepareError(p), "t.megplan: step 0 ('contract'): missing attribute 'spec'");
  p.steps[0].attrs = {intAttr("spec", 3)};
  EXPECT_EQ(prepareError(p), "t.megplan: step 0 ('contract'): attribute 'spec' must be a symbol");
  p.steps[0].attrs = {symAttr("spec", "ij,jk->ik")};
  p.steps[0].results = {arenaRef(0, {4, 2})};
  EXPECT_EQ(prepareError(p),
            "t.megplan: step 0 ('contract'): result shape [4, 2] does not match the operands (expected [2, 4])");
  p.steps[0].results = {arenaRef(0, {2, 4})};
  EXPECT_EQ(prepareError(p), "<success>");
  p.steps.push_back({"exp", {}, {arenaRef(0, {2, 4})}, {arenaRef(16, {2, 4})}});
  // Overlap is the plan verifier's (PlanTest.MemoryOverlapAndAlignment): the plan does not load.
  EXPECT_EQ(prepareError(p), "load: t.megplan: step 1 ('exp'): result 0 overlaps operand 0 in memory");
  p.steps[1].results = {arenaRef(0, {2, 4})}; // an exact alias is fine for elementwise ops
  EXPECT_EQ(prepareError(p), "<success>");
  p.steps[1] = {"gelu", {symAttr("approx", "cubic")}, {arenaRef(0, {2, 4})}, {arenaRef(32, {2, 4})}};
  EXPECT_EQ(prepareError(p), "t.megplan: step 1 ('gelu'): unknown gelu approx 'cubic' (expected tanh or erf)");
  p.steps[1] = {"all_reduce", {symAttr("axis", "pp"), symAttr("reduce", "sum")}, {arenaRef(0, {2, 4})},
                {arenaRef(32, {2, 4})}};
  EXPECT_EQ(prepareError(p), "t.megplan: step 1 ('all_reduce'): unknown mesh axis 'pp' (expected dp or tp)");
  p.steps[1] = {"add", {}, {arenaRef(0, {2, 4}), arenaRef(0, {3})}, {arenaRef(32, {2, 4})}};
  EXPECT_EQ(prepareError(p), "t.megplan: step 1 ('add'): operand shapes [2, 4] and [3] do not broadcast");
  p.steps[1] = {"slice", {intAttr("dim", 1), intAttr("size", 4), intAttr("start", 2)}, {arenaRef(0, {2, 4})},
                {arenaRef(32, {2, 4})}};
  EXPECT_EQ(prepareError(p), "t.megplan: step 1 ('slice'): slice of 4 from 2 in dim 1 does not fit the operand shard "
                             "[2, 4] at offset [0, 0]");
}

} // namespace
