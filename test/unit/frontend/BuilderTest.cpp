//===- BuilderTest.cpp - shared layers of the model builders ----------------===//
#include "frontend/Builder.h"
#include "frontend/Frontend.h"

#include "gtest/gtest.h"

#include <cmath>
#include <limits>
#include <set>

using namespace meg;
using namespace meg::frontend;
using ir::OpKind;

namespace {

llvm::SmallVector<OpKind, 16> kinds(const ir::Graph &g) {
  llvm::SmallVector<OpKind, 16> out;
  for (auto &n : g)
    out.push_back(n->getKind());
  return out;
}

TEST(Builder, CrossEntropyIsDecomposed) {
  ir::Graph g("ce");
  Builder B(g, /*dropoutEnabled=*/true);
  ir::Value *logits = B.input("logits", ir::DType::F32, {2, 3, 5});
  ir::Value *labels = B.input("labels", ir::DType::I32, {2, 3});
  ir::Value *loss = B.crossEntropy(logits, labels);
  ASSERT_FALSE(bool(B.finish()));
  ASSERT_NE(loss, nullptr);
  EXPECT_EQ(loss->getType(), ir::TensorType(ir::DType::F32, {}));
  llvm::SmallVector<OpKind, 16> expected = {
      OpKind::Input,     OpKind::Input, OpKind::ReduceMax, OpKind::Sub,      OpKind::Exp,
      OpKind::ReduceSum, OpKind::Log,   OpKind::Reshape,   OpKind::Add,      OpKind::Pick,
      OpKind::Sub,       OpKind::ValidMask, OpKind::Mul,   OpKind::ReduceSum, OpKind::ReduceSum,
      OpKind::Div};
  EXPECT_EQ(kinds(g), expected);
  ir::Node *mask = g.nodesOfKind(OpKind::ValidMask).front();
  EXPECT_EQ(mask->getAttrs().getInt("ignore"), -100);
  ir::Node *max = g.nodesOfKind(OpKind::ReduceMax).front();
  EXPECT_EQ(*max->getAttrs().getInts("dims"), std::vector<int64_t>{2});
  EXPECT_EQ(max->getAttrs().getBool("keepdim"), true);
  // The two final sums reduce over every label dim.
  auto sums = g.nodesOfKind(OpKind::ReduceSum);
  ASSERT_EQ(sums.size(), 3u);
  EXPECT_EQ(*sums[1]->getAttrs().getInts("dims"), (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(*sums[2]->getAttrs().getInts("dims"), (std::vector<int64_t>{0, 1}));
}

TEST(Builder, DropoutStreamsAndZeroProbability) {
  ir::Graph g("d");
  Builder B(g, /*dropoutEnabled=*/true);
  ir::Value *x = B.input("x", ir::DType::F32, {2, 4});
  EXPECT_EQ(B.dropout(x, 0.0), x); // p == 0: no node
  ir::Value *a = B.dropout(x, 0.1);
  ir::Value *b = B.dropout(a, 0.1);
  ASSERT_FALSE(bool(B.finish()));
  auto drops = g.nodesOfKind(OpKind::Dropout);
  ASSERT_EQ(drops.size(), 2u);
  EXPECT_EQ(drops[0]->getAttrs().getInt("stream"), 1);
  EXPECT_EQ(drops[1]->getAttrs().getInt("stream"), 2);
  EXPECT_EQ(drops[1]->getResult(), b);

  ir::Graph h("infer");
  Builder I(h, /*dropoutEnabled=*/false);
  ir::Value *y = I.input("x", ir::DType::F32, {2, 4});
  EXPECT_EQ(I.dropout(y, 0.5), y);
  EXPECT_TRUE(h.nodesOfKind(OpKind::Dropout).empty());
}

TEST(Builder, AttentionScaleAndStream) {
  ir::Graph g("a");
  Builder B(g, true);
  ir::Value *q = B.input("q", ir::DType::F32, {1, 4, 2, 16});
  ir::Value *o = B.attention(q, q, q, nullptr, true, 0.1);
  ASSERT_FALSE(bool(B.finish()));
  ASSERT_NE(o, nullptr);
  const ir::AttrDict &a = o->getDef()->getAttrs();
  EXPECT_DOUBLE_EQ(*a.getFloat("scale"), 0.25);
  EXPECT_EQ(a.getBool("causal"), true);
  EXPECT_EQ(a.getInt("stream"), 1);
  ir::Value *o2 = B.attention(q, q, q, nullptr, false, 0.0);
  EXPECT_FALSE(o2->getDef()->getAttrs().has("stream"));
  EXPECT_DOUBLE_EQ(*o2->getDef()->getAttrs().getFloat("dropout"), 0.0);
}

TEST(Builder, ParamsCarryInitAndHfShape) {
  ir::Graph g("p");
  Builder B(g, true);
  ir::Value *x = B.input("x", ir::DType::F32, {2, 3, 8});
  ir::Value *y = B.dense(x, "layer.qkv", "bsi,itnd->bstnd", {8, 3, 2, 4}, {3, 2, 4}, 0.02, {8, 24}, {24});
  ASSERT_FALSE(bool(B.finish()));
  EXPECT_EQ(y->getType().shape, (llvm::SmallVector<int64_t, 4>{2, 3, 3, 2, 4}));
  ir::Node *w = g.findNamed(OpKind::Param, "layer.qkv.weight");
  ir::Node *b = g.findNamed(OpKind::Param, "layer.qkv.bias");
  ASSERT_TRUE(w && b);
  EXPECT_EQ(w->getAttrs().getSymbol("init"), llvm::StringRef("normal"));
  EXPECT_DOUBLE_EQ(*w->getAttrs().getFloat("std"), 0.02);
  EXPECT_EQ(*w->getAttrs().getInts("hf_shape"), (std::vector<int64_t>{8, 24}));
  EXPECT_EQ(b->getAttrs().getSymbol("init"), llvm::StringRef("zeros"));
  EXPECT_FALSE(b->getAttrs().has("std"));
}

TEST(Builder, ErrorsAreSticky) {
  ir::Graph g("e");
  Builder B(g, true);
  ir::Value *x = B.input("x", ir::DType::F32, {2, 3});
  ir::Value *y = B.input("y", ir::DType::F32, {4});
  ir::Value *bad = B.add(x, y); // [2,3] + [4] does not broadcast
  EXPECT_EQ(bad, nullptr);
  EXPECT_EQ(B.add(bad, x), nullptr);
  llvm::Error err = B.finish();
  ASSERT_TRUE(bool(err));
  std::string msg = llvm::toString(std::move(err));
  EXPECT_NE(msg.find("do not broadcast"), std::string::npos) << msg;
}

TEST(Builder, GraphNames) {
  EXPECT_EQ(graphNameFor("gpt2"), "gpt2");
  EXPECT_EQ(graphNameFor("megatron-gpt-8.3b"), "megatron-gpt-8.3b");
  EXPECT_EQ(graphNameFor("345m model"), "_345m_model");
}

ModelConfig tinyGpt() {
  auto c = parseModelConfig(R"({"model_type": "gpt2", "n_layer": 3, "n_embd": 16, "n_head": 2, "vocab_size": 32,
      "n_positions": 8, "meg": {"micro_batch": 2, "seq": 4}})",
                            "g.json");
  EXPECT_TRUE(bool(c));
  return *c;
}

TEST(Gpt, TiedOutputAndScaledInit) {
  ModelConfig c = tinyGpt();
  auto g = buildGpt(c, {BuildMode::Train});
  ASSERT_TRUE(bool(g)) << llvm::toString(g.takeError());
  ir::Node *wte = (*g)->findNamed(OpKind::Param, "transformer.wte.weight");
  ASSERT_NE(wte, nullptr);
  auto contracts = (*g)->nodesOfKind(OpKind::Contract);
  EXPECT_EQ(contracts.back()->getOperand(1), wte->getResult());
  EXPECT_EQ(contracts.back()->getAttrs().getString("spec"), llvm::StringRef("bsh,vh->bsv"));
  double scaled = 0.02 / std::sqrt(6.0);
  for (int i = 0; i < 3; ++i) {
    std::string p = "transformer.h." + std::to_string(i) + ".";
    EXPECT_DOUBLE_EQ(*(*g)->findNamed(OpKind::Param, p + "attn.c_proj.weight")->getAttrs().getFloat("std"), scaled);
    EXPECT_DOUBLE_EQ(*(*g)->findNamed(OpKind::Param, p + "mlp.c_proj.weight")->getAttrs().getFloat("std"), scaled);
    EXPECT_DOUBLE_EQ(*(*g)->findNamed(OpKind::Param, p + "mlp.c_fc.weight")->getAttrs().getFloat("std"), 0.02);
    EXPECT_EQ((*g)->findNamed(OpKind::Param, p + "ln_1.weight")->getAttrs().getSymbol("init"),
              llvm::StringRef("ones"));
  }
  EXPECT_EQ((*g)->nodesOfKind(OpKind::Attention).size(), 3u);
  EXPECT_EQ((*g)->nodesOfKind(OpKind::LayerNorm).size(), 7u);
  // Dropout: embeddings + 2 per layer, attention dropout inside the 3 attention ops: streams 1..10, distinct.
  std::set<int64_t> streams;
  for (auto &n : **g) {
    if (auto s = n->getAttrs().getInt("stream")) {
      EXPECT_TRUE(streams.insert(*s).second);
    }
  }
  EXPECT_EQ(streams.size(), 10u);
  auto outputs = (*g)->nodesOfKind(OpKind::Output);
  ASSERT_EQ(outputs.size(), 1u);
  EXPECT_EQ(outputs[0]->getAttrs().getString("name"), llvm::StringRef("loss"));
}

TEST(Gpt, InferMode) {
  auto g = buildGpt(tinyGpt(), {BuildMode::Infer});
  ASSERT_TRUE(bool(g)) << llvm::toString(g.takeError());
  EXPECT_EQ((*g)->findNamed(OpKind::Input, "labels"), nullptr);
  EXPECT_TRUE((*g)->nodesOfKind(OpKind::Dropout).empty());
  ir::Node *out = (*g)->findNamed(OpKind::Output, "logits");
  ASSERT_NE(out, nullptr);
  // Vocab 32 padded to 128; the padding columns are masked in the inference logits too.
  EXPECT_EQ(out->getOperand(0)->getType().shape, (llvm::SmallVector<int64_t, 4>{2, 4, 128}));
  EXPECT_EQ(out->getOperand(0)->getDef()->getKind(), OpKind::MaskPadding);
}

// Megatron's padding: vocab 32 -> 128 x tp rows, vocab_rows = 32 on the table, the logits masked to -inf from
// column 32 on, between the tied output layer and the cross-entropy's first op.
TEST(Gpt, VocabPaddedForTp) {
  for (int64_t tp : {1, 2, 4}) {
    auto g = buildGpt(tinyGpt(), {BuildMode::Train, tp});
    ASSERT_TRUE(bool(g)) << llvm::toString(g.takeError());
    ir::Node *wte = (*g)->findNamed(OpKind::Param, "transformer.wte.weight");
    ASSERT_NE(wte, nullptr);
    EXPECT_EQ(wte->getResult()->getType().shape, (llvm::SmallVector<int64_t, 4>{128 * tp, 16})) << tp;
    EXPECT_EQ(wte->getAttrs().getInt("vocab_rows"), 32);
    auto masks = (*g)->nodesOfKind(OpKind::MaskPadding);
    ASSERT_EQ(masks.size(), 1u);
    const ir::AttrDict &a = masks[0]->getAttrs();
    EXPECT_EQ(a.getInt("dim"), 2);
    EXPECT_EQ(a.getInt("valid"), 32);
    EXPECT_EQ(*a.getFloat("value"), -std::numeric_limits<double>::infinity());
    EXPECT_EQ(masks[0]->getOperand(0), (*g)->nodesOfKind(OpKind::Contract).back()->getResult());
    // Nothing but the mask reads the unmasked logits; the cross-entropy (reduce_max, sub, pick) reads the masked.
    std::multiset<OpKind> rawUsers, maskedUsers;
    for (auto &n : **g)
      for (ir::Value *v : n->getOperands()) {
        if (v == masks[0]->getOperand(0))
          rawUsers.insert(n->getKind());
        if (v == masks[0]->getResult())
          maskedUsers.insert(n->getKind());
      }
    EXPECT_EQ(rawUsers, (std::multiset<OpKind>{OpKind::MaskPadding}));
    EXPECT_EQ(maskedUsers, (std::multiset<OpKind>{OpKind::ReduceMax, OpKind::Sub, OpKind::Pick}));
  }
}

TEST(Gpt, NoMaskWithoutPadding) {
  ModelConfig c = tinyGpt();
  c.vocabSize = 256;
  auto g = buildGpt(c, {BuildMode::Train, 2});
  ASSERT_TRUE(bool(g)) << llvm::toString(g.takeError());
  EXPECT_TRUE((*g)->nodesOfKind(OpKind::MaskPadding).empty());
  EXPECT_FALSE((*g)->findNamed(OpKind::Param, "transformer.wte.weight")->getAttrs().has("vocab_rows"));
}

TEST(ModelConfig, PaddedVocab) {
  ModelConfig c;
  c.vocabSize = 50257; // GPT-2: multiples of 128, 256, 512, 1024 (the paper's 51,200 at tp 8)
  EXPECT_EQ(c.paddedVocab(1), 50304);
  EXPECT_EQ(c.paddedVocab(2), 50432);
  EXPECT_EQ(c.paddedVocab(4), 50688);
  EXPECT_EQ(c.paddedVocab(8), 51200);
  c.vocabSize = 30522; // BERT
  EXPECT_EQ(c.paddedVocab(1), 30592);
  EXPECT_EQ(c.paddedVocab(2), 30720);
  c.vocabSize = 51200; // Megatron's Table 1 models: already padded
  EXPECT_EQ(c.paddedVocab(8), 51200);
  c.vocabSize = 1000;
  EXPECT_EQ(c.paddedVocab(2), 1024);
  c.vocabDivisibleBy = 1;
  EXPECT_EQ(c.paddedVocab(3), 1002);
}

} // namespace
