//===- InitTest.cpp - seeded init independent of the rank count, weights files ===//
#include "PlanBuilder.h"
#include "TestUtil.h"

#include "runtime/train/Init.h"
#include "runtime/io/Safetensors.h"
#include "runtime/io/Weights.h"

#include "llvm/Support/JSON.h"

#include <cmath>

using namespace meg;
using namespace meg::runtime;
using namespace meg::runtime::test;

namespace {

PlanParam makeParam(std::string name, Shape global, Shape shape, Shape offset, ParamInit init = ParamInit::Normal,
                    double std = 0.5, int64_t vocabRows = 0) {
  PlanParam p;
  p.name = std::move(name);
  p.globalShape = global;
  p.hfShape = global;
  p.shape = shape;
  p.offset = offset;
  p.init = init;
  p.std = std;
  p.vocabRows = vocabRows;
  return p;
}

TEST(InitTest, ShardsAreSlicesOfTheWholeTensor) {
  PlanParam whole = makeParam("h.0.attn.c_attn.weight", {6, 3, 4, 5}, {6, 3, 4, 5}, {0, 0, 0, 0});
  std::vector<float> full = initParamShard(whole, 7);
  for (int part = 0; part < 2; ++part) {
    PlanParam shard = makeParam(whole.name, {6, 3, 4, 5}, {6, 3, 2, 5}, {0, 0, 2 * part, 0});
    std::vector<float> s = initParamShard(shard, 7);
    size_t pos = 0;
    for (int a = 0; a < 6; ++a)
      for (int b = 0; b < 3; ++b)
        for (int c = 0; c < 2; ++c)
          for (int d = 0; d < 5; ++d)
            EXPECT_EQ(s[pos++], full[((a * 3 + b) * 4 + 2 * part + c) * 5 + d]);
  }
  // Another seed or another name draws other numbers.
  EXPECT_NE(initParamShard(whole, 8), full);
  PlanParam other = whole;
  other.name = "h.1.attn.c_attn.weight";
  EXPECT_NE(initParamShard(other, 7), full);
}

TEST(InitTest, NormalStatisticsAndConstants) {
  PlanParam p = makeParam("w", {200, 500}, {200, 500}, {0, 0}, ParamInit::Normal, 0.02);
  std::vector<float> v = initParamShard(p, 1);
  double sum = 0, sq = 0;
  for (float x : v) {
    sum += x;
    sq += double(x) * x;
  }
  double mean = sum / double(v.size()), stddev = std::sqrt(sq / double(v.size()) - mean * mean);
  EXPECT_NEAR(mean, 0.0, 2e-4);
  EXPECT_NEAR(stddev, 0.02, 2e-4);
  EXPECT_EQ(initParamShard(makeParam("g", {3}, {3}, {0}, ParamInit::Ones), 1), std::vector<float>(3, 1.0f));
  EXPECT_EQ(initParamShard(makeParam("b", {3}, {3}, {0}, ParamInit::Zeros), 1), std::vector<float>(3, 0.0f));
  PlanParam scale = makeParam("loss_scale", {}, {}, {}, ParamInit::Constant);
  scale.value = 4294967296.0; // a state that starts at a constant (the fp16 loss scale)
  EXPECT_EQ(initParamShard(scale, 1), std::vector<float>(1, 4294967296.0f));
  EXPECT_EQ(fnv1a64(""), 0xcbf29ce484222325ull);
  EXPECT_EQ(fnv1a64("a"), 0xaf63dc4c8601ec8cull);
}

TEST(InitTest, VocabPaddingRowsAreZero) {
  PlanParam p = makeParam("wte", {8, 2}, {4, 2}, {4, 0}, ParamInit::Normal, 1.0, /*vocabRows=*/6);
  std::vector<float> v = initParamShard(p, 3);
  EXPECT_NE(v[0], 0.0f);
  EXPECT_NE(v[3], 0.0f);
  for (int i = 4; i < 8; ++i)
    EXPECT_EQ(v[i], 0.0f); // rows 6 and 7
}

/// Two tp ranks, each with half of a vocab-padded table and a replicated bias.
std::vector<LoadedPlan> twoRankPlans() {
  std::vector<LoadedPlan> plans;
  for (int r = 0; r < 2; ++r) {
    PlanSpec p;
    p.tp = 2;
    p.rank = r;
    p.model = R"({"model_type": "gpt2", "vocab_size": 6, "n_embd": 2})";
    p.params = {{"transformer.wte.weight", {8, 2}, {4, 2}, {4 * r, 0}, {}, plan::Init::Normal, 0.02, 6},
                {"transformer.h.0.attn.c_attn.weight", {2, 3, 2, 1}, {2, 3, 1, 1}, {0, 0, r, 0}, {2, 6}},
                {"transformer.ln_f.bias", {2}, {}, {}, {}, plan::Init::Zeros}};
    auto plan = parsePlan(buildPlan(p), "w.megplan");
    EXPECT_TRUE(bool(plan)) << llvm::toString(plan.takeError());
    plans.push_back(std::move(*plan));
  }
  return plans;
}

TEST(WeightsTest, SaveAssemblesShardsAndLoadSplitsThem) {
  TempDir dir;
  std::vector<LoadedPlan> plans = twoRankPlans();
  // shards[rank][param]
  std::vector<std::vector<std::vector<float>>> shards(2);
  for (int r = 0; r < 2; ++r)
    for (const PlanParam &p : plans[r].params)
      shards[r].push_back(initParamShard(p, 5));
  std::string path = dir.path("w.safetensors");
  ASSERT_FALSE(bool(saveWeights(path, plans, [&](int r, size_t i, llvm::MutableArrayRef<float> out) {
    std::copy(shards[r][i].begin(), shards[r][i].end(), out.begin());
  })));
  auto file = SafetensorsFile::open(path);
  ASSERT_TRUE(bool(file)) << llvm::toString(file.takeError());
  EXPECT_EQ(file->lookup("transformer.wte.weight")->Shape, (std::vector<int64_t>{6, 2})); // padding cut
  EXPECT_EQ(file->lookup("transformer.h.0.attn.c_attn.weight")->Shape, (std::vector<int64_t>{2, 6}));
  auto wte = file->toFloats("transformer.wte.weight");
  ASSERT_TRUE(bool(wte));
  PlanParam whole = plans[0].params[0];
  whole.shape = whole.globalShape;
  whole.offset = {0, 0};
  std::vector<float> expected = initParamShard(whole, 5);
  expected.resize(12);
  EXPECT_EQ(*wte, expected);

  auto config = llvm::json::parse(readRaw(dir.path("config.json")));
  ASSERT_TRUE(bool(config));
  EXPECT_EQ(*config->getAsObject()->getString("model_type"), "gpt2");
  EXPECT_EQ(*(*config->getAsObject()->getArray("architectures"))[0].getAsString(), "GPT2LMHeadModel");
  EXPECT_EQ(*config->getAsObject()->getInteger("vocab_size"), 6);

  std::vector<std::vector<std::vector<float>>> loaded(2, std::vector<std::vector<float>>(3));
  ASSERT_FALSE(bool(loadWeights(path, plans, [&](int r, size_t i, llvm::ArrayRef<float> v) {
    loaded[r][i].assign(v.begin(), v.end());
  })));
  EXPECT_EQ(loaded, shards);
}

TEST(WeightsTest, LoadReportsMissingUnexpectedAndMisShapedTensors) {
  TempDir dir;
  std::vector<LoadedPlan> plans = twoRankPlans();
  SafetensorsWriter w;
  ASSERT_FALSE(bool(w.addF32("transformer.wte.weight", {8, 2}, std::vector<float>(16))));
  ASSERT_FALSE(bool(w.addF32("extra.weight", {1}, {0.0f})));
  ASSERT_FALSE(bool(w.addF32("lm_head.weight", {6, 2}, std::vector<float>(12)))); // a tied alias: ignored
  std::string path = dir.path("bad.safetensors");
  ASSERT_FALSE(bool(w.write(path)));
  bool wrote = false;
  llvm::Error err = loadWeights(path, plans, [&](int, size_t, llvm::ArrayRef<float>) { wrote = true; });
  EXPECT_EQ(message(std::move(err)),
            path + ": missing tensors 'transformer.h.0.attn.c_attn.weight', 'transformer.ln_f.bias'; unexpected "
                   "tensor 'extra.weight'; tensor 'transformer.wte.weight' has shape [8, 2], expected [6, 2]");
  EXPECT_FALSE(wrote);
  EXPECT_NE(message(loadWeights(dir.path("none.safetensors"), plans, [](int, size_t, llvm::ArrayRef<float>) {}))
                .find("none.safetensors"),
            std::string::npos);
}

} // namespace
