//===- BuilderTest.cpp - shared layers of the model builders ----------------===//
#include "frontend/Builder.h"
#include "frontend/Frontend.h"

#include "gtest/gtest.h"

#include <cmath>
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
  EXPECT_EQ(out->getOperand(0)->getType().shape, (llvm::SmallVector<int64_t, 4>{2, 4, 32}));
}

} // namespace
