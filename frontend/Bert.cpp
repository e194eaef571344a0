//===- Bert.cpp - BERT pre-training (MLM + NSP) -> ir::Graph ----------------===//
//
// Two layouts of the same encoder:
//   post-LN (original BERT, BertForPreTraining): emb = LN(word + type + pos); per layer
//     x = LN(x + dropout(attn(x))); x = LN(x + dropout(mlp(x)))
//   pre-LN (Megatron's rearrangement, MegatronBertForPreTraining): emb = word + type + pos; per layer
//     x = x + dropout(attn(LN(x))); x = x + dropout(mlp(LN(x))); final LN
// Heads: pooler (tanh of a dense on token 0), MLM (dense, GeLU, LN, decoder tied to the word embedding + bias, over
// the tp-padded vocabulary with the padding logits masked) and NSP (dense to 2 classes); loss = CE(MLM) + CE(NSP).
// Attention is bidirectional with the padding mask.
//
// Fine-tuning heads (ModelConfig::head) replace MLM + NSP, on the pooler, as Hugging Face's classes:
//   multiple-choice (BertForMultipleChoice): inputs [b, C, s] (C = meg.num_choices options per example) are run as
//     b*C rows; score = classifier(dropout(pooled)) with classifier [1, h]; logits = scores as [b, C];
//     loss = CE(logits, labels[b]);
//   classification (BertForSequenceClassification): logits = classifier(dropout(pooled)) [b, num_labels];
//     loss = CE(logits, labels[b]).
// Both keep the output "logits" in train mode too (evaluation reads it: accuracy).
//
// Parameter names are the HF state_dict keys of the class named above. nn.Linear weights are [out, in]; the IR
// names the heads: query/key/value [heads, head_dim, h], attention output [h, heads, head_dim].
//
//===----------------------------------------------------------------------===//
#include "frontend/Builder.h"
#include "frontend/Frontend.h"

#include <cmath>

using namespace meg;
using namespace meg::frontend;
using ir::Value;

llvm::Expected<std::unique_ptr<ir::Graph>> meg::frontend::buildBert(const ModelConfig &c, const BuildOptions &opts) {
  assert(c.family == ModelFamily::Bert && "not a BERT config");
  const int64_t b = c.microBatch, s = c.seq, h = c.hidden, n = c.numHeads, d = c.headDim(), f = c.ffnHidden;
  const bool train = opts.mode == BuildMode::Train;
  const bool preLN = c.layerNorm == LayerNormPlacement::Pre;
  const double eps = c.layerNormEps, std = c.initStd;
  // Megatron scales the init of the residual branches' output projections by 1/sqrt(2L); original BERT does not.
  const double outStd = preLN ? std / std::sqrt(2.0 * double(c.numLayers)) : std;

  auto graph = std::make_unique<ir::Graph>(graphNameFor(c.name));
  Builder B(*graph, /*dropoutEnabled=*/train);

  const bool choices = c.head == BertHead::MultipleChoice;
  const int64_t C = c.numChoices;
  // Multiple choice: [b, C, s] inputs, run as b*C rows of s.
  auto rowsInput = [&](llvm::StringRef name) {
    if (!choices)
      return B.input(name, ir::DType::I32, {b, s});
    return B.reshape(B.input(name, ir::DType::I32, {b, C, s}), {b * C, s});
  };
  Value *ids = rowsInput("input_ids");
  Value *typeIds = rowsInput("token_type_ids");
  Value *mask = rowsInput("attention_mask");

  // Embeddings: word + token type + position (rows 0..s-1), in HF's order of addition.
  // Megatron's padded vocabulary (only the first vocab_size rows exist in HF files).
  const int64_t vp = c.paddedVocab(opts.tp);
  Value *wordEmb =
      B.param("bert.embeddings.word_embeddings.weight", {vp, h}, ParamInit::normal(std), "vh", {}, c.vocabSize);
  Value *posEmb = B.param("bert.embeddings.position_embeddings.weight", {c.maxPositions, h}, ParamInit::normal(std), "ph");
  Value *typeEmb = B.param("bert.embeddings.token_type_embeddings.weight", {c.typeVocabSize, h}, ParamInit::normal(std), "yh");
  Value *words = B.embedding(wordEmb, ids);
  Value *types = B.embedding(typeEmb, typeIds);
  Value *x = B.add(words, types);
  Value *positions = B.slice(posEmb, 0, 0, s);
  x = B.add(x, positions);
  if (!preLN)
    x = B.layerNorm(x, "bert.embeddings.LayerNorm", eps);
  x = B.dropout(x, c.embdDropout);

  // Self-attention and its output projection (no residual, no LN).
  auto attention = [&](Value *in, const std::string &p) {
    Value *q = B.dense(in, p + "attention.self.query", "bsi,ndi->bsnd", {n, d, h}, {n, d}, std, {h, h}, {h});
    Value *k = B.dense(in, p + "attention.self.key", "bsi,ndi->bsnd", {n, d, h}, {n, d}, std, {h, h}, {h});
    Value *v = B.dense(in, p + "attention.self.value", "bsi,ndi->bsnd", {n, d, h}, {n, d}, std, {h, h}, {h});
    Value *o = B.attention(q, k, v, mask, /*causal=*/false, c.attnDropout);
    return B.dense(o, p + "attention.output.dense", "bsnd,ind->bsi", {h, n, d}, {h}, outStd, {h, h});
  };
  // intermediate (GeLU) and output projection.
  auto mlp = [&](Value *in, const std::string &p) {
    Value *i = B.gelu(B.dense(in, p + "intermediate.dense", "bsh,fh->bsf", {f, h}, {f}, std), c.activation);
    return B.dense(i, p + "output.dense", "bsf,hf->bsh", {h, f}, {h}, outStd);
  };

  for (int64_t i = 0; i < c.numLayers; ++i) {
    std::string p = "bert.encoder.layer." + std::to_string(i) + ".";
    if (preLN) {
      Value *a = attention(B.layerNorm(x, p + "attention.ln", eps), p);
      x = B.add(x, B.dropout(a, c.residDropout));
      Value *m = mlp(B.layerNorm(x, p + "ln", eps), p);
      x = B.add(x, B.dropout(m, c.residDropout));
    } else {
      Value *a = B.dropout(attention(x, p), c.residDropout);
      x = B.layerNorm(B.add(a, x), p + "attention.output.LayerNorm", eps);
      Value *m = B.dropout(mlp(x, p), c.residDropout);
      x = B.layerNorm(B.add(m, x), p + "output.LayerNorm", eps);
    }
  }
  if (preLN)
    x = B.layerNorm(x, "bert.encoder.ln", eps);

  // Pooler: tanh(dense(x[:, 0])).
  Value *first = B.select(x, 1, 0);
  Value *pooled = B.tanh(B.dense(first, "bert.pooler.dense", "bi,oi->bo", {h, h}, {h}, std));

  if (c.head != BertHead::PreTraining) {
    const int64_t classes = choices ? 1 : c.numLabels;
    Value *labels = train ? B.input("labels", ir::DType::I32, {b}) : nullptr;
    Value *logits =
        B.dense(B.dropout(pooled, c.classifierDropout), "classifier", "bh,ch->bc", {classes, h}, {classes}, std);
    if (choices)
      logits = B.reshape(logits, {b, C});
    B.output(logits, "logits");
    if (train)
      B.output(B.crossEntropy(logits, labels), "loss");
    if (auto err = B.finish())
      return err;
    return graph;
  }
  Value *labels = train ? B.input("labels", ir::DType::I32, {b, s}) : nullptr;
  Value *nspLabels = train ? B.input("next_sentence_label", ir::DType::I32, {b}) : nullptr;

  // MLM head: LN(gelu(dense(x))) . word_embeddings^T + bias (decoder weight tied: no parameter).
  Value *t = B.gelu(B.dense(x, "cls.predictions.transform.dense", "bsi,oi->bso", {h, h}, {h}, std), c.activation);
  t = B.layerNorm(t, "cls.predictions.transform.LayerNorm", eps);
  Value *decoded = B.contract(t, wordEmb, "bsh,vh->bsv");
  Value *mlmBias = B.param("cls.predictions.bias", {vp}, ParamInit::zeros(), "v", {}, c.vocabSize);
  Value *mlmLogits = B.maskVocabPadding(B.add(decoded, mlmBias), c.vocabSize);

  // NSP head.
  Value *nspLogits = B.dense(pooled, "cls.seq_relationship", "bh,ch->bc", {2, h}, {2}, std);

  if (train) {
    Value *mlmLoss = B.crossEntropy(mlmLogits, labels);
    Value *nspLoss = B.crossEntropy(nspLogits, nspLabels);
    B.output(B.add(mlmLoss, nspLoss), "loss");
  } else {
    B.output(mlmLogits, "prediction_logits");
    B.output(nspLogits, "seq_relationship_logits");
  }

  if (auto err = B.finish())
    return err;
  return graph;
}
