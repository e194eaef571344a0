//===- ModelConfigTest.cpp - model description parsing ----------------------===//
#include "frontend/ModelConfig.h"

#include "gtest/gtest.h"

using namespace meg::frontend;

namespace {

std::string errorOf(llvm::StringRef json, const ConfigOverrides &ov = {}) {
  auto c = parseModelConfig(json, "m.json", ov);
  if (c)
    return "<no error>";
  return llvm::toString(c.takeError());
}

ModelConfig parseOk(llvm::StringRef json, const ConfigOverrides &ov = {}) {
  auto c = parseModelConfig(json, "dir/m.json", ov);
  if (!c) {
    ADD_FAILURE() << llvm::toString(c.takeError());
    return {};
  }
  return *c;
}

const char *kGpt = R"({"model_type": "gpt2", "n_layer": 2, "n_embd": 64, "n_head": 4, "vocab_size": 256,
                      "n_positions": 64})";

TEST(ModelConfig, GptDefaults) {
  ModelConfig c = parseOk(kGpt);
  EXPECT_EQ(c.family, ModelFamily::GPT2);
  EXPECT_EQ(c.name, "m");
  EXPECT_EQ(c.hfClass, "GPT2LMHeadModel");
  EXPECT_EQ(c.numLayers, 2);
  EXPECT_EQ(c.hidden, 64);
  EXPECT_EQ(c.headDim(), 16);
  EXPECT_EQ(c.ffnHidden, 256); // n_inner absent = 4 * n_embd
  EXPECT_EQ(c.seq, 64);        // = n_positions
  EXPECT_EQ(c.microBatch, 1);
  EXPECT_EQ(c.activation, Activation::GeluTanh);
  EXPECT_DOUBLE_EQ(c.layerNormEps, 1e-5);
  EXPECT_DOUBLE_EQ(c.residDropout, 0.1);
  EXPECT_DOUBLE_EQ(c.initStd, 0.02);
  EXPECT_EQ(c.layerNorm, LayerNormPlacement::Pre);
}

TEST(ModelConfig, GptExplicitKeysAndMeg) {
  ModelConfig c = parseOk(R"({"model_type": "gpt2", "n_layer": 2, "n_embd": 64, "n_head": 4, "n_inner": 100,
      "vocab_size": 256, "n_positions": 64, "activation_function": "gelu", "resid_pdrop": 0.0, "embd_pdrop": 0.2,
      "attn_pdrop": 0.3, "layer_norm_epsilon": 1e-6, "some_unknown_key": {"x": [1, 2]},
      "meg": {"name": "tiny", "micro_batch": 4, "seq": 32}})");
  EXPECT_EQ(c.name, "tiny");
  EXPECT_EQ(c.ffnHidden, 100);
  EXPECT_EQ(c.activation, Activation::GeluErf);
  EXPECT_DOUBLE_EQ(c.residDropout, 0.0);
  EXPECT_DOUBLE_EQ(c.embdDropout, 0.2);
  EXPECT_DOUBLE_EQ(c.attnDropout, 0.3);
  EXPECT_DOUBLE_EQ(c.layerNormEps, 1e-6);
  EXPECT_EQ(c.microBatch, 4);
  EXPECT_EQ(c.seq, 32);
}

TEST(ModelConfig, NullInnerMeansFourTimesHidden) {
  ModelConfig c = parseOk(R"({"model_type": "gpt2", "n_layer": 1, "n_embd": 8, "n_head": 2, "n_inner": null,
                              "vocab_size": 16, "n_positions": 8})");
  EXPECT_EQ(c.ffnHidden, 32);
}

TEST(ModelConfig, Overrides) {
  ConfigOverrides ov;
  ov.microBatch = 3;
  ov.seq = 8;
  ModelConfig c = parseOk(kGpt, ov);
  EXPECT_EQ(c.microBatch, 3);
  EXPECT_EQ(c.seq, 8);
  ov.seq = 65;
  EXPECT_EQ(errorOf(kGpt, ov), "m.json: seq (65) exceeds n_positions (64)");
}

TEST(ModelConfig, VocabDivisibleBy) {
  EXPECT_EQ(parseOk(kGpt).vocabDivisibleBy, 128);
  ModelConfig c = parseOk(R"({"model_type": "gpt2", "n_layer": 2, "n_embd": 64, "n_head": 4, "vocab_size": 1000,
                              "n_positions": 64, "meg": {"vocab_divisible_by": 64}})");
  EXPECT_EQ(c.vocabDivisibleBy, 64);
  EXPECT_EQ(c.paddedVocab(2), 1024);
  EXPECT_EQ(c.paddedVocab(1), 1024);
  ConfigOverrides ov;
  ov.vocabDivisibleBy = 8; // --make-vocab-size-divisible-by wins over the description
  EXPECT_EQ(parseOk(R"({"model_type": "gpt2", "n_layer": 2, "n_embd": 64, "n_head": 4, "vocab_size": 1000,
                        "n_positions": 64, "meg": {"vocab_divisible_by": 64}})", ov)
                .paddedVocab(1),
            1000);
  EXPECT_EQ(errorOf(R"({"model_type": "gpt2", "n_layer": 2, "n_embd": 64, "n_head": 4, "vocab_size": 1000,
                        "n_positions": 64, "meg": {"vocab_divisible_by": 0}})"),
            "m.json: key 'meg.vocab_divisible_by' must be positive (got 0)");
}

TEST(ModelConfig, FamilyFromArchitectures) {
  ModelConfig c = parseOk(R"({"architectures": ["MegatronBertForPreTraining"], "num_hidden_layers": 2,
      "hidden_size": 64, "num_attention_heads": 4, "intermediate_size": 256, "vocab_size": 256,
      "max_position_embeddings": 64})");
  EXPECT_EQ(c.modelType, "megatron-bert");
  EXPECT_EQ(c.layerNorm, LayerNormPlacement::Pre);
  EXPECT_EQ(c.hfClass, "MegatronBertForPreTraining");
  c = parseOk(R"({"architectures": ["GPT2LMHeadModel"], "n_layer": 2, "n_embd": 64, "n_head": 4,
                  "vocab_size": 256, "n_positions": 64})");
  EXPECT_EQ(c.family, ModelFamily::GPT2);
}

TEST(ModelConfig, BertHeads) {
  const char *base = R"({"architectures": ["BertForMultipleChoice"], "model_type": "bert", "num_hidden_layers": 2,
      "hidden_size": 64, "num_attention_heads": 4, "intermediate_size": 256, "vocab_size": 256,
      "max_position_embeddings": 64, "hidden_dropout_prob": 0.2})";
  ModelConfig c = parseOk(base);
  EXPECT_EQ(c.head, BertHead::MultipleChoice);
  EXPECT_EQ(c.hfClass, "BertForMultipleChoice");
  EXPECT_EQ(c.numChoices, 4);
  EXPECT_DOUBLE_EQ(c.classifierDropout, 0.2); // classifier_dropout absent: hidden_dropout_prob
  ConfigOverrides o;
  o.head = BertHead::Classification;
  auto parsed = parseModelConfig(base, "m.json", o);
  ASSERT_TRUE(bool(parsed));
  EXPECT_EQ(parsed->head, BertHead::Classification);
  EXPECT_EQ(parsed->hfClass, "BertForSequenceClassification");
  EXPECT_EQ(parsed->numLabels, 2);
  c = parseOk(R"({"architectures": ["MegatronBertForSequenceClassification"], "num_hidden_layers": 2,
      "hidden_size": 64, "num_attention_heads": 4, "intermediate_size": 256, "vocab_size": 256,
      "max_position_embeddings": 64, "id2label": {"0": "a", "1": "b", "2": "c"}, "classifier_dropout": null})");
  EXPECT_EQ(c.head, BertHead::Classification);
  EXPECT_EQ(c.hfClass, "MegatronBertForSequenceClassification");
  EXPECT_EQ(c.numLabels, 3);
  EXPECT_EQ(parseBertHead("multiple-choice"), BertHead::MultipleChoice);
  EXPECT_FALSE(parseBertHead("qa").has_value());
}

TEST(ModelConfig, BertDefaultsAndPlacement) {
  const char *bert = R"({"model_type": "bert", "num_hidden_layers": 2, "hidden_size": 64,
      "num_attention_heads": 4, "intermediate_size": 256, "vocab_size": 256, "max_position_embeddings": 64})";
  ModelConfig c = parseOk(bert);
  EXPECT_EQ(c.family, ModelFamily::Bert);
  EXPECT_EQ(c.layerNorm, LayerNormPlacement::Post);
  EXPECT_EQ(c.hfClass, "BertForPreTraining");
  EXPECT_EQ(c.typeVocabSize, 2);
  EXPECT_EQ(c.activation, Activation::GeluErf);
  EXPECT_DOUBLE_EQ(c.layerNormEps, 1e-12);
  EXPECT_EQ(c.seq, 64);
  c = parseOk(R"({"model_type": "bert", "num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4,
      "intermediate_size": 256, "vocab_size": 256, "max_position_embeddings": 64, "meg": {"layernorm": "pre"}})");
  EXPECT_EQ(c.layerNorm, LayerNormPlacement::Pre);
  EXPECT_EQ(c.hfClass, "MegatronBertForPreTraining");
}

TEST(ModelConfig, Errors) {
  EXPECT_EQ(errorOf("{\n  \"model_type\": \"gpt2\",\n  \"n_layer\": ,\n}"), "m.json:3:14: Invalid JSON value");
  EXPECT_EQ(errorOf("[1]"), "m.json: expected a JSON object at the top level");
  EXPECT_EQ(errorOf(R"({"n_layer": 1})"), "m.json: missing key 'model_type'");
  EXPECT_EQ(errorOf(R"({"model_type": "llama"})"),
            "m.json: unknown model_type 'llama' (expected gpt2, bert or megatron-bert)");
  EXPECT_EQ(errorOf(R"({"model_type": "gpt2", "n_layer": 2, "n_embd": 64, "vocab_size": 256, "n_positions": 64})"),
            "m.json: missing key 'n_head'");
  EXPECT_EQ(errorOf(R"({"model_type": "gpt2", "n_layer": 2, "n_embd": "64", "n_head": 4, "vocab_size": 256,
                        "n_positions": 64})"),
            "m.json: key 'n_embd' must be an integer");
  EXPECT_EQ(errorOf(R"({"model_type": "gpt2", "n_layer": 2.5, "n_embd": 64, "n_head": 4, "vocab_size": 256,
                        "n_positions": 64})"),
            "m.json: key 'n_layer' must be an integer");
  EXPECT_EQ(errorOf(R"({"model_type": "gpt2", "n_layer": 2, "n_embd": 64, "n_head": 5, "vocab_size": 256,
                        "n_positions": 64})"),
            "m.json: n_head (5) does not divide n_embd (64)");
  EXPECT_EQ(errorOf(R"({"model_type": "gpt2", "n_layer": 0, "n_embd": 64, "n_head": 4, "vocab_size": 256,
                        "n_positions": 64})"),
            "m.json: key 'n_layer' must be positive (got 0)");
  EXPECT_EQ(errorOf(R"({"model_type": "gpt2", "n_layer": 2, "n_embd": 64, "n_head": 4, "vocab_size": 256,
                        "n_positions": 64, "attn_pdrop": 1})"),
            "m.json: key 'attn_pdrop' must be in [0, 1) (got 1.0)");
  EXPECT_EQ(errorOf(R"({"model_type": "gpt2", "n_layer": 2, "n_embd": 64, "n_head": 4, "vocab_size": 256,
                        "n_positions": 64, "activation_function": "relu"})"),
            "m.json: unknown activation_function 'relu' (expected gelu_new, gelu_pytorch_tanh or gelu)");
  EXPECT_EQ(errorOf(R"({"model_type": "gpt2", "n_layer": 2, "n_embd": 64, "n_head": 4, "vocab_size": 256,
                        "n_positions": 64, "meg": {"seq": 128}})"),
            "m.json: seq (128) exceeds n_positions (64)");
  EXPECT_EQ(errorOf(R"({"model_type": "gpt2", "n_layer": 2, "n_embd": 64, "n_head": 4, "vocab_size": 256,
                        "n_positions": 64, "meg": {"micro_batch": -1}})"),
            "m.json: key 'meg.micro_batch' must be positive (got -1)");
  EXPECT_EQ(errorOf(R"({"model_type": "gpt2", "n_layer": 2, "n_embd": 64, "n_head": 4, "vocab_size": 256,
                        "n_positions": 64, "meg": 3})"),
            "m.json: key 'meg' must be an object");
  EXPECT_EQ(errorOf(R"({"model_type": "gpt2", "n_layer": 2, "n_embd": 64, "n_head": 4, "vocab_size": 256,
                        "n_positions": 64, "tie_word_embeddings": false})"),
            "m.json: tie_word_embeddings = false is not supported");
  EXPECT_EQ(errorOf(R"({"model_type": "megatron-bert", "num_hidden_layers": 2, "hidden_size": 64,
      "num_attention_heads": 4, "intermediate_size": 256, "vocab_size": 256, "max_position_embeddings": 64,
      "meg": {"layernorm": "post"}})"),
            "m.json: megatron-bert supports only meg.layernorm 'pre'");
  EXPECT_EQ(errorOf(R"({"model_type": "bert", "num_hidden_layers": 2, "hidden_size": 64,
      "num_attention_heads": 4, "intermediate_size": 256, "vocab_size": 256, "max_position_embeddings": 64,
      "meg": {"layernorm": "middle"}})"),
            "m.json: unknown meg.layernorm 'middle' (expected post or pre)");
  EXPECT_EQ(errorOf(R"({"model_type": "bert", "num_hidden_layers": 2, "hidden_size": 64,
      "num_attention_heads": 4, "intermediate_size": 256, "vocab_size": 256, "max_position_embeddings": 64,
      "position_embedding_type": "relative_key"})"),
            "m.json: position_embedding_type 'relative_key' is not supported (expected absolute)");
  EXPECT_EQ(errorOf(R"({"model_type": "bert", "num_hidden_layers": 2, "hidden_size": 64,
      "num_attention_heads": 6, "intermediate_size": 256, "vocab_size": 256, "max_position_embeddings": 64})"),
            "m.json: num_attention_heads (6) does not divide hidden_size (64)");
}

TEST(ModelConfig, MissingFile) {
  auto c = loadModelConfig("/nonexistent/dir/m.json");
  ASSERT_FALSE(bool(c));
  EXPECT_EQ(llvm::toString(c.takeError()), "/nonexistent/dir/m.json: no such file or directory");
}

} // namespace
