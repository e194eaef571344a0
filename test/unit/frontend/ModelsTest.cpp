//===- ModelsTest.cpp - every description under models/ builds, with HF's parameter counts -===//
#include "frontend/Frontend.h"
#include "frontend/ModelConfig.h"
#include "frontend/Report.h"
#include "ir/Parser.h"
#include "ir/Printer.h"
#include "ir/Verifier.h"

#include "llvm/ADT/StringSet.h"

#include "gtest/gtest.h"

using namespace meg;
using namespace meg::frontend;

namespace {

struct ModelCase {
  const char *file;
  const char *modelType;
  int64_t layers, hidden, heads, vocab;
  int64_t parameters; // Hugging Face's count (tied output layer counted once)
};

// GPT-2 counts are GPT2LMHeadModel's; BERT counts are BertForPreTraining's / MegatronBertForPreTraining's.
const ModelCase kModels[] = {
    {"gpt2", "gpt2", 12, 768, 12, 50257, 124439808},
    {"gpt2-medium", "gpt2", 24, 1024, 16, 50257, 354823168},
    {"gpt2-large", "gpt2", 36, 1280, 20, 50257, 774030080},
    {"gpt2-xl", "gpt2", 48, 1600, 25, 50257, 1557611200},
    {"megatron-gpt-1.2b", "gpt2", 40, 1536, 16, 51200, 1213479936},
    {"megatron-gpt-2.5b", "gpt2", 54, 1920, 20, 51200, 2490408960},
    {"megatron-gpt-4.2b", "gpt2", 64, 2304, 24, 51200, 4199109120},
    {"megatron-gpt-8.3b", "gpt2", 72, 3072, 32, 51200, 8317040640},
    {"bert-base", "bert", 12, 768, 12, 30522, 110106428},
    {"bert-large", "bert", 24, 1024, 16, 30522, 336226108},
    {"megatron-bert-336m", "megatron-bert", 24, 1024, 16, 30592, 336297858},
    {"megatron-bert-1.3b", "megatron-bert", 24, 2048, 32, 30592, 1280739202},
    {"megatron-bert-3.9b", "megatron-bert", 48, 2560, 40, 30592, 3869260674},
    {"tiny-gpt", "gpt2", 2, 64, 4, 256, 120576},
    {"tiny-bert-post", "bert", 2, 64, 4, 256, 129538},
    {"tiny-bert-pre", "megatron-bert", 2, 64, 4, 256, 129538},
};

std::string modelPath(llvm::StringRef name) { return (llvm::Twine(MEG_MODELS_DIR) + "/" + name + ".json").str(); }

class Models : public ::testing::TestWithParam<ModelCase> {};

TEST_P(Models, ConfigAndParameterCount) {
  const ModelCase &m = GetParam();
  ConfigOverrides small;
  small.seq = 8; // keeps the graphs of the big models small; parameters do not depend on it
  auto config = loadModelConfig(modelPath(m.file), small);
  ASSERT_TRUE(bool(config)) << llvm::toString(config.takeError());
  EXPECT_EQ(config->name, m.file);
  EXPECT_EQ(config->modelType, m.modelType);
  EXPECT_EQ(config->numLayers, m.layers);
  EXPECT_EQ(config->hidden, m.hidden);
  EXPECT_EQ(config->numHeads, m.heads);
  EXPECT_EQ(config->vocabSize, m.vocab);
  EXPECT_EQ(config->seq, 8);

  for (BuildMode mode : {BuildMode::Train, BuildMode::Infer}) {
    auto graph = buildModel(*config, {mode});
    ASSERT_TRUE(bool(graph)) << llvm::toString(graph.takeError());
    llvm::Error err = ir::verifyGraph(**graph, m.file);
    EXPECT_FALSE(bool(err)) << llvm::toString(std::move(err));
    EXPECT_EQ(countParameters(**graph).elements, m.parameters) << m.file << " " << buildModeName(mode).str();
    EXPECT_EQ(countParameters(**graph).bytes, 4 * m.parameters);
    // Names are unique (the verifier checks too) and no output layer of its own exists: it is tied.
    llvm::StringSet<> names;
    for (ir::Node *p : (*graph)->nodesOfKind(ir::OpKind::Param)) {
      llvm::StringRef name = *p->getAttrs().getString("name");
      EXPECT_TRUE(names.insert(name).second) << name.str();
      EXPECT_FALSE(name.startswith("lm_head")) << name.str();
      EXPECT_FALSE(name.startswith("cls.predictions.decoder")) << name.str();
    }
  }
}

INSTANTIATE_TEST_SUITE_P(All, Models, ::testing::ValuesIn(kModels), [](const auto &info) {
  std::string s = info.param.file;
  for (char &c : s)
    if (!isalnum(static_cast<unsigned char>(c)))
      c = '_';
  return s;
});

TEST(Models, DefaultShapes) {
  auto gpt = loadModelConfig(modelPath("gpt2"));
  ASSERT_TRUE(bool(gpt));
  EXPECT_EQ(gpt->seq, 1024);
  EXPECT_EQ(gpt->microBatch, 1);
  auto tiny = loadModelConfig(modelPath("tiny-gpt"));
  ASSERT_TRUE(bool(tiny));
  EXPECT_EQ(tiny->seq, 16);
  EXPECT_EQ(tiny->microBatch, 2);
  EXPECT_DOUBLE_EQ(tiny->residDropout, 0.0);
  auto post = loadModelConfig(modelPath("tiny-bert-post"));
  ASSERT_TRUE(bool(post));
  EXPECT_EQ(post->layerNorm, LayerNormPlacement::Post);
  auto pre = loadModelConfig(modelPath("tiny-bert-pre"));
  ASSERT_TRUE(bool(pre));
  EXPECT_EQ(pre->layerNorm, LayerNormPlacement::Pre);
}

// The printed IR of each tiny model parses back and prints identically.
TEST(Models, TinyRoundTrip) {
  for (const char *name : {"tiny-gpt", "tiny-bert-post", "tiny-bert-pre"}) {
    for (BuildMode mode : {BuildMode::Train, BuildMode::Infer}) {
      auto config = loadModelConfig(modelPath(name));
      ASSERT_TRUE(bool(config)) << llvm::toString(config.takeError());
      auto graph = buildModel(*config, {mode});
      ASSERT_TRUE(bool(graph)) << llvm::toString(graph.takeError());
      std::string text = ir::graphToString(**graph);
      auto parsed = ir::parseGraph(text, name);
      ASSERT_TRUE(bool(parsed)) << llvm::toString(parsed.takeError());
      EXPECT_EQ(ir::graphToString(**parsed), text) << name;
    }
  }
}

} // namespace
